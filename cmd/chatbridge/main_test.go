package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestBindFailureIsOneLineAndExitsNonZero(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stderr syncBuffer
	code := run(context.Background(), []string{"--tcp", l.Addr().String(), "--http", ""}, env(nil), &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	out := strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, l.Addr().String()) || !strings.Contains(out, "address already in use") {
		t.Fatalf("stderr = %q", out)
	}
}

func TestRunServesChatAndEchoThenStopsCleanly(t *testing.T) {
	tcpAddr, echoAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	exited := make(chan int)
	go func() {
		exited <- run(ctx, []string{"--tcp", tcpAddr, "--echo", echoAddr, "--http", httpAddr, "--log-format", "json"}, env(nil), &stderr)
	}()

	conn := dialRetry(t, tcpAddr)
	defer conn.Close()
	r := bufio.NewReader(conn)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "*** Welcome to chatbridge, guest-") {
		t.Fatalf("welcome = %q", line)
	}
	echo := dialRetry(t, echoAddr)
	defer echo.Close()
	er := bufio.NewReader(echo)
	er.ReadString('\n')
	echo.Write([]byte("ping\n"))
	if line, _ := er.ReadString('\n'); line != "OK...ping\n" {
		t.Fatalf("echo = %q", line)
	}

	dialRetry(t, httpAddr).Close()
	resp, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()

	cancel() // as SIGINT would
	var last string
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		last = line
	}
	if last != "*** server shutting down\r\n" {
		t.Fatalf("last line before close = %q", last)
	}
	conn.Close()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit code %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	for _, want := range []string{`"msg":"listening","service":"telnet chat","addr":"` + tcpAddr, `"service":"echo"`, `"service":"web (http)"`, `"msg":"stopped"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, stderr.String())
		}
	}
}

// With --metrics-addr, /metrics is served there and not on --http (or
// with no --http at all); the metrics listener starts and stops with the
// others.
func TestMetricsOnAListenerOfTheirOwn(t *testing.T) {
	for _, web := range []bool{true, false} {
		tcpAddr, httpAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
		if !web {
			httpAddr = ""
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel() // a failure below still stops the server
		var stderr syncBuffer
		exited := make(chan int, 1)
		go func() {
			exited <- run(ctx, []string{"--tcp", tcpAddr, "--http", httpAddr, "--metrics-addr", metricsAddr, "--log-format", "json"}, env(nil), &stderr)
		}()
		dialRetry(t, metricsAddr).Close()
		get := func(url string) (int, string) {
			t.Helper()
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get("http://" + metricsAddr + "/metrics"); code != 200 || !strings.Contains(body, "chatbridge_clients") {
			t.Fatalf("/metrics on --metrics-addr: %d %.100q", code, body)
		}
		if web {
			if code, _ := get("http://" + httpAddr + "/metrics"); code != http.StatusNotFound {
				t.Fatalf("/metrics on --http: %d, want 404", code)
			}
			if code, _ := get("http://" + httpAddr + "/healthz"); code != 200 {
				t.Fatalf("/healthz on --http: %d", code)
			}
		}
		http.DefaultClient.CloseIdleConnections()
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Fatalf("exit code %d; log:\n%s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return")
		}
		if want := `"msg":"listening","service":"metrics","addr":"` + metricsAddr; !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, stderr.String())
		}
		if got := strings.Contains(stderr.String(), `"service":"web (http)"`); got != web {
			t.Errorf("web served: %v, want %v", got, web)
		}
	}
}

// A taken --metrics-addr fails the start like any other port; a bad one
// is refused before anything is bound.
func TestMetricsAddrTakenOrBad(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Were they not refused, the servers would stop after a while.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stderr syncBuffer
	if code := run(ctx, []string{"--tcp", freeAddr(t), "--http", freeAddr(t), "--metrics-addr", l.Addr().String()}, env(nil), &stderr); code != 1 {
		t.Fatalf("taken: exit code %d, want 1", code)
	}
	out := strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, `cannot listen for metrics on "`+l.Addr().String()) {
		t.Fatalf("taken: stderr = %q", out)
	}
	var bad syncBuffer
	if code := run(ctx, []string{"--tcp", freeAddr(t), "--metrics-addr", "localhost"}, env(nil), &bad); code != 2 {
		t.Fatalf("bad: exit code %d, want 2", code)
	}
	if out := bad.String(); !strings.Contains(out, `chatbridge: --metrics-addr "localhost": address localhost: missing port in address`) {
		t.Fatalf("bad: stderr = %q", out)
	}
}

