package natsrelay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"chatbridge/tcpserver"
)

// TestStartupWithManyRooms measures how long a node with --data takes to
// start on a data directory of many rooms of many lines: the embedded
// server reading its files, the relay setting up. The README's figure is
// CHATBRIDGE_STARTUP_ROOMS=1000 CHATBRIDGE_STARTUP_LINES=10000 (ten
// million lines, 2.3 GB); by default it is 100 rooms of 1,000 lines.
func TestStartupWithManyRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a data directory")
	}
	rooms, lines := envInt("CHATBRIDGE_STARTUP_ROOMS", 100), envInt("CHATBRIDGE_STARTUP_LINES", 1000)
	dir := os.Getenv("CHATBRIDGE_STARTUP_DIR") // to keep it, and measure again
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config{Insecure: true, Required: true, HistoryKeep: lines, HistoryBytes: 8 << 30, NodeID: "n1"}
	start := func() (*Embedded, *Relay, time.Duration) {
		t0 := time.Now()
		e, err := StartEmbedded(EmbedConfig{Dir: dir}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the embedded server started in %v", time.Since(t0).Round(time.Millisecond))
		c := cfg
		c.InProcess = e.Server()
		r, err := New(c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		return e, r, time.Since(t0)
	}
	e, r, _ := start()
	t0 := time.Now()
	for room := range rooms {
		if room == 0 && r.index.get("room0") != nil {
			if got, _, _ := r.Lines(context.Background(), "room0", tcpserver.LineKey{}, 1); len(got) > 0 {
				break // filled by an earlier run
			}
		}
		fillFrom(t, r, fmt.Sprint("room", room), lines, room*lines)
	}
	waitFor(t, "the stream to hold every line", func() bool {
		st, err := r.js.Stream(context.Background(), r.streamName())
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == uint64(rooms*lines)
	})
	t.Logf("%d rooms of %d lines written in %v", rooms, lines, time.Since(t0).Round(time.Millisecond))
	r.Close()
	e.Shutdown()

	e, r, took := start()
	defer e.Shutdown()
	defer r.Close()
	t0 = time.Now()
	got, more, err := r.Lines(context.Background(), "room7", tcpserver.LineKey{}, 20)
	if err != nil || len(got) != 20 || !more {
		t.Fatalf("room7 after the restart: %d lines, more %v, err %v", len(got), more, err)
	}
	t.Logf("started on %d rooms of %d lines in %v; a room's first read of 20 lines %v",
		rooms, lines, took.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("start took %v, want under 2 s", took)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
