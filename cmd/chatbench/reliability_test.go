package main

import (
	"bytes"
	"net"
	"os/exec"
	"path/filepath"
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
	bench := buildBench(t)
	// with starts a server with args (none: the defaults) and returns
	// the scenario flags that aim at it.
	with := func(t *testing.T, args ...string) []string {
		srv := startChatbridge(t, args...)
		metrics := "http://" + strings.TrimSuffix(strings.TrimPrefix(srv.ws, "ws://"), "/ws") + "/metrics"
		flags := []string{"--tcp", srv.tcp, "--ws", srv.ws, "--metrics", metrics, "--pid", strconv.Itoa(srv.pid), "--max-rss", "256", "--quiet"}
		if srv.echo != "" {
			flags = append(flags, "--echo", srv.echo)
		}
		return flags
	}
	common := with(t)
	run := func(t *testing.T, args ...string) {
		t.Helper()
		runBench(t, bench, append(args, common...)...)
	}
	t.Run("soak", func(t *testing.T) {
		run(t, "soak", "--receivers", "60", "--senders", "4", "--rate", "5", "--duration", "60s")
	})
	t.Run("slow", func(t *testing.T) {
		// 8 senders make 256 KB/s of lines for each member, 50 MB/s in
		// all (under the default room budget); with a quarter of the
		// default --queue-bytes, the ones that never read pass it, and
		// are cut off, within two seconds, and 150 that read 20 KB/s fall
		// as far behind. Before the bound in bytes, the server took 95
		// MiB for them and kept it.
		flags := with(t, "--queue-bytes", "256KiB")
		runBench(t, bench, append([]string{"slow", "--receivers", "30", "--senders", "8", "--rate", "8", "--pad", "4000",
			"--slow", "6", "--slow-readers", "150", "--slow-rate", "20000", "--duration", "6s", "--grace", "3s"}, append(flags, "--max-rss", "64")...)...)
	})
	t.Run("crowd", func(t *testing.T) {
		// A room of 200 held to 4 lines a second, as a room of 6,000 is
		// by default: 20 senders of 1 KB lines, within their own flood
		// limit, say 40 times more.
		flags := with(t, "--room-rate", "800")
		runBench(t, bench, append([]string{"crowd", "--receivers", "200", "--senders", "20", "--rate", "8", "--pad", "1000",
			"--duration", "2s", "--room-rate", "800"}, flags...)...)
	})
	t.Run("churn", func(t *testing.T) {
		run(t, "churn", "--workers", "20", "--duration", "3s")
	})
	t.Run("abuse", func(t *testing.T) {
		// Few rooms and little history memory, so that taking every room
		// and filling them past the bound takes a second: 100 rooms of 20
		// lines of 4 KB, 24 KB of JSON each, would keep 66 MB.
		flags := with(t, "--max-rooms", "100", "--history-memory", "2MiB", "--echo", "127.0.0.1:0")
		runBench(t, bench, append([]string{"abuse", "--big-line", "10", "--idle", "200", "--duration", "5s",
			"--fill-rooms", "200", "--history-memory", "2"}, flags...)...)
	})
}

func TestRestartScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	bin := buildChatbridge(t)
	tcp, http := freePort(t), freePort(t)
	exec := bin + " --tcp " + tcp + " --http " + http + " --shutdown-timeout 5s"
	runBench(t, buildBench(t), "restart", "--tcp", tcp, "--ws", "ws://"+http+"/ws", "--exec", exec,
		"--receivers", "10", "--duration", "3s", "--quiet")
}

// buildBench builds chatbench itself, without the race detector: the
// scenarios time the server, and a load tool slowed down tenfold would
// time itself.
func buildBench(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chatbench")
	if out, err := exec.Command("go", "build", "-o", bin, "chatbridge/cmd/chatbench").CombinedOutput(); err != nil {
		t.Fatalf("go build chatbench: %v\n%s", err, out)
	}
	return bin
}

// runBench runs a scenario and fails the test if it fails.
func runBench(t *testing.T, bench string, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bench, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("%s", stdout.String())
	if err != nil {
		t.Fatalf("chatbench %s: %v\n%s%s", args[0], err, stdout.String(), stderr.String())
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
