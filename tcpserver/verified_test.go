package tcpserver

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// connectVerified connects a member the site vouched for as nick.
func connectVerified(h *Hub, nick, addr string) (*Client, *fakeMember, error) {
	m := &fakeMember{}
	c, err := h.Connect(m, ConnectInfo{Addr: addr, Transport: "ws", Nick: nick, Verified: true})
	return c, m, err
}

// hasLine reports whether one of lines contains all of words.
func hasLine(lines []string, words ...string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		for _, w := range words {
			if !strings.Contains(l, w) {
				return false
			}
		}
		return true
	})
}

// TestVerifiedName: a member a site vouched for gets the name it gives,
// whoever had it: a member who took it (or one like it) unverified is
// renamed to a guest name and told why; the verified member may not
// /nick away from it nor /identify as another; /who, JSON presence and
// /whois mark it; and when it leaves the name is anyone's again.
func TestVerifiedName(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, ChangeBurst: -1}, nil)
	squatter, sm := connect(t, h, "alice")
	watcher, wm := connect(t, h, "carol")
	sm.lines()
	wm.lines()

	alice, am, err := connectVerified(h, "alice", "198.51.100.7:1")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Name() != "alice" {
		t.Fatalf("verified member is %q, want alice", alice.Name())
	}
	if !strings.HasPrefix(squatter.Name(), "guest-") {
		t.Fatalf("the member who had alice is %q, want a guest name", squatter.Name())
	}
	if got := sm.lines(); !hasLine(got, "alice", "signed in", squatter.Name()) {
		t.Fatalf("the unseated member was told %q", got)
	}
	if got := wm.lines(); !hasLine(got, "alice", "is now known as", squatter.Name()) {
		t.Fatalf("the room was told %q", got)
	}
	am.lines()

	// Nobody else may take it, nor one like it, while alice is here.
	watcher.Handle([]byte("/nick alice"))
	watcher.Handle([]byte("/nick aIice"))
	if got := wm.lines(); watcher.Name() != "carol" || len(got) != 2 {
		t.Fatalf("carol took %q; told %q", watcher.Name(), got)
	}
	// A second window signed in as alice is refused, with why.
	_, _, err = connectVerified(h, "alice", "198.51.100.7:2")
	var ve *VerifiedNameError
	if !errors.As(err, &ve) || !errors.Is(err, ErrVerifiedName) || !strings.Contains(err.Error(), "connected already") {
		t.Fatalf("second verified alice: %v", err)
	}

	// alice may not change name.
	alice.Handle([]byte("/nick alicia"))
	alice.Handle([]byte("/identify carol12 whatever-pass"))
	if got := am.lines(); alice.Name() != "alice" || !hasLine(got, "signed in with") {
		t.Fatalf("verified alice renamed to %q; told %q", alice.Name(), got)
	}

	// Marked in /who, presence and /whois.
	watcher.Handle([]byte("/who"))
	if got := wm.lines(); !hasLine(got, "verified: alice") {
		t.Fatalf("/who = %q", got)
	}
	p := h.lobby.presence(watcher)
	var w struct{ Verified []string }
	if err := json.Unmarshal(p.JSON(), &w); err != nil || !slices.Equal(w.Verified, []string{"alice"}) {
		t.Fatalf("presence JSON %s: verified %q, %v", p.JSON(), w.Verified, err)
	}
	if strings.Contains(string(p.JSON()), `"addr"`) {
		t.Fatalf("presence JSON %s carries an addr", p.JSON())
	}
	watcher.Handle([]byte("/whois alice"))
	watcher.Handle([]byte("/whois carol"))
	if got := wm.lines(); !hasLine(got, "alice:", "verified") || hasLine(got, "carol:", "verified") {
		t.Fatalf("/whois = %q", got)
	}

	// Gone, the name is free again and no longer marked.
	alice.Leave("")
	watcher.Handle([]byte("/nick alice"))
	if watcher.Name() != "alice" {
		t.Fatalf("after the verified alice left, carol is %q; told %q", watcher.Name(), wm.lines())
	}
	if v := h.verifiedAmong([]string{"alice"}); v != nil {
		t.Fatalf("alice still verified after leaving: %q", v)
	}
}

// TestVerifiedNameUnseatsLookAlike: a member whose name only looks like
// the verified one is renamed too: it would pass for its owner.
func TestVerifiedNameUnseatsLookAlike(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1}, nil)
	fake, fm := connect(t, h, "a1ice")
	fm.lines()
	if _, _, err := connectVerified(h, "alice", "198.51.100.7:1"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fake.Name(), "guest-") {
		t.Fatalf("a1ice is %q, want a guest name", fake.Name())
	}
}

