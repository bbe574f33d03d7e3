package tcpserver

import "fmt"

// ShowAddrs says whose address join and leave notices show the room. A
// member's address is personal data: a web visitor did not choose to
// show it to strangers, as a telnet user of the seed's chat did. The log
// keeps every member's address whatever this says.
type ShowAddrs uint8

// The address policies. The zero value is the default.
const (
	ShowAddrsTCP  ShowAddrs = iota // telnet/nc members' ("tcp") only
	ShowAddrsAll                   // every member's
	ShowAddrsNone                  // nobody's
)

var showAddrsNames = [...]string{ShowAddrsTCP: "tcp", ShowAddrsAll: "all", ShowAddrsNone: "none"}

func (s ShowAddrs) String() string {
	if int(s) < len(showAddrsNames) {
		return showAddrsNames[s]
	}
	return fmt.Sprintf("ShowAddrs(%d)", uint8(s))
}

// MarshalText returns the policy's name, for flags.
func (s ShowAddrs) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText sets the policy from its name: tcp, all or none.
func (s *ShowAddrs) UnmarshalText(b []byte) error {
	for i, name := range showAddrsNames {
		if string(b) == name {
			*s = ShowAddrs(i)
			return nil
		}
	}
	if len(b) > 16 {
		b = append(b[:16:16], "..."...)
	}
	return fmt.Errorf("%q: want tcp, all or none", b)
}

// shows returns the address join and leave notices show for a member
// connected through transport from addr: addr, or "" to show none.
// Anything but "tcp" counts as a web visitor, so that a transport added
// later shows no address until someone decides it should.
func (s ShowAddrs) shows(transport, addr string) string {
	switch {
	case s == ShowAddrsAll, s == ShowAddrsTCP && transport == "tcp":
		return addr
	}
	return ""
}
