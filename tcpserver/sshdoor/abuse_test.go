package sshdoor

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"chatbridge/tcpserver"
)

func TestEverythingButOneChatSessionIsRefused(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	u := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	u.expect("[lobby] alice> ")

	// A second session on the same connection.
	if _, err := u.client.NewSession(); err == nil || !strings.Contains(err.Error(), "one session per connection") {
		t.Errorf("second session: %v", err)
	}
	// Port forwarding, both ways.
	if c, err := u.client.Dial("tcp", td.tcpAddr); err == nil {
		c.Close()
		t.Error("direct-tcpip to the telnet port was let through")
	}
	if l, err := u.client.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Error("remote forwarding was accepted")
	}
	// Other kinds of channel.
	if _, _, err := u.client.OpenChannel("x11", nil); err == nil {
		t.Error("x11 channel accepted")
	}
	// The session still works after all that.
	u.typ("/who\r")
	u.expect("1 in lobby: alice")

	// exec, subsystem, env, agent forwarding: refused on a fresh
	// connection, which is then still good for a shell.
	client, err := ssh.Dial("tcp", td.sshAddr, &ssh.ClientConfig{User: "bob", HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Auth: []ssh.AuthMethod{ssh.PublicKeys(newKey(t))}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Setenv("LC_ALL", "C"); err == nil {
		t.Error("env request accepted")
	}
	for _, req := range []string{"exec", "subsystem", "auth-agent-req@openssh.com", "x11-req"} {
		ok, err := sess.SendRequest(req, true, ssh.Marshal(struct{ S string }{"ls"}))
		if ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want refused", req, ok, err)
		}
	}
	if n := td.hub.Stats().Clients["ssh"]; n != 1 {
		t.Fatalf("members = %d: a refused request made one", n)
	}
	sess.Close()
}

func TestConnectionsThatDoNotGetToAShellAreClosed(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{HandshakeTimeout: 300 * time.Millisecond})

	// Connected, then nothing: not even a version.
	c, err := net.Dial("tcp", td.sshAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("held open: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("closed after %v", took)
	}

	// Authenticated, a session open, but no shell asked for.
	client, err := ssh.Dial("tcp", td.sshAddr, &ssh.ClientConfig{User: "bob", HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Auth: []ssh.AuthMethod{ssh.PublicKeys(newKey(t))}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.NewSession(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection without a shell was held open")
	}

	// A shell in time lifts the deadline: the member stays.
	u := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	u.expect("[lobby] alice> ")
	time.Sleep(600 * time.Millisecond) // twice the handshake's time
	u.typ("/who\r")
	u.expect("1 in lobby: alice")
}

func TestClientThatGrantsNoWindowIsCutOffAsTooSlow(t *testing.T) {
	// No bound in bytes: the write's deadline is what cuts her off here
	// (the bound has a test of its own, below).
	td := startDoor(t, tcpserver.HubConfig{Rate: -1, MaxLine: 8000}, Config{WriteTimeout: 300 * time.Millisecond, Queue: 100000, QueueBytes: -1})
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	alice.expect("[lobby] alice> ")
	bob := dialTelnet(t, td.tcpAddr)
	// alice's client stops reading: it stops granting window, and after
	// the channel's 2 MiB every write to it waits. Her socket is not
	// full, so only the door's channel timer can see it.
	alice.mu.Lock()
	defer alice.mu.Unlock()
	line := strings.Repeat("x", 7000)
	for range 400 { // 2.8 MB
		bob.say(line)
	}
	bob.expect("alice", "left", "too slow")
	if n := td.hub.Stats().SlowKicks; n != 1 {
		t.Fatalf("slow kicks = %d, want 1", n)
	}
}

// A member whose client stops reading is cut off as too slow once what it
// has waiting passes Config.QueueBytes, long before its write's deadline
// or its queue's bound in events: --queue-bytes holds for SSH members too.
func TestSSHMemberIsCutOffPastQueueBytes(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{Rate: -1, MaxLine: 8000}, Config{WriteTimeout: time.Minute, Queue: 100000, QueueBytes: 256 << 10})
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	alice.expect("[lobby] alice> ")
	bob := dialTelnet(t, td.tcpAddr)
	alice.mu.Lock() // her client stops reading: after the channel's 2 MiB, writes wait
	defer alice.mu.Unlock()
	start := time.Now()
	line := strings.Repeat("x", 7000)
	for range 400 { // 2.8 MB: the window and 256 KiB more, with room to spare
		bob.say(line)
	}
	bob.expect("alice", "left", "too slow")
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("cut off after %v: the write's deadline (1 min), not the bound in bytes", d)
	}
	if n := td.hub.Stats().SlowKicks; n != 1 {
		t.Fatalf("slow kicks = %d, want 1", n)
	}
}

