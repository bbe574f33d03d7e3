package tcpserver

import (
	"errors"
	"strings"
	"testing"
)

// nickErr has c ask for name and returns the error line it got, or "" if
// the name changed. Joins that came meanwhile are passed over.
func nickErr(t *testing.T, c *Client, m *fakeMember, name string) string {
	t.Helper()
	m.lines()
	c.Handle([]byte("/nick " + name))
	var got []string
	for _, l := range m.lines() {
		if !strings.HasSuffix(l, " joined") {
			got = append(got, l)
		}
	}
	if len(got) != 1 {
		t.Fatalf("/nick %s: got %q, want one line", name, got)
	}
	if strings.HasPrefix(got[0], "! ") {
		return got[0]
	}
	if !strings.Contains(got[0], "is now known as "+name) {
		t.Fatalf("/nick %s: got %q", name, got[0])
	}
	return ""
}

func TestNamesLikeAnotherAreRefused(t *testing.T) {
	tests := []struct {
		here, ask string
		want      error // nil: the name is free
	}{
		{"alice", "aIice", ErrNickLookAlike}, // capital I for l
		{"alice", "al1ce", ErrNickLookAlike}, // 1 for i
		{"alice", "a1ice", ErrNickLookAlike}, // 1 for l
		{"alice", "ALICE", ErrNickTaken},
		{"alice", "allce", nil}, // l and i do not look alike
		{"alice", "aiice", nil},
		{"aIex", "alex", ErrNickLookAlike}, // as typed: capital I is l
		{"ALex", "AIex", nil},              // but capital L is not I
		{"mary", "rnary", ErrNickLookAlike},
		{"rnary", "mary", ErrNickLookAlike},
		{"emma", "ernrna", ErrNickLookAlike},
		{"will", "vvill", ErrNickLookAlike},
		{"will", "VViII", ErrNickLookAlike},
		{"dan", "clan", ErrNickLookAlike},
		{"dan", "cIan", ErrNickLookAlike},
		{"tom", "t0m", ErrNickLookAlike},
		{"tom", "TOM", ErrNickTaken},
		{"bob0", "bobO", ErrNickLookAlike},
		{"x1", "xl", ErrNickLookAlike},
		{"x1", "xi", ErrNickLookAlike},
		{"xl", "xi", nil},
		{"ann", "anna", nil},
		{"al_ice", "al-ice", nil},
	}
	for _, tt := range tests {
		t.Run(tt.here+"/"+tt.ask, func(t *testing.T) {
			h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
			here, _ := connect(t, h, tt.here)
			if here.Name() != tt.here {
				t.Fatalf("connected as %q, want %q", here.Name(), tt.here)
			}
			c, m := connect(t, h, "")
			got := nickErr(t, c, m, tt.ask)
			h.mu.Lock()
			err := h.names.check(tt.ask, c)
			h.mu.Unlock()
			switch {
			case tt.want == nil && (got != "" || err != nil):
				t.Fatalf("/nick %s refused: %q (%v)", tt.ask, got, err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("check(%s) = %v, want %v", tt.ask, err, tt.want)
			case tt.want != nil && got != "! "+err.Error():
				t.Fatalf("/nick %s: got %q, want %q", tt.ask, got, "! "+err.Error())
			}
		})
	}
}

// The index follows every way a name comes and goes, and a member's own
// name never stands in its way.
func TestLookAlikeIndexFollowsNames(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	alice, am := connect(t, h, "alice")
	bob, bm := connect(t, h, "")

	if got := nickErr(t, bob, bm, "aIice"); !strings.Contains(got, "looks too much like") {
		t.Fatalf("bob as aIice: %q", got)
	}
	if got := nickErr(t, alice, am, "aIice"); got != "" { // her own, written otherwise
		t.Fatalf("alice as aIice: %q", got)
	}
	if got := nickErr(t, bob, bm, "alice"); !strings.Contains(got, "looks too much like") {
		t.Fatalf("bob as alice while aIice is here: %q", got)
	}
	if got := nickErr(t, alice, am, "carol"); got != "" {
		t.Fatalf("alice as carol: %q", got)
	}
	if got := nickErr(t, bob, bm, "alice"); got != "" { // free again
		t.Fatalf("bob as alice after she left the name: %q", got)
	}
	if got := nickErr(t, bob, bm, "caroI"); !strings.Contains(got, "looks too much like") {
		t.Fatalf("bob as caroI: %q", got)
	}
	alice.Leave("")
	if got := nickErr(t, bob, bm, "caroI"); got != "" { // free once she has gone
		t.Fatalf("bob as caroI after carol left: %q", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.names.byFold) != 1 || len(h.names.byLook) != 1 {
		t.Fatalf("index holds %d names and %d looks, want 1 each", len(h.names.byFold), len(h.names.byLook))
	}
}

// Guest names are in the index too: a name like a guest's is refused as
// one like anybody else's.
func TestGuestNamesAreIndexed(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	for range 100 {
		g, _ := connect(t, h, "")
		digits, ok := strings.CutPrefix(g.Name(), "guest-")
		if !ok {
			t.Fatalf("guest name %q", g.Name())
		}
		i := strings.IndexAny(digits, "01")
		if i < 0 {
			continue // nothing to disguise; try another
		}
		like := "guest-" + digits[:i] + map[byte]string{'0': "O", '1': "l"}[digits[i]] + digits[i+1:]
		h.mu.Lock()
		err := h.names.clash(like, nil)
		h.mu.Unlock()
		if !errors.Is(err, ErrNickLookAlike) {
			t.Fatalf("clash(%q) with %q here = %v", like, g.Name(), err)
		}
		return
	}
	t.Fatal("no guest name with a 0 or a 1 in 100")
}

func TestReservedNamesAreRefused(t *testing.T) {
	tests := []struct {
		name string
		want error
	}{
		{"server", ErrNickReserved},
		{"Server", ErrNickReserved},
		{"s3rver", ErrNickReserved},
		{"admin", ErrNickReserved},
		{"adrnin", ErrNickReserved},
		{"adm1n", ErrNickReserved},
		{"4dmin", ErrNickReserved},
		{"Admin_2", ErrNickReserved},
		{"admin42", ErrNickReserved},
		{"ADMIN", ErrNickReserved},
		{"root", ErrNickReserved},
		{"r00t", ErrNickReserved},
		{"R0OT", ErrNickReserved},
		{"sysop", ErrNickReserved},
		{"sys-op", ErrNickReserved},
		{"Sys_0p", ErrNickReserved},
		{"op", ErrNickReserved},
		{"0p", ErrNickReserved},
		{"mod", ErrNickReserved},
		{"rnod", ErrNickReserved},
		{"bot", ErrNickReserved},
		{"b0t", ErrNickReserved},
		{"NickServ", ErrNickReserved},
		{"chatbridge", ErrNickReserved},
		{"moderator", ErrNickReserved},
		{"guest-1234", ErrNickGuest},
		{"Guest-1", ErrNickGuest},
		{"guest", ErrNickGuest},
		{"gue5t_99", ErrNickGuest},
		{"GUEST-l234", ErrNickGuest},
		{"alice", nil},
		{"Ali", nil},
		{"bob", nil},
		{"robot", nil},
		{"top", nil},
		{"opal", nil},
		{"modern", nil},
		{"rooted", nil},
		{"myguest", nil},
		{"server-room", nil},
	}
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, m := connect(t, h, "")
			defer c.Leave("")
			got := nickErr(t, c, m, tt.name)
			h.mu.Lock()
			err := h.names.check(tt.name, c)
			h.mu.Unlock()
			switch {
			case tt.want == nil && (got != "" || err != nil):
				t.Fatalf("/nick %s refused: %q (%v)", tt.name, got, err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("check(%s) = %v, want %v", tt.name, err, tt.want)
			case tt.want != nil && got != "! "+err.Error():
				t.Fatalf("/nick %s: got %q, want %q", tt.name, got, "! "+err.Error())
			}
		})
	}
}

