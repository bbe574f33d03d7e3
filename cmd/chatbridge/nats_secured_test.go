package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The passwords and node IDs of the README's "Securing NATS".
const (
	securedPasswordA  = "CHANGE-ME-password-of-node-a"
	securedPasswordB  = "CHANGE-ME-password-of-node-b"
	securedOpPassword = "the operators' password, in a test"
)

// securedConfig writes the nats-server configuration of the README's
// "Securing NATS", with its address, store and certificate files made the
// test's, and returns its file and the CA's.
func securedConfig(t *testing.T, dir, addr string) (conf, ca string) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "### Securing NATS")
	if i < 0 {
		t.Fatal(`README.md has no "### Securing NATS"`)
	}
	s = s[i:]
	start := strings.Index(s, "```conf\n")
	if start < 0 {
		t.Fatal(`"Securing NATS" has no "conf" block`)
	}
	s = s[start+len("```conf\n"):]
	s = s[:strings.Index(s, "```")]
	for _, r := range []struct{ old, new string }{
		{"listen: 0.0.0.0:4222", "listen: " + addr},
		{`"/var/lib/nats"`, fmt.Sprintf("%q", filepath.Join(dir, "store"))},
		{`"/etc/nats/server-cert.pem"`, fmt.Sprintf("%q", filepath.Join(dir, "server-cert.pem"))},
		{`"/etc/nats/server-key.pem"`, fmt.Sprintf("%q", filepath.Join(dir, "server-key.pem"))},
		{`password: "` + securedPasswordA + `"`, `password: "` + securedPasswordA + `"`},
		{`password: "` + securedPasswordB + `"`, `password: "` + securedPasswordB + `"`},
	} {
		if strings.Count(s, r.old) != 1 {
			t.Fatalf("the README's configuration has not one %s:\n%s", r.old, s)
		}
		s = strings.Replace(s, r.old, r.new, 1)
	}
	conf = filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf, writeServerCerts(t, dir)
}

// writeServerCerts writes a CA and the certificate it signs for
// 127.0.0.1 (server-cert.pem, server-key.pem), and returns the CA's file.
func writeServerCerts(t *testing.T, dir string) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":          {Type: "CERTIFICATE", Bytes: caDER},
		"server-cert.pem": {Type: "CERTIFICATE", Bytes: leafDER},
		"server-key.pem":  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "ca.pem")
}

// buildChatbridge builds this command into dir.
func buildChatbridge(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "chatbridge")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// telnetUser is a member on a node's --tcp.
type telnetUser struct {
	t    *testing.T
	name string
	conn net.Conn
	r    *bufio.Reader
}

func dialUser(t *testing.T, addr, name string) *telnetUser {
	t.Helper()
	c := dialRetry(t, addr)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	u := &telnetUser{t: t, name: name, conn: c, r: bufio.NewReader(c)}
	u.expect("Welcome to chatbridge")
	u.say("/nick " + name)
	u.expect("is now known as " + name)
	return u
}

func (u *telnetUser) say(line string) { fmt.Fprintf(u.conn, "%s\r\n", line) }

// expect reads until a line with each of words, and returns it.
func (u *telnetUser) expect(words ...string) string {
	u.t.Helper()
	var seen []string
	for {
		line, err := u.r.ReadString('\n')
		if err != nil {
			u.t.Fatalf("%s: waiting for %q: %v; saw %q", u.name, words, err, seen)
		}
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return line
		}
		seen = append(seen, line)
	}
}

// ask sends cmd until its answer (the line with answer) holds want:
// presence spreads in milliseconds, not at once.
func (u *telnetUser) ask(cmd, answer, want string) {
	u.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u.say(cmd)
		got := u.expect(answer)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: %s answered %q, want %q in it", u.name, cmd, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNATSEndToEndSecured runs the README's "Securing NATS": its
// nats-server configuration, on Debian's nats-server if there is one and
// on the embedded one, and two nodes started as it says. They must do all
// a cluster does without NATS refusing them anything, and a stranger, or a
// node's NATS user, must not get past the permissions.
func TestNATSEndToEndSecured(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bin := buildChatbridge(t, ctx, t.TempDir())

	t.Run("debian nats-server", func(t *testing.T) {
		natsBin := natsServerBinary(t)
		dir := t.TempDir()
		addr := freeAddr(t)
		conf, ca := securedConfig(t, dir, addr)
		if out, err := exec.CommandContext(ctx, natsBin, "-c", conf, "-t").CombinedOutput(); err != nil {
			t.Fatalf("nats-server -t: %v\n%s", err, out)
		}
		srv := startProcess(t, ctx, "nats-server", natsBin, "-c", conf)
		dialRetry(t, addr).Close()
		securedCluster(t, ctx, bin, addr, ca, func() string { return srv.out.String() })
	})

	t.Run("embedded nats-server", func(t *testing.T) {
		dir := t.TempDir()
		addr := freeAddr(t)
		conf, ca := securedConfig(t, dir, addr)
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("the README's configuration: %v", err)
		}
		opts.NoSigs = true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		log := &violations{}
		srv.SetLoggerV2(log, false, false, false)
		srv.Start()
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		securedCluster(t, ctx, bin, addr, ca, log.String)
	})
}

// violations keeps what an embedded nats-server logs as errors.
type violations struct{ syncBuffer }

