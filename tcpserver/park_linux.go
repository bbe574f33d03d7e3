//go:build linux

package tcpserver

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// An idlePoller watches idle connections so that they need no goroutine
// at all while they wait: a member who says nothing costs its structs and
// its socket, not a parked reader with its stack.
//
// A reader that has handled a read parks its connection here (one epoll
// registration, EPOLLONESHOT) and returns. The poller's one goroutine
// waits in epoll_wait and, when a parked connection has something to read
// (data, end of stream, an error), takes it out and starts a new reader
// for it. Whoever ends a connection the server chose to end wakes its
// reader first (tcpConn.wake), since a closed descriptor leaves epoll
// without a word.
//
// The epoll instance is the poller's own; the Go runtime's netpoller keeps
// its registration of the same sockets, and reads go through net.Conn as
// usual.
type idlePoller struct {
	epfd       int
	stopR      int // read end of the stop pipe, in the epoll set as token 0
	stopW      int // closing it stops the poller
	done       chan struct{}
	mu         sync.Mutex
	conns      map[uint64]*tcpConn // parked or once parked, by token
	nextToken  uint64
	onStopOnce sync.Once
}

// pollEvents is what a parked connection waits for, once.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newIdlePoller() (*idlePoller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, fmt.Errorf("epoll_ctl add stop pipe: %w", err)
	}
	ip := &idlePoller{epfd: epfd, stopR: p[0], stopW: p[1], done: make(chan struct{}), conns: make(map[uint64]*tcpConn)}
	go ip.run()
	return ip, nil
}

// run is the poller's goroutine. It ends when stop closes the pipe.
func (p *idlePoller) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Cannot happen with a valid epoll descriptor; the parked
			// connections are woken by Shutdown all the same.
			return
		}
		for _, ev := range events[:n] {
			tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if tok == 0 {
				return
			}
			p.mu.Lock()
			c := p.conns[tok]
			p.mu.Unlock()
			if c != nil && c.parked.CompareAndSwap(true, false) {
				c.spawn()
			}
		}
	}
}

// stop ends the poller's goroutine and frees its descriptors. Call it
// once no connection can be parked any more.
func (p *idlePoller) stop() {
	p.onStopOnce.Do(func() {
		syscall.Close(p.stopW)
		<-p.done
		syscall.Close(p.stopR)
		syscall.Close(p.epfd)
	})
}

// prepare gives c its token and says how to arm it next. The reader calls
// it before it sets c.parked: once that is set, another reader may run
// for c at any moment, so arm must not touch c's fields.
func (p *idlePoller) prepare(c *tcpConn) (op int) {
	if c.token == 0 {
		p.mu.Lock()
		p.nextToken++
		c.token = p.nextToken
		p.conns[c.token] = c
		p.mu.Unlock()
	}
	op = syscall.EPOLL_CTL_MOD
	if !c.registered {
		op = syscall.EPOLL_CTL_ADD
		// Should the ADD fail, the next arm's MOD fails too, and the
		// reader goes on without parking.
		c.registered = true
	}
	return op
}

// arm sets c's one-shot registration. It reports false if c could not be
// parked (its connection is closed, say); then the caller goes on reading.
func (p *idlePoller) arm(c *tcpConn, token uint64, op int) bool {
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
	var cerr error
	// Control holds the descriptor open for the call, so fd is c's.
	err := c.wait.rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	return err == nil && cerr == nil
}

// unpark takes c's descriptor out of the epoll set, if it is still open.
func (p *idlePoller) unpark(c *tcpConn) {
	c.wait.rc.Control(func(fd uintptr) {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// forget drops c for good; its connection is finished.
func (p *idlePoller) forget(c *tcpConn) {
	if c.token == 0 {
		return
	}
	p.mu.Lock()
	delete(p.conns, c.token)
	p.mu.Unlock()
}
