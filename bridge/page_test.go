package bridge

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/coder/websocket"

	"chatbridge/tcpserver"
	"chatbridge/web"
)

// The page's tests: a real Chromium against the real server, or against
// a fake one where the test needs a server that misbehaves.

// fakeChat serves the page, and hands each WebSocket on /ws to serve. It
// returns the server's URL and a count of WebSockets accepted.
func fakeChat(t *testing.T, serve func(ctx context.Context, c *websocket.Conn)) (string, *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var accepted atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{JSONProtocol}})
		if err != nil {
			return
		}
		accepted.Add(1)
		wg.Add(1)
		defer wg.Done()
		defer c.CloseNow()
		serve(ctx, c)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		srv.Close()
	})
	return srv.URL, &accepted
}

// helloJSON is what a server says first.
func helloJSON(room, name string) string {
	return fmt.Sprintf(`{"type":"hello","id":"1","time":%q,"room":%q,"to":%q,"text":"Welcome to chatbridge, %s! You are in %s. Type /help for commands."}`,
		time.Now().UTC().Format(time.RFC3339Nano), room, name, name, room)
}

func write(ctx context.Context, c *websocket.Conn, s string) error {
	return c.Write(ctx, websocket.MessageText, []byte(s))
}

// shot saves a screenshot of the page (or of the element sel) in the
// test's directory, and in $CHATBRIDGE_SHOTS if that is set: the README's
// pictures are made so (see "The web page").
func shot(t *testing.T, ctx context.Context, name string, sel ...string) {
	t.Helper()
	var png []byte
	var act chromedp.Action = chromedp.CaptureScreenshot(&png)
	if len(sel) > 0 {
		act = chromedp.Screenshot(sel[0], &png, chromedp.ByQuery)
	}
	if err := chromedp.Run(ctx, act); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	png, err := smallPNG(png)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("CHATBRIDGE_SHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s: %d bytes", name, len(png))
}

