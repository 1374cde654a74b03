package windowagg

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Rule is one compiled aggregation: which metrics it takes, how it groups
// them and how it names its output. Spec loaders (package monascaspec) turn
// both Monasca spec languages into Rules; the engine knows only Rules.
type Rule struct {
	// Name identifies the rule in errors, logs and metrics.
	Name string
	// MetricName selects input metrics by exact name.
	MetricName string
	// Inputs, when set, select the metrics instead of MetricName, Require,
	// Reject and Filters, for a value derived from several inputs (see
	// derived.go).
	Inputs []Input
	// Require lists dimensions that must be present with exactly this value.
	Require []monasca.Dimension
	// Reject lists dimensions that exclude a metric when present with this
	// value, or with any value when Value is "".
	Reject []monasca.Dimension
	// Filters are regular expressions a dimension must (or must not) match;
	// a metric lacking the dimension does not match either way.
	Filters []Filter
	// GroupBy lists the dimensions whose values split the output into series.
	// A metric lacking any of them does not match, unless OptionalGroupBy.
	// Every series is also split by tenant (meta.tenantId), unless
	// AcrossTenants.
	GroupBy []string
	// OptionalGroupBy lets metrics lacking a grouped dimension match; the
	// absent dimension groups as the empty value.
	OptionalGroupBy bool
	// AcrossTenants aggregates the metrics of all tenants together, as
	// monasca-transform's specs do; the aggregates then have no tenant.
	AcrossTenants bool
	// Function computes each series' value.
	Function Function
	// Combine, when set, rewrites the group rows of each closed window
	// before the rollup (see Combiner).
	Combine Combiner
	// Rollup, when set, re-aggregates the per-group values of each window.
	Rollup *Rollup
	// Namer, when set, names the output rows instead of OutputName and
	// OutputDimensions.
	Namer Namer
	// OutputName is the output metric name.
	OutputName string
	// OutputDimensions are fixed dimensions added to every output series
	// (monasca-aggregator copies its filteredDimensions here).
	OutputDimensions []monasca.Dimension
	// Window is the window size of this rule; zero means the engine's.
	Window time.Duration
}

// Rollup re-aggregates the group values of one window with Function, grouping
// them by GroupBy, a subset of the rule's GroupBy; an empty GroupBy gives one
// series per tenant.
type Rollup struct {
	Function Function
	GroupBy  []string
	// Ungrouped, when not empty, is the value of a rollup key that the rows
	// do not carry (monasca-transform's "NA"), and lifts the requirement
	// that GroupBy be a subset of the rule's GroupBy.
	Ungrouped string
}

// Filter selects metrics by a regular expression on one dimension, as
// monasca-transform's filter_by_list does: the expression may match anywhere
// in the value.
type Filter struct {
	Dimension string
	Pattern   *regexp.Regexp
	// Exclude drops the metrics that match instead of keeping them.
	Exclude bool
}

// Validate reports the first problem that would make the rule unusable.
func (r *Rule) Validate() error {
	switch {
	case len(r.Inputs) > 0:
		if err := r.validateInputs(); err != nil {
			return err
		}
	case r.MetricName == "":
		return r.errorf("input metric name is empty")
	}
	switch {
	case r.OutputName == "":
		return r.errorf("output metric name is empty")
	case r.Function == nil:
		return r.errorf("no function")
	case r.Window < 0:
		return r.errorf("negative window %v", r.Window)
	}
	if r.Rollup != nil {
		if r.Rollup.Function == nil {
			return r.errorf("rollup has no function")
		}
		if _, ok := r.Rollup.Function.(seriesFunc); ok {
			return r.errorf("rollup function %s needs input series, which the group values are not", r.Rollup.Function.Name())
		}
		for _, k := range r.Rollup.GroupBy {
			if r.Rollup.Ungrouped == "" && !slices.Contains(r.GroupBy, k) {
				return r.errorf("rollup groups by %q, which is not one of the grouped dimensions %v", k, r.GroupBy)
			}
		}
	}
	if dup := firstDuplicate(r.GroupBy); dup != "" {
		return r.errorf("dimension %q is grouped twice", dup)
	}
	for _, f := range r.Filters {
		if f.Pattern == nil {
			return r.errorf("filter on %q has no pattern", f.Dimension)
		}
	}
	return nil
}

func (r *Rule) errorf(format string, args ...any) error {
	return fmt.Errorf("rule %q: %w", r.Name, fmt.Errorf(format, args...))
}

// ErrNoRules is returned when an engine is built without any rule.
var ErrNoRules = errors.New("no aggregation rules")

func firstDuplicate(keys []string) string {
	for i, k := range keys {
		if slices.Contains(keys[:i], k) {
			return k
		}
	}
	return ""
}

// matches reports whether m passes the rule's selection (the name is matched
// by the engine's index), apart from the Inputs of a rule with several.
func (r *Rule) matches(m *monasca.Metric) bool {
	if !selects(m, r.Require, r.Reject, r.Filters) {
		return false
	}
	if !r.OptionalGroupBy {
		for _, k := range r.dimensionKeys() {
			if _, ok := m.Dimension(k); !ok {
				return false
			}
		}
	}
	return true
}

// selects reports whether m has every required dimension, no rejected one,
// and passes the filters.
func selects(m *monasca.Metric, require, reject []monasca.Dimension, filters []Filter) bool {
	for _, d := range require {
		if v, ok := m.Dimension(d.Key); !ok || v != d.Value {
			return false
		}
	}
	for _, d := range reject {
		if v, ok := m.Dimension(d.Key); ok && (d.Value == "" || v == d.Value) {
			return false
		}
	}
	for _, f := range filters {
		if v, ok := m.Dimension(f.Dimension); !ok || f.Pattern.MatchString(v) == f.Exclude {
			return false
		}
	}
	return true
}
