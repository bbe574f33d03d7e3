package natsrelay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"chatbridge/tcpserver"
)

// startRequired starts a relay that must reach NATS at once, and returns
// Start's error; on success the relay is closed at the test's end.
func startRequired(t *testing.T, cfg Config) (*node, error) {
	t.Helper()
	cfg.Required = true
	cfg.Secret = []byte(testSecret)
	cfg.ConnectTimeout = time.Second
	r, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	hub := tcpserver.NewHub(tcpserver.HubConfig{Relay: r, MaxPerIP: -1, Rate: -1}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Start(ctx, hub); err != nil {
		r.Close()
		return nil, err
	}
	t.Cleanup(func() { r.Close() })
	n := &node{hub: hub, relay: r}
	n.waitUp(t)
	return n, nil
}

// talk checks that a line said on a reaches b.
func talk(t *testing.T, a, b *node) {
	t.Helper()
	bob := b.join(t, "bob", "")
	alice := a.join(t, "alice", "")
	bob.expect("alice")
	alice.say("hello over NATS")
	bob.expect("<alice> hello over NATS")
}

func TestConnectWithUserAndPasswordInTheURL(t *testing.T) {
	ns := startNATSWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "node", Password: "pass-w0rd"}}
	})
	url := func(userinfo string) string { return fmt.Sprintf("nats://%s@127.0.0.1:%d", userinfo, ns.port) }
	a, err := startRequired(t, Config{URL: url("node:pass-w0rd"), NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := startRequired(t, Config{URL: url("node:pass-w0rd"), NodeID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	talk(t, a, b)

	for _, bad := range []string{url("node:wrong-pass"), ns.url()} {
		_, err := startRequired(t, Config{URL: bad})
		if err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
			t.Fatalf("with %s: %v", RedactURL(bad), err)
		}
		if strings.Contains(err.Error(), "wrong-pass") {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://node:s3cret@127.0.0.1:4222", "nats://node:redacted@127.0.0.1:4222"},
		{"nats://tok3n@127.0.0.1:4222", "nats://redacted@127.0.0.1:4222"},
		{"tls://a:p1@h1:4222, tls://b:p2@h2:4222", "tls://a:redacted@h1:4222,tls://b:redacted@h2:4222"},
		{"nats://u:p%zz@h", "(a URL that does not parse)"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// writeCerts makes a CA and a certificate it signs for 127.0.0.1, and
// returns the CA's file and the server's certificate.
func writeCerts(t *testing.T, dir string) (string, tls.Certificate) {
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
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}

func TestConnectWithTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, cert := writeCerts(t, dir)
	ns := startNATSWith(t, func(o *server.Options) {
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		o.TLS = true
		o.TLSTimeout = 2
	})
	url := fmt.Sprintf("tls://127.0.0.1:%d", ns.port)
	a, err := startRequired(t, Config{URL: url, NodeID: "a", CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	b, err := startRequired(t, Config{URL: url, NodeID: "b", CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	talk(t, a, b)

	// Without the CA, the server's certificate is not trusted.
	if _, err := startRequired(t, Config{URL: url}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	for file, want := range map[string]string{garbage: "no PEM certificate in it", filepath.Join(dir, "missing.pem"): "missing.pem"} {
		if _, err := New(Config{URL: url, Secret: []byte(testSecret), CAFile: file}, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CA file %s: %v, want %q", file, err, want)
		}
	}
}

// operator is a NATS operator with one account that may use JetStream, as
// a decentralised (JWT) NATS deployment has.
type operator struct {
	claims  *jwt.OperatorClaims
	account nkeys.KeyPair
	system  string            // the system account's public key
	jwts    map[string]string // account public key -> JWT
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	op := &operator{claims: claims, jwts: make(map[string]string)}
	account := func(js bool) nkeys.KeyPair {
		akp, _ := nkeys.CreateAccount()
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: -1, MemoryStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		op.jwts[apub] = ajwt
		return akp
	}
	op.account = account(true)
	op.system, _ = account(false).PublicKey()
	return op
}

// creds writes the credentials of a new user of the operator's account,
// signed by signer (the account's key, or a stranger's).
func (op *operator) creds(t *testing.T, dir, name string, signer nkeys.KeyPair) string {
	t.Helper()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	seed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	ujwt, err := uc.Encode(signer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestConnectWithCredentials(t *testing.T) {
	op := newOperator(t)
	ns := startNATSWith(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
		resolver := &server.MemAccResolver{}
		for pub, j := range op.jwts {
			resolver.Store(pub, j)
		}
		o.AccountResolver = resolver
		o.SystemAccount = op.system
	})
	dir := t.TempDir()
	a, err := startRequired(t, Config{URL: ns.url(), NodeID: "a", Creds: op.creds(t, dir, "a.creds", op.account)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := startRequired(t, Config{URL: ns.url(), NodeID: "b", Creds: op.creds(t, dir, "b.creds", op.account)})
	if err != nil {
		t.Fatal(err)
	}
	talk(t, a, b)

	stranger, _ := nkeys.CreateAccount()
	if _, err := startRequired(t, Config{URL: ns.url(), Creds: op.creds(t, dir, "stranger.creds", stranger)}); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("a user of an unknown account: %v", err)
	}
	if _, err := startRequired(t, Config{URL: ns.url()}); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("no credentials: %v", err)
	}

	good, _ := os.ReadFile(filepath.Join(dir, "a.creds"))
	jwtOnly := string(good[:strings.Index(string(good), "-----BEGIN USER NKEY SEED")])
	for name, tt := range map[string]struct{ content, want string }{
		"garbage.creds":  {"hello", "no user JWT in it"},
		"no-seed.creds":  {jwtOnly, "seed"},
		"missing.creds":  {"", "missing.creds"},
		"directory.dir/": {"", "directory.dir"},
	} {
		file := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, "/"):
			os.Mkdir(file, 0o700)
		case tt.content != "":
			os.WriteFile(file, []byte(tt.content), 0o600)
		}
		if _, err := New(Config{URL: ns.url(), Secret: []byte(testSecret), Creds: file}, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("credentials %s: %v, want %q", name, err, tt.want)
		}
	}
}

func TestSeveralURLs(t *testing.T) {
	dead := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	one, two := startNATS(t), startNATS(t)
	n, err := startRequired(t, Config{URL: dead + ", " + one.url() + "," + two.url(), NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	alice := n.join(t, "alice", "")
	first := n.relay.nc.ConnectedUrl()
	if first != one.url() && first != two.url() {
		t.Fatalf("connected to %s", first)
	}
	// Its server goes: the node carries on with the other.
	if first == one.url() {
		one.stop()
	} else {
		two.stop()
	}
	alice.expect(NoticeLost)
	alice.expect(NoticeRestored)
	if now := n.relay.nc.ConnectedUrl(); now == first || now == dead {
		t.Fatalf("reconnected to %s", now)
	}
	n.waitUp(t)
	if err := n.relay.ClaimName(context.Background(), "zoe", "lobby"); err != nil {
		t.Fatalf("claim on the survivor: %v", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
