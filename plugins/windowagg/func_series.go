package windowagg

import (
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Functions over input series. A counter's increase and a gauge's
// time-weighted value depend on the order of each input series' own
// samples (an input series is a metric name with all its dimensions and
// tenant, such as one VM's counter), not on the group's samples taken
// together, and on the last sample of each input series before the window:
// a counter's increase since then, the value a gauge held when the window
// began. Their accumulator keeps every sample of the window by input
// series (16 bytes a sample); the engine carries each input series' last
// sample into the next window, if it is no more than one window size before
// that window's start (a series sampled less often has holes).

func init() {
	RegisterFunction(seriesFunc{name: "increase", value: increase})
	RegisterFunction(seriesFunc{name: "counter_rate", value: counterRate})
	RegisterFunction(seriesFunc{name: "time_weighted_avg", value: timeWeightedAvg})
	// Registered for its name (snapshots, error messages); specifications
	// build theirs with TimeInState and their state value.
	RegisterFunction(TimeInState(0))
}

// TimeInState returns the function time_in_state for state: the seconds of
// the window during which an input series' value equalled state, summed
// over the group's input series.
func TimeInState(state float64) Function {
	return seriesFunc{name: timeInStateName, value: func(in *inputSpan) (float64, bool) { return timeInState(in, state) }}
}

const timeInStateName = "time_in_state"

// point is one sample of an input series.
type point struct {
	T int64 // epoch ms
	V float64
}

// inputSpan is what a series function computes from: the window, and per
// input series its carried sample (ok false: none) and its samples.
type inputSpan struct {
	start, end int64
	series     []inputPoints
}

type inputPoints struct {
	carried point
	carries bool
	points  []point // by time
}

// seriesFunc is a function over input series.
type seriesFunc struct {
	name  string
	value func(*inputSpan) (float64, bool)
}

func (f seriesFunc) Name() string                               { return f.name }
func (seriesFunc) Result(*State) (float64, bool)                { return 0, false }
func (seriesFunc) ResultOf(*State, Accumulator) (float64, bool) { return 0, false }
func (seriesFunc) NewAccumulator() Accumulator                  { return &inputSamples{} }

func (f seriesFunc) DecodeAccumulator(b []byte) (Accumulator, error) {
	a := &inputSamples{}
	if err := a.decode(b); err != nil {
		return nil, errors.New(f.name + ": malformed accumulator: " + err.Error())
	}
	return a, nil
}

// resultIn computes the value over window [start, end) from the window's
// samples and the carried samples.
func (f seriesFunc) resultIn(a Accumulator, start, end int64, carried carry) (float64, bool) {
	s, ok := a.(*inputSamples)
	if !ok {
		return 0, false
	}
	span := inputSpan{start: start, end: end, series: make([]inputPoints, 0, len(s.by))}
	for _, in := range s.ids() {
		p := inputPoints{points: s.by[in]}
		p.carried, p.carries = carried[in]
		p.carries = p.carries && p.carried.T < start && p.carried.T >= start-(end-start)
		span.series = append(span.series, p)
	}
	return f.value(&span)
}

// increase sums, over input series, the increase between consecutive
// samples, the carried one first; a value lower than the one before is a
// counter reset: the counter restarted from zero and rose to it.
func increase(in *inputSpan) (float64, bool) {
	total := 0.0
	for _, s := range in.series {
		prev, have := s.carried, s.carries
		for _, p := range s.points {
			if have {
				if p.V >= prev.V {
					total += p.V - prev.V
				} else {
					total += p.V
				}
			}
			prev, have = p, true
		}
	}
	return total, true
}

// counterRate is the increase per second of the window.
func counterRate(in *inputSpan) (float64, bool) {
	v, ok := increase(in)
	return v / (float64(in.end-in.start) / 1000), ok
}

// holding calls hold for each stretch of the window during which an input
// series held a value: from the window's start (with a carried sample) or
// its first sample, each sample until the next one, the last until the
// window's end.
func (in *inputSpan) holding(hold func(v float64, ms int64)) {
	for _, s := range in.series {
		from, v, have := in.start, s.carried.V, s.carries
		for _, p := range s.points {
			if have {
				hold(v, p.T-from)
			}
			from, v, have = p.T, p.V, true
		}
		if have {
			hold(v, in.end-from)
		}
	}
}

// timeWeightedAvg is the mean of the values weighted by how long each was
// held, over every input series' held time.
func timeWeightedAvg(in *inputSpan) (float64, bool) {
	var sum float64
	var ms int64
	in.holding(func(v float64, d int64) { sum += v * float64(d); ms += d })
	if ms == 0 {
		return 0, false
	}
	return sum / float64(ms), true
}

func timeInState(in *inputSpan, state float64) (float64, bool) {
	var ms int64
	in.holding(func(v float64, d int64) {
		if v == state {
			ms += d
		}
	})
	return float64(ms) / 1000, true
}

// inputSamples is the accumulator of the series functions: the samples of
// a window by input series (see inputSeriesID), each in time order, ties in
// arrival order.
type inputSamples struct {
	by map[uint64][]point
}

// Add folds in a sample without an input series; the engine uses addFrom.
func (a *inputSamples) Add(ts int64, v float64) { a.addFrom(0, ts, v) }

func (a *inputSamples) addFrom(in uint64, ts int64, v float64) {
	if a.by == nil {
		a.by = map[uint64][]point{}
	}
	ps := a.by[in]
	i := len(ps)
	for i > 0 && ps[i-1].T > ts { // samples mostly come in order
		i--
	}
	a.by[in] = slices.Insert(ps, i, point{ts, v})
}

func (a *inputSamples) Merge(o Accumulator) {
	for in, ps := range o.(*inputSamples).by {
		for _, p := range ps {
			a.addFrom(in, p.T, p.V)
		}
	}
}

// ids returns the input series in order, so that results and encodings do
// not depend on the map's order.
func (a *inputSamples) ids() []uint64 { return slices.Sorted(maps.Keys(a.by)) }

// last returns each input series' last sample.
func (a *inputSamples) last() carry {
	c := make(carry, len(a.by))
	for in, ps := range a.by {
		c[in] = ps[len(ps)-1]
	}
	return c
}

// AppendBinary writes uvarint n, then n × (8-byte id, uvarint k,
// k × (varint time, 8-byte value)), ids in order.
func (a *inputSamples) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(a.by)))
	for _, in := range a.ids() {
		ps := a.by[in]
		dst = binary.LittleEndian.AppendUint64(dst, in)
		dst = binary.AppendUvarint(dst, uint64(len(ps)))
		for _, p := range ps {
			dst = binary.AppendVarint(dst, p.T)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(p.V))
		}
	}
	return dst
}

