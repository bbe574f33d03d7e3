package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// The short form of every reliability scenario, against the real server,
// on every CI run. A scenario fails (exit 1) when any of its checks does
// not hold; the test shows its report.
func TestReliabilityScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	// Small queues and a short write timeout, so that clients that never
	// read are cut off within the short run.
	srv := startChatbridge(t, "--queue", "64", "--write-timeout", "2s")
	pid := strconv.Itoa(srv.pid)
	metrics := "http://" + strings.TrimSuffix(strings.TrimPrefix(srv.ws, "ws://"), "/ws") + "/metrics"
	common := []string{"--tcp", srv.tcp, "--ws", srv.ws, "--metrics", metrics, "--pid", pid, "--max-rss", "256", "--quiet"}

	run := func(t *testing.T, args ...string) {
		t.Helper()
		code, out, stderr := runArgs(t, append(args, common...)...)
		t.Logf("%s", out)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, stderr)
		}
	}
	t.Run("soak", func(t *testing.T) {
		run(t, "soak", "--receivers", "60", "--senders", "4", "--rate", "5", "--duration", "4s")
	})
	t.Run("slow", func(t *testing.T) {
		run(t, "slow", "--receivers", "30", "--senders", "4", "--rate", "8", "--pad", "3000", "--slow", "6", "--duration", "6s", "--grace", "3s")
	})
	t.Run("churn", func(t *testing.T) {
		run(t, "churn", "--workers", "20", "--duration", "3s")
	})
	t.Run("abuse", func(t *testing.T) {
		run(t, "abuse", "--big-line", "10", "--idle", "200", "--duration", "5s")
	})
}

func TestRestartScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	bin := buildChatbridge(t)
	tcp, http := freePort(t), freePort(t)
	exec := bin + " --tcp " + tcp + " --http " + http + " --shutdown-timeout 5s"
	code, out, stderr := runArgs(t, "restart", "--tcp", tcp, "--ws", "ws://"+http+"/ws", "--exec", exec,
		"--receivers", "10", "--duration", "3s", "--quiet")
	t.Logf("%s", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
}

// freePort returns a loopback address nobody listens on just now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
