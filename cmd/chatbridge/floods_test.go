package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// floodServer is the binary's run on free ports, with a telnet client
// per source address.
type floodServer struct {
	t                 *testing.T
	tcpAddr, httpAddr string
}

func startFloodServer(t *testing.T, args ...string) *floodServer {
	t.Helper()
	s := &floodServer{t: t, tcpAddr: freeAddr(t), httpAddr: freeAddr(t)}
	startRun(t, append([]string{"--tcp", s.tcpAddr, "--http", s.httpAddr}, args...)...)
	dialRetry(t, s.tcpAddr).Close()
	return s
}

// telnet connects from src and reads the welcome; it returns the
// connection and a reader of its lines, and the guest name it was given.
func (s *floodServer) telnet(src string) (net.Conn, *bufio.Reader, string) {
	s.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", s.tcpAddr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := r.ReadString('\n')
	_, rest, ok := strings.Cut(line, "Welcome to chatbridge, ")
	if !ok {
		s.t.Fatalf("from %s: %q, %v", src, line, err)
	}
	name, _, _ := strings.Cut(rest, "!")
	return c, r, name
}

// metric reads one counter from /metrics.
func (s *floodServer) metric(name string) int {
	s.t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\d+)$`).FindSubmatch(b)
	if m == nil {
		s.t.Fatalf("metrics lack %s", name)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// With the defaults, one address reconnecting as fast as it can is let
// in ten times a second after a burst of 100, and told why it is not.
func TestConnectRateRefusesReconnectingFlatOut(t *testing.T) {
	s := startFloodServer(t)
	defer http.DefaultClient.CloseIdleConnections()
	admitted, refused := 0, 0
	for range 150 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7)}}
		c, err := d.Dial("tcp", s.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		switch {
		case strings.Contains(line, "Welcome to chatbridge"):
			admitted++
		case line == "*** too many connections from your address; slow down\r\n":
			refused++
		default:
			t.Fatalf("connect %d: %q, %v", admitted+refused, line, err)
		}
	}
	// 100 at once, and one more for each tenth of a second the loop took.
	if admitted < 100 || admitted > 110 || refused != 150-admitted {
		t.Fatalf("%d admitted, %d refused", admitted, refused)
	}
	if n := s.metric(`chatbridge_connections_refused_total{reason="rate"}`); n != refused {
		t.Fatalf("metrics count %d refused for the rate, want %d", n, refused)
	}
	// Another address is not slowed down by it.
	s.telnet("127.0.0.8")
}

// With the defaults, a member is sent at most 8 private messages at once
// from one address, and the rest are refused and counted.
func TestPrivateRateThroughTheServer(t *testing.T) {
	s := startFloodServer(t)
	defer http.DefaultClient.CloseIdleConnections()
	vc, vr, victim := s.telnet("127.0.0.5")
	sc, sr, sender := s.telnet("127.0.0.6")
	for i := range 9 {
		fmt.Fprintf(sc, "/msg %s hello %d\r\n", victim, i)
	}
	sc.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		line, err := sr.ReadString('\n')
		if err != nil {
			t.Fatalf("no refusal: %v", err)
		}
		if strings.HasPrefix(line, "!") {
			if !strings.HasPrefix(line, "! too many private messages from your address to "+victim+"; it was not sent, try again in ") {
				t.Fatalf("refusal %q", line)
			}
			break
		}
	}
	vc.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := range 8 {
		want := fmt.Sprintf("*%s* hello %d\r\n", sender, i)
		for {
			line, err := vr.ReadString('\n')
			if err != nil {
				t.Fatalf("the victim waiting for %q: %v", want, err)
			}
			if line == want {
				break
			}
			if strings.HasPrefix(line, "*"+sender+"*") {
				t.Fatalf("the victim got %q, want %q", line, want)
			}
		}
	}
	if n := s.metric(`chatbridge_private_refused_total{reason="per_ip"}`); n != 1 {
		t.Fatalf("metrics count %d refused per address, want 1", n)
	}
}
