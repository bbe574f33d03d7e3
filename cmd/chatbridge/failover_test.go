package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// heard is a line a member read, and when.
type heard struct {
	at   time.Time
	line string
}

// listen reads c's lines into a channel, stamped, until c closes.
func listen(c net.Conn) <-chan heard {
	ch := make(chan heard, 4096)
	go func() {
		defer close(ch)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			ch <- heard{time.Now(), strings.TrimRight(line, "\r\n")}
		}
	}()
	return ch
}

// TestFailoverOfThreeNATSServers runs the README's three-server NATS
// cluster (three nats-server processes, routes on loopback, -js, three
// store directories) under two chatbridge nodes with --nats-replicas 3,
// and kills (SIGKILL) the server that leads the history stream while a
// member of one node talks to a member of the other: the chat goes on,
// a newcomer still gets the room's history, names stay unique, and each
// member is told of the link at most once lost and once restored. It
// logs how long lines between the nodes stopped (the README's figure).
func TestFailoverOfThreeNATSServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	dir := t.TempDir()
	bin := buildChatbridge(t, ctx, dir)
	// nats-server as go.mod has it, the version --data embeds, unless
	// CHATBRIDGE_TEST_NATS_SERVER names another (Debian's 2.9 predates
	// batched direct gets: the relay then reads line by line).
	natsBin := os.Getenv("CHATBRIDGE_TEST_NATS_SERVER")
	if natsBin == "" {
		natsBin = filepath.Join(dir, "nats-server")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
			t.Fatalf("go build nats-server: %v\n%s", err, out)
		}
	}

	type natsServer struct {
		name, client, route string
		p                   *process
	}
	servers := make([]*natsServer, 3)
	var routes, urls []string
	for i := range servers {
		servers[i] = &natsServer{name: fmt.Sprintf("n%d", i+1), client: freeAddr(t), route: freeAddr(t)}
		routes = append(routes, "nats://"+servers[i].route)
		urls = append(urls, "nats://"+servers[i].client)
	}
	for _, s := range servers {
		host, port, _ := net.SplitHostPort(s.client)
		_, rport, _ := net.SplitHostPort(s.route)
		s.p = startProcess(t, ctx, "nats-server "+s.name, natsBin, "-js", "-n", s.name, "-a", host, "-p", port,
			"-sd", filepath.Join(dir, s.name), "--cluster_name", "chat", "--cluster", "nats://127.0.0.1:"+rport,
			"--routes", strings.Join(routes, ","))
	}
	for _, s := range servers {
		dialRetry(t, s.client).Close()
	}
	// JetStream is ready once the servers have elected a meta leader
	// and can place a stream on all three.
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.CreateStream(actx, jetstream.StreamConfig{Name: "probe", Subjects: []string{"probe"}, Replicas: 3})
		if err == nil {
			err = js.DeleteStream(actx, "probe")
		}
		acancel()
		if err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster not ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	natsURL := strings.Join(urls, ",")
	tcpA, tcpB := freeAddr(t), freeAddr(t)
	var nodes []*process
	for i, tcp := range []string{tcpA, tcpB} {
		nodes = append(nodes, startProcessEnv(t, ctx, []string{"CHATBRIDGE_CLUSTER_SECRET=a failover test's cluster secret"}, fmt.Sprintf("chatbridge %c", 'A'+i), bin,
			"--tcp", tcp, "--http", "", "--nats", natsURL, "--nats-required", "--nats-replicas", "3",
			"--announce-delay", "0", "--rate", "0", "--connect-rate", "0", "--log-level", "debug"))
	}

	alice := dialUser(t, tcpA, "alice")
	bob := dialUser(t, tcpB, "bob")
	bob.ask("/who", "in lobby", "alice")
	for i := range 5 {
		alice.say(fmt.Sprintf("before %d", i))
	}
	bob.expect("<alice> before 4")
	heardByBob := listen(bob.conn)
	bob.conn.SetDeadline(time.Now().Add(120 * time.Second))
	heardByAlice := listen(alice.conn)
	alice.conn.SetDeadline(time.Now().Add(120 * time.Second))

	// Kill the server that leads the history stream.
	stream, err := js.Stream(ctx, "chatbridge_history")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream not on three servers: %+v, %v", info, err)
	}
	var leader *natsServer
	for _, s := range servers {
		if s.name == info.Cluster.Leader {
			leader = s
		}
	}
	if leader == nil {
		t.Fatalf("no server is the stream's leader %q", info.Cluster.Leader)
	}
	// Alice talks, ten lines a second, from before the kill until bob
	// has heard five lines said after it.
	stopTalking := make(chan struct{})
	talked := make(chan struct{})
	go func() {
		defer close(talked)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopTalking:
				return
			case <-tick.C:
				fmt.Fprintf(alice.conn, "during %d\r\n", i)
			}
		}
	}()
	time.Sleep(time.Second) // lines flow before the kill
	killed := time.Now()
	leader.p.cmd.Process.Signal(syscall.SIGKILL)
	t.Logf("killed %s, the stream's leader", leader.name)

	var lastBefore, firstAfter time.Time
	after := 0
	told := map[string][]string{} // link notices, by member
	for after < 5 {
		select {
		case h, ok := <-heardByBob:
			if !ok {
				t.Fatal("bob's connection closed")
			}
			if strings.Contains(h.line, "link to other nodes") {
				told["bob"] = append(told["bob"], h.line)
			}
			if !strings.Contains(h.line, "<alice> during") {
				continue
			}
			if h.at.Before(killed) {
				lastBefore = h.at
				continue
			}
			if firstAfter.IsZero() {
				firstAfter = h.at
			}
			after++
		case <-time.After(30 * time.Second):
			t.Fatal("bob heard nothing from alice for 30 s after the kill")
		}
	}
	close(stopTalking)
	<-talked
	gap := firstAfter.Sub(lastBefore)
	t.Logf("lines between the nodes stopped for %v (from the last line before the kill to the first after it)", gap.Round(10*time.Millisecond))
	if gap > 5*time.Second {
		t.Errorf("lines between the nodes stopped for %v, want under 5 s", gap)
	}

	// A newcomer gets the room's history from the surviving servers.
	var got []string
	deadline = time.Now().Add(20 * time.Second)
	for {
		carol := dialTelnet(t, tcpB)
		got = carol.expect("in lobby:") // who is here: after the history
		carol.conn.Close()
		if strings.Contains(strings.Join(got, "\n"), "<alice> before 4") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond) // the link may still be setting up
	}
	if !strings.Contains(strings.Join(got, "\n"), "<alice> before 4") {
		t.Fatalf("the newcomer's history lacks the lines said before the kill:\n%s", strings.Join(got, "\n"))
	}
	// Names stay unique: alice's is taken on the other node.
	mallory := dialTelnet(t, tcpB)
	mallory.expect("Welcome")
	deadline = time.Now().Add(20 * time.Second)
	for {
		mallory.say("/nick alice")
		seen := mallory.expect("alice")
		line := seen[len(seen)-1]
		if strings.Contains(line, "taken") || strings.Contains(line, "in use") {
			break
		}
		if strings.Contains(line, "now known as alice") {
			t.Fatalf("a member of node B took alice's name after the failover: %q", line)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/nick alice: %q", line)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// At most one "lost" and one "restored" each, and a member told
	// the link was lost is told it is restored.
	for name, ch := range map[string]<-chan heard{"alice": heardByAlice, "bob": heardByBob} {
		count := func(what string) int {
			n := 0
			for _, l := range told[name] {
				n += strings.Count(l, what)
			}
			return n
		}
		// A second notice, or a late first, would come within the
		// link loop's tick of a second or its 5 s setup attempts.
		quiet := time.After(7 * time.Second)
	wait:
		for {
			select {
			case h := <-ch:
				if strings.Contains(h.line, "link to other nodes") {
					told[name] = append(told[name], h.line)
				}
			case <-quiet:
				if count("lost") == count("restored") {
					break wait
				}
			case <-time.After(30 * time.Second):
				break wait
			}
		}
		lost, restored := count("link to other nodes lost"), count("link to other nodes restored")
		t.Logf("%s was told: lost %d, restored %d", name, lost, restored)
		if lost > 1 || restored != lost {
			t.Errorf("%s was told %d times lost and %d times restored", name, lost, restored)
		}
	}
	for _, p := range nodes {
		var links []string
		for _, l := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(l, "link to other nodes") || strings.Contains(l, "set up NATS") {
				links = append(links, l)
			}
		}
		t.Logf("%s:\n%s", p.name, strings.Join(links, "\n"))
	}
}
