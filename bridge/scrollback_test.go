package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// The page's scrollback: "Load earlier" and scrolling to the top.

// scrollJS gives the tests a look at the transcript as the reader sees it.
const scrollJS = `window.cb = {
	t: document.getElementById("transcript"),
	// first is the first line in view (a day divider is not one): its
	// text and how far below the transcript's top it is.
	first: function () {
		var top = cb.t.getBoundingClientRect().top;
		var lines = cb.t.querySelectorAll(".line:not(.day)");
		for (var i = 0; i < lines.length; i++) {
			var r = lines[i].getBoundingClientRect();
			if (r.bottom > top) return {text: lines[i].textContent, top: r.top - top};
		}
		return null;
	},
	// at is where the line of text is now, as first measures it.
	at: function (text) {
		var lines = cb.t.querySelectorAll(".line");
		for (var i = 0; i < lines.length; i++) {
			if (lines[i].textContent === text) return lines[i].getBoundingClientRect().top - cb.t.getBoundingClientRect().top;
		}
		return -1e9;
	},
	// old is the text of every line "old line N", in order.
	old: function () {
		return Array.from(cb.t.querySelectorAll(".line .text")).map(function (e) { return e.textContent; })
			.filter(function (s) { return /^old line \d+$/.test(s); });
	},
	// up scrolls to the top and returns the line first in view there,
	// before the scroll event that asks for earlier lines (in one task:
	// their answer cannot come in between).
	up: function () {
		cb.t.scrollTop = 0;
		var f = cb.first();
		cb.t.dispatchEvent(new Event("scroll"));
		return f;
	},
};
true`

// firstLine is what cb.first returns.
type firstLine struct {
	Text string  `json:"text"`
	Top  float64 `json:"top"`
}

// stays checks that the line first in view before is where it was (the
// lines that came above it may now show above it).
func stays(t *testing.T, ctx context.Context, before firstLine, what string) {
	t.Helper()
	var now float64
	if err := chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`cb.at(%q)`, before.Text), &now)); err != nil {
		t.Fatal(err)
	}
	if d := now - before.Top; d > 1 || d < -1 {
		t.Fatalf("%s: the line first in view (%q at %.1f px) is now at %.1f px", what, before.Text, before.Top, now)
	}
}

// checkOld checks that the transcript shows old lines from..to, in order,
// each once.
func checkOld(t *testing.T, ctx context.Context, from, to int) {
	t.Helper()
	var got []string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`cb.old()`, &got)); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := from; i <= to; i++ {
		want = append(want, fmt.Sprintf("old line %d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the transcript shows %d old lines, want %d..%d in order, once each:\n%q", len(got), from, to, got)
	}
}

