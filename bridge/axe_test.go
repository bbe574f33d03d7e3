package bridge

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"chatbridge/tcpserver"
)

// axeSource returns axe-core's axe.min.js, from the file AXE_CORE_JS names
// (.ci/run installs the npm package axe-core and sets it). Without it the
// test skips, unless CI is set: under CI it must run.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_CORE_JS")
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and AXE_CORE_JS is not: the accessibility test must run (see .ci/run)")
		}
		t.Skip("set AXE_CORE_JS to axe-core's axe.min.js (npm install axe-core) to run this test")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("AXE_CORE_JS: %v", err)
	}
	return string(b)
}

// axeViolation is what the test reports of one rule axe-core finds broken.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// runAxe runs axe-core on the page as it is and returns what it finds.
func runAxe(t *testing.T, ctx context.Context, src string) []axeViolation {
	t.Helper()
	var found []axeViolation
	err := chromedp.Run(ctx,
		chromedp.Evaluate(src+";true", nil),
		chromedp.Evaluate(`axe.run(document, {resultTypes: ["violations"]}).then(function (r) {
			return r.violations.map(function (v) {
				return {id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.map(function (n) {
					return n.target.join(" ") + ": " + n.failureSummary;
				})};
			});
		})`, &found, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
	)
	if err != nil {
		t.Fatalf("axe: %v", err)
	}
	return found
}

// axe-core finds nothing on / and /embed, in both schemes, with lines of
// every kind on them, on a desktop and on a phone with the menu open.
func TestBrowserAccessibility(t *testing.T) {
	src := axeSource(t)
	st := start(t, tcpserver.HubConfig{}, Config{})
	ctx := browser(t)
	tel := st.telnet(t)
	tel.send("/nick tilda")
	tel.expect("now known as tilda")
	tests := []struct {
		name, path, scheme string
		phone, menu        bool
	}{
		{"page", "/?room=lobby", "light", false, false},
		{"page, dark", "/?room=lobby", "dark", false, false},
		{"page on a phone, menu open", "/?room=lobby", "light", true, true},
		{"embed", "/embed?room=lobby", "light", false, false},
		{"embed, dark, menu open", "/embed?room=lobby", "dark", false, true},
		{"embed as a launcher, themed", "/embed?room=lobby&launcher=1&theme=dark&accent=%23ffcc00", "light", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h := int64(1000), int64(700)
			if tt.phone {
				w, h = 390, 844
			}
			var me string
			if err := chromedp.Run(ctx,
				chromedp.EmulateViewport(w, h),
				setScheme(tt.scheme),
				chromedp.Navigate(st.httpURL+tt.path),
				chromedp.WaitVisible(`#status[data-state="online"]`),
				chromedp.Value(`#nick`, &me, chromedp.ByQuery),
			); err != nil {
				t.Fatal(err)
			}
			tel.send(fmt.Sprintf("hello %s, see https://example.com/docs and `go test ./...`", me))
			tel.send("/me waves")
			tel.send("/msg " + me + " a private word")
			if err := chromedp.Run(ctx,
				chromedp.SendKeys(`[name="message"]`, "a line of my own\r", chromedp.ByQuery),
				chromedp.WaitVisible(`[role="log"] .line.private`, chromedp.ByQuery),
				chromedp.WaitVisible(`[role="log"] .line.mine`, chromedp.ByQuery),
			); err != nil {
				t.Fatal(err)
			}
			if tt.menu {
				if err := chromedp.Run(ctx, chromedp.Click(`#menu-button`, chromedp.ByQuery), chromedp.WaitVisible(`#menu`, chromedp.ByQuery)); err != nil {
					t.Fatal(err)
				}
			}
			for _, v := range runAxe(t, ctx, src) {
				t.Errorf("%s (%s): %s\n\t%s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
			}
		})
	}
}
