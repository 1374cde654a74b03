package windowagg

import (
	"fmt"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Config holds the engine's timing parameters.
type Config struct {
	// Window is the window size of rules that do not set their own.
	Window time.Duration
	// Lag is how far the watermark must pass a window's end before the window
	// closes: the time allowed for out-of-order samples.
	Lag time.Duration
	// IdleTimeout excludes an input source from the watermark once it has
	// delivered nothing for this long, and closes every open window once all
	// sources have, so the last windows of a quiet stream are still emitted.
	IdleTimeout time.Duration
	// Discovery holds the watermark for this long after a source is seen
	// for the first time. Kafka starts serving the partitions of an
	// assignment at slightly different moments, and a watermark computed
	// before all of them have delivered would close windows that the
	// partitions not yet seen hold data for.
	Discovery time.Duration
	// AllowedLateness keeps the state of closed windows for this long after
	// they close: a late sample for such a window is folded in and the
	// window's aggregates are emitted again, complete (AddResult.Corrected).
	// Zero drops late samples (AddResult.Late).
	AllowedLateness time.Duration
	// MaxSeries bounds the series one rule may hold in one window: a sample
	// that would start another is rejected (AddResult.Rejected), so that a
	// flood of distinct dimension values cannot exhaust memory. Zero means
	// no bound.
	MaxSeries int
	// MaxFuture rejects samples stamped further than this ahead of the clock;
	// they must not drag the watermark forward and close windows early.
	MaxFuture time.Duration
	// MaxPast rejects samples stamped further than this behind the clock
	// (AddResult.TooOld): in a live stream such a timestamp is a clock
	// error, and aggregating it would publish a window long gone. Set it
	// no shorter than the input's retention, so that a replayed backlog is
	// never cut. Zero means no bound, for backfills of archived metrics.
	MaxPast time.Duration
	// Clock returns the wall-clock time; nil means time.Now.
	Clock func() time.Time
}

// Validate reports a configuration the engine cannot run with.
func (c *Config) Validate() error {
	switch {
	case c.Window < time.Second || c.Window > 24*time.Hour:
		return fmt.Errorf("window size %v is outside 1s..24h", c.Window)
	case c.Window%time.Millisecond != 0:
		return fmt.Errorf("window size %v is not a whole number of milliseconds", c.Window)
	case c.Lag < 0:
		return fmt.Errorf("negative lag %v", c.Lag)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("idle timeout %v must be positive", c.IdleTimeout)
	case c.AllowedLateness < 0:
		return fmt.Errorf("negative allowed lateness %v", c.AllowedLateness)
	case c.MaxSeries < 0:
		return fmt.Errorf("negative series limit %d", c.MaxSeries)
	case c.Discovery < 0:
		return fmt.Errorf("negative discovery hold %v", c.Discovery)
	case c.MaxFuture <= 0:
		return fmt.Errorf("future limit %v must be positive", c.MaxFuture)
	case c.MaxPast < 0:
		return fmt.Errorf("negative past limit %v", c.MaxPast)
	}
	return nil
}

// AddResult tells the caller what one Add did with a metric.
type AddResult struct {
	// Matched counts the rule windows the metric was folded into.
	Matched int
	// Late counts the rules whose window for the metric had already closed
	// and was no longer kept for corrections.
	Late int
	// Corrected counts the rules whose window had closed but was still kept
	// (Config.AllowedLateness): the metric was folded in, and the window's
	// aggregates are emitted again, complete, by the next Flush.
	Corrected int
	// Replayed counts, among Late, the windows that were closed before a
	// Restore: the metric is a replay of input that was already emitted.
	Replayed int
	// Future is set when the metric was rejected for a timestamp too far
	// ahead of the clock.
	Future bool
	// TooOld is set when the metric was rejected for a timestamp further
	// behind the clock than Config.MaxPast.
	TooOld bool
	// Rejected counts the windows that refused the metric because it would
	// have started a series beyond Config.MaxSeries.
	Rejected int
	// CloseAt is the largest close time (window end plus lag, epoch ms) of the
	// windows the metric went into, zero when none: once the frontier reaches
	// it, every aggregate the metric contributed to has been flushed.
	CloseAt int64
}

// Merge adds the outcome of another Add, for input that became several
// metrics (monasca-transform's record fan-out).
func (r *AddResult) Merge(o AddResult) {
	r.Matched += o.Matched
	r.Late += o.Late
	r.Corrected += o.Corrected
	r.Replayed += o.Replayed
	r.Future = r.Future || o.Future
	r.TooOld = r.TooOld || o.TooOld
	r.Rejected += o.Rejected
	r.CloseAt = max(r.CloseAt, o.CloseAt)
}

// Engine folds metrics into windows and flushes the windows the watermark has
// passed. It is not safe for concurrent use: the caller serialises Add, Flush
// and Restore. Stage two of a two-stage aggregation is a Merger instead.
type Engine struct {
	store
	byName map[string][]*ruleState // by metric name
	sample monasca.Metric          // AddSample's and AddPartial's, see asMetric
	// inputID is the input series of the metric being added, 0 until a
	// rule over input series needs it (see inputSeriesID).
	inputID uint64
}

// New builds an engine for rules. Rules are validated here, so an unknown or
// inconsistent rule never reaches run time.
func New(cfg Config, rules []Rule) (*Engine, error) {
	st, err := newStore(cfg, rules, false)
	if err != nil {
		return nil, err
	}
	e := &Engine{store: st, byName: map[string][]*ruleState{}}
	for _, r := range e.rules {
		for _, name := range r.metricNames() {
			e.byName[name] = append(e.byName[name], r)
		}
	}
	return e, nil
}

// Add folds metric m, read from input source src, into the window of every
// rule it matches, and counts the outcome per rule (TakeRuleCounts).
func (e *Engine) Add(src Source, m *monasca.Metric) AddResult {
	return e.add(src, m, single(m.Timestamp, m.Value))
}

// AddSample is Add for an input that is not a metric, such as a record of
// the record store.
func (e *Engine) AddSample(src Source, s *Sample) AddResult {
	return e.add(src, e.asMetric(s), single(s.Timestamp, s.Value))
}

// AddPartial folds s as a value that already summarises p.Records records
// (see State.AddPartial); s.Timestamp places it in its windows.
func (e *Engine) AddPartial(src Source, s *Sample, p Partial) AddResult {
	return e.add(src, e.asMetric(s), p)
}

// asMetric copies s into the engine's scratch metric. The engine reads its
// input as a metric, so that Add, the hot path, copies nothing; of the
// metric it reads only what a Sample has.
func (e *Engine) asMetric(s *Sample) *monasca.Metric {
	e.sample = monasca.Metric{Name: s.Name, Dimensions: s.Dimensions, TenantID: s.TenantID, Region: s.Region, Timestamp: s.Timestamp, Value: s.Value}
	return &e.sample
}

func (e *Engine) add(src Source, m *monasca.Metric, p Partial) AddResult {
	var res AddResult
	now := e.clock()
	if m.Timestamp > now.UnixMilli()+e.cfg.MaxFuture.Milliseconds() {
		res.Future = true
		return res
	}
	// Rejected before its source is marked as seen, like a future one: a
	// clock error must not keep an otherwise quiet partition from idling.
	if e.cfg.MaxPast > 0 && m.Timestamp < now.UnixMilli()-e.cfg.MaxPast.Milliseconds() {
		res.TooOld = true
		return res
	}
	s := e.source(src, now)
	s.maxTime = max(s.maxTime, m.Timestamp)
	e.inputID = 0 // computed for m by the first rule over input series
	for _, r := range e.byName[m.Name] {
		switch {
		case !r.matches(m):
		case len(r.Inputs) == 0:
			e.addToRule(r, m, nil, p, &res)
		default:
			for i := range r.Inputs {
				if r.Inputs[i].matches(m) {
					e.addToRule(r, m, &r.Inputs[i], p, &res)
				}
			}
		}
	}
	return res
}

// addToRule folds m into its window of rule r, counting the outcome in res
// and in the rule's counts; in, for a rule with Inputs, is the input that
// selected m.
func (e *Engine) addToRule(r *ruleState, m *monasca.Metric, in *Input, p Partial, res *AddResult) {
	start := WindowStart(m.Timestamp, r.size)
	closeAt := start + r.size + e.lag
	late := res.Late - res.Replayed
	w := e.windowFor(r, start, closeAt, res)
	if w == nil {
		if res.Late-res.Replayed > late {
			r.counts.Late++ // a replay of emitted input is not late
		}
		return
	}
	tenant := m.TenantID
	if r.AcrossTenants {
		tenant = ""
	}
	e.keyBuf = appendSeriesKey(e.keyBuf[:0], e.tenants.id(tenant), m, r.dimensionKeys())
	if in != nil {
		e.keyBuf = AppendKeyPart(e.keyBuf, in.Name)
	}
	idx, ok := w.index[string(e.keyBuf)]
	if !ok && e.cfg.MaxSeries > 0 && int(w.n) >= e.cfg.MaxSeries {
		res.Rejected++
		r.counts.Rejected++
		return
	}
	if !ok {
		var acc Accumulator
		if r.acc != nil {
			acc = r.acc.NewAccumulator()
		}
		idx = w.newSeries(e.regions.id(m.Region), acc)
		w.index[string(e.keyBuf)] = idx
		e.open++
	}
	w.series(idx).state.AddPartial(m.Value, p)
	switch acc := w.acc(idx).(type) {
	case nil:
	case *inputSamples:
		if e.inputID == 0 {
			e.inputID = inputSeriesID(m.TenantID, m)
		}
		acc.addFrom(e.inputID, m.Timestamp, m.Value)
	default:
		acc.Add(m.Timestamp, m.Value)
	}
	if closeAt <= e.frontier {
		w.dirty = true
		res.Corrected++
		r.counts.Corrected++
		return
	}
	res.Matched++
	r.counts.Matched++
	res.CloseAt = max(res.CloseAt, closeAt)
}

// Expect registers src as a source that has delivered nothing yet, unless
// it is known: it holds the watermark back until it delivers or stays quiet
// for the idle timeout. An input that knows its partitions before they
// deliver (a consumer group's assignment) expects them, so that a partition
// Kafka serves later than the others does not find its windows closed.
func (e *Engine) Expect(src Source) {
	if _, ok := e.sources[src]; !ok {
		e.source(src, e.clock())
	}
}

// Flush closes every window whose close time the watermark has reached,
// appends their aggregates to dst in close-time order, and returns dst and
// the new frontier.
//
// The watermark is the minimum, over sources that delivered within the idle
// timeout, of the latest event time each has seen: Kafka serves partitions
// unevenly, and a single maximum would close windows that a lagging
// partition still holds data for. When every source has been idle for the
// timeout, all open windows close; when nothing is open, nothing moves.
// Nothing closes on the watermark within the discovery hold of a new source.
func (e *Engine) Flush(dst []Aggregate) ([]Aggregate, int64) {
	return e.flush(dst, e.closeTime(allQuiet))
}

// allQuiet is the Engine's quiet: a source silent for the idle timeout
// delivers nothing more for the open windows.
func allQuiet() bool { return true }
