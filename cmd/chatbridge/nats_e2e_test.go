package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// natsServerBinary returns the nats-server to run: on PATH, or where
// Debian puts it. Without one the test skips, unless CI is set.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nats-server not found (Debian: apt-get install nats-server); CI must run this test")
	}
	t.Skip("nats-server not found; install it (Debian: apt-get install nats-server) to run this test")
	return ""
}

// process is a child process of the test, killed at its end.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
}

func startProcess(t *testing.T, ctx context.Context, name, bin string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, ctx, nil, name, bin, args...)
}

// startProcessEnv starts a process with environ added to the test's
// environment.
func startProcessEnv(t *testing.T, ctx context.Context, environ []string, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.CommandContext(ctx, bin, args...), out: &syncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if environ != nil {
		p.cmd.Env = append(os.Environ(), environ...)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func TestNATSEndToEndTwoNodes(t *testing.T) {
	natsBin := natsServerBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	dir := t.TempDir()
	bin := filepath.Join(dir, "chatbridge")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	natsAddr := freeAddr(t)
	_, natsPort, _ := net.SplitHostPort(natsAddr)
	startProcess(t, ctx, "nats-server", natsBin, "-js", "-a", "127.0.0.1", "-p", natsPort, "-sd", filepath.Join(dir, "nats"))
	dialRetry(t, natsAddr).Close()
	natsURL := "nats://" + natsAddr

	tcpA, httpA := freeAddr(t), freeAddr(t)
	tcpB, httpB := freeAddr(t), freeAddr(t)
	for i, addrs := range [][2]string{{tcpA, httpA}, {tcpB, httpB}} {
		startProcessEnv(t, ctx, []string{"CHATBRIDGE_CLUSTER_SECRET=an end-to-end test's cluster secret"}, fmt.Sprintf("chatbridge %d", i+1), bin,
			"--tcp", addrs[0], "--http", addrs[1], "--nats", natsURL, "--nats-required", "--nats-prefix", "e2e", "--log-level", "debug",
			"--announce-delay", "0") // joins at once: the test waits for them
	}

	// A telnet user on node A.
	conn := dialRetry(t, tcpA)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	tcpExpect := func(want string) string {
		t.Helper()
		var seen []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("telnet user: waiting for %q: %v; saw %q", want, err, seen)
			}
			if strings.Contains(line, want) {
				return line
			}
			seen = append(seen, line)
		}
	}
	tcpExpect("*** Welcome to chatbridge, ")
	fmt.Fprintf(conn, "/nick telly\r\n")
	tcpExpect("is now known as telly")

	// A browser (plain WebSocket) user on node B.
	dialRetry(t, httpB).Close()
	ws, _, err := websocket.Dial(ctx, "ws://"+httpB+"/ws?nick=webby", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	defer ws.CloseNow()
	wsExpect := func(want string) string {
		t.Helper()
		var seen []string
		for {
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			_, msg, err := ws.Read(rctx)
			rcancel()
			if err != nil {
				t.Fatalf("websocket user: waiting for %q: %v; saw %q", want, err, seen)
			}
			if strings.Contains(string(msg), want) {
				return string(msg)
			}
			seen = append(seen, string(msg))
		}
	}
	wsExpect("Welcome to chatbridge, webby!")
	tcpExpect("*** webby joined") // node B shows no web visitor's address, and sends none

	fmt.Fprintf(conn, "hello from telnet on A\r\n")
	wsExpect("<telly> hello from telnet on A")
	if err := ws.Write(ctx, websocket.MessageText, []byte("hello from the web on B")); err != nil {
		t.Fatal(err)
	}
	tcpExpect("<webby> hello from the web on B")

	// Presence and private messages cross too.
	if err := ws.Write(ctx, websocket.MessageText, []byte("/who")); err != nil {
		t.Fatal(err)
	}
	wsExpect("*** 2 in lobby: telly, webby")
	fmt.Fprintf(conn, "/msg webby psst\r\n")
	wsExpect("*telly* psst")
	tcpExpect("-> *webby* psst")
	ws.Close(websocket.StatusNormalClosure, "")

	// The relay's state is in /metrics.
	resp, err := http.Get("http://" + httpA + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nchatbridge_relay_link_up 1\n", "\nchatbridge_relay_dropped_total 0\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}
