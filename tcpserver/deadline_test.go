package tcpserver

import (
	"net"
	"testing"
	"time"
)

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func TestWriteDeadlineMovesOnlyWhenAQuarterOld(t *testing.T) {
	c := &deadlineConn{}
	d := WriteDeadline{Timeout: time.Hour}
	before := time.Now()
	d.Refresh(c)
	if len(c.set) != 1 || c.set[0].Before(before.Add(time.Hour)) {
		t.Fatalf("first Refresh set %v, want one deadline an hour ahead", c.set)
	}
	for range 100 {
		d.Refresh(c)
	}
	if len(c.set) != 1 {
		t.Fatalf("Refresh right after Refresh set the deadline again: %v", c.set)
	}
	d.Forget()
	d.Refresh(c)
	if len(c.set) != 2 {
		t.Fatalf("Refresh after Forget did not set the deadline: %v", c.set)
	}

	c = &deadlineConn{}
	d = WriteDeadline{Timeout: 40 * time.Millisecond}
	d.Refresh(c)
	time.Sleep(11 * time.Millisecond) // over a quarter of Timeout
	start := time.Now()
	d.Refresh(c)
	if len(c.set) != 2 || c.set[1].Before(start.Add(40*time.Millisecond)) {
		t.Fatalf("Refresh over a quarter of Timeout later set %v, want a second deadline Timeout from then", c.set)
	}
}
