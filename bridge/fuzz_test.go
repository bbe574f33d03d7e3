package bridge

import (
	"encoding/json"
	"strings"
	"testing"
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
		{"text not a string", `{"type":"message","text":5}`, nil, "malformed JSON"},
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
func FuzzClientLines(f *testing.F) {
	for _, s := range []string{
		`{"type":"message","text":"hi"}`, `{"type":"command","text":"/nick bob"}`,
		`{"type":"message","text":"/quit\n//x\r\ny"}`, `{"type":"command","text":"a\nb"}`,
		`{"type":1}`, `[]`, `{"type":"message","text":"\u001b[2J\u0000"}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		lines, garbled := clientLines(msg)
		if garbled != "" && lines != nil {
			t.Fatalf("both lines %q and notice %q", lines, garbled)
		}
		var in struct{ Type string }
		json.Unmarshal(msg, &in)
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
