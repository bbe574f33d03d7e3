package tcpserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// echoExchange writes each chunk (pausing between them, so that the seed,
// which answers each read, sees them one by one) and returns everything
// the server sent by the time it closed.
func echoExchange(t *testing.T, addr string, chunks []string) []byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, c := range chunks {
		time.Sleep(50 * time.Millisecond)
		if _, err := conn.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return got
}

var echoChunks = []string{"hello\r\n", "how are you\n", "héllo \xff\r\n", "\r\n", "no newline at end"}

const echoWant = EchoWelcome + "OK...hello\r\n" + "OK...how are you\n" + "OK...héllo \xff\r\n" + "OK...\r\n" + "OK...no newline at end"

func startEcho(t *testing.T, cfg EchoConfig) (string, func()) {
	t.Helper()
	cfg.WriteTimeout = time.Second
	srv := NewEcho(cfg, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	}
}

func TestEchoIsTheSeedsProtocol(t *testing.T) {
	addr, stop := startEcho(t, EchoConfig{})
	defer stop()
	if got := echoExchange(t, addr, echoChunks); string(got) != echoWant {
		t.Fatalf("got  %q\nwant %q", got, echoWant)
	}
}

// TestEchoMatchesSeedPeer runs the seed's echo server (its Python 3 port,
// from the shared peers beside the repository) and checks that ours
// answers the same bytes. It needs python3 and the peer file.
func TestEchoMatchesSeedPeer(t *testing.T) {
	peer, err := filepath.Abs("../../shared/peers/seed_echo.py")
	if err != nil {
		t.Fatal(err)
	}
	python, perr := exec.LookPath("python3")
	if _, err = os.Stat(peer); err != nil || perr != nil {
		t.Skip("the seed peer (shared/peers beside the repository) or python3 is not here; TestEchoIsTheSeedsProtocol checks the same bytes")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(python, peer, strconv.Itoa(port), "127.0.0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	seedAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", seedAddr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("seed echo did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The probe connection above got a welcome too; start afresh.
	seed := echoExchange(t, seedAddr, echoChunks)
	addr, stop := startEcho(t, EchoConfig{})
	defer stop()
	ours := echoExchange(t, addr, echoChunks)
	if !bytes.Equal(seed, ours) {
		t.Fatalf("seed %q\nours %q", seed, ours)
	}
}

func TestEchoLongLineInPieces(t *testing.T) {
	addr, stop := startEcho(t, EchoConfig{MaxLine: 16})
	defer stop()
	got := echoExchange(t, addr, []string{"0123456789abcdefghij\n"})
	want := EchoWelcome + "OK...0123456789abcdef" + "OK...ghij\n"
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// An echo client that sends nothing for IdleTimeout is dropped; one that
// keeps talking is not, however long it stays.
func TestEchoDropsIdleClients(t *testing.T) {
	addr, stop := startEcho(t, EchoConfig{IdleTimeout: 300 * time.Millisecond})
	defer stop()
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if line, err := r.ReadString('\n'); line != EchoWelcome {
			t.Fatalf("welcome %q, %v", line, err)
		}
		return conn, r
	}
	idle, idleR := dial()
	defer idle.Close()
	busy, busyR := dial()
	defer busy.Close()
	for i := range 8 { // 800 ms of talking, a line every 100 ms
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintf(busy, "line %d\n", i)
		busy.SetReadDeadline(time.Now().Add(3 * time.Second))
		if line, err := busyR.ReadString('\n'); line != fmt.Sprintf("OK...line %d\n", i) {
			t.Fatalf("busy client got %q, %v", line, err)
		}
	}
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if rest, err := io.ReadAll(idleR); err != nil || len(rest) != 0 {
		t.Fatalf("idle client: read %q, %v; want the end of the stream", rest, err)
	}
}
