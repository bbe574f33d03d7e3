package bridge

import (
	"strings"
	"testing"

	"chatbridge/tcpserver"
)

// TestDeleteOverWebSocket: an operator on a JSON client deletes a line
// by the id its event carried, and then purges a member: the JSON pages
// get delete events with the id (or ids), the plain WebSocket the notice,
// and a page that comes afterwards has none of the lines in its history.
func TestDeleteOverWebSocket(t *testing.T) {
	st := start(t, tcpserver.HubConfig{OpPassword: testOpPassword, ChangeBurst: -1, Rate: -1}, Config{})
	op := st.jsonClient(t, "")
	op.send(`{"type":"command","text":"/op ` + testOpPassword + `"}`)
	op.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "you are now an operator") })
	page := st.jsonClient(t, "")
	plain := st.plain(t, "")
	spam := st.jsonClient(t, "")
	spam.send(`{"type":"message","text":"buy pills"}`)
	first := page.expectEvent("message", func(e event) bool { return e.Text == "buy pills" })
	spam.send(`{"type":"message","text":"cheap pills"}`)
	page.expectEvent("message", func(e event) bool { return e.Text == "cheap pills" })
	spam.send(`{"type":"message","text":"more pills"}`)
	page.expectEvent("message", func(e event) bool { return e.Text == "more pills" })
	plain.expect("more pills")

	op.send(`{"type":"command","text":"/delete ` + first.ID + `"}`)
	if ev := page.expectEvent("delete", nil); ev.ID != first.ID || ev.From != spam.name || ev.Room != "lobby" {
		t.Errorf("delete event %+v, want id %s", ev, first.ID)
	}
	plain.expect("*** a message by " + spam.name + " was removed")
	op.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "you removed 1 line by "+spam.name) })

	op.send(`{"type":"command","text":"/purge ` + spam.name + `"}`)
	if ev := page.expectEvent("delete", nil); len(ev.IDs) != 2 || ev.ID != "" {
		t.Errorf("purge event %+v, want two ids", ev)
	}
	plain.expect("*** 2 messages by " + spam.name + " were removed")

	late := st.jsonClient(t, "")
	for {
		ev := late.event()
		if ev.Type == "history" {
			t.Errorf("a page that came afterwards has a history: %+v", ev)
		}
		if ev.Type == "presence" {
			break
		}
	}
}
