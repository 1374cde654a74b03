package windowagg

import (
	"fmt"
	"slices"
)

// Two-stage aggregation. Stage one runs one engine per input partition and,
// instead of final aggregates, hands out the State of every series of every
// closed window (FlushStates). Stage two runs an engine with
// Config.Contributions, which keeps, per series and window, one State per
// stage-one source (Contribute) and merges them when its watermark, the
// minimum of the sources' Progress, passes the window. A contribution
// replaces the source's earlier one rather than adding to it, so a
// stage-one replay (after a crash, or a partition moving between instances)
// never counts a sample twice.

// SeriesState is the state of one series of one closed window, as stage one
// hands it to stage two.
type SeriesState struct {
	Rule        string // the rule's name
	WindowStart int64  // epoch ms, inclusive
	WindowEnd   int64  // epoch ms, exclusive
	TenantID    string
	Region      string
	// Values are the values of the rule's GroupBy dimensions.
	Values []string
	State  State
	// Route is the series' final group key: states with different routes
	// never meet in one output row, so stage two may be partitioned by it.
	Route string
}

// FlushStates closes the windows Flush would close and appends the state of
// each of their series to dst instead of computing aggregates. It returns
// dst and the new frontier.
func (e *Engine) FlushStates(dst []SeriesState) ([]SeriesState, int64) {
	e.closeThrough(e.closeTime(), func(r *ruleState, w *window) {
		for key, i := range w.index {
			s := w.series(i)
			tenant, values := decodeSeriesKey(key, make([]string, 0, len(r.GroupBy)))
			t := e.tenants.str(tenant)
			dst = append(dst, SeriesState{
				Rule: r.Name, WindowStart: w.start, WindowEnd: w.start + r.size, TenantID: t, Region: e.regions.str(s.region),
				Values: values, State: s.state, Route: r.route(t, values),
			})
		}
	})
	return dst, e.frontier
}

// Contribute sets what stage-one source src contributes to one series of
// one window, as of input offset offset: s replaces the source's earlier
// contribution, unless that one was taken at a later offset (a stale copy,
// such as one written by an instance that has since lost the partition).
// Like Add, it reports Matched for an open window, Corrected for a kept
// closed one that changed, and Late otherwise; Replayed among Late when the
// source had already reported the window delivered, or the state equals
// the one the closed window holds. It fails for a state that does not fit
// the engine's rules. The outcome is counted for the rule (TakeRuleCounts).
func (e *Engine) Contribute(src Source, offset int64, s *SeriesState) (res AddResult, _ error) {
	r := e.named[s.Rule]
	if err := e.checkContribution(r, s); err != nil {
		return res, err
	}
	defer r.counts.add(&res)
	so := e.source(src, e.clock())
	closeAt := s.WindowStart + r.size + e.lag
	w := e.windowFor(r, s.WindowStart, closeAt, &res)
	if w == nil {
		if res.Replayed == 0 && closeAt <= so.maxTime {
			// The source reported this window delivered before: a
			// stage-one instance that took the partition over from a
			// checkpoint older than the window's close sends it again.
			res.Replayed++
		}
		return res, nil
	}
	tenant := s.TenantID
	if r.AcrossTenants {
		tenant = ""
	}
	e.keyBuf = appendContributionKey(e.keyBuf[:0], e.tenants.id(tenant), s.Values, src)
	idx, ok := w.index[string(e.keyBuf)]
	switch {
	case !ok && e.cfg.MaxSeries > 0 && int(w.n) >= e.cfg.MaxSeries:
		res.Rejected++
		return res, nil
	case !ok:
		idx = w.newSeries(e.regions.id(s.Region))
		w.index[string(e.keyBuf)] = idx
		e.open++
	case offset < w.series(idx).offset, closeAt <= e.frontier && w.series(idx).state == s.State:
		// Stale, or a replay of what the closed window already holds.
		res.Late++
		res.Replayed++
		return res, nil
	}
	ser := w.series(idx)
	ser.state, ser.offset = s.State, offset
	if closeAt <= e.frontier {
		w.dirty = true
		res.Corrected++
		return res, nil
	}
	res.Matched++
	res.CloseAt = closeAt
	return res, nil
}

// checkContribution reports a state that does not fit r, the rule it names
// (nil when none does).
func (e *Engine) checkContribution(r *ruleState, s *SeriesState) error {
	switch {
	case !e.cfg.Contributions:
		return fmt.Errorf("the engine does not take contributions")
	case r == nil:
		return fmt.Errorf("no rule named %q", s.Rule)
	case s.WindowEnd-s.WindowStart != r.size || WindowStart(s.WindowStart, r.size) != s.WindowStart:
		return fmt.Errorf("rule %q: window [%d, %d) is not one of its windows of %d ms", s.Rule, s.WindowStart, s.WindowEnd, r.size)
	case len(s.Values) != len(r.GroupBy):
		return fmt.Errorf("rule %q groups by %d dimensions, the state has %d values", s.Rule, len(r.GroupBy), len(s.Values))
	case s.State.Count <= 0:
		return fmt.Errorf("rule %q: empty state", s.Rule)
	}
	return nil
}

// Progress records that stage-one source src has delivered the states of
// every window closing at or before through (its frontier, from
// FlushStates), as of input offset offset, and whether it is idle (see
// Idle): an idle source no longer holds the watermark back. Progress older
// than what the source reported before only shows that it is alive.
func (e *Engine) Progress(src Source, offset, through int64, idle bool) {
	s := e.source(src, e.clock())
	if offset < s.offset {
		return
	}
	s.offset, s.idle = offset, idle
	s.maxTime = max(s.maxTime, through)
}

// CheckRuleNames reports a rule name given twice: stage two finds a
// contribution's rule by its name.
func CheckRuleNames(rules []Rule) error {
	seen := make(map[string]bool, len(rules))
	for i := range rules {
		if seen[rules[i].Name] {
			return fmt.Errorf("rule name %q is used twice; a two-stage aggregation needs unique names", rules[i].Name)
		}
		seen[rules[i].Name] = true
	}
	return nil
}

// route returns the final group key of a series of r with the given tenant
// and group values: the rule, the tenant and the values the output is
// grouped by, which are the rollup's when r rolls up. A Combiner may join
// any rows of a window, so every series of a rule with one shares a route.
func (r *Rule) route(tenant string, values []string) string {
	b := AppendKeyPart(nil, r.Name)
	if r.Combine != nil {
		return string(b)
	}
	b = AppendKeyPart(b, tenant)
	if r.Rollup == nil {
		for _, v := range values {
			b = AppendKeyPart(b, v)
		}
		return string(b)
	}
	for _, k := range r.Rollup.GroupBy {
		v := r.Rollup.Ungrouped
		if i := slices.Index(r.GroupBy, k); i >= 0 {
			v = values[i]
		}
		b = AppendKeyPart(b, v)
	}
	return string(b)
}
