package components

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/recordstore"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Reasons of monasca_metrics_invalid_total besides the decoder's
// (monasca.Reason) and the record store's (recordstore.Status).
const (
	// reasonFutureTimestamp: the engine rejected a timestamp too far ahead
	// of the clock (max_future).
	reasonFutureTimestamp = "timestamp_in_future"
	// reasonTooOld: the engine rejected a timestamp too far behind the
	// clock (max_past).
	reasonTooOld = "timestamp_too_old"
	// reasonInvalidInstanceUsage: an instance-usage row could not be read.
	reasonInvalidInstanceUsage = "invalid_instance_usage"
	// reasonInvalidRecord: a record-store row could not be read.
	reasonInvalidRecord = "invalid_record"
	// reasonSeriesLimit: the metric would have started a series beyond
	// max_series_per_window.
	reasonSeriesLimit = "series_limit"
	// reasonInvalidState: a partials-topic message could not be read.
	reasonInvalidState = "invalid_state"
	// reasonStateMismatch: a partials-topic message does not fit this
	// stage's specifications, window size or lag.
	reasonStateMismatch = "state_mismatch"
)

// folder decodes input messages and folds them into an engine, counting
// every outcome. It is shared by the buffer and the processor; the caller
// serialises calls.
type folder struct {
	// The engine folded into, of the input's kind: an Engine for metrics,
	// records and instance usage, a Merger for partials-topic states
	// (inputStates); counts is the same one, for the rule counts.
	engine *windowagg.Engine
	merger *windowagg.Merger
	counts laneEngine
	origin string
	input  inputKind
	lag    int64                  // window lag in ms, checked against stage one's (inputStates)
	conv   *recordstore.Converter // for inputTransformMetrics
	dec    monasca.Decoder
	// Decoding targets, reused from message to message.
	metric  monasca.Metric
	records []recordstore.Record // a metric's (inputTransformMetrics)
	row     recordstore.Record   // a record-store row (inputRecords)
	usage   recordstore.InstanceUsage
	stats   *foldStats
	log     *invalidLog
	// deadLetter keeps the messages reject sees in deadLetters, for the
	// caller to pass downstream.
	deadLetter  bool
	deadLetters service.MessageBatch
}

// foldCounts are the outcomes of one batch, added to the Prometheus counters
// once per batch rather than once per message.
type foldCounts struct {
	received, aggregated, corrected, unmatched, late, replayed, ownOutput int64
	invalidBy                                                             map[string]int64
}

type foldStats struct {
	received   *service.MetricCounter
	invalid    *service.MetricCounter
	aggregated *service.MetricCounter
	corrected  *service.MetricCounter
	unmatched  *service.MetricCounter
	late       *service.MetricCounter
	replayed   *service.MetricCounter
	ownOutput  *service.MetricCounter
	openSeries *service.MetricGauge
	specs      *specStats
}

func newFoldStats(m *service.Metrics, rules []windowagg.Rule) *foldStats {
	return &foldStats{
		received:   m.NewCounter("monasca_metrics_received_total"),
		invalid:    m.NewCounter("monasca_metrics_invalid_total", "reason"),
		aggregated: m.NewCounter("monasca_metrics_aggregated_total"),
		corrected:  m.NewCounter("monasca_metrics_corrected_total"),
		unmatched:  m.NewCounter("monasca_metrics_unmatched_total"),
		late:       m.NewCounter("monasca_metrics_late_total"),
		replayed:   m.NewCounter("monasca_metrics_replayed_total"),
		ownOutput:  m.NewCounter("monasca_metrics_own_output_skipped_total"),
		openSeries: m.NewGauge("monasca_open_series"),
		specs:      newSpecStats(m, rules),
	}
}

func newFolder(engine laneEngine, c *aggregationConfig, stats *foldStats, log *invalidLog) *folder {
	f := &folder{origin: c.output.origin, input: c.input, lag: c.engine.Lag.Milliseconds(), stats: stats, log: log, deadLetter: c.deadLetter}
	// Aggregator specifications aggregate per tenant; transform specs take
	// the tenant from the record fields, as monasca-transform did.
	f.dec.RequireTenant = c.input == inputMetrics
	if c.converter != nil {
		f.conv = c.converter.Clone()
		f.dec.KeepMaps = true
	}
	f.use(engine)
	return f
}

// use makes engine, an Engine or a Merger, the one f folds into.
func (f *folder) use(engine laneEngine) {
	f.counts = engine
	switch e := engine.(type) {
	case *windowagg.Engine:
		f.engine = e
	case *windowagg.Merger:
		f.merger = e
	}
}

// foldBatch folds every message of batch into the engine and returns the
// largest close time of the windows the batch went into (zero when none),
// and whether it corrected closed windows, whose aggregates the next flush
// emits again. Bad messages are counted, logged at a limited rate and
// skipped; they never stop the batch.
func (f *folder) foldBatch(batch service.MessageBatch) (closeAt int64, corrected bool) {
	var c foldCounts
	for _, msg := range batch {
		c.received++
		if o, ok := msg.MetaGetMut(originMetaKey); ok && o == f.origin {
			c.ownOutput++
			continue
		}
		r, ok := f.fold(&c, msg)
		if !ok {
			continue
		}
		if reason := c.count(r); reason != "" {
			f.reject(&c, msg, reason, nil)
		}
		closeAt = max(closeAt, r.CloseAt)
		corrected = corrected || r.Corrected > 0
	}
	f.record(&c)
	return closeAt, corrected
}

