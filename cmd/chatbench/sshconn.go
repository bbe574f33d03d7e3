package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshPrefix marks a --tcp endpoint as chatbridge's SSH door: each client
// is then an SSH member with a pseudo-terminal, as a person's is (the
// line editor and all), for hold to measure what one costs the server.
const sshPrefix = "ssh://"

// sshKey is the key every SSH client of a run proves it holds: the door
// takes any key, and making one per client would only cost the load tool.
func (d *dialer) sshKey() (ssh.Signer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sshSigner == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if d.sshSigner, err = ssh.NewSignerFromKey(priv); err != nil {
			return nil, err
		}
	}
	return d.sshSigner, nil
}

// sshConn is one SSH member: a session with a pseudo-terminal and a
// shell, read and written as a byte stream (what it reads holds the
// editor's cursor movements and colours; tags are found anywhere).
type sshConn struct {
	client *ssh.Client
	in     io.Writer
	out    io.Reader
	pad    int
	wbuf   []byte
}

// dialSSH connects nc's SSH session, within ctx.
func dialSSH(ctx context.Context, nc net.Conn, addr string, key ssh.Signer, pad int) (*sshConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:            "bench",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // loopback, a server the run started
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ssh handshake: %w", err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	fail := func(what string, err error) (*sshConn, error) {
		client.Close()
		return nil, fmt.Errorf("ssh %s: %w", what, err)
	}
	sess, err := client.NewSession()
	if err != nil {
		return fail("session", err)
	}
	// Wide enough that no tag line is wrapped.
	if err := sess.RequestPty("xterm-256color", 24, 1000, ssh.TerminalModes{}); err != nil {
		return fail("pty", err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		return fail("stdin", err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		return fail("stdout", err)
	}
	if err := sess.Shell(); err != nil {
		return fail("shell", err)
	}
	nc.SetDeadline(time.Time{})
	return &sshConn{client: client, in: in, out: out, pad: pad}, nil
}

func (s *sshConn) sendTag(_ context.Context, tg tag) error {
	s.wbuf = append(appendPad(appendTag(s.wbuf[:0], tg), s.pad), '\r')
	if _, err := s.in.Write(s.wbuf); err != nil {
		return fmt.Errorf("write line: %w", err)
	}
	return nil
}

func (s *sshConn) readLoop(buf []byte, onData func([]byte, bool)) error {
	for {
		n, err := s.out.Read(buf)
		if n > 0 {
			onData(buf[:n], false)
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
}

func (s *sshConn) close() { s.client.Close() }
