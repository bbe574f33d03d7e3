package tcpserver

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// LogEvery is how often a server logs about one kind of trouble at most
// (see [LogThrottle]).
const LogEvery = 10 * time.Second

// A LogThrottle logs what an attack causes (members cut off, connections
// refused, accepts failing) so that the operator sees it while it
// happens, without the log becoming the attack's amplifier. The first
// event of a kind is logged at once, in full; the ones that follow within
// the interval are only counted, and when it ends one line says how many
// ("12 more members cut off as too slow in the last 10 s") and a new
// interval begins. An interval with none ends quietly, and the next event
// of that kind is logged at once again. Its timers run only while events
// come: the last one fires an interval after the last event.
//
// A nil LogThrottle logs nothing. It is safe for concurrent use.
type LogThrottle struct {
	log   *slog.Logger
	every time.Duration

	mu     sync.Mutex
	kinds  map[string]*logWindow
	closed bool
}

// logWindow is one kind's interval: how many more events it has seen.
type logWindow struct {
	level slog.Level
	more  int
	timer *time.Timer
}

// NewLogThrottle returns a LogThrottle that logs to log at most once per
// every for each kind; a nil log logs nothing.
func NewLogThrottle(log *slog.Logger, every time.Duration) *LogThrottle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LogThrottle{log: log, every: every, kinds: make(map[string]*logWindow)}
}

// Log logs msg and args at level if no event of its kind was logged in
// the current interval, and otherwise counts it. kind names the events in
// the plural, for the line that counts them: "members cut off as too
// slow".
func (t *LogThrottle) Log(level slog.Level, kind, msg string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	if w := t.kinds[kind]; w != nil {
		w.more++
		t.mu.Unlock()
		return
	}
	w := &logWindow{level: level}
	if !t.closed {
		w.timer = time.AfterFunc(t.every, func() { t.end(kind) })
	}
	t.kinds[kind] = w
	t.mu.Unlock()
	t.log.Log(context.Background(), level, msg, args...)
}

// end ends kind's interval: it logs how many more there were, if any,
// and begins another.
func (t *LogThrottle) end(kind string) {
	t.mu.Lock()
	w := t.kinds[kind]
	if t.closed || w == nil {
		t.mu.Unlock()
		return
	}
	more := w.more
	if more == 0 {
		delete(t.kinds, kind)
		t.mu.Unlock()
		return
	}
	w.more = 0
	w.timer.Reset(t.every)
	t.mu.Unlock()
	t.tell(w.level, kind, more)
}

func (t *LogThrottle) tell(level slog.Level, kind string, more int) {
	t.log.Log(context.Background(), level, fmt.Sprintf("%d more %s in the last %s", more, kind, seconds(t.every)),
		"kind", kind, "more", more)
}

// Close logs what has been counted and not yet told, and stops the
// timers. After it, the first event of each kind is still logged, and
// the rest are not.
func (t *LogThrottle) Close() {
	if t == nil {
		return
	}
	type told struct {
		level slog.Level
		kind  string
		more  int
	}
	var list []told
	t.mu.Lock()
	t.closed = true
	for kind, w := range t.kinds {
		if w.timer != nil {
			w.timer.Stop()
		}
		if w.more > 0 {
			list = append(list, told{w.level, kind, w.more})
			w.more = 0
		}
	}
	t.mu.Unlock()
	for _, x := range list {
		t.tell(x.level, x.kind, x.more)
	}
}

// seconds writes d as the README does: "10 s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}
