package bridge

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// syncLog is a log safe for the logger and the test at once.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// net/http's accept errors (out of descriptors) are logged at warn, a
// line per LogEvery with how many more; its other complaints stay at
// debug.
func TestHTTPAcceptErrorsAreLoggedWithCounts(t *testing.T) {
	var logged syncLog
	log := slog.New(slog.NewTextHandler(&logged, nil)) // info and above, as by default
	s := New(tcpserver.NewHub(tcpserver.HubConfig{}, nil), Config{}, log)
	err := s.Serve(context.Background(), &failingListener{fails: 6})
	if err == nil || !strings.Contains(err.Error(), "listener gone") {
		t.Fatalf("Serve = %v", err)
	}
	s.logs.Close()
	got := logged.String()
	first := `level=WARN msg="accept failed; retrying" service=http err="accept tcp: accept4: too many open files`
	summary := `level=WARN msg="5 more failed accepts on the web port in the last 10 s"`
	if strings.Count(got, "\n") != 2 || !strings.Contains(got, first) || !strings.Contains(got, summary) {
		t.Fatalf("log:\n%s\nwant two lines: %s ... and %s ...", got, first, summary)
	}
}

// failingListener fails fails times with EMFILE, then for good.
type failingListener struct{ fails int }

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return nil, errors.New("listener gone")
}

func (l *failingListener) Close() error { return nil }
func (l *failingListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
}

// Handshakes refused (a foreign origin, say) are logged a line per
// LogEvery, with how many more.
func TestRefusedHandshakesAreLoggedWithCounts(t *testing.T) {
	var logged syncLog
	s := New(tcpserver.NewHub(tcpserver.HubConfig{}, nil), Config{}, slog.New(slog.NewTextHandler(&logged, nil)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), l) }()
	const n = 50
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, resp, err := websocket.Dial(ctx, "ws://"+l.Addr().String()+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
		cancel()
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial from another origin: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	s.logs.Close()
	got := logged.String()
	if strings.Count(got, "\n") != 2 || strings.Count(got, `msg="websocket handshake refused"`) != 1 ||
		!strings.Contains(got, `msg="49 more WebSocket handshakes refused in the last 10 s"`) {
		t.Fatalf("log:\n%s", got)
	}
}
