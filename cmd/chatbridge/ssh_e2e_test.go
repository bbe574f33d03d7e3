package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// needTools returns the paths of the programs an end-to-end test drives,
// or skips the test without them, unless CI is set, when it fails: CI
// installs them (.ci/run).
func needTools(t *testing.T, names ...string) []string {
	t.Helper()
	var paths []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (.ci/run installs it)", n)
			}
			t.Skipf("%s is not installed", n)
		}
		paths = append(paths, p)
	}
	return paths
}

// tmuxPane is one tmux pane on a server of the test's own.
type tmuxPane struct {
	t    *testing.T
	tmux string
	sock string
}

func (p *tmuxPane) run(args ...string) string {
	p.t.Helper()
	out, err := exec.Command(p.tmux, append([]string{"-L", p.sock, "-f", os.DevNull}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %q: %v: %s", args, err, out)
	}
	return string(out)
}

// keys types into the pane: literal text, or tmux key names (Enter, Tab).
func (p *tmuxPane) keys(literal bool, keys ...string) {
	p.t.Helper()
	args := []string{"send-keys", "-t", "chat"}
	if literal {
		args = append(args, "-l")
	}
	p.run(append(args, keys...)...)
}

// screen is what the pane shows now, one string per row, without the
// blank rows at the bottom.
func (p *tmuxPane) screen() []string {
	rows := strings.Split(strings.TrimRight(p.run("capture-pane", "-p", "-t", "chat"), "\n "), "\n")
	for i := range rows {
		rows[i] = strings.TrimRight(rows[i], " ")
	}
	return rows
}

// waitScreen waits until ok says yes to what the pane shows.
func (p *tmuxPane) waitScreen(what string, ok func(rows []string) bool) []string {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := p.screen()
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the screen never showed %s:\n%s", what, strings.Join(rows, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastRow(rows []string) string { return rows[len(rows)-1] }

func hasRow(rows []string, s string) bool {
	for _, r := range rows {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// TestOpenSSHClientChatsWithTelnet drives the real OpenSSH client in a
// pseudo-terminal (tmux), as a person would: it chats with a telnet
// user, a line comes in while it is typing and leaves the half-typed
// input on screen, intact, below it; Tab completes; SIGTERM says goodbye
// and the client exits 0.
func TestOpenSSHClientChatsWithTelnet(t *testing.T) {
	tools := needTools(t, "ssh", "tmux")
	sshBin, tmux := tools[0], tools[1]

	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "throwaway")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)

	tcpAddr, sshAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--tcp", tcpAddr, "--http", "", "--ssh", sshAddr, "--ssh-host-key", filepath.Join(dir, "host_key"), "--log-level", "debug", "--announce-delay", "0"}, env(nil), &logs)
	}()
	dialRetry(t, sshAddr).Close()

	host, port, _ := net.SplitHostPort(sshAddr)
	pane := &tmuxPane{t: t, tmux: tmux, sock: fmt.Sprintf("chatbridge-test-%d", os.Getpid())}
	pane.run("new-session", "-d", "-s", "chat", "-x", "100", "-y", "30")
	defer exec.Command(tmux, "-L", pane.sock, "kill-server").Run()
	pane.run("set-option", "-t", "chat", "remain-on-exit", "on")
	// The pane's shell writes ssh's exit status to a file: tmux's own
	// #{pane_dead_status} was seen to stay empty for seconds after ssh
	// had exited.
	statusFile := filepath.Join(dir, "ssh-status")
	sshCmd := strings.Join([]string{sshBin, "-tt", "-F", os.DevNull, "-p", port, "-i", keyFile,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "alice@" + host}, " ")
	pane.run("respawn-pane", "-k", "-t", "chat", "sh -c '"+sshCmd+"; echo $? > "+statusFile+"'")
	pane.waitScreen("the prompt", func(rows []string) bool { return lastRow(rows) == "[lobby] alice>" })

	// The key OpenSSH offered is the member's.
	if fp := ssh.FingerprintSHA256(signer.PublicKey()); !strings.Contains(logs.String(), "key="+fp) {
		t.Errorf("the log does not show alice's key %s:\n%s", fp, logs.String())
	}

	bob := dialRetry(t, tcpAddr)
	defer bob.Close()
	br := bufio.NewReader(bob)
	readUntil(t, br, "Welcome")
	fmt.Fprintf(bob, "/nick bob\r\n")
	pane.waitScreen("bob's name", func(rows []string) bool { return hasRow(rows, "is now known as bob") })

	pane.keys(true, "hello bob")
	pane.keys(false, "Enter")
	readUntil(t, br, "<alice> hello bob")

	// Half a line typed, then a line from bob: it goes above the prompt,
	// and the prompt and the half-typed line stay below it, as typed.
	pane.keys(true, "half typed")
	pane.waitScreen("the half-typed line", func(rows []string) bool { return lastRow(rows) == "[lobby] alice> half typed" })
	fmt.Fprintf(bob, "a line while alice types\r\n")
	rows := pane.waitScreen("bob's line", func(rows []string) bool { return hasRow(rows, "<bob> a line while alice types") })
	if got := lastRow(rows); got != "[lobby] alice> half typed" {
		t.Fatalf("after bob's line the input row is %q, want the prompt and the half-typed line:\n%s", got, strings.Join(rows, "\n"))
	}
	if got := rows[len(rows)-2]; got != "<bob> a line while alice types" {
		t.Fatalf("bob's line is not right above the prompt: %q", got)
	}
	// And it is still alice's line to finish, with the editor's keys.
	pane.keys(false, "Home")
	pane.keys(true, "a ")
	pane.keys(false, "End")
	pane.keys(true, ", finished")
	pane.keys(false, "Enter")
	readUntil(t, br, "<alice> a half typed, finished")

	// Tab completes a command; Up brings the last line back.
	pane.keys(true, "/wh")
	pane.keys(false, "Tab")
	pane.waitScreen("the completed command", func(rows []string) bool { return lastRow(rows) == "[lobby] alice> /who" })
	pane.keys(false, "Enter")
	pane.waitScreen("who is here", func(rows []string) bool { return hasRow(rows, "*** 2 in lobby: alice, bob") })
	pane.keys(false, "Up")
	pane.waitScreen("the history", func(rows []string) bool { return lastRow(rows) == "[lobby] alice> /who" })
	pane.keys(false, "C-u")
	pane.waitScreen("the line erased", func(rows []string) bool { return lastRow(rows) == "[lobby] alice>" })

	// SIGTERM: goodbye, and the client exits 0.
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(statusFile)
		if status := strings.TrimSpace(string(b)); err == nil && status != "" {
			if status != "0" {
				t.Fatalf("ssh exited with status %s, want 0:\n%s", status, strings.Join(pane.screen(), "\n"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh did not exit within 10 s of SIGTERM:\n%s", strings.Join(pane.screen(), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rows := pane.screen(); !hasRow(rows, "*** server shutting down") {
		t.Fatalf("no goodbye:\n%s", strings.Join(rows, "\n"))
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("chatbridge exited %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("chatbridge did not stop")
	}
}
