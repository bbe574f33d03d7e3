package main

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBoundDialsTakeTheirPortAtConnect: a member dialled from a source
// address of its own takes its port at connect (see bindNoPort), so that
// members of every source address can still connect once the ports of
// the range are all in use by some address.
func TestBoundDialsTakeTheirPortAtConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &dialer{}
	for _, src := range []netip.Addr{netip.MustParseAddr("127.0.0.2"), {}} {
		c, err := d.netDialer(src).DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT) })
		c.Close()
		if gerr != nil {
			t.Fatal(gerr)
		}
		if want := map[bool]int{true: 1, false: 0}[src.IsValid()]; v != want {
			t.Errorf("from %v: IP_BIND_ADDRESS_NO_PORT is %d, want %d", src, v, want)
		}
	}
}
