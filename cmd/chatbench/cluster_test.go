package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterRun is the small form of `chatbench cluster`, against the
// built server and a real nats-server, on every CI run: 3 nodes x 300
// members, half TCP, half WebSocket, in one room, and a spare node with
// none. Every node takes at most its members and 8 more (--max-clients),
// so the killed node's members can only all come back with the spare. It
// asserts what must hold at any speed: every member held, every line to
// every member once and in order, the killed node's members all back and
// chatting, no attempt of theirs refused other than as full, nothing lost
// for those who stayed nor for those who came back once they were, the
// others forgetting the killed node's members; and the same on one node
// alone. Never timings.
func TestClusterRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server and NATS")
	}
	nats := natsServerBinary(t)
	bench, bridge := buildBench(t), buildChatbridge(t)

	t.Run("one NATS, a node killed, one node alone", func(t *testing.T) {
		rep := runClusterJSON(t, bench, "--chatbridge", bridge, "--nats-server", nats,
			"--nodes", "3", "--members", "300", "--duration", "3s", "--rate", "2",
			"--settle", "1s", "--drain", "20s", "--kill-wait", "60s", "--headroom", "0")
		c := rep.Cluster
		if c == nil || rep.Kill == nil || rep.Single == nil {
			t.Fatalf("report lacks a part: %+v", rep)
		}
		if rep.Nodes != 3 || rep.Spares != 1 || rep.MaxClients != 309 {
			t.Errorf("%d nodes, %d spares, --max-clients %d; want 3, a spare by default with the kill, 300 + a sender + 8", rep.Nodes, rep.Spares, rep.MaxClients)
		}
		checkHold(t, "cluster", c.Hold, 900)
		checkChat(t, "cluster", c.Chat, 900)
		if len(c.Chat.NodeCPU) != 4 || len(c.Hold.NodeRSSAfter) != 4 || len(c.Hold.NATSRSS) != 1 || c.Hold.NATSRSS[0] <= 0 {
			t.Errorf("cluster: want the CPU and RSS of 3 nodes and the spare, and the RSS of NATS: %+v", c.Hold)
		}
		if want := []int{301, 301, 301, 1}; fmt.Sprint(c.Hold.NodeMembers) != fmt.Sprint(want) {
			t.Errorf("members on the nodes %v, want %v (a sender on each, only the spare's watching)", c.Hold.NodeMembers, want)
		}
		for i, d := range c.Chat.NodeDeliveries {
			if want := c.Chat.Lines * 300; i < 3 && d != want || i == 3 && d != 0 {
				t.Errorf("node %d's members got %d lines of %d", i, d, c.Chat.Lines)
			}
		}

		k := rep.Kill
		if k.Node != 2 || k.TimedOut || k.Members != 300 || k.Cut != 300 || k.Rejoined != 300 || k.Back != 300 {
			t.Errorf("kill: node %d, timed out %v, %d members on the node, %d cut off, %d back in, %d chatting again; want node 2, all 300",
				k.Node, k.TimedOut, k.Members, k.Cut, k.Rejoined, k.Back)
		}
		if k.RetryErrors != 0 || k.BackP50S <= 0 || k.BackMaxS < k.BackP50S || k.RejoinLost != 0 {
			t.Errorf("kill: %d attempts refused other than as full or failed (first: %s), chatting again after %.1f s (p50) and %.1f s (max), %d lines lost once back; want none refused, times, nothing lost",
				k.RetryErrors, k.FirstRetryErr, k.BackP50S, k.BackMaxS, k.RejoinLost)
		}
		for i, s := range k.ForgotS {
			// Within the presence TTL (15 s), a sweep (1 s) and the
			// time the log line takes to be read.
			if i != k.Node && (s <= 0 || s > 20) {
				t.Errorf("kill: node %d had forgotten the killed node's %d members %.1f s after (%d forgotten), want within 20 s", i, k.Members, s, k.Forgot[i])
			}
		}
		for i, s := range k.PresenceS {
			if i != k.Node && s <= 0 {
				t.Errorf("kill: node %d showed %d members in the room at the end, %d there", i, k.Shown[i], k.Expected[i])
			}
		}
		if k.Stayed != 600 || k.Lines == 0 || k.Lost != 0 || k.Duplicated != 0 || k.Reordered != 0 || !k.Drained {
			t.Errorf("kill: %d stayed, %d lines, lost %d dup %d reordered %d drained %v; want 600 stayed, nothing lost",
				k.Stayed, k.Lines, k.Lost, k.Duplicated, k.Reordered, k.Drained)
		}
		if k.RejoinDup != 0 || k.RejoinReord != 0 {
			t.Errorf("kill: the members back in saw %d duplicates, %d reordered", k.RejoinDup, k.RejoinReord)
		}

		checkHold(t, "one node", rep.Single.Hold, 300)
		checkChat(t, "one node", rep.Single.Chat, 300)
	})

	t.Run("three NATS servers", func(t *testing.T) {
		rep := runClusterJSON(t, bench, "--chatbridge", bridge, "--nats-server", nats, "--nats-servers", "3",
			"--nodes", "3", "--members", "100", "--duration", "2s", "--rate", "2",
			"--settle", "500ms", "--drain", "20s", "--kill=false", "--single=false")
		checkHold(t, "three NATS", rep.Cluster.Hold, 300)
		checkChat(t, "three NATS", rep.Cluster.Chat, 300)
		if len(rep.Cluster.Hold.NATSRSS) != 3 {
			t.Errorf("want the RSS of 3 NATS servers, got %v", rep.Cluster.Hold.NATSRSS)
		}
	})
}

