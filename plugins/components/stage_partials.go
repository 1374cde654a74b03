package components

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// partialsStage is stage one of a scale-out: a lane per input partition,
// whose closed windows become mergeable series states routed to the
// partials topic's partitions, and whose progress goes to every partials
// partition every progress interval.
type partialsStage struct {
	config *aggregationConfig
	// partitions of the partials topic; 0: ask the output.
	partitions    int
	progressEvery time.Duration

	// Under the buffer's mu: the partials topic's partition count the
	// next flush routes by, and when progress is written next.
	outPartitions int
	nextProgress  time.Time
}

func parsePartialsStage(conf *service.ParsedConfig, ac *aggregationConfig) (*partialsStage, error) {
	// One source per lane: nothing to discover.
	ac.engine.Discovery = 0
	if err := windowagg.CheckRuleNames(ac.rules); err != nil {
		return nil, err
	}
	s := &partialsStage{config: ac}
	var err error
	if s.partitions, err = conf.FieldInt(mabFieldPartialsPartitions); err != nil {
		return nil, err
	}
	if s.partitions < 0 {
		return nil, fmt.Errorf("%s must not be negative", mabFieldPartialsPartitions)
	}
	if s.progressEvery, err = conf.FieldDuration(mabFieldProgressInterval); err != nil {
		return nil, err
	}
	if s.progressEvery <= 0 {
		return nil, fmt.Errorf("%s must be positive", mabFieldProgressInterval)
	}
	return s, nil
}

func (*partialsStage) name() string { return stagePartials }

func (*partialsStage) laneSource(src windowagg.Source) windowagg.Source { return src }

func (s *partialsStage) newEngine(clock func() time.Time, assigned bool) (laneEngine, error) {
	e, err := s.config.newEngine(clock, assigned)
	if err != nil {
		return nil, err // not a typed nil
	}
	return e, nil
}

func (*partialsStage) expect(l *lane, src windowagg.Source) { l.engine.(*windowagg.Engine).Expect(src) }

// prepare sets the partition count of the partials topic for the next
// flush: the configured one, or the one the output reports, which follows
// the topic's changes. States route by it, so states of one series go to
// one partition as long as it does not change.
func (s *partialsStage) prepare(ctx context.Context, b *aggregateBuffer) error {
	n := s.partitions
	if n == 0 {
		out, ok := assignment.Output(b.res)
		if !ok {
			return fmt.Errorf("%s is 0 but the output does not report partition counts: use the kafka output or set %s", mabFieldPartialsPartitions, mabFieldPartialsPartitions)
		}
		count, err := out.Partitions(ctx)
		if err != nil {
			return fmt.Errorf("reading the partition count of the partials topic: %w", err)
		}
		n = int(count)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.outPartitions != 0 && s.outPartitions != n {
		b.log.Infof("The partials topic has %d partitions now (was %d)", n, s.outPartitions)
	}
	s.outPartitions = n
	return nil
}

func (*partialsStage) mayClose(*aggregateBuffer) bool { return true }

// flush renders the closed windows' series states, each with the input
// position it reflects, which stage two uses to tell a replay from news.
func (s *partialsStage) flush(b *aggregateBuffer, l *lane, _ time.Time) (service.MessageBatch, int64) {
	states, through := l.engine.(*windowagg.Engine).FlushStates(nil)
	out := make(service.MessageBatch, 0, len(states))
	for i := range states {
		msg, err := stateMessage(&states[i], l.src, l.position(), s.outPartitions)
		if err != nil {
			// Only a value JSON cannot carry gets here, and the
			// encoding keeps even infinities: this is a bug.
			b.log.Errorf("Encoding the state of rule %q: %v", states[i].Rule, err)
			continue
		}
		out = append(out, msg)
	}
	return out, through
}

// extraOutput returns, once per progress interval, the progress of every
// lane addressed to every partials partition. It is queued only when the
// output is idle, so it never reports a close time whose states are still
// on their way, and an outage does not pile it up.
func (s *partialsStage) extraOutput(b *aggregateBuffer, now time.Time) service.MessageBatch {
	if now.Before(s.nextProgress) || len(b.laneOrder) == 0 {
		return nil
	}
	s.nextProgress = now.Add(s.progressEvery)
	progress := make([]wireProgress, 0, len(b.laneOrder))
	for _, l := range b.laneOrder {
		if !l.restored.Load() {
			continue
		}
		p := wireProgress{Source: sourceOf(l.src, l.position()), LagMS: s.config.engine.Lag.Milliseconds()}
		if d := l.flushes.delivered; d != math.MinInt64 {
			p.Through = &d
		}
		// Idle only once everything it closed is delivered.
		p.Idle = len(l.flushes.marks) == 0 && l.engine.Idle()
		progress = append(progress, p)
	}
	if len(progress) == 0 {
		return nil
	}
	batch, err := progressMessages(progress, s.outPartitions)
	if err != nil {
		b.log.Errorf("Encoding progress: %v", err)
		return nil
	}
	return batch
}
