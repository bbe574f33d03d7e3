package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"chatbridge/tcpserver"
	"chatbridge/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stack is a hub with the TCP server and the bridge both on loopback.
type stack struct {
	hub     *tcpserver.Hub
	bridge  *Server
	tcp     *tcpserver.Server
	httpURL string // http://127.0.0.1:port
	wsURL   string // ws://127.0.0.1:port/ws
	tcpAddr string
	done    chan error
}

func start(t *testing.T, hc tcpserver.HubConfig, cfg Config) *stack {
	t.Helper()
	if hc.MaxPerIP == 0 {
		hc.MaxPerIP = -1
	}
	if hc.AnnounceDelay == 0 {
		hc.AnnounceDelay = -1 // joins announced at once: the tests wait for them
	}
	hub := tcpserver.NewHub(hc, nil)
	if cfg.Web == nil {
		cfg.Web = web.Handler()
	}
	st := &stack{hub: hub, bridge: New(hub, cfg, nil), tcp: tcpserver.New(hub, tcpserver.Config{}, nil), done: make(chan error, 2)}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	st.httpURL = scheme + "://" + hl.Addr().String()
	st.wsURL = strings.Replace(st.httpURL, "http", "ws", 1) + "/ws"
	st.tcpAddr = tl.Addr().String()
	go func() { st.done <- st.bridge.Serve(context.Background(), hl) }()
	go func() { st.done <- st.tcp.Serve(context.Background(), tl) }()
	t.Cleanup(func() { st.stop(t) })
	return st
}

func (st *stack) stop(t *testing.T) {
	if st.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.bridge.Shutdown(ctx); err != nil {
		t.Errorf("bridge Shutdown: %v", err)
	}
	if err := st.tcp.Shutdown(ctx); err != nil {
		t.Errorf("tcp Shutdown: %v", err)
	}
	for range 2 {
		select {
		case err := <-st.done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve = %v", err)
			}
		case <-time.After(10 * time.Second):
			// A test that failed between stopping a server and starting
			// its successor leaves one Serve fewer: do not hang on it.
			t.Errorf("a Serve did not return within 10 s of Shutdown")
		}
	}
	st.done = nil
}

// wsClient is a WebSocket chat client.
type wsClient struct {
	t       *testing.T
	c       *websocket.Conn
	name    string
	pending []event // read in an array, not yet taken
}

func (st *stack) dialWS(t *testing.T, query string, opts *websocket.DialOptions) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := st.wsURL
	if query != "" {
		u += "?" + query
	}
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}, resp, nil
}

func (st *stack) plain(t *testing.T, query string) *wsClient {
	t.Helper()
	w, _, err := st.dialWS(t, query, nil)
	if err != nil {
		t.Fatal(err)
	}
	welcome := w.read()
	_, rest, _ := strings.Cut(welcome, "Welcome to chatbridge, ")
	w.name, _, _ = strings.Cut(rest, "!")
	if w.name == "" {
		t.Fatalf("welcome = %q", welcome)
	}
	return w
}

