package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialFrom is a telnet user of addr connecting from the loopback address
// from (127.0.0.2, ...), so that a ban of it spares the test's others.
func dialFrom(t *testing.T, from, addr string) *telnet {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	c, err := d.Dial("tcp", addr)
	for ; err != nil; c, err = d.Dial("tcp", addr) { // a server starting
		if time.Now().After(deadline) {
			t.Fatalf("dial %s from %s: %v", addr, from, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &telnet{t: t, conn: c, r: bufio.NewReader(c)}
}

// named dials addr and takes name, as a member whose commands work.
func named(t *testing.T, addr, name string) *telnet {
	t.Helper()
	u := dialTelnet(t, addr)
	u.expect("Welcome")
	u.say("/nick " + name)
	u.expect("is now known as " + name)
	return u
}

// upTo reads what u is sent until a line with want, and returns it all
// as one text.
func (u *telnet) upTo(want string) string { return strings.Join(u.expect(want), "\n") }

const durableOpPassword = "the operators' password of a durable test"

// TestModerationSurvivesRestarts: with --data, what an operator and a
// member did is there after the node is stopped (SIGTERM) and started
// again, and after it is killed (SIGKILL) and started again: a banned
// address is refused, a muted name is still muted, the topic shows on
// join, a registered name is refused to others, and deleted lines are
// neither replayed on join nor shown by /history, while the other lines
// are.
func TestModerationSurvivesRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	dir := t.TempDir()
	bin := buildChatbridge(t, ctx, dir)
	data := filepath.Join(dir, "data")
	tcp := freeAddr(t)
	env := []string{"CHATBRIDGE_OP_PASSWORD=" + durableOpPassword}
	start := func(name string) *process {
		return startProcessEnv(t, ctx, env, name, bin, "--tcp", tcp, "--http", "", "--data", data,
			"--history", "5", "--announce-delay", "0", "--rate", "0", "--connect-rate", "0")
	}
	stop := func(p *process, sig syscall.Signal) {
		t.Helper()
		p.cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not stop on %v", p.name, sig)
		}
	}

	p := start("first run")
	op := named(t, tcp, "oper")
	op.say("/op " + durableOpPassword)
	op.expect("you are now an operator")
	// A spammer from 127.0.0.2 says two lines among alice's; alice
	// registers her name.
	spammer := dialFrom(t, "127.0.0.2", tcp)
	spammer.expect("Welcome")
	spammer.say("/nick mallory")
	spammer.expect("is now known as mallory")
	alice := named(t, tcp, "alice")
	alice.say("/register alices-password")
	alice.expect("is registered")
	spammer.say("spam one")
	for i := range 8 {
		alice.say(fmt.Sprintf("alice line %d", i))
	}
	spammer.say("spam two")
	alice.say("alice line 8")
	op.expect("<alice> alice line 8")
	// Two deletes: spam two is among the lines replayed on join
	// (--history 5), spam one among those /history shows.
	for range 2 {
		op.say("/delete last mallory")
		op.expect("you removed 1 line by mallory")
	}
	// carol, from 127.0.0.3 (a mute covers her address too), is muted:
	// whoever is called carol is, after a restart too.
	carol := dialFrom(t, "127.0.0.3", tcp)
	carol.expect("Welcome")
	carol.say("/nick carol")
	op.expect("is now known as carol")
	op.say("/mute carol")
	op.expect("you muted carol")
	op.say("/topic kept across restarts")
	op.expect("kept across restarts")
	op.say("/ban 127.0.0.2 spam")
	op.expect("you banned")
	spammer.expect("banned")

	check := func(when string) {
		t.Helper()
		if u := dialFrom(t, "127.0.0.2", tcp); !strings.Contains(u.upTo("banned"), "banned") {
			t.Fatalf("%s: 127.0.0.2 not refused", when)
		}
		bob := dialTelnet(t, tcp)
		joined := bob.upTo("end of history")
		if !strings.Contains(joined, "kept across restarts") {
			t.Errorf("%s: no topic on join:\n%s", when, joined)
		}
		for i := 4; i <= 8; i++ {
			if want := fmt.Sprintf("<alice> alice line %d", i); !strings.Contains(joined, want) {
				t.Errorf("%s: %q not replayed on join:\n%s", when, want, joined)
			}
		}
		if strings.Contains(joined, "spam") {
			t.Errorf("%s: a deleted line replayed on join:\n%s", when, joined)
		}
		bob.say("/history 20")
		shown := bob.upTo("end of history")
		if strings.Contains(shown, "spam") {
			t.Errorf("%s: a deleted line in /history:\n%s", when, shown)
		}
		for i := 0; i <= 3; i++ {
			if want := fmt.Sprintf("<alice> alice line %d", i); !strings.Contains(shown, want) {
				t.Errorf("%s: %q not in /history:\n%s", when, want, shown)
			}
		}
		bob.say("/nick alice")
		bob.expect("is registered")
		bob.say("/nick carol")
		bob.expect("is now known as carol")
		bob.say("muted?")
		bob.expect("you are muted")
		bob.conn.Close()
	}

	stop(p, syscall.SIGTERM)
	p = start("after SIGTERM")
	check("after SIGTERM")
	stop(p, syscall.SIGTERM)
	p = start("before SIGKILL")
	// Just before the kill: another spammer's line deleted, his address
	// banned.
	op = named(t, tcp, "oper")
	op.say("/op " + durableOpPassword)
	op.expect("you are now an operator")
	spammer = dialFrom(t, "127.0.0.4", tcp)
	spammer.expect("Welcome")
	spammer.say("/nick trudy")
	op.expect("is now known as trudy")
	spammer.say("spam three")
	op.expect("<trudy> spam three")
	op.say("/delete last trudy")
	op.expect("you removed 1 line by trudy")
	op.say("/ban 127.0.0.4")
	op.expect("you banned")
	// What a crash may lose is the last second (README, "Durable
	// rooms").
	time.Sleep(killAfter())
	stop(p, syscall.SIGKILL)
	p = start("after SIGKILL")
	check("after SIGKILL")
	if u := dialFrom(t, "127.0.0.4", tcp); !strings.Contains(u.upTo("banned"), "banned") {
		t.Fatal("after SIGKILL: 127.0.0.4 not refused")
	}
	stop(p, syscall.SIGTERM)
}
