package windowagg

// RuleCounts counts what Add, AddSample, AddPartial and Contribute did for
// one rule: the samples (or contributions) folded into open windows (Matched), into
// closed windows kept for corrections (Corrected), dropped because their
// window was gone (Late; a replay of input emitted before a Restore is not
// counted), and refused by Config.MaxSeries (Rejected). Unlike AddResult,
// which tells about one metric over all rules, they tell which rules a
// batch of metrics went to.
type RuleCounts struct {
	Matched, Corrected, Late, Rejected int64
}

// add counts the outcome of one Contribute, which concerns one rule.
func (c *RuleCounts) add(res *AddResult) {
	c.Matched += int64(res.Matched)
	c.Corrected += int64(res.Corrected)
	c.Rejected += int64(res.Rejected)
	c.Late += int64(max(res.Late-res.Replayed, 0))
}

// TakeRuleCounts returns dst[:0] with the counts of every rule since the
// last call appended, in the order of the rules given to New, and starts
// the counts again from zero. The caller reads them once per batch, so the
// engine's per-metric path only increments fields; with a dst of enough
// capacity it allocates nothing.
func (e *store) TakeRuleCounts(dst []RuleCounts) []RuleCounts {
	dst = dst[:0]
	for _, r := range e.rules {
		dst = append(dst, r.counts)
		r.counts = RuleCounts{}
	}
	return dst
}
