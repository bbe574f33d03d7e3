package tcpserver

import (
	"errors"
	"fmt"
	"strings"
)

// Verified names are the names a site that embeds the chat vouches for:
// the transport checks the site's signed token (the bridge's --auth-secret)
// and hands the name it gives to [Hub.Connect] with ConnectInfo.Verified.
// The hub trusts the transport for the signature, and checks the name as
// it checks any other: valid, not reserved, not a guest name. A verified
// name is the member's for the session: it may not /nick away from it,
// and while it holds the name nobody else may take it, or one that looks
// like it. A member who took it before the owner came, unverified, is
// renamed to a guest name when the owner comes: the site's word on who is
// alice weighs more than being there first (Ergo's nick enforcement does
// the same to a nick squatter). A registered name is no exception: the
// operator who configured the site's secret trusts the site.

// ErrVerifiedName is what [Hub.Connect] returns, wrapped in a
// [VerifiedNameError], when the name a site vouched for cannot be had.
var ErrVerifiedName = errors.New("the name you are signed in with cannot be used here")

// A VerifiedNameError says why the name a site vouched for cannot be
// had; its text is fit to show the refused user.
type VerifiedNameError struct {
	Name string
	Why  string
}

func (e *VerifiedNameError) Error() string {
	return fmt.Sprintf("sign-in name %q: %s", e.Name, e.Why)
}

func (e *VerifiedNameError) Unwrap() error { return ErrVerifiedName }

// Speak says who may speak, in rooms and in private (HubConfig.Speak).
// Operators always may. Whoever may not reads, and is told once, as it
// comes, how to join in.
type Speak uint8

const (
	SpeakAnyone     Speak = iota // everyone
	SpeakRegistered              // members identified with a registered name, and verified ones
	SpeakVerified                // members the site signed in (ConnectInfo.Verified)
)

// ParseSpeak reads "anyone", "registered" or "verified".
func ParseSpeak(s string) (Speak, error) {
	for sp := SpeakAnyone; sp <= SpeakVerified; sp++ {
		if s == sp.String() {
			return sp, nil
		}
	}
	return 0, fmt.Errorf("speak %q: want anyone, registered or verified", s)
}

func (s Speak) String() string {
	switch s {
	case SpeakRegistered:
		return "registered"
	case SpeakVerified:
		return "verified"
	default:
		return "anyone"
	}
}

// speakHow is what a member who may not speak is told, once as it comes
// and again on each line it tries to say.
var speakHow = map[Speak]string{
	SpeakRegistered: "only members with a registered name may speak here; you can read. To join in: /nick NAME, then /register PASSWORD (or /nick NAME PASSWORD if it is yours)",
	SpeakVerified:   "only members signed in on the site that shows this chat may speak here; you can read. To join in, sign in there and open the chat again",
}

// maySpeakAs reports whether c may speak at all under HubConfig.Speak.
func (h *Hub) maySpeakAs(c *Client) bool {
	switch h.cfg.Speak {
	case SpeakRegistered:
		if c.verified || c.op.Load() {
			return true
		}
		return h.mod.accountOf(c) != ""
	case SpeakVerified:
		return c.verified || c.op.Load()
	}
	return true
}

// speakCheck reports whether c may speak, and tells it why not if it
// may not.
func (h *Hub) speakCheck(c *Client) bool {
	if h.cfg.Speak == SpeakAnyone || h.maySpeakAs(c) {
		return true
	}
	c.errorf("%s", speakHow[h.cfg.Speak])
	return false
}

// speakNotice returns the notice a newcomer who may not speak is given
// with its welcome, "" for one who may. The hub's lock is held: a
// newcomer has proved no registered name yet, nor the operator password.
func (h *Hub) speakNotice(c *Client) string {
	if h.cfg.Speak == SpeakAnyone || c.verified {
		return ""
	}
	return speakHow[h.cfg.Speak]
}

// takeVerifiedLocked makes name, vouched for by a site, free for the
// newcomer c: it refuses a name nobody may have, and one a verified
// member holds (the same person in another window, most likely), and
// renames any other member who holds it, or one like it, to a guest name.
func (h *Hub) takeVerifiedLocked(c *Client, name string) error {
	if err := ValidNick(name); err != nil {
		return &VerifiedNameError{Name: name, Why: err.Error()}
	}
	if err := h.names.refused(name); err != nil {
		return &VerifiedNameError{Name: name, Why: err.Error()}
	}
	holders := h.names.holders(name)
	for _, o := range holders {
		if o.verified {
			return &VerifiedNameError{Name: name, Why: "connected already (in another window?)"}
		}
	}
	for _, o := range holders {
		h.unseatLocked(o, name)
	}
	return nil
}

// holders returns the members here called name, or a name like it.
func (b *nameBook) holders(name string) []*Client {
	var out []*Client
	if o := b.get(name); o != nil {
		out = append(out, o)
	}
	exact := lookKey(name, lookExact)
	for _, o := range b.byLook[lookKey(name, lookIndex)] {
		if sameLook(exact, lookKey(o.Name(), lookExact)) && !strings.EqualFold(o.Name(), name) {
			out = append(out, o)
		}
	}
	return out
}

// unseatLocked renames o, who holds owner's verified name or one like
// it, to a guest name, and tells its room and it. o.room is written only
// under the hub's lock, which is held.
func (h *Hub) unseatLocked(o *Client, owner string) {
	from := o.Name()
	guest := h.guestNameLocked()
	h.names.remove(from, o)
	h.names.add(guest, o)
	o.setName(guest)
	r := o.room
	ev := h.stamp(&Event{Kind: KindNick, Room: r.name, From: from, To: guest})
	r.mu.Lock()
	r.sortedNames = nil
	r.renamedLocked(o, ev)
	r.mu.Unlock()
	o.send(KindSystem, "the name "+from+" is "+owner+"'s, who is signed in on the site that shows this chat; you are "+guest+" now")
	h.log.Info("name given to its verified owner", "name", from, "owner", owner, "now", guest, "addr", o.addr)
}

// verifiedAmong returns those of names that verified members here hold,
// in their order; nil if none is.
func (h *Hub) verifiedAmong(names []string) []string {
	if h.verifiedCount.Load() == 0 {
		return nil
	}
	var out []string
	for _, n := range names {
		if _, ok := h.verifiedNames.Load(strings.ToLower(n)); ok {
			out = append(out, n)
		}
	}
	return out
}
