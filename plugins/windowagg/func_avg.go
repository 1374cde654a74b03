package windowagg

func init() { RegisterFunction(avgFunc{}) }

// avgFunc is the arithmetic mean of the sample values.
type avgFunc struct{}

func (avgFunc) Name() string { return "avg" }
func (avgFunc) Result(s *State) (float64, bool) {
	if s.Count == 0 {
		return 0, false
	}
	return s.Sum / float64(s.Count), true
}
