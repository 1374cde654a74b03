package kafka

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
)

// pollLoop fetches records into the queues of the partitions held. It
// polls again only once ReadBatch took what the last poll made ready, so
// that the input holds at most one poll's records besides those of
// partitions at their checkpoint limit.
func (in *input) pollLoop(ctx context.Context, cl *kgo.Client) {
	defer in.loops.Done()
	for {
		in.mu.Lock()
		busy := len(in.ready) > 0
		in.mu.Unlock()
		if busy {
			select {
			case <-in.drained:
				continue
			case <-ctx.Done():
				return
			}
		}
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			in.log.Errorf("Kafka fetch error (topic %q, partition %d): %v", topic, partition, err)
		})
		in.queue(fetches)
	}
}

// queue adds fetched records to the queues of the partitions held and
// pauses fetching of a partition whose queue and batches in flight reach
// the checkpoint limit.
func (in *input) queue(fetches kgo.Fetches) {
	in.mu.Lock()
	defer in.mu.Unlock()
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		p := in.parts[assignment.Partition{Topic: fp.Topic, Partition: fp.Partition}]
		if p == nil || p.state != partitionHeld {
			return
		}
		last := fp.Records[len(fp.Records)-1].Offset
		in.lag.Set(max(fp.HighWatermark-last-1, 0), p.topic, p.label)
		if p.queue == nil {
			p.queue = fp.Records
		} else {
			p.queue = append(p.queue, fp.Records...)
		}
		if !p.paused && p.tracker.inFlight()+len(p.queue) >= in.checkpointLimit {
			// franz-go drops what it buffered of the partition and
			// fetches it again once resumed.
			p.paused = true
			in.cl.PauseFetchPartitions(map[string][]int32{p.topic: {p.partition}})
		}
		in.markReady(p)
	})
}

// commitLoop commits the acknowledged prefixes every commit period.
func (in *input) commitLoop(ctx context.Context, cl *kgo.Client) {
	defer in.loops.Done()
	t := time.NewTicker(in.commitPeriod)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			in.commit(ctx, cl, nil)
		case <-ctx.Done():
			return
		}
	}
}

// commit commits synchronously the acknowledged prefix of every partition
// held whose prefix moved since its last commit. Partitions in release
// leave the member with this commit: acknowledgements of their batches are
// ignored from then on.
//
// commitMu makes computing and sending one step, so that a commit computed
// before a revocation cannot land after the revocation's commit, nor a
// commit of a lost partition after the loss.
func (in *input) commit(ctx context.Context, cl *kgo.Client, release []assignment.Partition) {
	in.commitMu.Lock()
	defer in.commitMu.Unlock()

	type move struct {
		p    *inputPartition
		next int64
	}
	var (
		offsets map[string]map[int32]kgo.EpochOffset
		moved   []move
	)
	in.mu.Lock()
	for _, p := range in.parts {
		next, ok := p.tracker.committable()
		if !ok || next <= p.committed {
			continue
		}
		if offsets == nil {
			offsets = map[string]map[int32]kgo.EpochOffset{}
		}
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[p.topic][p.partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
		moved = append(moved, move{p, next})
	}
	in.releaseLocked(release)
	in.mu.Unlock()
	if len(offsets) == 0 {
		return
	}

	var err error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, e error) {
		if e != nil {
			err = e
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if pe := kerr.ErrorForCode(p.ErrorCode); pe != nil && err == nil {
					err = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, pe)
				}
			}
		}
	})
	if err != nil {
		switch {
		case len(release) > 0:
			in.log.Errorf("Committing offsets of revoked partitions failed; their next owner reads again from the previous commit: %v", err)
		case ctx.Err() == nil:
			in.log.Warnf("Committing offsets failed, retrying at the next commit: %v", err)
		}
		return
	}
	in.mu.Lock()
	for _, m := range moved {
		m.p.committed = max(m.p.committed, m.next)
	}
	in.mu.Unlock()
}

