package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The reliability scenarios: each drives a server (chatbridge or any chat
// on loopback) through one kind of trouble while healthy clients chat,
// checks what must hold, and exits non-zero when something does not.
var scenarios = []string{"slow", "crowd", "churn", "abuse", "soak", "restart"}

func isScenario(name string) bool { return slices.Contains(scenarios, name) }

func scenarioDescription(name string) string {
	switch name {
	case "slow":
		return "slow: healthy clients chat, first alone, then beside --slow clients (TCP and WS)\n" +
			"that never read and --slow-readers that read only --slow-rate bytes a second: healthy\n" +
			"ones lose nothing, their p99 stays within 2x (under 1s beside readers), the ones that\n" +
			"never read are cut off, the server's RSS stays under --max-rss and comes back to\n" +
			"within 32 MiB of where it was."
	case "crowd":
		return "crowd: --senders say lines of --pad bytes at --rate each (within a member's flood\n" +
			"limit) to a room of --receivers, together more than it can carry to everyone: the\n" +
			"server may refuse lines, but answers each with an error to its sender; every line\n" +
			"it lets through reaches every reader, p99 under 1s, and no reader is cut off."
	case "churn":
		return "churn: --workers clients connect and disconnect for --duration, half of them\n" +
			"abruptly (TCP reset, WebSocket dropped without a close frame), from 4096 addresses\n" +
			"in turn: goroutines and RSS (from --metrics) come back to their baseline, /who shows\n" +
			"no stale member, and a member watching is shown none of them coming or going.\n" +
			"Meanwhile one address connects as fast as it can: the server's default --connect-rate\n" +
			"refuses it past 100 at once and 10 a second."
	case "abuse":
		return "abuse: first every room the server will make, taken by a WebSocket each before\n" +
			"anyone enters the default room: telnet is still welcomed there; then 20 lines of\n" +
			"4 KB in each room, JSON clients present: RSS grows by at most twice the server's\n" +
			"--history-memory (given here too) and 32 MiB, and the newest line is kept. Then every\n" +
			"bad input at once (telnet IAC storms, a --big-line MiB line, invalid UTF-8, escapes,\n" +
			"NUL, floods, oversize and malformed WebSocket messages, a foreign origin, --idle\n" +
			"connections from one address, requests whose body never comes, an echo flood with\n" +
			"--echo, 100 connections from one address sending 4 KB private messages to one member\n" +
			"reading 128 KiB/s, which must not be cut off) while a TCP and a WS probe exchange a\n" +
			"line every 200ms: each arrives within 1s, and nothing raw ever reaches them. Meanwhile,\n" +
			"at the server's default rate: 40 lines bunched by a stall and 80 pasted lines all\n" +
			"arrive, at the rate, their senders refused nothing; empty JSON commands and NUL lines\n" +
			"sent flat out are cut off as floods; JSON with duplicate keys, keys in capitals or a\n" +
			"null text runs no command."
	case "soak":
		return "soak: a mixed TCP and WS population chats for --duration: nothing lost, duplicated\n" +
			"or reordered, and goroutines and RSS (from --metrics) end where they began."
	case "restart":
		return "restart: start the server (--exec), chat, stop it with SIGTERM mid-traffic: every\n" +
			"TCP client's last line is the shutdown notice, every WS client gets close 1001,\n" +
			"the server exits 0; then start it again and time how soon telnet gets in."
	}
	return ""
}

// scenarioFlags are the flags of every scenario; each uses those it needs.
type scenarioFlags struct {
	tcp, ws            listFlag
	metrics            string
	pids               pidFlag
	duration           time.Duration
	receivers, senders int
	rate               float64
	pad                int
	slow               int
	slowReaders        int
	slowRate           int // bytes a second
	roomRate           int // deliveries a second
	grace              time.Duration
	maxRSS             int64 // MiB
	workers            int
	idle               int
	bigLine            int // MiB
	echo               string
	fillRooms          int
	historyMemory      int64 // MiB
	exec               string
	json, quiet        bool
	verbose            bool
	timeout            time.Duration
}

func newScenarioFlags(name string, out io.Writer) (*flag.FlagSet, *scenarioFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	v := &scenarioFlags{}
	fs.Var(&v.tcp, "tcp", "TCP endpoint `host:port` of the server")
	fs.Var(&v.ws, "ws", "WebSocket endpoint `ws://host:port/ws` of the server")
	fs.StringVar(&v.metrics, "metrics", "", "the server's Prometheus `url` (go_goroutines, process_resident_memory_bytes)")
	fs.Var(&v.pids, "pid", "server process `id`, for its RSS (else --metrics gives it)")
	fs.DurationVar(&v.duration, "duration", 10*time.Second, "how long the trouble (and the chat) lasts")
	fs.IntVar(&v.receivers, "receivers", 100, "healthy receiving clients")
	fs.IntVar(&v.senders, "senders", 4, "healthy sending clients")
	fs.Float64Var(&v.rate, "rate", 5, "lines per second per healthy sender")
	fs.IntVar(&v.pad, "pad", 0, "bytes of padding on each healthy line")
	fs.IntVar(&v.slow, "slow", 10, "slow: clients that never read")
	fs.IntVar(&v.slowReaders, "slow-readers", 0, "slow: clients that read only --slow-rate bytes a second, as phones on a slow link")
	fs.IntVar(&v.slowRate, "slow-rate", 100_000, "slow: `bytes` a second each of --slow-readers reads")
	fs.DurationVar(&v.grace, "grace", 12*time.Second, "slow: how long after the traffic the slow ones must be cut off by (the server's write timeout, and some)")
	fs.Int64Var(&v.maxRSS, "max-rss", 512, "the server's RSS must stay under this many `MiB`")
	fs.IntVar(&v.roomRate, "room-rate", 0, "crowd: the server's --room-rate, in `deliveries` a second, to check the room was held to it (0: not checked)")
	fs.IntVar(&v.workers, "workers", 50, "churn: clients connecting and disconnecting at once")
	fs.IntVar(&v.idle, "idle", 1000, "abuse: idle connections opened from one address")
	fs.IntVar(&v.bigLine, "big-line", 100, "abuse: MiB of one line sent with no newline")
	fs.StringVar(&v.echo, "echo", "", "abuse: the server's echo service `host:port`, to flood from one address (empty: not tried)")
	fs.IntVar(&v.fillRooms, "fill-rooms", 2000, "abuse: the most rooms to take, one WebSocket each, looking for the server's --max-rooms (it must be lower)")
	fs.Int64Var(&v.historyMemory, "history-memory", 64, "abuse: the server's --history-memory, in `MiB`: its RSS may grow by twice this, and 32 MiB, while every room fills with 4 KB lines")
	fs.StringVar(&v.exec, "exec", "", "restart: the server's command line (split on spaces; it must listen on --tcp and --ws)")
	fs.BoolVar(&v.json, "json", false, "print one JSON object instead of a summary")
	fs.BoolVar(&v.quiet, "quiet", false, "no progress lines on stderr")
	fs.BoolVar(&v.verbose, "verbose", false, "debug logging on stderr")
	fs.DurationVar(&v.timeout, "timeout", 0, "hard limit for the whole run (0 = 4x --duration + 60s)")
	fs.Usage = func() {
		fmt.Fprintf(out, "%s\n\nUsage: chatbench %s [flags]\n\nFlags:\n", scenarioDescription(name), name)
		fs.PrintDefaults()
	}
	return fs, v
}

// A check is one thing a scenario asserts.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// scenarioResult is what a scenario measured and checked.
type scenarioResult struct {
	Scenario         string  `json:"scenario"`
	Params           string  `json:"params"`
	Clients          int     `json:"clients"`
	Messages         int64   `json:"messages"`
	Deliveries       int64   `json:"deliveries"`
	Lost             int64   `json:"lost"`
	Duplicated       int64   `json:"duplicated"`
	Reordered        int64   `json:"reordered"`
	MaxRSSKiB        int64   `json:"max_rss_kib"`
	GoroutinesBefore int     `json:"goroutines_before"`
	GoroutinesAfter  int     `json:"goroutines_after"`
	RSSBeforeKiB     int64   `json:"rss_before_kib"`
	RSSAfterKiB      int64   `json:"rss_after_kib"`
	DurationS        float64 `json:"duration_s"`
	Checks           []check `json:"checks"`
	OK               bool    `json:"ok"`
}

func (r *scenarioResult) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

func (r *scenarioResult) addFanout(f *result) {
	r.Clients = max(r.Clients, f.Receivers+f.Senders)
	r.Messages += f.Sent
	r.Deliveries += f.Deliveries
	r.Lost += f.Lost
	r.Duplicated += f.Duplicated
	r.Reordered += f.Reordered
}

// write prints r as one JSON object, or a line and a line per check.
// r.OK must be set.
func (r *scenarioResult) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, r)
	}
	verdict := "ok"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%s: %s (%s); clients %d, messages %d, deliveries %d, lost %d, dup %d, reordered %d, max RSS %d KiB, goroutines %d -> %d, RSS %d -> %d KiB, %.1fs\n",
		r.Scenario, verdict, r.Params, r.Clients, r.Messages, r.Deliveries, r.Lost, r.Duplicated, r.Reordered,
		r.MaxRSSKiB, r.GoroutinesBefore, r.GoroutinesAfter, r.RSSBeforeKiB, r.RSSAfterKiB, r.DurationS)
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	return nil
}

