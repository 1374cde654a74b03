package kafka

import (
	"bytes"
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Saved is what ReadSaved read of a key.
type Saved struct {
	// Value is what a Claim of the key would return; Found is false
	// when nothing is saved under it.
	Value []byte
	Found bool
	// Manifests counts the key's manifests read, fences included: one
	// per claim and per save, unless compaction has removed it.
	Manifests int
}

// ReadSaved reads a state topic from its start up to ends (nil: its end
// offsets now), over plain connections to brokers, and returns what a
// Claim of key would have returned then, without claiming. It applies the records as a Store does, so tools read
// saved state through the code that writes it; an unusable newest value is
// the error a Claim would fail with.
func ReadSaved(ctx context.Context, brokers []string, topic, key string, ends kadm.ListedOffsets) (Saved, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(8<<20),
	)
	if err != nil {
		return Saved{}, err
	}
	defer cl.Close()
	// A store that only reads, so that its tail's apply builds the
	// keys' states: it claims nothing and writes nothing.
	s := &Store{topic: topic, cl: cl, next: map[int32]int64{}, keys: map[string]*keyState{}}
	if ends == nil {
		if ends, err = s.endOffsets(ctx); err != nil {
			return Saved{}, err
		}
	} else if err := ends.Error(); err != nil {
		return Saved{}, err
	}
	var saved Saved
	for !s.caughtUp(ends) {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return Saved{}, fmt.Errorf("reading topic %q: %w", topic, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, _ := ends.Lookup(topic, r.Partition)
			if r.Offset >= end.Offset {
				// Written after ends: the partition is read.
				s.next[r.Partition] = max(s.next[r.Partition], end.Offset)
				return
			}
			s.apply(r)
			if n, ok := parseRecordName(string(r.Key)); ok && n.key == key && !n.chunk && r.Value != nil {
				saved.Manifests++
			}
		})
	}
	switch ks := s.keys[key]; {
	case ks == nil:
	case ks.err != nil:
		return saved, ks.err
	case ks.found:
		saved.Value, saved.Found = bytes.Join(ks.value, nil), true
	}
	return saved, nil
}