// releaseLocked forgets the partitions parts that the member holds: their
// fetched records are dropped, their acknowledgements ignored, and their
// fetching resumed if paused, so that a later assignment of them fetches.
// It returns the partitions released. The caller holds in.mu.
func (in *input) releaseLocked(parts []assignment.Partition) []assignment.Partition {
	var released []assignment.Partition
	var resume map[string][]int32
	for _, tp := range parts {
		p := in.parts[tp]
		if p == nil {
			continue
		}
		delete(in.parts, tp)
		p.state = partitionGone
		p.queue = nil
		if p.paused {
			if resume == nil {
				resume = map[string][]int32{}
			}
			resume[p.topic] = append(resume[p.topic], p.partition)
		}
		in.lag.Set(0, p.topic, p.label)
		released = append(released, tp)
	}
	if resume != nil {
		in.cl.ResumeFetchPartitions(resume)
	}
	in.held.Set(int64(len(in.parts)))
	return released
}

// onAssigned starts tracking the partitions assigned and tells the
// stream's components. franz-go fetches them only after this returns.
func (in *input) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := partitionList(assigned)
	if len(parts) == 0 {
		return
	}
	topics := in.partitionCounts(ctx, cl)
	in.mu.Lock()
	for _, tp := range parts {
		if _, ok := in.parts[tp]; !ok {
			in.parts[tp] = newInputPartition(tp.Topic, tp.Partition)
		}
	}
	in.held.Set(int64(len(in.parts)))
	in.mu.Unlock()
	in.hub.Assign(ctx, parts, topics)
}

// onRevoked stops handing the revoked partitions on, tells the stream's
// components, which may acknowledge batches of them while they are told,
// and then commits. The rebalance waits for it; the components and the
// commit get the rebalance timeout.
func (in *input) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	var parts []assignment.Partition
	in.mu.Lock()
	for _, tp := range partitionList(revoked) {
		if p := in.parts[tp]; p != nil && p.state == partitionHeld {
			p.state = partitionRevoking
			p.queue = nil
			parts = append(parts, tp)
		}
	}
	in.mu.Unlock()
	if len(parts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, in.rebalanceTimeout)
	defer cancel()
	in.hub.Revoke(ctx, parts)
	in.commit(ctx, cl, parts)
}

// onLost forgets the lost partitions without committing them and tells
// the stream's components.
func (in *input) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	// commitMu: a periodic commit computed before the loss must not be
	// sent after it.
	in.commitMu.Lock()
	in.mu.Lock()
	parts := in.releaseLocked(partitionList(lost))
	in.mu.Unlock()
	in.commitMu.Unlock()
	if len(parts) > 0 {
		in.hub.Lose(parts)
	}
}

// partitionCounts returns the partition count of every consumed topic, as
// the brokers report it now, retrying within the rebalance timeout: a
// listener that must see every partition closes nothing while a count is
// unknown. A topic whose count cannot be loaded is left out, and the error
// logged.
func (in *input) partitionCounts(ctx context.Context, cl *kgo.Client) map[string]int32 {
	ctx, cancel := context.WithTimeout(ctx, in.rebalanceTimeout)
	defer cancel()
	counts := make(map[string]int32, len(in.topics))
	adm := kadm.NewClient(cl)
	for {
		var missing []string
		for _, t := range in.topics {
			if _, ok := counts[t]; !ok {
				missing = append(missing, t)
			}
		}
		details, err := adm.ListTopics(ctx, missing...)
		for topic, d := range details {
			if d.Err == nil {
				counts[topic] = int32(len(d.Partitions))
			} else if err == nil {
				err = fmt.Errorf("%s: %w", topic, d.Err)
			}
		}
		if len(counts) == len(in.topics) {
			return counts
		}
		select {
		case <-ctx.Done():
			in.log.Errorf("Loading the partition counts of %v: %v", missing, err)
			return counts
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// partitionList returns the partitions of m in order.
func partitionList(m map[string][]int32) []assignment.Partition {
	var parts []assignment.Partition
	for topic, partitions := range m {
		for _, p := range partitions {
			parts = append(parts, assignment.Partition{Topic: topic, Partition: p})
		}
	}
	slices.SortFunc(parts, assignment.Compare)
	return parts
}