// smallPNG re-encodes a screenshot with its 256 most common colours: a
// page is a few colours and the anti-aliased edges between them, and the
// README's pictures should stay small.
func smallPNG(b []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	r := img.Bounds()
	counts := make(map[color.RGBA]int)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	common := slices.Collect(maps.Keys(counts))
	slices.SortFunc(common, func(a, b color.RGBA) int { return cmp.Compare(counts[b], counts[a]) })
	var pal color.Palette
	for _, c := range common[:min(256, len(common))] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(r, pal)
	index := make(map[color.RGBA]uint8)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := index[c]
			if !ok {
				i = uint8(pal.Index(c))
				index[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	var buf bytes.Buffer
	err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out)
	return buf.Bytes(), err
}

// evalIn evaluates expr, which must be truthy, in the frame (nil: the
// page) and puts its value in res.
func evalIn(ctx context.Context, frame *cdp.Node, expr string, res any) error {
	opts := []chromedp.PollOption{chromedp.WithPollingTimeout(10 * time.Second)}
	if frame != nil {
		opts = append(opts, chromedp.WithPollingInFrame(frame))
	}
	return chromedp.Run(ctx, chromedp.Poll(expr, res, opts...))
}

// A frame of 10,000 events is drawn at once: the tab is never blocked for
// more than 200 ms, the last line shows, and the page says how many it
// left out. (The page used to lay out once per line: 20 s for this.)
//
// Other processes on the machine can only add to a task's time, so the
// frame is sent up to three times, a new one each time, and the best of
// them must be within the bound.
func TestBrowserBigFrameDoesNotBlock(t *testing.T) {
	const n = 10000
	send := make(chan int)
	url, _ := fakeChat(t, func(ctx context.Context, c *websocket.Conn) {
		if write(ctx, c, helloJSON("lobby", "ada")) != nil {
			return
		}
		for {
			var round int
			select {
			case round = <-send:
			case <-ctx.Done():
				return
			}
			var b strings.Builder
			b.WriteByte('[')
			base := time.Now().UTC()
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"type":"message","id":"%d","time":%q,"room":"lobby","from":"bob-%d","text":"line %d of flood %d, see https://example.com/%d and `+"`code`"+`"}`,
					round*n+i+2, base.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano), i%50, i, round, i)
			}
			b.WriteByte(']')
			if write(ctx, c, b.String()) != nil {
				return
			}
		}
	})
	ctx := browser(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.Evaluate(`window.longest = 0; new PerformanceObserver(function (l) {
			l.getEntries().forEach(function (e) { window.longest = Math.max(window.longest, e.duration); });
		}).observe({type: "longtask"}); true`, nil),
	); err != nil {
		t.Fatal(err)
	}
	var times []float64
	for round := range 3 {
		if err := chromedp.Run(ctx, chromedp.Evaluate(`window.longest = 0; true`, nil)); err != nil {
			t.Fatal(err)
		}
		send <- round
		last := fmt.Sprintf("line %d of flood %d,", n-1, round)
		var longest float64
		var lines, first int
		var skipped string
		err := chromedp.Run(ctx,
			chromedp.WaitVisible(fmt.Sprintf(`//*[@role="log"]//*[contains(text(), %q)]`, last), chromedp.BySearch),
			// Long tasks are reported after they end: give the observer
			// a moment.
			chromedp.Evaluate(`new Promise(function (r) { setTimeout(function () { r(window.longest); }, 500); })`, &longest,
				func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
			chromedp.Evaluate(fmt.Sprintf(`Array.from(document.querySelectorAll('[role="log"] .line .text')).filter(function (e) { return e.textContent.indexOf("of flood %d,") > 0; }).length`, round), &lines),
			chromedp.Evaluate(fmt.Sprintf(`parseInt(Array.from(document.querySelectorAll('[role="log"] .line .text')).filter(function (e) { return e.textContent.indexOf("of flood %d,") > 0; })[0].textContent.split(" ")[1], 10)`, round), &first),
			chromedp.Evaluate(`Array.from(document.querySelectorAll(".line.skipped")).pop().textContent`, &skipped),
		)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d events in one frame: longest task %.0f ms, %d lines drawn, %q", n, longest, lines, skipped)
		// The lines drawn are the last ones, and the note counts the
		// others.
		if want := fmt.Sprintf("%s earlier lines", commas(first)); first != n-lines || lines > 1000 || !strings.HasPrefix(skipped, want) {
			t.Fatalf("%d lines drawn from line %d; note %q, want %q", lines, first, skipped, want)
		}
		times = append(times, longest)
		if longest <= 200 {
			return
		}
	}
	t.Errorf("the tab was blocked for %.0f ms at best (%v), want at most 200", slices.Min(times), times)
}

// commas writes n as the page does, 9,701.
func commas(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// One bad event costs only itself: a non-array names, an invalid time, a
// non-array events, a batch nested 20,000 deep and a history inside a
// batch leave the rest of their frame shown.
func TestBrowserHostileFrames(t *testing.T) {
	url, _ := fakeChat(t, func(ctx context.Context, c *websocket.Conn) {
		deep := strings.Repeat(`{"type":"batch","events":[`, 20000) + `{"type":"message","from":"x","text":"deep inside"}` + strings.Repeat(`]}`, 20000)
		frames := []string{
			helloJSON("lobby", "ada"),
			`[{"type":"presence","room":"lobby","names":"ada","count":1},{"type":"message","from":"bob","text":"after bad names"}]`,
			`[{"type":"message","time":"not a time","from":"bob","text":"with a bad time"},{"type":"batch","events":5},{"type":"message","from":"bob","text":"after a bad batch"}]`,
			`[` + deep + `,{"type":"message","from":"bob","text":"after the deep batch"}]`,
			`[{"type":"batch","from":"bob","events":[{"type":"history","events":[{"type":"message","from":"eve","text":"smuggled"}]},{"type":"message","from":"bob","text":"inside a batch"}]},null,7,"x",[1],{"type":7},{"type":"join","from":{"a":1}},{"type":"message","from":"bob","text":"after the junk"}]`,
		}
		for _, f := range frames {
			if write(ctx, c, f) != nil {
				return
			}
		}
		<-ctx.Done()
	})
	ctx := browser(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(text(), "after the junk")]`, chromedp.BySearch),
	); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := chromedp.Run(ctx, chromedp.Text(`[role="log"]`, &text, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"after bad names", "with a bad time", "after a bad batch", "after the deep batch", "inside a batch"} {
		if !strings.Contains(text, want) {
			t.Errorf("the transcript lacks %q: %q", want, text)
		}
	}
	for _, bad := range []string{"deep inside", "smuggled"} {
		if strings.Contains(text, bad) {
			t.Errorf("the transcript shows %q, from a nested batch or history", bad)
		}
	}
}

// A server that takes the WebSocket and closes it at once with 1013 (full)
// is not retried at once, over and over: the page waits, says so in one
// line that counts down, and adds no line per try.
func TestBrowserNoRetryStormAfter1013(t *testing.T) {
	url, accepted := fakeChat(t, func(ctx context.Context, c *websocket.Conn) {
		c.Close(websocket.StatusTryAgainLater, "too many connections from your address")
	})
	ctx := browser(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(`#status[data-state="offline"]`),
	); err != nil {
		t.Fatal(err)
	}
	// The window a storm would show in: the old page tried again every
	// 0.3-0.6 s.
	time.Sleep(4 * time.Second)
	var outages int
	var status, line string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.querySelectorAll('[role="log"] .line.outage').length`, &outages),
		chromedp.Text(`#status`, &status, chromedp.ByQuery),
		chromedp.Text(`[role="log"] .line.outage`, &line, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if n := accepted.Load(); n > 1 {
		t.Errorf("%d connections in 4 s after a 1013, want 1", n)
	}
	if outages != 1 || !strings.Contains(line, "too many connections from your address") || !strings.Contains(line, "Trying again in") {
		t.Errorf("%d outage lines, %q", outages, line)
	}
	if status = strings.Join(strings.Fields(status), " "); !strings.Contains(status, "retrying in") {
		t.Errorf("status %q", status)
	}
}

// A room in the address that is not a room name never reaches the embed
// snippet: the page joins the default room and fills the snippet from the
// room the server confirmed.
func TestBrowserPoisonedRoomNeverReachesSnippet(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	poison := `"></script><script src=https://evil.example/x.js></script>` + strings.Repeat("a", 3000)
	var notice string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/?room="+urlQueryEscape(poison)),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.Text(`[role="log"] .line.notice`, &notice, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(notice, "is not a room name") {
		t.Errorf("first notice %q", notice)
	}
	for _, kind := range []string{"script", "sri", "iframe"} {
		var snippet string
		if err := chromedp.Run(ctx,
			chromedp.Evaluate(fmt.Sprintf(`document.querySelector('input[name="snippet-kind"][value=%q]').click(); document.getElementById("snippet").value`, kind), &snippet),
		); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(snippet, "evil") || strings.Contains(snippet, "aaaa") || !strings.Contains(snippet, "room=lobby") && !strings.Contains(snippet, `data-room="lobby"`) {
			t.Errorf("%s snippet: %q", kind, snippet)
		}
	}
}

// urlQueryEscape escapes s for a query, as a browser's address bar would.
func urlQueryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", `"`, "%22", "<", "%3C", ">", "%3E", "#", "%23", "&", "%26", "+", "%2B")
	return r.Replace(s)
}

// Links are anchors that open apart from the page and tell it nothing;
// only http(s) makes one; `code` is code, and a URL in it stays text.
func TestBrowserLinksAndCode(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
	); err != nil {
		t.Fatal(err)
	}
	tel.send("read https://example.com/a_(b)?x=1&y=2. then javascript:alert(1) or JAVASCRIPT://x.example/%0aalert(1), data:text/html,hi and `go test https://not.a.link` then done")
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`//*[@role="log"]//*[contains(., "then done")]`, chromedp.BySearch)); err != nil {
		t.Fatal(err)
	}
	var links []map[string]string
	var code string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`Array.from(document.querySelectorAll('[role="log"] a')).map(function (a) {
			return {href: a.getAttribute("href"), rel: a.rel, target: a.target, text: a.textContent};
		})`, &links),
		chromedp.Text(`[role="log"] code`, &code, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"href": "https://example.com/a_(b)?x=1&y=2", "rel": "noopener noreferrer nofollow ugc", "target": "_blank", "text": "https://example.com/a_(b)?x=1&y=2"}
	if len(links) != 1 || fmt.Sprint(links[0]) != fmt.Sprint(want) {
		t.Errorf("links = %v, want only %v", links, want)
	}
	if code != "go test https://not.a.link" {
		t.Errorf("code = %q", code)
	}
}

