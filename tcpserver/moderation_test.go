package tcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const testOpPassword = "correct-horse-battery"

// syncBuffer is a log destination tests may read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startModServer is startServer with an operator password and a log the
// test reads.
func startModServer(t *testing.T, hc HubConfig) (*testServer, *syncBuffer) {
	t.Helper()
	if hc.OpPassword == "" {
		hc.OpPassword = testOpPassword
	}
	if hc.MaxPerIP == 0 {
		hc.MaxPerIP = -1
	}
	if hc.AnnounceDelay == 0 {
		hc.AnnounceDelay = -1
	}
	if hc.ChangeBurst == 0 {
		hc.ChangeBurst = -1
	}
	if hc.PasswordCost == 0 {
		hc.PasswordCost = bcrypt.MinCost // the default takes seconds under the race detector
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	hub := NewHub(hc, log)
	srv := New(hub, Config{}, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{hub: hub, srv: srv, addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts, logs
}

// dialFrom connects from the loopback address from (127.0.0.2, say), so
// that a test can ban or mute one address and not the others, and reads
// the welcome.
func (ts *testServer) dialFrom(t *testing.T, from string) *testClient {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &testClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	welcome := c.expect("Welcome to chatbridge")
	_, rest, _ := strings.Cut(welcome, "Welcome to chatbridge, ")
	c.name, _, _ = strings.Cut(rest, "!")
	c.expect(" in lobby: ")
	return c
}

// named renames c and waits for it to be so.
func (c *testClient) named(name string) *testClient {
	c.t.Helper()
	c.send("/nick " + name)
	c.expect("is now known as " + name)
	c.name = name
	return c
}

// opped makes c an operator.
func (c *testClient) opped() *testClient {
	c.t.Helper()
	c.send("/op " + testOpPassword)
	c.expect("you are now an operator")
	return c
}

// TestOpPasswordIsLimitedPerAddress: /op with the right password makes an
// operator and /deop ends it; wrong ones are refused, logged without the
// password, and after five in a minute the address may not try again
// (not even with the right one), while another address may.
func TestOpPasswordIsLimitedPerAddress(t *testing.T) {
	ts, logs := startModServer(t, HubConfig{})
	guesser := ts.dialFrom(t, "127.0.0.2")
	for i := range opTries {
		guesser.send("/op wrong-guess-" + string(rune('a'+i)))
		guesser.expect("! wrong operator password")
	}
	guesser.send("/op " + testOpPassword)
	guesser.expect("! too many wrong operator passwords from your address; try again in ")
	guesser.send("/kick nobody")
	guesser.expect("! /kick is for operators; /op PASSWORD if you are one")

	op := ts.dialFrom(t, "127.0.0.3")
	op.send("/op")
	op.expect("! usage: /op PASSWORD")
	op.opped()
	op.send("/op " + testOpPassword)
	op.expect("! you are already an operator")
	op.send("/deop")
	op.expect("you are no longer an operator")
	op.send("/deop")
	op.expect("! you are not an operator")

	st := ts.hub.Stats()
	if st.OpFailures != opTries || st.Moderation["op"] != 1 || st.Moderation["deop"] != 1 {
		t.Errorf("stats: %d failures, %d op, %d deop; want %d, 1, 1", st.OpFailures, st.Moderation["op"], st.Moderation["deop"], opTries)
	}
	log := logs.String()
	if !strings.Contains(log, "wrong operator password") || !strings.Contains(log, "127.0.0.2") {
		t.Errorf("wrong passwords not logged with the address:\n%s", log)
	}
	if strings.Contains(log, "wrong-guess") || strings.Contains(log, testOpPassword) {
		t.Errorf("the log shows a password:\n%s", log)
	}
}

func TestNoOperatorsWithoutPassword(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	c := ts.dial(t)
	c.send("/op anything-at-all")
	c.expect("! this server has no operators")
}

// TestKick: an operator's /kick disconnects the member with the reason,
// which the room's leave notice shows; it is logged and counted. Wrong
// names, long reasons and non-operators are refused.
func TestKick(t *testing.T) {
	ts, logs := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := ts.dialFrom(t, "127.0.0.2").named("bob")
	carol := ts.dialFrom(t, "127.0.0.3").named("carol")

	carol.send("/kick bob")
	carol.expect("! /kick is for operators")
	op.send("/kick")
	op.expect("! usage: /kick NAME [REASON]")
	op.send("/kick nobody")
	op.expect("! no one called nobody is here")
	op.send("/kick b@d")
	op.expect("is not valid")
	op.send("/kick bob " + strings.Repeat("x", maxReason+1))
	op.expect("! reason too long")

	op.send("/kick bob spamming links")
	op.expect("you kicked bob")
	last := bob.closed()
	if len(last) == 0 || !strings.Contains(last[len(last)-1], "disconnected: kicked by alice: spamming links") {
		t.Errorf("bob was told %q", last)
	}
	if left := carol.expect("left (kicked by alice: spamming links)"); !strings.Contains(left, "bob (127.0.0.2:") {
		t.Errorf("carol saw %q", left)
	}
	if n := ts.hub.Stats().Moderation["kick"]; n != 1 {
		t.Errorf("kicks counted: %d", n)
	}
	if log := logs.String(); !strings.Contains(log, "action=kick by=alice") || !strings.Contains(log, "target=bob") || !strings.Contains(log, `reason="spamming links"`) {
		t.Errorf("the kick is not logged with who, whom and why:\n%s", log)
	}
}

// TestMute: a muted member reads but what it says, to the room or in
// private, is refused with a notice; renaming does not escape it (the
// mute follows its address); /unmute ends it. Bad durations are refused.
func TestMute(t *testing.T) {
	ts, _ := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := ts.dialFrom(t, "127.0.0.2").named("bob")
	carol := ts.dialFrom(t, "127.0.0.3").named("carol")

	op.send("/mute bob 2h flooding")
	bob.expect("you are muted for 2h by alice (flooding)")
	op.expect("you muted bob for 2h")

	bob.send("hello?")
	bob.expect("! you are muted for ")
	bob.send("/me waves")
	bob.expect("! you are muted")
	bob.send("/msg carol psst")
	bob.expect("! you are muted: you can read, but not send messages")
	bob.named("bobby")
	bob.send("still here")
	bob.expect("! you are muted")
	carol.send("carol speaks")
	bob.expect("<carol> carol speaks") // bob still reads
	op.expect("<carol> carol speaks")  // and nothing of bob's came before it

	op.send("/unmute bobby")
	op.expect("you unmuted bobby")
	bob.expect("you are no longer muted")
	bob.send("free again")
	carol.expect("<bobby> free again")
	if st := ts.hub.Stats(); st.Moderation["mute"] != 1 || st.Moderation["unmute"] != 1 {
		t.Errorf("counted %v", st.Moderation)
	}
}

// TestMuteErrors checks each refusal of /mute says what is wrong.
func TestMuteErrors(t *testing.T) {
	ts, _ := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	ts.dialFrom(t, "127.0.0.2").named("bob")
	for _, tt := range []struct{ cmd, want string }{
		{"/mute bob 10x", `! duration "10x": use a number and s, m, h or d`},
		{"/mute bob 0m", "! duration \"0m\": must be more than 0"},
		{"/mute bob 99999d", "at most 3650d"},
		{"/mute bob 5m " + strings.Repeat("r", maxReason+1), "! reason too long"},
		{"/mute alice", "! you cannot mute yourself"},
		{"/mute nobody", "! no one called nobody is here"},
		{"/mute", "! usage: /mute NAME [DURATION] [REASON]"},
		{"/unmute bob", "! bob is not muted"},
		{"/unmute", "! usage: /unmute NAME"},
	} {
		op.send(tt.cmd)
		if got := op.expect("! "); !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.cmd, got, tt.want)
		}
	}
}

func TestMuteEnds(t *testing.T) {
	m := newModeration(NewHub(HubConfig{}, nil), nil, "")
	now := time.Now()
	m.mutes["bob"] = muteRecord{Name: "bob", Source: "127.0.0.2", Until: now.Add(time.Minute)}
	if _, ok := m.muteOfLocked("bob", "", now); !ok {
		t.Error("bob not muted within the minute")
	}
	if _, ok := m.muteOfLocked("other", "127.0.0.2", now); !ok {
		t.Error("bob's address not muted within the minute")
	}
	if _, ok := m.muteOfLocked("bob", "127.0.0.2", now.Add(time.Minute)); ok {
		t.Error("bob still muted after the minute")
	}
}

// TestWhois: anyone may ask; only operators see the address.
func TestWhois(t *testing.T) {
	ts, _ := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := ts.dialFrom(t, "127.0.0.2").named("bob")
	bob.send("/whois alice")
	line := bob.expect("alice: connected by tcp since ")
	if !strings.Contains(line, ", operator") || strings.Contains(line, "127.0.0.1") {
		t.Errorf("a member's /whois of an operator: %q", line)
	}
	op.send("/whois bob")
	if line := op.expect("bob: connected by tcp since "); !strings.Contains(line, "from 127.0.0.2:") {
		t.Errorf("an operator's /whois lacks the address: %q", line)
	}
	bob.send("/whois nobody")
	bob.expect("! no one called nobody is here")
	bob.send("/whois")
	bob.expect("! usage: /whois NAME")
}

// TestTopic: an operator sets the topic, the room is told, a newcomer
// sees it under the welcome, anyone may read it, and "/topic -" clears
// it. Members may not set it, nor may it be too long.
func TestTopic(t *testing.T) {
	ts, _ := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := ts.dialFrom(t, "127.0.0.2").named("bob")

	bob.send("/topic")
	bob.expect("lobby has no topic")
	bob.send("/topic mine now")
	bob.expect("! setting the topic is for operators")
	op.send("/topic " + strings.Repeat("t", maxTopic+1))
	op.expect("! topic too long")

	op.send("/topic Docs questions welcome; be kind")
	bob.expect("alice set the topic of lobby: Docs questions welcome; be kind")
	op.expect("alice set the topic of lobby: Docs questions welcome; be kind")

	c := ts.dialRaw(t)
	c.expect("Welcome to chatbridge")
	if got := c.readLine(); !strings.Contains(got, "Topic: Docs questions welcome; be kind") {
		t.Errorf("after the welcome: %q, want the topic", got)
	}
	bob.send("/topic")
	bob.expect("topic of lobby: Docs questions welcome; be kind (set by alice, ")

	op.send("/topic -")
	bob.expect("alice cleared the topic of lobby")
	c2 := ts.dialRaw(t)
	c2.expect("Welcome to chatbridge")
	if got := c2.readLine(); strings.Contains(got, "Topic") {
		t.Errorf("a cleared topic is still shown: %q", got)
	}
	if n := ts.hub.Stats().Moderation["topic"]; n != 2 {
		t.Errorf("topics counted: %d", n)
	}
}

// TestModerationAcrossHubs: two hubs sharing a StateStore, as two nodes
// share JetStream, or a restart with --data finds what the last run
// wrote: a topic or mute set on one is in force on the other, whose
// members are told of the new topic.
func TestModerationAcrossHubs(t *testing.T) {
	state := NewMemState()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := startModServer(t, HubConfig{State: state})
	b, _ := startModServer(t, HubConfig{State: state})
	for _, ts := range []*testServer{a, b} {
		if err := ts.hub.Moderation().Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	op := a.dialFrom(t, "127.0.0.1").named("alice").opped()
	onB := b.dialFrom(t, "127.0.0.2").named("bob")
	op.send("/topic set on node a")
	onB.expect("alice set the topic of lobby: set on node a")

	// A third hub started later, as after a restart, loads it.
	c, _ := startModServer(t, HubConfig{State: state})
	if err := c.hub.Moderation().Start(ctx); err != nil {
		t.Fatal(err)
	}
	newcomer := c.dialRaw(t)
	newcomer.expect("Welcome to chatbridge")
	newcomer.expect("Topic: set on node a")

	// A mute made on a applies on b, where the member is.
	state.Put(ctx, bucketMutes, "bob", []byte(`{"name":"bob","by":"alice"}`))
	onB.send("hello from b")
	onB.expect("! you are muted")
}

// dialRefused connects from the loopback address from and returns the
// one line the server says before it closes.
func (ts *testServer) dialRefused(t *testing.T, from string) string {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{t: t, conn: conn, r: bufio.NewReader(conn), name: "from " + from}
	defer conn.Close()
	lines := c.closed()
	if len(lines) != 1 {
		t.Fatalf("from %s: got %q, want one line and the end", from, lines)
	}
	return lines[0]
}

// TestBan: a ban by name disconnects the member and refuses its address
// at connect, with the reason and the time left; a CIDR ban refuses every
// address in it; /bans lists them and /unban lifts them. Operators'
// bad masks, durations and bans of everyone or of themselves are refused
// with what is wrong, and members may not ban.
func TestBan(t *testing.T) {
	ts, logs := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := ts.dialFrom(t, "127.0.0.2").named("bob")
	carol := ts.dialFrom(t, "127.0.0.3").named("carol")

	carol.send("/ban bob")
	carol.expect("! /ban is for operators")
	for _, tt := range []struct{ cmd, want string }{
		{"/ban", "! usage: /ban NAME|ADDRESS|CIDR [DURATION] [REASON]"},
		{"/ban 10.0.0.0/33", `! "10.0.0.0/33" is not a CIDR prefix`},
		{"/ban 10.0.0.300", `! "10.0.0.300" is not a name, an address or a CIDR prefix`},
		{"/ban nobody", "! no one called nobody is here; ban their address"},
		{"/ban 0.0.0.0/0", "! 0.0.0.0/0 would ban everyone"},
		{"/ban 127.0.0.0/8", "! 127.0.0.0/8 covers your own address"},
		{"/ban alice", "! 127.0.0.1/32 covers your own address"},
		{"/ban bob 7x", `! duration "7x"`},
		{"/ban bob -5m", `! duration "-5m"`},
		{"/unban 192.0.2.1", "! there is no ban on 192.0.2.1"},
		{"/unban", "! usage: /unban"},
	} {
		op.send(tt.cmd)
		if got := op.expect("! "); !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.cmd, got, tt.want)
		}
	}

	op.send("/ban bob 2h spamming links")
	op.expect("you banned bob (127.0.0.2/32) for 2h (spamming links)")
	if last := bob.closed(); len(last) == 0 || !strings.Contains(last[len(last)-1], "disconnected: banned by alice: spamming links") {
		t.Errorf("bob was told %q", last)
	}
	carol.expect("left (banned by alice: spamming links)")
	refusal := ts.dialRefused(t, "127.0.0.2")
	if !strings.Contains(refusal, "you are banned from this server (spamming links); 2h left") &&
		!strings.Contains(refusal, "you are banned from this server (spamming links); 1h59m left") {
		t.Errorf("refused with %q", refusal)
	}
	ts.dialFrom(t, "127.0.0.4") // another address comes in

	op.send("/ban 127.0.0.8/29")
	op.expect("you banned 127.0.0.8/29 permanently")
	if refusal := ts.dialRefused(t, "127.0.0.13"); !strings.Contains(refusal, "you are banned from this server, permanently") {
		t.Errorf("refused with %q", refusal)
	}
	op.send("/bans")
	op.expect("2 bans:")
	op.expect("  127.0.0.8/29 by alice, permanent")
	op.expect("  127.0.0.2/32 (bob) by alice, ")

	op.send("/unban bob")
	op.expect("you lifted the ban on 127.0.0.2/32")
	ts.dialFrom(t, "127.0.0.2")
	op.send("/unban 127.0.0.8/29")
	op.expect("you lifted the ban on 127.0.0.8/29")
	ts.dialFrom(t, "127.0.0.13")
	op.send("/bans")
	op.expect("no bans")

	st := ts.hub.Stats()
	if st.Banned != 2 || st.Moderation["ban"] != 2 || st.Moderation["unban"] != 2 || st.Rejected != 2 {
		t.Errorf("stats: banned %d, rejected %d, %v", st.Banned, st.Rejected, st.Moderation)
	}
	if log := logs.String(); !strings.Contains(log, "action=ban by=alice") || !strings.Contains(log, "mask=127.0.0.2/32 target=bob") {
		t.Errorf("the ban is not logged:\n%s", log)
	}
}