func (a *inputSamples) decode(b []byte) error {
	r := snapReader{b: b}
	n := r.count("input series", 9)
	a.by = make(map[uint64][]point, n)
	for range n {
		in := r.uint64()
		k := r.count("samples", 9)
		ps := make([]point, 0, k)
		for range k {
			p := point{T: r.varint(), V: r.float()}
			if r.err == nil && (len(ps) > 0 && p.T < ps[len(ps)-1].T || math.IsNaN(p.V) || math.IsInf(p.V, 0)) {
				r.fail("samples out of order or not finite")
			}
			ps = append(ps, p)
		}
		if r.err == nil && (k == 0 || a.by[in] != nil) {
			r.fail("input series %x empty or given twice", in)
		}
		a.by[in] = ps
	}
	if r.err == nil && r.off != len(b) {
		r.fail("%d bytes left over", len(b)-r.off)
	}
	return r.err
}

// carry is the last sample of each input series before a window.
type carry map[uint64]point

// inputSeriesID identifies the input series of m in tenant: FNV-1a (64
// bits, stable across processes, so that stage one and stage two agree) of
// the tenant, the name and the dimensions in key order.
func inputSeriesID(tenant string, m *monasca.Metric) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		h = (h ^ 0xff) * prime // a separator no UTF-8 string holds
	}
	add(tenant)
	add(m.Name)
	// Dimensions in key order (keys are unique) without sorting the
	// metric's own: a handful of keys, each pass takes the next smallest.
	prev, started := "", false
	for range m.Dimensions {
		next := -1
		for i, d := range m.Dimensions {
			if (!started || d.Key > prev) && (next == -1 || d.Key < m.Dimensions[next].Key) {
				next = i
			}
		}
		add(m.Dimensions[next].Key)
		add(m.Dimensions[next].Value)
		prev, started = m.Dimensions[next].Key, true
	}
	return h
}

// appendCarries appends carries: uvarint n, n × (string group key, uvarint
// k, k × (8-byte id, varint time, 8-byte value)), in key and id order.
func appendCarries(dst []byte, carries map[string]carry) []byte {
	keys := slices.Sorted(maps.Keys(carries))
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		c := carries[k]
		dst = AppendKeyPart(dst, k)
		ids := slices.Sorted(maps.Keys(c))
		dst = binary.AppendUvarint(dst, uint64(len(ids)))
		for _, in := range ids {
			dst = binary.LittleEndian.AppendUint64(dst, in)
			dst = binary.AppendVarint(dst, c[in].T)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(c[in].V))
		}
	}
	return dst
}

// carries reads what appendCarries wrote.
func (r *snapReader) carries() map[string]carry {
	n := r.count("carried groups", 2)
	out := make(map[string]carry, n)
	for range n {
		key := r.str()
		k := r.count("carried samples", 17)
		c := make(carry, k)
		for range k {
			in := r.uint64()
			c[in] = point{T: r.varint(), V: r.float()}
		}
		out[key] = c
	}
	return out
}
