package main

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestEndpointForSpreadsTheMix(t *testing.T) {
	tcp := []endpoint{{given: "t0"}, {given: "t1"}}
	ws := []endpoint{{ws: true, given: "w0"}}
	tests := []struct {
		mix    float64
		wantWS int // of 100 clients
	}{{0, 0}, {0.25, 25}, {0.5, 50}, {1, 100}}
	for _, tt := range tests {
		d := newDialer(tcp, ws, tt.mix, wsOptions{}, time.Second)
		gotWS, perTCP := 0, map[string]int{}
		for i := range 100 {
			if ep := d.endpointFor(i); ep.ws {
				gotWS++
			} else {
				perTCP[ep.given]++
			}
		}
		if gotWS != tt.wantWS {
			t.Errorf("mix %v: %d of 100 on WebSocket, want %d", tt.mix, gotWS, tt.wantWS)
		}
		if perTCP["t0"]-perTCP["t1"] > 1 || perTCP["t1"]-perTCP["t0"] > 1 {
			t.Errorf("mix %v: TCP clients not round robin: %v", tt.mix, perTCP)
		}
	}
}

func TestSourceFor(t *testing.T) {
	d := newDialer(nil, nil, 0, wsOptions{}, time.Second)
	d.perSource = 3
	v4 := endpoint{ipv4: true}
	tests := []struct {
		slot int
		want string // "" = the kernel's choice
	}{{0, ""}, {2, ""}, {3, "127.0.0.2"}, {5, "127.0.0.2"}, {6, "127.0.0.3"}, {3 * 255, "127.0.1.0"}}
	for _, tt := range tests {
		got, err := d.sourceFor(v4, tt.slot)
		if err != nil {
			t.Fatalf("slot %d: %v", tt.slot, err)
		}
		if (tt.want == "" && got.IsValid()) || (tt.want != "" && got != netip.MustParseAddr(tt.want)) {
			t.Errorf("slot %d: source %v, want %q", tt.slot, got, tt.want)
		}
	}
	if _, err := d.sourceFor(endpoint{}, 3); err == nil {
		t.Error("IPv6 endpoint past one source's range: want an error")
	}
}

// TestDialBindsSourceAddresses checks that the later clients really come
// from 127.0.0.2 and up.
func TestDialBindsSourceAddresses(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tcp, _, err := resolveEndpoints(t.Context(), []string{l.Addr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDialer(tcp, nil, 0, wsOptions{}, time.Second)
	d.perSource = 2
	for slot, want := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.3"} {
		c, err := d.dial(t.Context(), d.endpointFor(slot), slot)
		if err != nil {
			t.Fatalf("slot %d: %v", slot, err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.RemoteAddr().(*net.TCPAddr).IP.String(); got != want {
			t.Errorf("slot %d came from %s, want %s", slot, got, want)
		}
		sc.Close()
		c.close()
	}
}

func TestResolveLoopback(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"127.9.8.7:1", "127.9.8.7:1"},
		{"[::1]:5000", "[::1]:5000"},
		{"[::ffff:127.0.0.1]:80", "127.0.0.1:80"},
		{"localhost:5000", "127.0.0.1:5000"},
	}
	for _, tt := range tests {
		got, err := resolveLoopback(t.Context(), tt.in)
		if err != nil || got.String() != tt.want {
			t.Errorf("resolveLoopback(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestHostPortOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ws://127.0.0.1:8080/ws", "127.0.0.1:8080"},
		{"ws://localhost/ws?x=1", "localhost:80"},
		{"ws://[::1]:9/", "[::1]:9"},
		{"ws://[::1]", "[::1]:80"},
		{"wss://127.0.0.1:8443/ws", "127.0.0.1:8443"},
		{"wss://localhost/ws", "localhost:443"},
	}
	for _, tt := range tests {
		if got := hostPortOf(tt.in); got != tt.want {
			t.Errorf("hostPortOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// wss:// endpoints are taken, on loopback only, with 443 for a URL that
// names no port; other schemes are refused.
func TestResolveWSSEndpoints(t *testing.T) {
	_, ws, err := resolveEndpoints(t.Context(), nil, []string{"wss://127.0.0.1:8443/ws", "wss://127.0.0.1/ws"})
	if err != nil {
		t.Fatal(err)
	}
	if ws[0].dialAddr != "127.0.0.1:8443" || ws[1].dialAddr != "127.0.0.1:443" {
		t.Fatalf("dial addresses %q and %q", ws[0].dialAddr, ws[1].dialAddr)
	}
	if _, _, err := resolveEndpoints(t.Context(), nil, []string{"wss://192.0.2.1/ws"}); !errors.Is(err, errNotLoopback) {
		t.Fatalf("a wss:// endpoint off loopback: %v", err)
	}
	if _, _, err := resolveEndpoints(t.Context(), nil, []string{"https://127.0.0.1/ws"}); !errors.Is(err, errUsage) {
		t.Fatalf("an https:// endpoint: %v", err)
	}
}