// A name asked for on connecting (?nick=) goes through the same check:
// the member is a guest instead, told why, except for a guest name, which
// is what the page asks for again after a restart.
func TestConnectRefusesReservedAndLookAlikeNames(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	connect(t, h, "alice")
	tests := []struct{ ask, notice string }{
		{"aIice", `*** nick "aIice" looks too much like the name of someone here: alice; you are a guest for now`},
		{"Admin", `*** nick "Admin" is kept for the server; you are a guest for now`},
		{"sysop2", `*** nick "sysop2" reads as "sysop", which is kept for the server; you are a guest for now`},
		{"guest-1234", ""},
	}
	for _, tt := range tests {
		c, m := connect(t, h, tt.ask)
		got := m.lines()
		if !strings.HasPrefix(c.Name(), "guest-") || c.Name() == tt.ask {
			t.Errorf("?nick=%s: connected as %q", tt.ask, c.Name())
		}
		if tt.notice == "" {
			if len(got) < 2 || !strings.Contains(got[1], " in lobby: ") {
				t.Errorf("?nick=%s: got %q, want no notice", tt.ask, got)
			}
			continue
		}
		if len(got) < 2 || got[1] != tt.notice {
			t.Errorf("?nick=%s: got %q, want %q second", tt.ask, got, tt.notice)
		}
	}
}

