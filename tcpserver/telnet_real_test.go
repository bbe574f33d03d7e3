package tcpserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lookPath finds a program a test drives. Without it the test skips,
// unless CI is set: CI installs it (.ci/run) and must run the test.
func lookPath(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (Debian: apt-get install %s); CI must run this test", name, pkg)
	}
	t.Skipf("%s not found (Debian: apt-get install %s)", name, pkg)
	return ""
}

// terminal is a program running in a pseudo-terminal of a private tmux
// server, whose keys a test types and whose screen it reads.
type terminal struct {
	t    *testing.T
	tmux string
	sock string
}

func startTerminal(t *testing.T, argv ...string) *terminal {
	t.Helper()
	term := &terminal{t: t, tmux: lookPath(t, "tmux", "tmux"), sock: filepath.Join(t.TempDir(), "tmux")}
	term.run(append([]string{"new-session", "-d", "-x", "120", "-y", "50"}, argv...)...)
	t.Cleanup(func() { term.run("kill-server") })
	return term
}

// run runs one tmux command on the test's own server (-S, and no
// configuration file but tmux's defaults).
func (term *terminal) run(args ...string) string {
	term.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, term.tmux, append([]string{"-S", term.sock, "-f", "/dev/null"}, args...)...)
	cmd.Env = append(os.Environ(), "TERM=xterm", "TMUX=") // not nested in a tmux the tests may run in
	out, err := cmd.CombinedOutput()
	if err != nil && args[0] != "kill-server" {
		term.t.Fatalf("tmux %q: %v: %s", args, err, out)
	}
	return string(out)
}

// keys types keys, as tmux's send-keys names them ("Enter", "C-c", "Left";
// anything else is typed as it is).
func (term *terminal) keys(keys ...string) {
	term.t.Helper()
	term.run(append([]string{"send-keys", "-t", "0"}, keys...)...)
}

// screen returns what the terminal shows, scrollback included.
func (term *terminal) screen() string {
	term.t.Helper()
	return strings.TrimRight(term.run("capture-pane", "-p", "-J", "-S", "-", "-t", "0"), "\n ")
}

// waitFor waits until the screen shows want, or fails the test after d.
func (term *terminal) waitFor(want string, d time.Duration) {
	term.t.Helper()
	if !term.poll(want, d, nil) {
		term.t.Fatalf("the terminal never showed %q; it shows:\n%s", want, term.screen())
	}
}

// poll waits until the screen shows want, calling each (if not nil)
// before every look, for at most d; it reports whether want showed.
func (term *terminal) poll(want string, d time.Duration, each func()) bool {
	term.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if each != nil {
			each()
		}
		if strings.Contains(term.screen(), want) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCount waits until the screen shows want n times, or fails the test
// after d.
func (term *terminal) waitCount(want string, n int, d time.Duration) {
	term.t.Helper()
	deadline := time.Now().Add(d)
	for strings.Count(term.screen(), want) < n {
		if time.Now().After(deadline) {
			term.t.Fatalf("the terminal never showed %q %d times; it shows:\n%s", want, n, term.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRealTelnet drives the real telnet client, in a pseudo-terminal,
// through what a new user does: talk, use the arrow keys, press Ctrl-C
// and Ctrl-\, and go on chatting. On Ctrl-C telnet sends IAC IP IAC DO
// TIMING-MARK and throws away all it receives until the mark is answered;
// unanswered, the user saw nothing more, ever.
func TestRealTelnet(t *testing.T) {
	telnet := lookPath(t, "telnet", "telnet")
	ts := startServer(t, HubConfig{Rate: -1}, Config{})
	b := ts.dial(t)
	host, port, err := net.SplitHostPort(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	term := startTerminal(t, telnet, host, port)
	term.waitFor("Welcome to chatbridge", 5*time.Second)
	joined := b.expect(" joined")
	name := strings.Fields(strings.TrimPrefix(joined, "*** "))[0]

	term.keys("hello from telnet", "Enter")
	b.expectExact("<" + name + "> hello from telnet")

	// The arrow keys' escape sequences are removed whole: in line mode
	// the client's terminal does not interpret them, and sends them on.
	term.keys("abc", "Left", "X", "Up", "Enter")
	b.expectExact("<" + name + "> abcX")

	for i, key := range []string{"C-c", `C-\`} {
		term.keys(key)
		// Until telnet has the answer it drops what it receives, as it
		// should (that is what Ctrl-C asks of it): b says a numbered line
		// until one shows, a few a second.
		n := 0
		if !term.poll("after "+key+" ", 5*time.Second, func() {
			if n++; n%4 == 1 {
				b.send(fmt.Sprintf("after %s %d", key, n))
			}
		}) {
			t.Fatalf("after %s, lines said for 5 s and none shown:\n%s", key, term.screen())
		}
		// From then on every line arrives.
		b.send("and then " + key)
		term.waitFor("<"+b.name+"> and then "+key, 5*time.Second)
		// The user's own lines still go out, and answers come back.
		term.keys("/rooms", "Enter")
		term.waitCount("rooms: lobby (2)", i+1, 5*time.Second)
		term.keys("typed after "+key, "Enter")
		b.expectExact("<" + name + "> typed after " + key)
	}
}
