package kafka

import (
	"bytes"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// position is where a record is on the state topic.
type position struct {
	partition int32
	offset    int64
}

// nowhere is no position.
var nowhere = position{partition: -1, offset: -1}

// chunkSet names the chunks one claim writes to one of its two sets.
type chunkSet struct {
	claim claimID
	set   int
}

// liveRecord is a record of a key that has not been deleted, kept so that
// the key's owner can delete the records it no longer needs.
type liveRecord struct {
	name      recordName
	partition int32
}

// keyState is what the tail has read of one key.
type keyState struct {
	// top is the highest claim whose manifest has been read; manifests and
	// chunks of lower claims are never read as the value.
	top claimID
	// maxEpoch is the highest epoch of any record of the key; a new claim
	// takes a higher one, above even chunks no manifest names.
	maxEpoch uint64
	// value is the newest value, in chunks; found is false if there is
	// none; err is set when the newest manifest is unusable.
	value [][]byte
	found bool
	err   error
	// pending holds chunks of claims not lower than top that no manifest
	// has named yet: those of a save in progress, or of a save torn.
	pending map[chunkSet]map[int][]byte
	// live is every record of the key not deleted yet, by record key.
	live map[string]liveRecord
}

func newKeyState() *keyState {
	return &keyState{
		pending: map[chunkSet]map[int][]byte{},
		live:    map[string]liveRecord{},
	}
}

// apply takes one record of the state topic into the keys' states.
func (s *Store) apply(r *kgo.Record) {
	if next := r.Offset + 1; next > s.next[r.Partition] {
		s.next[r.Partition] = next
	}
	key := string(r.Key)
	name, ok := parseRecordName(key)
	if !ok {
		return
	}
	ks := s.keyState(name.key)
	if r.Value == nil {
		delete(ks.live, key)
		if name.chunk {
			delete(ks.pending[chunkSet{name.claim, name.set}], name.index)
		}
		return
	}
	ks.live[key] = liveRecord{name: name, partition: r.Partition}
	ks.maxEpoch = max(ks.maxEpoch, name.claim.epoch)
	if name.claim.compare(ks.top) < 0 {
		// Written under a claim superseded since: never the value.
		return
	}
	if name.chunk {
		cs := chunkSet{name.claim, name.set}
		if ks.pending[cs] == nil {
			ks.pending[cs] = map[int][]byte{}
		}
		// A copy: the record's value may share the fetch's buffer,
		// which would keep all of it alive.
		ks.pending[cs][name.index] = bytes.Clone(r.Value)
		return
	}

	if name.claim.compare(ks.top) > 0 {
		ks.top = name.claim
		for cs := range ks.pending {
			if cs.claim.compare(ks.top) < 0 {
				delete(ks.pending, cs)
			}
		}
		if own := s.own[name.key]; own != nil && own.id.compare(ks.top) < 0 && own.fencedAt == nowhere {
			own.fencedAt = position{r.Partition, r.Offset}
		}
	}
	m, err := decodeManifest(r.Value)
	if err == nil && m.Fence {
		return // the value stays
	}
	ks.value, ks.found, ks.err = nil, false, nil
	if err == nil {
		ks.value, err = m.assemble(ks.pending[chunkSet{name.claim, m.Set}])
		ks.found = err == nil
		// The other set holds the value this one replaces, or chunks
		// of a save that was torn: neither is needed any more.
		delete(ks.pending, chunkSet{name.claim, m.Set})
		delete(ks.pending, chunkSet{name.claim, 1 - m.Set})
	}
	if err != nil {
		ks.err = fmt.Errorf("state key %q: manifest %s at partition %d offset %d: %w", name.key, name.claim, r.Partition, r.Offset, err)
	}
}

func (s *Store) keyState(key string) *keyState {
	ks := s.keys[key]
	if ks == nil {
		ks = newKeyState()
		s.keys[key] = ks
	}
	return ks
}

// garbage returns tombstones for the records of ks that the owner of claim,
// having just written chunks 0 to n-1 of set, no longer needs: every
// record of a lower claim, and chunks of set past n left by a larger value.
func (ks *keyState) garbage(claim claimID, set, n int) []*kgo.Record {
	var recs []*kgo.Record
	for k, lr := range ks.live {
		c := lr.name.claim.compare(claim)
		if c < 0 || (c == 0 && lr.name.chunk && lr.name.set == set && lr.name.index >= n) {
			recs = append(recs, &kgo.Record{Key: []byte(k), Partition: lr.partition})
		}
	}
	return recs
}
