package bridge

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"chatbridge/tcpserver"
)

func TestClientLines(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		want    []string
		garbled string // prefix of the notice, "" for none
	}{
		{"message", `{"type":"message","text":"hi"}`, []string{"hi"}, ""},
		{"message that looks like a command", `{"type":"message","text":"/nick x"}`, []string{"//nick x"}, ""},
		{"message of lines", `{"type":"message","text":"a\r\nb\nc"}`, []string{"a", "b", "c"}, ""},
		{"a lone CR ends a line, as in telnet", `{"type":"message","text":"a\rb\r\r\n/c"}`, []string{"a", "b", "", "//c"}, ""},
		{"command", `{"type":"command","text":"nick bob"}`, []string{"/nick bob"}, ""},
		{"command with slash", `{"type":"command","text":" /who "}`, []string{"/who"}, ""},
		{"command of two lines", `{"type":"command","text":"/nick a\n/quit"}`, nil, "a command is one line"},
		{"not JSON", `hello`, nil, "malformed JSON"},
		{"wrong type", `{"type":"shout","text":"x"}`, nil, "unknown message type"},
		{"text not a string", `{"type":"message","text":5}`, nil, `"text" must be a string`},
		{"keys in either order, white space", ` { "text" : "hi" , "type" : "message" } `, []string{"hi"}, ""},
		{"an empty message", `{"type":"message","text":""}`, nil, ""},

		// Strict: one reading only, whatever parser reads it.
		{"duplicate type", `{"type":"message","type":"command","text":"/me waves"}`, nil, `duplicate key "type"`},
		{"duplicate text", `{"type":"message","text":"a","text":"/quit"}`, nil, `duplicate key "text"`},
		{"key in capitals", `{"TYPE":"command","type":"message","text":"/me x"}`, nil, `unknown key "TYPE"`},
		{"key in mixed case", `{"tYpe":"message","teXt":"x"}`, nil, `unknown key "tYpe"`},
		{"key spelt with an escape is the same key", `{"typ\u0065":"command","text":"/quit"}`, []string{"/quit"}, ""},
		{"text null", `{"type":"message","text":null}`, nil, `"text" must be a string`},
		{"type null", `{"type":null,"text":"x"}`, nil, `"type" must be a string`},
		{"text an object", `{"type":"message","text":{"a":1}}`, nil, `"text" must be a string`},
		{"text an array", `{"type":"message","text":["x"]}`, nil, `"text" must be a string`},
		{"text true", `{"type":"message","text":true}`, nil, `"text" must be a string`},
		{"unknown key", `{"type":"message","text":"x","room":"admin"}`, nil, `unknown key "room"`},
		{"text missing", `{"type":"command"}`, nil, `"text" is missing`},
		{"type missing", `{"text":"hi"}`, nil, `"type" is missing`},
		{"not an object", `["message","hi"]`, nil, "malformed JSON"},
		{"a string", `"hi"`, nil, "malformed JSON"},
		{"null", `null`, nil, "malformed JSON"},
		{"trailing data", `{"type":"message","text":"a"}{"type":"command","text":"/quit"}`, nil, "malformed JSON"},
		{"trailing garbage", `{"type":"message","text":"a"} x`, nil, "malformed JSON"},
		{"truncated", `{"type":"message","text":"a"`, nil, "malformed JSON"},

		// Scrollback: the /history command, strictly too.
		{"history", `{"type":"history"}`, []string{"/history 50"}, ""},
		{"history before a line", `{"type":"history","before":"1796036799656673","limit":20}`, []string{"/history 20 1796036799656673"}, ""},
		{"history before a line of another node", `{"limit":200,"before":"n-1_b-42","type":"history"}`, []string{"/history 200 n-1_b-42"}, ""},
		{"history of a limit only", `{"type":"history","limit":1}`, []string{"/history 1"}, ""},
		{"history limit 0", `{"type":"history","limit":0}`, nil, `"limit" must be a whole number from 1 to 200`},
		{"history limit too big", `{"type":"history","limit":201}`, nil, `"limit" must be a whole number from 1 to 200`},
		{"history limit negative", `{"type":"history","limit":-5}`, nil, `"limit" must be a whole number from 1 to 200`},
		{"history limit a fraction", `{"type":"history","limit":2.5}`, nil, `"limit" must be a whole number from 1 to 200`},
		{"history limit huge", `{"type":"history","limit":1e400}`, nil, `"limit" must be a whole number from 1 to 200`},
		{"history limit a string", `{"type":"history","limit":"50"}`, nil, `"limit" must be a number`},
		{"history limit null", `{"type":"history","limit":null}`, nil, `"limit" must be a number`},
		{"history before a number", `{"type":"history","before":17}`, nil, `"before" must be a string`},
		{"history before not an id", `{"type":"history","before":"abc"}`, nil, `"before" is not a line id`},
		{"history before with a space", `{"type":"history","before":"1 /quit"}`, nil, `"before" is not a line id`},
		{"history before empty", `{"type":"history","before":""}`, nil, `"before" is not a line id`},
		{"history before too long", `{"type":"history","before":"` + strings.Repeat("a", 100) + `-1"}`, nil, `"before" is not a line id`},
		{"history duplicate before", `{"type":"history","before":"1","before":"2"}`, nil, `duplicate key "before"`},
		{"history with text", `{"type":"history","text":"/quit"}`, nil, `"text" is not a key of "history"`},
		{"history unknown key", `{"type":"history","after":"1"}`, nil, `unknown key "after"`},
		{"history key in capitals", `{"type":"history","LIMIT":5}`, nil, `unknown key "LIMIT"`},
		{"a message with before", `{"type":"message","text":"x","before":"1"}`, nil, `"before" is a key of "history" only`},
		{"a command with limit", `{"type":"command","text":"/who","limit":5}`, nil, `"limit" is a key of "history" only`},
		{"history limit then garbage", `{"type":"history","limit":5x}`, nil, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, garbled := clientLines([]byte(tt.msg))
			if !strings.HasPrefix(garbled, tt.garbled) || (tt.garbled == "") != (garbled == "") {
				t.Fatalf("garbled %q, want prefix %q", garbled, tt.garbled)
			}
			if strings.Join(lines, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("lines %q, want %q", lines, tt.want)
			}
		})
	}
}

