package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A member's connection that the node cut is closed by the load process
// at once, not left to the garbage collector: the killed node's members,
// 3,800 a process at full size, kept their descriptors on top of the
// members held, and the process ran out of them ("too many open files")
// for the members coming back. A connection the other side closed and
// this side did not is in CLOSE_WAIT (/proc/net/tcp state 08).
func TestACutConnectionIsClosedAtOnce(t *testing.T) {
	dead, room := startFakeNode(t, "cut"), startFakeNode(t, "welcome")
	l := startLoadOn(t, false, dead, room)
	waitReport(t, l, func(r loadReport) bool { return r.Back == 1 })
	_, port, err := net.SplitHostPort(dead.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	remote := fmt.Sprintf(":%04X", p) // the end of rem_address
	// By the time the member is back, its old connection was closed:
	// at once, before it dialled again.
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 3 && strings.HasSuffix(f[2], remote) && f[3] == "08" {
			t.Fatalf("the connection the node cut is still open on the load's side (CLOSE_WAIT): %s", line)
		}
	}
}
