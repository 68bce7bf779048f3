// @ts-check
/**
 * cfturn.js keeps a WebRTC call alive past the lifetime of its TURN credentials.
 *
 * A page fetches ICE servers once, and a long call dies when those credentials expire (TURN
 * servers stop relaying for an expired credential). keepFresh fetches new credentials from the
 * endpoint before the old ones expire, hands them to the peer connection with setConfiguration
 * and restarts ICE, so the call moves to a TURN allocation made with the new credentials while
 * the old path carries media. It also restarts ICE with fresh credentials when ICE fails.
 *
 * The helper has no signalling of its own: restartIce() makes the browser fire
 * "negotiationneeded" on the peer connection, and the page's handler sends the new offer as it
 * does for any renegotiation (the "perfect negotiation" pattern handles both peers restarting at
 * once). Pages that renegotiate another way pass `renegotiate`.
 *
 * One ES module, no dependencies, no build step:
 *
 *   import {keepFresh} from "/cfturn.js";
 *   const pc = new RTCPeerConnection();
 *   const fresh = keepFresh(pc, {endpoint: "/ice"});
 *   fresh.addEventListener("restart", e => console.log("cfturn", e.type, e.detail));
 *   await fresh.ready; // the first credentials are in pc's configuration: negotiate now
 *
 * The endpoint answers {"iceServers": [...], "expiresAt": <unix seconds>} (cfturn serve-ice does).
 * Events carry no credential, so a page may log them as they are.
 *
 * @module cfturn
 */

/**
 * How to ask the credential endpoint.
 * @typedef {object} FetchOptions
 * @property {"POST"|"GET"} [method] HTTP method (default "POST").
 * @property {HeadersInit} [headers] extra request headers, e.g. a CSRF token.
 * @property {RequestCredentials} [credentials] cookies sent with the request (default "same-origin").
 * @property {BodyInit | null} [body] request body for POST (default none).
 * @property {number} [timeoutMs] time limit of one request (default 10000).
 * @property {AbortSignal} [signal] aborts the request.
 */

/**
 * Credentials as the endpoint answered them.
 * @typedef {object} IceCredentials
 * @property {RTCIceServer[]} iceServers ready for RTCPeerConnection's configuration.
 * @property {number} expiresAt when the TURN credential expires, Unix seconds, as served.
 * @property {number} lifetimeMs how long it had left when it was served (by the server's clock
 *   when its Date header is readable, else by this browser's).
 * @property {number} receivedAt performance.now() when the answer arrived.
 */

/**
 * Options of keepFresh: FetchOptions plus these.
 * @typedef {FetchOptions & KeepFreshFields} KeepFreshOptions
 */

/**
 * @typedef {object} KeepFreshFields
 * @property {string} endpoint URL of the credential endpoint.
 * @property {IceCredentials} [initial] the credentials the connection was made with; without
 *   them keepFresh fetches at once (retrying as it does later) and applies what it gets:
 *   await the Refresher's ready before negotiating.
 * @property {number} [refreshAt] part of a credential's remaining life after which new ones are
 *   fetched (default 0.6; above 0 and below 1).
 * @property {number} [disconnectedMs] how long ICE may stay "disconnected" before a restart
 *   (default 4000); "failed" restarts at once.
 * @property {number} [restartTimeoutMs] how long a restart may take to reconnect before it is
 *   reported as an error and tried again (default 20000).
 * @property {number} [initialBackoffMs] first retry delay after a failed fetch (default 1000).
 * @property {number} [maxBackoffMs] longest retry delay, doubling up to it (default 30000), and
 *   never over a quarter of the life the credential in use has left.
 * @property {number} [maxRetryAfterMs] cap on an endpoint's Retry-After (default 60000).
 * @property {() => (void | Promise<void>)} [renegotiate] called after restartIce(), for pages
 *   whose signalling does not run on "negotiationneeded".
 */

/**
 * Raised by fetchIceServers when the endpoint failed or answered something unusable.
 */
