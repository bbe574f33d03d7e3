package sshdoor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"chatbridge/tcpserver"
)

func TestSSHMemberChatsWithTelnet(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	key := newKey(t)
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{key: key, term: "xterm-256color"})
	alice.expect("Welcome to chatbridge, alice!")
	alice.expect("[lobby] alice> ")

	bob := dialTelnet(t, td.tcpAddr)
	bob.say("/nick bob")
	alice.expect("is now known as bob")
	bob.say("hello from telnet")
	alice.expect("<bob> hello from telnet")

	alice.typ("hello from ssh\r")
	bob.expect("<alice> hello from ssh")

	// The key the client proved it holds is the member's.
	if got, want := td.session(t, "alice").client.Key(), ssh.FingerprintSHA256(key.PublicKey()); got != want {
		t.Fatalf("Key() = %q, want %q", got, want)
	}
	// The door's member is "ssh" to the hub, and its address is not
	// shown by default: only telnet's are.
	if n := td.hub.Stats().Clients["ssh"]; n != 1 {
		t.Fatalf("ssh clients = %d, want 1", n)
	}
	if line := bob.expectJoin(t, td, "carol"); strings.Contains(line, "127.0.0.1") {
		t.Fatalf("join notice shows an SSH member's address: %q", line)
	}
}

// expectJoin connects carol over SSH and returns the join notice bob gets.
func (u *telnetUser) expectJoin(t *testing.T, td *testDoor, name string) string {
	dialSSH(t, td.sshAddr, name, sshOpts{term: "xterm"}).expect("[lobby] " + name + "> ")
	return u.expect(name, "joined")
}

func TestIncomingLineLeavesHalfTypedInputIntact(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm-256color"})
	alice.expect("[lobby] alice> ")
	bob := dialTelnet(t, td.tcpAddr)
	bob.say("/nick bob")
	alice.expect("is now known as bob")
	alice.expect("[lobby] alice> ")

	alice.typ("half typ")
	alice.expect("half typ")
	bob.say("a line that comes meanwhile")
	// The line goes above the prompt, and the prompt and the half-typed
	// input are drawn again below it.
	alice.expect("<bob> a line that comes meanwhile\n[lobby] alice> half typ")

	// What was typed is still there to finish, with the editor's keys:
	// Left twice, then insert.
	alice.typ("\x1b[D\x1b[De")
	alice.typ("d\r")
	bob.expect("<alice> half tedyp")
}

func TestNamesInColourAndColoursOff(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm-256color"})
	alice.expect("[lobby] alice> ")
	_, mark := alice.rawSince(0)
	bob := dialTelnet(t, td.tcpAddr)
	bob.say("/nick bob")
	bob.say("hi")
	alice.expect("hi")
	raw, mark := alice.rawSince(mark)
	coloured := "<\x1b[" + palette256.colourOf("bob") + "mbob\x1b[39m> hi"
	if !strings.Contains(string(raw), coloured) {
		t.Fatalf("no %q in %q", coloured, raw)
	}
	// Every name, in every kind of line: the rename, both names.
	if want := "\x1b[" + palette256.colourOf("bob") + "mbob\x1b[39m"; !strings.Contains(string(raw), "is now known as "+want) {
		t.Fatalf("rename not coloured: %q", raw)
	}

	alice.typ("/colors off\r")
	alice.expect("colours off")
	bob.say("plain now")
	alice.expect("plain now")
	raw, _ = alice.rawSince(mark)
	if !strings.Contains(string(raw), "<bob> plain now") {
		t.Fatalf("a name still coloured after /colors off: %q", raw)
	}
	alice.typ("/colors\r")
	alice.expect("colours are off")
	alice.typ("/colors purple\r")
	alice.expect("usage: /colors on|off")
	alice.typ("/help\r")
	alice.expect("/colors on|off")

	// A terminal that says it has no colours gets none, and cannot ask.
	carol := dialSSH(t, td.sshAddr, "carol", sshOpts{term: "dumb"})
	carol.expect("[lobby] carol> ")
	_, mark = carol.rawSince(0)
	bob.say("to carol")
	carol.expect("to carol")
	if raw, _ := carol.rawSince(mark); strings.Contains(string(raw), "\x1b[38") || strings.Contains(string(raw), "\x1b[3") && strings.Contains(string(raw), "mbob") {
		t.Fatalf("colour for a dumb terminal: %q", raw)
	}
	carol.typ("/colors on\r")
	carol.expect("no colours")
}

