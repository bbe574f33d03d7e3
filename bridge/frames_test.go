package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// A frame header that puts its message over the read limit is refused
// when the header arrives, with 1009 and the limit in words: not after
// the announced payload (which may be a terabyte that never comes), nor
// at the ping timeout. Fragments count together, control frames between
// them do not, and TLS connections are no different.
func TestOversizeHeaderIsRefusedAtOnce(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	x := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	for _, tc := range []struct {
		name   string
		tls    bool
		json   bool
		frames [][]byte
		limit  int
	}{
		{"one frame of a terabyte", false, false, [][]byte{clientFrame(finBit|opText, x(3), 1<<40)}, 4098},
		{"one frame just over", false, false, [][]byte{clientFrame(finBit|opText, x(10), 4099)}, 4098},
		{"binary", false, false, [][]byte{clientFrame(finBit|opBinary, x(10), 70000)}, 4098},
		{"fragments that add up", false, false, [][]byte{
			clientFrame(opText, x(3000), -1),
			clientFrame(finBit|opPing, []byte("p"), -1),
			clientFrame(opCont, x(1000), -1),
			clientFrame(finBit|opCont, x(10), 99),
		}, 4098},
		{"JSON has its own limit", false, true, [][]byte{clientFrame(finBit|opText, x(10), 2*4096+256+1)}, 2*4096 + 256},
		{"over TLS", true, false, [][]byte{clientFrame(finBit|opText, x(3), 1<<40)}, 4098},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{}
			var tlsConf *tls.Config
			if tc.tls {
				cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
				tlsConf = &tls.Config{RootCAs: pool}
			}
			st := start(t, tcpserver.HubConfig{}, cfg)
			tel := st.telnet(t)
			var extra []string
			if tc.json {
				extra = append(extra, "Sec-WebSocket-Protocol: "+JSONProtocol)
			}
			w := st.dialRaw(t, "nick=big", tlsConf, extra...)
			tel.expect("*** big joined")
			for _, f := range tc.frames {
				w.write(f)
			}
			code, reason := w.closeFrame(2 * time.Second)
			if want := fmt.Sprintf("message too big: more than %d bytes", tc.limit); code != websocket.StatusMessageTooBig || reason != want {
				t.Fatalf("close %v %q, want 1009 %q", code, reason, want)
			}
			if line := tel.expect("*** big left"); !strings.Contains(line, "message too big") {
				t.Fatalf("telnet saw %q", line)
			}
		})
	}
}

// A message of exactly the limit, in one frame or in fragments with a
// ping between, is a message like any other.
func TestMessageOfTheLimitPasses(t *testing.T) {
	st := start(t, tcpserver.HubConfig{MaxLine: 100}, Config{})
	tel := st.telnet(t)
	w := st.dialRaw(t, "nick=edge", nil)
	tel.expect("*** edge joined")
	line := strings.Repeat("a", 100) + "\r\n" // the plain limit: --max-line and a line end
	w.write(clientFrame(finBit|opText, []byte(line), -1))
	tel.expect("<edge> " + line[:100])
	line = strings.Repeat("b", 100) + "\r\n"
	w.write(clientFrame(opText, []byte(line[:60]), -1))
	w.write(clientFrame(finBit|opPing, []byte("p"), -1))
	w.write(clientFrame(finBit|opCont, []byte(line[60:]), -1))
	tel.expect("<edge> " + line[:100])
}

// A client library's message over the limit gets the limit in words,
// as a telnet user's long line does, in either protocol.
func TestOversizeMessageSaysTheLimit(t *testing.T) {
	st := start(t, tcpserver.HubConfig{MaxLine: 100}, Config{})
	for _, tc := range []struct {
		w     *wsClient
		limit int
	}{
		{st.plain(t, ""), 102},
		{st.jsonClient(t, ""), 2*100 + 256},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tc.w.c.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), 2*tc.limit))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		code, reason := tc.w.closeStatus()
		if want := fmt.Sprintf("message too big: more than %d bytes", tc.limit); code != websocket.StatusMessageTooBig || reason != want {
			t.Fatalf("close %v %q, want 1009 %q", code, reason, want)
		}
	}
}

