package turn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cfturn/cfturn/pkg/turn"
	"github.com/cfturn/cfturn/pkg/turn/turntest"
)

// faultOp is one client operation in the fault matrix.
type faultOp struct {
	id     string // operationId in openapi/calls.yaml
	create bool   // under the create-retry rule
	call   func(ctx context.Context, c *turn.Client, k turn.KeyWithSecret, username string) error
}

var faultOps = []faultOp{
	{"createTurnKey", true, func(ctx context.Context, c *turn.Client, _ turn.KeyWithSecret, _ string) error {
		_, err := c.CreateKey(ctx, turn.CreateKeyParams{Name: "matrix"})
		return err
	}},
	{"listTurnKeys", false, func(ctx context.Context, c *turn.Client, _ turn.KeyWithSecret, _ string) error {
		_, err := c.ListKeys(ctx, turn.ListKeysParams{})
		return err
	}},
	{"getTurnKey", false, func(ctx context.Context, c *turn.Client, k turn.KeyWithSecret, _ string) error {
		_, err := c.GetKey(ctx, turn.KeyParams{KeyID: k.ID})
		return err
	}},
	{"updateTurnKey", false, func(ctx context.Context, c *turn.Client, k turn.KeyWithSecret, _ string) error {
		_, err := c.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: k.ID, Name: "renamed"})
		return err
	}},
	{"deleteTurnKey", false, func(ctx context.Context, c *turn.Client, k turn.KeyWithSecret, _ string) error {
		_, err := c.DeleteKey(ctx, turn.KeyParams{KeyID: k.ID})
		return err
	}},
	{"generateIceServers", false, func(ctx context.Context, c *turn.Client, k turn.KeyWithSecret, _ string) error {
		_, err := c.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: k.ID, KeySecret: k.Secret, TTL: time.Minute})
		return err
	}},
	{"revokeIceCredential", false, func(ctx context.Context, c *turn.Client, k turn.KeyWithSecret, u string) error {
		return c.RevokeICECredential(ctx, turn.RevokeICECredentialParams{KeyID: k.ID, KeySecret: k.Secret, Username: u})
	}},
}

// outcome is what a fault must lead to: success or an error class, after so many attempts.
type outcome struct {
	class    error // nil: the call succeeds
	attempts int
}

var (
	retried   = outcome{nil, 2}
	serverErr = outcome{turn.ErrServer, 1}
)

func (o outcome) String() string {
	if o.class == nil {
		return fmt.Sprintf("ok after %d", o.attempts)
	}
	return fmt.Sprintf("%v after %d", o.class, o.attempts)
}

type faultRow struct {
	name   string
	fault  turntest.Fault
	opts   []turn.Option
	other  outcome // GET, PUT, DELETE and the ICE calls
	create outcome // POST create: retried only when surely unprocessed
	// except holds outcomes of single operations that differ from other.
	except map[string]outcome
}

// goneOnRetry: a DELETE whose answer was lost after the key was deleted is retried, and the retry
// finds no key. The key is gone either way; the caller sees ErrNotFound.
var goneOnRetry = map[string]outcome{"deleteTurnKey": {turn.ErrNotFound, 2}}

// noBodyNeeded: revoke's success carries no body, so a broken 2xx body does not matter.
var noBodyNeeded = map[string]outcome{"revokeIceCredential": {nil, 1}}

