package natsrelay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"chatbridge/tcpserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testNATS is an embedded nats-server with JetStream on a loopback port.
type testNATS struct {
	srv  *server.Server
	port int
	dir  string
	opts func(*server.Options) // changes to the options, if any
}

func startNATS(t testing.TB) *testNATS { return startNATSWith(t, nil) }

// startNATSWith starts a server with the options opts changes.
func startNATSWith(t testing.TB, opts func(*server.Options)) *testNATS {
	t.Helper()
	n := &testNATS{port: -1, dir: t.TempDir(), opts: opts}
	n.start(t)
	t.Cleanup(n.stop)
	return n
}

// start runs the server, on the port it had before if it ran before, with
// the same store.
func (n *testNATS) start(t testing.TB) {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir,
		NoLog: true, NoSigs: true,
	}
	if n.opts != nil {
		n.opts(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	n.srv = s
	n.port = s.Addr().(*net.TCPAddr).Port
}

func (n *testNATS) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *testNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// node is one chatbridge node: a hub and its relay.
type node struct {
	hub   *tcpserver.Hub
	relay *Relay
}

func startNode(t *testing.T, url, id string, ttl time.Duration) *node {
	t.Helper()
	return startNodeWith(t, Config{URL: url, NodeID: id, PresenceTTL: ttl}, slog.New(slog.DiscardHandler))
}

// startNodeWith starts a node with cfg, the tests' secret and quick
// reconnects, that logs to log.
func startNodeWith(t *testing.T, cfg Config, log *slog.Logger) *node {
	t.Helper()
	if cfg.Secret == nil && !cfg.Insecure {
		cfg.Secret = []byte(testSecret)
	}
	if cfg.ReconnectWait == 0 {
		cfg.ReconnectWait = 50 * time.Millisecond
	}
	r, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// No limit on lines or on name changes: the tests talk and rename
	// as fast as they can (TestQuickRenamesLeaveNoGhosts renames 20 times
	// at once), and joins are announced at once: the tests wait for them.
	hub := tcpserver.NewHub(tcpserver.HubConfig{Relay: r, MaxPerIP: -1, Rate: -1, ChangeBurst: -1, AnnounceDelay: -1}, nil)
	if err := r.Start(context.Background(), hub); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	n := &node{hub: hub, relay: r}
	n.waitUp(t)
	return n
}

// logBuffer is a log safe for the relay and the test at once.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitUp waits until the relay has set up its link.
func (n *node) waitUp(t *testing.T) {
	t.Helper()
	waitFor(t, "link up on "+n.relay.NodeID(), func() bool { return n.relay.store.Load() != nil })
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// user is a test member of one node's hub: it records every line the hub
// sends it, and is driven through its Client as a transport would.
type user struct {
	t      *testing.T
	client *tcpserver.Client
	name   string

	mu     sync.Mutex
	lines  []string // not yet read by expect
	all    []string // every line, for checks of order
	signal chan struct{}
}

func (u *user) Send(ev *tcpserver.Event) {
	u.mu.Lock()
	lines := strings.Split(strings.TrimSuffix(string(ev.Line()), "\r\n"), "\r\n")
	u.lines = append(u.lines, lines...)
	u.all = append(u.all, lines...)
	u.mu.Unlock()
	select {
	case u.signal <- struct{}{}:
	default:
	}
}

func (u *user) Close(string) {}

// join connects a user called nick ("" for a guest) to n's hub, in room
// ("" for lobby), and reads its welcome.
func (n *node) join(t *testing.T, nick, room string) *user {
	t.Helper()
	u := &user{t: t, signal: make(chan struct{}, 1)}
	// A telnet member, as far as the hub knows: its address is shown.
	c, err := n.hub.Connect(u, tcpserver.ConnectInfo{Addr: "192.0.2.1:1000", Transport: "tcp", Nick: nick, Room: room})
	if err != nil {
		t.Fatal(err)
	}
	u.client, u.name = c, c.Name()
	t.Cleanup(func() { c.Leave("") })
	u.expect("*** Welcome to chatbridge, ")
	u.expect(" in ")
	return u
}

func (u *user) say(lines ...string) {
	for _, l := range lines {
		u.client.Handle([]byte(l))
	}
}

// expect waits for a line containing want, dropping the lines before it,
// and returns it.
func (u *user) expect(want string) string {
	u.t.Helper()
	deadline := time.After(10 * time.Second)
	var seen []string
	for {
		u.mu.Lock()
		for i, l := range u.lines {
			if strings.Contains(l, want) {
				u.lines = u.lines[i+1:]
				u.mu.Unlock()
				return l
			}
		}
		seen = append(seen, u.lines...)
		u.lines = nil
		u.mu.Unlock()
		select {
		case <-u.signal:
		case <-deadline:
			u.t.Fatalf("%s: no %q; saw %q", u.name, want, seen)
		}
	}
}

// expectAll waits until every one of want has been received, in any
// order, and forgets the lines received so far.
func (u *user) expectAll(want ...string) {
	u.t.Helper()
	deadline := time.After(10 * time.Second)
	missing := make(map[string]bool)
	for _, w := range want {
		missing[w] = true
	}
	var seen []string
	for {
		for _, l := range u.take() {
			seen = append(seen, l)
			delete(missing, l)
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-u.signal:
		case <-deadline:
			u.t.Fatalf("%s: missing %v; saw %q", u.name, missing, seen)
		}
	}
}

// matching returns every line received so far that starts with prefix.
func (u *user) matching(prefix string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, l := range u.all {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// ask sends a command and waits for an answer containing want, asking
// again while the answer lacks it (presence spreads in milliseconds, not
// at once), and joins are announced at once: the tests wait for them.
func (u *user) ask(cmd, answer, want string) string {
	u.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u.say(cmd)
		got := u.expect(answer)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: %s answered %q, want %q in it", u.name, cmd, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quiet checks that no line containing what arrives for a little while.
func (u *user) quiet(what string) {
	u.t.Helper()
	time.Sleep(200 * time.Millisecond)
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, l := range u.lines {
		if strings.Contains(l, what) {
			u.t.Fatalf("%s: unexpected %q", u.name, l)
		}
	}
}

// take returns the lines received so far and forgets them.
func (u *user) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.lines
	u.lines = nil
	return out
}