// Shift+Enter starts a new line; Enter sends both, which telnet gets as two
// lines and the page shows as one entry; a fenced block is code.
func TestBrowserMultiLineMessage(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	shift := chromedp.KeyModifiers(input.ModifierShift)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.Click(`[name="message"]`, chromedp.ByQuery),
		chromedp.KeyEvent("first line"),
		chromedp.KeyEvent(kb.Enter, shift),
		chromedp.KeyEvent("second line"),
		chromedp.KeyEvent(kb.Enter),
	); err != nil {
		t.Fatal(err)
	}
	first := tel.expect("first line")
	second := tel.next()
	if !strings.HasSuffix(first, "> first line") || !strings.HasSuffix(second, "> second line") || first[:strings.Index(first, ">")] != second[:strings.Index(second, ">")] {
		t.Fatalf("telnet got %q then %q", first, second)
	}
	var entry, box string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(@class, "mine")]//*[contains(., "second line")]`, chromedp.BySearch),
		chromedp.Text(`[role="log"] .line.mine .text`, &entry, chromedp.ByQuery),
		chromedp.Value(`[name="message"]`, &box, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if entry != "first line\nsecond line" || box != "" {
		t.Fatalf("entry %q, box %q", entry, box)
	}

	if err := chromedp.Run(ctx,
		chromedp.KeyEvent("```"), chromedp.KeyEvent(kb.Enter, shift),
		chromedp.KeyEvent("go vet ./..."), chromedp.KeyEvent(kb.Enter, shift),
		chromedp.KeyEvent("```"), chromedp.KeyEvent(kb.Enter),
	); err != nil {
		t.Fatal(err)
	}
	var pre string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`[role="log"] pre code`, chromedp.ByQuery),
		chromedp.Text(`[role="log"] pre code`, &pre, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if pre != "go vet ./..." {
		t.Fatalf("code block %q", pre)
	}

	// The room's history keeps the lines one by one; a newcomer still
	// sees each message in one piece.
	var entries []string
	if err := chromedp.Run(ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(@class, "divider")][contains(., "Now")]`, chromedp.BySearch),
		chromedp.Evaluate(`Array.from(document.querySelectorAll('[role="log"] .line .text')).map(function (e) { return e.textContent; })`, &entries),
	); err != nil {
		t.Fatal(err)
	}
	var lines, blocks int
	for _, e := range entries {
		if strings.Contains(e, "second line") {
			lines++
			if e != "first line\nsecond line" {
				t.Errorf("from the history: %q", e)
			}
		}
		if strings.Contains(e, "go vet") {
			blocks++
		}
	}
	if lines != 1 || blocks != 1 {
		t.Fatalf("from the history: %d entries with the two lines, %d with the block: %q", lines, blocks, entries)
	}
}

// A line the server refuses stays in the box, with the reason beside it.
func TestBrowserRefusedLineStaysInTheBox(t *testing.T) {
	st := start(t, tcpserver.HubConfig{MaxLine: 20}, Config{})
	ctx := browser(t)
	long := strings.Repeat("x", 30)
	var box, why string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.SendKeys(`[name="message"]`, "/nick "+long+"\r", chromedp.ByQuery),
		chromedp.WaitVisible(`#send-error:not(:empty)`, chromedp.ByQuery),
		chromedp.Value(`[name="message"]`, &box, chromedp.ByQuery),
		chromedp.Text(`#send-error`, &why, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if box != "/nick "+long || !strings.HasPrefix(why, "Not sent: ") {
		t.Fatalf("box %q, error %q", box, why)
	}
}

// Scrolled up, new lines do not move the transcript: a marker shows where
// they start and a button jumps to them; sending a line scrolls to it.
func TestBrowserNewMessagesMarker(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: -1}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
	); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		tel.send(fmt.Sprintf("filler %d", i))
	}
	var top float64
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(text(), "filler 59")]`, chromedp.BySearch),
		chromedp.Evaluate(`var t = document.getElementById("transcript"); t.scrollTop = 0; t.dispatchEvent(new Event("scroll")); t.scrollTop`, &top),
	); err != nil {
		t.Fatal(err)
	}
	tel.send("while you were up there")
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`#jump`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	tel.send("and another")
	var jump string
	var after float64
	var markerBefore bool
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`#jump`, chromedp.ByQuery),
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(text(), "and another")]`, chromedp.BySearch),
		chromedp.Text(`#jump`, &jump, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("transcript").scrollTop`, &after),
		chromedp.Evaluate(`(function () {
			var m = document.querySelector(".line.marker");
			return !!m && m.nextElementSibling.textContent.indexOf("while you were up there") >= 0;
		})()`, &markerBefore),
	); err != nil {
		t.Fatal(err)
	}
	if after != top || !markerBefore || !strings.Contains(jump, "2 new messages") {
		t.Fatalf("scrollTop %v then %v, marker before the new lines: %v, button %q", top, after, markerBefore, jump)
	}
	var atEnd bool
	if err := chromedp.Run(ctx,
		chromedp.Click(`#jump`, chromedp.ByQuery),
		chromedp.WaitNotVisible(`#jump`, chromedp.ByQuery),
		chromedp.Evaluate(`var t = document.getElementById("transcript"); t.scrollHeight - t.scrollTop - t.clientHeight < 2`, &atEnd),
	); err != nil {
		t.Fatal(err)
	}
	if !atEnd {
		t.Fatal("the button did not scroll to the end")
	}
	// Up again; a line of one's own brings the transcript down to it.
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`var t = document.getElementById("transcript"); t.scrollTop = 0; t.dispatchEvent(new Event("scroll")); true`, nil),
		chromedp.SendKeys(`[name="message"]`, "my own line\r", chromedp.ByQuery),
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(@class, "mine")]//*[contains(text(), "my own line")]`, chromedp.BySearch),
		chromedp.Poll(`(function () { var t = document.getElementById("transcript"); return t.scrollHeight - t.scrollTop - t.clientHeight < 2; })()`, &atEnd,
			chromedp.WithPollingTimeout(5*time.Second)),
	); err != nil {
		t.Fatalf("sending did not scroll to the line: %v", err)
	}
}

