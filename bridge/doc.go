// Package bridge is the web side of chatbridge: an HTTP server (go-chi)
// that serves the page, relays WebSocket connections (coder/websocket) to
// and from the same [tcpserver.Hub] the telnet users are in, and answers
// /healthz and /metrics.
//
// A WebSocket connection is a [tcpserver.Member] like a TCP one: it has a
// bounded queue of events and a writer goroutine that runs only while
// there is something to send; a member whose queue overflows, or whose
// write times out, is cut off with a close frame. Its one reader goroutine
// feeds what the client sends to the hub's Client.
//
// Two protocols are spoken on GET /ws?room=NAME&nick=NAME:
//
//   - With no subprotocol, "telnet over WebSocket": each text (or binary)
//     frame the client sends is a line, or several lines if it holds line
//     ends; each line the server would send a telnet user arrives as one
//     text frame, without its CRLF.
//   - With the subprotocol [JSONProtocol], each frame the server sends is
//     one event as JSON (see [tcpserver.Event.JSON]); the client sends
//     {"type":"message","text":"..."} or {"type":"command","text":"/nick bob"}.
//
// A member's address, for the hub's limits, notices and the log, is the
// TCP peer's, or, when that peer is a reverse proxy in
// Config.TrustedProxies, the client it names in X-Forwarded-For or
// Forwarded, read from the right (see [ParseTrustedProxies]).
//
// Concurrency: [Server] is safe for concurrent use.
package bridge
