package tcpserver

// What a transport outside this package may ask of the hub besides
// [Member] and the line methods of [Client]: the SSH door (package
// sshdoor) answers some commands itself, completes names, and records
// the key a member proved it holds.

// Key returns the fingerprint of the public key the member proved it
// holds (see ConnectInfo.Key), or "" if it showed none.
func (c *Client) Key() string { return c.key }

// RoomNames returns the names the member's room lists, as /who does: at
// most 100 (other nodes' members included), sorted without regard to
// case. The slice is shared and must not be changed. Reader only.
func (c *Client) RoomNames() []string { return c.room.presence(c).Names }

// Notice returns a server notice (k is [KindSystem]) or an error (k is
// [KindError]) for one member, ready to send: for a transport that
// answers a command of its own.
func Notice(k Kind, text string) *Event {
	if k != KindError {
		k = KindSystem
	}
	return (&Event{Kind: k, Text: text}).finish()
}
