package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startRun runs the binary's run with args until the test ends.
func startRun(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	exited := make(chan int)
	go func() { exited <- run(ctx, args, env(nil), &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Error("run did not return")
		}
	})
	return &stderr
}

// Every connection counts against --max-per-ip from the moment it is
// accepted, on every listener: two idle page connections from an address
// leave no room for a telnet member or an echo client from it, who are
// told why at once; another address is still welcome, and a closed
// connection frees its place.
func TestEveryConnectionCountsAgainstTheLimits(t *testing.T) {
	tcpAddr, echoAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	startRun(t, "--tcp", tcpAddr, "--echo", echoAddr, "--http", httpAddr, "--max-per-ip", "2")
	dialRetry(t, httpAddr).Close()
	// /metrics, asked from an address of its own, tells how many
	// connections the server has taken (this one included): the test's
	// dials return before the server accepts them.
	hc := http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}).DialContext}}
	defer hc.CloseIdleConnections()
	metrics := func() []byte {
		t.Helper()
		mr, err := hc.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer mr.Body.Close()
		b, _ := io.ReadAll(mr.Body)
		return b
	}
	count := func(b []byte, re string) int {
		m := regexp.MustCompile(`(?m)^` + re + ` (\d+)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("metrics lack %s:\n%s", re, b)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	waitOpen := func(n int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for count(metrics(), "chatbridge_connections_open") != n+1 {
			if time.Now().After(deadline) {
				t.Fatalf("the server does not have %d connections open", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitOpen(0)

	var idle []net.Conn
	for range 2 { // held open, not even a request sent
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitOpen(2)
	refused := func(addr, want string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		if string(b) != want {
			t.Fatalf("%s: %q, %v; want %q", addr, b, err, want)
		}
	}
	refused(tcpAddr, "*** too many connections from your address\r\n")
	refused(echoAddr, "too many connections from your address\n")
	c, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "too many connections from your address") {
		t.Fatalf("page: %d %q", resp.StatusCode, body)
	}

	// Another address is welcome.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := bufio.NewReader(other).ReadString('\n'); !strings.Contains(line, "Welcome to chatbridge") {
		t.Fatalf("127.0.0.2: %q, %v", line, err)
	}

	// Closing one idle connection makes room, once the server has seen it go.
	idle[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := net.Dial("tcp", tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.Contains(line, "Welcome to chatbridge") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after a connection closed: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if n := count(metrics(), `chatbridge_connections_refused_total\{reason="per_ip"\}`); n < 3 {
		t.Errorf("%d refusals per address counted, want at least 3", n)
	}
}
