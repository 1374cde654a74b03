package windowagg

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
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
	// Contributions makes the engine stage two of a two-stage aggregation:
	// it takes the series states of closed windows from stage-one engines
	// (Contribute) and their progress (Progress) instead of metrics, keeps
	// one contribution per stage-one source and series, and merges them
	// when the window closes. The watermark is then the minimum of the
	// sources' progress. Rule names must be unique.
	Contributions bool
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
// and Restore.
type Engine struct {
	cfg      Config
	clock    func() time.Time
	lag      int64
	lateness int64 // AllowedLateness, ms
	rules    []*ruleState
	byName   map[string][]*ruleState
	named    map[string]*ruleState // by rule name, with Contributions

	sources map[Source]*source
	// discovered is the wall-clock time the last new source was seen.
	discovered time.Time
	// frontier is the close time through which windows have been emitted:
	// a window whose end plus lag is at or before it accepts no more
	// samples, except as a correction.
	frontier int64
	// restored is the frontier given to Restore.
	restored int64

	// Tenants and regions are interned: series keys and series hold small
	// numbers instead of strings of their own.
	tenants interner
	regions interner
	keyBuf  []byte
	sample  monasca.Metric // AddSample's and AddPartial's, see asMetric
	open    int            // open series over all rules and windows
}

// Source identifies one ordered input stream, such as a Kafka topic
// partition. The watermark is the minimum over sources, because each source
// advances in event time at its own pace.
type Source struct {
	Stream    string
	Partition int32
}

// source is one input partition as the watermark sees it.
type source struct {
	maxTime  int64     // latest event time seen, epoch ms
	lastSeen time.Time // wall clock of the last sample
	// With Contributions: the source reported itself idle, and the input
	// offset of the last progress taken.
	idle   bool
	offset int64
}

type ruleState struct {
	Rule
	size    int64 // window size, ms
	windows map[int64]*window
	// closed keeps emitted windows for Config.AllowedLateness.
	closed map[int64]*window
	// counts are what Add and Contribute did for this rule since the
	// last TakeRuleCounts.
	counts RuleCounts
}

// window holds the series of one rule in one window. Series live in
// fixed-size chunks and the map only indexes them, so a new series costs no
// allocation of its own beyond its key, and growing never copies or doubles
// the whole set.
type window struct {
	start  int64
	dirty  bool             // closed, and changed since it was last emitted
	index  map[string]int32 // series key -> series number
	chunks [][]series
	n      int32 // number of series
}

const chunkBits = 10

type series struct {
	state  State
	region uint32 // in Engine.regions
	offset int64  // input offset of a contribution (Contribute)
}

func (w *window) series(i int32) *series {
	return &w.chunks[i>>chunkBits][i&(1<<chunkBits-1)]
}

// newSeries appends a series and returns its number.
func (w *window) newSeries(region uint32) int32 {
	i := w.n
	if int(i>>chunkBits) == len(w.chunks) {
		w.chunks = append(w.chunks, make([]series, 0, 1<<chunkBits))
	}
	c := &w.chunks[i>>chunkBits]
	*c = append(*c, series{region: region})
	w.n++
	return i
}

