package bridge

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"chatbridge/tcpserver"
)

var testAuthSecret = []byte("a-docs-site-secret-of-32-bytes-at-least")

// sign makes a token of claims, signed with HS256 and testAuthSecret.
func sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testAuthSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fresh returns claims naming name, valid for an hour from now.
func fresh(name string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"name": name, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// startLogged is start with a bridge and hub that log at debug to logged,
// and no TCP server.
func startLogged(t *testing.T, hc tcpserver.HubConfig, cfg Config, logged io.Writer) *stack {
	t.Helper()
	hc.MaxPerIP, hc.AnnounceDelay = -1, -1
	log := slog.New(slog.NewTextHandler(logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hub := tcpserver.NewHub(hc, log)
	st := &stack{hub: hub, bridge: New(hub, cfg, log)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.httpURL = "http://" + l.Addr().String()
	st.wsURL = "ws://" + l.Addr().String() + "/ws"
	done := make(chan error, 1)
	go func() { done <- st.bridge.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st.bridge.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	return st
}

// TestSignedInOverWebSocket: a page that brings a good token is the
// member the token names, verified in presence; one whose token names by
// sub only is that; a bad token of every kind closes the connection with
// 1008 and why, before any hello, and /metrics counts them. No token
// shows in the log, even at debug.
func TestSignedInOverWebSocket(t *testing.T) {
	var logged syncLog
	st := startLogged(t, tcpserver.HubConfig{}, Config{AuthSecret: testAuthSecret}, &logged)

	good := sign(t, fresh("alice"))
	alice := st.jsonClient(t, "token="+good)
	if alice.name != "alice" {
		t.Fatalf("signed in as %q, want alice", alice.name)
	}
	if ev := alice.expectEvent("presence", nil); !slices.Equal(ev.Verified, []string{"alice"}) {
		t.Errorf("presence = %+v, want alice verified", ev)
	}
	bySub := sign(t, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Minute).Unix()})
	if bob := st.plain(t, "nick=mallory&token="+bySub); bob.name != "bob" {
		t.Errorf("signed in by sub as %q, want bob", bob.name)
	}
	// A guest without a token is a guest still.
	if g := st.jsonClient(t, ""); !strings.HasPrefix(g.name, "guest-") {
		t.Errorf("without a token: %q", g.name)
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, fresh("carol")).SignedString(rsaKey)
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, fresh("carol")).SignedString(testAuthSecret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, fresh("carol")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	wrongKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, fresh("carol")).SignedString([]byte("another-site-secret-of-32-bytes-or-more"))
	now := time.Now()
	huge := fresh("carol")
	huge["pad"] = strings.Repeat("x", 4096)
	for _, tt := range []struct{ name, query, want string }{
		{"alg none", "token=" + none, "not signed with HS256"},
		{"RS256", "token=" + rs256, "not signed with HS256"},
		{"HS384", "token=" + hs384, "not signed with HS256"},
		{"wrong key", "token=" + wrongKey, "signature is wrong"},
		{"expired", "token=" + sign(t, jwt.MapClaims{"name": "carol", "exp": now.Add(-time.Minute).Unix()}), "has expired"},
		{"no exp", "token=" + sign(t, jwt.MapClaims{"name": "carol"}), "no exp"},
		{"not yet", "token=" + sign(t, jwt.MapClaims{"name": "carol", "nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), "not valid yet"},
		{"too long valid", "token=" + sign(t, jwt.MapClaims{"name": "carol", "exp": now.Add(48 * time.Hour).Unix()}), "more than 24 h"},
		{"issued long ago", "token=" + sign(t, jwt.MapClaims{"name": "carol", "iat": now.Add(-30 * time.Hour).Unix(), "exp": now.Add(time.Hour).Unix()}), "more than 24 h"},
		{"huge", "token=" + sign(t, huge), "too long"},
		{"malformed", "token=not.a.jwt", "malformed"},
		{"empty", "token=", "empty"},
		{"two", "token=" + good + "&token=" + good, "one token"},
		{"no name", "token=" + sign(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), "no name"},
		{"name not a string", "token=" + sign(t, jwt.MapClaims{"name": 42, "exp": now.Add(time.Hour).Unix()}), "malformed"},
		{"reserved name", "token=" + sign(t, fresh("admin")), `"admin"`},
		{"guest name", "token=" + sign(t, fresh("guest-1234")), "guest names"},
		{"invalid name", "token=" + sign(t, fresh("<script>")), "sign-in name"},
		{"signed in twice", "token=" + good, "connected already"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, _, err := st.dialWS(t, tt.query, &websocket.DialOptions{Subprotocols: []string{JSONProtocol}})
			if err != nil {
				t.Fatal(err)
			}
			code, reason := w.closeStatus()
			if code != websocket.StatusPolicyViolation || !strings.Contains(reason, tt.want) || !strings.HasPrefix(reason, "sign-in") {
				t.Errorf("close %v %q, want 1008 and %q", code, reason, tt.want)
			}
		})
	}

	resp, err := http.Get(st.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "chatbridge_auth_refused_total 15\n") {
		t.Errorf("/metrics: %s", grepLines(string(body), "auth"))
	}
	for _, tok := range []string{good, bySub, wrongKey, none} {
		_, sig, _ := strings.Cut(tok, ".")
		if strings.Contains(logged.String(), sig) || strings.Contains(logged.String(), url.QueryEscape(tok)) {
			t.Fatalf("the log shows a token:\n%s", logged.String())
		}
	}
	if !strings.Contains(logged.String(), "signature is wrong") {
		t.Errorf("the log does not say why a token was refused:\n%s", logged.String())
	}
}

// TestTokenWithoutAuthSecret: a server that takes no tokens refuses one
// with why, rather than making its bearer a guest.
func TestTokenWithoutAuthSecret(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	w, _, err := st.dialWS(t, "token="+sign(t, fresh("alice")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, reason := w.closeStatus(); code != websocket.StatusPolicyViolation || !strings.Contains(reason, "without --auth-secret") {
		t.Errorf("close %v %q", code, reason)
	}
}

// TestTokenReusedAfterExpiry: a token good now is refused once its exp
// is past, beyond the leeway, and taken within it.
func TestTokenReusedAfterExpiry(t *testing.T) {
	now := time.Now()
	tok := sign(t, jwt.MapClaims{"name": "alice", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	exp := time.Unix(now.Add(time.Minute).Unix(), 0)
	for _, tt := range []struct {
		at time.Time
		ok bool
	}{
		{now, true},
		{exp.Add(tokenLeeway - time.Second), true},
		{exp.Add(tokenLeeway + time.Second), false},
		{exp.Add(24 * time.Hour), false},
	} {
		name, err := verifyToken(testAuthSecret, tok, tt.at)
		if tt.ok != (err == nil) || tt.ok && name != "alice" {
			t.Errorf("at exp%+v: %q, %v", tt.at.Sub(exp), name, err)
		}
		if !tt.ok && !strings.Contains(err.Error(), "has expired") {
			t.Errorf("at exp%+v: %v", tt.at.Sub(exp), err)
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
