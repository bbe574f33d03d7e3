package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// telnet is a telnet user of a test's server.
type telnet struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialTelnet(t *testing.T, addr string) *telnet {
	t.Helper()
	c := dialRetry(t, addr)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &telnet{t: t, conn: c, r: bufio.NewReader(c)}
}

func (u *telnet) say(line string) { fmt.Fprintf(u.conn, "%s\r\n", line) }

// expect reads lines until one contains want, and returns the lines read.
func (u *telnet) expect(want string) []string {
	u.t.Helper()
	var seen []string
	for {
		line, err := u.r.ReadString('\n')
		if err != nil {
			u.t.Fatalf("waiting for %q: %v; saw %q", want, err, seen)
		}
		seen = append(seen, strings.TrimRight(line, "\r\n"))
		if strings.Contains(line, want) {
			return seen
		}
	}
}

// killAfter is how long TestDataSurvivesKill9 waits after the lines were
// seen before it kills the server: the second a crash may lose, or
// CHATBRIDGE_TEST_KILL_AFTER, to measure what a quicker kill loses.
func killAfter() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CHATBRIDGE_TEST_KILL_AFTER")); err == nil {
		return d
	}
	return time.Second
}

// TestDataSurvivesKill9: lines said on a node with --data, and seen by
// their author, are replayed to a newcomer after the node was killed
// with SIGKILL and started again; then a data directory with a block
// file cut in half is reported in one line and the node starts with what
// it can read.
func TestDataSurvivesKill9(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	bin := buildChatbridge(t, ctx, dir)
	data := filepath.Join(dir, "data")
	tcp := freeAddr(t)
	start := func(name string) *process {
		return startProcess(t, ctx, name, bin, "--tcp", tcp, "--http", "", "--data", data, "--announce-delay", "0", "--rate", "0", "--connect-rate", "0")
	}

	p := start("first run")
	watcher := dialTelnet(t, tcp)
	watcher.expect("Welcome")
	alice := dialTelnet(t, tcp)
	alice.expect("Welcome")
	alice.say("/nick alice")
	watcher.expect("is now known as alice")
	const n = 30
	for i := range n {
		alice.say(fmt.Sprintf("line %d", i))
	}
	// Seen by another member: the server has taken every line.
	watcher.expect(fmt.Sprintf("<alice> line %d", n-1))
	// What a crash may lose is the last second (README, "Durable
	// rooms"): kill it a second after the lines were seen.
	time.Sleep(killAfter())
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	p = start("after kill -9")
	bob := dialTelnet(t, tcp)
	got := bob.expect("end of history")
	replayed := strings.Join(got, "\n")
	for i := n - 20; i < n; i++ { // --history 20
		if !strings.Contains(replayed, fmt.Sprintf("<alice> line %d\n", i)) && !strings.HasSuffix(replayed, fmt.Sprintf("<alice> line %d", i)) {
			t.Fatalf("line %d lost in the kill; the newcomer got:\n%s", i, replayed)
		}
	}
	bob.conn.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	// Cut the stream's message block in half, as a crash mid-write or a
	// disk error would leave it.
	blocks, _ := filepath.Glob(filepath.Join(data, "nats", "jetstream", "*", "streams", "chatbridge_history", "msgs", "*.blk"))
	if len(blocks) == 0 {
		t.Fatalf("no message block under %s", data)
	}
	for _, b := range blocks {
		st, err := os.Stat(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(b, st.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	p = start("after the damage")
	carol := dialTelnet(t, tcp)
	carol.expect("Welcome")
	dave := dialTelnet(t, tcp)
	dave.expect("Welcome")
	carol.say("still here")
	dave.expect("still here")
	out := p.out.String()
	if strings.Contains(out, "panic") {
		t.Fatalf("panic:\n%s", out)
	}
	if c := strings.Count(out, "data directory not read whole"); c != 1 {
		t.Errorf("%d lines say the data directory was damaged, want 1:\n%s", c, out)
	}
	t.Logf("after the damage:\n%s", out)
}
