package monascaspec

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// The keys of monasca-aggregator's aggregation-specifications.yaml, spelled
// as its documentation spells them; they match case-insensitively.
var (
	aggregatorFileKeys = []string{"aggregationSpecifications"}
	aggregatorSpecKeys = []string{
		"name", "aggregatedMetricName", "filteredMetricName", "filteredDimensions",
		"rejectedDimensions", "groupedDimensions", "function", "rollup",
		"inputs", "formula", // derived specifications, see aggregator_derived.go
		"stateValue", // of time_in_state
	}
	aggregatorRollupKeys = []string{"function", "groupedDimensions"}
)

// LoadAggregationSpecs reads the monasca-aggregator specification file at
// path and compiles it with ParseAggregationSpecs, naming path in messages.
func LoadAggregationSpecs(path string) ([]windowagg.Rule, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return ParseAggregationSpecs(data, path)
}

// ParseAggregationSpecs compiles data, a monasca-aggregator
// aggregation-specifications.yaml, into one rule per element of its
// aggregationSpecifications list, in file order. source names the data in
// messages, normally its path.
//
// It reads what monasca-aggregator read: keys match case-insensitively at
// every level, as viper and mapstructure matched them; a scalar is accepted
// wherever a string is expected (see the warning below about numbers and
// booleans); groupedDimensions may be one string, split at commas; an empty
// mapping or list stands for an absent one; anchors, aliases and merge keys
// work. The mapping to a rule:
//
//	name                      Name ("specification N" when empty)
//	filteredMetricName        MetricName (required)
//	filteredDimensions        Require and OutputDimensions, sorted by key
//	rejectedDimensions        Reject, sorted by key; "" rejects any value
//	groupedDimensions         GroupBy, in file order
//	function                  Function (required)
//	rollup.function           Rollup.Function; no Rollup when absent
//	rollup.groupedDimensions  Rollup.GroupBy, a subset of groupedDimensions
//	aggregatedMetricName      OutputName (required)
//	inputs, formula           a derived specification (see derivedSpec)
//
// Every problem of the file is reported in one joined error, each line as
// "source:line: specification N ("name"): field: message", and no rules are
// returned with it; every returned rule passes Validate. Warnings report what
// the original accepted silently but probably not as meant: unknown keys
// (which it ignored), unquoted numbers and booleans that it read differently
// (it turned 1.0 into "1" and yes into "1", where this reads them as
// written), later YAML documents, and names shared by several
// specifications.
func ParseAggregationSpecs(data []byte, source string) (rules []windowagg.Rule, warnings []string, err error) {
	r := newYAMLReader(data, source)
	r.run(func() {
		if root, ok := r.parse(data); ok {
			rules = r.aggregationFile(root)
		}
	})
	warnings, err = r.result()
	if err != nil {
		return nil, warnings, err
	}
	return rules, warnings, nil
}

// aggregationFile compiles the root node of the file (nil for an empty
// file).
func (r *yamlReader) aggregationFile(root *yaml.Node) []windowagg.Rule {
	list := place{field: aggregatorFileKeys[0]}
	if root != nil {
		root = r.deref(root)
	}
	if root == nil || isNull(root) {
		r.errorf(0, list, "missing; the file must hold the list of aggregation specifications under this key")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		r.errorf(r.line(root), place{}, "the file must be a mapping with the key aggregationSpecifications, not %s", describe(root))
		return nil
	}
	v, ok := r.fields(root, aggregatorFileKeys, place{})[list.field]
	if !ok {
		r.errorf(r.line(root), list, "missing; the file must hold the list of aggregation specifications under this key")
		return nil
	}
	var items []*yaml.Node
	switch v = r.deref(v); {
	case v.Kind == yaml.SequenceNode:
		items = v.Content
	case !isNull(v) && !(v.Kind == yaml.MappingNode && len(v.Content) == 0):
		r.errorf(r.line(v), list, "must be a list of specifications, not %s", describe(v))
		return nil
	}
	if len(items) == 0 {
		r.errorf(r.line(v), list, "the list is empty; the file must define at least one aggregation specification")
		return nil
	}
	rules := make([]windowagg.Rule, 0, len(items))
	firstWithName := map[string]int{}
	for i, item := range items {
		ref := &specRef{index: i + 1}
		rule, ok := r.aggregationSpec(ref, item)
		if ok {
			rules = append(rules, rule)
		}
		if first, seen := firstWithName[rule.Name]; seen {
			r.warnf(r.line(item), place{spec: ref}, "specification %d has the same name; logs and metrics will not tell the two apart", first)
		} else {
			firstWithName[rule.Name] = ref.index
		}
	}
	return rules
}