func TestBanEnds(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	m := h.mod
	rec, _ := json.Marshal(banRecord{Mask: "192.0.2.0/24", By: "alice", Until: time.Now().Add(-time.Second)})
	m.apply(bucketBans, "k", rec)
	if err := m.admit(&Client{ip: "192.0.2.7"}); err != nil {
		t.Errorf("a ban that ended refuses: %v", err)
	}
	rec, _ = json.Marshal(banRecord{Mask: "192.0.2.0/24", By: "alice", Until: time.Now().Add(time.Hour)})
	m.apply(bucketBans, "k", rec)
	err := m.admit(&Client{ip: "::ffff:192.0.2.7"})
	var be *BanError
	if !errors.As(err, &be) || !errors.Is(err, ErrBanned) || be.Left <= 59*time.Minute {
		t.Errorf("admit = %v", err)
	}
	m.apply(bucketBans, "k", []byte("{not json"))
	if m.admit(&Client{ip: "192.0.2.7"}) == nil {
		t.Error("a bad record lifted the ban")
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10m", 10 * time.Minute, true}, {"2h", 2 * time.Hour, true}, {"7d", 7 * 24 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true}, {"45s", 45 * time.Second, true}, {"3650d", maxDuration, true},
		{"3651d", 0, false}, {"0s", 0, false}, {"-1h", 0, false}, {"d", 0, false}, {"1.5d", 0, false},
		{"99999999999999999999d", 0, false}, {"10", 0, false}, {"1w", 0, false}, {"", 0, false},
	} {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// TestModerateVoiceSlow: in a moderated room only operators and voiced
// members speak, the others are told why; slow mode holds members who
// are not operators to a line every so many seconds; the room is told of
// each change, and bad arguments and non-operators are refused.
func TestModerateVoiceSlow(t *testing.T) {
	ts, _ := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := ts.dialFrom(t, "127.0.0.2").named("bob")
	carol := ts.dialFrom(t, "127.0.0.3").named("carol")

	bob.send("/moderate on")
	bob.expect("! /moderate is for operators")
	for _, tt := range []struct{ cmd, want string }{
		{"/moderate", "! usage: /moderate on|off"},
		{"/moderate maybe", "! usage: /moderate on|off"},
		{"/moderate off", "! lobby is already not moderated"},
		{"/voice", "! usage: /voice NAME"},
		{"/voice b@d", "is not valid"},
		{"/devoice bob", "! bob has no voice here"},
		{"/slow", "! usage: /slow SECONDS|off"},
		{"/slow 0", "! usage: /slow SECONDS|off, SECONDS from 1 to 3600"},
		{"/slow 3601", "! usage: /slow SECONDS|off"},
		{"/slow fast", "! usage: /slow SECONDS|off"},
		{"/slow off", "! slow mode is already off"},
	} {
		op.send(tt.cmd)
		if got := op.expect("! "); !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.cmd, got, tt.want)
		}
	}

	op.send("/moderate on")
	carol.expect("alice made lobby moderated")
	bob.send("may I?")
	bob.expect("! lobby is moderated: only operators and members they voice may speak")
	op.send("/voice bob")
	carol.expect("alice gave bob voice in lobby")
	bob.send("thank you")
	carol.expect("<bob> thank you")
	carol.send("me too")
	carol.expect("! lobby is moderated")
	op.send("operators speak")
	carol.expect("<alice> operators speak")
	op.send("/devoice bob")
	carol.expect("alice took bob's voice in lobby")
	op.send("/moderate off")
	carol.expect("alice made lobby open to everyone again")
	carol.send("open again")
	bob.expect("<carol> open again")

	op.send("/slow 60")
	bob.expect("alice put lobby in slow mode: one line every 60 s")
	bob.send("first")
	carol.expect("<bob> first")
	bob.send("second")
	bob.expect("! lobby is in slow mode: one line every 60 s; wait ")
	op.send("operators are not slowed")
	op.send("twice")
	carol.expect("<alice> operators are not slowed")
	carol.expect("<alice> twice")
	op.send("/slow off")
	bob.expect("alice turned slow mode off in lobby")
	bob.send("second, now")
	carol.expect("<bob> second, now")

	if st := ts.hub.Stats(); st.Moderation["moderate"] != 2 || st.Moderation["voice"] != 2 || st.Moderation["slow"] != 2 {
		t.Errorf("counted %v", st.Moderation)
	}
}

