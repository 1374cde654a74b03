package components

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/checkpoint"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// lane is the aggregation of the input partitions its stage routes to it:
// all of them in stage single, one in the scale-out stages. It owns its
// engine, the input positions folded into it, the acknowledgements waiting
// for a checkpoint, its flushes awaiting delivery and its checkpoint
// schedule.
//
// Locks: saveMu serialises the lane's restore, its saves and the releases
// of its acknowledgements, which talk to the store and must keep their
// order; the buffer's mu guards every other field, and is taken after
// saveMu, never before.
type lane struct {
	src      windowagg.Source // the lane's input partition; zero in stage single
	stateKey string           // where its checkpoints are saved
	engine   laneEngine
	saveMu   sync.Mutex
	restored atomic.Bool // what an earlier owner saved has been read

	// positions holds, per input partition, the offset of the last input
	// folded, so that a replay after a restore skips what the checkpoint
	// holds.
	positions   map[windowagg.Source]int64
	acks        ackLedger
	flushes     flushLog
	ckpt        checkpointSchedule
	deadLetters service.MessageBatch // for the next flush (dead_letter)
	lastSaved   savedCheckpoint      // for the status page

	// leaving is set once the lane's partitions are revoked: it folds and
	// closes nothing more while its last state is saved.
	leaving bool
}

func newLane(src windowagg.Source, stateKey string, engine laneEngine, checkpointEvery time.Duration) *lane {
	return &lane{
		src: src, stateKey: stateKey, engine: engine,
		positions: map[windowagg.Source]int64{},
		flushes:   flushLog{delivered: math.MinInt64},
		ckpt:      checkpointSchedule{every: checkpointEvery},
	}
}

// position returns the offset of the last input folded from the lane's own
// partition, math.MinInt64 before any.
func (l *lane) position() int64 {
	if p, ok := l.positions[l.src]; ok {
		return p
	}
	return math.MinInt64
}

// fold folds batch, one lane's part of an input batch, and holds ack until
// a checkpoint holds the batch (and its dead letters are delivered); it
// returns whether it holds it. Called with the buffer's mu held.
func (l *lane) fold(f *folder, batch service.MessageBatch, ack service.AckFunc) bool {
	batch = l.skipReplayed(f, batch)
	if len(batch) == 0 {
		return false
	}
	f.use(l.engine)
	closeAt, corrected := f.foldBatch(batch)
	dead := len(f.deadLetters) > 0
	if dead {
		l.deadLetters = append(l.deadLetters, f.deadLetters...)
		f.deadLetters = nil
	}
	if closeAt == 0 && !corrected && !dead {
		return false
	}
	l.ckpt.changed = true
	h := heldAck{checkpoint: l.ckpt.taken + 1, ack: ack}
	if dead {
		h.flush = l.flushes.seq + 1 // the next flush writes them
	}
	l.acks.hold(h)
	return true
}

// skipReplayed drops the messages the lane holds already (a replay from
// the committed offset, which trails the checkpoint), counting them as
// replayed, and records the positions of the others. Each partition's
// messages arrive in offset order.
func (l *lane) skipReplayed(f *folder, batch service.MessageBatch) service.MessageBatch {
	kept, skipped := batch[:0:0], 0
	for i, msg := range batch {
		if _, ok := msg.MetaGetMut("kafka_offset"); !ok {
			if skipped > 0 {
				kept = append(kept, msg)
			}
			continue
		}
		src, off := messageSource(msg), messageOffset(msg)
		if pos, ok := l.positions[src]; ok && off <= pos {
			if skipped == 0 {
				kept = append(kept, batch[:i]...)
			}
			skipped++
			continue
		}
		l.positions[src] = off
		if skipped > 0 {
			kept = append(kept, msg)
		}
	}
	if skipped == 0 {
		return batch
	}
	f.stats.replayed.Incr(int64(skipped))
	return kept
}

