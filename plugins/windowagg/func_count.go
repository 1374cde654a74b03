package windowagg

func init() { RegisterFunction(countFunc{}) }

// countFunc is the number of samples.
type countFunc struct{}

func (countFunc) Name() string                    { return "count" }
func (countFunc) Result(s *State) (float64, bool) { return float64(s.Count), s.Count > 0 }