func TestColourOfANameIsStable(t *testing.T) {
	for _, p := range []palette{palette256, palette16} {
		if p.colourOf("Alice") != p.colourOf("alice") {
			t.Fatal("the colour of a name depends on its case")
		}
		seen := map[string]bool{}
		for _, n := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"} {
			seen[p.colourOf(n)] = true
		}
		if len(seen) < 3 {
			t.Fatalf("eight names share %d colours", len(seen))
		}
	}
}

func TestWithoutPseudoTerminalLinesArePlain(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	bob := dialTelnet(t, td.tcpAddr)
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{})
	alice.expect("Welcome to chatbridge, alice!")
	bob.expect("alice", "joined")
	alice.typ("one\ntwo\r\n")
	bob.expect("<alice> one")
	bob.expect("<alice> two")
	bob.say("back")
	alice.expect("<guest-")
	raw, _ := alice.rawSince(0)
	if strings.ContainsRune(string(raw), 0x1b) {
		t.Fatalf("escape sequences without a terminal: %q", raw)
	}
	// Lines as telnet has them, CRLF and all.
	if !strings.Contains(string(raw), "Welcome to chatbridge, alice! You are in lobby. Type /help for commands.\r\n") ||
		!strings.Contains(string(raw), "> back\r\n") {
		t.Fatalf("lines = %q", raw)
	}
}

func TestKeylessClientIsAMemberWithoutKey(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	u := dialSSH(t, td.sshAddr, "dave", sshOpts{term: "xterm"})
	u.expect("[lobby] dave> ")
	if k := td.session(t, "dave").client.Key(); k != "" {
		t.Fatalf("Key() = %q for a client without a key", k)
	}
}

func TestUserNameThatCannotBeANickGetsAGuestName(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	for _, tc := range []struct{ user, why string }{
		{"root", "is kept for the server"},
		{"no spaces", "is not valid"},
		{strings.Repeat("x", 5000), "is not valid"},
	} {
		u := dialSSH(t, td.sshAddr, tc.user, sshOpts{term: "xterm"})
		u.expect("Welcome to chatbridge, guest-")
		line := u.expect("you are a guest for now")
		if !strings.Contains(line, tc.why) || len(line) > 300 {
			t.Errorf("user %.20q: notice %q", tc.user, line)
		}
		u.close()
	}
	// Taken: the hub's usual notice.
	first := dialSSH(t, td.sshAddr, "erin", sshOpts{term: "xterm"})
	first.expect("[lobby] erin> ")
	second := dialSSH(t, td.sshAddr, "ERIN", sshOpts{term: "xterm"})
	second.expect(`"ERIN" is taken; you are a guest for now`)
}

func TestCtrlDLeavesAsQuitDoes(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	bob := dialTelnet(t, td.tcpAddr)
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	alice.expect("[lobby] alice> ")
	bob.expect("alice", "joined")
	alice.typ("\x04")
	alice.expect("bye")
	if line := bob.expect("alice", "left"); strings.Contains(line, "(") {
		t.Fatalf("leave notice %q: a quit gives no reason", line)
	}
	if err := waitSession(alice); err != nil {
		t.Fatalf("session ended with %v, want exit status 0", err)
	}
}