// TestVerifiedNameRefused: a name the site gives that nobody may have
// here refuses the connection with why; nothing of the member stays
// counted.
func TestVerifiedNameRefused(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: 1}, nil)
	for _, tt := range []struct{ name, want string }{
		{"", "nick"},
		{"has space", "nick"},
		{strings.Repeat("x", 100), "nick"},
		{"admin", "kept for the server"},
		{"r00t", "kept for the server"},
		{"guest-1234", "guest names"},
		{"al\x00ice", "nick"},
	} {
		_, _, err := connectVerified(h, tt.name, "198.51.100.9:1")
		if !errors.Is(err, ErrVerifiedName) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("verified %q: %v, want %q", tt.name, err, tt.want)
		}
	}
	// MaxPerIP 1: had a refused member stayed counted, this would fail.
	if _, _, err := connectVerified(h, "dana", "198.51.100.9:1"); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
	if st := h.Stats(); st.Clients["ws"] != 1 || st.Rejected != 7 {
		t.Fatalf("stats %+v", st)
	}
}

// TestVerifiedTakesRegisteredName: the site's word is the operator's: a
// verified member gets a registered name, and its owner, present, is
// the one renamed.
func TestVerifiedTakesRegisteredName(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, PasswordCost: 4}, nil)
	owner, om := connect(t, h, "erin")
	owner.Handle([]byte("/register erins-password"))
	if got := om.lines(); !hasLine(got, "is registered") {
		t.Fatalf("register: %q", got)
	}
	c, _, err := connectVerified(h, "erin", "198.51.100.7:1")
	if err != nil || c.Name() != "erin" || owner.Name() == "erin" {
		t.Fatalf("verified erin: %v; names %q and %q", err, c.Name(), owner.Name())
	}
}

// TestSpeak: with Speak verified only verified members (and operators)
// speak, in rooms and in private; the others are told once as they come
// how to join in, and on each line they try. With Speak registered, a
// member identified with a registered name speaks too.
func TestSpeak(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Speak: SpeakVerified, OpPassword: "operator-password", PasswordCost: 4}, nil)
	reader, rm := connect(t, h, "reader")
	if got := rm.lines(); !hasLine(got, "only members signed in") {
		t.Fatalf("the reader's welcome: %q", got)
	}
	v, vm := func() (*Client, *fakeMember) {
		c, m, err := connectVerified(h, "vera", "198.51.100.7:1")
		if err != nil {
			t.Fatal(err)
		}
		return c, m
	}()
	if got := vm.lines(); hasLine(got, "only members") {
		t.Fatalf("the verified member was told it may not speak: %q", got)
	}
	rm.lines()
	reader.Handle([]byte("hello?"))
	reader.Handle([]byte("/me waves"))
	reader.Handle([]byte("/msg vera psst"))
	if got := rm.lines(); len(got) != 3 || !hasLine(got, "! only members signed in") {
		t.Fatalf("the reader was told %q", got)
	}
	if got := vm.lines(); len(got) != 0 {
		t.Fatalf("the reader's lines reached vera: %q", got)
	}
	v.Handle([]byte("hi all"))
	if got := rm.lines(); !hasLine(got, "<vera> hi all") {
		t.Fatalf("vera's line: %q", got)
	}
	reader.Handle([]byte("/op operator-password"))
	reader.Handle([]byte("I may now"))
	if got := vm.lines(); !hasLine(got, "<reader> I may now") {
		t.Fatalf("an operator's line: %q", got)
	}

	h2 := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Speak: SpeakRegistered, PasswordCost: 4}, nil)
	m, mm := connect(t, h2, "mona")
	_, om := connect(t, h2, "other")
	if got := mm.lines(); !hasLine(got, "/register PASSWORD") {
		t.Fatalf("the welcome with Speak registered: %q", got)
	}
	om.lines()
	m.Handle([]byte("before"))
	m.Handle([]byte("/register monas-password"))
	m.Handle([]byte("after"))
	if got := om.lines(); hasLine(got, "before") || !hasLine(got, "<mona> after") {
		t.Fatalf("with Speak registered the room got %q", got)
	}
	if _, _, err := connectVerified(h2, "vic", "198.51.100.7:1"); err != nil {
		t.Fatal(err)
	}
}

func TestParseSpeak(t *testing.T) {
	for _, s := range []string{"anyone", "registered", "verified"} {
		sp, err := ParseSpeak(s)
		if err != nil || sp.String() != s {
			t.Errorf("ParseSpeak(%q) = %v, %v", s, sp, err)
		}
	}
	for _, s := range []string{"", "Anyone", "all", "verified "} {
		if _, err := ParseSpeak(s); err == nil {
			t.Errorf("ParseSpeak(%q) took it", s)
		}
	}
}
