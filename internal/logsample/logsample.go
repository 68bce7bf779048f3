// Package logsample logs lines of a kind sampled: the first Burst of a kind in each Interval,
// then, with the next line of that kind (or at Flush), one line with how many were not logged. A
// peer that provokes the same line without end so costs a few lines a minute, not one each time.
// Servers that face a network use it for what they refuse or fail; the kinds must be a small
// fixed set of strings or numbers (a reason or a status), never what a peer chose.
package logsample

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Config says what a Log writes.
type Config struct {
	Message  string        // each line logged, e.g. "turnrelay: refused"
	Unlogged string        // the count of lines not logged, e.g. "turnrelay: refusals not logged"
	KindKey  string        // the attribute that names the kind, e.g. "reason" or "status"; "" leaves it out
	Burst    int           // lines of a kind logged per interval
	Interval time.Duration // the window
}

// Log is a sampled logger. It is safe for concurrent use.
type Log struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time
	mu     sync.Mutex
	by     map[any]*window
}

type window struct {
	start   time.Time
	logged  int
	dropped int
}

// New returns a Log writing to l (nil: nowhere), reading the clock now (nil: time.Now).
func New(l *slog.Logger, now func() time.Time, cfg Config) *Log {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Log{cfg: cfg, logger: l, now: now, by: make(map[any]*window)}
}

// Log writes Config.Message with attrs at level, unless kind (a string or a number) was logged
// Burst times in the current interval; then it only counts it.
func (l *Log) Log(level slog.Level, kind any, attrs ...any) {
	now := l.now()
	l.mu.Lock()
	w := l.by[kind]
	var dropped int
	if w == nil || now.Sub(w.start) >= l.cfg.Interval || now.Before(w.start) {
		if w != nil {
			dropped = w.dropped
		}
		w = &window{start: now}
		l.by[kind] = w
	}
	log := w.logged < l.cfg.Burst
	if log {
		w.logged++
	} else {
		w.dropped++
	}
	l.mu.Unlock()
	ctx := context.Background()
	if dropped > 0 {
		l.unlogged(kind, dropped)
	}
	if log {
		if l.cfg.KindKey != "" {
			attrs = append(attrs, l.cfg.KindKey, kind)
		}
		l.logger.Log(ctx, level, l.cfg.Message, attrs...)
	}
}

func (l *Log) unlogged(kind any, n int) {
	attrs := []any{"count", n, "interval", l.cfg.Interval.String()}
	if l.cfg.KindKey != "" {
		attrs = append([]any{l.cfg.KindKey, kind}, attrs...)
	}
	l.logger.Log(context.Background(), slog.LevelWarn, l.cfg.Unlogged, attrs...)
}

// Flush logs the counts of lines not logged yet, e.g. when the server closes.
func (l *Log) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for kind, w := range l.by {
		if w.dropped > 0 {
			l.unlogged(kind, w.dropped)
			w.dropped = 0
		}
	}
}
