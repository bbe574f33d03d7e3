//go:build linux

package tcpserver

import (
	"runtime"
	"testing"
	"time"
)

// Idle members are parked in the server's epoll set: however many there
// are, they add no goroutine, and every way a parked connection can end
// still ends it (the client hangs up, the server cuts it off, shutdown).
func TestIdleMembersHoldNoGoroutine(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: 1, Burst: 2, Backlog: 5, AnnounceLimit: 1}, Config{})
	settle := func() int {
		var n int
		for range 50 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		return n
	}
	watcher := ts.dial(t)
	base := settle()

	const n = 60
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = ts.dial(t)
	}
	clients[n-1].sync() // every earlier join has been handled
	if got := settle(); got > base+5 {
		t.Fatalf("%d goroutines with %d more idle members, %d before: idle members are not parked", got, n, base)
	}

	// Parked, then woken by the client hanging up: it leaves.
	gone := clients[0]
	gone.conn.Close()
	watcher.sync()
	waitFor(t, func() bool { return ts.hub.Stats().Clients["tcp"] == n })

	// Parked, then cut off by the server for flooding: the reader that
	// sees the flood ends it while others stay parked.
	flooder := clients[1]
	for range 40 {
		flooder.conn.Write([]byte("flood\r\n"))
	}
	flooder.closed()
	waitFor(t, func() bool { return ts.hub.Stats().Clients["tcp"] == n-1 })

	// Shutdown reaches the parked ones: each gets the notice, and Serve
	// returns (startServer's cleanup checks that it does).
	ts.stop(t)
	for _, c := range clients[2:] {
		lines := c.closed()
		if len(lines) == 0 || lines[len(lines)-1] != "*** server shutting down" {
			t.Fatalf("%s: last lines %q, want the shutdown notice", c.name, lines)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
