//go:build linux

package idlepoll

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// A Poller watches parked connections with one epoll set and one
// goroutine, which Close ends.
type Poller struct {
	epfd  int
	stopR int // read end of the stop pipe, in the set as token 0
	stopW int // closing it stops the goroutine
	done  chan struct{}
	once  sync.Once

	mu        sync.Mutex
	conns     map[uint64]*Conn // by token
	nextToken uint64
}

// events is what a parked connection waits for, once.
const events = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// New starts a Poller.
func New() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fds[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, fmt.Errorf("epoll_ctl add stop pipe: %w", err)
	}
	p := &Poller{epfd: epfd, stopR: fds[0], stopW: fds[1], done: make(chan struct{}), conns: make(map[uint64]*Conn)}
	go p.run()
	return p, nil
}

func (p *Poller) run() {
	defer close(p.done)
	evs := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return // cannot happen with a valid set; Wake still reaches everyone
		}
		for _, ev := range evs[:n] {
			token := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if token == 0 {
				return
			}
			p.mu.Lock()
			c := p.conns[token]
			p.mu.Unlock()
			if c != nil {
				c.fire()
			}
		}
	}
}

// Close ends the Poller's goroutine and frees its descriptors. Call it
// once no connection can be parked any more.
func (p *Poller) Close() {
	p.once.Do(func() {
		syscall.Close(p.stopW)
		<-p.done
		syscall.Close(p.stopR)
		syscall.Close(p.epfd)
	})
}

// prepare gives c its token and says how to arm it.
func (p *Poller) prepare(c *Conn) int {
	if c.token == 0 {
		p.mu.Lock()
		p.nextToken++
		c.token = p.nextToken
		p.conns[c.token] = c
		p.mu.Unlock()
	}
	if !c.registered {
		// Should the ADD fail, the next arm's MOD fails too, and the
		// reader goes on without parking.
		c.registered = true
		return syscall.EPOLL_CTL_ADD
	}
	return syscall.EPOLL_CTL_MOD
}

// arm sets a one-shot registration for the descriptor behind rc.
func (p *Poller) arm(rc syscall.RawConn, token uint64, op int) bool {
	ev := syscall.EpollEvent{Events: events, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
	var cerr error
	// Control holds the descriptor open for the call, so fd is the
	// connection's own and not a number reused since.
	err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	return err == nil && cerr == nil
}

// disarm takes the descriptor behind rc out of the set, if it is open.
func (p *Poller) disarm(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}

func (p *Poller) forget(c *Conn) {
	p.mu.Lock()
	delete(p.conns, c.token)
	p.mu.Unlock()
}
