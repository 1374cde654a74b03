package windowagg

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Derived metrics: a value per group and window computed by a formula over
// the aggregates of several inputs (used / total · 100, in + out). A rule
// with Inputs selects metrics of several names into one window; each series
// also carries, as the last grouping value (InputKey), the name of the
// input that selected it, so the series states stay mergeable and a
// two-stage aggregation ships them like any other. At window close a
// Derivation, the rule's Combiner, joins the rows of a group across inputs
// and evaluates the formula; rows thus never leave the window before every
// input's state is complete.

// InputKey is the grouping key whose value names the input of a series of a
// rule with Inputs. Monasca rejects dimension names that start with "_", so
// no metric carries it.
const InputKey = "_input"

// Input is one selection of a rule with several inputs: metrics named
// MetricName that carry every Require dimension and no Reject one (as in
// Rule) go into the series of the input Name. A metric that several inputs
// select goes into each.
type Input struct {
	Name       string
	MetricName string
	Require    []monasca.Dimension
	Reject     []monasca.Dimension
}

func (in *Input) matches(m *monasca.Metric) bool {
	return m.Name == in.MetricName && selects(m, in.Require, in.Reject, nil)
}

// dimensionKeys returns the grouping keys read from a metric's dimensions:
// GroupBy without InputKey, which a rule with Inputs sets itself.
func (r *Rule) dimensionKeys() []string {
	if len(r.Inputs) > 0 {
		return r.GroupBy[:len(r.GroupBy)-1]
	}
	return r.GroupBy
}

// metricNames returns the metric names the rule selects.
func (r *Rule) metricNames() []string {
	if len(r.Inputs) == 0 {
		return []string{r.MetricName}
	}
	var names []string
	for _, in := range r.Inputs {
		if !slices.Contains(names, in.MetricName) {
			names = append(names, in.MetricName)
		}
	}
	return names
}

// validateInputs checks what a rule with Inputs needs beyond Validate's
// checks of every rule.
func (r *Rule) validateInputs() error {
	switch {
	case r.MetricName != "" || len(r.Require) > 0 || len(r.Reject) > 0 || len(r.Filters) > 0:
		return r.errorf("a rule with inputs selects its metrics by its inputs only")
	case len(r.GroupBy) == 0 || r.GroupBy[len(r.GroupBy)-1] != InputKey:
		return r.errorf("a rule with inputs must group by %q last", InputKey)
	case r.Combine == nil:
		return r.errorf("a rule with inputs needs a Combiner to join them")
	case r.Rollup != nil && slices.Contains(r.Rollup.GroupBy, InputKey):
		return r.errorf("the rollup of a rule with inputs cannot group by %q", InputKey)
	case len(r.Inputs) > MaxVariables:
		return r.errorf("%d inputs, more than %d", len(r.Inputs), MaxVariables)
	}
	for i, in := range r.Inputs {
		switch {
		case in.Name == "":
			return r.errorf("input %d has no name", i+1)
		case in.MetricName == "":
			return r.errorf("input %q has no metric name", in.Name)
		}
		if slices.ContainsFunc(r.Inputs[:i], func(o Input) bool { return o.Name == in.Name }) {
			return r.errorf("input %q is given twice", in.Name)
		}
	}
	return nil
}

// Formula computes a derived value from the values of its variables, in the
// order of Derivation.Variables. An error that wraps ErrDivisionByZero or
// ErrNotANumber tells the reason of the missing value; any other is a
// failure of the formula.
type Formula interface {
	Eval(values []float64) (float64, error)
}

var (
	// ErrDivisionByZero is a formula's division by zero.
	ErrDivisionByZero = errors.New("division by zero")
	// ErrNotANumber is a formula result that is not a finite number.
	ErrNotANumber = errors.New("not a finite number")
)

// Reasons a Derivation gives no value for a group and window.
const (
	SkipMissingInput   = "missing_input"
	SkipDivisionByZero = "division_by_zero"
	SkipNotANumber     = "not_a_number"
	SkipFormulaError   = "formula_error"
)

// SkipReasons lists every reason a Derivation counts, for exporting them
// from the start.
var SkipReasons = []string{SkipMissingInput, SkipDivisionByZero, SkipNotANumber, SkipFormulaError}

