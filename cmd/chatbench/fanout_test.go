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
