package components

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// mergeStage is stage two of a scale-out: a lane per partials partition
// merges the series states of every input partition per series and window
// and writes Monasca metrics, closing a window once every input
// partition's progress has passed it.
type mergeStage struct{ config *aggregationConfig }

func (mergeStage) name() string { return stageMerge }

func (mergeStage) laneSource(src windowagg.Source) windowagg.Source { return src }

// newEngine builds a Merger, with partition discovery: its sources are
// stage one's partitions, which no assignment reports.
func (s mergeStage) newEngine(clock func() time.Time, _ bool) (laneEngine, error) {
	e, err := s.config.newMerger(clock)
	if err != nil {
		return nil, err // not a typed nil
	}
	return e, nil
}

// expect does nothing: the Merger's sources are stage one's partitions,
// not the partials partitions the input holds.
func (mergeStage) expect(*lane, windowagg.Source) {}

func (mergeStage) prepare(context.Context, *aggregateBuffer) error { return nil }

func (mergeStage) mayClose(*aggregateBuffer) bool { return true }

func (mergeStage) flush(b *aggregateBuffer, l *lane, now time.Time) (service.MessageBatch, int64) {
	aggs, through := l.engine.(*windowagg.Merger).Flush(nil)
	return b.encoder.encode(aggs, now), through
}

func (mergeStage) extraOutput(*aggregateBuffer, time.Time) service.MessageBatch { return nil }
