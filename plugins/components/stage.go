package components

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Values of the stage field.
const (
	stageSingle   = "single"
	stagePartials = "partials"
	stageMerge    = "merge"
)

// stage is the part a buffer plays in an aggregation: which lane folds an
// input partition, what its engine is, when windows may close, and what
// closed windows become. One type per value of the stage field:
// singleStage, partialsStage, mergeStage.
type stage interface {
	// name is the stage field's value.
	name() string
	// laneSource returns the source of the lane that folds input of
	// partition src: one lane for all in stage single, one per partition
	// in the scale-out stages.
	laneSource(src windowagg.Source) windowagg.Source
	// newEngine builds a lane's engine, of the stage's kind; assigned
	// tells that the input reports its partitions.
	newEngine(clock func() time.Time, assigned bool) (laneEngine, error)
	// expect tells lane l's engine that held input partition src has not
	// delivered yet (see windowagg.Engine.Expect).
	expect(l *lane, src windowagg.Source)
	// prepare runs at every pass of the read loop, before windows close,
	// without the buffer's lock.
	prepare(ctx context.Context, b *aggregateBuffer) error
	// mayClose reports whether windows may close now. Called with the
	// buffer's mu held.
	mayClose(b *aggregateBuffer) bool
	// flush closes lane l's due windows and returns their output and the
	// close time through which windows are now closed. Called with mu held.
	flush(b *aggregateBuffer, l *lane, now time.Time) (service.MessageBatch, int64)
	// extraOutput returns what the stage writes besides closed windows,
	// queued when the output is idle. Called with mu held.
	extraOutput(b *aggregateBuffer, now time.Time) service.MessageBatch
}

// laneEngine is what a lane and the buffer need of a lane's engine: a
// windowagg.Engine (stages single and partials) or a windowagg.Merger
// (stage merge). Each stage adds, folds into and flushes its own kind.
type laneEngine interface {
	Frontier() int64
	OpenSeries() int
	Idle() bool
	Restore(frontier int64)
	AppendSnapshot(dst []byte) []byte
	RestoreSnapshot(snap []byte) error
	Status() windowagg.Status
	TakeRuleCounts(dst []windowagg.RuleCounts) []windowagg.RuleCounts
	AddOpenSeries(open []int64)
}