// aggregationSpec compiles one element of the aggregationSpecifications
// list, filling in ref.name. ok is false when the element had errors; the
// rule's Name is set even then.
func (r *yamlReader) aggregationSpec(ref *specRef, n *yaml.Node) (rule windowagg.Rule, ok bool) {
	errs := len(r.errs)
	at := place{spec: ref}
	var f map[string]*yaml.Node // nil reads as a specification without keys
	switch n = r.deref(n); {
	case n.Kind == yaml.MappingNode:
		f = r.fields(n, aggregatorSpecKeys, at)
	case !isNull(n):
		rule.Name = ref.String()
		r.errorf(r.line(n), at, "must be a mapping of specification keys, not %s", describe(n))
		return rule, false
	}
	line := r.line(n)
	ref.name, _ = r.str(f["name"], at.child("name"))
	rule.Name = ref.name
	if rule.Name == "" {
		rule.Name = ref.String()
	}

	rule.OutputName = r.required(f, "aggregatedMetricName", line, at, "must have an aggregated metric name")
	var derivation *windowagg.Derivation
	if f["inputs"] != nil || f["formula"] != nil {
		derivation = r.derivedSpec(&rule, f, line, at)
	} else {
		rule.MetricName = r.required(f, "filteredMetricName", line, at, "must have a filtered metric name")
		rule.Function = r.specFunction(f, line, at)
		rule.Require = r.dimensions(f["filteredDimensions"], at.child("filteredDimensions"))
		// monasca-aggregator copied filteredDimensions into every output.
		rule.OutputDimensions = slices.Clone(rule.Require)
		rule.Reject = r.dimensions(f["rejectedDimensions"], at.child("rejectedDimensions"))
	}
	groupBy, groupOK := r.dimensionNames(f["groupedDimensions"], at.child("groupedDimensions"))
	rule.GroupBy = groupBy
	if derivation != nil {
		// The input of each series groups last (windowagg.InputKey).
		derivation.Key = len(groupBy)
		rule.GroupBy = append(slices.Clip(groupBy), windowagg.InputKey)
	}
	rule.Rollup = r.rollup(f["rollup"], groupBy, groupOK, at.child("rollup"))

	if len(r.errs) > errs {
		return rule, false
	}
	if err := rule.Validate(); err != nil {
		// A safety net: the checks above should leave nothing for it.
		r.errorf(line, at, "%v", err)
		return rule, false
	}
	return rule, true
}

// specFunction reads the function of a specification: a registered one,
// or time_in_state with its stateValue.
func (r *yamlReader) specFunction(f map[string]*yaml.Node, line int, at place) windowagg.Function {
	if name, _ := r.str(f["function"], at.child("function")); strings.EqualFold(name, timeInState) {
		state := f["stateValue"]
		raw, ok := r.str(state, at.child("stateValue"))
		v, err := strconv.ParseFloat(raw, 64)
		switch {
		case !ok:
		case state == nil || raw == "":
			r.errorf(line, at.child("stateValue"), "must be the value whose time %s measures", timeInState)
		case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
			r.errorf(r.line(state), at.child("stateValue"), "must be a finite number, not %q", raw)
		default:
			return windowagg.TimeInState(v)
		}
		return nil
	}
	if f["stateValue"] != nil {
		r.errorf(r.line(f["stateValue"]), at.child("stateValue"), "is read only with function %s", timeInState)
	}
	fn, given := r.function(f["function"], at.child("function"))
	if !given {
		r.errorf(r.lineOr(f["function"], line), at.child("function"), "must have a function")
	}
	return fn
}

// timeInState is the function that takes a stateValue.
const timeInState = "time_in_state"

// required reads the string field key of f, reporting what is missing when
// it is absent or empty. line is the specification's, for an absent field.
func (r *yamlReader) required(f map[string]*yaml.Node, key string, line int, at place, missing string) string {
	s, ok := r.str(f[key], at.child(key))
	if ok && s == "" {
		r.errorf(r.lineOr(f[key], line), at.child(key), "%s", missing)
	}
	return s
}

// function reads a function name. given is false when n is absent or empty;
// an unknown name is an error here, where monasca-aggregator panicked on the
// first matching metric.
func (r *yamlReader) function(n *yaml.Node, at place) (fn windowagg.Function, given bool) {
	name, ok := r.str(n, at)
	switch {
	case !ok:
		return nil, true
	case name == "":
		return nil, false
	}
	fn, found := windowagg.LookupFunction(name)
	if !found {
		r.errorf(r.line(n), at, "unknown function %q; known functions: %s", name, strings.Join(windowagg.FunctionNames(), ", "))
	}
	return fn, true
}

