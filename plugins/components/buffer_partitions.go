package components

import (
	"context"
	"slices"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// partitionEvents is the buffer's side of the stream's assignment hub: the
// input reports which partitions it holds, and the buffer restores a lane
// when its partitions are assigned, saves and drops it when they are
// revoked, drops it unsaved when they are lost, and saves everything when
// the stream stops.
type partitionEvents struct{ b *aggregateBuffer }

func sourceOfPartition(p assignment.Partition) windowagg.Source {
	return windowagg.Source{Stream: p.Topic, Partition: p.Partition}
}

// Assigned restores the lanes of the new partitions in the background, so
// that the consumer group's callback does not wait for the state store.
func (e partitionEvents) Assigned(_ context.Context, parts []assignment.Partition, topics map[string]int32) {
	b := e.b
	b.mu.Lock()
	for _, p := range parts {
		b.held[sourceOfPartition(p)] = true
	}
	b.topics = topics
	var restore []*lane
	add := func(src windowagg.Source) {
		l, err := b.laneOf(src)
		if err != nil {
			b.log.Errorf("Creating the lane of %s/%d: %v", src.Stream, src.Partition, err)
			return
		}
		if l.restored.Load() {
			b.expectHeld(l)
		} else if !slices.Contains(restore, l) {
			restore = append(restore, l)
		}
	}
	for _, p := range parts {
		add(sourceOfPartition(p))
	}
	b.mu.Unlock()
	for _, l := range restore {
		go b.restore(b.ctx, l)
	}
}

// Revoked saves and drops the lanes of the revoked partitions before the
// rebalance goes on, so that their new owner continues from what this one
// folded; the acknowledgements the save releases are committed by the
// input right after.
func (e partitionEvents) Revoked(ctx context.Context, parts []assignment.Partition) {
	b := e.b
	b.mu.Lock()
	for _, p := range parts {
		delete(b.held, sourceOfPartition(p))
	}
	lanes := b.lanesOf(parts)
	for _, l := range lanes {
		l.leaving = true
	}
	b.mu.Unlock()
	for _, l := range lanes {
		if b.saveLast(ctx, l) {
			b.log.Infof("Partitions revoked: the state %q is saved and handed over", l.stateKey)
		} else {
			b.log.Warnf("Partitions revoked: the state %q could not be saved in time; its new owner replays its input", l.stateKey)
		}
		b.mu.Lock()
		b.dropLane(l)
		b.mu.Unlock()
	}
}

// Lost drops the lanes of the lost partitions unsaved: a newer owner may
// have saved since, and their input was never committed beyond what a
// saved state holds.
func (e partitionEvents) Lost(parts []assignment.Partition) {
	b := e.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range parts {
		delete(b.held, sourceOfPartition(p))
	}
	for _, l := range b.lanesOf(parts) {
		b.log.Warnf("Partitions lost: dropping the state %q unsaved", l.stateKey)
		b.dropLane(l)
	}
}

// Stopping closes no more windows and saves every lane, releasing its
// input for the input's last commit.
func (e partitionEvents) Stopping(ctx context.Context) {
	b := e.b
	b.mu.Lock()
	b.stopping = true
	lanes := slices.Clone(b.laneOrder)
	b.mu.Unlock()
	b.log.Infof("Stopping: no more windows close; open windows are saved, or their input replayed on the next start")
	for _, l := range lanes {
		b.saveLast(ctx, l)
	}
}

// lanesOf returns the lanes holding parts: in stage single the one lane
// that holds every partition.
func (b *aggregateBuffer) lanesOf(parts []assignment.Partition) []*lane {
	if b.stage == stageSingle {
		if l := b.lanes[windowagg.Source{}]; l != nil {
			return []*lane{l}
		}
		return nil
	}
	var lanes []*lane
	for _, p := range parts {
		if l := b.lanes[sourceOfPartition(p)]; l != nil {
			lanes = append(lanes, l)
		}
	}
	return lanes
}

// saveLast waits until lane l's flushed output is delivered, then saves
// its state and releases the input the save holds; it reports whether the
// lane ended saved before ctx did.
func (b *aggregateBuffer) saveLast(ctx context.Context, l *lane) bool {
	if !l.restored.Load() {
		return true // it holds nothing of its own yet
	}
	for {
		b.mu.Lock()
		busy := l.busy()
		b.mu.Unlock()
		if !busy {
			break
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return false
		}
	}
	b.settleMu.Lock()
	defer b.settleMu.Unlock()
	b.settleLane(ctx, l) // an earlier checkpoint still unsaved goes first
	b.mu.Lock()
	b.takeCheckpoint(l, b.clock(), true)
	b.mu.Unlock()
	b.settleLane(ctx, l)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.updateGauges()
	return l.pending == nil && (b.checkpointEvery > 0 || l.saved >= l.delivered)
}

// dropLane forgets lane l. Its held input stays unacknowledged, to be read
// again by whoever gets its partitions next. Called with mu held.
func (b *aggregateBuffer) dropLane(l *lane) {
	if b.lanes[l.src] != l {
		return
	}
	l.leaving = true
	delete(b.lanes, l.src)
	b.laneOrder = slices.DeleteFunc(b.laneOrder, func(o *lane) bool { return o == l })
	b.updateGauges()
}

// holds reports whether the input holds partition src. Without partition
// events every message counts as held.
func (b *aggregateBuffer) holds(src windowagg.Source) bool {
	return !b.hub.Published() || b.held[src]
}

// complete reports whether the buffer may close windows: in stage single
// with a publishing input, only while it holds every partition of its
// topics. A member that holds part of them (another member, perhaps a dead
// one the broker has not evicted yet, holds the rest) would publish values
// over part of the input. Called with mu held.
func (b *aggregateBuffer) complete() bool {
	if b.stage != stageSingle || !b.hub.Published() {
		return true
	}
	missing := int64(0)
	for topic, n := range b.topics {
		for p := range n {
			if !b.held[windowagg.Source{Stream: topic, Partition: p}] {
				missing++
			}
		}
	}
	for src := range b.held {
		if _, ok := b.topics[src.Stream]; !ok {
			// The input could not tell the topic's partition count:
			// whether others hold some of them is unknown.
			missing++
		}
	}
	b.missingGauge.Set(missing)
	holdsSome := len(b.held) > 0
	partial := missing > 0 && holdsSome
	if partial != b.partial {
		b.partial = partial
		if partial {
			b.log.Warnf("Holding %d of the input's partitions, %d missing: no window closes until this instance holds them all (another member holds the rest)", len(b.held), missing)
		} else {
			b.log.Infof("Holding every input partition: windows close again")
		}
	}
	return holdsSome && missing == 0
}

// expectHeld makes the stage single lane l wait for the held partitions
// that have not delivered yet. Called with mu held.
func (b *aggregateBuffer) expectHeld(l *lane) {
	if b.stage != stageSingle {
		return
	}
	for src := range b.held {
		l.engine.Expect(src)
	}
}
