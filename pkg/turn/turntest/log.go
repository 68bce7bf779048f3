package turntest

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cfturn/cfturn/internal/logsample"
)

// WithLogger sets a logger that gets a warning for each failure the fake answers: a status of 400
// or more, a GraphQL answer with errors, or a connection a fault dropped. Each record holds the
// method, the path, the status and the fake's own error message (never a body it was answering
// with, a header, a query string or a request body, so never a token, key secret or ICE
// credential). It is sampled, as a server facing a network must be: the first 10 of a status a
// minute, then one line with how many more there were (Server.Close logs the last count). The
// default logs nothing.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

const (
	maxLoggedError     = 256 // bytes of a logged path or message
	failureLogBurst    = 10  // failures of one status logged a minute
	failureLogInterval = time.Minute
)

// answerLog records what a handler answered, for the failure log.
type answerLog struct {
	http.ResponseWriter
	log     *logsample.Log
	r       *http.Request
	status  int
	failure string // the fake's own message for the failure, set by noteFailure
	done    bool   // the failure was logged
}

func (a *answerLog) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
	a.ResponseWriter.WriteHeader(status)
}

func (a *answerLog) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.ResponseWriter.Write(b)
}

// Hijack logs the drop first, so the line is written before the client sees the connection close.
func (a *answerLog) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	a.report("connection dropped")
	return http.NewResponseController(a.ResponseWriter).Hijack()
}

// Unwrap gives http.ResponseController the writer underneath.
func (a *answerLog) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// report logs the failure once.
func (a *answerLog) report(detail string) {
	if a.done {
		return
	}
	a.done = true
	a.log.Log(slog.LevelWarn, a.status, "method", a.r.Method, "path", printable(a.r.URL.Path),
		"error", printable(strings.TrimSpace(detail)))
}

// noteFailure records the fake's own message for a failure it answers, for the failure log.
func noteFailure(w http.ResponseWriter, msg string) {
	if a, ok := w.(*answerLog); ok && a.failure == "" {
		a.failure = msg
	}
}

// plainError is http.Error that the failure log quotes.
func plainError(w http.ResponseWriter, msg string, status int) {
	noteFailure(w, msg)
	http.Error(w, msg, status)
}

// logged serves h through an answerLog and logs what failed, sampled: failureLogBurst of a
// status a minute, then the count of the rest.
func logged(l *logsample.Log, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := &answerLog{ResponseWriter: w, log: l, r: r}
		defer func() {
			// A handler that panics (http.ErrAbortHandler when a drop cannot hijack) is logged too.
			p := recover()
			switch {
			case p != nil:
				a.report("connection dropped")
			case a.failure != "":
				a.report(a.failure)
			case a.status >= 400:
				// An answer the fake did not word itself (a fault's body): its status, never its body.
				a.report(http.StatusText(a.status))
			}
			if p != nil {
				panic(p)
			}
		}()
		h.ServeHTTP(a, r)
	})
}

// printable keeps a logged value on one line of valid text, at most maxLoggedError bytes.
func printable(s string) string {
	if len(s) > maxLoggedError {
		s = s[:maxLoggedError]
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
