package natsrelay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// failingDeletes is a bucket whose deletes fail, as they do when the
// server does not answer in time.
type failingDeletes struct{ jetstream.KeyValue }

func (failingDeletes) Delete(context.Context, string, ...jetstream.KVDeleteOpt) error {
	return errors.New("timed out")
}

// TestAFailedDeleteIsTriedAgain: the entry of a member who left is
// deleted on the writer's next round when the first delete failed. (The
// writer forgot the delete once it had tried it, so the entry stayed in
// the bucket and the member in every other node's presence for NameAge,
// half an hour, while its node beat.)
func TestAFailedDeleteIsTriedAgain(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 2*time.Second)
	if err := a.relay.ClaimName(context.Background(), "bob", "lobby"); err != nil {
		t.Fatal(err)
	}
	s, err := a.relay.current()
	if err != nil {
		t.Fatal(err)
	}
	n := &a.relay.names
	// bob leaves; the test plays the writer's rounds.
	n.mu.Lock()
	n.deletes["bob"] = n.owned["bob"].rev
	delete(n.owned, "bob")
	n.mu.Unlock()
	if err := n.write(context.Background(), failingDeletes{s.kv}, "bob"); err == nil {
		t.Fatal("a failed delete reported as done")
	}
	if err := n.write(context.Background(), s.kv, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.kv.Get(context.Background(), "bob"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("bob's entry is still in the bucket after the retry: %v", err)
	}
}
