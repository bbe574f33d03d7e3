// Package tcpserver is the heart of chatbridge: the hub with its rooms,
// names, history and limits, the line protocol that telnet and nc users
// speak, the TCP chat server and the seed's echo service.
//
// It knows nothing of HTTP or WebSocket. A transport adapts each of its
// connections into a [Member] (the outbound side: Send and Close) and feeds
// the lines it reads to the [Client] that [Hub.Connect] returns. The TCP
// transport lives here ([Server]); the WebSocket one lives in package bridge
// and plugs into the same hub, so both kinds of user share every room.
//
// Fan-out happens in the sender's goroutine: a room takes its lock, encodes
// the event once (see [Event]) and hands the same read-only bytes to every
// member's bounded queue. No member can block the room; a member whose
// queue overflows is cut off with a reason.
//
// Several nodes make one chat through a [Relay] (HubConfig.Relay): the hub
// hands it every local room event, and it hands other nodes' events to
// [Hub.Deliver]. A relay that is also a [Cluster] makes names, presence,
// private messages and history span the nodes. Package natsrelay is one,
// on NATS; this package never imports it.
//
// Concurrency: [Hub] and [Server] are safe for concurrent use. A [Client]
// belongs to the goroutine that reads its connection: Handle, TooLong and
// Leave must be called from that goroutine only.
package tcpserver
