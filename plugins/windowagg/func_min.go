package windowagg

func init() { RegisterFunction(minFunc{}) }

// minFunc is the smallest sample value.
type minFunc struct{}

func (minFunc) Name() string                    { return "min" }
func (minFunc) Result(s *State) (float64, bool) { return s.Min, s.Count > 0 }