// docsPage serves a page of "docs" on another origin, with the given
// HTML in its body, and records in window.got every message an embed
// posts to it.
func docsPage(t *testing.T, body string) string {
	t.Helper()
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Docs</title>
<script>window.got = []; window.addEventListener("message", function (e) {
  if (e.data && e.data.source === "chatbridge") window.got.push({origin: e.origin, data: e.data});
});</script></head><body><main><h1>Some docs</h1><p>Text of the docs.</p>%s<p>after the chat</p></main></body></html>`, body)
	}))
	t.Cleanup(docs.Close)
	return docs.URL
}

// frameNode returns the embed's iframe on a docsPage, once the chat in it
// has said it is ready: a node taken before the iframe has loaded would
// hold its first, empty document.
func frameNode(t *testing.T, ctx context.Context) *cdp.Node {
	t.Helper()
	var frames []*cdp.Node
	var ready bool
	if err := chromedp.Run(ctx,
		chromedp.Poll(`window.got.some(function (m) { return m.data.type === "ready"; })`, &ready, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.WaitReady(`iframe.chatbridge-embed`, chromedp.ByQuery),
		chromedp.Nodes(`iframe.chatbridge-embed`, &frames, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	return frames[0]
}

// setScheme makes the browser's preferred colour scheme light or dark.
func setScheme(scheme string) chromedp.Action {
	return emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}})
}

// data-theme wins over the reader's scheme, either way; auto follows it;
// data-accent colours the buttons; the iframe's border is a class's.
func TestBrowserEmbedTheme(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tests := []struct {
		scheme, attrs, wantBG string
	}{
		{"light", `data-theme="dark"`, "rgb(15, 17, 21)"},
		{"dark", `data-theme="light"`, "rgb(244, 245, 247)"},
		{"dark", ``, "rgb(15, 17, 21)"},
		{"light", `data-theme="auto" data-accent="#aa3300"`, "rgb(244, 245, 247)"},
	}
	for _, tt := range tests {
		docs := docsPage(t, fmt.Sprintf(`<script src="%s/embed.js" data-room="docs" %s></script>`, st.httpURL, tt.attrs))
		if err := chromedp.Run(ctx, setScheme(tt.scheme), chromedp.Navigate(docs)); err != nil {
			t.Fatal(err)
		}
		f := frameNode(t, ctx)
		var bg, button, inline, border string
		if err := chromedp.Run(ctx, chromedp.WaitVisible(`#status[data-state="online"]`, chromedp.ByQuery, chromedp.FromNode(f))); err != nil {
			t.Fatal(err)
		}
		if err := evalIn(ctx, f, `getComputedStyle(document.body).backgroundColor`, &bg); err != nil {
			t.Fatal(err)
		}
		if err := evalIn(ctx, f, `getComputedStyle(document.querySelector("#send-form button")).backgroundColor`, &button); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Run(ctx,
			chromedp.Evaluate(`String(document.querySelector("iframe.chatbridge-embed").getAttribute("style"))`, &inline),
			chromedp.Evaluate(`getComputedStyle(document.querySelector("iframe.chatbridge-embed")).borderTopStyle`, &border),
		); err != nil {
			t.Fatal(err)
		}
		if bg != tt.wantBG {
			t.Errorf("%s scheme, %s: background %s, want %s", tt.scheme, tt.attrs, bg, tt.wantBG)
		}
		if strings.Contains(tt.attrs, "accent") && button != "rgb(170, 51, 0)" {
			t.Errorf("accent: button %s", button)
		}
		if inline != "null" || border != "solid" {
			t.Errorf("iframe style attribute %q, border %q", inline, border)
		}
	}
}

