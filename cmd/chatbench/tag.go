package main

import (
	"bytes"
	"strconv"
)

// tagPrefix starts every line chatbench sends: "bench <sender> <seq> <send-ns>".
const tagPrefix = "bench "

// maxDigits bounds each integer of a tag. 19 digits hold any int64 we send
// (a UnixNano stays at 19 digits until the year 2286); a longer run of digits
// is garbage, and the bound keeps the scanner's pending tail small.
const maxDigits = 19

// maxTagLen is the longest tag the scanner can hold back between reads.
const maxTagLen = len(tagPrefix) + 3*maxDigits + 2

// tag is one parsed "bench <sender> <seq> <send-ns>".
type tag struct {
	sender int64
	seq    int64
	sentNs int64
}

// appendTag writes the tag text (no line ending) to dst.
func appendTag(dst []byte, t tag) []byte {
	dst = append(dst, tagPrefix...)
	dst = strconv.AppendInt(dst, t.sender, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, t.seq, 10)
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, t.sentNs, 10)
}

// tagScanner finds tags anywhere in a byte stream that arrives in pieces.
// Servers prefix lines, wrap them in JSON, or join several in one read, so it
// looks for every "bench " followed by three integers. A piece that ends in
// the middle of a tag (or of the word "bench ") is held back and completed by
// the next piece, because a number at the very end of a read may go on in the
// next one.
//
// A tagScanner is owned by one reader goroutine; it is not safe for
// concurrent use.
type tagScanner struct {
	pending []byte // the held-back start of a possible tag, at most maxTagLen
	joined  []byte // scratch for pending+piece, reused between calls
}

// feed scans piece, continuing any tag held back from earlier pieces, and
// calls emit for each complete tag in stream order.
func (s *tagScanner) feed(piece []byte, emit func(tag)) {
	data := piece
	if len(s.pending) > 0 {
		s.joined = append(append(s.joined[:0], s.pending...), piece...)
		data = s.joined
	}
	keep := scanTags(data, false, emit)
	// data may alias joined, so copy the tail out before it is reused.
	s.pending = append(s.pending[:0], data[keep:]...)
}

// endMessage marks a message boundary (the end of a WebSocket text frame):
// a tag that ends exactly here is complete, and anything else held back is
// dropped, since a message does not continue in the next one.
func (s *tagScanner) endMessage(emit func(tag)) {
	if len(s.pending) > 0 {
		scanTags(s.pending, true, emit)
	}
	s.pending = s.pending[:0]
}

// scanTags emits every complete tag in data and returns the offset of the
// first byte that may still start a tag once more data arrives (len(data)
// when nothing needs keeping). With atEnd, data is known to end there, so a
// tag whose last number runs to the end is complete.
func scanTags(data []byte, atEnd bool, emit func(tag)) int {
	pos := 0
	for pos < len(data) {
		i := bytes.Index(data[pos:], []byte(tagPrefix))
		if i < 0 {
			break
		}
		start := pos + i
		t, end, st := parseTagAt(data, start+len(tagPrefix), atEnd)
		switch st {
		case tagComplete:
			emit(t)
			pos = end
		case tagIncomplete:
			return start
		default: // not a tag; the next "bench " may start one byte later
			pos = start + 1
		}
	}
	if atEnd {
		return len(data)
	}
	return len(data) - partialPrefixLen(data[pos:])
}

// partialPrefixLen is the length of the longest suffix of b that is a proper
// prefix of tagPrefix ("b", "be", ... "bench").
func partialPrefixLen(b []byte) int {
	for n := min(len(tagPrefix)-1, len(b)); n > 0; n-- {
		if bytes.HasSuffix(b, []byte(tagPrefix[:n])) {
			return n
		}
	}
	return 0
}

type tagState int

const (
	tagInvalid tagState = iota
	tagIncomplete
	tagComplete
)

// parseTagAt reads "<int> <int> <int>" from data[i:]. It reports
// tagIncomplete when data ends before the tag can be decided (and !atEnd).
func parseTagAt(data []byte, i int, atEnd bool) (tag, int, tagState) {
	var nums [3]int64
	for k := range nums {
		start := i
		var v int64
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			if i-start == maxDigits {
				return tag{}, 0, tagInvalid
			}
			d := int64(data[i] - '0')
			if v > (1<<63-1-d)/10 {
				return tag{}, 0, tagInvalid // would overflow int64
			}
			v = v*10 + d
			i++
		}
		if i == len(data) && !(atEnd && k == 2 && i > start) {
			if atEnd {
				return tag{}, 0, tagInvalid
			}
			return tag{}, 0, tagIncomplete
		}
		if i == start {
			return tag{}, 0, tagInvalid
		}
		nums[k] = v
		if k < 2 {
			if data[i] != ' ' {
				return tag{}, 0, tagInvalid
			}
			i++
		}
	}
	return tag{sender: nums[0], seq: nums[1], sentNs: nums[2]}, i, tagComplete
}