func faultRows(redirect string) []faultRow {
	unexpected := outcome{turn.ErrUnexpectedResponse, 1}
	return []faultRow{
		{name: "429 with Retry-After", fault: turntest.Fault{Status: 429, RetryAfter: "1"}, other: retried, create: retried},
		{name: "429 without Retry-After", fault: turntest.Fault{Status: 429}, other: retried, create: retried},
		{name: "500", fault: turntest.Fault{Status: 500, AfterProcessing: true}, other: retried, create: serverErr, except: goneOnRetry},
		{name: "502", fault: turntest.Fault{Status: 502, AfterProcessing: true}, other: retried, create: serverErr, except: goneOnRetry},
		{name: "503 without Retry-After", fault: turntest.Fault{Status: 503}, other: retried, create: serverErr},
		{name: "503 with Retry-After", fault: turntest.Fault{Status: 503, RetryAfter: "1"}, other: retried, create: retried},
		{name: "504", fault: turntest.Fault{Status: 504, AfterProcessing: true}, other: retried, create: serverErr, except: goneOnRetry},
		{name: "HTML 502 page", fault: turntest.Fault{Status: 502, Body: turntest.BodyHTML, AfterProcessing: true}, other: retried, create: serverErr, except: goneOnRetry},
		{name: "empty body", fault: turntest.Fault{Body: turntest.BodyEmpty}, other: unexpected, create: unexpected, except: noBodyNeeded},
		{name: "truncated JSON", fault: turntest.Fault{Body: turntest.BodyTruncated}, other: unexpected, create: unexpected, except: noBodyNeeded},
		{name: "success false with 200", fault: turntest.Fault{Body: turntest.BodySuccessFalse}, other: unexpected, create: unexpected, except: noBodyNeeded},
		{name: "body over the cap", fault: turntest.Fault{Body: turntest.BodyOversize}, other: unexpected, create: unexpected},
		{
			// The per-attempt timeout leaves room for a normal answer on a loaded machine under the
			// race detector; the fault's delay is far past it.
			name: "slow server past the timeout", fault: turntest.Fault{Delay: 4 * time.Second},
			opts:  []turn.Option{turn.WithTimeout(time.Second)},
			other: retried, create: outcome{context.DeadlineExceeded, 1}, except: goneOnRetry,
		},
		{
			name: "dropped connection", fault: turntest.Fault{Drop: true, AfterProcessing: true},
			other: retried, create: outcome{errDropped, 1}, except: goneOnRetry,
		},
		{name: "redirect to another host", fault: turntest.Fault{RedirectTo: redirect}, other: unexpected, create: unexpected},
	}
}

// errDropped stands for the error class of a connection closed without an answer; see isDropped.
var errDropped = errors.New("connection dropped")

func isDropped(err error) bool {
	var apiErr *turn.APIError
	return err != nil && !errors.As(err, &apiErr) && (strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset"))
}

// The fault matrix: every fault against every operation. It checks the error class, the number of
// attempts the server saw, that create never leaves more than one key, and — over everything the
// client emitted (errors in every format, debug logs) — that no credential leaked.
func TestFaultMatrix(t *testing.T) {
	var stolen atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		if r.Header.Get("Authorization") != "" {
			t.Errorf("Authorization header reached another host")
		}
	}))
	defer elsewhere.Close()

	for _, row := range faultRows(elsewhere.URL + "/elsewhere") {
		for _, op := range faultOps {
			t.Run(row.name+"/"+op.id, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) { faultCase(t, row, op) })
			})
		}
	}
	t.Cleanup(func() {
		if n := stolen.Load(); n != 0 {
			t.Errorf("the client followed %d redirects to another host", n)
		}
	})
}

