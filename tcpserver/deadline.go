package tcpserver

import (
	"net"
	"time"
)

// A WriteDeadline keeps a connection's write deadline about Timeout
// ahead without setting it for every write. Setting a deadline is a lock
// and a change to the runtime's timer heap, a few percent of the CPU a
// small write costs; a busy member writes hundreds of times a second. So
// Refresh moves the deadline only when the one set before is more than
// a quarter of Timeout old: a write that makes no progress is cut after
// between three quarters of Timeout and Timeout, and a busy connection
// moves its deadline at most four times per Timeout.
//
// The zero value sets the deadline at the next Refresh. It is not safe
// for concurrent use: the owner serialises Refresh and Forget.
type WriteDeadline struct {
	Timeout time.Duration
	at      time.Time // the deadline last set; zero after Forget
}

// Refresh makes sure the deadline of c is at least three quarters of
// Timeout away.
func (d *WriteDeadline) Refresh(c net.Conn) error {
	now := time.Now()
	if !d.at.IsZero() && d.at.Sub(now) >= d.Timeout-d.Timeout/4 {
		return nil
	}
	d.at = now.Add(d.Timeout)
	return c.SetWriteDeadline(d.at)
}

// Forget says someone else set the deadline of c (to cut it off, say):
// the next Refresh sets it again.
func (d *WriteDeadline) Forget() { d.at = time.Time{} }
