package windowagg

import (
	"slices"
	"strings"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Row is one result of a closed window on its way to becoming an Aggregate:
// first one row per group, then, after an optional Combiner and Rollup, the
// rows that are named and emitted.
type Row struct {
	// Keys names the grouping values in Values: the rule's GroupBy for group
	// rows, the rollup's GroupBy after a rollup, or whatever a Combiner sets.
	Keys     []string
	Values   []string
	TenantID string
	Region   string
	// Value is the row's output value.
	Value float64
	// State summarises the input behind the row. For group rows it is the
	// group's full state, from which a Combiner may read other functions; its
	// Records, FirstTime and LastTime become the aggregate's record count and
	// first and last record times.
	State State
	// Acc is the group's accumulator when the rule's function keeps one
	// (see AccumulatingFunction), nil otherwise.
	Acc Accumulator
}

// Get returns the value of key in the row, and whether the row has it.
func (r *Row) Get(key string) (string, bool) {
	if i := slices.Index(r.Keys, key); i >= 0 {
		return r.Values[i], true
	}
	return "", false
}

// Combiner rewrites the group rows of one closed window before the rollup:
// joining rows of different inputs into one (utilisation from total and idle
// readings) or reducing them to derived values (a rate of change). Rows come
// in a deterministic order; the returned rows are named and emitted in order.
type Combiner interface {
	Combine(rule *Rule, rows []Row) []Row
}

// Namer turns a final row into the output metric's name and dimensions. It
// returns false to drop the row. Without a Namer a rule emits OutputName with
// OutputDimensions plus the row's keys and values.
type Namer interface {
	Name(rule *Rule, row *Row, rolledUp bool) (name string, dims []monasca.Dimension, ok bool)
}

// rollup groups rows by the rollup's keys and re-aggregates their values with
// its function; the records behind the rows are merged.
func (r *Rule) rollup(rows []Row, windowStart int64) []Row {
	type group struct {
		row   Row
		value State
		acc   Accumulator // of the rollup's function, if it keeps one
	}
	groups := map[string]*group{}
	var order []*group
	var key []byte
	for i := range rows {
		row := &rows[i]
		key = AppendKeyPart(key[:0], row.TenantID)
		values := make([]string, len(r.Rollup.GroupBy))
		for j, k := range r.Rollup.GroupBy {
			v, ok := row.Get(k)
			if !ok {
				v = r.Rollup.Ungrouped
			}
			values[j] = v
			key = AppendKeyPart(key, v)
		}
		g := groups[string(key)]
		if g == nil {
			g = &group{row: Row{Keys: r.Rollup.GroupBy, Values: values, TenantID: row.TenantID, Region: row.Region}}
			if af := accumulating(r.Rollup.Function); af != nil {
				g.acc = af.NewAccumulator()
			}
			groups[string(key)] = g
			order = append(order, g)
		}
		g.value.Add(windowStart, row.Value)
		if g.acc != nil {
			g.acc.Add(windowStart, row.Value)
		}
		g.row.State.Merge(&row.State)
	}
	out := make([]Row, 0, len(order))
	for _, g := range order {
		v, ok := resultOf(r.Rollup.Function, &g.value, g.acc)
		if !ok {
			continue
		}
		g.row.Value = v
		out = append(out, g.row)
	}
	return out
}

// name applies the rule's Namer, or the monasca-aggregator default: the
// output name, the fixed output dimensions and the row's keys, sorted by key,
// a key given twice kept once.
func (r *Rule) name(row *Row, rolledUp bool) (string, []monasca.Dimension, bool) {
	if r.Namer != nil {
		return r.Namer.Name(r, row, rolledUp)
	}
	dims := make([]monasca.Dimension, 0, len(r.OutputDimensions)+len(row.Keys))
	dims = append(dims, r.OutputDimensions...)
	for i, k := range row.Keys {
		if !slices.ContainsFunc(dims, func(d monasca.Dimension) bool { return d.Key == k }) {
			dims = append(dims, monasca.Dimension{Key: k, Value: row.Values[i]})
		}
	}
	slices.SortFunc(dims, func(a, b monasca.Dimension) int { return strings.Compare(a.Key, b.Key) })
	return r.OutputName, dims, true
}
