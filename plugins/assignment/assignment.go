// Package assignment carries a stream's partition events from its input to
// its buffer, and its output topic's partition count from its output to its
// buffer.
//
// Benthos passes only messages from an input to a buffer. A windowed
// aggregation also needs to know which partitions it holds: it must restore
// a partition's state when the partition is assigned, save and drop it when
// the partition is revoked, drop it unsaved when it is lost, and close no
// window computed over part of the partitions it should see. The input
// publishes these events on the stream's Hub; the buffer listens. A buffer
// that chooses output partitions itself (stage one of the scale-out) asks
// the output for the partition count through Output.
//
// Glossary:
//   - assigned: the member now consumes the partition.
//   - revoked: the partition leaves the member in an orderly rebalance; the
//     member may still save state and commit before the rebalance goes on.
//   - lost: the partition was taken away (session expired, fenced); whatever
//     the member saves now may overwrite a newer owner's, so it saves nothing.
//   - stopping: the stream shuts down; the member keeps its partitions until
//     its client closes, but no more input comes.
package assignment

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Partition names one partition of a topic.
type Partition struct {
	Topic     string
	Partition int32
}

// Listener receives a stream's partition events. The calls come one at a
// time, in the order the input saw the events.
type Listener interface {
	// Assigned reports partitions the member now holds, besides those it
	// held, and the partition count of every topic it consumes.
	Assigned(ctx context.Context, parts []Partition, topics map[string]int32)
	// Revoked reports partitions leaving the member. The listener saves
	// and drops their state before it returns; ctx ends when the
	// rebalance cannot wait longer. Acknowledgements the listener makes
	// before returning are committed before the partitions move.
	Revoked(ctx context.Context, parts []Partition)
	// Lost reports partitions taken away without a rebalance: their state
	// is dropped unsaved.
	Lost(parts []Partition)
	// Stopping reports that the stream is shutting down. The listener
	// saves what it holds and acknowledges it before it returns, so that
	// the input can commit it before it closes.
	Stopping(ctx context.Context)
}

// Hub connects the input of one stream with its listeners. The zero value
// is not usable: get a stream's hub with Of.
type Hub struct {
	publisher atomic.Bool
	mu        sync.Mutex
	listeners []Listener
	checks    []func(context.Context) error
	held      map[Partition]struct{}
	topics    map[string]int32
	stopping  bool
}

type hubKey struct{}

// Of returns the hub of the stream whose resources res are, creating it.
func Of(res *service.Resources) *Hub {
	h, _ := res.GetOrSetGeneric(hubKey{}, &Hub{held: map[Partition]struct{}{}, topics: map[string]int32{}})
	return h.(*Hub)
}

// Publish is called by an input that reports partition events, when it is
// built: a listener then knows that a stream without partitions holds none
// yet (a standby), rather than reading from an input without partitions.
func (h *Hub) Publish() {
	h.publisher.Store(true)
}

// Published reports whether the stream's input reports partition events.
func (h *Hub) Published() bool {
	return h.publisher.Load()
}

// Require adds a check that must pass before the input consumes: a
// listener that cannot keep what it is given (its state store is
// unreachable) would otherwise hold input it can never acknowledge.
func (h *Hub) Require(check func(context.Context) error) {
	h.mu.Lock()
	h.checks = append(h.checks, check)
	h.mu.Unlock()
}

// Check runs the checks added with Require and returns the first failure.
func (h *Hub) Check(ctx context.Context) error {
	h.mu.Lock()
	checks := slices.Clone(h.checks)
	h.mu.Unlock()
	for _, c := range checks {
		if err := c(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Listen adds l. Partitions assigned before are reported to it at once, so
// the order in which a stream's components are built does not matter.
func (h *Hub) Listen(ctx context.Context, l Listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.listeners = append(h.listeners, l)
	if len(h.held) > 0 {
		l.Assigned(ctx, h.heldList(), h.topics)
	}
	if h.stopping {
		l.Stopping(ctx)
	}
}

func (h *Hub) heldList() []Partition {
	parts := make([]Partition, 0, len(h.held))
	for p := range h.held {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, Compare)
	return parts
}

// Assign is called by the input when it gets partitions.
func (h *Hub) Assign(ctx context.Context, parts []Partition, topics map[string]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range parts {
		h.held[p] = struct{}{}
	}
	h.topics = topics
	for _, l := range h.listeners {
		l.Assigned(ctx, parts, topics)
	}
}

// Revoke is called by the input when partitions are revoked, before it
// commits them.
func (h *Hub) Revoke(ctx context.Context, parts []Partition) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range parts {
		delete(h.held, p)
	}
	for _, l := range h.listeners {
		l.Revoked(ctx, parts)
	}
}

// Lose is called by the input when partitions are lost.
func (h *Hub) Lose(parts []Partition) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range parts {
		delete(h.held, p)
	}
	for _, l := range h.listeners {
		l.Lost(parts)
	}
}

// Stop is called by the input when the stream shuts down, before its last
// commit.
func (h *Hub) Stop(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		return
	}
	h.stopping = true
	for _, l := range h.listeners {
		l.Stopping(ctx)
	}
}

// Compare orders partitions by topic, then partition number.
func Compare(a, b Partition) int {
	return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// PartitionCounter tells the partition count of an output topic, as the
// brokers report it now; it follows changes of the topic.
type PartitionCounter interface {
	Partitions(ctx context.Context) (int32, error)
}

type outputKey struct{}

// SetOutput is called by an output that writes one topic.
func SetOutput(res *service.Resources, pc PartitionCounter) {
	res.SetGeneric(outputKey{}, pc)
}

// Output returns what the stream's output set with SetOutput.
func Output(res *service.Resources) (PartitionCounter, bool) {
	v, ok := res.GetGeneric(outputKey{})
	if !ok {
		return nil, false
	}
	return v.(PartitionCounter), true
}