// FuzzLookKey checks the look-alike keys: alike is symmetric, every name
// is like itself, and names alike share the index key, so that the index
// finds every one of them.
func FuzzLookKey(f *testing.F) {
	for _, s := range [][2]string{{"alice", "aIice"}, {"al1ce", "allce"}, {"rn", "m"}, {"vv", "W"}, {"d", "cl"}, {"r00t", "root"}, {"x1", "xi"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if ValidNick(a) != nil || ValidNick(b) != nil {
			return
		}
		ea, eb := lookKey(a, lookExact), lookKey(b, lookExact)
		if !sameLook(ea, ea) {
			t.Fatalf("%q is not like itself", a)
		}
		if sameLook(ea, eb) != sameLook(eb, ea) {
			t.Fatalf("sameLook(%q, %q) is not symmetric", a, b)
		}
		if sameLook(ea, eb) && lookKey(a, lookIndex) != lookKey(b, lookIndex) {
			t.Fatalf("%q and %q look alike but have index keys %q and %q", a, b, lookKey(a, lookIndex), lookKey(b, lookIndex))
		}
		if strings.EqualFold(a, b) && lookKey(a, lookLoose) != lookKey(b, lookLoose) {
			t.Fatalf("%q and %q differ only in case but read differently: %q, %q", a, b, lookKey(a, lookLoose), lookKey(b, lookLoose))
		}
	})
}

// TestDisownInAnyCase: a registered name is freed by its lower-case key
// (as the accounts bucket names it), though lookKey indexed it as
// registered: Mallory, Dave and Lee were refused as registered after
// their owners unregistered them.
func TestDisownInAnyCase(t *testing.T) {
	for _, name := range []string{"Mallory", "Dave", "Lee", "plain"} {
		b := newNameBook()
		b.own(name)
		if err := b.ownedBy(name, nil); !errors.Is(err, ErrNickRegistered) {
			t.Errorf("%s registered: ownedBy = %v", name, err)
		}
		b.disown(strings.ToLower(name))
		if err := b.ownedBy(name, nil); err != nil {
			t.Errorf("%s unregistered: ownedBy = %v", name, err)
		}
		if len(b.owned) != 0 || len(b.ownFold) != 0 {
			t.Errorf("%s unregistered: left %v and %v", name, b.owned, b.ownFold)
		}
	}
}
