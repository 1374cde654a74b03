package monascaspec

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// compileCalculateFormula is calculate_formula, fetch_quantity_util
// generalised (a monasca-connect addition): usage_formula_inputs maps
// variable names to event types, each group of records is reduced by
// usage_fetch_operation as fetch_quantity does, and the groups that differ
// only in event_type join into one row whose value is usage_formula, a
// Bloblang mapping of the variables (see windowagg.Derivation). Its rows
// keep the records of every input. fetch_quantity_util's join is
//
//	"usage_formula_inputs": {"total": "cpu.total_logical_cores", "idle": "cpu.idle_perc"},
//	"usage_formula": "root = if this.idle == 0 { this.total } else { (100 - this.idle) * this.total / 100 }"
func compileCalculateFormula(spec *TransformSpec, _ TransformOptions) (UsagePlan, error) {
	var errs []error
	eventType := slices.Index(spec.GroupBy, "event_type")
	if eventType < 0 {
		errs = append(errs, &FieldError{Field: "aggregation_group_by_list", Err: errors.New(`must include "event_type" for calculate_formula, which tells the inputs' records apart`)})
	}
	names := slices.Sorted(maps.Keys(spec.FormulaInputs))
	var variables []windowagg.Variable
	for _, name := range names {
		et := spec.FormulaInputs[name]
		switch {
		case !variableName.MatchString(name):
			errs = append(errs, &FieldError{Field: "usage_formula_inputs", Err: fmt.Errorf("input name %q must be letters, digits and _, not starting with a digit: the formula reads it as this.<name>", name)})
		case et == "":
			errs = append(errs, &FieldError{Field: "usage_formula_inputs", Err: fmt.Errorf("input %q has no event type", name)})
		case slices.ContainsFunc(variables, func(v windowagg.Variable) bool { return v.Match == et }):
			errs = append(errs, &FieldError{Field: "usage_formula_inputs", Err: fmt.Errorf("event type %q is given to two inputs", et)})
		}
		variables = append(variables, windowagg.Variable{Name: name, Match: et})
	}
	switch {
	case len(names) == 0:
		errs = append(errs, &FieldError{Field: "usage_formula_inputs", Err: errors.New("missing; calculate_formula needs an object of input names to event types")})
	case len(names) > windowagg.MaxVariables:
		errs = append(errs, &FieldError{Field: "usage_formula_inputs", Err: fmt.Errorf("%d inputs, more than %d", len(names), windowagg.MaxVariables)})
	}
	var formula windowagg.Formula
	if spec.Formula == "" {
		errs = append(errs, &FieldError{Field: "usage_formula", Err: errors.New("missing; calculate_formula needs a Bloblang mapping of the inputs that assigns root a number")})
	} else if len(names) > 0 {
		var err error
		if formula, err = compileFormula(spec.Formula, names); err != nil {
			errs = append(errs, &FieldError{Field: "usage_formula", Err: err})
		}
	}
	plan, err := compileFetchQuantity(spec, TransformOptions{})
	if err != nil || len(errs) > 0 {
		return UsagePlan{}, errors.Join(append(errs, err)...)
	}
	plan.Combine = &windowagg.Derivation{Key: eventType, Variables: variables, Formula: formula}
	return plan, nil
}
