package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"strings"

	"github.com/cfturn/cfturn/pkg/turn"
)

// Exit codes. exitCode is the one place that applies the rule, and exitStatusHelp states it in
// cfturn --help and, word for word up to line breaks, in the README (a test checks both).
const (
	exitOK    = 0
	exitAPI   = 1 // the API failed: it answered with an error, or could not be reached in time
	exitUsage = 2 // cfturn was called wrongly, or the local system refused: flag, argument, variable, file, port
)

const exitStatusHelp = `Exit status: 0 success; 1 the API failed (it answered with an error, or could not be
reached in time); 2 a usage or local error (a flag, argument or environment variable, a file that
cannot be read or created, an address that cannot be listened on).`

// exitCode classifies err by the rule of exitStatusHelp. Anything not known to be local counts as
// an API failure.
func exitCode(err error) int {
	var usage usageError
	var path *fs.PathError
	var op *net.OpError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage),
		errors.Is(err, turn.ErrInvalidArgument), errors.Is(err, turn.ErrNoAPIToken),
		errors.As(err, &path),                    // a local file: --out, --key-secret-file
		errors.As(err, &op) && op.Op == "listen": // serve-fake, serve-ice: a port in use, a bad address
		return exitUsage
	}
	return exitAPI
}

// usageError marks an error in how cfturn was called or in its local environment.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// reworded gives an error new text and keeps it in the chain, for errors.Is and exitCode.
type reworded struct {
	msg string
	err error
}

func (e *reworded) Error() string { return e.msg }
func (e *reworded) Unwrap() error { return e.err }

// renameOption rewrites the library's name for a setting (e.g. "WithAPIToken") as what the user
// gave it through (e.g. "--token"), and drops the library's "turn: " prefix.
func renameOption(err error, option, name string) error {
	msg := strings.TrimPrefix(err.Error(), "turn: ")
	msg = strings.ReplaceAll(msg, "turn."+option, name)
	return usageError{&reworded{strings.ReplaceAll(msg, option, name), err}}
}

// cliWording rewrites the advice in pkg/turn's messages, written for Go callers, for someone at a
// terminal: flags and environment variables instead of options, functions and Go expressions.
// Longer phrases come first so that they win over their parts.
var cliWording = strings.NewReplacer(
	"set AccountID, turn.WithAccountID or CLOUDFLARE_ACCOUNT_ID", "pass --account-id or set CLOUDFLARE_ACCOUNT_ID",
	"pass turn.WithAPIToken or set CLOUDFLARE_API_TOKEN", "set CLOUDFLARE_API_TOKEN",
	"credentials go in WithAPIToken", "the API token goes in CLOUDFLARE_API_TOKEN",
	"turn.WithAPIToken", "CLOUDFLARE_API_TOKEN",
	"WithAPIToken", "CLOUDFLARE_API_TOKEN",
	"turn.WithAccountID", "--account-id",
	"WithAccountID", "--account-id",
	"WithICEBaseURL", "--ice-base-url",
	"WithBaseURL", "--base-url",
	"e.g. 24*time.Hour", "e.g. --ttl 24h",
	"as listed by ListKeys", "as listed by cfturn keys list",
	"returned once by CreateKey", "printed once by cfturn keys create",
	"invalid argument: custom identifier", "invalid argument: --custom-identifier",
)

// errorLine is err as the one line cfturn prints after "cfturn: ": without a library package's
// prefix, in CLI terms, with a hint when one is known, and safe for a terminal.
func (a *app) errorLine(err error) string {
	msg := err.Error()
	for _, prefix := range []string{"turn: ", "turntest: ", "turnrelay: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	return printable(cliWording.Replace(msg) + a.hint(err))
}

// hint adds the library's hint for a refused token or key secret, or explains a 404: the commonest
// wrong --base-url (a server's root instead of its API root, which answers a key operation without
// the API's JSON), an --ice-base-url that is not the ICE API's root, or a key that a restarted
// fake no longer has.
func (a *app) hint(err error) string {
	var apiErr *turn.APIError
	if !errors.As(err, &apiErr) {
		return ""
	}
	if h := apiErr.Hint(); h != "" {
		return " (hint: " + cliWording.Replace(strings.ReplaceAll(h, "that CreateKey returned", "that cfturn keys create printed")) + ")"
	}
	if apiErr.StatusCode != 404 {
		return ""
	}
	ice := strings.HasPrefix(apiErr.Path, "/turn/")
	if ice && a.iceBaseURL != "" && !strings.HasSuffix(strings.TrimSuffix(a.iceBaseURL, "/"), "/v1") {
		return fmt.Sprintf(" (hint: --ice-base-url %s is probably not the ICE API's root, which ends in /v1: %s, or a fake's http://127.0.0.1:8787/v1)",
			strings.TrimSuffix(a.iceBaseURL, "/"), turn.DefaultICEBaseURL)
	}
	root := strings.TrimSuffix(a.baseURL, "/")
	if !ice && root != "" && errors.Is(err, turn.ErrUnexpectedResponse) && !strings.HasSuffix(root, "/client/v4") {
		return fmt.Sprintf(" (hint: --base-url %s probably lacks /client/v4; the key API root is e.g. %s/client/v4)", root, root)
	}
	if ice && a.iceBaseURL != "" {
		root = a.iceBaseURL
	}
	if u, err := url.Parse(root); err == nil && root != "" && isLoopbackHost(u.Hostname()) {
		return " (hint: if this is cfturn serve-fake, its keys live in memory and are gone once it restarts: remove the old key files and create the key again with cfturn keys create)"
	}
	return ""
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
