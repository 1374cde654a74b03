package kafka

import (
	"bytes"
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Metadata keys the input sets on every message.
const (
	metaTopic     = "kafka_topic"
	metaPartition = "kafka_partition"
	metaOffset    = "kafka_offset"
	metaKey       = "kafka_key"
	metaTimestamp = "kafka_timestamp_ms"
)

// partitionState is where a partition is in its life with the member.
type partitionState uint8

const (
	// partitionHeld: the input reads the partition and hands it on.
	partitionHeld partitionState = iota
	// partitionRevoking: the partition is being revoked; nothing more is
	// handed on, but acknowledgements still count for the last commit.
	partitionRevoking
	// partitionGone: the partition left the member; acknowledgements of
	// its batches are ignored.
	partitionGone
)

// inputPartition is one assignment of a partition to the member. A
// partition assigned again gets a new inputPartition, so that
// acknowledgements of an earlier assignment's batches find the old one,
// gone, and are ignored. Fields other than those set at creation are
// guarded by the input's mutex.
type inputPartition struct {
	topic     string
	partition int32
	label     string // partition as a metric label
	// topicMeta and partitionMeta are boxed once and shared by all
	// messages, so that setting them costs no allocation per message.
	topicMeta, partitionMeta any

	state     partitionState
	queue     []*kgo.Record // fetched, not handed on yet
	tracker   offsetTracker
	committed int64 // the offset last committed, -1 before
	paused    bool  // fetching paused by the checkpoint limit
	ready     bool  // in the input's ready list
}

func newInputPartition(topic string, partition int32) *inputPartition {
	return &inputPartition{
		topic:         topic,
		partition:     partition,
		label:         strconv.FormatInt(int64(partition), 10),
		topicMeta:     topic,
		partitionMeta: partition,
		committed:     -1,
	}
}

// messages converts records of the partition, in offset order, into a
// batch. Values are not copied: a message refers to its record's value.
//
// Consecutive records often share a timestamp, a key or header values (a
// producer batch), so an equal value reuses the previous message's boxed
// value instead of allocating its own.
func (p *inputPartition) messages(records []*kgo.Record) service.MessageBatch {
	batch := make(service.MessageBatch, len(records))
	var (
		lastMs  int64
		msMeta  any
		lastKey []byte
		keyMeta any
		headers []boxedHeader
	)
	for i, r := range records {
		m := service.NewMessage(r.Value)
		// Headers first, so that a header cannot replace the input's own
		// metadata.
		for j, h := range r.Headers {
			if j == len(headers) {
				headers = append(headers, boxedHeader{})
			}
			prev := &headers[j]
			if prev.v == nil || prev.key != h.Key || !bytes.Equal(prev.raw, h.Value) {
				*prev = boxedHeader{key: h.Key, raw: h.Value, v: string(h.Value)}
			}
			m.MetaSetMut(h.Key, prev.v)
		}
		m.MetaSetMut(metaTopic, p.topicMeta)
		m.MetaSetMut(metaPartition, p.partitionMeta)
		m.MetaSetMut(metaOffset, r.Offset)
		if r.Key != nil {
			if keyMeta == nil || !bytes.Equal(lastKey, r.Key) {
				lastKey, keyMeta = r.Key, string(r.Key)
			}
			m.MetaSetMut(metaKey, keyMeta)
		}
		if ms := r.Timestamp.UnixMilli(); msMeta == nil || ms != lastMs {
			lastMs, msMeta = ms, ms
		}
		m.MetaSetMut(metaTimestamp, msMeta)
		batch[i] = m
	}
	return batch
}

// boxedHeader is a header value of the previous record and its metadata
// value.
type boxedHeader struct {
	key string
	raw []byte
	v   any
}
