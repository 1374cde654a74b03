package kafka

import (
	"context"
	"fmt"
	"slices"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// replay reads nacked batch r again from Kafka and converts it: the input
// keeps no records of batches it handed on, not even to deliver one again.
// It returns no batch when the records are no longer in the partition
// (retention deleted them); the batch then counts as acknowledged, since
// nothing can deliver it any more. After an error r waits to be tried
// again.
func (in *input) replay(ctx context.Context, r nackedBatch) (service.MessageBatch, error) {
	records, err := readRange(ctx, in.opts, r.p.topic, r.p.partition, r.first, r.last)
	if err != nil {
		in.mu.Lock()
		in.replays = slices.Insert(in.replays, 0, r)
		in.mu.Unlock()
		return nil, fmt.Errorf("reading %s/%d offsets %d-%d again: %w", r.p.topic, r.p.partition, r.first, r.last, err)
	}
	if len(records) == 0 {
		in.log.Errorf("Rejected batch of %s/%d, offsets %d-%d, can not be delivered again: the partition no longer has it", r.p.topic, r.p.partition, r.first, r.last)
		_ = in.ackFunc(r.p, r.seq, r.first, r.last)(ctx, nil)
		return nil, nil
	}
	return r.p.messages(records), nil
}

// readRange reads the records of a partition from offset first through
// last with a client of its own, which consumes only that partition. Records
// deleted or compacted away are missing from the result.
func readRange(ctx context.Context, opts []kgo.Opt, topic string, partition int32, first, last int64) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(append(slices.Clip(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(first)}}),
	)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	start, _ := starts.Lookup(topic, partition)
	end, _ := ends.Lookup(topic, partition)
	if start.Err != nil {
		return nil, start.Err
	}
	if end.Err != nil {
		return nil, end.Err
	}
	// Only offsets below the end exist: a truncated log ends earlier.
	last = min(last, end.Offset-1)
	if start.Offset > last || last < first {
		return nil, nil
	}

	var records []*kgo.Record
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := fetches.Err(); err != nil {
			return nil, err
		}
		done := false
		fetches.EachRecord(func(r *kgo.Record) {
			switch {
			case done || r.Offset < first:
			case r.Offset > last:
				done = true
			default:
				records = append(records, r)
				done = r.Offset == last
			}
		})
		if done {
			return records, nil
		}
	}
}
