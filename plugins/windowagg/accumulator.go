package windowagg

// Accumulator is what a function keeps per series and window beyond State,
// for a value State's fixed summary cannot give (the spread of the values,
// their percentiles). Accumulators of one function merge into the
// accumulator of the union of their samples, so that partial aggregates
// still combine across partitions and stages, and encode to bytes for
// checkpoints and for stage two.
type Accumulator interface {
	// Add folds in one sample.
	Add(ts int64, v float64)
	// Merge folds in o, an accumulator of the same function.
	Merge(o Accumulator)
	// AppendBinary appends the accumulator's encoding, which its function's
	// DecodeAccumulator reads back. Equal accumulators encode equally.
	AppendBinary(dst []byte) []byte
}

// AccumulatingFunction is a Function whose value needs an Accumulator per
// series and window. The engine computes its value with ResultOf; its
// Result, which sees only a State, defines no value.
type AccumulatingFunction interface {
	Function
	// NewAccumulator returns an empty accumulator.
	NewAccumulator() Accumulator
	// DecodeAccumulator reads what an accumulator's AppendBinary wrote.
	DecodeAccumulator(b []byte) (Accumulator, error)
	// ResultOf computes the value of a series from its State and its
	// accumulator, false when they define none.
	ResultOf(s *State, a Accumulator) (float64, bool)
}

// resultOf computes f's value of a series with state s and accumulator a
// (nil unless f accumulates).
func resultOf(f Function, s *State, a Accumulator) (float64, bool) {
	if af, ok := f.(AccumulatingFunction); ok {
		return af.ResultOf(s, a)
	}
	return f.Result(s)
}

// accumulating returns f as an AccumulatingFunction, nil when it is not one.
func accumulating(f Function) AccumulatingFunction {
	af, _ := f.(AccumulatingFunction)
	return af
}