// A text message that is not UTF-8 ends the connection with 1007 (RFC
// 6455, section 8.1), in either protocol, however it is cut into
// fragments: the whole message is checked, not each frame. What the
// member said before it is still said; the bad message is not.
func TestInvalidUTF8TextClosesWith1007(t *testing.T) {
	for _, tc := range []struct {
		name   string
		json   bool
		frames [][]byte
	}{
		{"plain", false, [][]byte{clientFrame(finBit|opText, []byte("bad \xff line"), -1)}},
		{"JSON", true, [][]byte{clientFrame(finBit|opText, []byte(`{"type":"message","text":"bad `+"\xff"+` line"}`), -1)}},
		{"a character cut short at the end of the message", false, [][]byte{
			clientFrame(opText, []byte("bad "), -1),
			clientFrame(finBit|opCont, []byte("line \xc3"), -1),
		}},
		{"an invalid byte alone in a fragment", false, [][]byte{
			clientFrame(opText, []byte("bad "), -1),
			clientFrame(opCont, []byte("\xff"), -1),
			clientFrame(finBit|opCont, []byte(" line"), -1),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := start(t, tcpserver.HubConfig{}, Config{})
			tel := st.telnet(t)
			var extra []string
			if tc.json {
				extra = append(extra, "Sec-WebSocket-Protocol: "+JSONProtocol)
			}
			w := st.dialRaw(t, "nick=bad", nil, extra...)
			tel.expect("*** bad joined")
			first := "first line\n"
			if tc.json {
				first = `{"type":"message","text":"first line"}`
			}
			var b []byte
			b = append(b, clientFrame(finBit|opText, []byte(first), -1)...)
			for _, f := range tc.frames {
				b = append(b, f...)
			}
			w.write(b)
			code, reason := w.closeFrame(2 * time.Second)
			if code != websocket.StatusInvalidFramePayloadData || reason == "" {
				t.Fatalf("close %v %q, want 1007 with a reason", code, reason)
			}
			tel.expect("<bad> first line")
			if line := tel.expect("*** bad left"); !strings.Contains(line, "invalid UTF-8") {
				t.Fatalf("telnet saw %q after the first line", line)
			}
			// The client answers the close; the server then hangs up.
			w.write(clientFrame(finBit|opClose, closePayload(websocket.StatusInvalidFramePayloadData, ""), -1))
			if _, _, err := w.frame(2 * time.Second); err == nil {
				t.Fatal("a frame after the close frame")
			}
		})
	}
}

// UTF-8 split between fragments is one character; a plain binary frame
// (websockify-style clients) is lines as before, invalid bytes cleaned.
func TestFragmentedUTF8AndBinaryLinesPass(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	tel := st.telnet(t)
	w := st.dialRaw(t, "nick=frag", nil)
	tel.expect("*** frag joined")
	w.write(slices.Concat(
		clientFrame(opText, []byte("caf\xc3"), -1),
		clientFrame(finBit|opPing, nil, -1),
		clientFrame(finBit|opCont, []byte("\xa9 au lait\n"), -1),
	))
	tel.expect("<frag> café au lait")
	w.write(clientFrame(finBit|opBinary, []byte("bin \xff ary\r\n"), -1))
	tel.expect("<frag> bin \uFFFD ary")
	w.write(clientFrame(finBit|opText, []byte("still here"), -1))
	tel.expect("<frag> still here")
}

// The library answers a client's close frame with the same code and
// reason. A reason that is not UTF-8 is answered with 1007 instead: the
// server never sends a close reason that is not UTF-8 (closeFrame checks).
func TestCloseReasonNotUTF8IsNotEchoed(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	for _, tc := range []struct {
		reason string
		want   websocket.StatusCode
	}{
		{"bye", websocket.StatusNormalClosure},
		{"bye \xff\xfe", websocket.StatusInvalidFramePayloadData},
		{"\xc3", websocket.StatusInvalidFramePayloadData},
	} {
		w := st.dialRaw(t, "", nil)
		w.text(2 * time.Second) // the welcome: the member is in
		w.write(clientFrame(finBit|opClose, closePayload(websocket.StatusNormalClosure, tc.reason), -1))
		code, reason := w.closeFrame(2 * time.Second)
		if code != tc.want {
			t.Fatalf("close %q answered with %v %q, want %v", tc.reason, code, reason, tc.want)
		}
		if code == websocket.StatusNormalClosure && reason != tc.reason {
			t.Fatalf("close %q answered with %q", tc.reason, reason)
		}
	}
}

// A complete message is said at once, even when the first bytes of the
// next frame came with it: the reader holds a member's lines only while
// a whole message more is already there to read. Several whole ones
// that came together are still said as one batch.
func TestCompleteMessageIsNotHeldForAnIncompleteOne(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	tel := st.telnet(t)
	obs := st.jsonClient(t, "nick=obs")
	w := st.dialRaw(t, "nick=half", nil)
	tel.expect("*** half joined")

	next := clientFrame(finBit|opText, []byte("second"), -1)
	w.write(slices.Concat(clientFrame(finBit|opText, []byte("first"), -1), next[:2]))
	tel.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	line, err := tel.r.ReadString('\n')
	if err != nil || !strings.Contains(line, "<half> first") {
		t.Fatalf("within 500 ms, with the next frame incomplete: %q, %v", line, err)
	}
	w.write(next[2:])
	tel.expect("<half> second")

	// Three whole messages and the start of a fourth: one batch of three.
	next = clientFrame(finBit|opText, []byte("d"), -1)
	w.write(slices.Concat(clientFrame(finBit|opText, []byte("a"), -1), clientFrame(finBit|opPing, nil, -1),
		clientFrame(finBit|opText, []byte("b"), -1), clientFrame(finBit|opText, []byte("c"), -1), next[:1]))
	ev := obs.expectEvent("batch", nil)
	if len(ev.Events) != 3 || ev.Events[0].Text != "a" || ev.Events[2].Text != "c" {
		t.Fatalf("batch = %+v", ev)
	}
	w.write(next[1:])
	if ev := obs.expectEvent("message", func(e event) bool { return e.From == "half" }); ev.Text != "d" {
		t.Fatalf("after the batch: %+v", ev)
	}
}