// dimensions reads a mapping of dimension names to values, sorted by name so
// that rules compare and print the same whatever the order in the file.
func (r *yamlReader) dimensions(n *yaml.Node, at place) []monasca.Dimension {
	if n == nil {
		return nil
	}
	switch n = r.deref(n); {
	case isNull(n), n.Kind == yaml.SequenceNode && len(n.Content) == 0:
		return nil
	case n.Kind != yaml.MappingNode:
		r.errorf(r.line(n), at, "must be a mapping of dimension names to values, not %s", describe(n))
		return nil
	}
	var dims []monasca.Dimension
	firsts := map[string]pair{}
	for _, p := range r.pairs(n, at) {
		if p.key.Kind != yaml.ScalarNode {
			r.errorf(r.line(p.key), at, "a dimension name must be a string, not %s", describe(p.key))
			continue
		}
		name, _ := r.str(p.key, at)
		if name == "" {
			r.errorf(r.line(p.key), at, "a dimension name is empty")
			continue
		}
		if first, repeated := firsts[name]; repeated {
			if first.in == p.in {
				r.errorf(r.line(p.key), at, "dimension %q is given twice (lines %d and %d)", name, r.line(first.key), r.line(p.key))
			}
			continue // else a merged pair, overridden by an earlier one
		}
		firsts[name] = p
		value, _ := r.str(p.value, at.child(name))
		dims = append(dims, monasca.Dimension{Key: name, Value: value})
	}
	slices.SortFunc(dims, func(a, b monasca.Dimension) int { return strings.Compare(a.Key, b.Key) })
	return dims
}

// dimensionNames reads a list of dimension names in file order. Like viper,
// it also takes a single scalar: a string is split at commas (viper's
// StringToSliceHookFunc; spaces around each name are dropped, since no
// dimension name has them), anything else is a one-name list. ok is false
// after an error.
func (r *yamlReader) dimensionNames(n *yaml.Node, at place) (names []string, ok bool) {
	if n == nil {
		return nil, true
	}
	type entry struct {
		name string
		line int
	}
	var entries []entry
	switch n = r.deref(n); {
	case n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			name, isString := r.str(item, at)
			if !isString {
				return nil, false
			}
			entries = append(entries, entry{name, r.line(item)})
		}
	case n.Kind == yaml.ScalarNode:
		s, _ := r.str(n, at)
		if s == "" {
			return nil, true // null, or viper's split of "" into no names
		}
		for _, name := range strings.Split(s, ",") {
			entries = append(entries, entry{strings.TrimSpace(name), r.line(n)})
		}
	case n.Kind == yaml.MappingNode && len(n.Content) == 0:
		return nil, true
	default:
		r.errorf(r.line(n), at, "must be a list of dimension names, not %s", describe(n))
		return nil, false
	}
	ok = true
	firstLine := map[string]int{}
	for _, e := range entries {
		first, repeated := firstLine[e.name]
		switch {
		case e.name == "":
			r.errorf(e.line, at, "a dimension name is empty")
			ok = false
		case repeated:
			r.errorf(e.line, at, "dimension %q is listed twice (lines %d and %d)", e.name, first, e.line)
			ok = false
		default:
			firstLine[e.name] = e.line
			names = append(names, e.name)
		}
	}
	return names, ok
}

// rollup reads the rollup mapping of a specification whose groupedDimensions
// are groupBy (groupOK false when they had errors, which suppresses the
// subset check). It returns nil when there is no rollup function.
func (r *yamlReader) rollup(n *yaml.Node, groupBy []string, groupOK bool, at place) *windowagg.Rollup {
	if n == nil {
		return nil
	}
	switch n = r.deref(n); {
	case isNull(n):
		return nil
	case n.Kind != yaml.MappingNode:
		r.errorf(r.line(n), at, "must be a mapping with the keys function and groupedDimensions, not %s", describe(n))
		return nil
	}
	f := r.fields(n, aggregatorRollupKeys, at)
	fn, given := r.function(f["function"], at.child("function"))
	names, namesOK := r.dimensionNames(f["groupedDimensions"], at.child("groupedDimensions"))
	if !given {
		if len(names) > 0 {
			// monasca-aggregator silently did no rollup at all.
			r.errorf(r.line(n), at.child("function"), "must be set when rollup.groupedDimensions is given")
		}
		return nil
	}
	if groupOK && namesOK {
		var missing []string
		for _, k := range names {
			if !slices.Contains(groupBy, k) {
				missing = append(missing, strconv.Quote(k))
			}
		}
		if len(missing) > 0 {
			r.errorf(r.line(f["groupedDimensions"]), at.child("groupedDimensions"),
				"must have all rollup.groupedDimensions also in groupedDimensions; missing from groupedDimensions: %s", strings.Join(missing, ", "))
		}
	}
	if fn == nil {
		return nil
	}
	return &windowagg.Rollup{Function: fn, GroupBy: names}
}
