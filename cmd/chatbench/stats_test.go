package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistLogGamma(t *testing.T) {
	if got := math.Log(histGamma); math.Abs(got-histLogGamma) > 1e-15 {
		t.Fatalf("histLogGamma = %v, ln(histGamma) = %v", histLogGamma, got)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values func() []int64
	}{
		{"uniform 1..10000", func() []int64 {
			v := make([]int64, 10000)
			for i := range v {
				v[i] = int64(i + 1)
			}
			return v
		}},
		{"latencies in ns", func() []int64 {
			r := rand.New(rand.NewPCG(1, 2))
			v := make([]int64, 50000)
			for i := range v {
				v[i] = int64(r.ExpFloat64()*300e3) + 20e3 // ~20µs floor, mean 320µs
			}
			return v
		}},
		{"wide range", func() []int64 {
			var v []int64
			for x := int64(1); x < 1e12; x = x*3 + 1 {
				v = append(v, x)
			}
			return v
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := tt.values()
			h := newHistogram()
			for _, v := range vals {
				h.add(v)
			}
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				rank := int(math.Ceil(q*float64(len(sorted)))) - 1
				exact := float64(sorted[max(rank, 0)])
				got := float64(h.quantile(q))
				// Within the bucket accuracy, plus one unit for tiny integers.
				if math.Abs(got-exact) > exact*histAccuracy+1 {
					t.Errorf("q%v = %v, exact %v", q, got, exact)
				}
			}
			if got := h.quantile(1); got != sorted[len(sorted)-1] {
				t.Errorf("max = %d, want %d", got, sorted[len(sorted)-1])
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	h := newHistogram()
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram should report 0")
	}
	h.add(-5) // rounding can make a latency negative; it counts as 0
	h.add(0)
	if got := h.quantile(0.99); got != 0 {
		t.Fatalf("q99 of zeros = %d", got)
	}
	h.add(math.MaxInt64) // beyond the last bucket: clamped, max stays exact
	if got := h.quantile(1); got != math.MaxInt64 {
		t.Fatalf("max = %d", got)
	}

	a, b := newHistogram(), newHistogram()
	for i := int64(1); i <= 100; i++ {
		a.add(i * 1000)
		b.add(i * 1000000)
	}
	a.merge(b)
	a.merge(newHistogram())
	if a.n != 200 || a.min != 1000 || a.max != 100000000 {
		t.Fatalf("merge: n=%d min=%d max=%d", a.n, a.min, a.max)
	}
	if got := a.quantile(0.5); math.Abs(float64(got)-100000) > 1000 {
		t.Fatalf("merged median = %d, want ~100000", got)
	}
}

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name      string
		seqs      []int64
		sent      int64
		cutOff    bool // receiver disconnected: the tail is not counted
		wantLost  int64
		wantDup   int64
		wantReord int64
		wantRecv  int64
	}{
		{"in order", []int64{0, 1, 2, 3}, 4, false, 0, 0, 0, 4},
		{"nothing received", nil, 5, false, 5, 0, 0, 0},
		{"lost in the middle", []int64{0, 1, 3, 4}, 5, false, 1, 0, 0, 4},
		{"lost at the end", []int64{0, 1, 2}, 5, false, 2, 0, 0, 3},
		{"lost at the end, cut off", []int64{0, 1, 2}, 5, true, 0, 0, 0, 3},
		{"hole counted even when cut off", []int64{0, 2}, 5, true, 1, 0, 0, 2},
		{"lost at the start", []int64{2, 3}, 4, false, 2, 0, 0, 2},
		{"duplicate", []int64{0, 1, 1, 2}, 3, false, 0, 1, 0, 3},
		{"duplicate of an old one", []int64{0, 1, 2, 3, 0}, 4, false, 0, 1, 0, 4},
		{"swapped pair", []int64{0, 2, 1, 3}, 4, false, 0, 0, 1, 4},
		{"late fill of a wide gap", []int64{0, 5, 3, 1, 4, 2}, 6, false, 0, 0, 4, 6},
		{"partly filled gap", []int64{0, 6, 3}, 7, false, 4, 0, 1, 3},
		{"reordered then duplicated", []int64{1, 0, 0}, 2, false, 0, 1, 1, 2},
		{"gap edges", []int64{0, 9, 1, 8, 5}, 10, false, 5, 0, 3, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr seqTracker
			for _, s := range tt.seqs {
				tr.observe(s)
			}
			if got := tr.lost(tt.sent, !tt.cutOff); got != tt.wantLost {
				t.Errorf("lost = %d, want %d", got, tt.wantLost)
			}
			if tr.duplicated != tt.wantDup || tr.reordered != tt.wantReord || tr.received != tt.wantRecv {
				t.Errorf("dup %d reordered %d received %d, want %d %d %d",
					tr.duplicated, tr.reordered, tr.received, tt.wantDup, tt.wantReord, tt.wantRecv)
			}
		})
	}
}

// TestSeqTrackerRandom shuffles, drops and repeats a stream and checks the
// tracker against a plain set.
func TestSeqTrackerRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		const sent = 300
		var stream []int64
		for s := range int64(sent) {
			if r.IntN(10) == 0 {
				continue // lost
			}
			stream = append(stream, s)
			if r.IntN(20) == 0 {
				stream = append(stream, s) // duplicated
			}
		}
		for range 10 { // local reordering
			i := r.IntN(len(stream))
			j := min(i+r.IntN(5), len(stream)-1)
			stream[i], stream[j] = stream[j], stream[i]
		}
		var tr seqTracker
		seen := map[int64]bool{}
		var dups int64
		for _, s := range stream {
			fresh := tr.observe(s)
			if fresh == seen[s] {
				t.Fatalf("round %d: observe(%d) fresh=%v, seen before=%v", round, s, fresh, seen[s])
			}
			if seen[s] {
				dups++
			}
			seen[s] = true
		}
		if want := int64(sent - len(seen)); tr.lost(sent, true) != want {
			t.Fatalf("round %d: lost %d, want %d", round, tr.lost(sent, true), want)
		}
		if tr.duplicated != dups || tr.received != int64(len(seen)) {
			t.Fatalf("round %d: dup %d received %d, want %d %d", round, tr.duplicated, tr.received, dups, len(seen))
		}
	}
}
