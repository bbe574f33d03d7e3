package tcpserver

import "testing"

func TestLineKeyRoundTrip(t *testing.T) {
	for _, k := range []LineKey{{ID: 1}, {ID: 1764500000000000}, {Node: "a1b2", ID: 7}, {Node: "node-2", ID: 9}} {
		got, err := ParseLineKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseLineKey(%q) = %+v, %v; want %+v", k.String(), got, err, k)
		}
	}
}

func TestParseLineKeyRefuses(t *testing.T) {
	for _, s := range []string{"", "0", "-5", "x", "a-", "a-0", "a-x", "1.5", "18446744073709551616", string(make([]byte, 81))} {
		if k, err := ParseLineKey(s); err == nil {
			t.Errorf("ParseLineKey(%q) = %+v, want an error", s, k)
		}
	}
}