func (v *violations) Noticef(string, ...any) {}
func (v *violations) Warnf(f string, a ...any) {
	fmt.Fprintf(&v.syncBuffer, "[WRN] "+f+"\n", a...)
}
func (v *violations) Fatalf(f string, a ...any) {
	fmt.Fprintf(&v.syncBuffer, "[FTL] "+f+"\n", a...)
}
func (v *violations) Errorf(f string, a ...any) {
	fmt.Fprintf(&v.syncBuffer, "[ERR] "+f+"\n", a...)
}
func (v *violations) Debugf(string, ...any) {}
func (v *violations) Tracef(string, ...any) {}

// securedCluster runs two nodes on the secured NATS at addr and checks
// everything a cluster does, then what a stranger and a node's user can.
// serverLog returns what the server logged.
func securedCluster(t *testing.T, ctx context.Context, bin, addr, ca string, serverLog func() string) {
	secret := []string{"CHATBRIDGE_CLUSTER_SECRET=the README's secured cluster, in a test", "CHATBRIDGE_OP_PASSWORD=" + securedOpPassword}
	tcpA, tcpB := freeAddr(t), freeAddr(t)
	var nodes []*process
	start := func(id, password, tcp string) {
		nodes = append(nodes, startProcessEnv(t, ctx, secret, id, bin,
			"--tcp", tcp, "--http", "", "--nats-node", id, "--nats", "tls://"+id+":"+password+"@"+addr, "--nats-ca", ca,
			"--nats-required", "--log-level", "debug",
			"--announce-delay", "0")) // joins at once: the test waits for them
	}

	// node-a alone: a line said in dev reaches only the stream.
	start("node-a", securedPasswordA, tcpA)
	// carol says it and goes; alice stays in the lobby (name and room
	// changes have a rate: three at once, then one every 5 s).
	carol := dialUser(t, tcpA, "carol")
	carol.say("/join dev")
	carol.expect("You are now in dev")
	carol.say("said in dev")
	carol.say("/quit")
	carol.expect("bye")
	alice := dialUser(t, tcpA, "alice")

	// A big names bucket, as a big cluster has (the entries are not
	// sealed: the nodes ignore them), so that the watch of a node that
	// starts now asks for flow control.
	filler, err := nats.Connect("tls://node-a:"+securedPasswordA+"@"+addr, nats.RootCAs(ca))
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(strings.Repeat("f", 400))
	for i := range 12000 {
		if err := filler.Publish(fmt.Sprintf("$KV.chatbridge_names.filler%d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	if err := filler.Flush(); err != nil {
		t.Fatal(err)
	}
	filler.Close()

	// Everything a cluster does: lines, actions, presence, private
	// messages both ways, names, rooms and their history.
	start("node-b", securedPasswordB, tcpB)
	bob := dialUser(t, tcpB, "bob")
	alice.expect("is now known as bob")
	alice.say("hello from A")
	alice.say("/me waves")
	bob.expect("<alice> hello from A")
	bob.expect("alice waves")
	bob.say("hello from B")
	alice.expect("<bob> hello from B")
	bob.ask("/who", " in lobby: ", "2 in lobby: alice, bob")
	alice.say("/msg bob psst")
	bob.expect("*alice* psst")
	alice.expect("-> *bob* psst")
	bob.say("/msg alice back")
	alice.expect("*bob* back")
	bob.expect("-> *alice* back")
	bob.say("/nick alice")
	bob.expect(`"alice" is taken`)
	bob.say("/join dev")
	bob.expect("<carol> said in dev") // from the stream: node-b was not there
	alice.say("/join dev")
	bob.expect("alice", "joined")
	bob.ask("/rooms", "rooms: ", "rooms: dev (2)")
	// An operator's /delete takes the line out of the stream.
	alice.say("a line to delete")
	bob.expect("<alice> a line to delete")
	alice.say("/op " + securedOpPassword)
	alice.expect("you are now an operator")
	alice.say("/delete last alice")
	alice.expect("you removed 1 line by alice")
	bob.expect("a message by alice was removed")
	alice.say("/nick ally")
	bob.expect("alice is now known as ally")
	alice.conn.Close()
	bob.expect("ally", "left")

	// Stopped as a service is: they delete their consumers.
	for _, p := range nodes {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", p.name, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not stop", p.name)
		}
		if out := p.out.String(); strings.Contains(strings.ToLower(out), "violation") || strings.Contains(out, "level=ERROR") {
			t.Errorf("%s:\n%s", p.name, out)
		}
	}
	if out := serverLog(); strings.Contains(out, "Violation") {
		t.Fatalf("NATS refused the nodes something:\n%s", out)
	}

	// A stranger cannot connect; node-a's user cannot read node-b's
	// private messages nor delete the stream.
	if nc, err := nats.Connect("tls://"+addr, nats.RootCAs(ca)); err == nil {
		nc.Close()
		t.Fatal("a client without a user connected")
	} else if !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("a client without a user: %v", err)
	}
	refused := make(chan error, 4)
	nc, err := nats.Connect("tls://node-a:"+securedPasswordA+"@"+addr, nats.RootCAs(ca),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, try := range []struct {
		what string
		do   func() error
	}{
		{`Subscription to "chatbridge.node.node-b.private"`, func() error {
			_, err := nc.SubscribeSync("chatbridge.node.node-b.private")
			return err
		}},
		{`Publish to "$JS.API.STREAM.DELETE.chatbridge_history"`, func() error {
			return nc.Publish("$JS.API.STREAM.DELETE.chatbridge_history", nil)
		}},
	} {
		if err := try.do(); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		select {
		case err := <-refused:
			if !strings.Contains(err.Error(), try.what) {
				t.Fatalf("refused %v, want %s", err, try.what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("node-a's user was not refused %s", try.what)
		}
	}
}
