package windowagg

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// store is the window store Engine and Merger share: the rules and their
// windows of series, the sources and the watermark over them, interning,
// closing and emitting windows, and their snapshot (snapshot.go). What
// goes into the windows is the owner's: metrics (Engine) or stage one's
// contributions (Merger).
type store struct {
	cfg      Config
	clock    func() time.Time
	lag      int64
	lateness int64 // AllowedLateness, ms
	rules    []*ruleState
	// bySource is set when a series key ends with the contributing source,
	// so that a window holds one state per source of a series and merges
	// them when it is emitted (Merger).
	bySource bool

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
	open    int // open series over all rules and windows
}

// newStore validates cfg and rules and returns an empty store for them.
func newStore(cfg Config, rules []Rule, bySource bool) (store, error) {
	if err := cfg.Validate(); err != nil {
		return store{}, err
	}
	if len(rules) == 0 {
		return store{}, ErrNoRules
	}
	s := store{
		cfg:      cfg,
		clock:    cfg.Clock,
		lag:      cfg.Lag.Milliseconds(),
		lateness: cfg.AllowedLateness.Milliseconds(),
		bySource: bySource,
		sources:  map[Source]*source{},
		frontier: math.MinInt64,
		restored: math.MinInt64,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	for i := range rules {
		r := rules[i]
		if err := r.Validate(); err != nil {
			return store{}, err
		}
		size := r.Window
		if size == 0 {
			size = cfg.Window
		}
		// A metric can be this old and still belong to a window that
		// accepts it; rejecting it as too old would lose live data.
		if accepted := size + cfg.Lag + cfg.AllowedLateness; cfg.MaxPast > 0 && cfg.MaxPast < accepted {
			return store{}, fmt.Errorf("rule %q: past limit %v is shorter than its window %v plus lag and allowed lateness (%v)", r.Name, cfg.MaxPast, size, accepted)
		}
		rs := &ruleState{Rule: r, size: size.Milliseconds(), acc: accumulating(r.Function),
			windows: map[int64]*window{}, closed: map[int64]*window{}}
		if sf, ok := r.Function.(seriesFunc); ok {
			rs.series = &sf
		}
		s.rules = append(s.rules, rs)
	}
	return s, nil
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
	// Set by the Merger only: the source reported itself idle, and the
	// input position of the last progress taken (see Merger.Progress).
	idle     bool
	position int64
}

type ruleState struct {
	Rule
	size int64 // window size, ms
	// acc is the rule's function when it keeps an Accumulator per series.
	acc AccumulatingFunction
	// series is the rule's function when it is one over input series, and
	// carries holds, per group (groupKey), the last sample of each input
	// series in the last window emitted, to carry into the next one.
	series  *seriesFunc
	carries map[string]carry
	windows map[int64]*window
	// closed keeps emitted windows for Config.AllowedLateness.
	closed map[int64]*window
	// counts are what Engine.Add or Merger.Contribute did for this rule
	// since the last TakeRuleCounts.
	counts RuleCounts
}

// window holds the series of one rule in one window. Series live in
// fixed-size chunks and the map only indexes them, so a new series costs no
// allocation of its own beyond its key, and growing never copies or doubles
// the whole set.
type window struct {
	start int64
	dirty bool // closed, and changed since it was last emitted
	// carried is, for a rule over input series whose closed windows are
	// kept for corrections, what the window's first emission carried in,
	// per group: a correction is emitted with the same.
	carried map[string]carry
	index   map[string]int32 // series key -> series number
	chunks  [][]series
	// accs holds the series' accumulators in chunks like theirs, for a rule
	// whose function accumulates: other rules pay nothing for them.
	accs [][]Accumulator
	n    int32 // number of series
}

const chunkBits = 10

type series struct {
	state    State
	region   uint32 // in store.regions
	position int64  // input position of a contribution (Merger.Contribute)
}

func (w *window) series(i int32) *series {
	return &w.chunks[i>>chunkBits][i&(1<<chunkBits-1)]
}

// newSeries appends a series, with accumulator acc unless it is nil, and
// returns its number. A window's series all have one or none.
func (w *window) newSeries(region uint32, acc Accumulator) int32 {
	i := w.n
	if int(i>>chunkBits) == len(w.chunks) {
		w.chunks = append(w.chunks, make([]series, 0, 1<<chunkBits))
		if acc != nil {
			w.accs = append(w.accs, make([]Accumulator, 0, 1<<chunkBits))
		}
	}
	c := &w.chunks[i>>chunkBits]
	*c = append(*c, series{region: region})
	if acc != nil {
		a := &w.accs[i>>chunkBits]
		*a = append(*a, acc)
	}
	w.n++
	return i
}

// setAcc replaces the accumulator of series i of a window that keeps them.
func (w *window) setAcc(i int32, a Accumulator) { w.accs[i>>chunkBits][i&(1<<chunkBits-1)] = a }

// acc returns the accumulator of series i, nil when the window keeps none.
func (w *window) acc(i int32) Accumulator {
	if w.accs == nil {
		return nil
	}
	return w.accs[i>>chunkBits][i&(1<<chunkBits-1)]
}

// source returns the state of src, registering a new source, and marks it
// as seen now.
func (s *store) source(src Source, now time.Time) *source {
	so := s.sources[src]
	if so == nil {
		src.Stream = string([]byte(src.Stream)) // may alias input bytes
		so = &source{maxTime: math.MinInt64, position: math.MinInt64}
		s.sources[src] = so
		s.discovered = now
	}
	so.lastSeen = now
	return so
}

// windowFor returns the window of rule r starting at start that takes a
// sample closing at closeAt: an open one, or a closed one kept for
// corrections. It returns nil, and counts why in res, when the window is
// gone.
func (s *store) windowFor(r *ruleState, start, closeAt int64, res *AddResult) *window {
	var w *window
	switch {
	case closeAt > s.frontier:
		if w = r.windows[start]; w == nil {
			w = &window{start: start, index: map[string]int32{}}
			r.windows[start] = w
		}
	case closeAt <= s.restored:
		// Emitted by an earlier run, whose state is gone: folding the
		// sample in would emit a partial value.
		res.Late++
		res.Replayed++
	case closeAt+s.lateness > s.frontier:
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

// closeTime returns the close time up to which Flush closes windows.
// quiet reports whether no source will deliver for the open windows once
// every source has been quiet for the idle timeout.
func (s *store) closeTime(quiet func() bool) int64 {
	now := s.clock()
	wm, ok := s.watermark(now)
	switch {
	case ok && now.Sub(s.discovered) < s.cfg.Discovery:
		return s.frontier
	case !ok && s.anyOpen() && quiet():
		return s.lastCloseAt()
	case !ok:
		return s.frontier
	}
	return wm
}

func (s *store) anyOpen() bool {
	for _, r := range s.rules {
		if len(r.windows) > 0 {
			return true
		}
	}
	return false
}

// flush closes the windows whose close time is at or before through and
// appends their aggregates to dst; it returns dst and the new frontier.
func (s *store) flush(dst []Aggregate, through int64) ([]Aggregate, int64) {
	s.closeThrough(through, func(r *ruleState, w *window) { dst = s.emit(r, w, dst) })
	return dst, s.frontier
}

// FlushAll closes every open window, whatever the watermark, as at the end
// of a finite input.
func (s *store) FlushAll(dst []Aggregate) []Aggregate {
	through := s.frontier
	if s.anyOpen() {
		through = s.lastCloseAt()
	}
	dst, _ = s.flush(dst, through)
	return dst
}

// Idle reports whether every source has been quiet for the idle timeout and
// no window is open: nothing will close until input arrives again.
func (s *store) Idle() bool {
	_, ok := s.watermark(s.clock())
	return !ok && !s.anyOpen()
}

// closeThrough closes the windows whose close time is at or before through and
// hands them to emit in close-time order, with the kept closed windows that
// late samples changed since they were emitted; then it drops the closed
// windows kept longer than the allowed lateness.
func (s *store) closeThrough(through int64, emit func(*ruleState, *window)) {
	type closing struct {
		closeAt int64
		rule    int
		w       *window
	}
	var due []closing
	for i, r := range s.rules {
		for start, w := range r.closed {
			if w.dirty {
				w.dirty = false
				due = append(due, closing{start + r.size + s.lag, i, w})
			}
		}
	}
	if through > s.frontier {
		s.frontier = through
		for i, r := range s.rules {
			for start, w := range r.windows {
				if closeAt := start + r.size + s.lag; closeAt <= through {
					due = append(due, closing{closeAt, i, w})
					delete(r.windows, start)
					if s.lateness > 0 {
						r.closed[start] = w
					} else {
						s.open -= int(w.n)
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
		emit(s.rules[c.rule], c.w)
	}
	for _, r := range s.rules {
		for start, w := range r.closed {
			if start+r.size+s.lag+s.lateness <= s.frontier {
				delete(r.closed, start)
				s.open -= int(w.n)
			}
		}
	}
}

// Restore declares every window closing at or before frontier as already
// emitted, as recorded by an earlier run; replayed input for those windows is
// then counted as Replayed instead of being aggregated a second time.
func (s *store) Restore(frontier int64) {
	if frontier > s.frontier {
		s.frontier = frontier
	}
	if frontier > s.restored {
		s.restored = frontier
	}
}

// Frontier returns the close time through which windows have been emitted.
func (s *store) Frontier() int64 { return s.frontier }

// OpenSeries returns the number of series held, in open windows and in
// closed windows kept for corrections.
func (s *store) OpenSeries() int { return s.open }

// watermark returns the least latest event time over the sources that are
// not quiet, and false when every source is.
func (s *store) watermark(now time.Time) (int64, bool) {
	wm, ok := int64(math.MaxInt64), false
	for _, so := range s.sources {
		if so.idle || now.Sub(so.lastSeen) >= s.cfg.IdleTimeout {
			continue
		}
		wm, ok = min(wm, so.maxTime), true
	}
	return wm, ok
}

func (s *store) lastCloseAt() int64 {
	last := int64(math.MinInt64)
	for _, r := range s.rules {
		for start := range r.windows {
			last = max(last, start+r.size+s.lag)
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
func (s *store) emit(r *ruleState, w *window, dst []Aggregate) []Aggregate {
	rows := s.groupRows(r, w)
	carries := r.carries
	switch {
	case w.carried != nil: // a correction
		carries = w.carried
	case r.series != nil:
		s.carryOn(r, w, rows)
	}
	valued := rows[:0]
	for _, row := range rows {
		var v float64
		var ok bool
		if r.series != nil {
			v, ok = r.series.resultIn(row.Acc, w.start, w.start+r.size, carries[groupKey(&row)])
		} else {
			v, ok = resultOf(r.Function, &row.State, row.Acc)
		}
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

// carryOn records, at the first emission of window w of a rule over input
// series, the last sample of each input series in it for the next window,
// and keeps what w carried in for a correction when closed windows are
// kept. rows are w's group rows.
func (s *store) carryOn(r *ruleState, w *window, rows []Row) {
	if s.lateness > 0 {
		w.carried = r.carries
		if w.carried == nil {
			w.carried = map[string]carry{}
		}
	}
	next := make(map[string]carry, len(rows))
	for i := range rows {
		if a, ok := rows[i].Acc.(*inputSamples); ok {
			next[groupKey(&rows[i])] = a.last()
		}
	}
	r.carries = next
}

// groupKey identifies a group row: its tenant and group values.
func groupKey(row *Row) string {
	key := AppendKeyPart(nil, row.TenantID)
	for _, v := range row.Values {
		key = AppendKeyPart(key, v)
	}
	return string(key)
}

// groupRows returns one row per group of a closed window, without values,
// the contributions of a series merged.
func (s *store) groupRows(r *ruleState, w *window) []Row {
	// Groups are visited in the order of tenant, then group values, so
	// output is deterministic whatever the map or arrival order.
	keys := make([]string, 0, len(w.index))
	for key := range w.index {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ta, na := binary.Uvarint([]byte(a[:min(len(a), binary.MaxVarintLen32)]))
		tb, nb := binary.Uvarint([]byte(b[:min(len(b), binary.MaxVarintLen32)]))
		if c := strings.Compare(s.tenants.str(uint32(ta)), s.tenants.str(uint32(tb))); c != 0 {
			return c
		}
		return strings.Compare(a[na:], b[nb:])
	})
	rows := make([]Row, 0, len(keys))
	for _, key := range keys {
		i := w.index[key]
		ser, acc := w.series(i), w.acc(i)
		tenant, values := decodeSeriesKey(key, make([]string, 0, len(r.GroupBy)+1))
		if s.bySource {
			// The last value names the contributing source; the keys of
			// one series' contributions sort next to each other.
			values = values[:len(values)-1]
			if n := len(rows); n > 0 && rows[n-1].TenantID == s.tenants.str(tenant) && slices.Equal(rows[n-1].Values, values) {
				rows[n-1].State.Merge(&ser.state)
				if acc != nil {
					rows[n-1].Acc.Merge(acc)
				}
				continue
			}
			if acc != nil {
				// Merged into a copy: a kept window emits again.
				merged := r.acc.NewAccumulator()
				merged.Merge(acc)
				acc = merged
			}
		}
		rows = append(rows, Row{Keys: r.GroupBy, Values: values, TenantID: s.tenants.str(tenant), Region: s.regions.str(ser.region), State: ser.state, Acc: acc})
	}
	return rows
}