// faultCase runs one fault against one operation in a synctest bubble: the waits the fault
// causes (Retry-After, a slow server, the per-attempt timeout) take no real time.
func faultCase(t *testing.T, row faultRow, op faultOp) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := setupInBubble(t, turntest.New(), append([]turn.Option{turn.WithLogger(logger)}, row.opts...)...)
	e.contract.RequestsOnly = true // the faults break the contract on purpose
	ctx := context.Background()

	key, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: "target"})
	if err != nil {
		t.Fatal(err)
	}
	ice, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: key.ID, KeySecret: key.Secret, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	username := ice.Servers[1].Username
	keysBefore := len(e.fake.Keys(e.fake.AccountID()))
	before := e.fake.Requests()[op.id]

	ft := row.fault
	ft.Operation = turntest.Operation(op.id)
	e.fake.InjectFault(ft)
	err = op.call(ctx, e.client, key, username)

	want := row.other
	if op.create {
		want = row.create
	}
	if w, ok := row.except[op.id]; ok {
		want = w
	}
	attempts := e.fake.Requests()[op.id] - before
	switch {
	case want.class == nil && err != nil:
		t.Errorf("want %v, got error %v", want, err)
	case want.class == errDropped && !isDropped(err):
		t.Errorf("want a dropped-connection error, got %v", err)
	case want.class != nil && want.class != errDropped && !errors.Is(err, want.class):
		t.Errorf("want %v, got %v", want, err)
	}
	if attempts != want.attempts {
		t.Errorf("server saw %d attempts, want %d (err: %v)", attempts, want.attempts, err)
	}
	if op.create {
		if added := len(e.fake.Keys(e.fake.AccountID())) - keysBefore; added > 1 || (want.class == nil && added != 1) {
			t.Errorf("create left %d new keys", added)
		}
	}

	logMu.Lock()
	emitted := logs.String()
	logMu.Unlock()
	if err != nil {
		emitted += fmt.Sprintf("%v\n%+v\n%#v\n%s\n", err, err, err, err.Error())
	}
	if !strings.Contains(emitted, `"msg":"turn: attempt"`) {
		t.Error("no debug record per attempt")
	}
	for _, secret := range []string{e.fake.Token(), key.Secret.Reveal(), username, ice.Servers[1].Credential.Reveal()} {
		if strings.Contains(emitted, secret) {
			t.Fatalf("a credential leaked into what the client emitted:\n%s", emitted)
		}
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A create whose connection is refused never reached a server, so it is retried; the attempts are
// counted from the debug log, since no server sees them.
func TestCreateRetriedWhenConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(testToken), turn.WithAccountID(testAccount),
		turn.WithBaseURL("http://"+addr+"/client/v4"), turn.WithBackoff(time.Millisecond, time.Millisecond), turn.WithRetry(2),
		turn.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateKey(context.Background(), turn.CreateKeyParams{})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("%v, want connection refused", err)
	}
	if n := strings.Count(logs.String(), "turn: attempt"); n != 3 {
		t.Errorf("%d attempts, want 3 (1 + WithRetry(2))\n%s", n, logs.String())
	}
	if strings.Contains(logs.String()+err.Error(), testToken) {
		t.Error("token leaked")
	}
}

func TestRetryOffAndRetryAfterCap(t *testing.T) {
	e := setup(t, turn.WithRetry(0))
	e.fake.InjectFault(turntest.Fault{Operation: "listTurnKeys", Status: 503, RetryAfter: "1"})
	_, err := e.client.ListKeys(context.Background(), turn.ListKeysParams{})
	var apiErr *turn.APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != time.Second || apiErr.Attempts != 1 {
		t.Fatalf("WithRetry(0): %v (%+v)", err, apiErr)
	}

	e = setup(t, turn.WithRetryAfterMax(time.Second))
	e.fake.InjectFault(turntest.Fault{Operation: "listTurnKeys", Status: 429, RetryAfter: "120"})
	start := time.Now()
	_, err = e.client.ListKeys(context.Background(), turn.ListKeysParams{})
	if !errors.Is(err, turn.ErrRateLimited) || time.Since(start) > 5*time.Second {
		t.Fatalf("Retry-After over the cap: %v after %v, want ErrRateLimited at once", err, time.Since(start))
	}
}

