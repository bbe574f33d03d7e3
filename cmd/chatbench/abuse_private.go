package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The private-message flood: privateSenders telnet connections from one
// address (127.0.0.13) each say "/msg <victim> <4 KB>" privateRate times
// a second, within the server's rate of lines, at one member (from
// 127.0.0.14) who reads at privateReadRate. Before private messages had a
// rate of their own, that was 2 MB a second at a member reading 128 KB a
// second, who was cut off as too slow within seconds.
const (
	privateSenders  = 100
	privateRate     = 5         // per sender, a second
	privateReadRate = 128 << 10 // bytes a second the victim reads
	privateText     = 4000
	victimName      = "pm-target"
)

var (
	privateFrom = net.IPv4(127, 0, 0, 13)
	victimFrom  = net.IPv4(127, 0, 0, 14)
)

// privateFlood runs the private-message flood until ctx ends, and checks
// that the victim was never cut off, was sent no more than the server's
// default rate from one address lets through (8 at once, 2 a second),
// and that the senders were told.
func privateFlood(ctx context.Context, addr string) (bool, string) {
	start := time.Now()
	victim, err := dialFrom(ctx, addr, victimFrom)
	if err != nil {
		return false, fmt.Sprintf("the victim: %v", err)
	}
	defer victim.close()
	if err := victim.send("/nick " + victimName); err != nil {
		return false, err.Error()
	}
	if _, err := victim.until("is now known as "+victimName, 5*time.Second); err != nil {
		return false, fmt.Sprintf("the victim's name: %v", err)
	}

	var receipts, refusals atomic.Int64
	var senders []*lineClient
	defer func() {
		for _, s := range senders {
			s.close()
		}
	}()
	for range privateSenders {
		s, err := dialFrom(ctx, addr, privateFrom)
		if err != nil {
			return false, fmt.Sprintf("a sender: %v", err)
		}
		senders = append(senders, s)
	}
	var wg sync.WaitGroup
	text := strings.Repeat("x", privateText)
	for _, s := range senders {
		// Each reads all it is sent, as a healthy client does, counting
		// what the server said of its messages.
		wg.Go(func() {
			for {
				s.c.SetReadDeadline(time.Time{})
				line, err := s.r.ReadString('\n')
				if err != nil {
					return
				}
				switch {
				case strings.HasPrefix(line, "-> *"+victimName+"*"):
					receipts.Add(1)
				case strings.HasPrefix(line, "! ") && strings.Contains(line, victimName):
					refusals.Add(1)
				}
			}
		})
		wg.Go(func() {
			tick := time.NewTicker(time.Second / privateRate)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if s.send("/msg "+victimName+" "+text) != nil {
					return
				}
			}
		})
	}

	got, cut := victim.readSlowly(ctx, privateReadRate)
	secs := time.Since(start).Seconds()
	for _, s := range senders {
		s.c.Close() // ends the readers
	}
	wg.Wait()
	still := ""
	if !cut {
		if err := victim.send("/who"); err != nil {
			still = err.Error()
		} else if _, err := victim.until(" in lobby: ", 10*time.Second); err != nil {
			still = err.Error()
		}
	}
	most := 8 + int(2*secs) + 2
	ok := !cut && still == "" && got > 0 && got <= most && refusals.Load() > 0
	return ok, fmt.Sprintf("%d senders from %s, %d /msg of %d bytes a second at one member reading %d KiB/s: it got %d (at most %d due in %.1fs), %d refused with a word to the sender, %d receipts; %s",
		privateSenders, privateFrom, privateSenders*privateRate, privateText, privateReadRate>>10, got, most, secs, refusals.Load(), receipts.Load(),
		orFine(cutOrGone(cut, still), "the member still connected and answered /who"))
}

func cutOrGone(cut bool, err string) string {
	if cut {
		return "the member was cut off"
	}
	return err
}

// dialFrom connects to a telnet address from the loopback address src.
func dialFrom(ctx context.Context, addr string, src net.IP) (*lineClient, error) {
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &lineClient{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// readSlowly reads at rate bytes a second until ctx ends, and counts the
// private messages among the lines. cut is true if the server closed the
// connection or said why it cut the member off.
func (l *lineClient) readSlowly(ctx context.Context, rate int) (private int, cut bool) {
	const chunk = 16 << 10
	buf := make([]byte, chunk)
	var pending []byte
	every := time.Duration(float64(chunk) / float64(rate) * float64(time.Second))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		l.c.SetReadDeadline(time.Now().Add(every / 2))
		n, err := l.r.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			line := pending[:i]
			switch {
			case len(line) > 1 && line[0] == '*' && line[1] != '*' && line[1] != ' ':
				private++
			case bytes.HasPrefix(line, []byte("*** disconnected: ")):
				return private, true
			}
			pending = pending[i+1:]
		}
		if err != nil && !isTimeout(err) {
			return private, true
		}
	}
	return private, false
}
