package windowagg

func init() { RegisterFunction(deltaFunc{}) }

// deltaFunc is the value of the latest sample minus the value of the earliest
// one, by event time. monasca-aggregator used arrival order and emitted
// -first for a single sample; one sample has no delta, so nothing is emitted.
type deltaFunc struct{}

func (deltaFunc) Name() string { return "delta" }
func (deltaFunc) Result(s *State) (float64, bool) {
	if s.Count < 2 {
		return 0, false
	}
	return s.LastValue - s.FirstValue, true
}
