// Asks a homeserver for TURN credentials the way Matrix clients do: matrix-js-sdk's
// MatrixClient.turnServer(), GET /_matrix/client/v3/voip/turnServer with the access token.
// Started by cfturn's e2e tests:
//
//	MATRIX_ACCESS_TOKEN=... node turnserver.mjs http://127.0.0.1:PORT
//
// It prints one line starting with "RESULT " and then JSON: {"ok": true, "answer": {...}} with
// what the SDK returned, or {"ok": false, "httpStatus": n, "errcode": "...", "error": "..."}
// with the error the SDK raised. The SDK's own logging goes to stderr.
import { createClient } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");

const baseUrl = process.argv[2];
if (!baseUrl) {
	console.error("usage: MATRIX_ACCESS_TOKEN=... node turnserver.mjs HOMESERVER_URL");
	process.exit(2);
}
const client = createClient({
	baseUrl,
	accessToken: process.env.MATRIX_ACCESS_TOKEN,
	userId: process.env.MATRIX_USER_ID || undefined,
});

let result;
try {
	result = { ok: true, answer: await client.turnServer() };
} catch (err) {
	result = { ok: false, httpStatus: err.httpStatus ?? 0, errcode: err.errcode ?? "", error: String(err.message ?? err) };
}
process.stdout.write("RESULT " + JSON.stringify(result) + "\n");
client.stopClient();
