package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startCeiling serves a ceiling broadcaster on 127.0.0.1:0 in this process
// until the test ends (or stop is called) and returns its address.
func startCeiling(t *testing.T, queue int) (addr string, srv *ceilingServer, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = newCeilingServer(discardLogger(), queue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ceiling serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return l.Addr().String(), srv, stop
}

func testClientConfig(t *testing.T, tcp, ws []string) clientConfig {
	t.Helper()
	tcpEPs, wsEPs, err := resolveEndpoints(t.Context(), tcp, ws)
	if err != nil {
		t.Fatal(err)
	}
	return clientConfig{
		tcp: tcpEPs, ws: wsEPs, wsMix: 0.5,
		connect:        connectPlan{parallel: 16},
		connectTimeout: 2 * time.Second,
	}
}

func smallFanout(cc clientConfig, receivers, senders int, rate float64, messages int64) fanoutConfig {
	return fanoutConfig{
		clientConfig: cc,
		receivers:    receivers, senders: senders,
		rate: rate, messages: messages,
		duration: 5 * time.Second, drain: 2 * time.Second,
		settle: 100 * time.Millisecond, window: 1000,
	}
}

// checkClean asserts a run where every line reached every receiver once.
func checkClean(t *testing.T, r *result, receivers, senders int, perSender int64) {
	t.Helper()
	wantSent := int64(senders) * perSender
	if r.Sent != wantSent || r.Deliveries != int64(receivers)*wantSent {
		t.Errorf("sent %d deliveries %d, want %d and %d", r.Sent, r.Deliveries, wantSent, int64(receivers)*wantSent)
	}
	if r.Receivers != receivers || r.Senders != senders {
		t.Errorf("receivers %d senders %d, want %d %d", r.Receivers, r.Senders, receivers, senders)
	}
	if r.Lost != 0 || r.Duplicated != 0 || r.Reordered != 0 || r.Disconnected != 0 || r.ConnectErrors != 0 {
		t.Errorf("lost %d dup %d reordered %d disconnected %d connect errors %d, want all 0",
			r.Lost, r.Duplicated, r.Reordered, r.Disconnected, r.ConnectErrors)
	}
	if !(r.LatP50us > 0 && r.LatP50us <= r.LatP99us && r.LatP99us <= r.LatMaxus) {
		t.Errorf("latency p50 %v p99 %v max %v out of order", r.LatP50us, r.LatP99us, r.LatMaxus)
	}
	if !(r.ComplP50us >= r.LatP50us && r.ComplMaxus == r.LatMaxus) {
		t.Errorf("completion p50 %v max %v against latency p50 %v max %v",
			r.ComplP50us, r.ComplMaxus, r.LatP50us, r.LatMaxus)
	}
}

func TestFanoutAgainstCeiling(t *testing.T) {
	addr, _, _ := startCeiling(t, 1024)
	cc := testClientConfig(t, []string{addr}, nil)
	cc.proc = procSampler{pids: []int{os.Getpid()}, root: "/proc"} // the ceiling runs in this process
	cfg := smallFanout(cc, 20, 2, 1000, 50)
	r, err := runFanout(t.Context(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, r, 20, 2, 50)
	if r.ServerCPUs == nil || r.RSSAfterKiB == nil || *r.RSSAfterKiB <= 0 {
		t.Fatalf("server figures missing with --pid: %+v", r)
	}
	// Server and load tool are this one process here: the tool's CPU is
	// the server's, give or take the tick between the two samples.
	if r.ToolCPUs == nil || *r.ToolCPUs < 0 || math.Abs(*r.ToolCPUs-*r.ServerCPUs) > 0.05 {
		t.Errorf("load tool cpu %v against server cpu %v", r.ToolCPUs, *r.ServerCPUs)
	}
	if total := *r.ServerCPUs + *r.ToolCPUs; total > 0 {
		if r.DeliveriesPerTotalCPU == nil || math.Abs(*r.DeliveriesPerTotalCPU-float64(r.Deliveries)/total) > 1e-6*float64(r.Deliveries) {
			t.Errorf("deliveries per cpu-s of both %v, want %v", r.DeliveriesPerTotalCPU, float64(r.Deliveries)/total)
		}
	}
	var out bytes.Buffer
	if err := r.write(&out, true); err != nil || !strings.Contains(out.String(), `"deliveries":2000`) {
		t.Errorf("json %q, err %v", out.String(), err)
	}
}

func TestFanoutFlatOutStaysInWindow(t *testing.T) {
	addr, _, _ := startCeiling(t, 1024)
	cfg := smallFanout(testClientConfig(t, []string{addr}, nil), 5, 2, 0, 2000)
	cfg.window = 20
	r, err := runFanout(t.Context(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, r, 5, 2, 2000)
}

func TestFanoutServerGoesAway(t *testing.T) {
	addr, _, stop := startCeiling(t, 1024)
	cfg := smallFanout(testClientConfig(t, []string{addr}, nil), 10, 1, 200, 0)
	cfg.duration = 10 * time.Second
	// The default settle stays: without it the first lines can go out
	// before the ceiling has seen every receiver join, and those count
	// as lost.
	go func() {
		time.Sleep(300 * time.Millisecond)
		stop()
	}()
	start := time.Now()
	r, err := runFanout(t.Context(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if r.Disconnected != 10 || r.Lost != 0 {
		t.Errorf("disconnected %d lost %d, want 10 and 0", r.Disconnected, r.Lost)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("run took %v after the server went away", time.Since(start))
	}
}

func TestHoldAgainstCeiling(t *testing.T) {
	addr, _, _ := startCeiling(t, 1024)
	cc := testClientConfig(t, []string{addr}, nil)
	cc.proc = procSampler{pids: []int{os.Getpid()}, root: "/proc"}
	cc.perSource = 25 // 60 clients: from 127.0.0.1, 127.0.0.2 and 127.0.0.3
	r, err := runHold(t.Context(), holdConfig{clientConfig: cc, n: 60, hold: 200 * time.Millisecond, procs: 1}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if r.Held != 60 || r.ConnectErrors != 0 || r.Disconnected != 0 || r.ConnectPerSec <= 0 {
		t.Errorf("held %d errors %d disconnected %d rate %v", r.Held, r.ConnectErrors, r.Disconnected, r.ConnectPerSec)
	}
	if r.KiBPerConn == nil || r.RSSBeforeKiB == nil {
		t.Errorf("memory figures missing with --pid")
	}
}

func TestHoldProcs(t *testing.T) {
	addr, srv, _ := startCeiling(t, 1024)
	cc := testClientConfig(t, []string{addr}, nil)
	cc.perSource = 5 // the children must agree on who uses 127.0.0.2, ...
	cfg := holdConfig{
		clientConfig: cc, n: 21, hold: 200 * time.Millisecond, procs: 3,
		given:    childFlags{tcp: []string{addr}, wsMix: 0.5, quiet: true},
		childExe: os.Args[0],
		childEnv: []string{childEnv},
	}
	r, err := runHold(t.Context(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if r.Held != 21 || r.ConnectErrors != 0 {
		t.Errorf("held %d errors %d, want 21 and 0", r.Held, r.ConnectErrors)
	}
	if got := srv.accepted.Load(); got != 21 {
		t.Errorf("ceiling accepted %d connections, want 21", got)
	}
}

func TestCeilingRelaysWholeLines(t *testing.T) {
	addr, _, _ := startCeiling(t, 1024)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b, recv := dial(), dial(), dial()
	time.Sleep(50 * time.Millisecond) // let the server register all three
	a.Write([]byte("bench 0 1"))
	time.Sleep(50 * time.Millisecond)
	b.Write([]byte("bench 1 1 5\n"))
	time.Sleep(50 * time.Millisecond)
	a.Write([]byte(" 7\n"))
	recv.SetReadDeadline(time.Now().Add(2 * time.Second))
	sc := bufio.NewScanner(recv)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if strings.Join(lines, "|") != "bench 1 1 5|bench 0 1 7" {
		t.Fatalf("receiver got %q", lines)
	}
}

func TestCeilingDropsStuckReceiver(t *testing.T) {
	addr, srv, _ := startCeiling(t, 4)
	stuck, err := net.DialTCP("tcp", nil, mustTCPAddr(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuck.SetReadBuffer(4096) // never read, and let the kernel hold little
	sender, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	time.Sleep(50 * time.Millisecond)
	line := []byte(strings.Repeat("x", 500) + "\n")
	deadline := time.Now().Add(5 * time.Second)
	for srv.dropped.Load() == 0 && time.Now().Before(deadline) {
		sender.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := sender.Write(bytes.Repeat(line, 64)); err != nil {
			t.Fatalf("sender write: %v", err)
		}
	}
	if srv.dropped.Load() == 0 {
		t.Fatal("a receiver that never reads was not dropped")
	}
}

func mustTCPAddr(t *testing.T, s string) *net.TCPAddr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// wsRelay is a test WebSocket room: every message goes to every other
// member unchanged. With splitBinary it cuts each binary message in two
// frames at an odd place, as websockify does with TCP reads.
type wsRelay struct {
	splitBinary bool
	mu          sync.Mutex
	conns       map[*websocket.Conn]bool
	handlers    sync.WaitGroup
}

func startWSRelay(t *testing.T, splitBinary bool) string {
	t.Helper()
	r := &wsRelay{splitBinary: splitBinary, conns: map[*websocket.Conn]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.mu.Lock()
		for c := range r.conns {
			c.CloseNow()
		}
		r.mu.Unlock()
		r.handlers.Wait()
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func (r *wsRelay) serve(w http.ResponseWriter, req *http.Request) {
	r.handlers.Add(1)
	defer r.handlers.Done()
	c, err := websocket.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	r.mu.Lock()
	r.conns[c] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
	}()
	ctx := context.Background()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		r.mu.Lock()
		others := make([]*websocket.Conn, 0, len(r.conns))
		for o := range r.conns {
			if o != c {
				others = append(others, o)
			}
		}
		r.mu.Unlock()
		for _, o := range others {
			if typ == websocket.MessageBinary && r.splitBinary && len(msg) > 3 {
				o.Write(ctx, typ, msg[:len(msg)/2+1])
				o.Write(ctx, typ, msg[len(msg)/2+1:])
				continue
			}
			o.Write(ctx, typ, msg)
		}
	}
}

func TestFanoutWebSocket(t *testing.T) {
	tests := []struct {
		name  string
		split bool
		opts  wsOptions
	}{
		{"text", false, wsOptions{}},
		{"json", false, wsOptions{json: true}},
		{"binary split frames", true, wsOptions{binary: true, subprotocol: "binary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startWSRelay(t, tt.split)
			cc := testClientConfig(t, nil, []string{url})
			cc.wsOpts = tt.opts
			r, err := runFanout(t.Context(), smallFanout(cc, 5, 1, 1000, 30), discardLogger())
			if err != nil {
				t.Fatal(err)
			}
			checkClean(t, r, 5, 1, 30)
		})
	}
}

func TestHoldWebSocketAndTCP(t *testing.T) {
	addr, _, _ := startCeiling(t, 1024)
	url := startWSRelay(t, false)
	cc := testClientConfig(t, []string{addr}, []string{url})
	r, err := runHold(t.Context(), holdConfig{clientConfig: cc, n: 20, hold: 100 * time.Millisecond, procs: 1}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if r.Held != 20 || r.ConnectErrors != 0 {
		t.Errorf("held %d errors %d, want 20 and 0", r.Held, r.ConnectErrors)
	}
}

// TestCommandLine runs the subcommands as a user would, through run.
func TestCommandLine(t *testing.T) {
	addr, _, _ := startCeiling(t, 1024)
	code, stdout, stderr := runArgs(t, "hold", "--tcp", addr, "-n", "30", "--per-source", "10",
		"--hold", "100ms", "--json", "--quiet")
	if code != exitOK || !strings.Contains(stdout, `"held":30,`) || !strings.Contains(stdout, `"mode":"hold"`) {
		t.Fatalf("hold: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, stdout, stderr = runArgs(t, "fanout", "--tcp", addr+","+addr, "--receivers", "4", "--senders", "2",
		"--messages", "10", "--rate", "500", "--settle", "50ms", "--quiet")
	if code != exitOK || !strings.HasPrefix(stdout, "fanout: 4 receivers, 2 senders, sent 20, deliveries 80 ") {
		t.Fatalf("fanout: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, _, stderr = runArgs(t, "fanout", "--tcp", addr, "--duration", "5s", "--timeout", "300ms", "--quiet")
	if code != exitTimeout {
		t.Fatalf("fanout past --timeout: exit %d, stderr %s", code, stderr)
	}
}