// New builds an engine for rules. Rules are validated here, so an unknown or
// inconsistent rule never reaches run time.
func New(cfg Config, rules []Rule) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, ErrNoRules
	}
	if cfg.Contributions {
		if err := CheckRuleNames(rules); err != nil {
			return nil, err
		}
	}
	e := &Engine{
		cfg:      cfg,
		clock:    cfg.Clock,
		lag:      cfg.Lag.Milliseconds(),
		lateness: cfg.AllowedLateness.Milliseconds(),
		byName:   map[string][]*ruleState{},
		sources:  map[Source]*source{},
		frontier: math.MinInt64,
		restored: math.MinInt64,
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	for i := range rules {
		r := rules[i]
		if err := r.Validate(); err != nil {
			return nil, err
		}
		size := r.Window
		if size == 0 {
			size = cfg.Window
		}
		// A metric can be this old and still belong to a window that
		// accepts it; rejecting it as too old would lose live data.
		if accepted := size + cfg.Lag + cfg.AllowedLateness; cfg.MaxPast > 0 && cfg.MaxPast < accepted {
			return nil, fmt.Errorf("rule %q: past limit %v is shorter than its window %v plus lag and allowed lateness (%v)", r.Name, cfg.MaxPast, size, accepted)
		}
		rs := &ruleState{Rule: r, size: size.Milliseconds(), windows: map[int64]*window{}, closed: map[int64]*window{}}
		e.rules = append(e.rules, rs)
		e.byName[r.MetricName] = append(e.byName[r.MetricName], rs)
		if cfg.Contributions {
			if e.named == nil {
				e.named = map[string]*ruleState{}
			}
			e.named[r.Name] = rs
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
	if e.cfg.Contributions {
		panic("windowagg: Add on an engine that takes contributions")
	}
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
	for _, r := range e.byName[m.Name] {
		if r.matches(m) {
			e.addToRule(r, m, p, &res)
		}
	}
	return res
}

// addToRule folds m into its window of rule r, counting the outcome in res
// and in the rule's counts.
func (e *Engine) addToRule(r *ruleState, m *monasca.Metric, p Partial, res *AddResult) {
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
	e.keyBuf = appendSeriesKey(e.keyBuf[:0], e.tenants.id(tenant), m, r.GroupBy)
	idx, ok := w.index[string(e.keyBuf)]
	if !ok && e.cfg.MaxSeries > 0 && int(w.n) >= e.cfg.MaxSeries {
		res.Rejected++
		r.counts.Rejected++
		return
	}
	if !ok {
		idx = w.newSeries(e.regions.id(m.Region))
		w.index[string(e.keyBuf)] = idx
		e.open++
	}
	w.series(idx).state.AddPartial(m.Value, p)
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

// source returns the state of src, registering a new source, and marks it
// as seen now.
func (e *Engine) source(src Source, now time.Time) *source {
	s := e.sources[src]
	if s == nil {
		src.Stream = string([]byte(src.Stream)) // may alias input bytes
		s = &source{maxTime: math.MinInt64, offset: math.MinInt64}
		e.sources[src] = s
		e.discovered = now
	} else if e.cfg.Contributions && now.Sub(s.lastSeen) >= e.cfg.IdleTimeout {
		// A stage-one partition back from silence: the others may be
		// coming back too, and must not be left behind.
		e.discovered = now
	}
	s.lastSeen = now
	return s
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

// windowFor returns the window of rule r starting at start that takes a
// sample closing at closeAt: an open one, or a closed one kept for
// corrections. It returns nil, and counts why in res, when the window is
// gone.
func (e *Engine) windowFor(r *ruleState, start, closeAt int64, res *AddResult) *window {
	var w *window
	switch {
	case closeAt > e.frontier:
		if w = r.windows[start]; w == nil {
			w = &window{start: start, index: map[string]int32{}}
			r.windows[start] = w
		}
	case closeAt <= e.restored:
		// Emitted by an earlier run, whose state is gone: folding the
		// sample in would emit a partial value.
		res.Late++
		res.Replayed++
	case closeAt+e.lateness > e.frontier:
		if w = r.closed[start]; w == nil {
			// Closed without data: this sample is all it has.
			w = &window{start: start, index: map[string]int32{}}
			r.closed[start] = w
		}
	default:
		res.Late++
	}
	return w
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
	e.closeThrough(e.closeTime(), func(r *ruleState, w *window) { dst = e.emit(r, w, dst) })
	return dst, e.frontier
}

// closeTime returns the close time up to which Flush closes windows.
func (e *Engine) closeTime() int64 {
	now := e.clock()
	wm, ok := e.watermark(now)
	switch {
	case ok && now.Sub(e.discovered) < e.cfg.Discovery:
		return e.frontier
	case !ok && e.anyOpen() && e.allQuiet():
		return e.lastCloseAt()
	case !ok:
		return e.frontier
	}
	return wm
}

// allQuiet reports whether no source will deliver for the open windows.
// Without contributions, quiet is the idle timeout. With them, only sources
// that reported themselves idle have closed everything: one that merely
// went silent (stage one down, or cut off from the partials topic) may
// still deliver, so it is no longer waited for once others move on, but its
// silence alone closes nothing.
func (e *Engine) allQuiet() bool {
	if !e.cfg.Contributions {
		return true
	}
	for _, s := range e.sources {
		if !s.idle {
			return false
		}
	}
	return true
}

func (e *Engine) anyOpen() bool {
	for _, r := range e.rules {
		if len(r.windows) > 0 {
			return true
		}
	}
	return false
}

// FlushAll closes every open window, whatever the watermark, as at the end
// of a finite input.
func (e *Engine) FlushAll(dst []Aggregate) []Aggregate {
	through := e.frontier
	if e.anyOpen() {
		through = e.lastCloseAt()
	}
	e.closeThrough(through, func(r *ruleState, w *window) { dst = e.emit(r, w, dst) })
	return dst
}

// Idle reports whether every source has been quiet for the idle timeout and
// no window is open: nothing will close until input arrives again.
func (e *Engine) Idle() bool {
	_, ok := e.watermark(e.clock())
	return !ok && !e.anyOpen()
}

// closeThrough closes the windows whose close time is at or before through and
// hands them to emit in close-time order, with the kept closed windows that
// late samples changed since they were emitted; then it drops the closed
// windows kept longer than the allowed lateness.
func (e *Engine) closeThrough(through int64, emit func(*ruleState, *window)) {
	type closing struct {
		closeAt int64
		rule    int
		w       *window
	}
	var due []closing
	for i, r := range e.rules {
		for start, w := range r.closed {
			if w.dirty {
				w.dirty = false
				due = append(due, closing{start + r.size + e.lag, i, w})
			}
		}
	}
	if through > e.frontier {
		e.frontier = through
		for i, r := range e.rules {
			for start, w := range r.windows {
				if closeAt := start + r.size + e.lag; closeAt <= through {
					due = append(due, closing{closeAt, i, w})
					delete(r.windows, start)
					if e.lateness > 0 {
						r.closed[start] = w
					} else {
						e.open -= int(w.n)
					}
				}
			}
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].closeAt != due[j].closeAt {
			return due[i].closeAt < due[j].closeAt
		}
		return due[i].rule < due[j].rule
	})
	for _, c := range due {
		emit(e.rules[c.rule], c.w)
	}
	for _, r := range e.rules {
		for start, w := range r.closed {
			if start+r.size+e.lag+e.lateness <= e.frontier {
				delete(r.closed, start)
				e.open -= int(w.n)
			}
		}
	}
}

// Restore declares every window closing at or before frontier as already
// emitted, as recorded by an earlier run; replayed input for those windows is
// then counted as Replayed instead of being aggregated a second time.
func (e *Engine) Restore(frontier int64) {
	if frontier > e.frontier {
		e.frontier = frontier
	}
	if frontier > e.restored {
		e.restored = frontier
	}
}

// Frontier returns the close time through which windows have been emitted.
func (e *Engine) Frontier() int64 { return e.frontier }

// OpenSeries returns the number of series held, in open windows and in
// closed windows kept for corrections.
func (e *Engine) OpenSeries() int { return e.open }

func (e *Engine) watermark(now time.Time) (int64, bool) {
	wm, ok := int64(math.MaxInt64), false
	for _, s := range e.sources {
		if s.idle || now.Sub(s.lastSeen) >= e.cfg.IdleTimeout {
			continue
		}
		wm, ok = min(wm, s.maxTime), true
	}
	return wm, ok
}

func (e *Engine) lastCloseAt() int64 {
	last := int64(math.MinInt64)
	for _, r := range e.rules {
		for start := range r.windows {
			last = max(last, start+r.size+e.lag)
		}
	}
	return last
}

// interner numbers strings, so that what is kept per series is 4 bytes.
type interner struct {
	ids  map[string]uint32
	list []string
}

func (in *interner) id(s string) uint32 {
	if i, ok := in.ids[s]; ok {
		return i
	}
	if in.ids == nil {
		in.ids = map[string]uint32{}
	}
	i := uint32(len(in.list))
	s = string([]byte(s)) // it may alias the decoder's input
	in.ids[s] = i
	in.list = append(in.list, s)
	return i
}

func (in *interner) str(id uint32) string { return in.list[id] }

// emit appends the aggregates of one closed window of the rule: one row per
// group, then the rule's Combiner, Rollup and naming.
func (e *Engine) emit(r *ruleState, w *window, dst []Aggregate) []Aggregate {
	rows := e.groupRows(r, w)
	valued := rows[:0]
	for _, row := range rows {
		v, ok := r.Function.Result(&row.State)
		if !ok {
			continue
		}
		row.Value = v
		valued = append(valued, row)
	}
	rows = valued
	if r.Combine != nil {
		rows = r.Combine.Combine(&r.Rule, rows)
	}
	if r.Rollup != nil {
		rows = r.rollup(rows, w.start)
	}
	dst = slices.Grow(dst, len(rows))
	for i := range rows {
		row := &rows[i]
		name, dims, ok := r.name(row, r.Rollup != nil)
		if !ok {
			continue
		}
		dst = append(dst, Aggregate{
			Rule: r.Name, Name: name, Dimensions: dims,
			TenantID: row.TenantID, Region: row.Region,
			WindowStart: w.start, WindowEnd: w.start + r.size,
			Value: row.Value, Count: row.State.Records, FirstTime: row.State.FirstTime, LastTime: row.State.LastTime,
		})
	}
	return dst
}

// groupRows returns one row per group of a closed window, without values,
// the contributions of a series merged.
func (e *Engine) groupRows(r *ruleState, w *window) []Row {
	// Groups are visited in the order of tenant, then group values, so
	// output is deterministic whatever the map or arrival order.
	keys := make([]string, 0, len(w.index))
	for key := range w.index {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ta, na := binary.Uvarint([]byte(a[:min(len(a), binary.MaxVarintLen32)]))
		tb, nb := binary.Uvarint([]byte(b[:min(len(b), binary.MaxVarintLen32)]))
		if c := strings.Compare(e.tenants.str(uint32(ta)), e.tenants.str(uint32(tb))); c != 0 {
			return c
		}
		return strings.Compare(a[na:], b[nb:])
	})
	rows := make([]Row, 0, len(keys))
	for _, key := range keys {
		s := w.series(w.index[key])
		tenant, values := decodeSeriesKey(key, make([]string, 0, len(r.GroupBy)+1))
		if e.cfg.Contributions {
			// The last value names the contributing source; the keys of
			// one series' contributions sort next to each other.
			values = values[:len(values)-1]
			if n := len(rows); n > 0 && rows[n-1].TenantID == e.tenants.str(tenant) && slices.Equal(rows[n-1].Values, values) {
				rows[n-1].State.Merge(&s.state)
				continue
			}
		}
		rows = append(rows, Row{Keys: r.GroupBy, Values: values, TenantID: e.tenants.str(tenant), Region: e.regions.str(s.region), State: s.state})
	}
	return rows
}