// Whatever a page sends, clientLines answers lines or a notice, never
// both; no line carries a line break; a message never becomes a command.
// What it takes is one JSON object of exactly the keys "type" and "text",
// each once, both strings, so that any other JSON parser reads it the
// same way.
func FuzzClientLines(f *testing.F) {
	for _, s := range []string{
		`{"type":"message","text":"hi"}`, `{"type":"command","text":"/nick bob"}`,
		`{"type":"message","text":"/quit\n//x\r\ny"}`, `{"type":"command","text":"a\nb"}`,
		`{"type":1}`, `[]`, `{"type":"message","text":"\u001b[2J\u0000"}`, `{`, ``,
		`{"type":"message","type":"command","text":"/me x"}`, `{"TYPE":"command","text":"/quit"}`,
		`{"type":"message","text":null}`, `{"type":"message","text":"x","extra":{}}`,
		`{"type":"message","text":"x"} {}`, `{"typ\u0065":"command","text":"/quit"}`,
		`{"type":"history"}`, `{"type":"history","before":"n1-17","limit":50}`, `{"type":"history","limit":1e2}`,
		`{"type":"history","limit":-0.5e-3}`, `{"type":"message","text":"x","limit":5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		lines, garbled := clientLines(msg)
		if garbled != "" && lines != nil {
			t.Fatalf("both lines %q and notice %q", lines, garbled)
		}
		in, strict := strictlyTypeAndText(msg)
		if garbled == "" && !strict {
			t.Fatalf("took %q, which is not an object of one \"type\" and one \"text\", both strings, nor a history request", msg)
		}
		wellFormed := in.Type == "message" || in.Type == "command" && !strings.ContainsAny(in.Text, "\r\n")
		if in.Type == "history" {
			_, bad := tcpserver.ParseLineKey(in.Before)
			wellFormed = (in.Limit == nil || *in.Limit == float64(int(*in.Limit)) && *in.Limit >= 1 && *in.Limit <= 200) &&
				(in.Before == "" && !in.hasBefore || bad == nil)
			if garbled == "" && (len(lines) != 1 || !strings.HasPrefix(lines[0], "/history ")) {
				t.Fatalf("history request %q became %q", msg, lines)
			}
		}
		if strict && wellFormed && garbled != "" {
			t.Fatalf("refused %q, a well-formed message: %s", msg, garbled)
		}
		for _, line := range lines {
			if strings.ContainsAny(line, "\r\n") {
				t.Fatalf("line %q has a line break", line)
			}
			if in.Type == "message" && strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//") {
				t.Fatalf("message became the command %q", line)
			}
		}
	})
}

func TestLinesEndAsInATerminal(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"one", []string{"one"}},
		{"a\nb", []string{"a", "b"}},
		{"a\r\nb\r\n", []string{"a", "b"}},
		{"a\rb", []string{"a", "b"}},
		{"a\n\nb", []string{"a", "", "b"}},
		{"\r\r", []string{"", ""}},
	}
	for _, tt := range tests {
		var got []string
		for l := range lines([]byte(tt.in)) {
			got = append(got, string(l))
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("lines(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// strictlyTypeAndText reads msg as the JSON decoder's tokens: it reports
// whether msg is one object whose keys are exactly "type" and "text",
// each once, with string values, or "type" ("history") and, if it likes,
// "before" (a string) and "limit" (a number), and nothing after it; and
// what they say.
func strictlyTypeAndText(msg []byte) (in strictMsg, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return in, false
	}
	seen := map[string]bool{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return in, false
		}
		val, err := dec.Token()
		k, _ := key.(string)
		v, isString := val.(string)
		f, isNumber := val.(float64)
		if err != nil || seen[k] {
			return in, false
		}
		seen[k] = true
		switch {
		case k == "type" && isString:
			in.Type = v
		case k == "text" && isString:
			in.Text = v
		case k == "before" && isString:
			in.Before, in.hasBefore = v, true
		case k == "limit" && isNumber:
			in.Limit = &f
		default:
			return in, false
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return in, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return in, false
	}
	if in.Type == "history" {
		return in, seen["type"] && !seen["text"]
	}
	return in, len(seen) == 2 && seen["type"] && seen["text"]
}

// strictMsg is what strictlyTypeAndText reads.
type strictMsg struct {
	Type, Text, Before string
	hasBefore          bool
	Limit              *float64
}

// Over the wire: a message that another parser could read as a command
// gets an error event, and does nothing else; the member stays.
func TestAmbiguousJSONIsRefused(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	tel := st.telnet(t)
	w := st.jsonClient(t, "")
	tel.expect(w.name + " joined")
	for _, msg := range []string{
		`{"type":"message","type":"command","text":"/me runs a command"}`,
		`{"TYPE":"command","type":"message","text":"/me runs a command"}`,
		`{"type":"message","text":null}`,
	} {
		w.send(msg)
		if ev := w.expectEvent("error", nil); !strings.Contains(ev.Text, "key") && !strings.Contains(ev.Text, "must be a string") {
			t.Fatalf("%s: error %q", msg, ev.Text)
		}
	}
	w.send(`{"type":"message","text":"still here"}`)
	if got := tel.expect("still here"); got != "<"+w.name+"> still here" {
		t.Fatalf("telnet got %q; nothing else may have been said", got)
	}
}

// BenchmarkClientLines reads a typical message and a long one, whose
// "<" are escaped as the page's JSON.stringify does not, but Go's
// encoder does.
func BenchmarkClientLines(b *testing.B) {
	for _, tt := range []struct{ name, text string }{
		{"short", "hello, everybody: a line of typical length"},
		{"4000 escaped", strings.Repeat("<", 4000)},
	} {
		msg, _ := json.Marshal(map[string]string{"type": "message", "text": tt.text})
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				clientLines(msg)
			}
		})
	}
}
