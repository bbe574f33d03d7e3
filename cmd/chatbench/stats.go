package main

import (
	"math"
	"slices"
)

// histogram keeps a count per logarithmic bucket, each about 2% wide, so any
// percentile is within 1% of the true value, in fixed memory (a few KiB)
// however many samples it holds. It has no lock: each owner keeps its own and
// merges at the end.
type histogram struct {
	counts []uint64 // counts[i] holds values in (gamma^(i-1), gamma^i]
	n      uint64
	min    int64
	max    int64
}

const (
	histAccuracy = 0.01
	histBuckets  = 1400 // gamma^1400 is about 1.2e12: values up to ~20 minutes in ns
)

// histGamma is (1+a)/(1-a): reporting a bucket's middle 2*g^i/(g+1) is then
// within a relative error a of every value in it.
const histGamma = (1 + histAccuracy) / (1 - histAccuracy)

// histLogGamma is ln(histGamma) = 2*atanh(0.01), written out because Go
// constants cannot call math.Log; TestHistLogGamma checks it.
const histLogGamma = 0.020000666706669525

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, histBuckets+1), min: math.MaxInt64}
}

func bucketOf(v int64) int {
	if v <= 1 {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(v)) / histLogGamma))
	return min(i, histBuckets)
}

// add records one value (negative values count as 0: clocks are the same
// machine's, so only rounding can make a latency negative).
func (h *histogram) add(v int64) {
	v = max(v, 0)
	h.counts[bucketOf(v)]++
	h.n++
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// quantile returns the value at q (0..1); 0 when empty. q=1 is the exact max.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == 0 {
				return min(h.max, 1)
			}
			mid := 2 * math.Pow(histGamma, float64(i)) / (histGamma + 1)
			return min(max(int64(mid), h.min), h.max)
		}
	}
	return h.max
}

// seqRange is the half-open range [lo, hi) of missing sequence numbers.
type seqRange struct{ lo, hi int64 }

// seqTracker follows one sender's sequence numbers as one receiver sees them.
// A number above the next expected one opens a gap; a number that later
// fills a gap was reordered; a number seen before is a duplicate. Whatever
// is still in a gap at the end was lost. Gaps are kept as ranges, so memory
// stays small unless the stream is badly torn.
//
// Owned by the receiver goroutine that observes the stream.
type seqTracker struct {
	next       int64      // one past the highest sequence number seen
	gaps       []seqRange // sorted, disjoint, all below next
	received   int64      // distinct sequence numbers seen
	duplicated int64
	reordered  int64
}

// observe records seq and reports whether it was seen for the first time.
func (t *seqTracker) observe(seq int64) bool {
	switch {
	case seq == t.next:
		t.next++
	case seq > t.next:
		t.gaps = append(t.gaps, seqRange{t.next, seq})
		t.next = seq + 1
	default:
		i, found := slices.BinarySearchFunc(t.gaps, seq, func(r seqRange, s int64) int {
			switch {
			case r.hi <= s:
				return -1
			case r.lo > s:
				return 1
			}
			return 0
		})
		if !found {
			t.duplicated++
			return false
		}
		t.reordered++
		t.fill(i, seq)
	}
	t.received++
	return true
}

// fill removes seq from gaps[i], which contains it.
func (t *seqTracker) fill(i int, seq int64) {
	r := t.gaps[i]
	switch {
	case r.lo == seq && r.hi == seq+1:
		t.gaps = slices.Delete(t.gaps, i, i+1)
	case r.lo == seq:
		t.gaps[i].lo++
	case r.hi == seq+1:
		t.gaps[i].hi--
	default:
		t.gaps[i].hi = seq
		t.gaps = slices.Insert(t.gaps, i+1, seqRange{seq + 1, r.hi})
	}
}

// lost counts sequence numbers below sent that were never seen. With
// withTail false only holes are counted, not the numbers after the highest
// one seen (for a receiver that was cut off and could not see the rest).
func (t *seqTracker) lost(sent int64, withTail bool) int64 {
	var n int64
	for _, r := range t.gaps {
		n += min(r.hi, sent) - min(r.lo, sent)
	}
	if withTail && sent > t.next {
		n += sent - t.next
	}
	return n
}