export class FetchError extends Error {
  /**
   * @param {string} message
   * @param {number} status HTTP status, 0 when no answer came.
   * @param {number} retryAfterMs the answer's Retry-After, 0 when it had none.
   */
  constructor(message, status, retryAfterMs) {
    super(message);
    this.name = "FetchError";
    /** HTTP status, 0 when no answer came (network error, timeout). */
    this.status = status;
    /** The answer's Retry-After in milliseconds, 0 when it had none. */
    this.retryAfterMs = retryAfterMs;
  }
}

const maxAnswerBytes = 64 * 1024;
const closeWatchMs = 2000;

/**
 * Fetches ICE servers from a credential endpoint.
 * @param {string} endpoint URL of the endpoint.
 * @param {FetchOptions} [options]
 * @returns {Promise<IceCredentials>}
 * @throws {FetchError} on a network error, a timeout, a status other than 2xx or a malformed answer.
 */
export async function fetchIceServers(endpoint, options = {}) {
  const method = options.method || "POST";
  const timeoutMs = options.timeoutMs ?? 10000;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const outer = options.signal;
  const onOuterAbort = () => abort.abort();
  outer?.addEventListener("abort", onOuterAbort);
  /** @type {Response} */
  let res;
  let text;
  try {
    res = await fetch(endpoint, {
      method,
      headers: options.headers,
      credentials: options.credentials || "same-origin",
      body: method === "POST" ? options.body ?? null : null,
      cache: "no-store",
      signal: abort.signal,
    });
    text = await res.text();
  } catch (err) {
    const why = abort.signal.aborted ? (outer?.aborted ? "aborted" : "no answer within " + timeoutMs + " ms") : String(err);
    throw new FetchError("cfturn: credential endpoint " + endpoint + ": " + why, 0, 0);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onOuterAbort);
  }
  const receivedAt = performance.now();
  if (!res.ok) {
    throw new FetchError("cfturn: credential endpoint answered " + res.status + ": " + text.slice(0, 200),
      res.status, parseRetryAfter(res.headers.get("Retry-After")));
  }
  if (text.length > maxAnswerBytes) {
    throw new FetchError("cfturn: credential endpoint's answer is over " + maxAnswerBytes + " bytes", res.status, 0);
  }
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FetchError("cfturn: credential endpoint's answer is not JSON", res.status, 0);
  }
  if (!body || !Array.isArray(body.iceServers) || body.iceServers.length === 0) {
    throw new FetchError("cfturn: credential endpoint's answer has no iceServers list", res.status, 0);
  }
  if (typeof body.expiresAt !== "number" || !Number.isFinite(body.expiresAt)) {
    throw new FetchError("cfturn: credential endpoint's answer has no expiresAt (Unix seconds)", res.status, 0);
  }
  // The server's Date header, when readable (same origin), makes the lifetime immune to a wrong
  // clock in this browser.
  const served = Date.parse(res.headers.get("Date") || "");
  const now = Number.isFinite(served) ? served : Date.now();
  return {iceServers: body.iceServers, expiresAt: body.expiresAt, lifetimeMs: body.expiresAt * 1000 - now, receivedAt};
}

/**
 * parseRetryAfter reads a Retry-After header (seconds or an HTTP date) in milliseconds; 0 when
 * absent or unreadable.
 * @param {string | null} value
 * @returns {number}
 */
function parseRetryAfter(value) {
  if (!value) return 0;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}

/**
 * Keeps pc's TURN credentials fresh until pc closes or stop() is called.
 * @param {RTCPeerConnection} pc
 * @param {KeepFreshOptions} options
 * @returns {Refresher}
 */
export function keepFresh(pc, options) {
  return new Refresher(pc, options);
}

/**
 * Refresher keeps one peer connection's credentials fresh. It is an EventTarget; every event is
 * a CustomEvent whose detail holds no credential:
 *
 * - "credentials": new credentials arrived, {expiresAt, lifetimeMs, changed}; changed is false
 *   when the endpoint answered the credential in use (it is then asked again later).
 * - "restart": ICE is being restarted, {reason: "expiry" | "ice-failed" | "disconnected" |
 *   "timeout" | "initial" | "manual"}.
 * - "restarted": the connection runs over the restarted ICE session, {reason, tookMs}.
 * - "retry": a fetch failed and will be retried, {attempt, status, retryAfterMs, delayMs, error}.
 * - "error": something else went wrong, {error}; the helper carries on.
 * - "stop": the helper stopped, {reason: "closed" | "stopped"}; "closed" within two seconds of
 *   pc.close(), which fires no event of its own.
 */
