package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// childEnv makes the test binary act as chatbench itself, so that hold
// --procs can re-execute it in tests.
const childEnv = "CHATBENCH_TEST_AS_MAIN=1"

func TestMain(m *testing.M) {
	if os.Getenv("CHATBENCH_TEST_AS_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
	}
	goleak.VerifyTestMain(m)
}

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestRunRefusesNonLoopback(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"tcp private", []string{"fanout", "--tcp", "10.1.2.3:5000", "--quiet"}},
		{"tcp public", []string{"hold", "--tcp", "8.8.8.8:53", "-n", "1"}},
		{"tcp one of a list", []string{"fanout", "--tcp", "127.0.0.1:5000,192.168.1.1:5000"}},
		{"ws private", []string{"fanout", "--ws", "ws://10.0.0.1:8080/ws"}},
		{"ws unspecified", []string{"hold", "--ws", "ws://0.0.0.0:8080/ws"}},
		{"ipv6 non-loopback", []string{"fanout", "--tcp", "[2001:db8::1]:5000"}},
		{"mapped ipv4", []string{"fanout", "--tcp", "[::ffff:10.0.0.1]:5000"}},
		{"ceiling listen all", []string{"ceiling", "--listen", "0.0.0.0:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runArgs(t, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, "not a loopback address") {
				t.Fatalf("exit %d, stderr %q; want %d and a loopback refusal", code, stderr, exitUsage)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"no command", nil, exitUsage, "", "Usage:"},
		{"unknown command", []string{"bogus"}, exitUsage, "", "unknown command"},
		{"help lists every flag", []string{"help"}, exitOK, "--ws-subprotocol", ""},
		{"help hides internal flags", []string{"help"}, exitOK, "--procs", ""},
		{"subcommand -h", []string{"fanout", "-h"}, exitOK, "", "--receivers"},
		{"hold -h", []string{"hold", "-h"}, exitOK, "", "-n int"},
		{"bad flag", []string{"hold", "--nope"}, exitUsage, "", "-nope"},
		{"no endpoint", []string{"fanout"}, exitUsage, "", "--tcp or --ws"},
		{"bad mix", []string{"fanout", "--tcp", "127.0.0.1:1", "--ws-mix", "2"}, exitUsage, "", "--ws-mix"},
		{"ws needs ws scheme", []string{"fanout", "--ws", "http://127.0.0.1:1/"}, exitUsage, "", "ws:// URL"},
		{"tcp is not a url", []string{"fanout", "--tcp", "ws://127.0.0.1:1/"}, exitUsage, "", "not a URL"},
		{"tcp needs a port", []string{"fanout", "--tcp", "127.0.0.1"}, exitUsage, "", "port"},
		{"extra args", []string{"hold", "--tcp", "127.0.0.1:1", "stray"}, exitUsage, "", "unexpected"},
		{"pid-tree needs pid", []string{"hold", "--tcp", "127.0.0.1:1", "--pid-tree"}, exitUsage, "", "--pid"},
		{"negative slow readers", []string{"slow", "--tcp", "127.0.0.1:1", "--slow-readers", "-1"}, exitUsage, "", "--slow-readers must not be negative"},
		{"slow readers that never read", []string{"slow", "--tcp", "127.0.0.1:1", "--slow-readers", "5", "--slow-rate", "0"}, exitUsage, "", "--slow-rate must be positive"},
		{"crowd -h", []string{"crowd", "-h"}, exitOK, "", "--room-rate"},
		{"help lists cluster", []string{"help"}, exitOK, "--kill-wait", ""},
		{"cluster -h", []string{"cluster", "-h"}, exitOK, "", "--nats-servers"},
		{"cluster bad nats servers", []string{"cluster", "--nats-servers", "2"}, exitUsage, "", "--nats-servers 2"},
		{"cluster kill needs two nodes", []string{"cluster", "--nodes", "1"}, exitUsage, "", "--kill needs"},
		{"cluster stray", []string{"cluster", "stray"}, exitUsage, "", "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stdout, tt.wantOut) || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "slot-offset") || strings.Contains(stdout+stderr, "  --load") {
				t.Fatalf("internal flag shown:\n%s%s", stdout, stderr)
			}
		})
	}
}
