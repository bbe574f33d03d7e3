package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2 // bad flags, or a target that is not loopback
	exitTimeout = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, hardExit: true})
	stop()
	os.Exit(code)
}

// stdio is the process's side of a run. With hardExit, a run that
// overstays its --timeout (for example stuck in a kernel call) ends the
// process; tests leave it off.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	hardExit bool
}

const overview = `chatbench measures chat servers on this machine's loopback.

Usage:
  chatbench fanout  [flags]   N receivers and S senders in one room: deliveries, latency, loss
  chatbench hold    [flags]   open N idle connections: how many hold, memory per connection
  chatbench ceiling [flags]   a minimal Go TCP broadcaster to compare against
  chatbench slow    [flags]   healthy clients beside clients that never read, or read slowly
  chatbench crowd   [flags]   many senders of long lines in one big room
  chatbench churn   [flags]   thousands of connects and disconnects, half abrupt
  chatbench abuse   [flags]   every bad input at once, while two probes chat
  chatbench soak    [flags]   a mixed population chatting for a long time
  chatbench restart [flags]   SIGTERM mid-traffic, then start again
  chatbench cluster [flags]   NATS, several nodes and a room of them all: hold, chat, a node killed
  chatbench help              this text and every flag

Every line sent is "bench <sender> <seq> <send-time-ns>"; receivers find the
tag anywhere in what they get. Only 127.0.0.0/8 and ::1 are ever contacted.
Exit status: 0 ok, 1 failed (a scenario's check did not hold), 2 bad usage or
a non-loopback target, 3 timeout.
`

// run parses args and runs one subcommand, returning the exit status.
func run(ctx context.Context, args []string, std stdio) int {
	if len(args) == 0 {
		fmt.Fprint(std.err, overview)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(std.out, overview)
		for _, name := range []string{"fanout", "hold", "ceiling"} {
			fs, _ := newFlagSet(name, std.out)
			fmt.Fprintln(std.out)
			fs.Usage()
		}
		for _, name := range scenarios {
			fs, _ := newScenarioFlags(name, std.out)
			fmt.Fprintln(std.out)
			fs.Usage()
		}
		fs, _, _, _ := newClusterFlags(std.out)
		fmt.Fprintln(std.out)
		fs.Usage()
		return exitOK
	case "fanout", "hold", "ceiling":
	case "cluster":
		return runClusterCmd(ctx, rest, std)
	default:
		if isScenario(cmd) {
			return runScenario(ctx, cmd, rest, std)
		}
		fmt.Fprintf(std.err, "chatbench: unknown command %q\n\n%s", cmd, overview)
		return exitUsage
	}
	fs, v := newFlagSet(cmd, std.err)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(std.err, "chatbench %s: unexpected arguments %q\n", cmd, fs.Args())
		return exitUsage
	}
	log := newLogger(std.err, v)
	if err := raiseFileLimit(); err != nil {
		log.Warn("could not raise the open-file limit", "err", err)
	}

	ctx, cancel, err := withTimeout(ctx, cmd, v, std)
	if err != nil {
		fmt.Fprintf(std.err, "chatbench %s: %v\n", cmd, err)
		return exitUsage
	}
	defer cancel()

	switch cmd {
	case "ceiling":
		rep, err := runCeiling(ctx, ceilingConfig{listen: v.listen, duration: v.duration, queue: v.queue}, log)
		if err != nil {
			return fail(ctx, std, cmd, err)
		}
		if err := rep.write(std.out, v.json); err != nil {
			return fail(ctx, std, cmd, err)
		}
		return exitOK
	case "fanout":
		cfg, err := v.fanoutConfig(ctx)
		if err != nil {
			return fail(ctx, std, cmd, err)
		}
		res, err := runFanout(ctx, cfg, log)
		if err != nil {
			return fail(ctx, std, cmd, err)
		}
		if err := res.write(std.out, v.json); err != nil {
			return fail(ctx, std, cmd, err)
		}
		return exitOK
	default: // hold
		cfg, err := v.holdConfig(ctx)
		if err != nil {
			return fail(ctx, std, cmd, err)
		}
		cfg.childLog = std.err
		if v.child {
			if err := runHoldChild(ctx, cfg, log, std.in, std.out); err != nil {
				return fail(ctx, std, cmd, err)
			}
			return exitOK
		}
		res, err := runHold(ctx, cfg, log)
		if err != nil {
			return fail(ctx, std, cmd, err)
		}
		if err := res.write(std.out, v.json); err != nil {
			return fail(ctx, std, cmd, err)
		}
		return exitOK
	}
}

// errUsage marks a configuration error found after flag parsing.
var errUsage = errors.New("usage")

func fail(ctx context.Context, std stdio, cmd string, err error) int {
	fmt.Fprintf(std.err, "chatbench %s: %v\n", cmd, err)
	switch {
	case errors.Is(err, errNotLoopback), errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		fmt.Fprintf(std.err, "chatbench %s: --timeout exceeded\n", cmd)
		return exitTimeout
	}
	return exitFailed
}

// withTimeout bounds the whole run by --timeout (default: the run's planned
// length plus 30s). With std.hardExit, a run still going 5s after that is
// ended by force.
func withTimeout(ctx context.Context, cmd string, v *flagValues, std stdio) (context.Context, context.CancelFunc, error) {
	limit := v.timeout
	if limit == 0 {
		limit = v.plannedLength(cmd) + 30*time.Second
	}
	if limit < 0 {
		return nil, nil, fmt.Errorf("--timeout %s: must not be negative", limit)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	if !std.hardExit {
		return ctx, cancel, nil
	}
	watchdog := time.AfterFunc(limit+5*time.Second, func() {
		fmt.Fprintf(std.err, "chatbench %s: --timeout %s exceeded, exiting\n", cmd, limit)
		os.Exit(exitTimeout)
	})
	return ctx, func() { watchdog.Stop(); cancel() }, nil
}

func newLogger(w io.Writer, v *flagValues) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case v.verbose:
		level = slog.LevelDebug
	case v.quiet:
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// listFlag collects a flag that may be repeated or given as a comma list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// pidFlag collects process ids the same way.
type pidFlag []int

func (p *pidFlag) String() string {
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (p *pidFlag) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		v, err := strconv.Atoi(part)
		if err != nil || v <= 0 {
			return fmt.Errorf("bad pid %q", part)
		}
		*p = append(*p, v)
	}
	return nil
}
