package windowagg

func init() { RegisterFunction(oldestFunc{}) }

// oldestFunc is the value of the earliest sample by event time (the
// first-arrived of samples sharing that time).
type oldestFunc struct{}

func (oldestFunc) Name() string                    { return "oldest" }
func (oldestFunc) Result(s *State) (float64, bool) { return s.FirstValue, s.Count > 0 }
