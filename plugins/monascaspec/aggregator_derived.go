package monascaspec

import (
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// A derived specification replaces filteredMetricName, filteredDimensions,
// rejectedDimensions and function by inputs, each of which selects and
// aggregates metrics as a plain specification does, and a formula over the
// inputs' aggregates:
//
//   - name: MemoryUtilisation
//     aggregatedMetricName: mem.utilization_perc
//     groupedDimensions: [hostname]
//     inputs:
//     used:  {filteredMetricName: mem.used_mb, function: avg}
//     total: {filteredMetricName: mem.total_mb, function: max}
//     formula: root = this.used / this.total * 100
//
// inputKeys are the keys of an input, which a derived specification does
// not have itself.
var inputKeys = []string{"filteredMetricName", "filteredDimensions", "rejectedDimensions", "function"}

// derivedSpec compiles the inputs and the formula of a derived
// specification into rule (Inputs, Function, OutputDimensions, Combine)
// and returns its Derivation, whose Key the caller sets once the grouped
// dimensions are known; nil after errors.
func (r *yamlReader) derivedSpec(rule *windowagg.Rule, f map[string]*yaml.Node, line int, at place) *windowagg.Derivation {
	for _, k := range inputKeys {
		if f[k] != nil {
			r.errorf(r.line(f[k]), at.child(k), "not allowed with inputs; give it in each input")
		}
	}
	inputs, variables := r.derivedInputs(f["inputs"], line, at.child("inputs"))
	names := make([]string, len(variables))
	for i, v := range variables {
		names[i] = v.Name
	}
	formula := r.required(f, "formula", line, at, "must have a formula: a Bloblang mapping of the inputs that assigns root a number")
	var compiled windowagg.Formula
	if formula != "" && len(inputs) > 0 {
		var err error
		if compiled, err = compileFormula(formula, names); err != nil {
			r.errorf(r.line(f["formula"]), at.child("formula"), "%v", err)
		}
	}
	if compiled == nil {
		return nil
	}
	// The rule's function only carries each series' state to the
	// Derivation, which applies each input's own; count has a value for
	// any series.
	rule.Function, _ = windowagg.LookupFunction("count")
	rule.Inputs = inputs
	rule.OutputDimensions = commonDimensions(inputs)
	d := &windowagg.Derivation{Variables: variables, Formula: compiled}
	rule.Combine = d
	return d
}

// derivedInputs reads the inputs mapping, from variable names to input
// specifications, in file order.
func (r *yamlReader) derivedInputs(n *yaml.Node, line int, at place) (inputs []windowagg.Input, variables []windowagg.Variable) {
	if n == nil {
		r.errorf(line, at, "missing; a specification with a formula needs its inputs")
		return nil, nil
	}
	switch n = r.deref(n); {
	case n.Kind != yaml.MappingNode && !isNull(n):
		r.errorf(r.line(n), at, "must be a mapping of input names to inputs, not %s", describe(n))
		return nil, nil
	case len(n.Content) == 0:
		r.errorf(r.line(n), at, "must name at least one input")
		return nil, nil
	}
	ok := true
	for _, p := range r.pairs(n, at) {
		name, _ := r.str(p.key, at)
		in := at.child(name)
		switch {
		case !variableName.MatchString(name):
			r.errorf(r.line(p.key), at, "input name %q must be letters, digits and _, not starting with a digit: the formula reads it as this.<name>", name)
			ok = false
			continue
		case slices.ContainsFunc(inputs, func(i windowagg.Input) bool { return i.Name == name }):
			r.errorf(r.line(p.key), in, "given twice")
			ok = false
			continue
		}
		v := r.deref(p.value)
		if v.Kind != yaml.MappingNode {
			r.errorf(r.line(v), in, "must be a mapping with the keys %s, not %s", "filteredMetricName, filteredDimensions, rejectedDimensions and function", describe(v))
			ok = false
			continue
		}
		fields := r.fields(v, inputKeys, in)
		input := windowagg.Input{
			Name:       name,
			MetricName: r.required(fields, "filteredMetricName", r.line(v), in, "must have a filtered metric name"),
			Require:    r.dimensions(fields["filteredDimensions"], in.child("filteredDimensions")),
			Reject:     r.dimensions(fields["rejectedDimensions"], in.child("rejectedDimensions")),
		}
		fn, given := r.function(fields["function"], in.child("function"))
		if !given {
			r.errorf(r.lineOr(fields["function"], r.line(v)), in.child("function"), "must have a function")
		}
		if _, keeps := fn.(windowagg.AccumulatingFunction); keeps {
			// An input's value comes from the running state every series
			// keeps; these functions need one of their own.
			r.errorf(r.line(fields["function"]), in.child("function"), "%s cannot be the function of an input; use one of sum, count, avg, min, max, latest, oldest, delta, rate", fn.Name())
			fn = nil
		}
		ok = ok && fn != nil && input.MetricName != ""
		inputs = append(inputs, input)
		variables = append(variables, windowagg.Variable{Name: name, Match: name, Function: fn})
	}
	if len(inputs) > windowagg.MaxVariables {
		r.errorf(r.line(n), at, "%d inputs, more than %d", len(inputs), windowagg.MaxVariables)
		ok = false
	}
	if !ok {
		return nil, nil
	}
	return inputs, variables
}

// commonDimensions returns the filtered dimensions that every input
// requires with the same value: like a plain specification's
// filteredDimensions, they hold for every output.
func commonDimensions(inputs []windowagg.Input) []monasca.Dimension {
	var common []monasca.Dimension
	for _, d := range inputs[0].Require {
		if !slices.ContainsFunc(inputs[1:], func(in windowagg.Input) bool { return !slices.Contains(in.Require, d) }) {
			common = append(common, d)
		}
	}
	return common
}
