package windowagg

import (
	"fmt"
	"slices"
)

// Two-stage aggregation. Stage one runs one Engine per input partition and,
// instead of final aggregates, hands out the State of every series of every
// closed window (FlushStates). Stage two runs a Merger (merger.go), which
// keeps, per series and window, one State per stage-one source
// (Merger.Contribute) and merges them when its watermark, the minimum of
// the sources' Progress, passes the window. A contribution replaces the
// source's earlier one rather than adding to it, so a stage-one replay
// (after a crash, or a partition moving between instances) never counts a
// sample twice.

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
	// Acc is the encoded accumulator (Accumulator.AppendBinary) when the
	// rule's function keeps one, nil otherwise.
	Acc []byte
	// Route is the series' final group key: states with different routes
	// never meet in one output row, so stage two may be partitioned by it.
	Route string
}

// FlushStates closes the windows Flush would close and appends the state of
// each of their series to dst instead of computing aggregates. It returns
// dst and the new frontier.
func (e *Engine) FlushStates(dst []SeriesState) ([]SeriesState, int64) {
	e.closeThrough(e.closeTime(allQuiet), func(r *ruleState, w *window) {
		for key, i := range w.index {
			s := w.series(i)
			tenant, values := decodeSeriesKey(key, make([]string, 0, len(r.GroupBy)))
			t := e.tenants.str(tenant)
			var acc []byte
			if a := w.acc(i); a != nil {
				acc = a.AppendBinary(nil)
			}
			dst = append(dst, SeriesState{
				Rule: r.Name, WindowStart: w.start, WindowEnd: w.start + r.size, TenantID: t, Region: e.regions.str(s.region),
				Values: values, State: s.state, Acc: acc, Route: r.route(t, values),
			})
		}
	})
	return dst, e.frontier
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
