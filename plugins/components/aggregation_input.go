package components

import (
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// reasonFutureTimestamp labels metrics the engine rejected for a timestamp
// too far ahead of the clock; the other reasons come from the decoder.
const reasonFutureTimestamp = "timestamp_in_future"

// folder decodes input messages and folds them into an engine, counting
// every outcome. It is shared by the buffer and the processor; the caller
// serialises calls.
type folder struct {
	engine *windowagg.Engine
	origin string
	dec    monasca.Decoder
	metric monasca.Metric
	stats  *foldStats
	log    *invalidLog
}

// foldCounts are the outcomes of one batch, added to the Prometheus counters
// once per batch rather than once per message.
type foldCounts struct {
	received, aggregated, unmatched, late, replayed, ownOutput int64
	invalid                                                    map[string]int64
}

type foldStats struct {
	received   *service.MetricCounter
	invalid    *service.MetricCounter
	aggregated *service.MetricCounter
	unmatched  *service.MetricCounter
	late       *service.MetricCounter
	replayed   *service.MetricCounter
	ownOutput  *service.MetricCounter
	emitted    *service.MetricCounter
	openSeries *service.MetricGauge
}

func newFoldStats(m *service.Metrics) *foldStats {
	return &foldStats{
		received:   m.NewCounter("monasca_metrics_received_total"),
		invalid:    m.NewCounter("monasca_metrics_invalid_total", "reason"),
		aggregated: m.NewCounter("monasca_metrics_aggregated_total"),
		unmatched:  m.NewCounter("monasca_metrics_unmatched_total"),
		late:       m.NewCounter("monasca_metrics_late_total"),
		replayed:   m.NewCounter("monasca_metrics_replayed_total"),
		ownOutput:  m.NewCounter("monasca_metrics_own_output_skipped_total"),
		emitted:    m.NewCounter("monasca_aggregates_emitted_total"),
		openSeries: m.NewGauge("monasca_open_series"),
	}
}

func newFolder(engine *windowagg.Engine, origin string, res *service.Resources) *folder {
	return &folder{
		engine: engine,
		origin: origin,
		stats:  newFoldStats(res.Metrics()),
		log:    &invalidLog{log: res.Logger(), every: 10 * time.Second},
	}
}

// foldBatch folds every message of batch into the engine and returns the
// largest close time of the windows the batch went into (zero when none).
// Bad messages are counted, logged at a limited rate and skipped; they never
// stop the batch.
func (f *folder) foldBatch(batch service.MessageBatch) (closeAt int64) {
	var c foldCounts
	for _, msg := range batch {
		c.received++
		if o, ok := msg.MetaGetMut(originMetaKey); ok && o == f.origin {
			c.ownOutput++
			continue
		}
		raw, err := msg.AsBytes()
		if err == nil {
			err = f.dec.Decode(raw, &f.metric)
		}
		if err != nil {
			c.addInvalid(string(monasca.ReasonOf(err)))
			f.log.report(string(monasca.ReasonOf(err)), err)
			continue
		}
		r := f.engine.Add(messageSource(msg), &f.metric)
		switch {
		case r.Future:
			c.addInvalid(reasonFutureTimestamp)
			f.log.report(reasonFutureTimestamp, nil)
		case r.Matched == 0 && r.Late == 0:
			c.unmatched++
		}
		if r.Matched > 0 {
			c.aggregated++
		}
		if r.Late > r.Replayed {
			c.late++
		} else if r.Replayed > 0 {
			c.replayed++
		}
		closeAt = max(closeAt, r.CloseAt)
	}
	f.record(&c)
	return closeAt
}

func (f *folder) record(c *foldCounts) {
	s := f.stats
	s.received.Incr(c.received)
	for reason, n := range c.invalid {
		s.invalid.Incr(n, reason)
	}
	s.aggregated.Incr(c.aggregated)
	s.unmatched.Incr(c.unmatched)
	s.late.Incr(c.late)
	s.replayed.Incr(c.replayed)
	s.ownOutput.Incr(c.ownOutput)
	s.openSeries.Set(int64(f.engine.OpenSeries()))
}

func (c *foldCounts) addInvalid(reason string) {
	if c.invalid == nil {
		c.invalid = map[string]int64{}
	}
	c.invalid[reason]++
}

// messageSource names the partition a message was read from, from the
// metadata every Kafka input sets; messages without it share one source.
func messageSource(msg *service.Message) windowagg.Source {
	var src windowagg.Source
	if t, ok := msg.MetaGetMut("kafka_topic"); ok {
		src.Stream, _ = t.(string)
	}
	if p, ok := msg.MetaGetMut("kafka_partition"); ok {
		switch p := p.(type) {
		case int:
			src.Partition = int32(p)
		case int32:
			src.Partition = p
		case int64:
			src.Partition = int32(p)
		}
	}
	return src
}

// invalidLog logs bad input at a limited rate: the first occurrence of each
// reason at once, then one summary line per reason and period, so a flood of
// bad messages cannot flood the log.
type invalidLog struct {
	log   *service.Logger
	every time.Duration

	mu      sync.Mutex
	reasons map[string]*invalidReason
}

type invalidReason struct {
	last       time.Time
	suppressed int64
}

func (l *invalidLog) report(reason string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reasons == nil {
		l.reasons = map[string]*invalidReason{}
	}
	r := l.reasons[reason]
	if r == nil {
		r = &invalidReason{}
		l.reasons[reason] = r
	}
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < l.every {
		r.suppressed++
		return
	}
	detail := reason
	if err != nil {
		detail = err.Error()
	}
	if r.suppressed > 0 {
		l.log.Warnf("skipped invalid metric (%s): %s; %d more skipped for this reason since the last report", reason, detail, r.suppressed)
	} else {
		l.log.Warnf("skipped invalid metric (%s): %s", reason, detail)
	}
	r.last, r.suppressed = now, 0
}