// takeCheckpoint snapshots the lane when a checkpoint is due (or forced)
// and the last one is saved: once per interval while input comes in, at
// once after a flush's output is delivered, and when the lane's partitions
// leave or the stream stops, so that nothing is left to replay. Called with
// the output idle, so that every window the snapshot lacks has been
// delivered, and with mu held.
func (l *lane) takeCheckpoint(now time.Time, force bool) {
	if !l.restored.Load() || !l.ckpt.due(now, force) {
		return
	}
	l.ckpt.take(checkpoint.Append(nil, l.positions, l.engine), now)
}

// heldAck is the acknowledgement of an input batch, released once
// checkpoint number checkpoint is saved and flush number flush (the one
// writing the batch's dead letters; 0: none) is delivered.
type heldAck struct {
	checkpoint int64
	flush      int64
	ack        service.AckFunc
}

// ackLedger holds a lane's input acknowledgements in input order; both
// numbers grow with it, so releases take a prefix.
type ackLedger struct{ waiting []heldAck }

func (a *ackLedger) hold(h heldAck) { a.waiting = append(a.waiting, h) }

// release removes and returns the acknowledgements that checkpoint saved
// and flush delivered free.
func (a *ackLedger) release(saved, delivered int64) []service.AckFunc {
	n := 0
	for n < len(a.waiting) && a.waiting[n].checkpoint <= saved && a.waiting[n].flush <= delivered {
		n++
	}
	if n == 0 {
		return nil // most settles release nothing: no allocation for them
	}
	acks := make([]service.AckFunc, n)
	for i := range n {
		acks[i] = a.waiting[i].ack
	}
	a.waiting = a.waiting[n:]
	return acks
}

func (a *ackLedger) len() int { return len(a.waiting) }

// checkpointSchedule numbers a lane's checkpoints and keeps the one taken
// until it is saved.
type checkpointSchedule struct {
	every   time.Duration
	changed bool // folded or flushed since the last checkpoint
	next    time.Time
	pending []byte // taken, not saved yet
	taken   int64  // number of the last checkpoint taken
	saved   int64  // number of the last checkpoint saved
}

func (c *checkpointSchedule) due(now time.Time, force bool) bool {
	return c.pending == nil && c.changed && (force || !now.Before(c.next))
}

func (c *checkpointSchedule) take(payload []byte, now time.Time) {
	c.pending = payload
	c.taken++
	c.changed = false
	c.next = now.Add(c.every)
}

// dueNow makes the next checkpoint due at once.
func (c *checkpointSchedule) dueNow() { c.changed, c.next = true, time.Time{} }

// flushMark is one flush of a lane's engine: its number, the close time it
// reached and how many of its output chunks await acknowledgement.
type flushMark struct {
	seq     int64
	through int64
	chunks  int // written
	pending int // not yet acknowledged
}

// flushLog is a lane's flushes not yet fully delivered, in order, and how
// far delivery has come.
type flushLog struct {
	marks        []*flushMark
	seq          int64 // number of the last flush
	delivered    int64 // close time reached by the last flush fully delivered
	deliveredSeq int64 // number of that flush
}

func (f *flushLog) add(through int64) *flushMark {
	f.seq++
	m := &flushMark{seq: f.seq, through: through}
	f.marks = append(f.marks, m)
	return m
}

// busy reports whether some output of the lane's flushes awaits
// acknowledgement.
func (f *flushLog) busy() bool {
	for _, m := range f.marks {
		if m.pending > 0 {
			return true
		}
	}
	return false
}

// pending returns the output chunks awaiting acknowledgement.
func (f *flushLog) pending() int {
	n := 0
	for _, m := range f.marks {
		n += m.pending
	}
	return n
}

// settle advances delivery over the fully acknowledged flushes and reports
// whether any of them wrote output.
func (f *flushLog) settle() (emitted bool) {
	for len(f.marks) > 0 && f.marks[0].pending == 0 {
		f.delivered, f.deliveredSeq = f.marks[0].through, f.marks[0].seq
		emitted = emitted || f.marks[0].chunks > 0
		f.marks = f.marks[1:]
	}
	return emitted
}