func (st *stack) jsonClient(t *testing.T, query string) *wsClient {
	t.Helper()
	w, _, err := st.dialWS(t, query, &websocket.DialOptions{Subprotocols: []string{JSONProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	if w.c.Subprotocol() != JSONProtocol {
		t.Fatalf("subprotocol = %q", w.c.Subprotocol())
	}
	hello := w.event()
	if hello.Type != "hello" || hello.To == "" {
		t.Fatalf("first event = %+v", hello)
	}
	w.name = hello.To
	return w
}

func (w *wsClient) read() string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("%s: read: %v", w.name, err)
	}
	if typ != websocket.MessageText {
		w.t.Fatalf("%s: frame type %v", w.name, typ)
	}
	return string(b)
}

// expect reads frames until one contains want.
func (w *wsClient) expect(want string) string {
	w.t.Helper()
	var seen []string
	for range 100 {
		f := w.read()
		if strings.Contains(f, want) {
			return f
		}
		seen = append(seen, f)
	}
	w.t.Fatalf("%s: no %q in %q", w.name, want, seen)
	return ""
}

type event struct {
	Type, ID, Time, Room, From, To, Text string
	Topic                                string
	Registered, Verified, IDs            []string
	Echo, More                           bool
	Names                                []string
	Count                                int
	Events                               []event
}

// event reads the next event: a frame is one, or an array of them.
func (w *wsClient) event() event {
	w.t.Helper()
	if len(w.pending) == 0 {
		f := w.read()
		var err error
		if strings.HasPrefix(f, "[") {
			err = json.Unmarshal([]byte(f), &w.pending)
			if err == nil && len(w.pending) < 2 {
				err = errors.New("an array of fewer than two events")
			}
		} else {
			w.pending = make([]event, 1)
			err = json.Unmarshal([]byte(f), &w.pending[0])
		}
		if err != nil {
			w.t.Fatalf("%s: %v in %q", w.name, err, f)
		}
	}
	ev := w.pending[0]
	w.pending = w.pending[1:]
	return ev
}

// expectEvent reads events until one of type typ satisfies ok.
func (w *wsClient) expectEvent(typ string, ok func(event) bool) event {
	w.t.Helper()
	for range 100 {
		ev := w.event()
		if ev.Type == typ && (ok == nil || ok(ev)) {
			return ev
		}
		if ev.Type == "batch" {
			for _, e := range ev.Events {
				if e.Type == typ && (ok == nil || ok(e)) {
					return e
				}
			}
		}
	}
	w.t.Fatalf("%s: no %s event", w.name, typ)
	return event{}
}

func (w *wsClient) send(s string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatalf("%s: write: %v", w.name, err)
	}
}

// closeStatus reads until the connection ends and returns how.
func (w *wsClient) closeStatus() (websocket.StatusCode, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := w.c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			if ctx.Err() != nil {
				w.t.Fatalf("%s: not closed", w.name)
			}
			return -1, err.Error()
		}
	}
}

// tcpClient is a telnet-style client of the same hub.
type tcpClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	name string
}

func (st *stack) telnet(t *testing.T) *tcpClient {
	t.Helper()
	conn, err := net.Dial("tcp", st.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &tcpClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	welcome := c.expect("Welcome to chatbridge, ")
	_, rest, _ := strings.Cut(welcome, "Welcome to chatbridge, ")
	c.name, _, _ = strings.Cut(rest, "!")
	return c
}

func (c *tcpClient) send(line string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tcpClient) expect(want string) string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	var seen []string
	for range 100 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("tcp %s: waiting for %q: %v; saw %q", c.name, want, err, seen)
		}
		if strings.Contains(line, want) {
			return strings.TrimRight(line, "\r\n")
		}
		seen = append(seen, line)
	}
	c.t.Fatalf("tcp: no %q in %q", want, seen)
	return ""
}

func TestPlainWebSocketAndTelnetShareARoom(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	tel := st.telnet(t)
	tel.send("/nick telly")
	tel.expect("is now known as telly")
	tel.send("said before the browser came")
	// The reply to a later command proves the hub has taken the line.
	tel.send("/who")
	tel.expect("in lobby: telly")

	w := st.plain(t, "nick=webby")
	if w.name != "webby" {
		t.Fatalf("name = %q, want webby from ?nick=", w.name)
	}
	// The history: each line with its time, then a notice that it ends.
	if got := w.read(); !regexp.MustCompile(`^\[(\d{4}-\d\d-\d\d )?\d\d:\d\d\] <telly> said before the browser came$`).MatchString(got) {
		t.Fatalf("history frame = %q", got)
	}
	if got := w.read(); got != "*** end of history: 1 earlier line, times in UTC" {
		t.Fatalf("history's last frame = %q", got)
	}
	if got := w.read(); got != "*** 2 in lobby: telly, webby" {
		t.Fatalf("presence frame = %q", got)
	}
	tel.expect("*** webby joined") // a web visitor's address is not shown

	w.send("hello from the web")
	if got := tel.expect("webby>"); got != "<webby> hello from the web" {
		t.Fatalf("telnet got %q", got)
	}
	tel.send("hello from telnet")
	if got := w.read(); got != "<telly> hello from telnet" {
		t.Fatalf("websocket got %q", got)
	}
	// A frame of several lines is several lines; commands work.
	w.send("one\r\ntwo\n/me waves")
	tel.expect("<webby> one")
	tel.expect("<webby> two")
	tel.expect("* webby waves")
	tel.send("/nick tel2")
	w.expect("*** telly is now known as tel2")
	w.c.Close(websocket.StatusNormalClosure, "")
	tel.expect("*** webby left")
}

