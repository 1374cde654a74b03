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

// newEngine keeps partition discovery: the engine's sources are stage
// one's partitions, which no assignment reports.
func (s mergeStage) newEngine(clock func() time.Time, _ bool) (*windowagg.Engine, error) {
	return s.config.newEngine(clock, false)
}

// expect does nothing: the engine's sources are stage one's partitions,
// not the partials partitions the input holds.
func (mergeStage) expect(*windowagg.Engine, windowagg.Source) {}

func (mergeStage) prepare(context.Context, *aggregateBuffer) error { return nil }

func (mergeStage) mayClose(*aggregateBuffer) bool { return true }

func (mergeStage) flush(b *aggregateBuffer, l *lane, now time.Time) (service.MessageBatch, int64) {
	return flushAggregates(b, l, now)
}

func (mergeStage) extraOutput(*aggregateBuffer, time.Time) service.MessageBatch { return nil }
