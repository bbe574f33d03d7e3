package main

import "testing"

func TestLastLine(t *testing.T) {
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"blank", "\r\n \r\n", ""},
		{"one line", "*** too many connections from your address\r\n", "*** too many connections from your address"},
		{"last of several", "*** Welcome\r\n<a> hi\r\n*** disconnected: too slow\r\n", "*** disconnected: too slow"},
		{"no newline at the end", "<a> hi\r\n*** partial", "*** partial"},
		{"control bytes escaped", "\x1b[2Jbell\x07\r\n", `\x1b[2Jbell\a`},
		{"not ASCII escaped", "caf\xc3\xa9\n", `caf\u00e9`},
		{"cut at 120 bytes", string(long) + "\n", string(long[:120])},
	} {
		if got := lastLine([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: lastLine(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestErrorLinesCountsRefusedLines(t *testing.T) {
	for _, tt := range []struct {
		name   string
		pieces []string
		msgEnd bool // each piece is a WebSocket message
		want   int64
	}{
		{"none", []string{"*** Welcome\r\n<a> hi\r\n"}, false, 0},
		{"one", []string{"<a> hi\r\n! the room is busy: that line was not sent\r\n"}, false, 1},
		{"split over reads", []string{"<a> hi\r\n! the room is bu", "sy: those 3 lines were not sent\r\n! slow", " down\r\n"}, false, 4},
		{"messages", []string{"! the room is busy: those 12 lines were not sent", "<a> ! not an error", "! slow down"}, true, 13},
		{"a line starting the stream", []string{"! x\r\n"}, false, 1},
	} {
		var e errorLines
		var got int64
		for _, p := range tt.pieces {
			got += e.feed([]byte(p), false)
			if tt.msgEnd {
				got += e.feed(nil, true)
			}
		}
		if got != tt.want {
			t.Errorf("%s: %d refused lines, want %d", tt.name, got, tt.want)
		}
	}
}
