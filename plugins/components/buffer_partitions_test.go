package components

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
)

// fencedStore is a state store in memory with the fence of the Kafka one:
// a claim takes the next epoch of its key, and a save under an epoch older
// than the key's newest fails.
type fencedStore struct {
	mu     sync.Mutex
	values map[string][]byte
	epochs map[string]int64
}

func newFencedStore() *fencedStore {
	return &fencedStore{values: map[string][]byte{}, epochs: map[string]int64{}}
}

// claimant is one process's view of a fencedStore.
type claimant struct {
	s      *fencedStore
	epochs map[string]int64
}

type fencedError struct{}

func (fencedError) Error() string { return "fenced" }
func (fencedError) Fenced() bool  { return true }

func (s *fencedStore) claimant() *claimant { return &claimant{s: s, epochs: map[string]int64{}} }

func (c *claimant) Claim(_ context.Context, key string) ([]byte, bool, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.epochs[key]++
	c.epochs[key] = c.s.epochs[key]
	v, ok := c.s.values[key]
	return v, ok, nil
}

func (c *claimant) Save(_ context.Context, key string, value []byte) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.epochs[key] < c.s.epochs[key] {
		return fencedError{}
	}
	c.s.values[key] = value
	return nil
}

func (s *fencedStore) saved(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.values[key]
	return ok
}

// newPartitionedBuffer is a buffer whose input reports partitions (the
// hub is returned to play the input) and which saves to store.
func newPartitionedBuffer(t *testing.T, clock *testClock, store stateStore, extra string) (*aggregateBuffer, *assignment.Hub) {
	t.Helper()
	res := service.MockResources()
	hub := assignment.Of(res)
	hub.Publish()
	b := newTestBufferOn(t, clock, res, "state_store: window_state\nstate_key: group-a\n"+extra)
	b.store.once.Do(func() { b.store.s = store })
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, hub
}

func partitions(topic string, ps ...int32) []assignment.Partition {
	out := make([]assignment.Partition, len(ps))
	for i, p := range ps {
		out[i] = assignment.Partition{Topic: topic, Partition: p}
	}
	return out
}

// TestPartialAssignmentClosesNoWindow: holding one of two partitions, no
// window closes whatever the watermark; once both are held, the assigned
// partition that has not delivered yet holds the watermark until it does.
func TestPartialAssignmentClosesNoWindow(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	b, hub := newPartitionedBuffer(t, clock, newFencedStore().claimant(), "checkpoint_interval: 1h")
	ctx := context.Background()
	hub.Assign(ctx, partitions("metrics", 0), map[string]int32{"metrics": 2})
	write(t, b, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))
	write(t, b, onPartition(envelope("cpu", "h1", t0+12_500, 1), "metrics", 0, 2))
	readNothing(t, b)

	hub.Assign(ctx, partitions("metrics", 1), map[string]int32{"metrics": 2})
	readNothing(t, b) // partition 1 has not delivered: it may hold the window's data
	write(t, b, onPartition(envelope("cpu", "h2", t0+2_000, 2), "metrics", 1, 1))
	write(t, b, onPartition(envelope("cpu", "h2", t0+12_600, 1), "metrics", 1, 2))
	out, _ := readOne(t, b, "the window's aggregate over both partitions")
	raw, _ := out.AsBytes()
	if !strings.Contains(string(raw), `"value":3`) {
		t.Fatalf("want 3 (1 from each partition), got %s", raw)
	}
}