// A wait that would end past the context's deadline is not started: the call returns the last
// error at once.
func TestRetryStopsAtDeadline(t *testing.T) {
	e := setup(t)
	e.fake.InjectFault(turntest.Fault{Operation: "getTurnKey", Status: 503, RetryAfter: "20", Count: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.client.GetKey(ctx, turn.KeyParams{KeyID: testKeyID})
	if !errors.Is(err, turn.ErrServer) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want the last ErrServer, returned before the deadline", err)
	}
	if n := e.fake.Requests()["getTurnKey"]; n != 1 {
		t.Errorf("%d attempts; want 1", n)
	}
	if ctx.Err() != nil {
		t.Error("returned only after the deadline; want at once")
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	e := setup(t, turn.WithRetry(0))
	when := time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)
	e.fake.InjectFault(turntest.Fault{Operation: "listTurnKeys", Status: 429, RetryAfter: when})
	_, err := e.client.ListKeys(context.Background(), turn.ListKeysParams{})
	var apiErr *turn.APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter < 8*time.Second || apiErr.RetryAfter > 10*time.Second {
		t.Fatalf("Retry-After %q read as %v", when, apiErr.RetryAfter)
	}
}

// Many goroutines share one Client against the fake; run with -race.
func TestConcurrentUse(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := e.client.CreateKey(ctx, turn.CreateKeyParams{Name: fmt.Sprint("k", i)})
			if err != nil {
				errs <- err
				return
			}
			for range 4 {
				if _, err := e.client.GenerateICEServers(ctx, turn.GenerateICEServersParams{KeyID: k.ID, KeySecret: k.Secret, TTL: time.Minute}); err != nil {
					errs <- err
				}
				if _, err := e.client.ListKeys(ctx, turn.ListKeysParams{}); err != nil {
					errs <- err
				}
			}
			if _, err := e.client.UpdateKey(ctx, turn.UpdateKeyParams{KeyID: k.ID, Name: "done"}); err != nil {
				errs <- err
			}
			if _, err := e.client.DeleteKey(ctx, turn.KeyParams{KeyID: k.ID}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(e.fake.Keys(e.fake.AccountID())); n != 0 {
		t.Errorf("%d keys left", n)
	}
}

// Cancelled while waiting to retry: the error matches the cancellation and keeps the last answer.
func TestCancelDuringBackoffKeepsLastError(t *testing.T) {
	e := setup(t)
	e.fake.InjectFault(turntest.Fault{Operation: "getTurnKey", Status: 503, RetryAfter: "1", Count: 10})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel as soon as the first attempt has been answered and logged, so the cancellation
	// lands in the wait before the retry however slow the machine is.
	c, err := turn.NewClient(turn.WithGetenv(nil), turn.WithAPIToken(e.fake.Token()), turn.WithAccountID(e.fake.AccountID()),
		turn.WithBaseURL(e.apiBase), turn.WithICEBaseURL(e.iceBase),
		turn.WithLogger(slog.New(cancelOnRecord{cancel})))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetKey(ctx, turn.KeyParams{KeyID: testKeyID})
	var apiErr *turn.APIError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &apiErr) || apiErr.StatusCode != 503 {
		t.Fatalf("%v: want context.Canceled and the last *APIError (503)", err)
	}
}

// One debug record per attempt, with the operation, method, path template, status, attempt,
// duration and cf-ray.
func TestDebugLogPerAttempt(t *testing.T) {
	var logs bytes.Buffer
	e := setup(t, turn.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	e.fake.InjectFault(turntest.Fault{Operation: "getTurnKey", Status: 502})
	k, err := e.client.CreateKey(context.Background(), turn.CreateKeyParams{})
	if err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if _, err := e.client.GetKey(context.Background(), turn.KeyParams{KeyID: k.ID}); err != nil {
		t.Fatal(err)
	}
	var want []map[string]any
	for i, status := range []int{502, 200} {
		want = append(want, map[string]any{"msg": "turn: attempt", "level": "DEBUG", "op": "get key", "method": "GET",
			"path": "/accounts/{account_id}/calls/turn_keys/{key_id}", "attempt": float64(i + 1), "status": float64(status)})
	}
	for i, rec := range checkAttemptRecords(t, logs.String(), want) {
		if rec["cf_ray"] == "" || rec["duration"] == nil {
			t.Errorf("record %d lacks cf_ray or duration: %v", i, rec)
		}
	}
	if strings.Contains(logs.String(), k.ID) || strings.Contains(logs.String(), e.fake.Token()) {
		t.Errorf("the records hold the concrete path or the token: %s", logs.String())
	}
}

// checkAttemptRecords reads the JSON debug records in logs, one a line, and checks that there is
// one per entry of want, each with want's fields (a nil value: the field is absent).
func checkAttemptRecords(t *testing.T, logs string, want []map[string]any) []map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d records for %d attempts:\n%s", len(lines), len(want), logs)
	}
	recs := make([]map[string]any, len(lines))
	for i, line := range lines {
		if err := json.Unmarshal([]byte(line), &recs[i]); err != nil {
			t.Fatal(err)
		}
		for k, v := range want[i] {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v", i, k, recs[i][k], v)
			}
		}
	}
	return recs
}

// cancelOnRecord is a slog.Handler that cancels a context at the first debug record it gets.
type cancelOnRecord struct{ cancel context.CancelFunc }

func (h cancelOnRecord) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOnRecord) Handle(context.Context, slog.Record) error {
	h.cancel()
	return nil
}
func (h cancelOnRecord) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h cancelOnRecord) WithGroup(string) slog.Handler      { return h }
