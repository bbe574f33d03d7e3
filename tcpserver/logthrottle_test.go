package tcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logRecorder is a JSON log, safe for the logger and the test at once.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// logger logs what the server logs by default: info and above.
func (r *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(r, nil))
}

// records returns the records logged so far, each as its fields.
func (r *logRecorder) records(t *testing.T) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(r.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// tally counts the records about one kind of event, logged as msg and
// summed up as kind: how many lines they make, and how many events they
// stand for (one for each msg, and the "more" of each summary).
func tally(recs []map[string]any, msg, kind string) (lines, events int) {
	for _, r := range recs {
		switch {
		case r["msg"] == msg:
			lines++
			events++
		case r["kind"] == kind:
			lines++
			events += int(r["more"].(float64))
		}
	}
	return lines, events
}

func TestLogThrottle(t *testing.T) {
	var rec logRecorder
	const every = 100 * time.Millisecond
	lt := NewLogThrottle(rec.logger(), every)

	// A burst: the first at once, the rest counted. (A hundred: under a
	// loaded -race run, ten thousand outlasted the interval, and its end
	// told part of the burst before the test looked.)
	for i := range 100 {
		lt.Log(slog.LevelWarn, "things refused", "thing refused", "n", i)
		lt.Log(slog.LevelInfo, "other things", "other thing")
	}
	recs := rec.records(t)
	if len(recs) != 2 || recs[0]["msg"] != "thing refused" || recs[0]["n"] != 0.0 || recs[0]["level"] != "WARN" {
		t.Fatalf("at once: %v, want the first of each kind", recs)
	}
	// The interval's end tells how many more.
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.records(t)) < 4 && time.Now().Before(deadline) {
		time.Sleep(every / 10)
	}
	recs = rec.records(t)
	if len(recs) != 4 {
		t.Fatalf("after an interval: %v", recs)
	}
	for _, r := range recs[2:] {
		if r["more"] != 99.0 || !strings.HasPrefix(r["msg"].(string), "99 more ") || !strings.HasSuffix(r["msg"].(string), " in the last 0.1 s") {
			t.Fatalf("summary %v", r)
		}
	}
	if recs[2]["kind"] == "things refused" && recs[2]["level"] != "WARN" {
		t.Fatalf("summary at %v, want the kind's level", recs[2]["level"])
	}

	// Quiet for an interval: the window closes, and the next is logged at
	// once again.
	time.Sleep(3 * every)
	lt.Log(slog.LevelWarn, "things refused", "thing refused", "n", -1)
	if recs = rec.records(t); len(recs) != 5 || recs[4]["n"] != -1.0 {
		t.Fatalf("after a quiet interval: %v", recs[4:])
	}

	// Close tells what is counted, and nothing comes after it.
	lt.Log(slog.LevelWarn, "things refused", "thing refused")
	lt.Log(slog.LevelWarn, "things refused", "thing refused")
	lt.Close()
	recs = rec.records(t)
	if len(recs) != 6 || recs[5]["more"] != 2.0 {
		t.Fatalf("after Close: %v", recs[5:])
	}
	time.Sleep(2 * every)
	if n := len(rec.records(t)); n != 6 {
		t.Fatalf("%d records after Close, want 6", n)
	}

	var none *LogThrottle
	none.Log(slog.LevelError, "x", "y") // does nothing
	none.Close()
}

// Ten thousand members cut off as too slow, and ten thousand for
// flooding, make a handful of log lines that count every one. (Each test
// below takes less than LogEvery: the first line is logged at once, and
// Close tells the rest.)
func TestCutOffsAreLoggedWithCounts(t *testing.T) {
	var rec logRecorder
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: 1, Burst: 1, Backlog: -1, AnnounceLimit: 1, History: -1}, rec.logger())
	const n = 10000
	for range n {
		c, _ := connect(t, h, "")
		c.Leave(ReasonTooSlow)
	}
	for range n {
		c, m := connect(t, h, "")
		for range 5 {
			c.Handle([]byte("flood"))
		}
		if m.closed == "" {
			t.Fatal("a flooder was not cut off")
		}
		c.Leave("")
	}
	h.logs.Close()
	recs := rec.records(t)
	slowLines, slow := tally(recs, "member cut off as too slow", "members cut off as too slow")
	floodLines, flood := tally(recs, "member cut off for flooding", "members cut off for flooding")
	if slow != n || flood != n || slowLines != 2 || floodLines != 2 {
		t.Fatalf("logged %d slow cut-offs in %d lines, %d flood cut-offs in %d lines; want %d of each in 2 lines", slow, slowLines, flood, floodLines, n)
	}
	if len(recs) != 4 {
		t.Fatalf("%d log records, want 4: %v", len(recs), recs)
	}
	if st := h.Stats(); st.FloodKicks != n {
		t.Fatalf("%d flood kicks counted, want %d", st.FloodKicks, n)
	}
}

// Connections refused at accept are logged the same way, by reason.
func TestRefusalsAtAcceptAreLoggedWithCounts(t *testing.T) {
	var rec logRecorder
	s := startLimited(t, ConnLimits{MaxPerIP: 1, Log: rec.logger()})
	s.dialFrom("127.0.0.1")
	<-s.got
	const n = 200
	for range n {
		s.refused(s.dialFrom("127.0.0.1"), ErrTooManyFromIP)
	}
	s.lim.logs.Close()
	lines, refused := tally(rec.records(t), "connection refused at accept", "connections refused at accept (too many connections from your address)")
	if refused != n || lines != 2 {
		t.Fatalf("logged %d refusals in %d lines, want %d in 2", refused, lines, n)
	}
}

// A listener that fails with "too many open files" is retried, and the
// failures are logged the same way.
func TestFailedAcceptsAreLoggedWithCounts(t *testing.T) {
	var rec logRecorder
	l := &failingListener{fails: 6}
	var g group
	g.logs = NewLogThrottle(rec.logger(), LogEvery)
	err := g.serve(context.Background(), l, func(nc net.Conn) { nc.Close() })
	if err == nil || !strings.Contains(err.Error(), "listener gone") {
		t.Fatalf("serve = %v", err)
	}
	g.logs.Close()
	recs := rec.records(t)
	lines, failed := tally(recs, "accept failed; retrying", "failed accepts")
	if failed != 6 || lines != 2 || recs[0]["level"] != "WARN" || !strings.Contains(recs[0]["err"].(string), "too many open files") {
		t.Fatalf("logged %d failures in %d lines, want 6 in 2: %v", failed, lines, recs)
	}
}

// failingListener fails fails times with EMFILE, then for good.
type failingListener struct{ fails int }

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return nil, errors.New("listener gone")
}

func (l *failingListener) Close() error { return nil }
func (l *failingListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
}