func TestJSONProtocol(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	tel := st.telnet(t)
	tel.send("/nick telly")
	tel.expect("is now known as telly")
	tel.send("<script>alert(1)</script>")
	tel.send("/who")
	tel.expect("in lobby: telly")

	w := st.jsonClient(t, "room=lobby&nick=ada")
	if w.name != "ada" {
		t.Fatalf("hello to = %q", w.name)
	}
	h := w.event()
	if h.Type != "history" || len(h.Events) != 1 || h.Events[0].Text != "<script>alert(1)</script>" || h.Events[0].From != "telly" {
		t.Fatalf("history = %+v", h)
	}
	p := w.event()
	if p.Type != "presence" || p.Count != 2 || strings.Join(p.Names, ",") != "ada,telly" {
		t.Fatalf("presence = %+v", p)
	}

	w.send(`{"type":"message","text":"hi from json"}`)
	tel.expect("<ada> hi from json")
	own := w.expectEvent("message", nil)
	if own.From != "ada" || own.Text != "hi from json" || own.ID == "" || own.Time == "" || own.Room != "lobby" {
		t.Fatalf("own message echoed as %+v", own)
	}
	// A message that starts with / is said, not run.
	w.send(`{"type":"message","text":"/not a command"}`)
	tel.expect("<ada> /not a command")

	tel.send("from telnet")
	if ev := w.expectEvent("message", func(e event) bool { return e.From == "telly" }); ev.Text != "from telnet" {
		t.Fatalf("got %+v", ev)
	}
	w.send(`{"type":"command","text":"/me dances"}`)
	tel.expect("* ada dances")
	w.send(`{"type":"command","text":"/nick ada2"}`)
	if ev := w.expectEvent("nick", nil); ev.From != "ada" || ev.To != "ada2" {
		t.Fatalf("nick = %+v", ev)
	}
	w.send(`{"type":"command","text":"/msg telly psst"}`)
	tel.expect("*ada2* psst")
	if ev := w.expectEvent("private", nil); !ev.Echo || ev.To != "telly" {
		t.Fatalf("receipt = %+v", ev)
	}
	tel.send("/msg ada2 back")
	if ev := w.expectEvent("private", nil); ev.From != "telly" || ev.Text != "back" {
		t.Fatalf("private = %+v", ev)
	}
	tel.send("/me bows")
	if ev := w.expectEvent("action", nil); ev.From != "telly" || ev.Text != "bows" {
		t.Fatalf("action = %+v", ev)
	}

	// Bad input gets an error event, and the connection stays.
	for _, bad := range []string{`{"type":`, `{"type":"shout","text":"x"}`, `[1,2]`} {
		w.send(bad)
		if ev := w.expectEvent("error", nil); ev.Text == "" {
			t.Fatalf("error for %q is empty", bad)
		}
	}
	w.send(`{"type":"command","text":"/who"}`)
	w.expectEvent("presence", nil)

	tel.conn.Close()
	if ev := w.expectEvent("leave", nil); ev.From != "telly" {
		t.Fatalf("leave = %+v", ev)
	}
}