// axeClean runs axe-core on the page as it is, when AXE_CORE_JS names it
// (under CI TestBrowserAccessibility makes sure it does), and fails on
// anything it finds.
func axeClean(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	if os.Getenv("AXE_CORE_JS") == "" {
		return
	}
	for _, v := range runAxe(t, ctx, axeSource(t)) {
		t.Errorf("%s: %s (%s): %s\n\t%s", what, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
	}
}

// historyRequest is what the page asks the server for.
type historyRequest struct {
	Type   string `json:"type"`
	Before string `json:"before"`
	Limit  int    `json:"limit"`
}

// The page asks for one page at a time, whatever the reader does; an
// error is shown where it was asked, not as a line of the chat, and only
// the reader asks again (scrolling up does not); lines come above without
// moving the one first in view, in order, and at the start a note
// replaces the button. The server here is a fake one that answers as the
// reader's server would, or with an error when the test says.
func TestBrowserLoadEarlierOneAtATime(t *testing.T) {
	const n = 200
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	line := func(i int) string {
		return fmt.Sprintf(`{"type":"message","id":"%d","time":%q,"room":"lobby","from":"bob-%d","text":"old line %d"}`,
			i, base.Add(time.Duration(i)*time.Minute).UTC().Format(time.RFC3339Nano), i%3, i)
	}
	lines := func(from, to int) string {
		var b []string
		for i := from; i <= to; i++ {
			b = append(b, line(i))
		}
		return strings.Join(b, ",")
	}
	asked := make(chan historyRequest, 10)
	answer := make(chan string)
	url, _ := fakeChat(t, func(ctx context.Context, c *websocket.Conn) {
		for _, f := range []string{
			helloJSON("lobby", "ada"),
			`{"type":"history","room":"lobby","more":true,"events":[` + lines(n-19, n) + `]}`,
			`{"type":"presence","room":"lobby","names":["ada"],"count":1}`,
		} {
			if write(ctx, c, f) != nil {
				return
			}
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var r historyRequest
			if json.Unmarshal(b, &r) != nil || r.Type != "history" {
				continue
			}
			asked <- r
			select {
			case a := <-answer:
				if write(ctx, c, a) != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	})
	next := func() historyRequest {
		t.Helper()
		select {
		case r := <-asked:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("the page asked for no earlier lines")
		}
		return historyRequest{}
	}

	ctx := browser(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(url+"/?room=lobby"),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 200"]`, chromedp.BySearch),
		chromedp.WaitVisible(`#earlier`, chromedp.ByQuery),
		chromedp.Evaluate(scrollJS, nil),
	); err != nil {
		t.Fatal(err)
	}
	checkOld(t, ctx, 181, 200)
	var first string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector('[role="log"] button, [role="log"] a, [role="log"] [tabindex]').id`, &first)); err != nil {
		t.Fatal(err)
	}
	if first != "earlier" {
		t.Errorf("the first control in the log is #%s, want the Load earlier button", first)
	}
	axeClean(t, ctx, "with the button")

	// Two clicks and a scroll to the top, one request.
	if err := chromedp.Run(ctx, chromedp.Evaluate(`cb.t.scrollTop = cb.t.scrollHeight; cb.t.dispatchEvent(new Event("scroll"));
		var b = document.getElementById("earlier"); b.click(); b.click(); cb.up()`, nil)); err != nil {
		t.Fatal(err)
	}
	if r := next(); r.Before != "181" || r.Limit != 50 {
		t.Fatalf("the page asked for %+v, want 50 before 181", r)
	}
	answer <- `{"type":"error","text":"too many history requests: wait a moment"}`
	var note, button string
	var errorLines int
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`#earlier-note.failed`, chromedp.ByQuery),
		chromedp.Text(`#earlier-note`, &note, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('[role="log"] .line.error').length`, &errorLines),
		// Scrolling up after a failure does not ask again.
		chromedp.Evaluate(`cb.up()`, nil),
		chromedp.Text(`#earlier`, &button, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "too many history requests") || errorLines != 0 || button != "Try again" {
		t.Fatalf("after an error: note %q, %d error lines in the chat, button %q", note, errorLines, button)
	}
	axeClean(t, ctx, "after an error")

	// The reader tries again.
	var before firstLine
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`cb.first()`, &before),
		chromedp.Click(`#earlier`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if r := next(); r.Before != "181" {
		t.Fatalf("try again asked for %+v", r)
	}
	answer <- `{"type":"history","room":"lobby","more":true,"events":[` + lines(131, 180) + `]}`
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 131"]`, chromedp.BySearch)); err != nil {
		t.Fatal(err)
	}
	stays(t, ctx, before, "after a click")
	checkOld(t, ctx, 131, 200)

	// Scrolling to the top asks for the next page: the one before the
	// oldest line now shown (a second request from the clicks and the
	// scroll would have asked before 181 again).
	if err := chromedp.Run(ctx, chromedp.Evaluate(`cb.up()`, &before)); err != nil {
		t.Fatal(err)
	}
	if r := next(); r.Before != "131" {
		t.Fatalf("scrolling to the top asked for %+v, want before 131", r)
	}
	answer <- `{"type":"history","room":"lobby","more":false,"events":[` + lines(101, 130) + `]}`
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 101"]`, chromedp.BySearch),
		chromedp.WaitNotVisible(`#earlier`, chromedp.ByQuery),
		chromedp.Text(`#earlier-note`, &note, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	stays(t, ctx, before, "after scrolling to the top")
	checkOld(t, ctx, 101, 200)
	if !strings.Contains(note, "start of #lobby") {
		t.Fatalf("at the start: note %q", note)
	}
	var status string
	if err := chromedp.Run(ctx, chromedp.Text(`#earlier-status`, &status, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if status != "Loaded 30 earlier messages. This is the start of #lobby." {
		t.Errorf("said to a screen reader: %q", status)
	}
	axeClean(t, ctx, "at the start")
}

// dayJS lists the lines named in the tests ("old line N", "live line
// N"), in order, each after "day D" if a day divider (saying D) stands
// between it and the named line before it; and it checks that each
// divider names, in the reader's words, the day of the line below it.
const dayJS = `(function () {
	var fmt = new Intl.DateTimeFormat([], {weekday: "long", day: "numeric", month: "long"});
	var out = [], bad = [], day = "";
	var lines = Array.from(document.querySelectorAll('[role="log"] .line'));
	lines.forEach(function (e, i) {
		if (e.classList.contains("day")) {
			var next = lines.slice(i + 1).find(function (l) { return l.querySelector("time"); });
			var want = next ? fmt.format(new Date(next.querySelector("time").dateTime)) : "(nothing below)";
			if (e.textContent !== want) bad.push(e.textContent + " above a line of " + want);
			day = e.textContent;
			return;
		}
		var t = e.querySelector(".text");
		if (!t || !/^(old|live) line \d+$/.test(t.textContent)) return;
		if (day) out.push("day " + day);
		out.push(t.textContent);
		day = "";
	});
	return {seq: out, bad: bad};
})()`

// daySeq is what dayJS returns.
type daySeq struct {
	Seq []string `json:"seq"`
	Bad []string `json:"bad"`
}

// checkDays checks that the transcript has a day divider before the first
// of lines and wherever the day, in zone, changes between two of them,
// and nowhere else among them; each divider names its day.
func checkDays(t *testing.T, ctx context.Context, lines []string, times []time.Time, zone *time.Location) {
	t.Helper()
	var got daySeq
	if err := chromedp.Run(ctx, chromedp.Evaluate(dayJS, &got)); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, l := range lines {
		if i == 0 || times[i].In(zone).YearDay() != times[i-1].In(zone).YearDay() {
			want = append(want, "day")
		}
		want = append(want, l)
	}
	var seq []string
	for i, s := range got.Seq {
		if day, ok := strings.CutPrefix(s, "day "); ok {
			// The divider says the day of the month of the line below it.
			if i+1 < len(got.Seq) {
				if k := slices.Index(lines, got.Seq[i+1]); k >= 0 && !strings.Contains(day, fmt.Sprint(times[k].In(zone).Day())) {
					t.Errorf("divider %q above %q, said on day %d in %s", day, got.Seq[i+1], times[k].In(zone).Day(), zone)
				}
			}
			s = "day"
		}
		seq = append(seq, s)
	}
	if !slices.Equal(seq, want) || len(got.Bad) > 0 {
		t.Fatalf("days and lines:\n got %q\nwant %q\n%q", seq, want, got.Bad)
	}
}

// In the embed too: a day divider wherever the day changes between two
// lines, in the reader's zone (Tokyo here, where the days change at 15:00
// UTC), in the history, in a page of earlier lines, and before a live line
// of today; and only one where a page of earlier lines meets lines of the
// same day below it.
func TestBrowserDayDividersInTheReadersZone(t *testing.T) {
	tokyo := time.FixedZone("Tokyo", 9*3600) // no summer time there
	// Three days ago at 14:30 UTC, 23:30 in Tokyo.
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(-3*24*time.Hour + 14*time.Hour + 30*time.Minute)
	var names []string
	var times []time.Time
	for i := 1; i <= 20; i++ {
		at := base.Add(time.Duration(i) * time.Minute) // 1-5: 23:31-23:35 in Tokyo
		if i > 5 {
			at = at.Add(40 * time.Minute) // 6-10: 00:16-00:20, the next day
		}
		if i > 10 {
			at = at.Add(24 * time.Hour) // 11-20: 00:21-00:30, the day after that
		}
		names = append(names, fmt.Sprintf("old line %d", i))
		times = append(times, at)
	}
	event := func(i int) string {
		return fmt.Sprintf(`{"type":"message","id":"%d","time":%q,"room":"lobby","from":"bob","text":%q}`,
			i+1, times[i].Format(time.RFC3339Nano), names[i])
	}
	lines := func(from, to int) string {
		var b []string
		for i := from; i <= to; i++ {
			b = append(b, event(i))
		}
		return strings.Join(b, ",")
	}
	live := make(chan string)
	url, _ := fakeChat(t, func(ctx context.Context, c *websocket.Conn) {
		for _, f := range []string{
			helloJSON("lobby", "ada"),
			`{"type":"history","room":"lobby","more":true,"events":[` + lines(8, 19) + `]}`,
			`{"type":"presence","room":"lobby","names":["ada"],"count":1}`,
		} {
			if write(ctx, c, f) != nil {
				return
			}
		}
		go func() {
			for {
				select {
				case l := <-live:
					if write(ctx, c, l) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var r historyRequest
			if json.Unmarshal(b, &r) == nil && r.Type == "history" && r.Before == "9" {
				if write(ctx, c, `{"type":"history","room":"lobby","more":false,"events":[`+lines(0, 7)+`]}`) != nil {
					return
				}
			}
		}
	})
	ctx := browser(t)
	if err := chromedp.Run(ctx,
		emulation.SetTimezoneOverride("Asia/Tokyo"),
		chromedp.Navigate(url+"/embed?room=lobby"),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 20"]`, chromedp.BySearch),
	); err != nil {
		t.Fatal(err)
	}
	checkDays(t, ctx, names[8:], times[8:], tokyo)
	// Clicked from script: a pointer click scrolls the button into view
	// first, and reaching the top of the log may ask for the page itself
	// and replace the button meanwhile ("invalid dimensions"). Either
	// asks for the same page; the dividers are what this test is about.
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.querySelector("#earlier").click()`, nil),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 1"]`, chromedp.BySearch),
		chromedp.WaitVisible(`#earlier-note`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	checkDays(t, ctx, names, times, tokyo)
	for i := range 2 {
		now := time.Now()
		live <- fmt.Sprintf(`{"type":"message","id":"%d","time":%q,"room":"lobby","from":"bob","text":"live line %d"}`,
			100+i, now.UTC().Format(time.RFC3339Nano), i)
		names = append(names, fmt.Sprintf("live line %d", i))
		times = append(times, now)
	}
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`//*[@role="log"]//*[text()="live line 1"]`, chromedp.BySearch)); err != nil {
		t.Fatal(err)
	}
	checkDays(t, ctx, names, times, tokyo)
}

// pastStore is a Store of one room's lines said before the test began,
// with their times, and of the lines the hub appends; it counts the pages
// of scrollback it is asked for.
type pastStore struct {
	mu    sync.Mutex
	lines []*tcpserver.Event // oldest first
	pages int                // reads before a line
}

func (s *pastStore) Append(ev *tcpserver.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, ev)
}

func (s *pastStore) Lines(_ context.Context, room string, before tcpserver.LineKey, limit int) ([]*tcpserver.Event, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var in []*tcpserver.Event
	for _, ev := range s.lines {
		if ev.Room == room {
			in = append(in, ev)
		}
	}
	end := len(in)
	if !before.IsZero() {
		s.pages++
		end = slices.IndexFunc(in, func(ev *tcpserver.Event) bool { return ev.Key() == before })
		if end < 0 {
			return nil, false, tcpserver.ErrUnknownLine
		}
	}
	start := max(0, end-limit)
	return slices.Clone(in[start:end]), start > 0, nil
}

func (s *pastStore) Close(context.Context) error { return nil }

func (s *pastStore) pagesRead() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pages
}

// Scrollback over a real server, on the page and in the embed: a room of
// 130 lines, said over three days (in the reader's zone, Tokyo), replays
// its last 20 on join; "Load earlier" and then scrolling to the top bring
// the rest above, page by page, in order, each line once, without moving
// the line first in view, a request at a time; at the start a note says
// so; a day divider stands wherever the day changes; axe-core finds
// nothing.
func TestBrowserScrollback(t *testing.T) {
	const n = 130
	tokyo := time.FixedZone("Tokyo", 9*3600)
	// Three days ago at 14:00 UTC, 23:00 in Tokyo: lines 0-59 are said
	// that day there, 60-69 the next, 70-129 the day after.
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(-3*24*time.Hour + 14*time.Hour)
	store := &pastStore{}
	var names []string
	var times []time.Time
	for i := range n {
		at := base.Add(time.Duration(i) * time.Minute)
		if i >= 70 {
			at = at.Add(24 * time.Hour)
		}
		names = append(names, fmt.Sprintf("old line %d", i))
		times = append(times, at)
		// IDs as the hub gives them: microseconds since the epoch.
		store.lines = append(store.lines, &tcpserver.Event{ID: uint64(at.UnixMicro()), Kind: tcpserver.KindMessage,
			Time: at, Room: "lobby", From: fmt.Sprintf("user-%d", i%4), Text: names[i]})
	}
	st := start(t, tcpserver.HubConfig{Store: store}, Config{})
	ctx := browser(t)
	if err := chromedp.Run(ctx,
		emulation.SetTimezoneOverride("Asia/Tokyo"),
		chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 129"]`, chromedp.BySearch),
		chromedp.WaitVisible(`#earlier`, chromedp.ByQuery),
		chromedp.Evaluate(scrollJS, nil),
	); err != nil {
		t.Fatal(err)
	}
	checkOld(t, ctx, 110, 129)
	axeClean(t, ctx, "with the button")

	// load brings the page before the oldest line shown: js returns the
	// line first in view and may ask for the page; act, if any, asks for
	// it. The line first in view must stay where it was.
	load := func(js string, act chromedp.Action, oldest int, what string) {
		t.Helper()
		var before firstLine
		if act == nil {
			act = chromedp.Tasks{}
		}
		if err := chromedp.Run(ctx,
			chromedp.Evaluate(js, &before),
			act,
			chromedp.WaitVisible(fmt.Sprintf(`//*[@role="log"]//*[text()="old line %d"]`, oldest), chromedp.BySearch),
		); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		stays(t, ctx, before, what)
		checkOld(t, ctx, oldest, n-1)
	}
	// The button, from the keyboard, where the reader is (a click would
	// first scroll to it, and scrolling up loads by itself).
	focus := `document.getElementById("earlier").focus({preventScroll: true}), cb.first()`
	load(focus, chromedp.KeyEvent(kb.Enter), 60, "Load earlier")
	load(`cb.up()`, nil, 10, "scrolling to the top")
	load(`cb.up()`, nil, 0, "scrolling to the top again")
	var note string
	if err := chromedp.Run(ctx,
		chromedp.WaitNotVisible(`#earlier`, chromedp.ByQuery),
		chromedp.Text(`#earlier-note`, &note, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "start of #lobby") {
		t.Errorf("at the start: note %q", note)
	}
	if p := store.pagesRead(); p != 3 {
		t.Errorf("the store was asked for %d pages of scrollback, want 3", p)
	}
	// A line of today, said now, below them all.
	if err := chromedp.Run(ctx,
		chromedp.SendKeys(`[name="message"]`, "live line 0\r", chromedp.ByQuery),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="live line 0"]`, chromedp.BySearch),
	); err != nil {
		t.Fatal(err)
	}
	checkDays(t, ctx, append(names, "live line 0"), append(times, time.Now()), tokyo)
	axeClean(t, ctx, "at the start")

	// The embed: the same.
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/embed?room=lobby"),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="live line 0"]`, chromedp.BySearch),
		chromedp.Evaluate(scrollJS, nil),
	); err != nil {
		t.Fatal(err)
	}
	load(focus, chromedp.KeyEvent(kb.Enter), 61, "Load earlier in the embed")
	axeClean(t, ctx, "the embed")
}

// A reader scrolling up fast is not refused: the page keeps to the
// server's rate for earlier lines (5 at once, then one every 2 s) by
// waiting. And /history typed in the page brings its lines above, and
// says so where it was typed.
func TestBrowserScrollbackKeepsToTheRate(t *testing.T) {
	const n = 400
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	store := &pastStore{}
	for i := range n {
		at := base.Add(time.Duration(i) * time.Second)
		store.lines = append(store.lines, &tcpserver.Event{ID: uint64(at.UnixMicro()), Kind: tcpserver.KindMessage,
			Time: at, Room: "lobby", From: fmt.Sprintf("user-%d", i%4), Text: fmt.Sprintf("old line %d", i)})
	}
	st := start(t, tcpserver.HubConfig{Store: store}, Config{})
	ctx := browser(t)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 399"]`, chromedp.BySearch),
		chromedp.WaitVisible(`#earlier`, chromedp.ByQuery),
		chromedp.Evaluate(scrollJS, nil),
		chromedp.SendKeys(`[name="message"]`, "/history\r", chromedp.ByQuery),
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(text(), "Loaded 50 earlier messages. They are above.")]`, chromedp.BySearch),
	); err != nil {
		t.Fatal(err)
	}
	checkOld(t, ctx, 330, n-1)
	// arrived waits for old line i, or fails at once if the page says it
	// could not load.
	arrived := func(i int) {
		t.Helper()
		var got string
		err := chromedp.Run(ctx, chromedp.Poll(fmt.Sprintf(`(function () {
			var failed = document.querySelector("#earlier-note.failed");
			if (failed) return "failed: " + failed.textContent;
			return cb.old()[0] === "old line %d" ? "ok" : false;
		})()`, i), &got, chromedp.WithPollingTimeout(20*time.Second)))
		if err != nil || got != "ok" {
			t.Fatalf("waiting for old line %d: %q %v", i, got, err)
		}
	}
	for oldest := 280; ; oldest -= 50 {
		oldest = max(oldest, 0)
		if err := chromedp.Run(ctx, chromedp.Evaluate(`cb.up()`, nil)); err != nil {
			t.Fatal(err)
		}
		arrived(oldest)
		if oldest == 0 {
			break
		}
	}
	checkOld(t, ctx, 0, n-1)
	if p := store.pagesRead(); p != 8 {
		t.Errorf("the store was asked for %d pages, want 8", p)
	}
}

// A reader scrolled up in a busy room keeps their place when the
// transcript lets its oldest lines go (it keeps 1,000), and "Load
// earlier", though the room's first lines were shown, is offered again
// and asks for what went: the lines before the oldest still shown.
func TestBrowserTrimKeepsTheReadersPlace(t *testing.T) {
	base := time.Now().Add(-time.Hour)
	line := func(i int) string {
		return fmt.Sprintf(`{"type":"message","id":"%d","time":%q,"room":"lobby","from":"bob-%d","text":"old line %d"}`,
			i, base.Add(time.Duration(i)*time.Second).UTC().Format(time.RFC3339Nano), i%3, i)
	}
	lines := func(from, to int) string {
		var b []string
		for i := from; i <= to; i++ {
			b = append(b, line(i))
		}
		return strings.Join(b, ",")
	}
	more := make(chan string)
	asked := make(chan historyRequest, 1)
	url, _ := fakeChat(t, func(ctx context.Context, c *websocket.Conn) {
		for _, f := range []string{
			helloJSON("lobby", "ada"),
			// The room's first lines: nothing before them.
			`{"type":"history","room":"lobby","more":false,"events":[` + lines(1001, 1020) + `]}`,
			`{"type":"presence","room":"lobby","names":["ada"],"count":1}`,
		} {
			if write(ctx, c, f) != nil {
				return
			}
		}
		// 990 lines, in frames of 110 (a frame draws at most 300).
		for i := 1021; i <= 2010; i += 110 {
			if write(ctx, c, "["+lines(i, i+109)+"]") != nil {
				return
			}
		}
		go func() {
			for {
				select {
				case f := <-more:
					if write(ctx, c, f) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var r historyRequest
			if json.Unmarshal(b, &r) == nil && r.Type == "history" {
				asked <- r
			}
		}
	})
	ctx := browser(t)
	var before firstLine
	if err := chromedp.Run(ctx,
		chromedp.Navigate(url+"/?room=lobby"),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 2010"]`, chromedp.BySearch),
		chromedp.Evaluate(scrollJS, nil),
		chromedp.Evaluate(`cb.t.scrollTop = cb.t.scrollHeight / 2; cb.t.dispatchEvent(new Event("scroll")); cb.first()`, &before),
	); err != nil {
		t.Fatal(err)
	}
	var oldest string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`cb.old()[0]`, &oldest),
	); err != nil {
		t.Fatal(err)
	}
	more <- "[" + lines(2011, 2110) + "]"
	var after string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="old line 2110"]`, chromedp.BySearch),
		chromedp.Evaluate(`cb.old()[0]`, &after),
	); err != nil {
		t.Fatal(err)
	}
	if after == oldest {
		t.Fatalf("the oldest line is still %q: nothing was let go", after)
	}
	stays(t, ctx, before, "after the oldest lines went")
	first, _ := strconv.Atoi(strings.TrimPrefix(after, "old line "))
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(`#earlier`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("earlier").click(); true`, nil),
	); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-asked:
		if r.Before != strconv.Itoa(first) {
			t.Fatalf("asked for lines before %q, want before %d, the oldest shown", r.Before, first)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load earlier asked nothing")
	}
}

