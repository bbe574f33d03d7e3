package sshdoor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"chatbridge/tcpserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testDoor is a hub with an SSH door and a telnet server on loopback.
type testDoor struct {
	hub     *tcpserver.Hub
	door    *Server
	tcp     *tcpserver.Server
	sshAddr string
	tcpAddr string
	done    chan error // the two Serves' results
}

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startDoor(t *testing.T, hc tcpserver.HubConfig, cfg Config) *testDoor {
	t.Helper()
	if hc.MaxPerIP == 0 {
		hc.MaxPerIP = -1
	}
	if hc.AnnounceDelay == 0 {
		hc.AnnounceDelay = -1 // the tests wait for joins: announce them at once
	}
	hub := tcpserver.NewHub(hc, nil)
	if cfg.HostKey == nil {
		cfg.HostKey = newKey(t)
	}
	door, err := New(hub, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp := tcpserver.New(hub, tcpserver.Config{}, nil)
	ls, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	td := &testDoor{hub: hub, door: door, tcp: tcp, sshAddr: ls.Addr().String(), tcpAddr: lt.Addr().String(), done: make(chan error, 2)}
	go func() { td.done <- door.Serve(context.Background(), ls) }()
	go func() { td.done <- tcp.Serve(context.Background(), lt) }()
	t.Cleanup(func() { td.stop(t) })
	return td
}

// stop shuts both servers down and checks that Serve returned as it should.
func (td *testDoor) stop(t *testing.T) {
	if td.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := td.door.Shutdown(ctx); err != nil {
		t.Errorf("door Shutdown: %v", err)
	}
	if err := td.tcp.Shutdown(ctx); err != nil {
		t.Errorf("telnet Shutdown: %v", err)
	}
	for range 2 {
		select {
		case err := <-td.done:
			if !errors.Is(err, tcpserver.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	}
	td.done = nil
}

// session returns the door's session of the member called name.
func (td *testDoor) session(t *testing.T, name string) *session {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, ss := range td.door.snapshot() {
			ss.mu.Lock()
			client := ss.client
			ss.mu.Unlock()
			if client != nil && client.Name() == name {
				return ss
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no session for %s", name)
	return nil
}

// sshUser is an SSH client of the door, with a pseudo-terminal or not.
type sshUser struct {
	t      *testing.T
	client *ssh.Client
	sess   *ssh.Session
	in     io.WriteCloser
	reader sync.WaitGroup

	mu   sync.Mutex
	raw  []byte // everything received
	seen int    // how much of plain(raw) expect has gone past
	eof  bool
}

// sshOpts says how an sshUser connects.
type sshOpts struct {
	key  ssh.Signer // nil: keyboard-interactive, no key
	term string     // "" : no pseudo-terminal
	cols int
	// resize, if not 0, is a window change to this many columns sent
	// between the pseudo-terminal and the shell.
	resize int
}

func dialSSH(t *testing.T, addr, user string, o sshOpts) *sshUser {
	t.Helper()
	auth := []ssh.AuthMethod{ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil })}
	if o.key != nil {
		auth = []ssh.AuthMethod{ssh.PublicKeys(o.key)}
	}
	client, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := client.NewSession()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	u := &sshUser{t: t, client: client, sess: sess}
	t.Cleanup(u.close)
	if o.term != "" {
		cols := o.cols
		if cols == 0 {
			cols = 200
		}
		if err := sess.RequestPty(o.term, 40, cols, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		if o.resize != 0 {
			sess.WindowChange(40, o.resize)
		}
	}
	if u.in, err = sess.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	u.reader.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			u.mu.Lock()
			u.raw = append(u.raw, buf[:n]...)
			if err != nil {
				u.eof = true
			}
			u.mu.Unlock()
			if err != nil {
				return
			}
		}
	})
	return u
}

func (u *sshUser) close() {
	u.client.Close()
	u.reader.Wait()
}

// typ types s, as keys.
func (u *sshUser) typ(s string) {
	u.t.Helper()
	if _, err := io.WriteString(u.in, s); err != nil {
		u.t.Fatalf("typing %q: %v", s, err)
	}
}

// plain is what a terminal would show of b, roughly: escape sequences
// and CRs removed.
func plain(b []byte) string {
	var out []byte
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == 0x1b:
			i++
			if i < len(b) && b[i] == '[' {
				for i++; i < len(b) && (b[i] < 0x40 || b[i] > 0x7e); i++ {
				}
			}
		case c == '\r':
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// expect waits until what the user was shown since the last expect
// holds want, and returns what it was shown up to the end of want.
func (u *sshUser) expect(want string) string {
	u.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u.mu.Lock()
		text := plain(u.raw)
		eof := u.eof
		seen := u.seen
		if i := strings.Index(text[seen:], want); i >= 0 {
			u.seen = seen + i + len(want)
			u.mu.Unlock()
			return text[seen : seen+i+len(want)]
		}
		u.mu.Unlock()
		if eof || time.Now().After(deadline) {
			u.t.Fatalf("never shown %q; shown since the last look:\n%s", want, text[seen:])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawSince returns the bytes received since mark, and a new mark.
func (u *sshUser) rawSince(mark int) ([]byte, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Clone(u.raw[mark:]), len(u.raw)
}

// telnetUser is a plain TCP chat member.
type telnetUser struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialTelnet(t *testing.T, addr string) *telnetUser {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u := &telnetUser{t: t, conn: c, r: bufio.NewReader(c)}
	u.expect("Welcome")
	return u
}

func (u *telnetUser) say(line string) {
	u.t.Helper()
	if _, err := io.WriteString(u.conn, line+"\r\n"); err != nil {
		u.t.Fatal(err)
	}
}

// expect reads lines until one holds every word, and returns it.
func (u *telnetUser) expect(words ...string) string {
	u.t.Helper()
	u.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := u.r.ReadString('\n')
		if err != nil {
			u.t.Fatalf("waiting for %q: %v", words, err)
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return strings.TrimRight(line, "\r\n")
		}
	}
}