func TestWindowChangesAreBoundedAndFollowed(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm", cols: 0xFFFF})
	alice.expect("[lobby] alice> ")
	ss := td.session(t, "alice")
	if got := ss.cols.Load(); got != maxColumns {
		t.Fatalf("a window 65535 wide is taken as %d columns, want %d", got, maxColumns)
	}
	// A storm of window changes, huge and tiny, then a real one.
	for i := range 2000 {
		w := uint32(1 << 31)
		if i%2 == 0 {
			w = 0
		}
		alice.sess.WindowChange(int(w), int(w))
	}
	alice.sess.WindowChange(24, 40)
	deadline := time.Now().Add(5 * time.Second)
	for ss.cols.Load() != 40 {
		if time.Now().After(deadline) {
			t.Fatalf("width %d after the storm, want the last one asked, 40", ss.cols.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}

	bob := dialTelnet(t, td.tcpAddr)
	bob.say("/nick bob")
	alice.expect("known as bob")
	bob.say(strings.Repeat("word ", 30))
	alice.expect("<bob> word")
	text := alice.expect("\n[lobby] alice> ")
	rows := strings.Split(text, "\n")
	if len(rows) < 4 {
		t.Fatalf("150 columns in a 40-column window, as %d rows: %q", len(rows), text)
	}
	for _, row := range rows {
		if n := len([]rune(row)); n > 40 {
			t.Fatalf("row of %d columns in a 40-column window: %q", n, row)
		}
	}
}

func TestWhatIsTypedIsCleanAndBounded(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{MaxLine: 6000}, Config{})
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	alice.expect("[lobby] alice> ")
	bob := dialTelnet(t, td.tcpAddr)
	bob.say("/nick bob")
	alice.expect("known as bob")

	// Colour codes and a title typed are keys the editor does not know:
	// dropped, never relayed.
	alice.typ("\x1b[31mred\x1b]0;title\x07 text\r")
	if line := bob.expect("<alice>"); strings.ContainsAny(line, "\x1b\x07") {
		t.Fatalf("escape relayed: %q", line)
	}

	// An escape sequence that never ends does not wedge the editor.
	alice.typ("\x1b[" + strings.Repeat("1", 1000) + "\rstill here\r")
	bob.expect("<alice> still here")

	// A paste bracket typed by the client cannot lift the editor's bound
	// on a line (4096 characters).
	alice.typ("\x1b[200~" + strings.Repeat("p", 5000) + "\x1b[201~\r")
	line := bob.expect("<alice> ppp")
	if n := strings.Count(line, "p"); n > 4096 {
		t.Fatalf("a pasted line of %d characters got through the editor", n)
	}

	// Over --max-line: refused with the hub's error, still a member.
	td2 := startDoor(t, tcpserver.HubConfig{MaxLine: 100}, Config{})
	carol := dialSSH(t, td2.sshAddr, "carol", sshOpts{term: "xterm"})
	carol.expect("[lobby] carol> ")
	carol.typ(strings.Repeat("y", 150) + "\r")
	carol.expect("line too long (more than 100 bytes)")
	carol.typ("/who\r")
	carol.expect("1 in lobby: carol")
}

func TestTabCompletesCommandsAndNames(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	bob := dialTelnet(t, td.tcpAddr)
	bob.say("/nick bobby")
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	alice.expect("bobby") // renamed: in the list of who is here, or as a notice
	alice.expect("[lobby] alice> ")

	alice.typ("/jo\t")
	alice.expect("/join ")
	alice.typ("dev\r")
	alice.expect("[dev] alice> ")
	alice.typ("/join lobby\r")
	alice.expect("[lobby] alice> ")

	alice.typ("bo\t")
	alice.expect("bobby: ")
	alice.typ("hi\r")
	bob.expect("<alice> bobby: hi")

	alice.typ("/msg BO\tpsst\r")
	bob.expect("*alice* psst")

	// Several: as much as they share, then the list.
	dialSSH(t, td.sshAddr, "bobcat", sshOpts{term: "xterm"}).expect("[lobby] bobcat> ")
	alice.typ("b\t")
	alice.expect("bob")
	alice.typ("\t")
	alice.expect("bobby, bobcat")
}

// A window change between the pseudo-terminal and the shell is the size
// the editor starts with.
func TestWindowChangeBeforeTheShell(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{}, Config{})
	u := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm", cols: 200, resize: 30})
	u.expect("[lobby] alice> ")
	if got := td.session(t, "alice").cols.Load(); got != 30 {
		t.Fatalf("width %d, want 30", got)
	}
}

// A member the hub will not have (the server full) is told why, and the
// client exits with status 1.
func TestMemberTheHubRefusesIsToldWhy(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{MaxClients: 1}, Config{})
	dialTelnet(t, td.tcpAddr)
	for _, o := range []sshOpts{{term: "xterm"}, {}} {
		u := dialSSH(t, td.sshAddr, "alice", o)
		u.expect("*** server full, try again later\n")
		var exit *ssh.ExitError
		if err := waitSession(u); !errors.As(err, &exit) || exit.ExitStatus() != 1 {
			t.Fatalf("session ended with %v, want exit status 1", err)
		}
	}
}
