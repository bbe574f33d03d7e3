package tcpserver

import (
	"context"
	"maps"
	"slices"
	"sync"
)

// MemState is a [StateStore] in memory: what a single node without
// --data keeps of bans, topics, modes and registered names, for as long
// as the process lives. The hub makes one when HubConfig.State is nil.
//
// It has no goroutine of its own. Watch returns once it watches, and a
// change reaches each watcher in the goroutine that made it, after the
// store's lock is let go: so a watcher may itself Put or Delete (its own
// change then reaches it after the one it is handling, in order), and a
// change is seen by every watcher before Put returns, unless that watcher
// is busy with an earlier change in another goroutine, which delivers
// this one too when it is done.
type MemState struct {
	mu       sync.Mutex
	buckets  map[string]map[string][]byte
	watchers map[string][]*memWatcher
}

// NewMemState returns an empty store.
func NewMemState() *MemState {
	return &MemState{buckets: make(map[string]map[string][]byte), watchers: make(map[string][]*memWatcher)}
}

// A memWatcher is one Watch: its changes queue here and are handed to
// fn in order by whichever goroutine finds nobody handing them over.
type memWatcher struct {
	ctx context.Context
	fn  func(key string, value []byte)

	mu       sync.Mutex
	queue    []memChange
	draining bool
}

type memChange struct {
	key   string
	value []byte
}

// Load returns a copy of every record of bucket.
func (s *MemState) Load(ctx context.Context, bucket string) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.buckets[bucket]))
	for k, v := range s.buckets[bucket] {
		out[k] = slices.Clone(v)
	}
	return out, nil
}

// Put sets key in bucket to a copy of value.
func (s *MemState) Put(ctx context.Context, bucket, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	value = slices.Clone(value)
	if value == nil {
		value = []byte{} // nil tells watchers of a delete
	}
	s.change(bucket, key, value)
	return nil
}

// Delete removes key from bucket.
func (s *MemState) Delete(ctx context.Context, bucket, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.change(bucket, key, nil)
	return nil
}

// change makes the change and queues it for the bucket's watchers in the
// store's order, then hands each watcher what it has queued.
func (s *MemState) change(bucket, key string, value []byte) {
	s.mu.Lock()
	b := s.buckets[bucket]
	if value == nil {
		delete(b, key)
	} else {
		if b == nil {
			b = make(map[string][]byte)
			s.buckets[bucket] = b
		}
		b[key] = value
	}
	ws := s.watchers[bucket]
	live := ws[:0]
	for _, w := range ws {
		if w.ctx.Err() == nil {
			live = append(live, w)
		}
	}
	clear(ws[len(live):])
	s.watchers[bucket] = live
	live = slices.Clone(live)
	for _, w := range live {
		w.mu.Lock()
		// Each watcher gets its own copy: fn may keep it.
		w.queue = append(w.queue, memChange{key, slices.Clone(value)})
		w.mu.Unlock()
	}
	s.mu.Unlock()
	for _, w := range live {
		w.drain()
	}
}

// drain hands w's queued changes to fn, unless another goroutine is
// doing so already (it will hand over these too).
func (w *memWatcher) drain() {
	w.mu.Lock()
	if w.draining {
		w.mu.Unlock()
		return
	}
	w.draining = true
	for len(w.queue) > 0 && w.ctx.Err() == nil {
		ch := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		w.fn(ch.key, ch.value)
		w.mu.Lock()
	}
	if w.ctx.Err() != nil {
		w.queue = nil
	}
	w.draining = false
	w.mu.Unlock()
}

// Watch calls fn for every change to bucket from now on, until ctx ends.
// It returns at once.
func (s *MemState) Watch(ctx context.Context, bucket string, fn func(key string, value []byte)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers[bucket] = append(s.watchers[bucket], &memWatcher{ctx: ctx, fn: fn})
	return nil
}

// keys returns the keys of bucket, sorted; for tests.
func (s *MemState) keys(bucket string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.buckets[bucket]))
}
