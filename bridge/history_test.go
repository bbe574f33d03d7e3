package bridge

import (
	"fmt"
	"strings"
	"testing"

	"chatbridge/tcpserver"
)

// texts returns the texts of events, space-separated.
func texts(evs []event) string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Text
	}
	return strings.Join(out, " ")
}

// lineTexts returns "l-from" to "l-to", space-separated.
func lineTexts(from, to int) string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("l-%02d", i))
	}
	return strings.Join(out, " ")
}

// Scrollback over JSON, on a real WebSocket: the join replay says there
// are earlier lines; {"type":"history"} answers the page before the
// oldest shown, {"before":ID} the page before that line, oldest first,
// with more while there are earlier lines, and an empty page at the
// start. What is wrong gets an error event and shows nothing of another
// room.
func TestJSONHistory(t *testing.T) {
	st := start(t, tcpserver.HubConfig{History: 5, Rate: -1}, Config{})
	tel := st.telnet(t)
	for i := 1; i <= 30; i++ {
		tel.send(fmt.Sprintf("l-%02d", i))
	}
	tel.send("/join other")
	tel.expect("You are now in other")
	tel.send("secret of other")
	tel.send("/nick telly") // answered once the line before it is kept
	tel.expect("is now known as telly")
	o := st.jsonClient(t, "room=other")
	otherLine := o.expectEvent("history", nil).Events[0]
	if otherLine.Text != "secret of other" {
		t.Fatalf("other's replay: %+v", otherLine)
	}

	w := st.jsonClient(t, "")
	replay := w.expectEvent("history", nil)
	if texts(replay.Events) != lineTexts(26, 30) || !replay.More || replay.Room != "lobby" {
		t.Fatalf("the join replay: %q, more %v", texts(replay.Events), replay.More)
	}

	w.send(`{"type":"history","limit":10}`)
	page := w.expectEvent("history", nil)
	if texts(page.Events) != lineTexts(16, 25) || !page.More || page.Room != "lobby" {
		t.Fatalf("the page before the replay: %q, more %v", texts(page.Events), page.More)
	}
	w.send(`{"type":"history","before":"` + page.Events[0].ID + `","limit":200}`)
	page = w.expectEvent("history", nil)
	if texts(page.Events) != lineTexts(1, 15) || page.More {
		t.Fatalf("the first page: %q, more %v", texts(page.Events), page.More)
	}
	w.send(`{"type":"history"}`)
	page = w.expectEvent("history", nil)
	if len(page.Events) != 0 || page.More {
		t.Fatalf("before the first line: %q, more %v", texts(page.Events), page.More)
	}
	// Before a line named by the page, whatever was shown.
	w.send(`{"type":"history","before":"` + replay.Events[1].ID + `","limit":2}`)
	page = w.expectEvent("history", nil)
	if texts(page.Events) != "l-25 l-26" || !page.More {
		t.Fatalf("before l-27: %q, more %v", texts(page.Events), page.More)
	}

	// A line of another room is as unknown as one never said. (A second
	// client: the first has had its five at once.)
	w2 := st.jsonClient(t, "")
	for _, tt := range []struct{ msg, want string }{
		{`{"type":"history","before":"` + otherLine.ID + `"}`, "no line " + otherLine.ID + " in lobby"},
		{`{"type":"history","before":"123"}`, "no line 123 in lobby"},
		{`{"type":"history","before":"x y"}`, `"before" is not a line id`},
		{`{"type":"history","limit":0}`, `"limit" must be a whole number from 1 to 200`},
		{`{"type":"history","limit":201}`, `"limit" must be a whole number from 1 to 200`},
		{`{"type":"history","text":"/quit"}`, `"text" is not a key of "history"`},
	} {
		w2.send(tt.msg)
		ev := w2.expectEvent("error", nil)
		if !strings.Contains(ev.Text, tt.want) {
			t.Fatalf("%s: error %q, want %q", tt.msg, ev.Text, tt.want)
		}
	}
	w.send(`{"type":"history"}`) // the fifth at once
	w.expectEvent("history", nil)
	w.send(`{"type":"history"}`) // the sixth
	if ev := w.expectEvent("error", nil); !strings.Contains(ev.Text, "too many /history") {
		t.Fatalf("a sixth history at once: %q", ev.Text)
	}
	w.send(`{"type":"message","text":"still here"}`)
	w2.expectEvent("message", func(ev event) bool { return ev.Text == "still here" })
}
