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
	// MaxFuture rejects samples stamped further than this ahead of the clock;
	// they must not drag the watermark forward and close windows early.
	MaxFuture time.Duration
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
	case c.MaxFuture <= 0:
		return fmt.Errorf("future limit %v must be positive", c.MaxFuture)
	}
	return nil
}

// AddResult tells the caller what one Add did with a metric.
type AddResult struct {
	// Matched counts the rule windows the metric was folded into.
	Matched int
	// Late counts the rules whose window for the metric had already closed.
	Late int
	// Replayed counts, among Late, the windows that were closed before a
	// Restore: the metric is a replay of input that was already emitted.
	Replayed int
	// Future is set when the metric was rejected for a timestamp too far
	// ahead of the clock.
	Future bool
	// CloseAt is the largest close time (window end plus lag, epoch ms) of the
	// windows the metric went into, zero when none: once the frontier reaches
	// it, every aggregate the metric contributed to has been flushed.
	CloseAt int64
}

// Engine folds metrics into windows and flushes the windows the watermark has
// passed. It is not safe for concurrent use: the caller serialises Add, Flush
// and Restore.
type Engine struct {
	cfg    Config
	clock  func() time.Time
	lag    int64
	rules  []*ruleState
	byName map[string][]*ruleState

	sources map[Source]*source
	// frontier is the close time up to which every window is closed: a
	// window whose end plus lag is at or before it accepts no more samples.
	frontier int64
	// restored is the frontier given to Restore.
	restored int64

	regions map[string]string // interned meta.region values
	keyBuf  []byte
	open    int // open series over all rules and windows
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
}

type ruleState struct {
	Rule
	size    int64 // window size, ms
	windows map[int64]*window
}

// window holds the series of one rule in one window. Series live in a slice
// and the map only indexes them, so a new series costs no allocation of its
// own beyond its key.
type window struct {
	start  int64
	index  map[string]int32 // series key -> position in series
	series []series
}

type series struct {
	region string
	state  State
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
	e := &Engine{
		cfg:      cfg,
		clock:    cfg.Clock,
		lag:      cfg.Lag.Milliseconds(),
		byName:   map[string][]*ruleState{},
		sources:  map[Source]*source{},
		regions:  map[string]string{},
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
		rs := &ruleState{Rule: r, size: size.Milliseconds(), windows: map[int64]*window{}}
		e.rules = append(e.rules, rs)
		e.byName[r.MetricName] = append(e.byName[r.MetricName], rs)
	}
	return e, nil
}

