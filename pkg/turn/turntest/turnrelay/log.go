package turnrelay

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// refusalLog logs the relay's refusals, sampled: the first refusalLogBurst of a reason in each
// refusalLogInterval, then one line with how many more there were. A client that is refused
// without end so costs a few lines a minute, not one per packet. Reasons are a small fixed set.
type refusalLog struct {
	logger *slog.Logger
	now    func() time.Time
	mu     sync.Mutex
	by     map[string]*refusalWindow
}

type refusalWindow struct {
	start   time.Time
	logged  int
	dropped int
}

func newRefusalLog(l *slog.Logger, now func() time.Time) *refusalLog {
	return &refusalLog{logger: l, now: now, by: make(map[string]*refusalWindow)}
}

// refuse logs "turnrelay: refused" with reason and attrs, unless this reason was logged
// refusalLogBurst times in the current interval; then it only counts it.
func (l *refusalLog) refuse(level slog.Level, reason string, attrs ...any) {
	now := l.now()
	l.mu.Lock()
	w := l.by[reason]
	var dropped int
	if w == nil || now.Sub(w.start) >= refusalLogInterval || now.Before(w.start) {
		if w != nil {
			dropped = w.dropped
		}
		w = &refusalWindow{start: now}
		l.by[reason] = w
	}
	log := w.logged < refusalLogBurst
	if log {
		w.logged++
	} else {
		w.dropped++
	}
	l.mu.Unlock()
	ctx := context.Background()
	if dropped > 0 {
		l.logger.Log(ctx, slog.LevelWarn, "turnrelay: refusals not logged", "reason", reason, "count", dropped, "interval", refusalLogInterval.String())
	}
	if log {
		l.logger.Log(ctx, level, "turnrelay: refused", append(attrs, "reason", reason)...)
	}
}

// flush logs the counts of refusals not logged yet, when the relay closes.
func (l *refusalLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for reason, w := range l.by {
		if w.dropped > 0 {
			l.logger.Warn("turnrelay: refusals not logged", "reason", reason, "count", w.dropped, "interval", refusalLogInterval.String())
			w.dropped = 0
		}
	}
}
