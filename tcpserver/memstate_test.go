package tcpserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestMemStateLoadPutDelete(t *testing.T) {
	ctx := context.Background()
	s := NewMemState()
	v := []byte("one")
	if err := s.Put(ctx, "bans", "a", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X' // the store keeps its own copy
	s.Put(ctx, "bans", "b", []byte("two"))
	s.Put(ctx, "topics", "a", []byte("other bucket"))
	got, err := s.Load(ctx, "bans")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["a"]) != "one" || string(got["b"]) != "two" {
		t.Fatalf("Load = %q", got)
	}
	got["a"][0] = 'Y' // nor does Load hand out the store's
	if err := s.Delete(ctx, "bans", "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "bans", "missing"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	got, _ = s.Load(ctx, "bans")
	if len(got) != 1 || string(got["a"]) != "one" {
		t.Fatalf("after Delete, Load = %q", got)
	}
	if got, _ := s.Load(ctx, "nothing"); len(got) != 0 {
		t.Errorf("Load of an empty bucket = %q", got)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(done, "bans", "c", nil); err == nil {
		t.Error("Put with an ended context succeeded")
	}
}

// TestMemStateWatchers: several watchers of a bucket each see every change
// made after they began, in order, deletes as nil; one whose context ended
// sees no more; one that changes the store from its callback does not
// deadlock and sees its own change after the one it handled.
func TestMemStateWatchers(t *testing.T) {
	ctx := context.Background()
	s := NewMemState()
	s.Put(ctx, "bans", "before", []byte("x"))

	type seen struct {
		mu  sync.Mutex
		got []string
	}
	record := func(w *seen) func(string, []byte) {
		return func(k string, v []byte) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if v == nil {
				w.got = append(w.got, k+"=deleted")
			} else {
				w.got = append(w.got, k+"="+string(v))
			}
		}
	}
	var w1, w2, w3 seen
	s.Watch(ctx, "bans", record(&w1))
	s.Watch(ctx, "bans", record(&w2))
	ctx3, cancel3 := context.WithCancel(ctx)
	s.Watch(ctx3, "bans", record(&w3))
	var reentered []string
	s.Watch(ctx, "bans", func(k string, v []byte) {
		reentered = append(reentered, k)
		if k == "a" && string(v) == "1" {
			s.Put(ctx, "bans", "from-watcher", []byte("y"))
		}
	})

	s.Put(ctx, "bans", "a", []byte("1"))
	s.Put(ctx, "topics", "a", []byte("not watched"))
	cancel3()
	s.Put(ctx, "bans", "a", []byte("2"))
	s.Delete(ctx, "bans", "a")

	want := []string{"a=1", "from-watcher=y", "a=2", "a=deleted"}
	for i, w := range []*seen{&w1, &w2} {
		if !slices.Equal(w.got, want) {
			t.Errorf("watcher %d saw %q, want %q", i+1, w.got, want)
		}
	}
	if !slices.Equal(w3.got, want[:2]) {
		t.Errorf("watcher whose context ended saw %q, want %q", w3.got, want[:2])
	}
	if !slices.Equal(reentered, []string{"a", "from-watcher", "a", "a"}) {
		t.Errorf("re-entering watcher saw %q", reentered)
	}
	if !slices.Equal(s.keys("bans"), []string{"before", "from-watcher"}) {
		t.Errorf("keys = %q", s.keys("bans"))
	}
}

// TestMemStateWatchOrderUnderConcurrency: changes made at once from many
// goroutines reach a watcher in the store's order, so what it last saw
// of each key is what the store holds.
func TestMemStateWatchOrderUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := NewMemState()
	var mu sync.Mutex
	last := map[string]string{}
	s.Watch(ctx, "b", func(k string, v []byte) {
		mu.Lock()
		last[k] = string(v)
		mu.Unlock()
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				s.Put(ctx, "b", fmt.Sprint("k", i%5), []byte(fmt.Sprint(g, "-", i)))
			}
		})
	}
	wg.Wait()
	stored, _ := s.Load(ctx, "b")
	mu.Lock()
	defer mu.Unlock()
	for k, v := range stored {
		if last[k] != string(v) {
			t.Errorf("key %s: watcher last saw %q, store holds %q", k, last[k], v)
		}
	}
}