// Add folds m, read from input source src, into the window of every rule it
// matches.
func (e *Engine) Add(src Source, m *monasca.Metric) AddResult {
	var res AddResult
	now := e.clock()
	if m.Timestamp > now.UnixMilli()+e.cfg.MaxFuture.Milliseconds() {
		res.Future = true
		return res
	}
	s := e.sources[src]
	if s == nil {
		src.Stream = string([]byte(src.Stream)) // may alias input bytes
		s = &source{maxTime: math.MinInt64}
		e.sources[src] = s
	}
	s.lastSeen = now
	if m.Timestamp > s.maxTime {
		s.maxTime = m.Timestamp
	}
	for _, r := range e.byName[m.Name] {
		if !r.matches(m) {
			continue
		}
		start := floorDiv(m.Timestamp, r.size) * r.size
		closeAt := start + r.size + e.lag
		if closeAt <= e.frontier {
			res.Late++
			if closeAt <= e.restored {
				res.Replayed++
			}
			continue
		}
		w := r.windows[start]
		if w == nil {
			w = &window{start: start, index: map[string]int32{}}
			r.windows[start] = w
		}
		e.keyBuf = appendSeriesKey(e.keyBuf[:0], m, r.GroupBy)
		idx, ok := w.index[string(e.keyBuf)]
		if !ok {
			idx = int32(len(w.series))
			w.index[string(e.keyBuf)] = idx
			w.series = append(w.series, series{region: e.intern(m.Region)})
			e.open++
		}
		w.series[idx].state.Add(m.Timestamp, m.Value)
		res.Matched++
		res.CloseAt = max(res.CloseAt, closeAt)
	}
	return res
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
func (e *Engine) Flush(dst []Aggregate) ([]Aggregate, int64) {
	wm, ok := e.watermark(e.clock())
	if !ok {
		if e.open == 0 {
			return dst, e.frontier
		}
		wm = e.lastCloseAt()
	}
	return e.closeThrough(wm, dst), e.frontier
}

// FlushAll closes every open window, whatever the watermark, as at the end
// of a finite input.
func (e *Engine) FlushAll(dst []Aggregate) []Aggregate {
	if e.open == 0 {
		return dst
	}
	return e.closeThrough(e.lastCloseAt(), dst)
}

// closeThrough closes the windows whose close time is at or before wm.
func (e *Engine) closeThrough(wm int64, dst []Aggregate) []Aggregate {
	if wm <= e.frontier {
		return dst
	}
	e.frontier = wm
	type closing struct {
		closeAt int64
		rule    int
		w       *window
	}
	var due []closing
	for i, r := range e.rules {
		for start, w := range r.windows {
			if closeAt := start + r.size + e.lag; closeAt <= wm {
				due = append(due, closing{closeAt, i, w})
				delete(r.windows, start)
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
		dst = e.rules[c.rule].emit(c.w, dst)
		e.open -= len(c.w.series)
	}
	return dst
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

// Frontier returns the close time up to which every window has been flushed.
func (e *Engine) Frontier() int64 { return e.frontier }

// OpenSeries returns the number of series held in open windows.
func (e *Engine) OpenSeries() int { return e.open }

func (e *Engine) watermark(now time.Time) (int64, bool) {
	wm, ok := int64(math.MaxInt64), false
	for _, s := range e.sources {
		if now.Sub(s.lastSeen) >= e.cfg.IdleTimeout {
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

func (e *Engine) intern(s string) string {
	if v, ok := e.regions[s]; ok {
		return v
	}
	v := string([]byte(s)) // s may alias the decoder's input
	e.regions[v] = v
	return v
}

// emit appends the aggregates of one closed window of the rule.
func (r *ruleState) emit(w *window, dst []Aggregate) []Aggregate {
	end := w.start + r.size
	// Series are emitted in the order of their keys, so output is
	// deterministic whatever the map order.
	keys := make([]string, 0, len(w.index))
	for key := range w.index {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	var values []string
	if r.Rollup == nil {
		dst = slices.Grow(dst, len(keys))
		for _, key := range keys {
			s := &w.series[w.index[key]]
			v, ok := r.Function.Result(&s.state)
			if !ok {
				continue
			}
			var tenant string
			tenant, values = decodeSeriesKey(key, values[:0])
			dst = append(dst, Aggregate{
				Rule: r.Name, Name: r.OutputName,
				Dimensions: r.outputDimensions(r.GroupBy, values),
				TenantID:   tenant, Region: s.region,
				WindowStart: w.start, WindowEnd: end,
				Value: v, Count: s.state.Count, FirstTime: s.state.FirstTime, LastTime: s.state.LastTime,
			})
		}
		return dst
	}
	type rollup struct {
		tenant  string
		region  string
		values  []string
		value   State // fed with the group values
		samples State // merged group states, for count and first/last times
	}
	groups := map[string]*rollup{}
	var order []*rollup
	var keyBuf []byte
	for _, key := range keys {
		s := &w.series[w.index[key]]
		v, ok := r.Function.Result(&s.state)
		if !ok {
			continue
		}
		var tenant string
		tenant, values = decodeSeriesKey(key, values[:0])
		keyBuf = binary.AppendUvarint(keyBuf[:0], uint64(len(tenant)))
		keyBuf = append(keyBuf, tenant...)
		rolled := make([]string, len(r.Rollup.GroupBy))
		for i, k := range r.Rollup.GroupBy {
			rolled[i] = values[slices.Index(r.GroupBy, k)]
			keyBuf = binary.AppendUvarint(keyBuf, uint64(len(rolled[i])))
			keyBuf = append(keyBuf, rolled[i]...)
		}
		g := groups[string(keyBuf)]
		if g == nil {
			g = &rollup{tenant: tenant, region: s.region, values: rolled}
			groups[string(keyBuf)] = g
			order = append(order, g)
		}
		g.value.Add(w.start, v)
		g.samples.Merge(&s.state)
	}
	for _, g := range order {
		v, ok := r.Rollup.Function.Result(&g.value)
		if !ok {
			continue
		}
		dst = append(dst, Aggregate{
			Rule: r.Name, Name: r.OutputName,
			Dimensions: r.outputDimensions(r.Rollup.GroupBy, g.values),
			TenantID:   g.tenant, Region: g.region,
			WindowStart: w.start, WindowEnd: end,
			Value: v, Count: g.samples.Count, FirstTime: g.samples.FirstTime, LastTime: g.samples.LastTime,
		})
	}
	return dst
}

// outputDimensions returns the rule's fixed output dimensions plus keys[i] =
// values[i], sorted by key, a key given twice kept once.
func (r *ruleState) outputDimensions(keys, values []string) []monasca.Dimension {
	dims := make([]monasca.Dimension, 0, len(r.OutputDimensions)+len(keys))
	dims = append(dims, r.OutputDimensions...)
	for i, k := range keys {
		if !slices.ContainsFunc(dims, func(d monasca.Dimension) bool { return d.Key == k }) {
			dims = append(dims, monasca.Dimension{Key: k, Value: values[i]})
		}
	}
	slices.SortFunc(dims, func(a, b monasca.Dimension) int { return strings.Compare(a.Key, b.Key) })
	return dims
}

// appendSeriesKey encodes the tenant and the grouped dimension values of m,
// each length-prefixed so that no value can run into the next.
func appendSeriesKey(dst []byte, m *monasca.Metric, groupBy []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m.TenantID)))
	dst = append(dst, m.TenantID...)
	for _, k := range groupBy {
		v, _ := m.Dimension(k)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// decodeSeriesKey splits a key made by appendSeriesKey, appending the
// dimension values to values.
func decodeSeriesKey(key string, values []string) (tenant string, _ []string) {
	next := func() string {
		n, w := binary.Uvarint([]byte(key[:min(len(key), binary.MaxVarintLen64)]))
		s := key[w : w+int(n)]
		key = key[w+int(n):]
		return s
	}
	tenant = next()
	for len(key) > 0 {
		values = append(values, next())
	}
	return tenant, values
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