func TestForeignOriginIsRefusedBeforeUpgrade(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{AllowOrigins: []string{"docs.example.com"}})
	h := http.Header{}
	h.Set("Origin", "http://evil.example")
	_, resp, err := st.dialWS(t, "", &websocket.DialOptions{HTTPHeader: h})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, resp %v", err, resp)
	}
	h.Set("Origin", "https://docs.example.com")
	if _, _, err := st.dialWS(t, "", &websocket.DialOptions{HTTPHeader: h}); err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	h.Set("Origin", st.httpURL)
	if _, _, err := st.dialWS(t, "", &websocket.DialOptions{HTTPHeader: h}); err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	// The hub admits a member just after the upgrade; give it a moment.
	deadline := time.Now().Add(3 * time.Second)
	for st.hub.Stats().Clients["ws"] != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := st.hub.Stats().Clients["ws"]; n != 2 {
		t.Fatalf("%d ws clients, want 2", n)
	}
}

func TestLimitsCloseWithTryAgainLater(t *testing.T) {
	st := start(t, tcpserver.HubConfig{MaxPerIP: 1}, Config{})
	st.plain(t, "")
	w, _, err := st.dialWS(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, reason := w.closeStatus(); code != websocket.StatusTryAgainLater || reason != "too many connections from your address" {
		t.Fatalf("close %v %q", code, reason)
	}
}

func TestOversizeFrameClosesWith1009(t *testing.T) {
	// From just over the limit to far over it: a client still writing
	// the rest of the message when the server refuses it must get the
	// close frame, not a reset that throws it away.
	// A telnet user chats meanwhile, so that lines for the client are on
	// their way as the server refuses its message.
	for _, size := range []int{200, 64 << 10, 512 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			st := start(t, tcpserver.HubConfig{MaxLine: 100, Rate: -1}, Config{})
			tel := st.telnet(t)
			stop := make(chan struct{})
			chatting := make(chan struct{})
			go func() {
				defer close(chatting)
				for {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Microsecond):
						tel.conn.Write([]byte("meanwhile\r\n"))
					}
				}
			}()
			defer func() { close(stop); <-chatting }()
			for i := range 5 {
				w := st.plain(t, "")
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := w.c.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), size))
				cancel()
				if err != nil {
					t.Fatalf("try %d: writing %d bytes: %v", i, size, err)
				}
				if code, _ := w.closeStatus(); code != websocket.StatusMessageTooBig {
					t.Fatalf("try %d: close %v, want 1009", i, code)
				}
			}
		})
	}
}

func TestFloodClosesWithPolicyViolation(t *testing.T) {
	// 40 messages: 2 at once, 5 waiting their turn (half a second), and
	// the rest more than can wait.
	st := start(t, tcpserver.HubConfig{Rate: 10, Burst: 2, Backlog: 5}, Config{})
	w := st.plain(t, "")
	for i := range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := w.c.Write(ctx, websocket.MessageText, []byte("flood "+string(rune('a'+i%26))))
		cancel()
		if err != nil {
			break
		}
	}
	code, reason := w.closeStatus()
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "flooding") {
		t.Fatalf("close %v %q", code, reason)
	}
	if st.hub.Stats().FloodKicks != 1 {
		t.Fatalf("stats = %+v", st.hub.Stats())
	}
}

