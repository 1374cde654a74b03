package windowagg

import (
	"encoding/binary"
	"errors"
	"math"
)

func init() { RegisterFunction(stddevFunc{}) }

// stddevFunc is the population standard deviation of the sample values.
// Its accumulator keeps Welford's running mean and sum of squared
// deviations, which stay exact where the textbook sum of squares cancels
// catastrophically (values far from zero with a small spread), and merge
// with Chan's formula.
type stddevFunc struct{}

func (stddevFunc) Name() string                  { return "stddev" }
func (stddevFunc) Result(*State) (float64, bool) { return 0, false }

func (stddevFunc) NewAccumulator() Accumulator { return &welford{} }

func (stddevFunc) ResultOf(_ *State, a Accumulator) (float64, bool) {
	w, ok := a.(*welford)
	if !ok || w.n == 0 {
		return 0, false
	}
	return math.Sqrt(max(w.m2, 0) / float64(w.n)), true
}

func (stddevFunc) DecodeAccumulator(b []byte) (Accumulator, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || len(b) != k+16 || n == 0 || n > math.MaxInt64 {
		return nil, errors.New("stddev: malformed accumulator")
	}
	w := &welford{n: int64(n),
		mean: math.Float64frombits(binary.LittleEndian.Uint64(b[k:])),
		m2:   math.Float64frombits(binary.LittleEndian.Uint64(b[k+8:]))}
	if math.IsNaN(w.mean) || math.IsInf(w.mean, 0) || !(w.m2 >= 0) {
		return nil, errors.New("stddev: malformed accumulator")
	}
	return w, nil
}

// welford is the count, mean and sum of squared deviations from the mean.
type welford struct {
	n    int64
	mean float64
	m2   float64
}

func (w *welford) Add(_ int64, v float64) {
	w.n++
	d := v - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (v - w.mean)
}

func (w *welford) Merge(o Accumulator) {
	x := o.(*welford)
	switch {
	case x.n == 0:
		return
	case w.n == 0:
		*w = *x
		return
	}
	n := w.n + x.n
	d := x.mean - w.mean
	w.mean += d * float64(x.n) / float64(n)
	w.m2 += x.m2 + d*d*float64(w.n)*float64(x.n)/float64(n)
	w.n = n
}

func (w *welford) AppendBinary(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(w.n))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(w.mean))
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(w.m2))
}
