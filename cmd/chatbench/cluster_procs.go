package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverProc is a nats-server or chatbridge node the cluster run started.
// Its log goroutine reads what it writes until it exits, then waits for
// it; done closes after that. The run stops every serverProc it starts.
type serverProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the exit, once done is closed

	mu     sync.Mutex       // guards the fields below, filled from the log
	tcp    string           // host:port of the telnet chat (a node)
	http   string           // host:port of the web server (a node)
	linkUp bool             // a node: its link to the others is up
	id     string           // a node: its ID on NATS
	forgot int              // members of a lost node it forgot
	lostOf map[string]int   // of those, by the node they were on
	lastOf map[string]int64 // when it forgot the last of each node's
	tail   []string         // its last lines, for an error message
	change chan struct{}
}

// startProc starts bin with args (and env added) and follows its log.
// A node's log must be JSON (--log-format json).
func startProc(name, bin string, args, env []string) (*serverProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &serverProc{name: name, cmd: cmd, done: make(chan struct{}), change: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			p.line(sc.Bytes())
		}
		io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
	}()
	return p, nil
}

// line takes one line of the server's log.
func (p *serverProc) line(b []byte) {
	var rec struct {
		Time    time.Time `json:"time"`
		Msg     string    `json:"msg"`
		Service string    `json:"service"`
		Addr    string    `json:"addr"`
		Node    string    `json:"node"`
		Other   string    `json:"other"`
		Members int       `json:"members"`
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if json.Unmarshal(b, &rec) != nil || rec.Msg == "" {
		p.keep(string(b))
		return
	}
	switch rec.Msg {
	case "listening":
		switch rec.Service {
		case "telnet chat":
			p.tcp = rec.Addr
		case "web (http)":
			p.http = rec.Addr
		}
	case "relaying through NATS":
		p.id = rec.Node
	case "link to other nodes up":
		p.linkUp = true
	case "node lost: its members forgotten":
		if p.lostOf == nil {
			p.lostOf, p.lastOf = make(map[string]int), make(map[string]int64)
		}
		p.forgot += rec.Members
		p.lostOf[rec.Other] += rec.Members
		p.lastOf[rec.Other] = rec.Time.UnixNano()
	default:
		p.keep(string(b))
	}
	close(p.change)
	p.change = make(chan struct{})
}

func (p *serverProc) keep(s string) {
	if len(p.tail) == 20 {
		p.tail = p.tail[1:]
	}
	p.tail = append(p.tail, s)
}

// waitFor waits until ok (called under p.mu) holds, the process ends, or
// the deadline passes.
func (p *serverProc) waitFor(ctx context.Context, d time.Duration, what string, ok func() bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		p.mu.Lock()
		good, ch := ok(), p.change
		p.mu.Unlock()
		if good {
			return nil
		}
		select {
		case <-ch:
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before %s: %s", p.name, p.err, what, p.lastLines())
		case <-t.C:
			return fmt.Errorf("%s: no %s within %s: %s", p.name, what, d, p.lastLines())
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %s: %w", p.name, what, ctx.Err())
		}
	}
}

func (p *serverProc) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, " | ")
}

// forgotten is how many members of other nodes it forgot as lost.
func (p *serverProc) forgotten() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forgot
}

// forgottenOf is how many members of the node called id it forgot as
// lost, and when the last of them.
func (p *serverProc) forgottenOf(id string) (n int, lastNs int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lostOf[id], p.lastOf[id]
}

func (p *serverProc) nodeID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// stop ends the process: SIGTERM, and SIGKILL if it is still there 10 s
// later. It returns once the process is gone.
func (p *serverProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(10 * time.Second):
	}
	p.kill()
}

// kill ends the process at once and waits for it.
func (p *serverProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitHealthy waits until the nats-server's monitoring port at addr says
// it is healthy, JetStream included: three servers take a few seconds to
// choose the leader of their JetStream cluster, and a node that asks for
// its stream before then is refused.
func waitHealthy(ctx context.Context, p *serverProc, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	for {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.lastLines())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not healthy after %s: %s", p.name, d, p.lastLines())
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// freeLoopbackPorts returns n loopback ports nobody listened on just now.
func freeLoopbackPorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// startNATS starts n nats-servers with JetStream on loopback, joined by
// routes when there are several, and returns them and the URLs a node
// connects with (all of them).
func startNATS(ctx context.Context, bin, dir string, n int, log *slog.Logger) ([]*serverProc, string, error) {
	clients, err := freeLoopbackPorts(n)
	if err != nil {
		return nil, "", err
	}
	routes, err := freeLoopbackPorts(n)
	if err != nil {
		return nil, "", err
	}
	monitors, err := freeLoopbackPorts(n)
	if err != nil {
		return nil, "", err
	}
	var urls, routeURLs []string
	for i := range n {
		urls = append(urls, "nats://"+clients[i])
		routeURLs = append(routeURLs, "nats://"+routes[i])
	}
	var procs []*serverProc
	for i := range n {
		_, port, _ := net.SplitHostPort(clients[i])
		store := fmt.Sprintf("%s/nats%d", dir, i)
		_, mport, _ := net.SplitHostPort(monitors[i])
		args := []string{"-js", "-a", "127.0.0.1", "-p", port, "-m", mport, "-sd", store, "-n", fmt.Sprintf("bench%d", i)}
		if n > 1 {
			args = append(args, "--cluster_name", "chatbench", "--cluster", routeURLs[i],
				"--routes", strings.Join(routeURLs, ","))
		}
		p, err := startProc(fmt.Sprintf("nats-server %d", i), bin, args, nil)
		if err != nil {
			stopAll(procs)
			return nil, "", err
		}
		procs = append(procs, p)
	}
	for i, p := range procs {
		if err := waitHealthy(ctx, p, monitors[i], 60*time.Second); err != nil {
			stopAll(procs)
			return nil, "", err
		}
	}
	log.Info("nats up", "servers", n, "urls", strings.Join(urls, ","))
	return procs, strings.Join(urls, ","), nil
}

// stopAll stops every process, all at once.
func stopAll(ps []*serverProc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p != nil {
			wg.Go(p.stop)
		}
	}
	wg.Wait()
}

// hasFlag reports whether bin's --help mentions --name.
func hasFlag(bin, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	return strings.Contains(string(out), "-"+name+" ") || strings.Contains(string(out), "-"+name+"\n")
}

// findBinary is the program given, or name beside this program, or on PATH,
// or in /usr/sbin (where Debian puts nats-server).
func findBinary(given, name string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("--%s %q: %w", name, given, err)
		}
		return given, nil
	}
	if exe, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(beside); err == nil && !st.IsDir() {
			return beside, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/" + name); err == nil {
		return "/usr/sbin/" + name, nil
	}
	return "", fmt.Errorf("%s not found: give --%s: %w", name, name, errUsage)
}