// scenarioEnv is what every scenario works with.
type scenarioEnv struct {
	v       *scenarioFlags
	cc      clientConfig // healthy clients: both transports, half each
	metrics *metricsReader
	log     *slog.Logger
}

func runScenario(ctx context.Context, name string, args []string, std stdio) int {
	fs, v := newScenarioFlags(name, std.err)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(std.err, "chatbench %s: unexpected arguments %q\n", name, fs.Args())
		return exitUsage
	}
	log := newLogger(std.err, &flagValues{quiet: v.quiet, verbose: v.verbose})
	if err := raiseFileLimit(); err != nil {
		log.Warn("could not raise the open-file limit", "err", err)
	}
	limit := v.timeout
	if limit <= 0 {
		limit = 4*v.duration + 60*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	env, err := newScenarioEnv(ctx, v, log)
	if err != nil {
		fmt.Fprintf(std.err, "chatbench %s: %v\n", name, err)
		return exitUsage
	}
	start := time.Now()
	var r *scenarioResult
	switch name {
	case "slow":
		r, err = runSlow(ctx, env)
	case "crowd":
		r, err = runCrowd(ctx, env)
	case "churn":
		r, err = runChurn(ctx, env)
	case "abuse":
		r, err = runAbuse(ctx, env)
	case "soak":
		r, err = runSoak(ctx, env)
	case "restart":
		r, err = runRestart(ctx, env)
	}
	if err != nil {
		return fail(ctx, std, name, err)
	}
	r.Scenario = name
	r.DurationS = time.Since(start).Seconds()
	r.OK = !slices.ContainsFunc(r.Checks, func(c check) bool { return !c.OK })
	if err := r.write(std.out, v.json); err != nil {
		return fail(ctx, std, name, err)
	}
	if !r.OK {
		return exitFailed
	}
	return exitOK
}