// The launcher is a button that opens the chat as a panel and closes it
// again (button or Escape); while closed, the page around it is told of
// unread lines and mentions, from the chat's origin; the embed acts on
// no message the page sends it.
func TestBrowserLauncherAndMessagesToTheHost(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	tel.send("/join docs")
	tel.expect("You are now in docs")
	docs := docsPage(t, fmt.Sprintf(`<script src="%s/embed.js" data-room="docs" data-mode="launcher"></script>`, st.httpURL))
	if err := chromedp.Run(ctx, chromedp.Navigate(docs)); err != nil {
		t.Fatal(err)
	}
	f := frameNode(t, ctx)
	var me string
	if err := evalIn(ctx, f, `document.getElementById("status").dataset.state === "online" && document.getElementById("nick").value`, &me); err != nil {
		t.Fatal(err)
	}
	tel.expect(me + " joined")

	// The page asks the embed to act for its reader; it must not.
	if err := chromedp.Run(ctx, chromedp.Evaluate(`var w = document.querySelector("iframe.chatbridge-embed").contentWindow;
		[{source: "chatbridge", type: "message", text: "said by the host"}, {type: "command", text: "/nick hijacked"}, "/quit"].forEach(function (m) { w.postMessage(m, "*"); });
		true`, nil)); err != nil {
		t.Fatal(err)
	}

	tel.send("something while the chat is closed")
	tel.send("hello " + me + ", a question for you")
	var got []struct {
		Origin string
		Data   map[string]any
	}
	if err := chromedp.Run(ctx, chromedp.Poll(`window.got.filter(function (m) { return m.data.type === "mention"; }).length > 0 && window.got`, &got,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("no mention posted: %v", err)
	}
	var ready, unread, mention bool
	for _, m := range got {
		if m.Origin != st.httpURL {
			t.Errorf("a message from %q", m.Origin)
		}
		switch m.Data["type"] {
		case "ready":
			ready = m.Data["room"] == "docs"
		case "unread":
			n, _ := m.Data["count"].(float64)
			unread = unread || n >= 1
		case "mention":
			mention = m.Data["from"] == tel.name && m.Data["room"] == "docs"
		}
	}
	if !ready || !unread || !mention {
		t.Errorf("ready %v, unread 1 %v, mention %v: %v", ready, unread, mention, got)
	}
	var badge, expanded string
	var ok bool
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`.chatbridge-badge`, chromedp.ByQuery),
		chromedp.Text(`.chatbridge-badge`, &badge, chromedp.ByQuery),
		chromedp.WaitNotVisible(`.chatbridge-panel`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if badge != "2" {
		t.Errorf("badge %q", badge)
	}
	// Open: the panel shows, the count goes.
	if err := chromedp.Run(ctx,
		chromedp.Click(`.chatbridge-launcher`, chromedp.ByQuery),
		chromedp.WaitVisible(`.chatbridge-panel iframe`, chromedp.ByQuery),
		chromedp.WaitNotVisible(`.chatbridge-badge`, chromedp.ByQuery),
		chromedp.AttributeValue(`.chatbridge-launcher`, "aria-expanded", &expanded, &ok, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if expanded != "true" {
		t.Errorf("aria-expanded %q when open", expanded)
	}
	// Nothing the host posted was said: the first line telnet gets from
	// the embed is the one typed in it.
	if err := chromedp.Run(ctx, chromedp.SendKeys(`[name="message"]`, "typed in the embed\r", chromedp.ByQuery, chromedp.FromNode(f))); err != nil {
		t.Fatal(err)
	}
	if l := tel.next(); !strings.HasSuffix(l, "> typed in the embed") {
		t.Fatalf("telnet got %q first", l)
	}
	// Escape in the chat closes the panel, and the focus goes back to
	// the button.
	var focused bool
	if err := chromedp.Run(ctx,
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotVisible(`.chatbridge-panel`, chromedp.ByQuery),
		chromedp.Evaluate(`document.activeElement === document.querySelector(".chatbridge-launcher")`, &focused),
		chromedp.AttributeValue(`.chatbridge-launcher`, "aria-expanded", &expanded, &ok, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !focused || expanded != "false" {
		t.Errorf("after Escape: focus on the button %v, aria-expanded %q", focused, expanded)
	}
	// And the button opens and closes it too.
	if err := chromedp.Run(ctx,
		chromedp.Click(`.chatbridge-launcher`, chromedp.ByQuery),
		chromedp.WaitVisible(`.chatbridge-panel iframe`, chromedp.ByQuery),
		chromedp.Click(`.chatbridge-launcher`, chromedp.ByQuery),
		chromedp.WaitNotVisible(`.chatbridge-panel`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
}

// A docs page that loads the versioned embed.js with the integrity the
// home page offers gets the chat: the browser checked the hash against
// the bytes the server sent.
func TestBrowserEmbedWithIntegrity(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	path, integrity := web.EmbedScript()
	ctx := browser(t)
	var snippet string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/?room=docs"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.Evaluate(`document.querySelector('input[name="snippet-kind"][value="sri"]').click(); document.getElementById("snippet").value`, &snippet),
	); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`<script src="%s%s" integrity="%s" crossorigin="anonymous" data-room="docs" data-height="400"></script>`, st.httpURL, path, integrity)
	if snippet != want {
		t.Fatalf("snippet %q\nwant    %q", snippet, want)
	}
	docs := docsPage(t, snippet)
	if err := chromedp.Run(ctx, chromedp.Navigate(docs)); err != nil {
		t.Fatal(err)
	}
	f := frameNode(t, ctx)
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`#status[data-state="online"]`, chromedp.ByQuery, chromedp.FromNode(f))); err != nil {
		t.Fatal(err)
	}

	// A wrong hash: the browser refuses the script, and no chat appears.
	bad := strings.Replace(snippet, integrity, "sha384-"+strings.Repeat("A", 64), 1)
	docs = docsPage(t, bad+`<p id="end">end</p>`)
	var n int
	if err := chromedp.Run(ctx,
		chromedp.Navigate(docs),
		chromedp.WaitReady(`#end`, chromedp.ByQuery),
		chromedp.Evaluate(`new Promise(function (r) { setTimeout(function () { r(document.querySelectorAll("iframe").length); }, 300); })`, &n,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
	); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a script with the wrong integrity ran")
	}
}

// On a phone the bar is one line and the transcript has the rest; the
// menu opens from the keyboard, shows where the focus is, and Escape
// closes it and gives the focus back.
func TestBrowserPhoneLayoutAndKeyboard(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile),
		chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
	); err != nil {
		t.Fatal(err)
	}
	tel.send("hello from a phone's point of view, in a line long enough to wrap on a screen this narrow, twice or more")
	var transcriptH, viewH float64
	var aligned bool
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(text(), "phone's point")]`, chromedp.BySearch),
		// Wrapped lines line up with the text, not under the time.
		chromedp.Evaluate(`(function () {
			var line = Array.from(document.querySelectorAll('[role="log"] .line')).pop();
			var time = line.querySelector("time").getBoundingClientRect();
			var starts = {}; // the left of each line of the text
			Array.from(line.querySelector(".text").getClientRects()).forEach(function (r) {
				var top = Math.round(r.top);
				starts[top] = Math.min(starts[top] === undefined ? Infinity : starts[top], Math.round(r.left));
			});
			var lefts = Object.keys(starts).sort(function (a, b) { return a - b; }).map(function (k) { return starts[k]; });
			return lefts.length >= 3 && lefts.every(function (l) { return l > time.right; }) && lefts.slice(1).every(function (l) { return l === lefts[1]; });
		})()`, &aligned),
		chromedp.Evaluate(`document.getElementById("transcript").getBoundingClientRect().height`, &transcriptH),
		chromedp.Evaluate(`window.innerHeight`, &viewH),
	); err != nil {
		t.Fatal(err)
	}
	if transcriptH < 0.75*viewH {
		t.Errorf("the transcript has %.0f of %.0f px", transcriptH, viewH)
	}
	if !aligned {
		t.Error("a wrapped line does not line up with its text")
	}

	// Tab to the menu button.
	var focused string
	for range 8 {
		if err := chromedp.Run(ctx, chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(`document.activeElement.id`, &focused)); err != nil {
			t.Fatal(err)
		}
		if focused == "menu-button" {
			break
		}
	}
	if focused != "menu-button" {
		t.Fatalf("Tab never reached the menu button (at %q)", focused)
	}
	var outline string
	var inMenu bool
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`getComputedStyle(document.activeElement).outlineStyle`, &outline),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`#menu`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("menu").contains(document.activeElement)`, &inMenu),
	); err != nil {
		t.Fatal(err)
	}
	if outline == "none" || !inMenu {
		t.Fatalf("focus outline %q, focus in the open menu %v", outline, inMenu)
	}
	var expanded string
	var ok bool
	if err := chromedp.Run(ctx,
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotVisible(`#menu`, chromedp.ByQuery),
		chromedp.Evaluate(`document.activeElement.id`, &focused),
		chromedp.AttributeValue(`#menu-button`, "aria-expanded", &expanded, &ok, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if focused != "menu-button" || expanded != "false" {
		t.Fatalf("after Escape: focus on %q, aria-expanded %q", focused, expanded)
	}
}

// next returns the next line the telnet client gets.
func (c *tcpClient) next() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("tcp %s: waiting for a line: %v", c.name, err)
	}
	return strings.TrimRight(line, "\r\n")
}

