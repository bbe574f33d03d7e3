package tcpserver

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Why a name may not be taken. Errors from [Hub] name checks wrap them,
// with the name that was refused.
var (
	ErrNickReserved  = errors.New("is kept for the server")
	ErrNickGuest     = errors.New("guest names are given out by the server")
	ErrNickLookAlike = errors.New("looks too much like the name of someone here")
	ErrNickTaken     = errors.New("is taken")
)

// reservedNames speak for the server or for the people who run it. Nobody
// may take one of them, nor a name that reads as one (see lookLoose):
// "r00t", "adrnin", "Admin_2" and "sys-op" are refused too.
const reservedNames = `server system chatbridge notice announce
	admin administrator sysadmin root sysop operator op mod moderator owner
	staff support helpdesk help official security abuse
	services service nickserv chanserv memoserv operserv hostserv botserv bot
	everyone`

// guestPrefix starts the names the server hands out to guests
// (guest-4821). Nobody may choose a name that reads as starting with it,
// so a guest name always means the server gave it.
const guestPrefix = "guest"

// A nameBook holds the names in use on this node and decides which names
// a member may take: every rule is asked through [nameBook.check], so
// that a new kind of name nobody else may take (a registered one, say)
// is one more case there. The hub keeps one, under its lock.
type nameBook struct {
	byFold   map[string]*Client   // by lower-case name: names are unique regardless of case
	byLook   map[string][]*Client // by lookKey(name, lookIndex): names that may look alike
	reserved map[string]string    // lookKey(name, lookLoose) -> the reserved name
	owned    map[string][]string  // lookKey(name, lookIndex) -> the registered names with that key (accounts.go)
	ownFold  map[string]string    // lower-case name -> the registered name
}

func newNameBook() nameBook {
	b := nameBook{
		byFold:   make(map[string]*Client),
		byLook:   make(map[string][]*Client),
		reserved: make(map[string]string),
		owned:    make(map[string][]string),
		ownFold:  make(map[string]string),
	}
	for _, n := range strings.Fields(reservedNames) {
		b.reserve(n)
	}
	return b
}

// reserve makes name, and every name that reads as it, one nobody may
// take.
func (b *nameBook) reserve(name string) { b.reserved[lookKey(name, lookLoose)] = name }

// own makes name registered: nobody but the member who proves it is
// theirs (Client.account) may take it, or a name that looks like it.
func (b *nameBook) own(name string) {
	b.disown(name) // as registered before, in another case, if it was
	b.ownFold[strings.ToLower(name)] = name
	key := lookKey(name, lookIndex)
	if !slices.ContainsFunc(b.owned[key], func(n string) bool { return strings.EqualFold(n, name) }) {
		b.owned[key] = append(b.owned[key], name)
	}
}

// disown makes name, in any case, free again. It is indexed as it was
// registered: lookKey keeps case (M is not rn, D not cl, L not |).
func (b *nameBook) disown(name string) {
	fold := strings.ToLower(name)
	if owned, ok := b.ownFold[fold]; ok {
		name = owned
	}
	delete(b.ownFold, fold)
	key := lookKey(name, lookIndex)
	list := slices.DeleteFunc(b.owned[key], func(n string) bool { return strings.EqualFold(n, name) })
	if len(list) == 0 {
		delete(b.owned, key)
	} else {
		b.owned[key] = list
	}
}

// ownedBy returns why self (nil for a newcomer) may not take name: it
// is registered, or looks like a registered name, and not self's.
func (b *nameBook) ownedBy(name string, self *Client) error {
	mine := func(owner string) bool { return self != nil && strings.EqualFold(self.account, owner) }
	if owner, ok := b.ownFold[strings.ToLower(name)]; ok && !mine(owner) {
		return fmt.Errorf("nick %q %w", name, ErrNickRegistered)
	}
	exact := lookKey(name, lookExact)
	for _, owner := range b.owned[lookKey(name, lookIndex)] {
		if mine(owner) || !sameLook(exact, lookKey(owner, lookExact)) {
			continue
		}
		if strings.EqualFold(owner, name) {
			return fmt.Errorf("nick %q %w", name, ErrNickRegistered)
		}
		return fmt.Errorf("nick %q looks too much like %q, which %w", name, owner, ErrNickRegistered)
	}
	return nil
}

// get returns the member called name, in any case, or nil.
func (b *nameBook) get(name string) *Client { return b.byFold[strings.ToLower(name)] }

// check returns why self (nil for a newcomer) may not choose name, or nil
// if it may. name must be a valid nick (see [ValidNick]).
func (b *nameBook) check(name string, self *Client) error {
	if err := b.refused(name); err != nil {
		return err
	}
	if err := b.ownedBy(name, self); err != nil {
		return err
	}
	return b.clash(name, self)
}