// scenarioProgress is how often a scenario's healthy chat logs its
// progress on stderr: a soak may run for hours.
const scenarioProgress = 10 * time.Second

func newScenarioEnv(ctx context.Context, v *scenarioFlags, log *slog.Logger) (*scenarioEnv, error) {
	if len(v.tcp) == 0 && len(v.ws) == 0 {
		return nil, usageErr("give --tcp and/or --ws")
	}
	if v.duration <= 0 || v.receivers < 1 || v.senders < 1 || v.rate <= 0 {
		return nil, usageErr("--duration, --receivers, --senders and --rate must be positive")
	}
	if v.slow < 0 || v.slowReaders < 0 || v.slowRate <= 0 {
		return nil, usageErr("--slow and --slow-readers must not be negative, --slow-rate must be positive")
	}
	tcp, ws, err := resolveEndpoints(ctx, v.tcp, v.ws)
	if err != nil {
		return nil, err
	}
	env := &scenarioEnv{v: v, log: log}
	env.cc = clientConfig{
		tcp: tcp, ws: ws, wsMix: 0.5,
		connect:        connectPlan{parallel: 32},
		connectTimeout: 5 * time.Second,
		proc:           procSampler{pids: v.pids, root: "/proc"},
		pad:            v.pad,
		// From 127.0.0.1, 127.0.0.2, ... 50 each, as many users would
		// come: under a server's usual per-address limit.
		perSource: 50,
	}
	if !v.quiet {
		env.cc.progress = scenarioProgress
	}
	if v.metrics != "" {
		if env.metrics, err = newMetricsReader(ctx, v.metrics); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// fanout runs healthy chat: the scenario's receivers and senders, both
// transports, for d.
func (e *scenarioEnv) fanout(ctx context.Context, d time.Duration) (*result, error) {
	return runFanout(ctx, e.fanoutConfig(d), e.log)
}

// fanoutConfig is the scenario's healthy chat for d.
func (e *scenarioEnv) fanoutConfig(d time.Duration) fanoutConfig {
	return fanoutConfig{
		clientConfig: e.cc,
		receivers:    e.v.receivers, senders: e.v.senders,
		rate: e.v.rate, duration: d,
		drain: 2 * time.Second, settle: 300 * time.Millisecond, window: 1000,
		noBurst: true, // healthy users: never over the server's flood limit
	}
}

// rss returns the server's resident memory in KiB, from --pid or else
// --metrics; 0 if neither is given.
func (e *scenarioEnv) rss(ctx context.Context) int64 {
	if e.cc.proc.enabled() {
		if s, err := e.cc.proc.sample(); err == nil {
			return s.rssKiB
		}
	}
	if e.metrics != nil {
		if m, err := e.metrics.read(ctx); err == nil {
			return m.rssKiB
		}
	}
	return 0
}

// watchRSS samples the server's RSS every 100ms until the returned stop
// is called, which gives the highest sample.
func (e *scenarioEnv) watchRSS(ctx context.Context) (stop func() int64) {
	ctx, cancel := context.WithCancel(ctx)
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, e.rss(ctx))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() int64 {
		cancel()
		wg.Wait()
		return peak
	}
}

// checkRSS checks the peak against --max-rss, if anything measured it.
func (e *scenarioEnv) checkRSS(r *scenarioResult, peak int64) {
	r.MaxRSSKiB = peak
	if peak == 0 {
		r.check("server RSS bounded", true, "not measured (give --pid or --metrics)")
		return
	}
	r.check("server RSS bounded", peak <= e.v.maxRSS<<10, "peak %d KiB, bound %d MiB", peak, e.v.maxRSS)
}

// baseline reads goroutines and RSS from --metrics into r, before the trouble.
func (e *scenarioEnv) baseline(ctx context.Context, r *scenarioResult) {
	r.GoroutinesBefore, r.GoroutinesAfter = -1, -1
	if e.metrics == nil {
		r.RSSBeforeKiB = e.rss(ctx) // from --pid, if given
		return
	}
	if m, err := e.metrics.read(ctx); err == nil {
		r.GoroutinesBefore, r.RSSBeforeKiB = m.goroutines, m.rssKiB
	}
}

// settleBack waits (up to 15s) for the server's goroutines and RSS to come
// back to the baseline, then checks them against it. (The Go runtime
// gives memory back to the system some time after a collection finds it
// free, and collects only as the heap grows or every two minutes: RSS is
// given that long.)
func (e *scenarioEnv) settleBack(ctx context.Context, r *scenarioResult, rssSlackMiB int64) {
	e.settleBackTo(ctx, r, r.RSSBeforeKiB, "before", rssSlackMiB)
}

// settleBackTo is settleBack with the RSS checked against rssBase, taken
// at the time when.
func (e *scenarioEnv) settleBackTo(ctx context.Context, r *scenarioResult, rssBase int64, when string, rssSlackMiB int64) {
	if e.metrics == nil || r.GoroutinesBefore < 0 {
		r.check("goroutines back to baseline", true, "not measured (give --metrics)")
		if rssBase > 0 {
			sleepCtx(ctx, 2*time.Second) // the clients' connections wind down
			r.RSSAfterKiB = e.rss(ctx)
			r.check("RSS back near baseline", r.RSSAfterKiB <= rssBase+rssSlackMiB<<10,
				"%d KiB %s, %d KiB after (slack %d MiB)", rssBase, when, r.RSSAfterKiB, rssSlackMiB)
		}
		return
	}
	const slack = 5
	deadline := time.Now().Add(15 * time.Second)
	var m metricsSample
	var err error
	for {
		m, err = e.metrics.read(ctx)
		settled := err == nil && m.goroutines <= r.GoroutinesBefore+slack && m.rssKiB <= rssBase+rssSlackMiB<<10
		if settled || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	if err != nil {
		r.check("goroutines back to baseline", false, "metrics: %v", err)
		return
	}
	r.GoroutinesAfter, r.RSSAfterKiB = m.goroutines, m.rssKiB
	r.check("goroutines back to baseline", m.goroutines <= r.GoroutinesBefore+slack,
		"%d before, %d after (slack %d)", r.GoroutinesBefore, m.goroutines, slack)
	r.check("RSS back near baseline", m.rssKiB <= rssBase+rssSlackMiB<<10,
		"%d KiB %s, %d KiB after (slack %d MiB)", rssBase, when, m.rssKiB, rssSlackMiB)
}

// metricsReader reads a few gauges from a Prometheus text endpoint.
type metricsReader struct {
	url    string
	client *http.Client
}

type metricsSample struct {
	goroutines int
	rssKiB     int64
}

func newMetricsReader(ctx context.Context, raw string) (*metricsReader, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, usageErr("--metrics %q: want an http:// URL", raw)
	}
	if _, err := resolveLoopback(ctx, u.Host); err != nil {
		return nil, err
	}
	return &metricsReader{url: raw, client: &http.Client{Timeout: 5 * time.Second}}, nil
}

func (m *metricsReader) read(ctx context.Context) (metricsSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return metricsSample{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return metricsSample{}, fmt.Errorf("get metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricsSample{}, fmt.Errorf("get metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics finds go_goroutines and process_resident_memory_bytes.
func parseMetrics(r io.Reader) (metricsSample, error) {
	var s metricsSample
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			s.goroutines = int(f)
			found++
		case "process_resident_memory_bytes":
			s.rssKiB = int64(f) / 1024
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read metrics: %w", err)
	}
	if found < 2 {
		return s, fmt.Errorf("metrics lack go_goroutines or process_resident_memory_bytes")
	}
	return s, nil
}
