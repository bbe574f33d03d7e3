//go:build linux

package bridge

import (
	"context"
	"crypto/tls"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// readers counts the server's WebSocket reader goroutines.
func readers() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "bridge.(*wsConn).readMessages(")
}

// Idle WebSockets are parked between messages, pings and pongs included:
// they keep no reader goroutine, and stay connected and chatting.
func TestIdleWebSocketsHoldNoReader(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: -1, AnnounceLimit: 1}, Config{PingInterval: 50 * time.Millisecond, PongTimeout: time.Second})
	const n = 30
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = st.plain(t, "")
	}
	// Each client reads (answering pings) in a goroutine of the test's.
	var wg sync.WaitGroup
	got := make(chan string, 10*n)
	ended := make([]websocket.StatusCode, n)
	for i, w := range clients {
		wg.Go(func() {
			for {
				_, b, err := w.c.Read(context.Background())
				if err != nil {
					ended[i] = websocket.CloseStatus(err)
					return
				}
				got <- string(b)
			}
		})
	}
	defer func() {
		for _, w := range clients {
			w.c.CloseNow()
		}
		wg.Wait()
	}()

	// Several ping rounds, and longer than the pong timeout.
	time.Sleep(1500 * time.Millisecond)
	if c := st.hub.Stats().Clients["ws"]; c != n {
		t.Fatalf("%d WebSockets left of %d: pongs were not seen", c, n)
	}
	if r := readers(); r > 2 {
		t.Fatalf("%d reader goroutines for %d idle WebSockets: they are not parked", r, n)
	}

	// A parked one still speaks, and is heard.
	clients[0].send("still here")
	deadline := time.After(5 * time.Second)
	for heard := 0; heard < n-1; {
		select {
		case line := <-got:
			if strings.HasSuffix(line, "> still here") {
				heard++
			}
		case <-deadline:
			t.Fatalf("%d of %d heard the parked member", heard, n-1)
		}
	}

	// Shutdown reaches parked ones with 1001.
	time.Sleep(200 * time.Millisecond) // parked again
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.bridge.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	for i, code := range ended {
		if code != websocket.StatusGoingAway {
			t.Fatalf("client %d closed with %v, want 1001", i, code)
		}
	}
}

// Idle TLS WebSockets are parked too, on the descriptor under crypto/tls:
// no reader goroutine while nothing comes, and pings (written in a
// goroutine of their own, as long as the write lasts) and their pongs
// keep them connected, chatting.
func TestIdleTLSWebSocketsHoldNoReader(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	st := start(t, tcpserver.HubConfig{Rate: -1, AnnounceLimit: 1},
		Config{TLSCertFile: certFile, TLSKeyFile: keyFile, PingInterval: 50 * time.Millisecond, PongTimeout: time.Second})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	const n = 20
	var wg sync.WaitGroup
	got := make(chan string, 10*n)
	clients := make([]*wsClient, n)
	for i := range clients {
		w, _, err := st.dialWS(t, "", &websocket.DialOptions{HTTPClient: client})
		if err != nil {
			t.Fatalf("wss: %v", err)
		}
		clients[i] = w
		wg.Go(func() {
			for {
				_, b, err := w.c.Read(context.Background())
				if err != nil {
					return
				}
				got <- string(b)
			}
		})
	}
	defer func() {
		for _, w := range clients {
			w.c.CloseNow()
		}
		wg.Wait()
	}()

	// Several ping rounds, and longer than the pong timeout.
	time.Sleep(1500 * time.Millisecond)
	if c := st.hub.Stats().Clients["ws"]; c != n {
		t.Fatalf("%d WebSockets left of %d: pongs were not seen", c, n)
	}
	if r := readers(); r > 2 {
		t.Fatalf("%d reader goroutines for %d idle TLS WebSockets: they are not parked", r, n)
	}

	// A parked one still speaks, and is heard.
	if err := clients[0].c.Write(context.Background(), websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for heard := 0; heard < n-1; {
		select {
		case line := <-got:
			if strings.HasSuffix(line, "> still here") {
				heard++
			}
		case <-deadline:
			t.Fatalf("%d of %d heard the parked TLS member", heard, n-1)
		}
	}
}
