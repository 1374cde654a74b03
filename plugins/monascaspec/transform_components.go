package monascaspec

import (
	"errors"
	"fmt"
	"slices"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// UsageComponent compiles one kind of aggregation_pipeline.usage of a
// monasca-transform spec (fetch_quantity, fetch_quantity_util,
// calculate_rate) into the parts of the stage-1 rule that the usage decides.
// The loader compiles everything else (filters, grouping, window, rollup,
// naming) the same way for every usage.
//
// The built-in components are registered by this package. A user's own
// build adds one from an init function, and specs may then name it:
//
//	func init() {
//		monascaspec.RegisterUsage("fetch_quantity_trimmed", monascaspec.UsageComponent{
//			Operations: []string{"trimmed_mean"},
//			Compile: func(*monascaspec.TransformSpec, monascaspec.TransformOptions) (monascaspec.UsagePlan, error) {
//				return monascaspec.UsagePlan{Function: trimmedMean{}}, nil
//			},
//		})
//	}
type UsageComponent struct {
	// Operations lists the usage_fetch_operation values the component
	// accepts; the loader rejects any other with monasca-transform's
	// "Operation %s is not supported". Nil means that the component does
	// not read usage_fetch_operation.
	Operations []string
	// Compile returns the plan for spec, whose usage_fetch_operation has
	// been checked against Operations. A FieldError in the returned error
	// (alone or joined) names the aggregation_params_map field at fault;
	// other errors are reported against the usage.
	Compile func(spec *TransformSpec, opts TransformOptions) (UsagePlan, error)
}

// UsagePlan is what a usage component decides of a stage-1 rule.
type UsagePlan struct {
	// Function computes the value of each group of records.
	Function windowagg.Function
	// Combine, when set, rewrites the group rows of each window before the
	// rollup, as fetch_quantity_util's join and calculate_rate do.
	Combine windowagg.Combiner
	// RolledUp says that Combine returns rolled-up rows, keyed by
	// setter_rollup_group_by_list: the insert step then reads their fields
	// outside the group as "all" instead of fetch's "NA", even without a
	// rollup_quantity setter.
	RolledUp bool
	// Named says that the rows carry the spec's aggregated_metric_name and
	// aggregation_period whatever the setters, as calculate_rate's rows did.
	Named bool
	// NoProjectID says that the rows carry no project_id (fetch's latest and
	// oldest, fetch_quantity_util), so that the insert step reads it as
	// "all" instead of the grouped tenant_id.
	NoProjectID bool
}

// FieldError is a problem with one aggregation_params_map field, returned
// by a usage component so that the message names the field.
type FieldError struct {
	Field string // the key in aggregation_params_map, e.g. "aggregation_group_by_list"
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// usages are the registered usage components, by the exact name transform
// specs give in "usage".
var usages = windowagg.NewRegistry[UsageComponent]("monascaspec: usage component")

// RegisterUsage makes c available to transform specs as the usage name.
// Registering a name twice, or a component without Compile, is a
// programming error and panics.
func RegisterUsage(name string, c UsageComponent) {
	if c.Compile == nil {
		panic(fmt.Sprintf("monascaspec: usage component %q has no Compile", name))
	}
	usages.Register(name, c)
}

// The setter and insert components. Unlike usages they are not pluggable:
// they decide the shape and naming of the rows, which the loader compiles
// itself.
const (
	setterRollup     = "rollup_quantity"
	setterMetricName = "set_aggregated_metric_name"
	setterPeriod     = "set_aggregated_period"

	insertPrepare   = "prepare_data" // a no-op in the original
	insertFinal     = "insert_data"
	insertPreHourly = "insert_data_pre_hourly"
)

var (
	setterComponents = []string{setterRollup, setterMetricName, setterPeriod}
	insertComponents = []string{insertPrepare, insertFinal, insertPreHourly}
)

func init() {
	RegisterUsage("fetch_quantity", UsageComponent{
		// From stddev on, this build's, not the original's.
		Operations: []string{"sum", "max", "min", "avg", "latest", "oldest", "stddev", "p50", "p90", "p95", "p99",
			"increase", "counter_rate", "time_weighted_avg"},
		Compile: compileFetchQuantity,
	})
	RegisterUsage("fetch_quantity_util", UsageComponent{
		// The original refused sum, max and min: the total and the idle
		// readings they pick need not come from the same moment.
		Operations: []string{"avg", "latest", "oldest"},
		Compile:    compileFetchQuantityUtil,
	})
	RegisterUsage("calculate_rate", UsageComponent{Compile: compileCalculateRate})
	RegisterUsage("calculate_formula", UsageComponent{
		Operations: []string{"sum", "max", "min", "avg", "latest", "oldest"},
		Compile:    compileCalculateFormula,
	})
}

// operationFunction returns the engine function of an operation that
// Operations admitted.
func operationFunction(op string) (windowagg.Function, error) {
	fn, ok := windowagg.LookupFunction(op)
	if !ok {
		return nil, &FieldError{Field: "usage_fetch_operation", Err: fmt.Errorf("the engine has no function %q", op)}
	}
	return fn, nil
}

// compileFetchQuantity applies usage_fetch_operation to each group.
func compileFetchQuantity(spec *TransformSpec, _ TransformOptions) (UsagePlan, error) {
	fn, err := operationFunction(spec.FetchOperation)
	// latest and oldest were computed by a different code path, which
	// left project_id out of its rows.
	return UsagePlan{Function: fn, NoProjectID: spec.FetchOperation == "latest" || spec.FetchOperation == "oldest"}, err
}

// compileFetchQuantityUtil joins each group of the quantity event type with
// the idle-percentage group of the same other keys (see utilCombiner).
func compileFetchQuantityUtil(spec *TransformSpec, opts TransformOptions) (UsagePlan, error) {
	var errs []error
	for _, f := range []struct{ field, value, what string }{
		{"usage_fetch_util_quantity_event_type", spec.UtilQuantityEventType, "total quantity"},
		{"usage_fetch_util_idle_perc_event_type", spec.UtilIdlePercEventType, "idle percentage"},
	} {
		if f.value == "" {
			errs = append(errs, &FieldError{Field: f.field, Err: fmt.Errorf("missing; fetch_quantity_util needs the event type of the %s", f.what)})
		}
	}
	if spec.UtilQuantityEventType != "" && spec.UtilQuantityEventType == spec.UtilIdlePercEventType {
		errs = append(errs, &FieldError{Field: "usage_fetch_util_idle_perc_event_type", Err: errors.New("is the same as usage_fetch_util_quantity_event_type")})
	}
	eventType := slices.Index(spec.GroupBy, "event_type")
	if eventType < 0 {
		// Without it the quantity and idle records fall into one group,
		// and the original silently produced nothing.
		errs = append(errs, &FieldError{Field: "aggregation_group_by_list", Err: errors.New(`must include "event_type" for fetch_quantity_util, which tells the quantity records from the idle ones`)})
	}
	fn, err := operationFunction(spec.FetchOperation)
	if err != nil || len(errs) > 0 {
		return UsagePlan{}, errors.Join(append(errs, err)...)
	}
	return UsagePlan{
		Function: fn,
		Combine: &utilCombiner{
			eventType:         eventType,
			keys:              slices.Delete(slices.Clone(spec.GroupBy), eventType, eventType+1),
			quantityType:      spec.UtilQuantityEventType,
			idleType:          spec.UtilIdlePercEventType,
			missingIdleIsBusy: opts.UtilMissingIdleIsBusy,
		},
		NoProjectID: true,
	}, nil
}

// compileCalculateRate derives the percentage change between the oldest and
// the latest values of each rollup group (see rateCombiner). The group rows
// only carry their state to the combiner, so any function that gives every
// non-empty group a value serves as Function.
func compileCalculateRate(spec *TransformSpec, opts TransformOptions) (UsagePlan, error) {
	fn, err := operationFunction("oldest")
	return UsagePlan{
		Function: fn,
		Combine: &rateCombiner{
			groupBy:         spec.RollupGroupBy,
			latestIsAverage: opts.RateLatestIsAverage,
			doubleRecords:   opts.RateDoubleRecordCount,
		},
		RolledUp: true,
		Named:    true,
	}, err
}
