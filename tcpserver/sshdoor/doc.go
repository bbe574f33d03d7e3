// Package sshdoor is chatbridge's SSH door: `ssh -p 2222 alice@host` puts
// a terminal user in the same rooms as telnet and browser users, with a
// real line editor (golang.org/x/term's Terminal over golang.org/x/crypto/ssh):
// a prompt naming the room and the member, editing keys, input history,
// Tab completion of names and commands, names in colour, and lines that
// arrive while the user types written above the prompt, the half-typed
// line left as it was.
//
// There are no passwords. The user name asked for is the nick asked for
// (a guest name, with the hub's notice, if it cannot be had); a client
// that proves it holds a public key has the key's fingerprint recorded on
// its member (tcpserver.ConnectInfo.Key), and one without a key comes in
// through keyboard-interactive with no question, as a member without one.
//
// Each session is a hub member like any other: a [tcpserver.Outbox] queues
// what the hub sends it, and what the user types goes to the
// [tcpserver.Client] line by line, through the same commands, limits and
// cleaning as telnet. What members say reaches the terminal as the hub
// made it; the only escape sequences written are the door's own (colour,
// and the editor's cursor movements).
//
// A connection may open one session channel, with or without a
// pseudo-terminal (without one it speaks plain lines, as nc does);
// everything else (exec, subsystems, port forwarding, agent and X11
// forwarding, more channels) is refused, and env requests are ignored.
// From accept to the shell request a connection has
// Config.HandshakeTimeout; after it, a write that makes no progress, on the
// socket or for want of SSH window, within Config.WriteTimeout cuts the
// member off as too slow.
package sshdoor
