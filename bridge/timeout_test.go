package bridge

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"chatbridge/tcpserver"
)

// A connection that is not a chat member cannot be held open: a request
// whose body never comes, a request that never ends and an idle
// keep-alive connection are all closed by the server within their
// timeouts.
func TestPageConnectionsHaveABoundedLife(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{RequestTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(st.httpURL, "http://")
	cases := []struct{ name, send string }{
		{"POST without its body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"},
		{"GET with a body that never comes", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"},
		{"chunked with no chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"headers that never end", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"an idle keep-alive connection", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			conn.SetReadDeadline(began.Add(5 * time.Second))
			_, err = io.Copy(io.Discard, conn)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("still open after %v", time.Since(began).Round(time.Millisecond))
			}
			if took := time.Since(began); took > 3*time.Second {
				t.Fatalf("closed only after %v", took)
			}
		})
	}
}

// A WebSocket is a chat member, not a page request: it outlives the
// request timeouts net/http set on its connection before the upgrade
// (net/http clears them when it hands the connection over).
func TestWebSocketOutlivesRequestTimeouts(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{RequestTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	a := st.plain(t, "")
	b := st.plain(t, "")
	a.expect(b.name + " ")
	time.Sleep(700 * time.Millisecond)
	b.send("still here")
	a.expect("<" + b.name + "> still here")
	a.send("and me")
	b.expect("<" + a.name + "> and me")
}

// Keep-alive still works within the idle timeout: the limit is on
// idleness, not on page loads.
func TestKeepAliveWithinIdleTimeout(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{IdleTimeout: 2 * time.Second})
	conn, err := net.Dial("tcp", strings.TrimPrefix(st.httpURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for range 3 {
		conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
}
