package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"chatbridge/tcpserver"
	"chatbridge/tcpserver/sshdoor"
)

func TestSSHEndpoints(t *testing.T) {
	tcp, _, err := resolveEndpoints(t.Context(), []string{"ssh://127.0.0.1:2222", "127.0.0.1:5000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !tcp[0].ssh || tcp[0].dialAddr != "127.0.0.1:2222" || tcp[1].ssh {
		t.Fatalf("endpoints %+v", tcp)
	}
	if _, _, err := resolveEndpoints(t.Context(), []string{"ssh://192.0.2.1:22"}, nil); !errors.Is(err, errNotLoopback) {
		t.Fatalf("ssh:// to another machine: %v", err)
	}
	if _, _, err := resolveEndpoints(t.Context(), []string{"http://127.0.0.1:22"}, nil); !errors.Is(err, errUsage) {
		t.Fatalf("another scheme: %v", err)
	}
}

// hold over ssh:// holds SSH members of chatbridge's door, each with a
// pseudo-terminal and a shell.
func TestHoldOverSSH(t *testing.T) {
	hub := tcpserver.NewHub(tcpserver.HubConfig{MaxPerIP: -1}, nil)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	door, err := sshdoor.New(hub, sshdoor.Config{HostKey: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- door.Serve(context.Background(), l) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		door.Shutdown(ctx)
		<-served
	}()

	cc := testClientConfig(t, []string{"ssh://" + l.Addr().String()}, nil)
	r, err := runHold(t.Context(), holdConfig{clientConfig: cc, n: 20, hold: 200 * time.Millisecond, procs: 1}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if r.Held != 20 || r.ConnectErrors != 0 || r.Disconnected != 0 {
		t.Errorf("held %d errors %d disconnected %d, want 20, 0, 0", r.Held, r.ConnectErrors, r.Disconnected)
	}
	if n := hub.Stats().Connections; n != 20 {
		t.Errorf("the hub admitted %d members, want 20", n)
	}
}
