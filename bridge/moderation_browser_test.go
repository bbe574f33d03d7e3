package bridge

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"chatbridge/tcpserver"
	"chatbridge/web"
)

// requestLog records the URL and Referer of every request for the page
// and its files.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.URL.String()+" referer="+r.Referer())
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.seen, "\n")
}

// A docs site signs its reader in: embed.js data-token makes the chat in
// the iframe that member, verified (marked in the member list), with the
// token in no request for the page or its files, nor in a Referer, and
// out of the iframe's address once read. A token that has expired stops
// the page with why, and it does not retry.
func TestBrowserSignedInEmbed(t *testing.T) {
	var reqs requestLog
	st := start(t, tcpserver.HubConfig{Speak: tcpserver.SpeakVerified}, Config{AuthSecret: testAuthSecret, Web: reqs.wrap(web.Handler())})
	ctx := browser(t)
	tel := st.telnet(t)
	tel.send("/join docs")
	tel.expect("You are now in docs")

	tok := sign(t, fresh("alice"))
	docs := docsPage(t, fmt.Sprintf(`<script src="%s/embed.js" data-room="docs" data-token="%s"></script>`, st.httpURL, tok))
	if err := chromedp.Run(ctx, chromedp.Navigate(docs)); err != nil {
		t.Fatal(err)
	}
	f := frameNode(t, ctx)
	var got struct {
		Me, Hash string
		Marked   bool
	}
	if err := evalIn(ctx, f, `Array.from(document.querySelectorAll("#members li")).some(function (li) { return li.textContent.indexOf("alice") === 0; }) &&
		({me: document.getElementById("nick").value, hash: location.hash,
		marked: Array.from(document.querySelectorAll("#members li.verified")).some(function (li) { return li.textContent.indexOf("alice") === 0; })})`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Me != "alice" || got.Hash != "" || !got.Marked {
		t.Errorf("signed-in embed: %+v, want alice, no fragment, marked verified", got)
	}
	tel.expect("alice joined")
	// alice may speak where only verified members may.
	if err := chromedp.Run(ctx, chromedp.SendKeys(`#message`, "hello from the docs\r", chromedp.ByQuery, chromedp.FromNode(f))); err != nil {
		t.Fatal(err)
	}
	tel.expect("<alice> hello from the docs")
	if strings.Contains(reqs.String(), tok) || strings.Contains(reqs.String(), "token") {
		t.Errorf("a request for the page carried the token:\n%s", reqs.String())
	}

	expired := sign(t, jwt.MapClaims{"name": "bob", "exp": time.Now().Add(-time.Hour).Unix()})
	docs = docsPage(t, fmt.Sprintf(`<script src="%s/embed.js" data-room="docs" data-token="%s"></script>`, st.httpURL, expired))
	if err := chromedp.Run(ctx, chromedp.Navigate(docs)); err != nil {
		t.Fatal(err)
	}
	// The chat in the iframe never says hello, so never "ready": its node
	// is taken again until it holds the chat's document.
	var said string
	deadline := time.Now().Add(15 * time.Second)
	for {
		var frames []*cdp.Node
		if err := chromedp.Run(ctx, chromedp.Nodes(`iframe.chatbridge-embed`, &frames, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		err := evalIn(ctx, frames[0], `(function () {
			var s = document.getElementById("status");
			return s && s.dataset.state === "offline" && s.textContent.indexOf("Not signed in") >= 0 && document.getElementById("transcript").textContent;
		})()`, &said)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page with an expired token: %v", err)
		}
	}
	if !strings.Contains(said, "the token has expired") {
		t.Errorf("the page says %q", said)
	}
}
