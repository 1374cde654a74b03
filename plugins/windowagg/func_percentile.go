package windowagg

import (
	"errors"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	ddstore "github.com/DataDog/sketches-go/ddsketch/store"
)

func init() {
	for _, p := range []int{50, 90, 95, 99} {
		RegisterFunction(percentileFunc{name: fmt.Sprintf("p%d", p), q: float64(p) / 100})
	}
}

// PercentileAccuracy is the relative accuracy of the percentile functions:
// a result is within this fraction of the true value at its rank.
const PercentileAccuracy = 0.01

// Memory: a sketch keeps its samples' bin numbers in a buffer and, as
// they accumulate, an 8-byte count per bin (a bin spans 2 % of a value) in
// pages of 32 bins, so it grows with the distinct bins its values fall in
// and never beyond one entry per sample: about 1 KB per series for a
// minute of one-second samples spread over two orders of magnitude
// (BenchmarkAccumulatorMemoryPerSeries). Merging and encoding are exact:
// sketches of one mapping merge bin by bin.

// sketchMapping is shared by every sketch: encodings omit it.
var sketchMapping = func() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(PercentileAccuracy)
	if err != nil {
		panic(err)
	}
	return m
}()

// percentileFunc is the value at rank ⌊q·(n−1)⌋ of a series' n sorted
// sample values, within PercentileAccuracy, from a mergeable DDSketch
// (github.com/DataDog/sketches-go).
type percentileFunc struct {
	name string
	q    float64
}

func (f percentileFunc) Name() string                { return f.name }
func (percentileFunc) Result(*State) (float64, bool) { return 0, false }

func (percentileFunc) NewAccumulator() Accumulator {
	return &sketch{ddsketch.NewDDSketch(sketchMapping, ddstore.NewBufferedPaginatedStore(), ddstore.NewBufferedPaginatedStore())}
}

func (f percentileFunc) ResultOf(_ *State, a Accumulator) (float64, bool) {
	s, ok := a.(*sketch)
	if !ok {
		return 0, false
	}
	v, err := s.d.GetValueAtQuantile(f.q)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

func (f percentileFunc) DecodeAccumulator(b []byte) (Accumulator, error) {
	s := f.NewAccumulator().(*sketch)
	if err := s.d.DecodeAndMergeWith(b); err != nil {
		return nil, fmt.Errorf("%s: malformed accumulator: %w", f.name, err)
	}
	if s.d.IsEmpty() {
		return nil, errors.New(f.name + ": empty accumulator")
	}
	return s, nil
}

// sketch is a percentile function's accumulator.
type sketch struct{ d *ddsketch.DDSketch }

// Add folds in v. Values beyond what the mapping indexes (about ±1e307)
// count as that bound, and values nearer zero than it indexes (about
// ±1e-307) as zero: a percentile there is off by its absolute size.
func (s *sketch) Add(_ int64, v float64) {
	limit := sketchMapping.MaxIndexableValue()
	_ = s.d.Add(min(max(v, -limit), limit))
}

// Merge folds in o; sketches of one mapping always merge.
func (s *sketch) Merge(o Accumulator) { _ = s.d.MergeWith(o.(*sketch).d) }

func (s *sketch) AppendBinary(dst []byte) []byte {
	s.d.Encode(&dst, true)
	return dst
}
