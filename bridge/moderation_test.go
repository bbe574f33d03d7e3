package bridge

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

const testOpPassword = "correct-horse-battery"

// TestModerationOverWebSocket: the operator commands work from a JSON
// client as from a terminal: /op, the topic in the JSON hello and as a
// topic event, a mute refused with an error event, a kick that closes a
// plain WebSocket with 1008 and the reason, and /metrics counts them.
// Members who are not operators, and malformed commands, are refused.
func TestModerationOverWebSocket(t *testing.T) {
	st := start(t, tcpserver.HubConfig{OpPassword: testOpPassword, ChangeBurst: -1}, Config{})
	op := st.jsonClient(t, "")
	op.send(`{"type":"command","text":"/nick alice"}`)
	op.expectEvent("nick", nil)
	carol := st.jsonClient(t, "")
	bob := st.plain(t, "")

	carol.send(`{"type":"command","text":"/kick ` + bob.name + `"}`)
	carol.expectEvent("error", func(e event) bool { return strings.Contains(e.Text, "/kick is for operators") })
	carol.send(`{"type":"command","text":"/op wrong-password\n/op ` + testOpPassword + `"}`)
	carol.expectEvent("error", func(e event) bool { return e.Text == "a command is one line" })
	op.send(`{"type":"command","text":"/op ` + testOpPassword + `"}`)
	op.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "you are now an operator") })

	op.send(`{"type":"command","text":"/topic Read the FAQ first"}`)
	ev := carol.expectEvent("topic", nil)
	if ev.From != "alice" || ev.Text != "Read the FAQ first" || ev.Room != "lobby" || ev.ID == "" {
		t.Errorf("topic event = %+v", ev)
	}
	bob.expect("alice set the topic of lobby: Read the FAQ first")
	w, _, err := st.dialWS(t, "", &websocket.DialOptions{Subprotocols: []string{JSONProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	if hello := w.event(); hello.Type != "hello" || hello.Topic != "Read the FAQ first" {
		t.Errorf("hello = %+v, want the topic", hello)
	}
	pw, _, err := st.dialWS(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if welcome := pw.read(); !strings.Contains(welcome, "Welcome to chatbridge") || !strings.HasSuffix(welcome, "\r\n*** Topic: Read the FAQ first") {
		t.Errorf("plain welcome = %q, want the topic under it", welcome)
	}

	op.send(`{"type":"command","text":"/mute ` + carol.name + ` 10m"}`)
	carol.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "you are muted for 10m by alice") })
	carol.send(`{"type":"message","text":"can anyone hear me"}`)
	carol.expectEvent("error", func(e event) bool { return strings.Contains(e.Text, "you are muted") })

	op.send(`{"type":"command","text":"/kick ` + bob.name + ` off topic"}`)
	if code, reason := bob.closeStatus(); code != websocket.StatusPolicyViolation || reason != "disconnected: kicked by alice: off topic" {
		t.Errorf("kicked: close %v %q", code, reason)
	}
	carol.expectEvent("leave", func(e event) bool { return e.From == bob.name && e.Text == "kicked by alice: off topic" })

	resp, err := http.Get(st.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`chatbridge_moderation_actions_total{action="kick"} 1`, `chatbridge_moderation_actions_total{action="topic"} 1`,
		`chatbridge_moderation_actions_total{action="mute"} 1`, `chatbridge_op_password_failures_total 0`, `chatbridge_connections_banned_total 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
