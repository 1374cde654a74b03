package components

import (
	"context"
	"slices"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// holding mirrors the partitions the input holds, under the buffer's mu.
type holding struct {
	held    map[windowagg.Source]bool
	topics  map[string]int32 // partition counts of the input's topics
	partial bool             // logged: holding part of the partitions
}

// holds reports whether the input holds partition src. Without partition
// events every message counts as held.
func (h *holding) holds(hub *assignment.Hub, src windowagg.Source) bool {
	return !hub.Published() || h.held[src]
}

// missing counts the partitions of the input's topics not held, and the
// held partitions of topics whose partition count the input could not
// tell: whether others hold some of them is unknown.
func (h *holding) missing() int64 {
	n := int64(0)
	for topic, count := range h.topics {
		for p := range count {
			if !h.held[windowagg.Source{Stream: topic, Partition: p}] {
				n++
			}
		}
	}
	for src := range h.held {
		if _, ok := h.topics[src.Stream]; !ok {
			n++
		}
	}
	return n
}

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
		b.holding.held[sourceOfPartition(p)] = true
	}
	b.holding.topics = topics
	var restore []*lane
	for _, p := range parts {
		l, err := b.laneOf(b.stage.laneSource(sourceOfPartition(p)))
		switch {
		case err != nil:
			b.log.Errorf("Creating the lane of %s/%d: %v", p.Topic, p.Partition, err)
		case l.restored.Load():
			b.expectHeld(l)
		case !slices.Contains(restore, l):
			restore = append(restore, l)
		}
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
		delete(b.holding.held, sourceOfPartition(p))
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
		delete(b.holding.held, sourceOfPartition(p))
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

// lanesOf returns the lanes folding parts. Called with mu held.
func (b *aggregateBuffer) lanesOf(parts []assignment.Partition) []*lane {
	var lanes []*lane
	for _, p := range parts {
		l := b.lanes[b.stage.laneSource(sourceOfPartition(p))]
		if l != nil && !slices.Contains(lanes, l) {
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
		busy := l.flushes.busy()
		b.mu.Unlock()
		if !busy {
			break
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return false
		}
	}
	b.settleLane(ctx, l) // an earlier checkpoint still unsaved goes first
	b.mu.Lock()
	l.takeCheckpoint(b.clock(), true)
	b.mu.Unlock()
	b.settleLane(ctx, l)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.updateGauges()
	return l.ckpt.pending == nil
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

// expectHeld makes lane l's engine wait for the held partitions routed to
// it that have not delivered yet. Called with mu held.
func (b *aggregateBuffer) expectHeld(l *lane) {
	for src := range b.holding.held {
		if b.stage.laneSource(src) == l.src {
			b.stage.expect(l, src)
		}
	}
}
