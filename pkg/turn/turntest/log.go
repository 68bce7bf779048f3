package turntest

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cfturn/cfturn/internal/logsample"
)

// WithLogger sets a logger that gets a warning for each failure the fake answers: a status of 400
// or more, a GraphQL answer with errors, or a connection a fault dropped. Each record holds the
// method, the path, the status and the start of the answer's error, never a header, a query
// string or a request body, so never a token or a key secret. It is sampled, as a server facing a
// network must be: the first 10 of a status a minute, then one line with how many more there
// were (Server.Close logs the last count). The default logs nothing.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

const (
	maxLoggedError     = 256 // bytes of a failed answer's body a record quotes
	failureLogBurst    = 10  // failures of one status logged a minute
	failureLogInterval = time.Minute
)

// answerLog records what a handler answered, for the failure log.
type answerLog struct {
	http.ResponseWriter
	status  int
	excerpt []byte // the start of a failed answer's body
	failure string // set by failed: an error answered with 200 (GraphQL)
	dropped bool
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
	if a.status >= 400 && len(a.excerpt) < maxLoggedError {
		a.excerpt = append(a.excerpt, b[:min(len(b), maxLoggedError-len(a.excerpt))]...)
	}
	return a.ResponseWriter.Write(b)
}

// Hijack lets a fault drop the connection through the log.
func (a *answerLog) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	a.dropped = true
	return http.NewResponseController(a.ResponseWriter).Hijack()
}

// Unwrap gives http.ResponseController the writer underneath.
func (a *answerLog) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// failed notes an error answered with 200 (GraphQL's way), for the failure log.
func failed(w http.ResponseWriter, msg string) {
	if a, ok := w.(*answerLog); ok && a.failure == "" {
		a.failure = msg
	}
}

// logged serves h through an answerLog and logs what failed, sampled: failureLogBurst of a
// status a minute, then the count of the rest.
func logged(l *logsample.Log, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := &answerLog{ResponseWriter: w}
		defer func() {
			// A handler that panics (http.ErrAbortHandler when a drop cannot hijack) is logged too.
			p := recover()
			var detail string
			switch {
			case a.dropped || p != nil:
				detail = "connection dropped"
			case a.failure != "":
				detail = a.failure
			case a.status >= 400:
				detail = string(a.excerpt)
			default:
				return
			}
			l.Log(slog.LevelWarn, strconv.Itoa(a.status), "method", r.Method, "path", printable(r.URL.Path),
				"status", a.status, "error", printable(strings.TrimSpace(detail)))
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
