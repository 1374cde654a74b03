package windowagg

func init() { RegisterFunction(sumFunc{}) }

// sumFunc is the sum of the sample values.
type sumFunc struct{}

func (sumFunc) Name() string                    { return "sum" }
func (sumFunc) Result(s *State) (float64, bool) { return s.Sum, s.Count > 0 }
