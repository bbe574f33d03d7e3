package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"chatbridge/tcpserver"
	"chatbridge/web"
)

// browser starts a headless Chromium for the test. It skips the test when
// there is no Chromium, unless CI is set: under CI it must run.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and no Chromium was found: the browser tests must run")
		}
		t.Skip("no Chromium here (install Debian's chromium); set CI to make this a failure")
	}
	// Chromium's helpers may still write to their profile as it exits,
	// so the profile is removed by hand, after it, and not by t.TempDir.
	profile, err := os.MkdirTemp("", "chatbridge-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Chromium leaves directories of its own in TMPDIR; give it one
	// inside the profile, which goes with it.
	tmp := filepath.Join(profile, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.Env("TMPDIR=" + tmp),
		chromedp.WindowSize(1000, 700),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		for range 20 {
			if os.RemoveAll(profile) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// An exception thrown by the page's scripts, in any of its frames,
	// fails the test, whatever the test looks at.
	var mu sync.Mutex
	var thrown []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			thrown = append(thrown, e.ExceptionDetails.Error())
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range thrown {
			t.Errorf("the page threw: %s", e)
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// xssLines are lines a telnet user sends that a careless page would turn
// into markup; the last one ends with "from telnet", which the tests wait
// for before they look.
var xssLines = []string{
	`<svg onload="document.title='pwned'"><circle r=9></svg>`,
	`<script>document.title='pwned'</script>`,
	`<iframe src="javascript:parent.document.title='pwned'"></iframe>`,
	`<a href="javascript:document.title='pwned'">click</a>`,
	`<img src=x onerror="document.title='pwned'"> from telnet`,
}

// xssMarkup counts elements the lines above could have made in the
// transcript.
const xssMarkup = `[role="log"] img, [role="log"] svg, [role="log"] script, [role="log"] iframe, [role="log"] a[href^="javascript:"]`

// sendXSS sends every line of xssLines from tel.
func sendXSS(tel *tcpClient) {
	for _, l := range xssLines {
		tel.send(l)
	}
}

// checkNoMarkup fails if the transcript in the frame (nil: the page)
// holds an element made from user text, or any line is not shown as text.
func checkNoMarkup(t *testing.T, ctx context.Context, where string, in ...chromedp.QueryOption) {
	t.Helper()
	var nodes []*cdp.Node
	var text, title string
	opts := append([]chromedp.QueryOption{chromedp.ByQueryAll, chromedp.AtLeast(0)}, in...)
	err := chromedp.Run(ctx,
		chromedp.WaitVisible(`//*[@role="log"]//*[contains(text(), "from telnet")]`, append([]chromedp.QueryOption{chromedp.BySearch}, in...)...),
		chromedp.Nodes(xssMarkup, &nodes, opts...),
		chromedp.Text(`[role="log"]`, &text, append([]chromedp.QueryOption{chromedp.ByQuery}, in...)...),
		chromedp.Title(&title),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 0 || title == "pwned" {
		t.Fatalf("%s: user text became HTML: %d elements, title %q", where, len(nodes), title)
	}
	for _, l := range xssLines {
		if !strings.Contains(text, l) {
			t.Fatalf("%s: the transcript does not show %q as text: %q", where, l, text)
		}
	}
}

func TestBrowserPageAndTelnetChatTogether(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)

	err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
		chromedp.SendKeys(`[name="message"]`, "hello from the page\r"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := tel.expect("hello from the page"); !strings.HasPrefix(got, "<guest-") {
		t.Fatalf("telnet got %q", got)
	}
	sendXSS(tel)
	checkNoMarkup(t, ctx, "/")
	screenshot(t, ctx, "page.png")
}

func TestBrowserEmbedOnAnotherOrigin(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	docs := docsPage(t, fmt.Sprintf(`<script src="%s/embed.js" data-room="docs" data-height="420"></script>`, st.httpURL))
	ctx := browser(t)
	tel := st.telnet(t)
	tel.send("/join docs")
	tel.expect("You are now in docs")

	if err := chromedp.Run(ctx, chromedp.Navigate(docs)); err != nil {
		t.Fatal(err)
	}
	frame := frameNode(t, ctx)
	var src string
	var ok bool
	if err := chromedp.Run(ctx, chromedp.AttributeValue(`iframe.chatbridge-embed`, "src", &src, &ok, chromedp.ByQuery)); err != nil || src != st.httpURL+"/embed?room=docs" {
		t.Fatalf("iframe src %q (%v)", src, err)
	}
	in := chromedp.FromNode(frame)
	err := chromedp.Run(ctx,
		chromedp.WaitVisible(`#status[data-state="online"]`, chromedp.ByQuery, in),
		chromedp.SendKeys(`[name="message"]`, "hello from the embed\r", chromedp.ByQuery, in),
	)
	if err != nil {
		t.Fatal(err)
	}
	tel.expect("hello from the embed")
	sendXSS(tel)
	checkNoMarkup(t, ctx, "/embed", in)
	screenshot(t, ctx, "embed.png")
}

// When the server restarts, the page says so, reconnects by itself, and
// chats on with telnet users of the new server.
func TestBrowserPageReconnectsAfterRestart(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	addr := strings.TrimPrefix(st.httpURL, "http://")
	if err := chromedp.Run(ctx,
		chromedp.Navigate(st.httpURL+"/"),
		chromedp.WaitVisible(`#status[data-state="online"]`),
	); err != nil {
		t.Fatal(err)
	}

	// Stop the web server the way SIGTERM does (close 1001), and see the
	// page notice. The close handshake waits for the browser's answer,
	// which a machine busy with other tests can take a while to give.
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := st.bridge.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-st.done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`#status[data-state="offline"]`)); err != nil {
		t.Fatalf("page did not go offline: %v", err)
	}
	// Offline: the member list is marked stale, and one line says so.
	var stale bool
	var outage string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.getElementById("people").classList.contains("stale")`, &stale),
		chromedp.Text(`[role="log"] .line.outage`, &outage, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	// The line names the server's reason (close 1001), or, when a busy
	// machine lets the connection drop before the browser reads the close
	// frame, says the connection was lost (1006): seen under the whole
	// suite's load.
	if !stale || !strings.Contains(outage, "server shutting down") && !strings.Contains(outage, "connection lost") {
		t.Fatalf("offline: members stale %v, outage line %q", stale, outage)
	}

	// A new server on the same address, same hub.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	st.bridge = New(st.hub, Config{Web: web.Handler()}, nil)
	go func() { st.done <- st.bridge.Serve(context.Background(), l) }()

	if err := chromedp.Run(ctx, chromedp.WaitVisible(`#status[data-state="online"]`)); err != nil {
		t.Fatalf("page did not reconnect: %v", err)
	}
	// Back: the same one line says lines may have been missed, and the
	// member list is live again.
	var outages int
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.getElementById("people").classList.contains("stale")`, &stale),
		chromedp.Evaluate(`document.querySelectorAll('[role="log"] .line.outage').length`, &outages),
		chromedp.Text(`[role="log"] .line.outage`, &outage, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if stale || outages != 1 || !strings.Contains(outage, "may be missing") {
		t.Fatalf("back: members stale %v, %d outage lines, %q", stale, outages, outage)
	}
	tel := st.telnet(t)
	tel.send("welcome back, page")
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`//*[@role="log"]//*[contains(., "welcome back, page")]`, chromedp.BySearch)); err != nil {
		t.Fatalf("page does not show the telnet line after reconnecting: %v", err)
	}
	screenshot(t, ctx, "reconnected.png")
}