func dialRetry(t *testing.T, addr string) net.Conn {
	t.Helper()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		if i == 100 {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNATSRequiredButUnreachableIsOneLineAndExitsNonZero(t *testing.T) {
	natsAddr := freeAddr(t) // nothing listens there
	var stderr syncBuffer
	code := run(context.Background(), []string{"--tcp", freeAddr(t), "--http", "", "--nats", "nats://" + natsAddr, "--nats-required", "--cluster-insecure"}, env(nil), &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	if !strings.Contains(out, "chatbridge: --nats: connect to NATS at nats://"+natsAddr) {
		t.Fatalf("stderr = %q", out)
	}
}

// runUntil runs chatbridge with args and env until its log holds want,
// then stops it as SIGTERM would, and returns its exit code and log.
func runUntil(t *testing.T, args []string, environ map[string]string, want string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, env(environ), &stderr) }()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(stderr.String(), want) {
		select {
		case code := <-exited:
			return code, stderr.String()
		case <-deadline:
			t.Fatalf("no %q in the log:\n%s", want, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-exited:
		return code, stderr.String()
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
		return 0, ""
	}
}

func TestNATSInsecureWarnsLoudly(t *testing.T) {
	args := []string{"--tcp", freeAddr(t), "--http", "", "--nats", "nats://" + freeAddr(t), "--cluster-insecure"}
	code, out := runUntil(t, args, nil, `msg="relaying through NATS"`)
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	for _, want := range []string{"level=WARN msg=\"--cluster-insecure: the nodes do not authenticate each other; any client of NATS can speak as a node", "authenticated=false"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestNATSPasswordAndSecretStayOutOfTheLog(t *testing.T) {
	const password, secret = "hunter2-hunter2", "the cluster secret, sixteen+ bytes"
	nats := "nats://node:" + password + "@" + freeAddr(t)
	environ := map[string]string{"CHATBRIDGE_CLUSTER_SECRET": secret}
	for i, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"--tcp", freeAddr(t), "--http", "", "--nats", nats, "--log-level", "debug"}, 0},                    // starts alone, keeps trying
		{[]string{"--tcp", freeAddr(t), "--http", "", "--nats", nats, "--log-level", "debug", "--nats-required"}, 1}, // cannot start
	} {
		code, out := runUntil(t, tt.args, environ, `msg="relaying through NATS"`)
		if code != tt.code {
			t.Fatalf("run %d: exit code %d, want %d:\n%s", i, code, tt.code, out)
		}
		if strings.Contains(out, password) || strings.Contains(out, secret) {
			t.Fatalf("the log shows a password or the secret:\n%s", out)
		}
		if !strings.Contains(out, "nats://node:redacted@") {
			t.Fatalf("the log does not name NATS:\n%s", out)
		}
	}
}

func TestNATSBadFilesStopTheStart(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("hello"), 0o600)
	tests := []struct {
		flag, file, want string
	}{
		{"--nats-creds", filepath.Join(dir, "missing.creds"), "credentials: open " + filepath.Join(dir, "missing.creds")},
		{"--nats-creds", garbage, "credentials " + garbage + ": no user JWT in it"},
		{"--nats-ca", filepath.Join(dir, "missing.pem"), "CA: open " + filepath.Join(dir, "missing.pem")},
		{"--nats-ca", garbage, "CA " + garbage + ": no PEM certificate in it"},
	}
	for _, tt := range tests {
		var stderr syncBuffer
		code := run(context.Background(), []string{"--tcp", freeAddr(t), "--http", "", "--nats", "tls://" + freeAddr(t), "--cluster-insecure", tt.flag, tt.file}, env(nil), &stderr)
		out := strings.TrimSpace(stderr.String())
		if code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, tt.want) {
			t.Errorf("%s %s: exit code %d, stderr %q; want 2 and %q", tt.flag, tt.file, code, out, tt.want)
		}
	}
}

// TestOpPasswordReachesTheHub: CHATBRIDGE_OP_PASSWORD makes /op work, and
// neither it nor a wrong guess shows in the log, at debug level.
func TestOpPasswordReachesTheHub(t *testing.T) {
	const pass, guess = "correct-horse-battery", "wrong-guess-1234"
	tcpAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	exited := make(chan int)
	go func() {
		exited <- run(ctx, []string{"--tcp", tcpAddr, "--http", "", "--log-level", "debug"}, env(map[string]string{"CHATBRIDGE_OP_PASSWORD": pass}), &stderr)
	}()
	conn := dialRetry(t, tcpAddr)
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(want string) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if strings.Contains(line, want) {
				return
			}
		}
	}
	conn.Write([]byte("/op " + guess + "\r\n"))
	expect("! wrong operator password")
	conn.Write([]byte("/op " + pass + "\r\n"))
	expect("you are now an operator")
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit code %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	log := stderr.String()
	if !strings.Contains(log, "wrong operator password") || !strings.Contains(log, "action=op") {
		t.Errorf("the log lacks the wrong password or the /op:\n%s", log)
	}
	if strings.Contains(log, pass) || strings.Contains(log, guess) {
		t.Errorf("the log shows a password:\n%s", log)
	}
}