// waitSession waits for the server to end u's session.
func waitSession(u *sshUser) error {
	done := make(chan error, 1)
	go func() { done <- u.sess.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		u.client.Close()
		<-done
		return errors.New("the session did not end")
	}
}

func TestShutdownSaysGoodbyeAndClosesTheChannel(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	alice.expect("[lobby] alice> ")
	plainUser := dialSSH(t, td.sshAddr, "bob", sshOpts{})
	plainUser.expect("Welcome")
	alice.typ("half")
	alice.expect("half")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := td.door.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	alice.expect("*** server shutting down\n")
	if err := waitSession(alice); err != nil {
		t.Fatalf("session ended with %v, want exit status 0", err)
	}
	plainUser.expect("*** server shutting down\n")
	if err := waitSession(plainUser); err != nil {
		t.Fatalf("session without a terminal ended with %v, want exit status 0", err)
	}
	// Nobody new gets in.
	if c, err := net.DialTimeout("tcp", td.sshAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Shutdown")
	}
}

// ssh -T with its input from a file: the answers to the last lines come
// before the session ends, and it ends with exit status 0.
func TestInputThatEndsIsAQuitAfterTheAnswers(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	bob := dialTelnet(t, td.tcpAddr)
	for _, o := range []sshOpts{{}, {term: "xterm"}} {
		u := dialSSH(t, td.sshAddr, "script", o)
		u.expect("Welcome")
		u.typ("/who\rsaid and gone\r")
		u.in.Close()
		u.expect("2 in lobby: ")
		u.expect("*** bye\n")
		if err := waitSession(u); err != nil {
			t.Fatalf("pty %v: session ended with %v, want exit status 0", o.term != "", err)
		}
		bob.expect("<script> said and gone")
		if line := bob.expect("script", "left"); strings.Contains(line, "(") {
			t.Fatalf("leave notice %q: the end of the input is a quit", line)
		}
		u.close()
	}
}

// Lines typed faster than the rate wait their turn and are all said, at
// the rate, as on telnet (see tcpserver's flood control): a paste into
// the SSH editor is not cut.
func TestPastedLinesWaitTheirTurn(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{Rate: 20, Burst: 5}, Config{})
	for _, pty := range []bool{true, false} {
		term := ""
		if pty {
			term = "xterm"
		}
		alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: term})
		alice.expect("alice")
		bob := dialTelnet(t, td.tcpAddr)
		var paste strings.Builder
		for i := range 15 {
			fmt.Fprintf(&paste, "line %d\r", i)
		}
		alice.typ(paste.String())
		for i := range 15 {
			bob.expect(fmt.Sprintf("<alice> line %d", i))
		}
		alice.close()
	}
}

// TestKeyOwnsRegisteredName: /register over SSH records the key; a later
// login with that key as that name has it at once, without /identify,
// and a login with another key as that name gets a guest name.
func TestKeyOwnsRegisteredName(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{State: tcpserver.NewMemState()}, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := td.hub.Moderation().Start(ctx); err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{key: key, term: "xterm"})
	alice.expect("[lobby] alice> ")
	alice.typ("/register open-sesame\r")
	alice.expect(ssh.FingerprintSHA256(key.PublicKey()))
	alice.close()

	// Once alice's session is gone, her key takes the name back.
	deadline := time.Now().Add(10 * time.Second)
	for {
		again := dialSSH(t, td.sshAddr, "alice", sshOpts{key: key, term: "xterm"})
		got := again.expect("> ")
		if strings.Contains(got, "[lobby] alice> ") {
			if !strings.Contains(got, "your SSH key owns the name") { // shown above the prompt, before or after it
				again.expect("your SSH key owns the name")
			}
			break
		}
		again.close()
		if time.Now().After(deadline) {
			t.Fatalf("the key's login as alice: %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	other := dialSSH(t, td.sshAddr, "alice", sshOpts{key: newKey(t), term: "xterm"})
	other.expect(`"alice" is registered`)
	other.expect("[lobby] guest-")
}
