package windowagg

func init() { RegisterFunction(maxFunc{}) }

// maxFunc is the largest sample value.
type maxFunc struct{}

func (maxFunc) Name() string                    { return "max" }
func (maxFunc) Result(s *State) (float64, bool) { return s.Max, s.Count > 0 }
