package components

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// singleStage aggregates the whole input in one lane and writes Monasca
// metrics. Since a value over part of the input would be published as if
// complete, it closes windows only while it holds every partition of its
// topics (when the input reports them).
type singleStage struct{ config *aggregationConfig }

func (singleStage) name() string { return stageSingle }

func (singleStage) laneSource(windowagg.Source) windowagg.Source { return windowagg.Source{} }

func (s singleStage) newEngine(clock func() time.Time, assigned bool) (laneEngine, error) {
	e, err := s.config.newEngine(clock, assigned)
	if err != nil {
		return nil, err // not a typed nil
	}
	return e, nil
}

func (singleStage) expect(l *lane, src windowagg.Source) { l.engine.(*windowagg.Engine).Expect(src) }

// prepare restores the lane before the first window closes when no
// partition events will: a checkpoint may hold open windows whose input is
// all committed, so no input may ever come to trigger the restore.
func (singleStage) prepare(ctx context.Context, b *aggregateBuffer) error {
	if b.hub.Published() {
		return nil
	}
	b.mu.Lock()
	l, err := b.laneOf(windowagg.Source{})
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if !b.restore(ctx, l) {
		return ctx.Err()
	}
	return nil
}

// mayClose reports whether the instance holds every partition of its
// topics. A member that holds part of them (another member, perhaps a dead
// one the broker has not evicted yet, holds the rest) would publish values
// over part of the input.
func (singleStage) mayClose(b *aggregateBuffer) bool {
	if !b.hub.Published() {
		return true
	}
	missing := b.holding.missing()
	b.missingGauge.Set(missing)
	holdsSome := len(b.holding.held) > 0
	if partial := missing > 0 && holdsSome; partial != b.holding.partial {
		b.holding.partial = partial
		if partial {
			b.log.Warnf("Holding %d of the input's partitions, %d missing: no window closes until this instance holds them all (another member holds the rest)", len(b.holding.held), missing)
		} else {
			b.log.Infof("Holding every input partition: windows close again")
		}
	}
	return holdsSome && missing == 0
}

func (singleStage) flush(b *aggregateBuffer, l *lane, now time.Time) (service.MessageBatch, int64) {
	aggs, through := l.engine.(*windowagg.Engine).Flush(nil)
	return b.encoder.encode(aggs, now), through
}

func (singleStage) extraOutput(*aggregateBuffer, time.Time) service.MessageBatch { return nil }