// fold decodes one message by the input kind and folds it into the engine.
// It returns false for a message it has counted already: rejected, an
// unmatched metric of the record store or a progress message.
func (f *folder) fold(c *foldCounts, msg *service.Message) (windowagg.AddResult, bool) {
	var r windowagg.AddResult
	raw, err := msg.AsBytes()
	if err != nil {
		f.reject(c, msg, string(monasca.ReasonUnknown), err)
		return r, false
	}
	src := messageSource(msg)
	switch f.input {
	case inputMetrics, inputTransformMetrics:
		if err := f.dec.Decode(raw, &f.metric); err != nil {
			f.reject(c, msg, string(monasca.ReasonOf(err)), err)
			return r, false
		}
		if f.input == inputTransformMetrics {
			return f.foldRecords(c, msg, src)
		}
		return f.engine.Add(src, &f.metric), true
	case inputRecords:
		if err := recordstore.DecodeRow(raw, &f.row); err != nil {
			f.reject(c, msg, reasonInvalidRecord, err)
			return r, false
		}
		s := f.row.Sample()
		return f.engine.AddSample(src, &s), true
	case inputInstanceUsage:
		if err := recordstore.DecodeInstanceUsage(raw, &f.usage); err != nil {
			f.reject(c, msg, reasonInvalidInstanceUsage, err)
			return r, false
		}
		s := f.usage.Sample()
		return f.engine.AddPartial(src, &s, f.usage.Records), true
	}
	// inputStates
	if r, err = foldStates(raw, f.merger, f.lag); err != nil {
		reason := reasonInvalidState
		if errors.Is(err, errStateMismatch) {
			reason = reasonStateMismatch
		}
		f.reject(c, msg, reason, err)
		return r, false
	}
	return r, r != windowagg.AddResult{} // nothing done: progress
}

// foldRecords converts the metric just decoded into its records and folds
// each of them.
func (f *folder) foldRecords(c *foldCounts, msg *service.Message, src windowagg.Source) (windowagg.AddResult, bool) {
	var r windowagg.AddResult
	var out recordstore.Outcome
	f.records, out = f.conv.Convert(&f.metric, f.records[:0])
	switch out.Status {
	case recordstore.Unmatched:
		c.unmatched++
		return r, false
	case recordstore.MissingRequiredField:
		f.reject(c, msg, out.Status.String(), fmt.Errorf("%s: required field %s is missing or empty", f.metric.Name, out.Field))
		return r, false
	}
	for i := range f.records {
		s := f.records[i].Sample()
		r.Merge(f.engine.AddSample(src, &s))
	}
	return r, true
}

// count adds what the engine did with one input message, and returns the
// reason when the engine rejected it.
func (c *foldCounts) count(r windowagg.AddResult) (rejected string) {
	switch {
	case r.Future:
		return reasonFutureTimestamp
	case r.TooOld:
		return reasonTooOld
	case r.Matched > 0:
		c.aggregated++
	case r.Corrected > 0:
		c.corrected++
	case r.Rejected > 0:
	case r.Late > r.Replayed:
		c.late++
	case r.Replayed > 0:
		c.replayed++
	default:
		c.unmatched++
	}
	if r.Rejected > 0 {
		return reasonSeriesLimit
	}
	return ""
}

// reject counts and logs a message that cannot be aggregated and, with
// dead letters on, keeps a copy for the output, marked with the reason.
func (f *folder) reject(c *foldCounts, msg *service.Message, reason string, err error) {
	if c.invalidBy == nil {
		c.invalidBy = map[string]int64{}
	}
	c.invalidBy[reason]++
	f.log.report(reason, err)
	if f.deadLetter {
		dl := msg.Copy()
		dl.MetaSetMut(invalidReasonMetaKey, reason)
		if err != nil {
			dl.MetaSetMut(invalidErrorMetaKey, err.Error())
		}
		f.deadLetters = append(f.deadLetters, dl)
	}
}

func (f *folder) record(c *foldCounts) {
	s := f.stats
	s.received.Incr(c.received)
	for reason, n := range c.invalidBy {
		s.invalid.Incr(n, reason)
	}
	s.aggregated.Incr(c.aggregated)
	s.corrected.Incr(c.corrected)
	s.unmatched.Incr(c.unmatched)
	s.late.Incr(c.late)
	s.replayed.Incr(c.replayed)
	s.ownOutput.Incr(c.ownOutput)
	s.specs.record(f.counts)
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

// messageOffset returns the Kafka offset of a message, zero without one.
func messageOffset(msg *service.Message) int64 {
	o, _ := msg.MetaGetMut("kafka_offset")
	switch o := o.(type) {
	case int64:
		return o
	case int:
		return int64(o)
	case int32:
		return int64(o)
	}
	return 0
}

// invalidLog logs bad input at a limited rate: the first occurrence of each
// reason at once, then one summary line per reason and period, so a flood of
// bad messages cannot flood the log.
type invalidLog struct {
	log   *service.Logger
	every time.Duration
	what  string // what is skipped, for the log line; "invalid input" when empty

	mu      sync.Mutex
	reasons map[string]*invalidReason
}

type invalidReason struct {
	last       time.Time
	suppressed int64
}

func newInvalidLog(log *service.Logger) *invalidLog {
	return &invalidLog{log: log, every: 10 * time.Second, what: "invalid metric"}
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
	detail, what := reason, l.what
	if err != nil {
		detail = err.Error()
	}
	if what == "" {
		what = "invalid input"
	}
	if r.suppressed > 0 {
		l.log.Warnf("skipped %s (%s): %s; %d more skipped for this reason since the last report", what, reason, detail, r.suppressed)
	} else {
		l.log.Warnf("skipped %s (%s): %s", what, reason, detail)
	}
	r.last, r.suppressed = now, 0
}