func TestSlowWebSocketIsCutWhileOthersReceive(t *testing.T) {
	// The slow one is cut when a write of its has waited a second; the
	// queue is long enough that the fast one, starved of CPU on a busy
	// machine, is not (4,096 lines of 900 bytes).
	st := start(t, tcpserver.HubConfig{Rate: -1}, Config{Queue: 4096, QueueBytes: 4 << 20, WriteTimeout: time.Second})
	slow, _, err := st.dialWS(t, "", nil) // never reads
	if err != nil {
		t.Fatal(err)
	}
	_ = slow
	fast := st.plain(t, "nick=fast")
	tel := st.telnet(t)
	payload := strings.Repeat("p", 900)
	const n = 6000
	type result struct {
		count int
		err   error
	}
	got := make(chan result)
	go func() {
		count := 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for count < n {
			_, b, err := fast.c.Read(ctx)
			if err != nil {
				got <- result{count, err}
				return
			}
			if strings.HasSuffix(string(b), payload) {
				count++
			}
		}
		got <- result{count, nil}
	}()
	for i := range n {
		tel.send(payload)
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	if r := <-got; r.count != n {
		t.Fatalf("fast got %d of %d: %v", r.count, n, r.err)
	}
	tel.expect(" left (too slow)")
	if st.hub.Stats().SlowKicks != 1 {
		t.Fatalf("stats = %+v", st.hub.Stats())
	}
}

// A JSON member that stops reading is cut off once what it has waiting,
// counted as the JSON it would be sent, passes QueueBytes: lines of "<"
// weigh six times their text there.
func TestQueueBytesCountsWhatAJSONMemberIsSent(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: -1, MaxLine: 8192}, Config{Queue: 1 << 20, QueueBytes: 256 << 10, WriteTimeout: time.Minute})
	stuck, _, err := st.dialWS(t, "", &websocket.DialOptions{Subprotocols: []string{JSONProtocol}}) // never reads
	if err != nil {
		t.Fatal(err)
	}
	_ = stuck
	tel := st.telnet(t)
	fast := st.telnet(t)
	tel.expect(fast.name + " (")
	payload := strings.Repeat("<", 4000) // 24 KB of JSON
	start := time.Now()
	sent := 0
	for ; st.hub.Stats().SlowKicks == 0; sent++ {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("not cut off after %d lines", sent)
		}
		tel.send(payload)
		fast.expect(payload)
	}
	tel.expect(" left (too slow)")
	if st.hub.Stats().SlowKicks != 1 {
		t.Fatalf("stats = %+v", st.hub.Stats())
	}
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	w := st.plain(t, "")
	j := st.jsonClient(t, "")
	// The clients read while the server shuts down, as browsers do, so
	// they answer its close frame.
	type status struct {
		code   websocket.StatusCode
		reason string
	}
	got := make(chan status, 2)
	for _, c := range []*wsClient{w, j} {
		go func() {
			code, reason := c.closeStatus()
			got <- status{code, reason}
		}()
	}
	begin := time.Now()
	st.stop(t)
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	for range 2 {
		if s := <-got; s.code != websocket.StatusGoingAway || s.reason != "server shutting down" {
			t.Fatalf("close %v %q", s.code, s.reason)
		}
	}
}

func TestHeadersHealthAndMetrics(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{EmbedOrigins: []string{"https://docs.example.com"}})
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(st.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.Contains(body, `name="message"`) || !strings.Contains(body, `role="log"`) {
		t.Fatalf("/ = %d %q", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors 'self'") {
		t.Fatalf("/ CSP = %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("no nosniff on /")
	}
	resp, _ = get("/embed?room=docs")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors https://docs.example.com") {
		t.Fatalf("/embed CSP = %q", csp)
	}
	resp, body = get("/embed.js")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") || !strings.Contains(body, "iframe") {
		t.Fatalf("/embed.js = %d %v", resp.StatusCode, resp.Header)
	}
	if resp, body = get("/healthz"); resp.StatusCode != 200 || body != "." {
		t.Fatalf("/healthz = %d %q", resp.StatusCode, body)
	}
	if resp, _ = get("/nope"); resp.StatusCode != 404 {
		t.Fatalf("/nope = %d", resp.StatusCode)
	}
	st.plain(t, "")
	st.telnet(t)
	_, body = get("/metrics")
	for _, want := range []string{`chatbridge_clients{transport="tcp"} 1`, `chatbridge_clients{transport="ws"} 1`, "chatbridge_rooms 1", "chatbridge_lines_in_total", "chatbridge_deliveries_total", "chatbridge_slow_consumer_disconnects_total", "chatbridge_flood_disconnects_total", "chatbridge_room_busy_lines_total 0", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	st := start(t, tcpserver.HubConfig{}, Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(st.httpURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.StatusCode != 200 {
		t.Fatalf("https: %d, tls %v", resp.StatusCode, resp.TLS)
	}
	w, _, err := st.dialWS(t, "nick=secure", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	w.name = "secure"
	w.expect("Welcome to chatbridge, secure!")
	tel := st.telnet(t)
	tel.send("over tls")
	w.expect("> over tls")
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their files and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "chatbridge test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
