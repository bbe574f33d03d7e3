package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// shutdownNotice is the last line chatbridge sends a telnet user when it
// stops.
const shutdownNotice = "*** server shutting down"

// runRestart: start the server, chat, SIGTERM it mid-traffic, check how
// every client was told, start it again and time the first telnet login.
func runRestart(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	args := strings.Fields(e.v.exec)
	if len(args) == 0 || len(e.cc.tcp) == 0 || len(e.cc.ws) == 0 {
		return nil, usageErr("restart needs --exec, --tcp and --ws")
	}
	tcpAddr, wsURL := e.cc.tcp[0].dialAddr, e.cc.ws[0].url
	n := max(e.v.receivers/2, 1)
	r := &scenarioResult{Params: fmt.Sprintf("%d TCP and %d WS clients chatting; SIGTERM after %s", n, n, e.v.duration/2)}

	srv, err := startServer(ctx, args, tcpAddr)
	if err != nil {
		return nil, err
	}
	defer srv.kill()

	var tcps []*lineClient
	var wss []*websocket.Conn
	for i := range n {
		// 50 users an address, under the server's per-address limit.
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i/50))}, Timeout: 5 * time.Second}
		tc, err := nd.DialContext(ctx, "tcp", tcpAddr)
		if err != nil {
			return nil, fmt.Errorf("tcp client: %w", err)
		}
		c := &lineClient{c: tc, r: bufio.NewReaderSize(tc, 64<<10)}
		defer c.close()
		tcps = append(tcps, c)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		hc := &http.Client{Transport: &http.Transport{DialContext: nd.DialContext}}
		w, _, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{HTTPClient: hc})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ws client: %w", err)
		}
		defer w.CloseNow()
		wss = append(wss, w)
	}
	r.Clients = 2 * n

	// Everyone reads to the end and reports how it ended; a few talk.
	type ending struct {
		tcpLast  string // the last line a TCP client read
		wsCode   websocket.StatusCode
		tcpAfter bool // bytes came after the notice
	}
	ends := make([]ending, 2*n)
	var readers sync.WaitGroup
	for i, c := range tcps {
		readers.Go(func() {
			c.c.SetReadDeadline(time.Now().Add(e.v.duration + 30*time.Second))
			for {
				line, err := c.r.ReadString('\n')
				if line = strings.TrimRight(line, "\r\n"); line != "" {
					if ends[i].tcpLast == shutdownNotice {
						ends[i].tcpAfter = true
					}
					ends[i].tcpLast = line
				}
				if err != nil {
					return
				}
			}
		})
	}
	for i, w := range wss {
		readers.Go(func() {
			rctx, cancel := context.WithTimeout(context.Background(), e.v.duration+30*time.Second)
			defer cancel()
			for {
				if _, _, err := w.Read(rctx); err != nil {
					ends[n+i].wsCode = websocket.CloseStatus(err)
					return
				}
			}
		})
	}
	talk, stopTalk := context.WithCancel(ctx)
	var talkers sync.WaitGroup
	var said int64
	var saidMu sync.Mutex
	for i, c := range tcps[:min(len(tcps), 4)] {
		talkers.Go(func() {
			for k := 0; talk.Err() == nil; k++ {
				if c.send(fmt.Sprintf("restart chatter %d-%d", i, k)) != nil {
					return
				}
				saidMu.Lock()
				said++
				saidMu.Unlock()
				sleepCtx(talk, 200*time.Millisecond)
			}
		})
	}

	sleepCtx(ctx, e.v.duration/2)
	code, err := srv.stop(30 * time.Second)
	stopTalk()
	talkers.Wait()
	readers.Wait()
	r.Messages = said
	r.check("server exits 0 on SIGTERM", err == nil && code == 0, "exit %d, %v", code, err)
	told, after, closed := 0, 0, 0
	for i, end := range ends {
		if i < n {
			if end.tcpLast == shutdownNotice {
				told++
			}
			if end.tcpAfter {
				after++
			}
		} else if end.wsCode == websocket.StatusGoingAway {
			closed++
		}
	}
	r.check("every TCP client's last line is the notice", told == n && after == 0,
		"%d of %d got %q last, %d got more after it", told, n, shutdownNotice, after)
	r.check("every WS client got close 1001", closed == n, "%d of %d", closed, n)

	start := time.Now()
	srv2, err := startServer(ctx, args, tcpAddr)
	if err != nil {
		return nil, fmt.Errorf("second start: %w", err)
	}
	defer srv2.kill()
	c, err := dialLines(ctx, tcpAddr)
	if err == nil {
		defer c.close()
		_, err = c.until("Welcome", 5*time.Second)
	}
	r.check("telnet gets in again at once", err == nil, "welcome %s after the restart began (%v)", time.Since(start).Round(time.Millisecond), err)
	if code, err := srv2.stop(30 * time.Second); err != nil || code != 0 {
		r.check("second server exits 0", false, "exit %d, %v", code, err)
	}
	return r, nil
}

// server is a chat server process the scenario runs.
type server struct {
	cmd  *exec.Cmd
	done chan error
}

// startServer runs args and waits until tcpAddr accepts.
func startServer(ctx context.Context, args []string, tcpAddr string) (*server, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := dialLines(ctx, tcpAddr)
		if err == nil {
			c.close()
			return s, nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("%s exited at start: %v", args[0], err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.kill()
			return nil, fmt.Errorf("%s: nothing listens on %s", args[0], tcpAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit code.
func (s *server) stop(limit time.Duration) (int, error) {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return -1, err
	}
	select {
	case err := <-s.done:
		s.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, err
	case <-time.After(limit):
		s.kill()
		return -1, fmt.Errorf("still running %s after SIGTERM", limit)
	}
}

// kill ends the process if it still runs.
func (s *server) kill() {
	select {
	case err := <-s.done:
		s.done <- err
	default:
		s.cmd.Process.Kill()
		s.done <- <-s.done
	}
}
