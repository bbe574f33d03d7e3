package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"chatbridge/tcpserver"
)

// ping reads frames until the server's ping, within d, and returns its
// payload; the connection's end or the deadline are errors.
func (c *rawWS) ping(d time.Duration) ([]byte, error) {
	end := time.Now().Add(d)
	for {
		first, p, err := c.frame(time.Until(end))
		if err != nil {
			return nil, err
		}
		if first == finBit|opPing {
			return p, nil
		}
	}
}

// A ping round starts no goroutine per member: nothing waits for a pong.
// With the library's Ping, every member pinged had a goroutine waiting for
// its answer, up to PongTimeout; these clients never answer, so all of
// them would be waiting at once once each has seen its ping.
func TestKeepaliveStartsNoGoroutinePerMember(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: -1}, Config{PingInterval: 100 * time.Millisecond, PongTimeout: 2 * time.Second})
	const n = 40
	before := runtime.NumGoroutine()
	clients := make([]*rawWS, n)
	for i := range clients {
		clients[i] = st.dialRaw(t, "", nil)
		if got := clients[i].text(5 * time.Second); !strings.Contains(got, "Welcome") {
			t.Fatalf("first frame %q, want the welcome", got)
		}
	}
	for i, c := range clients {
		if _, err := c.ping(5 * time.Second); err != nil {
			t.Fatalf("client %d: no ping: %v", i, err)
		}
	}
	// Every member has been pinged and none has answered. A reader
	// goroutine per member where idle ones are not parked, and a few of
	// the server's own, are allowed; a goroutine per ping is not.
	limit := n / 4
	if runtime.GOOS != "linux" {
		limit += n
	}
	if extra := runtime.NumGoroutine() - before; extra > limit {
		t.Fatalf("%d goroutines more than before %d members joined and were pinged, want at most %d", extra, n, limit)
	}
}

// A client that answers nothing within PongTimeout of a ping is dropped,
// and its room told why; one that answers with a pong, or says something
// instead, is not. The pings come after the last write's deadline has
// passed, as they do on an idle connection.
// Over TLS the ping is written by a goroutine that lasts as long as the
// write: the same holds.
func TestKeepaliveDropsOnlyTheSilent(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testKeepaliveDropsOnlyTheSilent(t, false) })
	t.Run("tls", func(t *testing.T) { testKeepaliveDropsOnlyTheSilent(t, true) })
}

func testKeepaliveDropsOnlyTheSilent(t *testing.T, useTLS bool) {
	cfg := Config{WriteTimeout: 20 * time.Millisecond, PingInterval: 100 * time.Millisecond, PongTimeout: 300 * time.Millisecond}
	var tlsConf *tls.Config
	if useTLS {
		certFile, keyFile, pool := selfSigned(t, t.TempDir())
		cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
		tlsConf = &tls.Config{RootCAs: pool}
	}
	st := start(t, tcpserver.HubConfig{Rate: -1}, cfg)
	tel := st.telnet(t)
	dial := func() *rawWS {
		c := st.dialRaw(t, "", tlsConf)
		c.text(5 * time.Second) // the welcome
		return c
	}
	silent, ponger, talker := dial(), dial(), dial()

	// The ponger answers every ping and the talker says a line instead,
	// for six pings each: far longer than PongTimeout.
	errs := make(chan error, 2)
	go func() {
		for i := range 6 {
			p, err := ponger.ping(5 * time.Second)
			if err != nil {
				errs <- fmt.Errorf("ponger, ping %d: %w", i, err)
				return
			}
			if _, err := ponger.conn.Write(clientFrame(finBit|opPong, p, -1)); err != nil {
				errs <- fmt.Errorf("ponger, pong %d: %w", i, err)
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for i := range 6 {
			if _, err := talker.ping(5 * time.Second); err != nil {
				errs <- fmt.Errorf("talker, ping %d: %w", i, err)
				return
			}
			if _, err := talker.conn.Write(clientFrame(finBit|opText, []byte("still here"), -1)); err != nil {
				errs <- fmt.Errorf("talker, line %d: %w", i, err)
				return
			}
		}
		errs <- nil
	}()

	left := tel.expect(" left")
	if !strings.Contains(left, "ping timeout") {
		t.Fatalf("leave notice %q, want the ping timeout", left)
	}
	silent.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, silent.conn); err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || !isReset(err)) {
		t.Fatalf("silent client: %v, want the connection closed", err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := st.hub.Stats().Clients["ws"]; got != 2 {
		t.Fatalf("%d WebSocket members, want the ponger and the talker", got)
	}
}

// isReset reports whether err is the connection's reset by the server.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}
