// Package natsrelay joins chatbridge nodes into one chat through NATS. A
// [Relay] is the [tcpserver.Relay] and [tcpserver.Cluster] of one node's
// hub: it publishes the room events of local members, hands the events of
// other nodes to the hub, keeps names unique across nodes, knows who is on
// which node and in which room, routes private messages, and serves the
// history of rooms from JetStream. It is the hub's [tcpserver.Store] too
// ([Relay.Store]: lines, read with direct gets, never a consumer) and its
// [tcpserver.StateStore] (key-value buckets). With [Embedded], a NATS
// server inside the process, one node is a cluster of one (--data).
//
// Everything lives under a prefix (here "chatbridge"):
//
//	chatbridge.room.ROOM.line      messages and /me actions, kept in the stream
//	chatbridge.room.ROOM.event     joins, leaves and name changes
//	chatbridge.node.NODE.private   private messages for the members of NODE (request/reply)
//	stream chatbridge_history      chatbridge.room.*.line, the last HistoryKeep lines per room
//	bucket chatbridge_names        folded name -> {node, name, room, time}; create-only
//	                               claims, shown while their node's heartbeat is recent;
//	                               node.NODE -> {node, time}, written every PresenceTTL/3
//	bucket chatbridge_state        state records, BUCKET.KEY (bans, topics, ...), sealed
//
// Only nodes can speak: every message, answer and bucket entry is sealed
// with a MAC keyed from the cluster secret ([Config.Secret]) over its
// purpose, its subject (an entry: its key) and its payload, and private
// messages' text is encrypted. A node believes nothing unsealed, nothing
// it has seen, and nothing made more than [Config.Window] from its clock;
// it checks each message once, however many members it then reaches. What
// it ignores it counts, and logs at most once every few seconds.
//
// The hub never waits for NATS while it fans a line out: [Relay.Publish]
// only queues, into a bounded queue that one goroutine drains; when it is
// full the event is dropped, counted and logged. The link to NATS comes
// and goes by itself (nats.go reconnects forever); local members are told
// "link to other nodes lost" and "link to other nodes restored".
//
// Goroutines: [Relay.Start] starts the publisher, the deliverer, the link
// watcher and the name writer, and nats.go its own; [Relay.Close] ends all
// of them and waits for them.
package natsrelay