// A JSON message written on several lines is said as one batch, its lines
// in order: the page shows it in one piece, and telnet gets its lines.
func TestMultiLineMessageIsOneBatch(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	alice := st.jsonClient(t, "nick=alice")
	bob := st.jsonClient(t, "nick=bob")
	tel := st.telnet(t)
	alice.expectEvent("join", func(e event) bool { return e.From == tel.name })
	bob.expectEvent("join", func(e event) bool { return e.From == tel.name })
	alice.send(`{"type":"message","text":"one\ntwo\r\nthree"}`)
	ev := bob.expectEvent("batch", nil)
	var got []string
	for _, e := range ev.Events {
		if e.Type != "message" || e.From != "alice" {
			t.Fatalf("in the batch: %+v", e)
		}
		got = append(got, e.Text)
	}
	if ev.From != "alice" || strings.Join(got, "|") != "one|two|three" {
		t.Fatalf("batch from %q: %q", ev.From, got)
	}
	tel.expect("<alice> one")
	for _, want := range []string{"<alice> two", "<alice> three"} {
		if l := tel.next(); l != want {
			t.Fatalf("telnet got %q, want %q", l, want)
		}
	}
}

// TestBrowserScreenshots makes the README's pictures of a conversation
// (CHATBRIDGE_SHOTS=$PWD/web/shots go test -run TestBrowserScreenshots
// ./bridge), checking on the way what each shows: the page just after
// joining a room with yesterday's lines, the desktop page with the room
// beside the transcript, a phone where the transcript has most of the
// screen, the dark scheme, and the launcher open on a docs page.
func TestBrowserScreenshots(t *testing.T) {
	// Yesterday in the room, and two lines before that for "Load
	// earlier" to fetch.
	yesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-24*time.Hour + 15*time.Hour)
	store := &pastStore{}
	for i, l := range [][2]string{
		{"cleo", "morning all"}, {"cleo", "is there a channel for the SDK?"},
		{"ada", "does the history survive a restart yet?"},
		{"bob", "not yet: 20 lines a room, in memory. issue #13 is about that"},
		{"ada", "ok, watching it"},
		{"dev", "how do I run only the browser tests?"},
		{"bob", "`go test -run TestBrowser ./bridge`"},
		{"dev", "thanks, and they need chromium?"},
		{"bob", "yes, apt-get install chromium; they skip without it unless CI is set"},
		{"dev", "perfect"},
		{"ada", "the embed is live on the docs site: https://example.com/docs"},
		{"cleo", "looks great in dark mode too"},
		{"ada", "see you tomorrow"},
		{"bob", "bye!"},
	} {
		at := yesterday.Add(time.Duration(i*7) * time.Minute)
		store.lines = append(store.lines, &tcpserver.Event{ID: uint64(at.UnixMicro()), Kind: tcpserver.KindMessage,
			Time: at, Room: "lobby", From: l[0], Text: l[1]})
	}
	st := start(t, tcpserver.HubConfig{ChangeBurst: -1, History: 12, Store: store}, Config{})
	ctx := browser(t)
	ada := st.telnet(t)
	ada.send("/nick ada")
	ada.expect("now known as ada")
	bob := st.telnet(t)
	bob.send("/nick bob")
	bob.expect("now known as bob")
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(1000, 620),
		chromedp.Navigate(st.httpURL+"/"),
		chromedp.Evaluate(`localStorage.setItem("chatbridge.nick", "sam"); true`, nil),
		chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.WaitVisible(`#earlier`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "scrollback.png")
	ada.expect("sam joined")
	say := func(keys ...string) {
		t.Helper()
		acts := []chromedp.Action{chromedp.Click(`[name="message"]`, chromedp.ByQuery)}
		for i, k := range keys {
			if i > 0 {
				acts = append(acts, chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(input.ModifierShift)))
			}
			acts = append(acts, chromedp.KeyEvent(k))
		}
		acts = append(acts, chromedp.KeyEvent(kb.Enter))
		if err := chromedp.Run(ctx, acts...); err != nil {
			t.Fatal(err)
		}
		ada.expect("<sam> " + keys[len(keys)-1])
	}
	ada.send("has anyone tried the new `--embed-origins` check?")
	bob.expect("has anyone")
	say("yes: it refuses anything that is not an origin, see https://example.com/docs/embedding")
	bob.send("/me is reading the README")
	ada.expect("reading the README")
	ada.send("sam: thanks! and the launcher?")
	bob.expect("and the launcher")
	say("```", `<script src="https://chat.example/embed.js"`, `        data-room="docs" data-mode="launcher"></script>`, "```")
	bob.send("/msg sam nice, that is what our docs need")
	bob.expect("-> *sam*")
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`[role="log"] .line.private`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}

	var side, chat float64
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.getElementById("menu").getBoundingClientRect().left`, &side),
		chromedp.Evaluate(`document.getElementById("transcript").getBoundingClientRect().right`, &chat),
	); err != nil {
		t.Fatal(err)
	}
	if side < chat {
		t.Errorf("desktop: the room details (left %.0f) are not beside the transcript (right %.0f)", side, chat)
	}
	shot(t, ctx, "desktop.png")

	var bg string
	if err := chromedp.Run(ctx,
		setScheme("dark"),
		chromedp.Evaluate(`getComputedStyle(document.body).backgroundColor`, &bg),
	); err != nil {
		t.Fatal(err)
	}
	if bg != "rgb(15, 17, 21)" {
		t.Errorf("dark: background %s", bg)
	}
	shot(t, ctx, "dark.png")

	var transcriptH float64
	if err := chromedp.Run(ctx,
		setScheme("light"),
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile),
		chromedp.Evaluate(`document.getElementById("transcript").getBoundingClientRect().height`, &transcriptH),
	); err != nil {
		t.Fatal(err)
	}
	if transcriptH < 0.75*844 {
		t.Errorf("phone: the transcript has %.0f of 844 px", transcriptH)
	}
	shot(t, ctx, "phone.png")

	docs := docsPage(t, fmt.Sprintf(`<p>Questions? Ask in the chat: the button in the corner.</p><script src="%s/embed.js" data-room="lobby" data-mode="launcher"></script>`, st.httpURL))
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(900, 640),
		chromedp.Navigate(docs),
	); err != nil {
		t.Fatal(err)
	}
	frameNode(t, ctx)
	bob.send("welcome to the docs chat")
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`.chatbridge-badge`, chromedp.ByQuery),
		chromedp.Click(`.chatbridge-launcher`, chromedp.ByQuery),
		chromedp.WaitVisible(`.chatbridge-panel iframe`, chromedp.ByQuery),
		chromedp.WaitNotVisible(`.chatbridge-badge`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "launcher.png")
}

// The embed minds its host: it does not take the focus on load, does not
// tell docs readers about /help, offers to rejoin after /quit, and with
// data-height="auto" grows with its lines up to data-max-height.
func TestBrowserEmbedManners(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: -1}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	docs := docsPage(t, fmt.Sprintf(`<p><input id="search" aria-label="Search"></p><script src="%s/embed.js" data-height="auto" data-max-height="500"></script>`, st.httpURL))
	if err := chromedp.Run(ctx, chromedp.Navigate(docs)); err != nil {
		t.Fatal(err)
	}
	f := frameNode(t, ctx)
	in := chromedp.FromNode(f)
	var active, welcome string
	var h0 int
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`#status[data-state="online"]`, chromedp.ByQuery, in),
		chromedp.Evaluate(`document.activeElement.tagName`, &active),
		chromedp.Text(`[role="log"] .line.notice`, &welcome, chromedp.ByQuery, in),
		chromedp.Evaluate(`document.querySelector("iframe.chatbridge-embed").getBoundingClientRect().height`, &h0),
	); err != nil {
		t.Fatal(err)
	}
	if active != "BODY" {
		t.Errorf("after load the focus is on %s", active)
	}
	if strings.Contains(welcome, "/help") || !strings.Contains(welcome, "Welcome") {
		t.Errorf("the embed's welcome: %q", welcome)
	}

	// Lines make it grow, up to its maximum.
	for i := range 40 {
		tel.send(fmt.Sprintf("line %d for the height", i))
	}
	var h1 int
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(text(), "line 39 for the height")]`, chromedp.BySearch, in),
		chromedp.Poll(`document.querySelector("iframe.chatbridge-embed").height === "500" && 500`, &h1, chromedp.WithPollingTimeout(5*time.Second)),
	); err != nil {
		t.Fatalf("the iframe did not grow to 500 px from %d: %v", h0, err)
	}
	if h0 >= 400 {
		t.Errorf("an almost empty chat was %d px tall", h0)
	}

	// /quit: a button to rejoin, which does.
	if err := chromedp.Run(ctx,
		chromedp.SendKeys(`[name="message"]`, "/quit\r", chromedp.ByQuery, in),
		chromedp.WaitVisible(`button.rejoin`, chromedp.ByQuery, in),
		chromedp.Click(`button.rejoin`, chromedp.ByQuery, in),
		chromedp.WaitVisible(`#status[data-state="online"]`, chromedp.ByQuery, in),
	); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := chromedp.Run(ctx, chromedp.Text(`[role="log"]`, &text, chromedp.ByQuery, in)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "Reload") {
		t.Errorf("the embed says to reload: %q", text)
	}
}

