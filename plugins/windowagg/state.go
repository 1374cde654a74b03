package windowagg

import "math"

// State is the running summary of the samples of one series in one window.
// Every Function reads its result from a State, and two States merge into the
// State of the union of their samples, which is what makes partial aggregates
// (per partition, per instance) combinable.
type State struct {
	Count      int64
	Sum        float64
	Min        float64
	Max        float64
	FirstTime  int64 // epoch ms of the earliest sample
	FirstValue float64
	LastTime   int64 // epoch ms of the latest sample
	LastValue  float64
}

// Reset makes s the state of no samples.
func (s *State) Reset() {
	*s = State{Min: math.Inf(1), Max: math.Inf(-1), FirstTime: math.MaxInt64, LastTime: math.MinInt64}
}

// Add folds one sample into s. Ties on time keep the first-arrived sample as
// the first and the last-arrived as the last, so results do not depend on
// which of two equal timestamps a sort put first.
func (s *State) Add(ts int64, v float64) {
	if s.Count == 0 {
		*s = State{Count: 1, Sum: v, Min: v, Max: v, FirstTime: ts, FirstValue: v, LastTime: ts, LastValue: v}
		return
	}
	s.Count++
	s.Sum += v
	if v < s.Min {
		s.Min = v
	}
	if v > s.Max {
		s.Max = v
	}
	if ts < s.FirstTime {
		s.FirstTime, s.FirstValue = ts, v
	}
	if ts >= s.LastTime {
		s.LastTime, s.LastValue = ts, v
	}
}

// Merge folds the samples summarised by o into s. o is treated as having
// arrived after s for the tie rules of Add.
func (s *State) Merge(o *State) {
	if o.Count == 0 {
		return
	}
	if s.Count == 0 {
		*s = *o
		return
	}
	s.Count += o.Count
	s.Sum += o.Sum
	s.Min = math.Min(s.Min, o.Min)
	s.Max = math.Max(s.Max, o.Max)
	if o.FirstTime < s.FirstTime {
		s.FirstTime, s.FirstValue = o.FirstTime, o.FirstValue
	}
	if o.LastTime >= s.LastTime {
		s.LastTime, s.LastValue = o.LastTime, o.LastValue
	}
}