// refused returns why nobody may choose name, whoever is here: it is, or
// reads as, a reserved name or a guest name.
func (b *nameBook) refused(name string) error {
	key := lookKey(name, lookLoose)
	if strings.HasPrefix(key, guestPrefix) {
		return fmt.Errorf("nick %q is not yours to take: %w", name, ErrNickGuest)
	}
	word, ok := b.reserved[key]
	if !ok {
		// A reserved name with digits or separators after it: admin2, root_.
		if bare := strings.TrimRight(name, "0123456789-_"); bare != "" && bare != name {
			word, ok = b.reserved[lookKey(bare, lookLoose)]
		}
	}
	switch {
	case !ok:
		return nil
	case strings.EqualFold(name, word):
		return fmt.Errorf("nick %q %w", name, ErrNickReserved)
	default:
		return fmt.Errorf("nick %q reads as %q, which %w", name, word, ErrNickReserved)
	}
}

// clash returns why self (nil for a newcomer) may not take name from the
// members here: another has it, in any case, or has a name that looks like
// it. Guest names the server picks are held to it too.
func (b *nameBook) clash(name string, self *Client) error {
	if other := b.get(name); other != nil && other != self {
		return fmt.Errorf("nick %q %w", name, ErrNickTaken)
	}
	exact := lookKey(name, lookExact)
	for _, other := range b.byLook[lookKey(name, lookIndex)] {
		if other != self && sameLook(exact, lookKey(other.Name(), lookExact)) {
			return fmt.Errorf("nick %q %w: %s", name, ErrNickLookAlike, other.Name())
		}
	}
	return nil
}

// add records that c is called name.
func (b *nameBook) add(name string, c *Client) {
	b.byFold[strings.ToLower(name)] = c
	key := lookKey(name, lookIndex)
	b.byLook[key] = append(b.byLook[key], c)
}

// remove forgets that c is called name, if it is. It reports whether it
// was.
func (b *nameBook) remove(name string, c *Client) bool {
	fold := strings.ToLower(name)
	if b.byFold[fold] != c {
		return false
	}
	delete(b.byFold, fold)
	key := lookKey(name, lookIndex)
	list := b.byLook[key]
	for i, other := range list {
		if other == c {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(b.byLook, key)
	} else {
		b.byLook[key] = list
	}
	return true
}

// A lookMode says how lookKey writes a name.
type lookMode uint8

const (
	// lookExact writes a name as it looks, as typed: lower case, with the
	// letters that look like others written as those (0 and O as o, rn
	// for m, vv for w, cl for d), the strokes l and I as '|', and i and 1
	// as themselves. 1 looks like l and like i, but l and i do not look
	// alike: that is not an equality, so sameLook compares these keys.
	lookExact lookMode = iota

	// lookIndex is lookExact with i, 1, l and I all written '|': names
	// that sameLook finds alike have the same lookIndex key, so it is the
	// key of the index, and sameLook tells the few names sharing one
	// apart.
	lookIndex

	// lookLoose reads a name as one of the reserved names might be
	// disguised: folded to lower case first, '-' and '_' dropped, i, l
	// and 1 together, and digits read as the letters they stand for
	// (r00t, 5ysop, 4dmin).
	lookLoose
)

// lookKey returns name written as mode says. name is ASCII (see
// [ValidNick]); other bytes are kept as they are.
func lookKey(name string, mode lookMode) string {
	b := make([]byte, 0, 2*len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if mode == lookLoose {
			c = lowerASCII(c)
			switch c {
			case '-', '_':
				continue
			case '3':
				c = 'e'
			case '4':
				c = 'a'
			case '5':
				c = 's'
			case '7':
				c = 't'
			case '8':
				c = 'b'
			}
		}
		switch c {
		case 'l', 'I':
			b = append(b, '|')
		case 'i', '1':
			if mode == lookExact {
				b = append(b, c)
			} else {
				b = append(b, '|')
			}
		case '0', 'O', 'o':
			b = append(b, 'o')
		case 'm':
			b = append(b, 'r', 'n')
		case 'w', 'W':
			b = append(b, 'v', 'v')
		case 'd':
			b = append(b, 'c', '|')
		default:
			b = append(b, lowerASCII(c))
		}
	}
	return string(b)
}

// sameLook reports whether two lookExact keys look alike: the same, but
// that a 1 in one may stand where the other has l, I or i.
func sameLook(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		switch {
		case x == y:
		case x == '1' && (y == '|' || y == 'i'):
		case y == '1' && (x == '|' || x == 'i'):
		default:
			return false
		}
	}
	return true
}
