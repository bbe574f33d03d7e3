package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshChat connects to the SSH door as user with a new key, without a
// pseudo-terminal (plain lines), and returns its output as lines.
func sshChat(t *testing.T, addr, user string) (*ssh.Client, io.Writer, *bufio.Reader, ssh.PublicKey) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var client *ssh.Client
	deadline := time.Now().Add(5 * time.Second)
	for {
		client, err = ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	return client, in, bufio.NewReader(out), signer.PublicKey()
}

// readUntil reads lines from r until one holds want, and returns it.
func readUntil(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if strings.Contains(line, want) || err != nil {
				got <- line
				return
			}
		}
	}()
	select {
	case line := <-got:
		if !strings.Contains(line, want) {
			t.Fatalf("output ended before %q", want)
		}
		return line
	case <-time.After(5 * time.Second):
		t.Fatalf("never got %q", want)
		return ""
	}
}

// The SSH door is one more service: its host key is made on first start
// (0600) and kept, its members chat with telnet's, and its connections
// count against --max-per-ip with the others, a refused one told why
// before any SSH.
func TestSSHDoorServesAndCountsAgainstTheLimits(t *testing.T) {
	tcpAddr, sshAddr := freeAddr(t), freeAddr(t)
	keyFile := filepath.Join(t.TempDir(), "host_key")
	logs := startRun(t, "--tcp", tcpAddr, "--http", "", "--ssh", sshAddr, "--ssh-host-key", keyFile, "--max-per-ip", "2", "--announce-delay", "0")

	_, in, out, _ := sshChat(t, sshAddr, "alice")
	readUntil(t, out, "Welcome to chatbridge, alice!")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, %v", fi, err)
	}
	if !strings.Contains(logs.String(), "made a new SSH host key") || !strings.Contains(logs.String(), "fingerprint=SHA256:") {
		t.Fatalf("log lacks the new key and its fingerprint:\n%s", logs.String())
	}

	bob := dialRetry(t, tcpAddr)
	defer bob.Close()
	br := bufio.NewReader(bob)
	readUntil(t, br, "Welcome")
	readUntil(t, out, "joined")
	io.WriteString(in, "hello telnet\n")
	readUntil(t, br, "<alice> hello telnet")

	// Two connections from 127.0.0.1 now: a third, on the SSH port, is
	// refused at accept.
	c, err := net.Dial("tcp", sshAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if string(b) != "*** too many connections from your address\r\n" {
		t.Fatalf("refused SSH connection got %q", b)
	}
}

func TestSSHHostKeyOthersCanReadStopsTheStart(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "host_key")
	if err := os.WriteFile(keyFile, []byte("whatever"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	code := run(context.Background(), []string{"--tcp", freeAddr(t), "--http", "", "--ssh", freeAddr(t), "--ssh-host-key", keyFile}, env(nil), &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--ssh-host-key: host key "+keyFile+" may be read by others (mode 0644): chmod 600 it") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
