package components

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func newCheckpointingBuffer(t *testing.T, clock *testClock, res *service.Resources) *aggregateBuffer {
	t.Helper()
	return newTestBufferOn(t, clock, res, "state_cache: state\nstate_key: group-a\ncheckpoint_interval: 1s")
}

// TestCheckpointReleasesInputAndRestoresState: input is acknowledged once a
// checkpoint holds it, long before its window closes; a restarted buffer
// continues from the checkpoint, skipping the replayed input it holds, and
// emits the window complete, counted once.
func TestCheckpointReleasesInputAndRestoresState(t *testing.T) {
	clock := newTestClock(t0 + 2_000)
	res := service.MockResources(service.MockResourcesOptAddCache("state"))
	b := newCheckpointingBuffer(t, clock, res)

	first := write(t, b, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))
	readNothing(t, b) // takes and saves a checkpoint; the window stays open
	if !first.acked() {
		t.Fatal("input not acknowledged once a checkpoint held it")
	}
	var manifest []byte
	_ = res.AccessCache(context.Background(), "state", func(c service.Cache) {
		manifest, _ = c.Get(context.Background(), "group-a")
	})
	var m cacheManifest
	if err := json.Unmarshal(manifest, &m); err != nil || m.Chunks != 1 {
		t.Fatalf("saved manifest %q: %v", manifest, err)
	}

	// A crash: the committed offset trails the checkpoint, so offset 1 is
	// replayed, then the input goes on.
	b2 := newCheckpointingBuffer(t, clock, res)
	replayed := write(t, b2, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))
	if !replayed.acked() {
		t.Fatal("input the checkpoint holds was not skipped")
	}
	write(t, b2, onPartition(envelope("cpu", "h2", t0+3_000, 2), "metrics", 0, 2))
	clock.Set(t0 + 13_000)
	write(t, b2, onPartition(envelope("cpu", "h1", t0+12_500, 100), "metrics", 0, 3))
	out, ack := readOne(t, b2, "the window's aggregate")
	_ = ack(context.Background(), nil)
	raw, _ := out.AsBytes()
	if !strings.Contains(string(raw), `"value":3`) || !strings.Contains(string(raw), `"record_count":2`) {
		t.Fatalf("want the window's value 3 over 2 records (one from the checkpoint), got %s", raw)
	}
}

// TestCheckpointSurvivesTornSave: a save that stopped after some chunks of
// the next generation leaves the previous checkpoint readable.
func TestCheckpointSurvivesTornSave(t *testing.T) {
	clock := newTestClock(t0 + 2_000)
	res := service.MockResources(service.MockResourcesOptAddCache("state"))
	b := newCheckpointingBuffer(t, clock, res)
	write(t, b, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))
	readNothing(t, b)
	// Half of the next generation's chunks, without its manifest.
	_ = res.AccessCache(context.Background(), "state", func(c service.Cache) {
		_ = c.Set(context.Background(), chunkKey("group-a", b.store.s.(*cacheStore).writer, 2, 0), []byte("garbage"), nil)
	})
	b2 := newCheckpointingBuffer(t, clock, res)
	if replayed := write(t, b2, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1)); !replayed.acked() {
		t.Fatal("the earlier checkpoint was not restored")
	}
}

// TestCheckpointDeletesEarlierWritersChunks: a process that restored
// another's checkpoint deletes that one's chunks once it has saved its own,
// a minute after the restore, so restarts do not pile up chunks.
func TestCheckpointDeletesEarlierWritersChunks(t *testing.T) {
	clock := newTestClock(t0 + 2_000)
	res := service.MockResources(service.MockResourcesOptAddCache("state"))
	b := newCheckpointingBuffer(t, clock, res)
	write(t, b, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 1))
	readNothing(t, b)
	chunk := func(writer string) error {
		var err error
		_ = res.AccessCache(context.Background(), "state", func(c service.Cache) {
			_, err = c.Get(context.Background(), chunkKey("group-a", writer, 1, 0))
		})
		return err
	}
	if err := chunk(b.store.s.(*cacheStore).writer); err != nil {
		t.Fatalf("the first process's chunk: %v", err)
	}
	b2 := newCheckpointingBuffer(t, clock, res)
	write(t, b2, onPartition(envelope("cpu", "h1", t0+1_500, 1), "metrics", 0, 2))
	readNothing(t, b2) // saved within the minute: the earlier chunks stay
	if err := chunk(b.store.s.(*cacheStore).writer); err != nil {
		t.Fatalf("the earlier writer's chunk deleted within a minute of the restore: %v", err)
	}
	clock.Set(t0 + 62_000)
	write(t, b2, onPartition(envelope("cpu", "h1", t0+61_500, 1), "metrics", 0, 3))
	_, ack := read(t, b2) // the first window closes
	_ = ack(context.Background(), nil)
	if err := chunk(b.store.s.(*cacheStore).writer); !errors.Is(err, service.ErrKeyNotFound) {
		t.Fatalf("the earlier writer's chunk after a later save: %v, want it deleted", err)
	}
}
