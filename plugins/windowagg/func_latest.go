package windowagg

func init() { RegisterFunction(latestFunc{}) }

// latestFunc is the value of the latest sample by event time (the
// last-arrived of samples sharing that time).
type latestFunc struct{}

func (latestFunc) Name() string                    { return "latest" }
func (latestFunc) Result(s *State) (float64, bool) { return s.LastValue, s.Count > 0 }
