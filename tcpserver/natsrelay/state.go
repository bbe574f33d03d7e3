package natsrelay

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"chatbridge/tcpserver"
)

// The relay is the hub's [tcpserver.StateStore] too: every bucket of
// state ("accounts", "bans", "topics", ...) lives in one JetStream
// key-value bucket, PREFIX_state, as keys BUCKET.KEY, kept by
// Config.Replicas servers, shared by every node and kept across restarts.
// One bucket, so that a NATS account's permissions (README, "Securing
// NATS") name it once, whatever buckets later features add. Keys are
// stored in base64url, so that any key is a valid one; values are sealed
// with the key and the bucket, as everything a node believes from NATS,
// so that a client of NATS without the cluster secret can neither forge
// nor move a record.

// Bounds of the state: a record's sealed value, and the bucket's bytes
// (the oldest records do not go: a full bucket refuses).
const (
	maxStateValue = 64 << 10
	maxStateKey   = 256
	stateBytes    = 256 << 20
	stateHistory  = 8 // values kept per key, for Watch
)

// errBadBucket is what the state calls return for a bucket name that is
// not letters, digits, - or _ (at most 32).
var errBadBucket = errors.New("bucket name: use letters, digits, - or _, at most 32")

// stateBuckets is the key-value bucket of the current link session,
// made or found on first use.
type stateBuckets struct {
	mu sync.Mutex
	kv jetstream.KeyValue
}

func (b *stateBuckets) drop() {
	b.mu.Lock()
	b.kv = nil
	b.mu.Unlock()
}

// bucket returns the key-value bucket that keeps state bucket name.
func (r *Relay) bucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	if !tcpserver.ValidName(name, 32) {
		return nil, fmt.Errorf("state %q: %w", name, errBadBucket)
	}
	if _, err := r.current(); err != nil {
		return nil, err
	}
	r.state.mu.Lock()
	kv := r.state.kv
	r.state.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	// Asked again if NATS does not answer within jsAttempt, as the
	// history stream and the names bucket are (see retryJS): nodes that
	// start together, with replicas, left one of them without an answer
	// until its moderation gave up (TestFailoverOfThreeNATSServers).
	kv, err := retryJS(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       r.cfg.Prefix + "_state",
			Description:  "chatbridge: state kept across restarts (accounts, bans, topics, ...)",
			MaxValueSize: maxStateValue + sealedMin,
			MaxBytes:     stateBytes,
			Storage:      jetstream.FileStorage,
			Replicas:     r.cfg.Replicas,
			// A key's last values stay until watchers have had them: with
			// one, a value overwritten before a watch got it was skipped.
			History: stateHistory,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state %s on %s: %w", name, r.where, err)
	}
	r.state.mu.Lock()
	r.state.kv = kv
	r.state.mu.Unlock()
	return kv, nil
}

// stateKey is where key of state bucket is kept in the key-value bucket.
func stateKey(bucket, key string) string {
	return bucket + "." + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// stateSubject is what a record's MAC covers besides its value.
func stateSubject(bucket, key string) string { return bucket + "/" + key }

// openState returns the value of a record of bucket stored under the
// encoded key, or false if it is not one a node wrote there.
func (r *Relay) openState(bucket, stored string, b []byte) (string, []byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(stored, bucket+"."))
	if err != nil {
		r.ignore(ignoredBad, "state "+bucket, fmt.Errorf("%w: key %q", errBadMessage, stored))
		return "", nil, false
	}
	key := string(raw)
	if len(b) > maxStateValue+sealedMin {
		r.ignore(ignoredUnverified, "state "+bucket, fmt.Errorf("%d bytes, more than a record", len(b)))
		return "", nil, false
	}
	v, err := r.seal.open(nil, purposeState, stateSubject(bucket, key), b)
	if err != nil {
		r.ignore(ignoredUnverified, "state "+bucket, err)
		return "", nil, false
	}
	return key, v, true
}

// Load implements [tcpserver.StateStore]. Records not sealed by a node
// of the cluster are left out.
func (r *Relay) Load(ctx context.Context, bucket string) (map[string][]byte, error) {
	kv, err := r.bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, bucket+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", bucket, err)
	}
	defer w.Stop()
	out := make(map[string][]byte)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, fmt.Errorf("state %s: the watch ended", bucket)
			}
			if e == nil { // the initial values are all in
				return out, nil
			}
			if key, v, ok := r.openState(bucket, e.Key(), e.Value()); ok {
				out[key] = v
			}
		case <-ctx.Done():
			return out, fmt.Errorf("state %s: %w", bucket, ctx.Err())
		}
	}
}

// Put implements [tcpserver.StateStore].
func (r *Relay) Put(ctx context.Context, bucket, key string, value []byte) error {
	switch {
	case key == "" || len(key) > maxStateKey:
		return fmt.Errorf("state %s: key of %d bytes: want 1 to %d", bucket, len(key), maxStateKey)
	case len(value) > maxStateValue:
		return fmt.Errorf("state %s: value of %d bytes: want at most %d", bucket, len(value), maxStateValue)
	}
	kv, err := r.bucket(ctx, bucket)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, stateKey(bucket, key), r.seal.seal(nil, purposeState, stateSubject(bucket, key), value)); err != nil {
		return fmt.Errorf("state %s: put: %w", bucket, err)
	}
	return nil
}

// Delete implements [tcpserver.StateStore].
func (r *Relay) Delete(ctx context.Context, bucket, key string) error {
	if key == "" || len(key) > maxStateKey {
		return nil // no such record can be
	}
	kv, err := r.bucket(ctx, bucket)
	if err != nil {
		return err
	}
	// No delete marker for a key that holds nothing: watchers would be
	// told of a change that is none.
	if _, err := kv.Get(ctx, stateKey(bucket, key)); errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err := kv.Delete(ctx, stateKey(bucket, key)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("state %s: delete: %w", bucket, err)
	}
	return nil
}

// Watch implements [tcpserver.StateStore]. It returns once the watch is
// set up; fn is then called from a goroutine of the relay's until ctx
// ends or the relay closes. Records not sealed by a node are skipped. A
// key's last stateHistory values are kept for it: one changed faster than
// that while the watch lags is seen at its newest values only.
func (r *Relay) Watch(ctx context.Context, bucket string, fn func(key string, value []byte)) error {
	kv, err := r.bucket(ctx, bucket)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, bucket+".*", jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("state %s: watch: %w", bucket, err)
	}
	r.wg.Go(func() {
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				if e.Operation() != jetstream.KeyValuePut {
					if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(e.Key(), bucket+".")); err == nil {
						fn(string(raw), nil)
					}
					continue
				}
				if key, v, ok := r.openState(bucket, e.Key(), e.Value()); ok {
					fn(key, v)
				}
			case <-ctx.Done():
				return
			case <-r.ctx.Done():
				return
			}
		}
	})
	return nil
}

var _ tcpserver.StateStore = (*Relay)(nil)