func checkHold(t *testing.T, what string, h holdReport, want int) {
	t.Helper()
	if h.Connected != want || h.Held != want || h.ConnectErrors != 0 {
		t.Errorf("%s: %d connected, %d held, %d connect errors (%s); want %d, %d, 0", what, h.Connected, h.Held, h.ConnectErrors, h.FirstErr, want, want)
	}
	for i, rss := range h.NodeRSSAfter {
		if rss <= 0 {
			t.Errorf("%s: no RSS for node %d", what, i)
		}
	}
}

func checkChat(t *testing.T, what string, c phaseReport, members int) {
	t.Helper()
	if c.Lines == 0 || c.Receivers != members || c.Deliveries != c.Lines*int64(members) || !c.Drained {
		t.Errorf("%s: %d lines, %d deliveries to %d members (drained %v); want every line to each of %d", what, c.Lines, c.Deliveries, c.Receivers, c.Drained, members)
	}
	if c.Lost != 0 || c.Duplicated != 0 || c.Reordered != 0 {
		t.Errorf("%s: lost %d dup %d reordered %d, want 0", what, c.Lost, c.Duplicated, c.Reordered)
	}
	if c.P50us <= 0 || c.P99us < c.P50us {
		t.Errorf("%s: p50 %.0f µs, p99 %.0f µs", what, c.P50us, c.P99us)
	}
}

func runClusterJSON(t *testing.T, bench string, args ...string) clusterReport {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bench, append([]string{"cluster", "--json", "--quiet"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chatbench cluster: %v\n%s", err, stderr.String())
	}
	var rep clusterReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decode the report: %v\n%s", err, stdout.String())
	}
	if stderr.Len() > 0 {
		t.Logf("stderr:\n%s", stderr.String())
	}
	return rep
}

// natsServerBinary returns the nats-server to run: on PATH, or where
// Debian puts it. Without one the test skips, unless CI is set.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	p, err := findBinary("", "nats-server")
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nats-server not found (Debian: apt-get install nats-server); CI must run this test")
	}
	t.Skip("nats-server not found; install it (Debian: apt-get install nats-server) to run this test")
	return ""
}

// The members go round the nodes and, every other round, over WebSocket:
// each node gets half of each transport.
func TestPlaceOfSpreadsMembers(t *testing.T) {
	for _, nodes := range []int{1, 3, 5} {
		tcp, ws := make([]int, nodes), make([]int, nodes)
		for k := range nodes * 1000 {
			n, isWS := placeOf(k, nodes)
			if isWS {
				ws[n]++
			} else {
				tcp[n]++
			}
		}
		for n := range nodes {
			if tcp[n] != 500 || ws[n] != 500 {
				t.Errorf("%d nodes: node %d has %d TCP and %d WebSocket members, want 500 each", nodes, n, tcp[n], ws[n])
			}
		}
	}
}

