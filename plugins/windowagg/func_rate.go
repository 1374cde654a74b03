package windowagg

func init() { RegisterFunction(rateFunc{}) }

// rateFunc is the change per second between the earliest and the latest
// sample by event time. Samples that all share one timestamp define no rate,
// so nothing is emitted for them (monasca-aggregator divided by garbage).
type rateFunc struct{}

func (rateFunc) Name() string { return "rate" }
func (rateFunc) Result(s *State) (float64, bool) {
	if s.Count < 2 || s.LastTime <= s.FirstTime {
		return 0, false
	}
	return (s.LastValue - s.FirstValue) / (float64(s.LastTime-s.FirstTime) / 1000), true
}