// TestRevokedLaneIsSavedAndHandedOver: a revocation saves the lane and
// releases its input before it returns; the next owner continues from the
// saved state and emits the window complete.
func TestRevokedLaneIsSavedAndHandedOver(t *testing.T) {
	clock := newTestClock(t0 + 2_000)
	store := newFencedStore()
	ctx := context.Background()
	b1, hub1 := newPartitionedBuffer(t, clock, store.claimant(), "checkpoint_interval: 1h")
	hub1.Assign(ctx, partitions("metrics", 0), map[string]int32{"metrics": 1})
	write(t, b1, onPartition(envelope("cpu", "h1", t0+500, 0), "metrics", 0, 0))
	readNothing(t, b1) // the first checkpoint; the next is due in an hour
	in := write(t, b1, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))
	readNothing(t, b1)
	if in.acked() {
		t.Fatal("input acknowledged before a checkpoint held it")
	}
	hub1.Revoke(ctx, partitions("metrics", 0))
	if !in.acked() {
		t.Fatal("input not acknowledged by the revocation's save")
	}
	if len(b1.laneOrder) != 0 {
		t.Fatal("the revoked lane was kept")
	}
	late := write(t, b1, onPartition(envelope("cpu", "h1", t0+1_500, 7), "metrics", 0, 2))
	if late.acked() {
		t.Fatal("input of a revoked partition acknowledged")
	}

	b2, hub2 := newPartitionedBuffer(t, clock, store.claimant(), "checkpoint_interval: 1h")
	hub2.Assign(ctx, partitions("metrics", 0), map[string]int32{"metrics": 1})
	write(t, b2, onPartition(envelope("cpu", "h1", t0+1_500, 2), "metrics", 0, 2))
	clock.Set(t0 + 13_000)
	write(t, b2, onPartition(envelope("cpu", "h1", t0+12_500, 100), "metrics", 0, 3))
	out, _ := readOne(t, b2, "the window's aggregate")
	raw, _ := out.AsBytes()
	if !strings.Contains(string(raw), `"value":3`) {
		t.Fatalf("want 3 (1 saved by the former owner + 2), got %s", raw)
	}
}

// TestLostLaneIsDroppedUnsaved: a lost partition's state is neither saved
// nor released.
func TestLostLaneIsDroppedUnsaved(t *testing.T) {
	clock := newTestClock(t0 + 2_000)
	store := newFencedStore()
	b, hub := newPartitionedBuffer(t, clock, store.claimant(), "checkpoint_interval: 1h")
	hub.Assign(context.Background(), partitions("metrics", 0), map[string]int32{"metrics": 1})
	in := write(t, b, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))
	hub.Lose(partitions("metrics", 0))
	readNothing(t, b)
	if in.acked() || store.saved("group-a") || len(b.laneOrder) != 0 {
		t.Fatalf("lost lane: acked %v, saved %v, lanes %d", in.acked(), store.saved("group-a"), len(b.laneOrder))
	}
}

// TestFencedSaveDropsLane: once another instance has claimed the state, a
// save of the former owner fails and it drops the lane without releasing
// its input.
func TestFencedSaveDropsLane(t *testing.T) {
	clock := newTestClock(t0 + 2_000)
	store := newFencedStore()
	ctx := context.Background()
	b1, hub1 := newPartitionedBuffer(t, clock, store.claimant(), "checkpoint_interval: 1s")
	hub1.Assign(ctx, partitions("metrics", 0), map[string]int32{"metrics": 1})
	first := write(t, b1, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))

	b2, hub2 := newPartitionedBuffer(t, clock, store.claimant(), "checkpoint_interval: 1s")
	hub2.Assign(ctx, partitions("metrics", 0), map[string]int32{"metrics": 1})
	write(t, b2, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1)) // claims

	readNothing(t, b1) // its checkpoint is fenced
	if first.acked() {
		t.Fatal("a fenced instance released input")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b1.mu.Lock()
		n := len(b1.laneOrder)
		b1.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fenced lane was kept")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStandbyClaimsNothing: an instance whose input holds no partition
// reads no state, so it cannot fence the active one.
func TestStandbyClaimsNothing(t *testing.T) {
	clock := newTestClock(t0 + 2_000)
	store := newFencedStore()
	active := store.claimant()
	b1, hub1 := newPartitionedBuffer(t, clock, active, "checkpoint_interval: 1s")
	hub1.Assign(context.Background(), partitions("metrics", 0), map[string]int32{"metrics": 1})
	in := write(t, b1, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))

	standby, _ := newPartitionedBuffer(t, clock, store.claimant(), "checkpoint_interval: 1s")
	readNothing(t, standby)
	stray := write(t, standby, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))

	readNothing(t, b1)
	if !in.acked() {
		t.Fatal("the active instance's checkpoint failed while a standby ran")
	}
	if stray.acked() || len(standby.laneOrder) != 0 {
		t.Fatal("a standby took input of a partition it does not hold")
	}
}