// A histogram goes from a load process to the parent and keeps its
// quantiles; a bucket that cannot be is refused.
func TestHistogramWire(t *testing.T) {
	h := newHistogram()
	for v := int64(1000); v < 5_000_000; v += 997 {
		h.add(v)
	}
	b, err := json.Marshal(h.wire())
	if err != nil {
		t.Fatal(err)
	}
	var w histWire
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	got := newHistogram()
	if err := got.mergeWire(w); err != nil {
		t.Fatal(err)
	}
	for _, q := range []float64{0, 0.5, 0.99, 0.999, 1} {
		if got.quantile(q) != h.quantile(q) {
			t.Errorf("q%g: %d after the wire, %d before", q, got.quantile(q), h.quantile(q))
		}
	}
	for _, bad := range []int{-1, histBuckets + 1} {
		if err := newHistogram().mergeWire(histWire{Buckets: map[int]uint64{bad: 1}, N: 1}); err == nil {
			t.Errorf("bucket %d: no error", bad)
		}
	}
}

func TestClusterFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the error; "" = fine
	}{
		{nil, ""},
		{[]string{"--nodes", "0"}, "--nodes"},
		{[]string{"--nodes", "65"}, "--nodes"},
		{[]string{"--members", "1"}, "--members"},
		{[]string{"--members", "2000000"}, "--members"},
		{[]string{"--nats-servers", "2"}, "--nats-servers"},
		{[]string{"--nats-replicas", "-1"}, "--nats-replicas"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--rate", "5000"}, "--rate"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--drain", "-1s"}, "--drain"},
		{[]string{"--nodes", "1"}, "--kill"},
		{[]string{"--nodes", "1", "--kill=false"}, ""},
		{[]string{"--dial-parallel", "0"}, "--dial-parallel"},
		{[]string{"--procs", "300"}, "--procs"},
		{[]string{"--nodes", "2", "--members", "2", "--procs", "5"}, "--procs"},
		{[]string{"--spare", "-2"}, "--spare"},
		{[]string{"--spare", "17"}, "--spare"},
		{[]string{"--nodes", "60", "--spare", "5"}, "--spare"},
		{[]string{"--nodes", "64"}, "--spare"}, // and the spare the kill brings
		{[]string{"--nodes", "64", "--kill=false"}, ""},
		{[]string{"--spare", "0"}, ""},
		{[]string{"--headroom", "-1"}, "--headroom"},
		{[]string{"--headroom", "101"}, "--headroom"},
		{[]string{"--headroom", "NaN"}, "--headroom"},
	} {
		fs, c, _, _ := newClusterFlags(&bytes.Buffer{})
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		err := c.check()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: error %v, want one naming %s", tt.args, err, tt.want)
		}
	}
	fs, c, _, _ := newClusterFlags(&bytes.Buffer{})
	fs.Parse(nil)
	if err := c.check(); err != nil || c.procs != c.nodes {
		t.Errorf("default --procs is %d (%v), want one per node (%d)", c.procs, err, c.nodes)
	}
	// The run: 5 nodes of 19,000 and a spare, each refusing past
	// 19,476, under the 20,000 open files a process may hold here.
	if c.spare != 1 || c.maxClients() != 19476 {
		t.Errorf("default --spare %d, --max-clients %d; want 1 and 19,000 + a sender + 2.5%%", c.spare, c.maxClients())
	}
	fs, c, _, _ = newClusterFlags(&bytes.Buffer{})
	fs.Parse([]string{"--kill=false", "--members", "100", "--headroom", "50"})
	if err := c.check(); err != nil || c.spare != 0 || c.maxClients() != 151 {
		t.Errorf("--kill=false: --spare %d (%v), --max-clients %d; want no spare, 100 + 1 + 50", c.spare, err, c.maxClients())
	}
}