// Joining another room starts the transcript afresh: the new room's lines
// only, its own "Load earlier", and back in the first room its history
// again (the lines it showed before are not taken as seen).
func TestBrowserRoomChangeStartsAfresh(t *testing.T) {
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	store := &pastStore{}
	for _, room := range []string{"lobby", "docs"} {
		for i := range 60 {
			at := base.Add(time.Duration(i) * time.Minute)
			if room == "docs" {
				at = at.Add(time.Second)
			}
			store.lines = append(store.lines, &tcpserver.Event{ID: uint64(at.UnixMicro()), Kind: tcpserver.KindMessage,
				Time: at, Room: room, From: "user-" + strconv.Itoa(i%4), Text: fmt.Sprintf("%s line %d", room, i)})
		}
	}
	st := start(t, tcpserver.HubConfig{Store: store, ChangeBurst: -1}, Config{})
	ctx := browser(t)
	// shown checks the transcript shows the lines of room from..to, in
	// order, once each, and no line of another room.
	shown := func(room string, from, to int) {
		t.Helper()
		var got []string
		if err := chromedp.Run(ctx, chromedp.Evaluate(`Array.from(document.querySelectorAll('[role="log"] .line .text'))
			.map(function (e) { return e.textContent; }).filter(function (s) { return / line \d+$/.test(s); })`, &got)); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := from; i <= to; i++ {
			want = append(want, fmt.Sprintf("%s line %d", room, i))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("the transcript shows %q, want %s lines %d..%d", got, room, from, to)
		}
	}
	join := func(room string) {
		t.Helper()
		if err := chromedp.Run(ctx,
			chromedp.SetValue(`#room`, room, chromedp.ByQuery),
			// In the page: a native submit would load /?room=...
			chromedp.Click(`#room-form button`, chromedp.ByQuery),
			chromedp.WaitVisible(fmt.Sprintf(`//*[@role="log"]//*[text()="%s line 59"]`, room), chromedp.BySearch),
		); err != nil {
			t.Fatalf("join %s: %v", room, err)
		}
	}
	loadEarlier := func(room string, oldest int) {
		t.Helper()
		if err := chromedp.Run(ctx,
			chromedp.Evaluate(`document.getElementById("earlier").click(); true`, nil),
			chromedp.WaitVisible(fmt.Sprintf(`//*[@role="log"]//*[text()="%s line %d"]`, room, oldest), chromedp.BySearch),
		); err != nil {
			t.Fatalf("Load earlier in %s: %v", room, err)
		}
	}
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`//*[@role="log"]//*[text()="lobby line 59"]`, chromedp.BySearch),
	); err != nil {
		t.Fatal(err)
	}
	shown("lobby", 40, 59)
	loadEarlier("lobby", 0)
	shown("lobby", 0, 59)
	join("docs")
	shown("docs", 40, 59)
	loadEarlier("docs", 0)
	shown("docs", 0, 59)
	join("lobby")
	shown("lobby", 40, 59)
}