// While its tab is hidden, the page counts in its title the lines the
// reader has not seen, and a line naming the reader is highlighted; back
// on the tab, the count goes.
func TestBrowserUnreadTitleAndMentions(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	var me string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.Value(`#nick`, &me, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	// Another tab in front hides this one. (A hidden tab runs no
	// animation frames: the polls below use a timer.)
	other, cancel := chromedp.NewContext(ctx)
	defer cancel()
	if err := chromedp.Run(other, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(other, target.ActivateTarget(chromedp.FromContext(other).Target.TargetID)); err != nil {
		t.Fatal(err)
	}
	var hidden bool
	if err := chromedp.Run(ctx, chromedp.Poll(`document.hidden`, &hidden, chromedp.WithPollingTimeout(5*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("the page's tab is not hidden: %v", err)
	}
	tel.send("a line you have not seen")
	tel.send("and one for you, " + strings.ToUpper(me) + ".")
	var title string
	if err := chromedp.Run(ctx, chromedp.Poll(`document.title.indexOf("(2) ") === 0 && document.title`, &title, chromedp.WithPollingTimeout(5*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		var now string
		chromedp.Run(ctx, chromedp.Title(&now))
		t.Fatalf("title %q while hidden: %v", now, err)
	}
	if title != "(2) #lobby · chatbridge" {
		t.Errorf("title %q", title)
	}
	var mentions []string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`Array.from(document.querySelectorAll('[role="log"] .line.mention .text')).map(function (e) { return e.textContent; })`, &mentions),
	); err != nil {
		t.Fatal(err)
	}
	if len(mentions) != 1 || !strings.Contains(mentions[0], "and one for you") {
		t.Errorf("highlighted: %q", mentions)
	}
	if err := chromedp.Run(ctx,
		target.ActivateTarget(chromedp.FromContext(ctx).Target.TargetID),
		chromedp.Poll(`document.title === "#lobby · chatbridge"`, nil, chromedp.WithPollingTimeout(5*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)),
	); err != nil {
		var now string
		chromedp.Run(ctx, chromedp.Title(&now))
		t.Fatalf("title %q back on the tab: %v", now, err)
	}
}
