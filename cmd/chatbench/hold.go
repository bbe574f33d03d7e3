package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// holdConfig is one hold run.
type holdConfig struct {
	clientConfig
	n     int
	hold  time.Duration
	procs int

	// Where the connections come from when split over child processes.
	// given holds the endpoint flags as typed, to pass on to children.
	given      childFlags
	childExe   string    // this program
	childEnv   []string  // extra environment for children (tests use it)
	childLog   io.Writer // where children's stderr goes; nil = nowhere
	slotOffset int       // the first client slot of this process (in a child)
}

// childFlags are the command-line values a child needs to repeat.
type childFlags struct {
	tcp, ws     []string
	wsMix       float64
	wsOpts      wsOptions
	connectRate float64
	timeout     time.Duration
	quiet       bool
}

// holdSet is a set of idle connections that are read (and what they get
// thrown away) until the set is closed. Its owner calls close, which waits
// for every read loop.
type holdSet struct {
	log      *slog.Logger
	mu       sync.Mutex
	conns    []benchConn // guarded by mu
	alive    atomic.Int64
	cut      atomic.Int64 // closed by the server (or failed) while held
	stopping atomic.Bool
	readers  sync.WaitGroup
}

// open connects n clients, numbered from slotOffset for their source
// addresses, and starts a read loop on each.
func (h *holdSet) open(ctx context.Context, cfg holdConfig, n int) connectResult {
	d := cfg.newDialer()
	defer d.closeIdle()
	return connectAll(ctx, n, cfg.connect, func(ctx context.Context, i int) error {
		slot := cfg.slotOffset + i
		c, err := d.dial(ctx, d.endpointFor(slot), slot)
		if err != nil {
			return fmt.Errorf("client %d: %w", slot, err)
		}
		h.mu.Lock()
		if h.stopping.Load() {
			h.mu.Unlock()
			c.close()
			return errors.New("closed while connecting")
		}
		h.conns = append(h.conns, c)
		h.alive.Add(1)
		h.readers.Go(func() { h.read(c) })
		h.mu.Unlock()
		return nil
	})
}

func (h *holdSet) read(c benchConn) {
	err := c.readLoop(make([]byte, 512), func([]byte, bool) {})
	if !h.stopping.Load() {
		h.alive.Add(-1)
		h.cut.Add(1)
		h.log.Debug("held connection ended", "err", err)
	}
}

// close closes every connection and waits for the read loops.
func (h *holdSet) close() {
	h.mu.Lock()
	h.stopping.Store(true)
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	h.readers.Wait()
}

// runHold opens the connections (in this process or in --procs children),
// keeps them for --hold, and reports.
func runHold(ctx context.Context, cfg holdConfig, log *slog.Logger) (*result, error) {
	var before procSample
	if cfg.proc.enabled() {
		var err error
		if before, err = cfg.proc.sample(); err != nil {
			return nil, fmt.Errorf("sample server before: %w", err)
		}
	}
	start := time.Now()
	var (
		sum     childReport
		elapsed time.Duration
		release func() (childReport, error)
	)
	if cfg.procs <= 1 {
		h := &holdSet{log: log}
		defer h.close()
		// Progress lines run through connecting and holding.
		stop := startHoldProgress(ctx, log, cfg.progress, cfg.n, &h.alive)
		defer stop()
		res := h.open(ctx, cfg, cfg.n)
		sum = childReport{Connected: res.ok, ConnectErrors: res.errors, FirstErr: errString(res.firstErr)}
		elapsed = res.elapsed
		release = func() (childReport, error) {
			stop()
			r := childReport{Held: int(h.alive.Load()), Disconnected: int(h.cut.Load())}
			h.close()
			return r, nil
		}
	} else {
		kids, err := startChildren(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		defer kids.kill()
		if sum, err = kids.connected(); err != nil {
			return nil, err
		}
		elapsed = time.Since(start)
		release = kids.release
	}
	if sum.ConnectErrors > 0 {
		log.Warn("connect errors", "count", sum.ConnectErrors, "first", sum.FirstErr)
	}
	log.Info("connected", "clients", sum.Connected, "errors", sum.ConnectErrors, "elapsed", elapsed.Round(time.Millisecond))
	if err := sleepCtx(ctx, cfg.hold); err != nil {
		return nil, fmt.Errorf("hold: %w", err)
	}
	var after procSample
	if cfg.proc.enabled() {
		var err error
		if after, err = cfg.proc.sample(); err != nil {
			return nil, fmt.Errorf("sample server after: %w", err)
		}
	}
	end, err := release()
	if err != nil {
		return nil, err
	}
	r := &result{
		Mode: "hold", Clients: cfg.n, ConnectErrors: sum.ConnectErrors,
		Held: end.Held, Disconnected: end.Disconnected,
		DurationS: time.Since(start).Seconds(),
	}
	if elapsed > 0 {
		r.ConnectPerSec = float64(sum.Connected) / elapsed.Seconds()
	}
	if cfg.proc.enabled() {
		r.setServer(before, after)
	}
	return r, nil
}

func startHoldProgress(ctx context.Context, log *slog.Logger, interval time.Duration, n int, alive *atomic.Int64) (stop func()) {
	return every(ctx, interval, func() { log.Info("progress", "open", alive.Load(), "of", n) })
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// childReport is what a hold child prints on stdout, one JSON line after
// connecting and one after being released.
type childReport struct {
	Connected     int    `json:"connected"`
	ConnectErrors int    `json:"connect_errors"`
	FirstErr      string `json:"first_error,omitempty"`
	Held          int    `json:"held"`
	Disconnected  int    `json:"disconnected"`
}

func (a *childReport) add(b childReport) {
	a.Connected += b.Connected
	a.ConnectErrors += b.ConnectErrors
	if a.FirstErr == "" {
		a.FirstErr = b.FirstErr
	}
	a.Held += b.Held
	a.Disconnected += b.Disconnected
}

// runHoldChild is the hidden child side of --procs: connect the share of
// clients given, report, hold until stdin closes (the parent's release, or
// its death), report again, close.
func runHoldChild(ctx context.Context, cfg holdConfig, log *slog.Logger, stdin io.Reader, stdout io.Writer) error {
	h := &holdSet{log: log}
	defer h.close()
	res := h.open(ctx, cfg, cfg.n)
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(childReport{Connected: res.ok, ConnectErrors: res.errors, FirstErr: errString(res.firstErr)}); err != nil {
		return fmt.Errorf("report to parent: %w", err)
	}
	released := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(io.Discard, stdin) // returns when the parent closes our stdin
		close(released)
	})
	select {
	case <-released:
	case <-ctx.Done():
	}
	end := childReport{Held: int(h.alive.Load()), Disconnected: int(h.cut.Load())}
	h.close()
	if err := enc.Encode(end); err != nil {
		return fmt.Errorf("report to parent: %w", err)
	}
	if ctx.Err() != nil {
		// stdin may never close; leave the reader to the process exit.
		return fmt.Errorf("hold child: %w", ctx.Err())
	}
	wg.Wait()
	return nil
}

