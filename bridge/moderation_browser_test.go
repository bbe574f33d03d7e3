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

// An open page removes a line an operator deleted, in place, and shows
// the room's topic in its header as soon as it is set; lines not deleted
// stay.
func TestBrowserDeletedLineAndTopic(t *testing.T) {
	st := start(t, tcpserver.HubConfig{OpPassword: testOpPassword, ChangeBurst: -1}, Config{})
	ctx := browser(t)
	op := st.telnet(t)
	op.send("/nick alice")
	op.expect("is now known as alice")
	op.send("/op " + testOpPassword)
	op.expect("you are now an operator")
	spam := st.telnet(t)
	spam.send("/nick spammer")
	spam.expect("is now known as spammer")

	if err := chromedp.Run(ctx, chromedp.Navigate(st.httpURL+"/?room=lobby"),
		chromedp.WaitVisible(`#status[data-state="online"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	spam.send("buy pills at example.com")
	op.send("welcome, reader")
	var ids []string
	if err := evalIn(ctx, nil, `(function () {
		var lines = Array.from(document.querySelectorAll("#transcript .line[data-id]"));
		var spam = lines.filter(function (l) { return l.textContent.indexOf("buy pills") >= 0; });
		var ok = lines.filter(function (l) { return l.textContent.indexOf("welcome, reader") >= 0; });
		return spam.length === 1 && ok.length === 1 && [spam[0].dataset.id, ok[0].dataset.id];
	})()`, &ids); err != nil {
		t.Fatalf("the page did not show both lines with their ids: %v", err)
	}
	op.send("/delete last spammer")
	op.expect("you removed 1 line by spammer")
	var gone bool
	if err := evalIn(ctx, nil, `document.querySelectorAll("#transcript .line[data-id]").length > 0 &&
		document.getElementById("transcript").textContent.indexOf("buy pills") < 0 &&
		document.querySelector('#transcript .line[data-id="`+ids[1]+`"]') !== null`, &gone); err != nil {
		t.Fatalf("the deleted line stayed on the page, or the other went: %v", err)
	}

	op.send("/topic Read the FAQ first")
	var header string
	if err := evalIn(ctx, nil, `(function () {
		var el = document.getElementById("room-name");
		var after = getComputedStyle(el, "::after").content;
		return after.indexOf("Read the FAQ first") >= 0 && el.textContent + after;
	})()`, &header); err != nil {
		t.Fatalf("the topic is not in the header: %v", err)
	}
	if !strings.HasPrefix(header, "#lobby") {
		t.Errorf("header %q", header)
	}
}