// TestRegisteredNames: /register makes a name its member's; nobody else
// may take it, nor a name that looks like it, present or not; its owner
// takes it back with /nick NAME PASSWORD or /identify; /who and /whois
// mark it; /password and /unregister need the password; wrong passwords
// are limited per address and logged without the password.
func TestRegisteredNames(t *testing.T) {
	ts, logs := startModServer(t, HubConfig{})
	alice := ts.dialFrom(t, "127.0.0.2")
	for _, tt := range []struct{ cmd, want string }{
		{"/register", "! usage: /register PASSWORD"},
		{"/register open-sesame", "! guest names cannot be registered"},
	} {
		alice.send(tt.cmd)
		if got := alice.expect("! "); !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.cmd, got, tt.want)
		}
	}
	alice.named("alice")
	for _, tt := range []struct{ cmd, want string }{
		{"/register short", "! a password needs at least 8 bytes"},
		{"/register " + strings.Repeat("p", 73), "! a password has at most 72 bytes"},
		{"/password old-password new-password", "! you have no registered name"},
		{"/unregister whatever-it-is", "! you have no registered name"},
		{"/identify bob", "! usage: /identify NAME PASSWORD"},
		{"/identify bob some-password", "! bob is not registered"},
	} {
		alice.send(tt.cmd)
		if got := alice.expect("! "); !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.cmd, got, tt.want)
		}
	}
	alice.send("/register open-sesame")
	alice.expect("your name alice is registered")
	alice.send("/register open-sesame")
	alice.expect("! alice is registered already")
	alice.send("/who")
	alice.expect("in lobby: alice; registered: alice")
	alice.send("/quit")
	alice.closed()

	// Gone, the name is still hers: refused to a newcomer who asks for
	// it, or one like it, by /nick.
	mallory := ts.dialFrom(t, "127.0.0.3")
	for _, tt := range []struct{ cmd, want string }{
		{"/nick alice", `! nick "alice" is registered; if it is yours: /nick NAME PASSWORD`},
		{"/nick ALICE", `is registered`},
		{"/nick a1ice", `! nick "a1ice" looks too much like "alice", which is registered`},
		{"/nick alice wrong-password", "! wrong password for alice"},
		{"/identify alice wrong-again", "! wrong password for alice"},
	} {
		mallory.send(tt.cmd)
		if got := mallory.expect("! "); !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.cmd, got, tt.want)
		}
	}
	for range accountTries - 2 {
		mallory.send("/nick alice guess-guess")
		mallory.expect("! wrong password for alice")
	}
	mallory.send("/nick alice open-sesame")
	mallory.expect("! too many tries from your address; try again in ")

	back := ts.dialFrom(t, "127.0.0.2")
	back.send("/nick alice open-sesame")
	back.expect("is now known as alice")
	back.expect("you are identified as alice")
	back.name = "alice"
	mallory.send("/whois alice")
	mallory.expect("alice: connected by tcp since ")
	back.send("/password wrong-password brand-new-pass")
	back.expect("! wrong password for alice")
	back.send("/password open-sesame brand-new-pass")
	back.expect("the password of alice is changed")
	back.send("/nick alice2")
	back.expect("is now known as alice2")
	back.send("/nick alice")
	back.expect("is now known as alice") // hers, without the password: she proved it
	back.send("/unregister open-sesame")
	back.expect("! wrong password for alice")
	back.send("/unregister brand-new-pass")
	back.expect("alice is no longer registered")
	back.send("/who")
	if line := back.expect(" in lobby: "); strings.Contains(line, "registered") {
		t.Errorf("/who after /unregister: %q", line)
	}

	if st := ts.hub.Stats(); st.PasswordFailures != accountTries+2 { // five from mallory, two from alice
		t.Errorf("password failures counted: %d", st.PasswordFailures)
	}
	log := logs.String()
	if !strings.Contains(log, "wrong account password") {
		t.Errorf("wrong passwords not logged:\n%s", log)
	}
	for _, secret := range []string{"open-sesame", "wrong-password", "brand-new-pass", "guess-guess"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows a password %q:\n%s", secret, log)
		}
	}
}