// MaxVariables bounds the inputs of a rule and the variables of a
// Derivation, which tracks the variables a group has in a bit set.
const MaxVariables = 32

// Variable is one variable of a Derivation's formula: the group rows whose
// value at Derivation.Key is Match supply it.
type Variable struct {
	Name  string
	Match string
	// Function computes the variable from the row's state; nil takes the
	// row's value, computed by the rule's Function.
	Function Function
}

// Derivation is the Combiner of derived metrics. The group rows of a window
// that differ only in the value at position Key of their Values (the input
// of the row) form one output row, whose value is Formula over the
// Variables; the row keeps the other keys and the merged state of all its
// inputs, so its record count is that of every record used. A group that
// lacks a variable (no samples, or a Function without a value for them), or
// whose formula gives no finite number, gives no row and is counted by
// reason (TakeSkipped). Rows whose input is no variable are dropped.
type Derivation struct {
	Key       int
	Variables []Variable
	Formula   Formula

	mu      sync.Mutex
	skipped map[string]*Skipped
}

// Skipped counts the groups a Derivation gave no value for one reason, with
// the last error (nil for missing inputs).
type Skipped struct {
	Reason string
	Count  int64
	Err    error
}

// Combine joins the group rows of one window by group and evaluates the
// formula for each group that has every variable (see Derivation).
func (d *Derivation) Combine(_ *Rule, rows []Row) []Row {
	type group struct {
		row    Row
		values []float64
		have   uint64
	}
	index := map[string]int{}
	var groups []group
	var key []byte
	for i := range rows {
		row := &rows[i]
		v := slices.IndexFunc(d.Variables, func(v Variable) bool { return v.Match == row.Values[d.Key] })
		if v < 0 {
			continue
		}
		key = AppendKeyPart(key[:0], row.TenantID)
		for j, s := range row.Values {
			if j != d.Key {
				key = AppendKeyPart(key, s)
			}
		}
		at, seen := index[string(key)]
		if !seen {
			at = len(groups)
			index[string(key)] = at
			groups = append(groups, group{
				row: Row{
					Keys:     slices.Delete(slices.Clone(row.Keys), d.Key, d.Key+1),
					Values:   slices.Delete(slices.Clone(row.Values), d.Key, d.Key+1),
					TenantID: row.TenantID, Region: row.Region,
				},
				values: make([]float64, len(d.Variables)),
			})
		}
		g := &groups[at]
		value, ok := row.Value, true
		if fn := d.Variables[v].Function; fn != nil {
			value, ok = fn.Result(&row.State)
		}
		if ok {
			g.values[v] = value
			g.have |= 1 << v
		}
		g.row.State.Merge(&row.State)
	}
	out := make([]Row, 0, len(groups))
	for _, g := range groups {
		if g.have != 1<<len(d.Variables)-1 {
			d.skip(SkipMissingInput, nil)
			continue
		}
		v, err := d.Formula.Eval(g.values)
		if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
			err = fmt.Errorf("%w: %v", ErrNotANumber, v)
		}
		switch {
		case errors.Is(err, ErrDivisionByZero):
			d.skip(SkipDivisionByZero, err)
		case errors.Is(err, ErrNotANumber):
			d.skip(SkipNotANumber, err)
		case err != nil:
			d.skip(SkipFormulaError, err)
		default:
			g.row.Value = v
			out = append(out, g.row)
		}
	}
	return out
}

func (d *Derivation) skip(reason string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.skipped == nil {
		d.skipped = map[string]*Skipped{}
	}
	s := d.skipped[reason]
	if s == nil {
		s = &Skipped{Reason: reason}
		d.skipped[reason] = s
	}
	s.Count++
	s.Err = err
}

// TakeSkipped returns what was skipped since the last call, in the order of
// SkipReasons, and starts counting again from zero. Engines of several
// lanes may share a Derivation, hence the lock.
func (d *Derivation) TakeSkipped() []Skipped {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Skipped
	for _, reason := range SkipReasons {
		if s := d.skipped[reason]; s != nil {
			out = append(out, *s)
		}
	}
	clear(d.skipped)
	return out
}