// A load process refuses what its parent should never send, with an
// error rather than a hang or a crash: a spec that is not one, a spec
// with nothing to hold, an unknown command, a report for the wrong number
// of senders, a node that is not there. Nothing listens at its nodes, so
// its members all fail to connect (and it says so) before the command.
func TestLoadProcessRefusesBadInput(t *testing.T) {
	spec := `{"nodes":[{"tcp":"127.0.0.1:1","ws":"ws://127.0.0.1:1/ws"}],"n":2,"senders":1,"connect_timeout":1000000000}`
	for _, tt := range []struct {
		name, in, want string
	}{
		{"not JSON", "hello\n", "decode spec"},
		{"no members", `{"nodes":[{"tcp":"127.0.0.1:1","ws":"ws://127.0.0.1:1/ws"}],"n":0,"senders":1}` + "\n", "spec"},
		{"no nodes", `{"n":5,"senders":1}` + "\n", "spec"},
		{"more holders than nodes", `{"nodes":[{"tcp":"127.0.0.1:1","ws":"ws://127.0.0.1:1/ws"}],"holders":2,"n":1,"senders":1}` + "\n", "spec"},
		{"negative holders", `{"nodes":[{"tcp":"127.0.0.1:1","ws":"ws://127.0.0.1:1/ws"}],"holders":-1,"n":1,"senders":1}` + "\n", "spec"},
		{"not loopback", `{"nodes":[{"tcp":"192.0.2.1:1","ws":"ws://127.0.0.1:1/ws"}],"n":1,"senders":1}` + "\n", "loopback"},
		{"unknown command", spec + "\n" + `{"cmd":"explode"}` + "\n", "unknown command"},
		{"wrong sent counts", spec + "\n" + `{"cmd":"report","sent":[1,2]}` + "\n", "sent counts"},
		{"no such node", spec + "\n" + `{"cmd":"dead","node":7}` + "\n", "dead node"},
		{"bad command", spec + "\n" + "{\n", "decode command"},
		{"no spec", "", "read spec"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := run(ctx, []string{"cluster", "--load", "--quiet"}, stdio{in: strings.NewReader(tt.in), out: &out, err: &errOut})
			if code == exitOK || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want a failure naming %q", code, errOut.String(), tt.want)
			}
		})
	}
}

// The report of a load process whose members could not connect says so,
// and a report of it then counts nobody.
func TestLoadProcessReports(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in := `{"nodes":[{"tcp":"127.0.0.1:1","ws":"ws://127.0.0.1:1/ws"}],"n":2,"senders":1,"connect_timeout":1000000000}` + "\n" +
		`{"cmd":"report","sent":[3],"hist":true}` + "\n"
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"cluster", "--load", "--quiet"}, stdio{in: strings.NewReader(in), out: &out, err: &errOut}); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	dec := json.NewDecoder(&out)
	var first, rep loadReport
	if err := dec.Decode(&first); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if first.Connected != 0 || first.ConnectErrors != 2 || first.FirstErr == "" {
		t.Errorf("first report %+v: want 2 connect errors and the first of them", first)
	}
	if rep.Alive != 0 || rep.Stayed != 0 || rep.Lost != 0 || rep.Latency.N != 0 {
		t.Errorf("report %+v: want nobody counted", rep)
	}
}

// The nodes are given --nats-replicas only when their --help has it: the
// flag came after this command.
func TestHasFlag(t *testing.T) {
	dir := t.TempDir()
	write := func(name, help string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\ncat <<'END'\n"+help+"\nEND\nexit 2\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	with := write("with", "  -nats-prefix prefix\n    \tprefix\n  -nats-replicas int\n    \tcopies")
	without := write("without", "  -nats-prefix prefix\n    \tprefix\n  -nats-replicasx int")
	if !hasFlag(with, "nats-replicas") {
		t.Error("the flag was not found in a --help that has it")
	}
	if hasFlag(without, "nats-replicas") || hasFlag(filepath.Join(dir, "missing"), "nats-replicas") {
		t.Error("the flag was found in a --help without it, or of no program")
	}
}

// A spare's row of the hold table gives no memory per member: it holds
// its sender alone, and its RSS over one member read as 39,000 KiB each.
func TestHoldTableGivesASpareNoMemoryPerMember(t *testing.T) {
	h := &holdReport{NodeMembers: []int{101, 1}, NodeRSSBefore: []int64{1000, 1000}, NodeRSSAfter: []int64{1800, 40000},
		KiBPerMember: []float64{8, 39000}, RoomShown: []int64{102, 102}, Forgot: []int{0, 0}}
	var b strings.Builder
	writeHold(&b, "Hold", h, 1)
	out := b.String()
	if !strings.Contains(out, "| node 0 | 101 | 1,000 → 1,800 | 8.00 |") {
		t.Errorf("the holding node's row: %s", out)
	}
	if !strings.Contains(out, "| node 1 (spare) | 1 | 1,000 → 40,000 |  |") || strings.Contains(out, "39000") {
		t.Errorf("the spare's row: %s", out)
	}
}