// children are the --procs hold processes. The parent owns them: it closes
// their stdin to release them and waits for each.
type children struct {
	log   *slog.Logger
	procs []*childProc
}

type childProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startChildren splits the clients over cfg.procs copies of this program.
func startChildren(ctx context.Context, cfg holdConfig, log *slog.Logger) (*children, error) {
	kids := &children{log: log}
	offset := 0
	for k := range cfg.procs {
		n := cfg.n / cfg.procs
		if k < cfg.n%cfg.procs {
			n++
		}
		cmd := exec.CommandContext(ctx, cfg.childExe, childArgs(cfg, offset, n)...)
		cmd.Env = append(os.Environ(), cfg.childEnv...)
		cmd.Stderr = cfg.childLog
		stdin, stdout, err := startPiped(cmd)
		if err != nil {
			kids.kill()
			return nil, fmt.Errorf("start hold child %d: %w", k, err)
		}
		kids.procs = append(kids.procs, &childProc{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)})
		offset += n
	}
	return kids, nil
}

// startPiped starts cmd, a child process of the load tool's, with pipes
// to its standard input and from its standard output; it is killed 5 s
// after its context ends if it has not exited by then.
func startPiped(cmd *exec.Cmd) (io.WriteCloser, io.ReadCloser, error) {
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return stdin, stdout, nil
}

// childArgs is the command line of a child holding n clients from slot offset.
func childArgs(cfg holdConfig, offset, n int) []string {
	g := cfg.given
	args := []string{"hold", "--child",
		"--slot-offset", strconv.Itoa(offset),
		"-n", strconv.Itoa(n),
		"--ws-mix", strconv.FormatFloat(g.wsMix, 'g', -1, 64),
		"--connect-rate", strconv.FormatFloat(g.connectRate/float64(cfg.procs), 'g', -1, 64),
		"--connect-timeout", cfg.connectTimeout.String(),
		"--dial-parallel", strconv.Itoa(max(cfg.connect.parallel/cfg.procs, 1)),
		"--per-source", strconv.Itoa(cfg.perSource),
		"--hold", cfg.hold.String(), // children wait for release, but plan their --timeout on it
		"--timeout", g.timeout.String(),
	}
	if len(g.tcp) > 0 {
		args = append(args, "--tcp", strings.Join(g.tcp, ","))
	}
	if len(g.ws) > 0 {
		args = append(args, "--ws", strings.Join(g.ws, ","))
	}
	if g.wsOpts.binary {
		args = append(args, "--ws-binary")
	}
	if g.wsOpts.json {
		args = append(args, "--ws-json")
	}
	if g.wsOpts.subprotocol != "" {
		args = append(args, "--ws-subprotocol", g.wsOpts.subprotocol)
	}
	if g.quiet {
		args = append(args, "--quiet")
	}
	return args
}

// connected reads every child's first report and sums them.
func (c *children) connected() (childReport, error) {
	var sum childReport
	for i, p := range c.procs {
		r, err := p.report()
		if err != nil {
			return sum, fmt.Errorf("hold child %d: %w", i, err)
		}
		sum.add(r)
	}
	return sum, nil
}

// release closes every child's stdin, reads their last reports and waits
// for them to exit.
func (c *children) release() (childReport, error) {
	for _, p := range c.procs {
		p.stdin.Close()
	}
	var sum childReport
	var errs []error
	for i, p := range c.procs {
		r, err := p.report()
		if err != nil {
			errs = append(errs, fmt.Errorf("hold child %d: %w", i, err))
		}
		sum.add(r)
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("hold child %d: %w", i, err))
		}
	}
	c.procs = nil
	return sum, errors.Join(errs...)
}

// kill ends children that were not released (on an error path).
func (c *children) kill() {
	for _, p := range c.procs {
		p.stdin.Close()
		if p.cmd.Process != nil {
			p.cmd.Process.Kill()
		}
		p.cmd.Wait()
	}
	c.procs = nil
}

func (p *childProc) report() (childReport, error) {
	if !p.out.Scan() {
		if err := p.out.Err(); err != nil {
			return childReport{}, fmt.Errorf("read report: %w", err)
		}
		return childReport{}, errors.New("read report: child exited without one")
	}
	var r childReport
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		return childReport{}, fmt.Errorf("decode report %q: %w", p.out.Text(), err)
	}
	return r, nil
}