export class Refresher extends EventTarget {
  /** @type {RTCPeerConnection} */ #pc;
  /** @type {KeepFreshOptions} */ #opt;
  /** @type {IceCredentials | null} */ #current = null;
  #stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #refreshTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #disconnectedTimer;
  /** @type {ReturnType<typeof setInterval> | undefined} */ #closeWatch;
  /** @type {Promise<void> | null} */ #running = null;
  /** @type {string | null} */ #pending = null;
  #abort = new AbortController();
  /** @type {Set<() => void>} */ #wakers = new Set();
  #failures = 0;
  #onIceState;
  #onCandidate;
  /** Local candidates gathered since the newest credentials were applied, "address:port". @type {Set<string>} */
  #fresh = new Set();
  /** @type {(value: IceCredentials) => void} */ #resolveReady = () => {};
  /** @type {(reason: Error) => void} */ #rejectReady = () => {};

  /**
   * Settles when the first credentials are in pc's configuration (at once with
   * options.initial); rejects if the helper stops before. Fetch failures do not reject it: they
   * are retried.
   * @type {Promise<IceCredentials>}
   */
  ready;

  /**
   * @param {RTCPeerConnection} pc
   * @param {KeepFreshOptions} options
   */
  constructor(pc, options) {
    super();
    if (!options || typeof options.endpoint !== "string" || options.endpoint === "") {
      throw new TypeError("cfturn: keepFresh needs options.endpoint, the credential endpoint's URL");
    }
    const refreshAt = options.refreshAt ?? 0.6;
    if (!(refreshAt > 0 && refreshAt < 1)) {
      throw new RangeError("cfturn: refreshAt " + refreshAt + " must be above 0 and below 1, e.g. 0.6");
    }
    this.#pc = pc;
    this.#opt = {...options, refreshAt};
    this.ready = new Promise((resolve, reject) => { this.#resolveReady = resolve; this.#rejectReady = reject; });
    this.ready.catch(() => {}); // a page that never awaits ready is not told of an unhandled rejection
    this.#onIceState = () => this.#iceStateChanged();
    /** @param {RTCPeerConnectionIceEvent} e */
    this.#onCandidate = e => { if (e.candidate && e.candidate.port) this.#fresh.add(e.candidate.address + ":" + e.candidate.port); };
    pc.addEventListener("icecandidate", this.#onCandidate);
    pc.addEventListener("iceconnectionstatechange", this.#onIceState);
    pc.addEventListener("connectionstatechange", this.#onIceState);
    pc.addEventListener("signalingstatechange", this.#onIceState);
    // close() fires no event: look every few seconds, so the helper stops soon after it.
    this.#closeWatch = setInterval(() => this.#checkClosed(), closeWatchMs);
    if (options.initial) {
      this.#current = options.initial;
      this.#resolveReady(options.initial);
      this.#schedule(options.initial);
    } else {
      this.#trigger("initial");
    }
  }

  /** The credentials in use, or null before the first ones arrived. */
  get current() { return this.#current; }

  /** Whether the helper has stopped. */
  get stopped() { return this.#stopped; }

  /** Fetches new credentials and restarts ICE now, e.g. after the network changed. */
  refresh() { this.#trigger("manual"); }

  /** Stops the helper: no more fetches, timers or restarts. pc is left as it is. */
  stop() { this.#halt("stopped"); }

  /** @param {string} type @param {object} detail */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, {detail}));
  }

  #closed() {
    return this.#pc.signalingState === "closed" || this.#pc.connectionState === "closed";
  }

  /** @param {string} reason */
  #halt(reason) {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#disconnectedTimer);
    clearInterval(this.#closeWatch);
    this.#abort.abort();
    this.#rejectReady(new Error("cfturn: stopped (" + reason + ") before the first credentials arrived"));
    for (const wake of this.#wakers) wake();
    this.#pc.removeEventListener("icecandidate", this.#onCandidate);
    this.#pc.removeEventListener("iceconnectionstatechange", this.#onIceState);
    this.#pc.removeEventListener("connectionstatechange", this.#onIceState);
    this.#pc.removeEventListener("signalingstatechange", this.#onIceState);
    this.#emit("stop", {reason});
  }

  /** Checks whether pc closed (close() fires no event) and stops if so. @returns {boolean} */
  #checkClosed() {
    if (!this.#stopped && this.#closed()) this.#halt("closed");
    return this.#stopped;
  }

  /** @param {IceCredentials} creds */
  #schedule(creds) {
    clearTimeout(this.#refreshTimer);
    const elapsed = performance.now() - creds.receivedAt;
    const delay = Math.max(1000, creds.lifetimeMs * (this.#opt.refreshAt ?? 0.6) - elapsed);
    this.#refreshTimer = setTimeout(() => this.#trigger("expiry"), delay);
  }

  #iceStateChanged() {
    if (this.#checkClosed()) return;
    const state = this.#pc.iceConnectionState;
    if (state === "failed") {
      this.#trigger("ice-failed");
    } else if (state === "disconnected") {
      if (this.#disconnectedTimer === undefined) {
        this.#disconnectedTimer = setTimeout(() => {
          this.#disconnectedTimer = undefined;
          if (this.#pc.iceConnectionState === "disconnected") this.#trigger("disconnected");
        }, this.#opt.disconnectedMs ?? 4000);
      }
    } else {
      clearTimeout(this.#disconnectedTimer);
      this.#disconnectedTimer = undefined;
    }
    for (const wake of this.#wakers) wake();
  }

  /** Starts a refresh unless one runs; a trigger during a run makes one more run after it. @param {string} reason */
  #trigger(reason) {
    if (this.#checkClosed()) return;
    if (this.#running) {
      // A failure during a refresh for expiry needs a restart after it, whatever it fetched.
      if (reason !== "expiry") this.#pending = reason;
      return;
    }
    this.#running = this.#run(reason).catch(err => {
      if (!this.#stopped) this.#emit("error", {error: String(err && err.message || err)});
    }).finally(() => {
      this.#running = null;
      const next = this.#pending;
      this.#pending = null;
      if (next && !this.#stopped && this.#stillNeeded(next)) this.#trigger(next);
    });
  }

  /** Whether a restart asked for during another one is still needed after it. @param {string} reason */
  #stillNeeded(reason) {
    const state = this.#pc.iceConnectionState;
    if (reason === "ice-failed") return state === "failed";
    if (reason === "disconnected") return state === "disconnected" || state === "failed";
    return true;
  }

  /** @param {string} reason */
  async #run(reason) {
    if (reason !== "expiry" && reason !== "initial" && reason !== "manual") {
      // Restarts after failures back off, so a path that keeps failing is not hammered.
      if (this.#failures > 0) await this.#sleep(this.#backoff(this.#failures - 1));
      this.#failures++;
    }
    if (this.#stopped) return;
    const creds = await this.#fetch();
    if (this.#checkClosed()) return;
    const old = this.#current;
    const changed = !old || JSON.stringify(old.iceServers) !== JSON.stringify(creds.iceServers);
    this.#emit("credentials", {expiresAt: creds.expiresAt, lifetimeMs: creds.lifetimeMs, changed});
    if (!changed && reason === "expiry") {
      // The endpoint still serves the credential in use (its cache): ask again later.
      this.#current = creds;
      const retry = Math.max(1000, Math.min(30000, creds.lifetimeMs / 8));
      clearTimeout(this.#refreshTimer);
      this.#refreshTimer = setTimeout(() => this.#trigger("expiry"), retry);
      return;
    }
    this.#current = creds;
    this.#schedule(creds);
    if (reason === "initial" && this.#pc.iceGatheringState === "new" && !this.#pc.remoteDescription) {
      this.#apply(creds);
      this.#resolveReady(creds);
      return;
    }
    this.#apply(creds);
    this.#resolveReady(creds);
    await this.#restart(reason);
  }

  /** @param {IceCredentials} creds */
  #apply(creds) {
    this.#fresh = new Set();
    const config = this.#pc.getConfiguration();
    config.iceServers = creds.iceServers;
    this.#pc.setConfiguration(config);
  }

  /** Restarts ICE on the configuration already applied. @param {string} reason */
  async #restart(reason) {
    const started = performance.now();
    this.#emit("restart", {reason});
    this.#pc.restartIce();
    if (this.#opt.renegotiate) await this.#opt.renegotiate();
    const deadline = started + (this.#opt.restartTimeoutMs ?? 20000);
    while (!this.#stopped) {
      if (this.#checkClosed()) return;
      if (await this.#restartDone()) {
        this.#failures = 0;
        this.#emit("restarted", {reason, tookMs: Math.round(performance.now() - started)});
        return;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        this.#emit("error", {error: "cfturn: ICE restart (" + reason + ") did not reconnect within " +
          (this.#opt.restartTimeoutMs ?? 20000) + " ms; is the page's negotiationneeded handler sending the offer?"});
        this.#pending = "timeout";
        return;
      }
      await this.#sleep(Math.min(250, left));
    }
  }

  /**
   * Whether pc's traffic runs over a local candidate gathered since the newest credentials were
   * applied: only then is it on an allocation made with them. (Chrome stays "connected" on the
   * old pair while a restarted session checks, and a restart the other peer began may have
   * gathered with the old credentials.)
   */
  async #restartDone() {
    const pc = this.#pc;
    if (pc.signalingState !== "stable" || !pc.remoteDescription) return false;
    if (pc.iceConnectionState !== "connected" && pc.iceConnectionState !== "completed") return false;
    const stats = await pc.getStats();
    /** @type {any} */
    let selected = null;
    stats.forEach(s => {
      if (s.type === "transport" && s.selectedCandidatePairId) selected = stats.get(s.selectedCandidatePairId);
    });
    const local = selected && stats.get(selected.localCandidateId);
    if (!local) return false;
    return this.#fresh.has((local.address || local.ip) + ":" + local.port);
  }

  /** Fetches credentials, retrying with backoff and jitter until it gets some or stops. */
  async #fetch() {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fetchIceServers(this.#opt.endpoint, {...this.#opt, signal: this.#abort.signal});
      } catch (err) {
        if (this.#stopped) throw err;
        const e = err instanceof FetchError ? err : new FetchError(String(err), 0, 0);
        const retryAfterMs = Math.min(e.retryAfterMs, this.#opt.maxRetryAfterMs ?? 60000);
        // The backoff never sleeps past the credential in use: at most a quarter of its life left.
        const cur = this.#current;
        const left = cur ? cur.lifetimeMs - (performance.now() - cur.receivedAt) : Infinity;
        const backoff = Math.min(this.#backoff(attempt), Math.max(1000, left / 4));
        // Retry-After is a floor; the jitter spreads the browsers it told the same time.
        const base = Math.max(retryAfterMs, backoff);
        const delayMs = Math.round(base * (1 + 0.2 * Math.random()));
        this.#emit("retry", {attempt: attempt + 1, status: e.status, retryAfterMs, delayMs, error: e.message});
        await this.#sleep(delayMs);
        if (this.#checkClosed()) throw new Error("cfturn: stopped");
      }
    }
  }

  /** @param {number} attempt @returns {number} */
  #backoff(attempt) {
    const first = this.#opt.initialBackoffMs ?? 1000, most = this.#opt.maxBackoffMs ?? 30000;
    const full = Math.min(most, first * 2 ** Math.min(attempt, 30));
    return full / 2 + Math.random() * full / 2;
  }

  /** Sleeps ms, waking early when the helper stops. @param {number} ms */
  #sleep(ms) {
    return new Promise(resolve => {
      const done = () => { clearTimeout(t); this.#wakers.delete(wakeIfStopped); resolve(undefined); };
      const wakeIfStopped = () => { if (this.#stopped) done(); };
      const t = setTimeout(done, ms);
      this.#wakers.add(wakeIfStopped);
    });
  }
}
