package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// The README's proxy configurations, run in front of a chatbridge on
// loopback: the page loads through the proxy, a WebSocket through it chats
// with a telnet member, and chatbridge knows the visitor by the address it
// reached the proxy from. The visitor connects from 127.0.0.2, so that its
// address differs from the proxy's (127.0.0.1, the only one trusted).

func TestNginxInFront(t *testing.T) {
	bin := proxyBinary(t, "nginx", true, "/usr/sbin/nginx")
	conf := readmeBlock(t, "<!-- nginx-config -->")
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	st := start(t, tcpserver.HubConfig{ShowAddresses: tcpserver.ShowAddrsAll, MaxPerIP: 1}, Config{TrustedProxies: loopbackProxy})

	port := runProxy(t, "nginx", func(port int) *exec.Cmd {
		site := replaceOnce(t, conf,
			"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port),
			"/etc/letsencrypt/live/chat.example.com/fullchain.pem", certFile,
			"/etc/letsencrypt/live/chat.example.com/privkey.pem", keyFile,
			"http://127.0.0.1:8080", st.httpURL)
		// Everything nginx writes is in dir; one process, in the
		// foreground, so that killing it ends it.
		main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, site)
		file := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(file, []byte(main), 0o600); err != nil {
			t.Fatal(err)
		}
		return exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file)
	}, filepath.Join(dir, "error.log"))

	chatThrough(t, st, port, pool)
}

func TestCaddyInFront(t *testing.T) {
	bin := proxyBinary(t, "caddy", false, "/usr/bin/caddy")
	conf := readmeBlock(t, "<!-- caddy-config -->")
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	st := start(t, tcpserver.HubConfig{ShowAddresses: tcpserver.ShowAddrsAll, MaxPerIP: 1}, Config{TrustedProxies: loopbackProxy})

	port := runProxy(t, "caddy", func(port int) *exec.Cmd {
		site := replaceOnce(t, conf,
			"chat.example.com {", fmt.Sprintf("https://127.0.0.1:%d {\n    tls %s %s", port, certFile, keyFile),
			"127.0.0.1:8080", strings.TrimPrefix(st.httpURL, "http://"))
		// No admin port and no certificate management: nothing listens
		// but the site, and nothing is written outside dir.
		file := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(file, []byte("{\n    admin off\n    auto_https off\n}\n\n"+site), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--adapter", "caddyfile", "--config", file)
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		return cmd
	}, "")

	chatThrough(t, st, port, pool)
}

var loopbackProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// chatThrough checks the page and a WebSocket through the proxy on port.
func chatThrough(t *testing.T, st *stack, port int, pool *x509.CertPool) {
	t.Helper()
	origin := fmt.Sprintf("https://127.0.0.1:%d", port)
	// A visitor on its own loopback address, trusting the test certificate.
	visitor := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)},
			Timeout:   5 * time.Second,
		}).DialContext,
	}}
	defer visitor.CloseIdleConnections()

	resp, err := visitor.Get(origin + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte(`role="log"`)) {
		t.Fatalf("the page through the proxy: %d\n%.300s", resp.StatusCode, page)
	}

	tel := st.telnet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://127.0.0.1:"+fmt.Sprint(port)+"/ws?nick=webby", &websocket.DialOptions{
		HTTPClient: visitor,
		// Origin as the page sends it, and claims the proxy must not let
		// through: the visitor is neither 192.0.2.66 nor 192.0.2.67.
		HTTPHeader: http.Header{"Origin": {origin}, "X-Forwarded-For": {"192.0.2.66"}, "Forwarded": {"for=192.0.2.67"}},
	})
	if err != nil {
		t.Fatalf("WebSocket through the proxy: %v", err)
	}
	defer c.CloseNow()
	w := &wsClient{t: t, c: c, name: "webby"}
	w.expect("Welcome to chatbridge, webby!")

	if got := tel.expect("webby"); !strings.Contains(got, "webby (127.0.0.2) joined") {
		t.Fatalf("the telnet member saw %q, want the visitor's own address, 127.0.0.2", got)
	}
	tel.send("hello through the proxy")
	w.expect("hello through the proxy")
	w.send("hello back")
	tel.expect("<webby> hello back")

	// A second visitor from 127.0.0.2 is over --max-per-ip 1: the limit
	// counts the visitor, not the proxy every visitor comes through.
	c2, _, err := websocket.Dial(ctx, "wss://127.0.0.1:"+fmt.Sprint(port)+"/ws", &websocket.DialOptions{
		HTTPClient: visitor,
		HTTPHeader: http.Header{"Origin": {origin}},
	})
	if err != nil {
		t.Fatalf("second WebSocket through the proxy: %v", err)
	}
	defer c2.CloseNow()
	if code, reason := (&wsClient{t: t, c: c2}).closeStatus(); code != websocket.StatusTryAgainLater || !strings.Contains(reason, "too many connections") {
		t.Fatalf("second visitor from the same address: close %v %q", code, reason)
	}
}

// proxyBinary returns the path of the proxy called name: on PATH or in
// one of paths (Debian puts nginx in /usr/sbin, often not on PATH).
// Without it the test skips, unless CI is set and required.
func proxyBinary(t *testing.T, name string, required bool, paths ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if required && os.Getenv("CI") != "" {
		t.Fatalf("%s not found (Debian: apt-get install %s); CI must run this test", name, name)
	}
	t.Skipf("%s not found; install it (Debian: apt-get install %s) to run this test", name, name)
	return ""
}

// readmeBlock returns the code block that follows marker in README.md.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker+"\n```")
	if !ok {
		t.Fatalf("README.md has no code block after %s", marker)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the fence's language
	block, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("README.md: the block after %s does not end", marker)
	}
	return block + "\n"
}

// replaceOnce replaces each old with its new in s, in pairs, and fails
// the test unless each old is there exactly once: a README that changed
// shape must not be tested as something else.
func replaceOnce(t *testing.T, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			t.Fatalf("the README's configuration has %q %d times, want once:\n%s", pairs[i], n, s)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

// runProxy starts the command cmdFor makes for a free port and waits
// until that port takes connections. A port taken meanwhile by someone
// else makes the proxy exit, and it is tried again on another. The
// process is killed at the end of the test; its output, and logFile if
// there is one, are shown if the test failed.
func runProxy(t *testing.T, name string, cmdFor func(port int) *exec.Cmd, logFile string) int {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		cmd := cmdFor(port)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		show := func() {
			t.Logf("%s output:\n%s", name, out.String())
			if logFile != "" {
				b, _ := os.ReadFile(logFile)
				t.Logf("%s:\n%s", logFile, b)
			}
		}
		if listening(port, exited) && !ended(exited) {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
				if t.Failed() {
					show()
				}
			})
			return port
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 3 {
			show()
			t.Fatalf("%s did not start on a free port, three times", name)
		}
	}
}

// listening waits up to 10 s for port to take connections, or for the
// process to exit.
func listening(port int, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// ended reports whether the process has exited: the port that answered
// was someone else's.
func ended(exited <-chan struct{}) bool {
	select {
	case <-exited:
		return true
	default:
		return false
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer is a process's output, written by the goroutine os/exec
// copies it with and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