// TestRegisteredNameOnConnect: a newcomer who asks for a registered name
// at connect (as the page does with the name it had) is a guest, told
// why; and a name registered on one hub is refused on another sharing
// the state.
func TestRegisteredNameOnConnect(t *testing.T) {
	state := NewMemState()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := startModServer(t, HubConfig{State: state})
	b, _ := startModServer(t, HubConfig{State: state})
	for _, ts := range []*testServer{a, b} {
		if err := ts.hub.Moderation().Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	alice := a.dialFrom(t, "127.0.0.2").named("alice")
	alice.send("/register open-sesame")
	alice.expect("is registered")

	onB := b.dialFrom(t, "127.0.0.3")
	onB.send("/nick alice")
	onB.expect(`! nick "alice" is registered`)

	m := &fakeMember{}
	c, err := b.hub.Connect(m, ConnectInfo{Addr: "127.0.0.4:1", Transport: "ws", Nick: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Leave("")
	if c.Name() == "alice" {
		t.Fatal("a newcomer asking for a registered name got it")
	}
	if lines := m.lines(); !slices.ContainsFunc(lines, func(l string) bool {
		return strings.Contains(l, `nick "alice" is registered; if it is yours: /nick NAME PASSWORD; you are a guest for now`)
	}) {
		t.Errorf("the newcomer was not told why: %q", lines)
	}
	if reg := b.hub.mod.registeredCopy(); !reg["alice"] {
		t.Errorf("hub b's registered names: %v", reg)
	}
}

// TestSSHKeyOwnsRegisteredName: /register from a session that proved an
// SSH key records the key's fingerprint with the name; a later login
// with that key, as that name, has it without a password, on another
// hub sharing the state too; another key, or none, gets a guest name and
// why; a key owns only the name it was registered with.
func TestSSHKeyOwnsRegisteredName(t *testing.T) {
	state := NewMemState()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := startModServer(t, HubConfig{State: state})
	b, _ := startModServer(t, HubConfig{State: state})
	for _, ts := range []*testServer{a, b} {
		if err := ts.hub.Moderation().Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const key, other = "SHA256:aliceskeyaliceskeyaliceskeyaliceskeyalice", "SHA256:somebodyelsesomebodyelsesomebodyelsesomeb"
	connect := func(ts *testServer, nick, key string) (*Client, *fakeMember) {
		t.Helper()
		m := &fakeMember{}
		c, err := ts.hub.Connect(m, ConnectInfo{Addr: "127.0.0.5:1", Transport: "ssh", Nick: nick, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return c, m
	}
	alice, am := connect(a, "alice", key)
	alice.Handle([]byte("/register open-sesame"))
	if lines := am.lines(); !hasLine(lines, "is registered", "log in over SSH as alice with this key ("+key+")") {
		t.Fatalf("/register over SSH: %q", lines)
	}
	if rec, ok := b.hub.mod.account("alice"); !ok || !slices.Equal(rec.Keys, []string{key}) {
		t.Fatalf("the account as hub b has it: %+v", rec)
	}
	alice.Leave("")

	for _, ts := range []*testServer{a, b} {
		c, m := connect(ts, "Alice", key)
		if c.Name() != "alice" || ts.hub.mod.accountOf(c) != "alice" {
			t.Fatalf("with the key: %q, account %q", c.Name(), ts.hub.mod.accountOf(c))
		}
		if lines := m.lines(); !hasLine(lines, "you are identified as alice: your SSH key owns the name") {
			t.Errorf("with the key, not told: %q", lines)
		}
		// Identified: /password needs the password still.
		c.Handle([]byte("/password wrong-one new-password"))
		if lines := m.lines(); !hasLine(lines, "! wrong password for alice") {
			t.Errorf("/password with the wrong one: %q", lines)
		}
		c.Leave("")
	}
	for _, k := range []string{other, ""} {
		c, m := connect(b, "alice", k)
		if c.Name() == "alice" || b.hub.mod.accountOf(c) != "" {
			t.Fatalf("key %q got alice (account %q)", k, b.hub.mod.accountOf(c))
		}
		if lines := m.lines(); !hasLine(lines, `nick "alice" is registered`, "you are a guest for now") {
			t.Errorf("key %q not told why: %q", k, lines)
		}
		c.Leave("")
	}
	// The key owns alice, not another registered name.
	bob, bm := connect(a, "bob", other)
	bob.Handle([]byte("/register bobs-password"))
	bm.lines()
	bob.Leave("")
	c, _ := connect(a, "bob", key)
	if c.Name() == "bob" {
		t.Fatal("alice's key got bob")
	}
	c.Leave("")
	// While alice is here, her key gets her a guest name, not a clash.
	here, _ := connect(a, "alice", key)
	again, m := connect(a, "alice", key)
	if again.Name() == "alice" || !hasLine(m.lines(), "is taken") {
		t.Errorf("a second login with the key: %q", again.Name())
	}
	again.Leave("")
	here.Leave("")
}

// TestAccountKeysBounded: a record from the store naming too many keys,
// or an empty or too long one, is refused.
func TestAccountKeysBounded(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	for _, keys := range [][]string{make([]string, maxAccountKeys+1), {""}, {strings.Repeat("k", maxKeyLen+1)}} {
		for i := range keys {
			if keys[i] == "" && len(keys) > 1 {
				keys[i] = "SHA256:k"
			}
		}
		b, _ := json.Marshal(accountRecord{Name: "alice", Keys: keys})
		if err := h.mod.applyAccount("alice", b); err == nil {
			t.Errorf("%d keys %q...: taken", len(keys), keys[0])
		}
	}
	b, _ := json.Marshal(accountRecord{Name: "alice", Keys: []string{"SHA256:k"}})
	if err := h.mod.applyAccount("alice", b); err != nil {
		t.Fatal(err)
	}
}

// TestUnmuteTakesNoLockAcrossTheHubs: /unmute looks the member up (the
// hub's lock) before it reads the mutes (moderation's), as a join takes
// them in the other order (the hub's, then the topic): holding
// moderation's lock while waiting for the hub's deadlocked the hub as
// soon as a record was applied meanwhile.
func TestUnmuteTakesNoLockAcrossTheHubs(t *testing.T) {
	ts, _ := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	ts.dialFrom(t, "127.0.0.2").named("carol")

	h, m := ts.hub, ts.hub.mod
	h.mu.Lock()
	op.send("/unmute carol")
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		if !m.mu.TryLock() {
			h.mu.Unlock()
			t.Fatal("/unmute holds moderation's lock while it waits for the hub's")
		}
		m.mu.Unlock()
		runtime.Gosched()
	}
	h.mu.Unlock()
	op.expect("! carol is not muted")
}

// TestEndedMutesAndBansFreeTheirPlaces: mutes and bans that ended are
// dropped when an operator mutes or bans, so that a thousand short ones
// do not refuse every /mute and /ban after them.
func TestEndedMutesAndBansFreeTheirPlaces(t *testing.T) {
	ts, _ := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	ts.dialFrom(t, "127.0.0.2").named("bob")
	m := ts.hub.mod
	ended := time.Now().Add(-time.Second)
	for i := range maxMuteBans {
		name := "gone" + strconv.Itoa(i)
		if err := m.save(bucketMutes, name, muteRecord{Name: name, By: "alice", Until: ended}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range maxBans {
		mask := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32)
		if err := m.save(bucketBans, banKey(mask), banRecord{Mask: mask.String(), By: "alice", Until: ended}); err != nil {
			t.Fatal(err)
		}
	}
	op.send("/mute bob 10m")
	op.expect("you muted bob for 10m")
	op.send("/ban 192.0.2.1 10m")
	op.expect("you banned 192.0.2.1/32 for 10m")
	m.mu.RLock()
	mutes, bans := len(m.mutes), len(m.bans)
	m.mu.RUnlock()
	if mutes != 1 || bans != 1 {
		t.Errorf("%d mutes and %d bans kept, want the 1 of each in force", mutes, bans)
	}
}

// TestSpeakingFreelyTakesNoModerationLock: with mutes in force on others
// and another room moderated, a line of a member no mute or mode can stop
// is not held up by moderation's lock (an operator's change holds it): it
// once took the read lock and looked through every mute, by address, for
// each line (18 µs a line with 1,000 mutes, BenchmarkHandle). The muted
// and the moderated are still stopped, by the same rules.
func TestSpeakingFreelyTakesNoModerationLock(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: -1}, nil)
	m := h.mod
	m.apply(bucketMutes, "pest", []byte(`{"name":"pest","source":"198.51.100.7","by":"op"}`))
	m.apply(bucketModes, "quiet", []byte(`{"moderated":true}`))
	ada, am := connect(t, h, "ada")
	_, bm := connect(t, h, "bob")
	bm.lines()

	m.mu.Lock()
	said := make(chan struct{})
	go func() {
		ada.Handle([]byte("hello while the rules change"))
		close(said)
	}()
	select {
	case <-said:
		m.mu.Unlock()
	case <-time.After(2 * time.Second):
		m.mu.Unlock()
		<-said
		t.Fatal("a line of a member free to speak waited for moderation's lock")
	}
	if got := bm.lines(); !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "<ada> hello while the rules change") }) {
		t.Fatalf("bob got %q", got)
	}

	// The rules still hold: by name, by address under another name, and
	// in the moderated room.
	pest, pm := connect(t, h, "pest")
	pest.Handle([]byte("let me speak"))
	if got := pm.lines(); !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "you are muted") }) {
		t.Errorf("pest: %q", got)
	}
	other := &fakeMember{}
	c, err := h.Connect(other, ConnectInfo{Addr: "198.51.100.7:1000", Transport: "tcp", Nick: "newname"})
	if err != nil {
		t.Fatal(err)
	}
	other.lines()
	c.Handle([]byte("from the muted address"))
	if got := other.lines(); !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "you are muted") }) {
		t.Errorf("the muted address, under another name: %q", got)
	}
	ada.Handle([]byte("/join quiet"))
	am.lines()
	ada.Handle([]byte("anyone?"))
	if got := am.lines(); !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "is moderated") }) {
		t.Errorf("ada in the moderated room: %q", got)
	}
}
