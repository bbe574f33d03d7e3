package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// chatbridgeProc is a chatbridge binary the test built and started on
// loopback ports the kernel chose.
type chatbridgeProc struct {
	tcp  string // host:port of the telnet chat
	ws   string // ws://host:port/ws
	echo string // host:port of the echo service, if it was asked for
	pid  int
}

// startChatbridge builds ./cmd/chatbridge and runs it with args added to
// kernel-chosen loopback addresses, reading those addresses back from its
// JSON startup log. The process is stopped with SIGTERM when the test ends.
func startChatbridge(t *testing.T, args ...string) chatbridgeProc {
	t.Helper()
	bin := buildChatbridge(t)
	cmd := exec.Command(bin, append([]string{
		"--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-format", "json",
	}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chatbridge: %v", err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("chatbridge exit: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("chatbridge did not stop within 10s of SIGTERM")
		}
	})

	p := chatbridgeProc{pid: cmd.Process.Pid}
	addrs := make(chan struct{})
	go func() {
		known := addrs
		// Reads the log to its end, so that the server never blocks on a
		// full pipe; the addresses are known after the first two lines
		// that name them.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Msg, Service, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Msg != "listening" {
				continue
			}
			switch rec.Service {
			case "telnet chat":
				p.tcp = rec.Addr
			case "web (http)":
				p.ws = "ws://" + rec.Addr + "/ws"
			case "echo":
				p.echo = rec.Addr
			}
			if p.tcp != "" && p.ws != "" && known != nil {
				close(known)
				known = nil
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-addrs:
	case <-time.After(20 * time.Second):
		t.Fatal("chatbridge did not say where it listens")
	}
	return p
}

// buildChatbridge builds ./cmd/chatbridge into the test's temp dir.
func buildChatbridge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chatbridge")
	build := exec.Command("go", "build", "-o", bin, "chatbridge/cmd/chatbridge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build chatbridge: %v\n%s", err, out)
	}
	return bin
}

// benchJSON runs chatbench with args and --json, and decodes its result.
func benchJSON(t *testing.T, args ...string) result {
	t.Helper()
	code, out, stderr := runArgs(t, append(args, "--json", "--quiet")...)
	if code != 0 {
		t.Fatalf("chatbench %v: exit %d\n%s", args, code, stderr)
	}
	var r result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("chatbench %v: %v in %q", args, err, out)
	}
	return r
}

// TestLoadToolAgainstChatbridge is the CI run of the load tool at small
// scale against the real server, TCP and WebSocket mixed: it keeps the tool
// and the server working together. It asserts what must hold at any speed
// (nothing lost, duplicated or reordered, everyone held), never timings.
func TestLoadToolAgainstChatbridge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	// A load tool's limits are not people's: no flood control, no bound
	// or rate of connections per address, no room budget (README,
	// Performance).
	srv := startChatbridge(t, "--rate", "0", "--max-per-ip", "0", "--connect-rate", "0", "--room-rate", "0", "--room-bytes", "0")
	pid := strconv.Itoa(srv.pid)
	ends := []string{"--tcp", srv.tcp, "--ws", srv.ws}

	for _, tt := range []struct {
		name string
		args []string
	}{
		{"paced", []string{"--receivers", "200", "--senders", "2", "--rate", "100", "--duration", "2s"}},
		{"flat out", []string{"--receivers", "100", "--senders", "2", "--rate", "0", "--duration", "2s",
			// The window keeps the senders within reach of the slowest
			// receiver (slow under -race), so none overflows its queue.
			"--window", "50"}},
		{"json clients", []string{"--receivers", "50", "--senders", "2", "--rate", "100", "--duration", "1s", "--ws-json", "--ws-subprotocol", "chatbridge.v1.json"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := benchJSON(t, append(append([]string{"fanout", "--settle", "300ms", "--pid", pid}, ends...), tt.args...)...)
			if r.Sent == 0 || r.Deliveries != int64(r.Receivers)*r.Sent {
				t.Errorf("sent %d, %d deliveries to %d receivers: want every line to every receiver", r.Sent, r.Deliveries, r.Receivers)
			}
			if r.Lost != 0 || r.Duplicated != 0 || r.Reordered != 0 || r.Disconnected != 0 || r.ConnectErrors != 0 {
				t.Errorf("lost %d dup %d reordered %d disconnected %d connect errors %d, want all 0",
					r.Lost, r.Duplicated, r.Reordered, r.Disconnected, r.ConnectErrors)
			}
			if r.DeliveriesPerCPU == nil || *r.DeliveriesPerCPU <= 0 {
				t.Errorf("no server CPU figure with --pid")
			}
		})
	}

	t.Run("hold", func(t *testing.T) {
		r := benchJSON(t, append([]string{"hold", "-n", "300", "--hold", "500ms", "--pid", pid}, ends...)...)
		if r.Held != 300 || r.ConnectErrors != 0 || r.Disconnected != 0 {
			t.Errorf("held %d of 300, %d connect errors, %d disconnected", r.Held, r.ConnectErrors, r.Disconnected)
		}
		// 300 connections are too few for a memory figure to be sure to
		// be positive (the collector may hand back more than they take);
		// that the server was measured is what this checks.
		if r.RSSBeforeKiB == nil || r.RSSAfterKiB == nil || *r.RSSAfterKiB <= 0 {
			t.Errorf("no server RSS with --pid: %+v", r)
		}
	})
}
