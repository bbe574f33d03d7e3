package main

import (
	"bytes"
	"slices"
	"testing"
)

// scanPieces feeds the pieces in order, then ends the message, and returns
// every tag found.
func scanPieces(pieces [][]byte, endMessage bool) []tag {
	var s tagScanner
	var got []tag
	emit := func(t tag) { got = append(got, t) }
	for _, p := range pieces {
		s.feed(p, emit)
	}
	if endMessage {
		s.endMessage(emit)
	}
	return got
}

func strs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestTagScanner(t *testing.T) {
	tests := []struct {
		name   string
		pieces [][]byte
		end    bool // a WebSocket text message ends after the pieces
		want   []tag
	}{
		{"plain line", strs("bench 3 17 1764032000123456789\n"), false,
			[]tag{{3, 17, 1764032000123456789}}},
		{"guest prefix", strs("<guest-12> bench 0 5 99\n"), false, []tag{{0, 5, 99}}},
		{"python tuple prefix", strs("<('127.0.0.1', 5555)> bench 1 2 3\n"), false, []tag{{1, 2, 3}}},
		{"json", strs(`{"type":"message","text":"bench 3 17 42"}`), false, []tag{{3, 17, 42}}},
		{"json with name", strs(`{"type":"message","from":"guest-1","text":"bench 0 0 7","ts":12}`), false, []tag{{0, 0, 7}}},
		{"several per chunk", strs("bench 0 1 10\nbench 0 2 20\n<x> bench 1 1 30\n"), false,
			[]tag{{0, 1, 10}, {0, 2, 20}, {1, 1, 30}}},
		{"json array of events", strs(`[{"text":"bench 0 1 1"},{"text":"bench 0 2 2"}]`), false,
			[]tag{{0, 1, 1}, {0, 2, 2}}},
		{"split inside a number", strs("bench 3 17 17640", "32000\n"), false, []tag{{3, 17, 1764032000}}},
		{"split inside the word", strs("xx ben", "ch 1 2 3\n"), false, []tag{{1, 2, 3}}},
		{"split after the word", strs("bench", " 1 2 3\n"), false, []tag{{1, 2, 3}}},
		{"split before a space", strs("bench 1", " 2 3\n"), false, []tag{{1, 2, 3}}},
		{"split after a space", strs("bench 1 2 ", "3\n"), false, []tag{{1, 2, 3}}},
		{"one byte at a time", strs("b", "e", "n", "c", "h", " ", "4", " ", "5", " ", "6", "\n"), false, []tag{{4, 5, 6}}},
		{"prefix spliced mid-line", strs("<a> bench 0 1 ", "<a> 123\n<a> bench 0 2 5\n"), false, []tag{{0, 2, 5}}},
		{"number at end of stream waits", strs("bench 1 2 3"), false, nil},
		{"number at end of text message", strs("bench 1 2 3"), true, []tag{{1, 2, 3}}},
		{"text message split in pieces", strs("bench 1 2", " 3"), true, []tag{{1, 2, 3}}},
		{"unfinished tag dropped at message end", strs("bench 1 2"), true, nil},
		{"garbage", strs("hello\x00\xff bench x 1 2 bench 1 2\n bench -1 2 3\n"), false, nil},
		{"two integers only", strs("bench 1 2\n"), false, nil},
		{"double space", strs("bench 1  2 3\n"), false, nil},
		{"bench bench", strs("bench bench 7 8 9\n"), false, []tag{{7, 8, 9}}},
		{"word inside a word", strs("workbench 1 2 3\n"), false, []tag{{1, 2, 3}}},
		{"too many digits", strs("bench 1 2 12345678901234567890\n"), false, nil},
		{"int64 overflow", strs("bench 1 2 9999999999999999999\n"), false, nil},
		{"largest int64", strs("bench 1 2 9223372036854775807\n"), false, []tag{{1, 2, 9223372036854775807}}},
		{"digits run on across pieces", strs("bench 1 2 1234567890", "1234567890\n"), false, nil},
		{"empty pieces", strs("", "bench 1 1 1", "", "\n"), false, []tag{{1, 1, 1}}},
		{"crlf", strs("bench 2 3 4\r\n"), false, []tag{{2, 3, 4}}},
		{"tag then letters", strs("bench 2 3 4x"), false, []tag{{2, 3, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scanPieces(tt.pieces, tt.end)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTagScannerPendingIsBounded(t *testing.T) {
	var s tagScanner
	noop := func(tag) {}
	// A stream of "bench 1 2 " and digits that never ends a tag must not
	// make the scanner hold more than one tag's worth.
	s.feed([]byte("bench 1 2 "), noop)
	for range 100 {
		s.feed([]byte("1"), noop)
		if len(s.pending) > maxTagLen {
			t.Fatalf("pending grew to %d bytes", len(s.pending))
		}
	}
	s.feed(bytes.Repeat([]byte("bench"), 100), noop)
	if len(s.pending) > maxTagLen {
		t.Fatalf("pending grew to %d bytes", len(s.pending))
	}
}

func TestAppendTagRoundTrip(t *testing.T) {
	in := tag{sender: 12, seq: 345, sentNs: 1764032000123456789}
	line := append(appendTag(nil, in), '\n')
	if string(line) != "bench 12 345 1764032000123456789\n" {
		t.Fatalf("appendTag = %q", line)
	}
	got := scanPieces([][]byte{line}, false)
	if len(got) != 1 || got[0] != in {
		t.Fatalf("scan = %v, want [%v]", got, in)
	}
}

// FuzzScanTags checks that how a stream is cut into pieces never changes
// the tags found, that every tag written into the stream is found, and
// that the scanner never holds more than one tag's worth of bytes.
func FuzzScanTags(f *testing.F) {
	f.Add([]byte("<guest-1> bench 3 17 1764032000123456789\n"), uint16(20), uint16(30))
	f.Add([]byte(`{"type":"message","text":"bench 0 1 2"}`), uint16(5), uint16(33))
	f.Add([]byte("benbench 1 2 3bench 4 5 6\n"), uint16(3), uint16(14))
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16) {
		a := int(cut1) % (len(data) + 1)
		b := int(cut2) % (len(data) + 1)
		a, b = min(a, b), max(a, b)
		for _, end := range []bool{false, true} {
			whole := scanPieces([][]byte{data}, end)
			pieces := scanPieces([][]byte{data[:a], data[a:b], data[b:]}, end)
			if !slices.Equal(whole, pieces) {
				t.Fatalf("end=%v cuts %d,%d: whole %v, pieces %v", end, a, b, whole, pieces)
			}
			for _, tg := range whole {
				if tg.sender < 0 || tg.seq < 0 || tg.sentNs < 0 {
					t.Fatalf("negative field in %v", tg)
				}
			}
		}

		// A tag written after arbitrary bytes and a separator is found
		// last (nothing after it can change it).
		want := tag{sender: int64(cut1), seq: int64(cut2), sentNs: int64(len(data))}
		stream := append(append(append([]byte(nil), data...), '\n'), appendTag(nil, want)...)
		stream = append(stream, '\n')
		got := scanPieces([][]byte{stream[:a], stream[a:b], stream[b:]}, false)
		if len(got) == 0 || got[len(got)-1] != want {
			t.Fatalf("tag %v after %q not found last: %v", want, data, got)
		}

		var s tagScanner
		for _, p := range [][]byte{data[:a], data[a:b], data[b:]} {
			s.feed(p, func(tag) {})
			if len(s.pending) > maxTagLen {
				t.Fatalf("pending %d bytes > %d", len(s.pending), maxTagLen)
			}
		}
	})
}
