package monascaspec

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/recordstore"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// TransformOptions selects compatibility behaviours of monasca-transform
// that are defects; the zero value is the correct behaviour.
type TransformOptions struct {
	// RateLatestIsAverage makes calculate_rate take each group's average
	// as its latest value, as the original did, instead of the latest
	// sample.
	RateLatestIsAverage bool
	// RateDoubleRecordCount makes calculate_rate count every record twice,
	// as the original added the record counts of its oldest and latest
	// passes over the same records, instead of once; and the pre-hourly
	// rate count only the records of its oldest and latest rows, as the
	// original did, instead of all rows'.
	RateDoubleRecordCount bool
	// UtilMissingIdleIsBusy makes fetch_quantity_util count a group without
	// an idle reading as 100% busy (its utilised quantity is the total), as
	// the original did, instead of producing no row for it.
	UtilMissingIdleIsBusy bool
}

// TransformSpecs is the plan compiled from a pair of monasca-transform spec
// files. Rules and PreHourly take different inputs under the same names
// (the metric_id), so they run in separate engines.
type TransformSpecs struct {
	// PreTransform selects the metrics that enter the record store and the
	// transform specs each of them feeds, in file order.
	PreTransform []recordstore.Spec
	// Rules are the stage-1 rules, one per transform spec in file order:
	// they aggregate records (synthetic metrics named by the metric_id
	// they fan out to) into final metrics, one set per spec and
	// aggregation_period window. Rule.Name and Rule.MetricName are the
	// spec's metric_id.
	Rules []windowagg.Rule
	// PreHourly are the rules of the original's stage 2, the pre-hourly
	// processor, for the specs that have a pre_hourly_operation, in file
	// order. They take instance-usage rows as synthetic metrics: named by
	// the row's processing_meta.metric_id, with the row's string fields
	// and extra_data_map entries as dimensions, stamped at the start of
	// the row's usage period and fed through Engine.AddPartial (for
	// calculate_rate's rows with the oldest and the latest quantity as
	// first and last values). They produce final metrics; Rule.Name and
	// Rule.MetricName are the spec's metric_id.
	PreHourly []windowagg.Rule
}

// TransformSpec is one parsed transform spec. Usage components read it; the
// fields are named after the spec's keys, all in aggregation_params_map
// except the first two.
type TransformSpec struct {
	MetricID    string // metric_id: the spec's id, which records are named by
	MetricGroup string // metric_group: read, unused, as in the original
	// aggregation_pipeline
	Source  string   // source: read, unused
	Usage   string   // usage
	Setters []string // setters, applied in order
	Insert  []string // insert

	AggregatedMetricName string
	AggregationPeriod    string   // daily, hourly, minutely or secondly
	GroupBy              []string // aggregation_group_by_list
	FetchOperation       string   // usage_fetch_operation
	Filters              []TransformFilter
	// usage_fetch_util_quantity_event_type and
	// usage_fetch_util_idle_perc_event_type
	UtilQuantityEventType, UtilIdlePercEventType string
	// usage_formula and usage_formula_inputs (variable name -> event
	// type), of calculate_formula
	Formula            string
	FormulaInputs      map[string]string
	RollupGroupBy      []string // setter_rollup_group_by_list
	RollupOperation    string   // setter_rollup_operation
	DimensionList      []string
	PreHourlyOperation string
	PreHourlyGroupBy   []string // pre_hourly_group_by_list
}

// TransformFilter is one entry of filter_by_list.
type TransformFilter struct {
	Field      string // field_to_filter
	Expression string // filter_expression, a regular expression
	Operation  string // filter_operation: include or exclude
}

const aggregationPipelineKey = "aggregation_pipeline"

// The keys of monasca-transform's specs, as its schemas named them.
var (
	preTransformKeys      = []string{"event_type", "metric_id_list", "required_raw_fields_list", "event_processing_params"}
	eventProcessingKeys   = []string{"set_default_zone_to", "set_default_geolocation_to", "set_default_region_to"}
	transformKeys         = []string{"aggregation_params_map", "metric_group", "metric_id"}
	aggregationParamsKeys = []string{
		aggregationPipelineKey, "aggregated_metric_name", "aggregation_period", "aggregation_group_by_list",
		"usage_fetch_operation", "filter_by_list", "usage_fetch_util_quantity_event_type",
		"usage_fetch_util_idle_perc_event_type", "setter_rollup_group_by_list", "setter_rollup_operation",
		"dimension_list", "pre_hourly_operation", "pre_hourly_group_by_list",
		"usage_formula", "usage_formula_inputs", // calculate_formula
	}
	pipelineKeys = []string{"source", "usage", "setters", "insert"}
	filterKeys   = []string{"field_to_filter", "filter_expression", "filter_operation"}
)

// aggregationPeriod is one value of aggregation_period.
type aggregationPeriod struct {
	name   string
	window time.Duration
}

// aggregationPeriods are the values of aggregation_period, coarsest first:
// the one at index i groups by the first i+1 period columns.
var aggregationPeriods = []aggregationPeriod{
	{"daily", 24 * time.Hour},
	{"hourly", time.Hour},
	{"minutely", time.Minute},
	{"secondly", time.Second},
}

// recordFields are the record fields that transform specs group and filter
// by, besides the raw maps addressed by rawMapPrefixes (see package
// recordstore).
var recordFields = []string{"event_type", "metric_id", "tenant_id", "user_id", "resource_uuid", "region", "zone", "host"}

var (
	// The original's four, then this build's: the spread and percentiles
	// of the group values.
	rollupOperations    = []string{"sum", "max", "min", "avg", "stddev", "p50", "p90", "p95", "p99"}
	preHourlyOperations = []string{"sum", "max", "min", "avg", "rate"}
	// defaultPreHourlyGroupBy is what pre_hourly_group_by_list ["default"]
	// stands for.
	defaultPreHourlyGroupBy = []string{
		"tenant_id", "user_id", "resource_uuid", "geolocation", "region", "zone", "host", "project_id",
		"aggregated_metric_name", "aggregation_period",
	}
)

// LoadTransformSpecs reads the pre-transform and transform spec files at
// prePath and transformPath and compiles them with ParseTransformSpecs,
// naming the paths in messages.
func LoadTransformSpecs(prePath, transformPath string, opts TransformOptions) (*TransformSpecs, []string, error) {
	pre, preErr := os.ReadFile(prePath)
	transform, transformErr := os.ReadFile(transformPath)
	if err := errors.Join(preErr, transformErr); err != nil {
		return nil, nil, err
	}
	return ParseTransformSpecs(pre, transform, prePath, transformPath, opts)
}

// ParsePreTransformSpecs compiles pre_transform_specs alone, as the
// monasca_record_store processor reads them; source names them in messages.
func ParsePreTransformSpecs(pre []byte, source string) ([]recordstore.Spec, []string, error) {
	l := &transformLoad{pre: problems{source: source}}
	pres := l.preTransformSpecs(pre)
	warnings, err := flatten(&l.pre)
	if err != nil {
		return nil, warnings, err
	}
	specs := make([]recordstore.Spec, len(pres))
	for i, p := range pres {
		specs[i] = p.spec
	}
	return specs, warnings, nil
}

// LoadPreTransformSpecs reads and compiles a pre_transform_specs file.
func LoadPreTransformSpecs(path string) ([]recordstore.Spec, []string, error) {
	pre, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return ParsePreTransformSpecs(pre, path)
}

// flatten makes one flat list of the files' problems, so that callers see
// each message once (problems.result would nest one joined error per file).
func flatten(files ...*problems) ([]string, error) {
	var warnings []string
	var errs []error
	for _, p := range files {
		for _, w := range p.warnings {
			warnings = append(warnings, p.format(w))
		}
		for _, e := range p.errs {
			errs = append(errs, errors.New(p.format(e)))
		}
	}
	return warnings, errors.Join(errs...)
}

// ParseTransformSpecs compiles monasca-transform's pre_transform_specs (pre)
// and transform_specs (transform); preSource and transformSource name them
// in messages. Each file holds one JSON object per line, as the original's
// files and database rows did (blank lines are skipped), or a JSON array of
// objects. pre may be nil to compile only the pre-hourly rules, which read
// instance-usage rows and no records.
//
// A stage-1 rule takes the records of its metric_id in windows of
// aggregation_period (daily, hourly, minutely, secondly: 24h, 1h, 1m, 1s),
// across tenants:
//
//	filter_by_list              Filters: Go regular expressions that may match
//	                            anywhere in the field, like Spark's rlike
//	aggregation_group_by_list   GroupBy, the record fields by name (tenant_id,
//	                            host, dimensions#x, ...); a record lacking
//	                            dimensions#x groups as "", which the output
//	                            validator rejects like the original's null
//	usage + usage_fetch_operation
//	                            Function and Combine (see UsageComponent)
//	rollup_quantity             Rollup by setter_rollup_group_by_list with
//	                            setter_rollup_operation; a field the rows were
//	                            not grouped by reads "NA"
//	dimension_list, setters     Namer: the insert step's naming
//
// A pre-hourly rule, for a spec with a pre_hourly_operation, takes the
// instance-usage rows of its metric_id in the same windows, grouped by the
// period's usage columns (usage_date, usage_hour, ...) and
// pre_hourly_group_by_list (["default"]: the ten identity fields), with
// pre_hourly_operation as Function; rate is 100·(first − last)/first over
// partials whose first and last values are the rows' oldest and latest
// quantities. Fields outside the group read "all".
//
// Every problem of both files is reported in one joined error, each as
// "source:line: specification N ("id"): field: message", and no plan is
// returned with it; every returned rule passes Validate. Warnings report
// what the original accepted but probably not as meant: unknown keys, a
// metric_id that no spec of the other file matches, output names the
// original would have written as "NA" or "all", and the like.
func ParseTransformSpecs(pre, transform []byte, preSource, transformSource string, opts TransformOptions) (*TransformSpecs, []string, error) {
	l := &transformLoad{opts: opts, pre: problems{source: preSource}, transform: problems{source: transformSource}}
	var pres []parsedPre
	transforms := l.transformSpecs(transform)
	if pre != nil {
		pres = l.preTransformSpecs(pre)
		l.crossCheck(pres, transforms)
	}

	warnings, err := flatten(&l.pre, &l.transform)
	if err != nil {
		return nil, warnings, err
	}
	specs := &TransformSpecs{}
	for _, p := range pres {
		specs.PreTransform = append(specs.PreTransform, p.spec)
	}
	for _, t := range transforms {
		if t.rule != nil {
			specs.Rules = append(specs.Rules, *t.rule)
		}
		if t.preHourly != nil {
			specs.PreHourly = append(specs.PreHourly, *t.preHourly)
		}
	}
	return specs, warnings, nil
}

// transformLoad is one load of a pair of spec files.
type transformLoad struct {
	opts           TransformOptions
	pre, transform problems
}

type parsedPre struct {
	spec recordstore.Spec
	line int
	ref  *specRef
}

type parsedTransform struct {
	spec            TransformSpec
	line            int
	ref             *specRef
	rule, preHourly *windowagg.Rule // nil when not compiled
}

// preTransformSpecs reads the pre-transform specs, leaving out those with
// errors.
func (l *transformLoad) preTransformSpecs(data []byte) []parsedPre {
	p := &l.pre
	objects := p.readSpecObjects(data)
	if len(objects) == 0 && len(p.errs) == 0 {
		p.errorf(0, place{}, "no pre-transform specifications")
	}
	var out []parsedPre
	first := map[string]*specRef{}
	for i, obj := range objects {
		ref := &specRef{index: i + 1}
		spec, ok := l.preTransformSpec(obj, ref)
		if f, dup := first[spec.EventType]; dup && spec.EventType != "" {
			// The event type is the key of the original's table.
			p.errorf(obj.line, place{spec: ref}.child("event_type"), "%s has the same event_type", f)
			continue
		}
		first[spec.EventType] = ref
		if ok {
			out = append(out, parsedPre{spec: spec, line: obj.line, ref: ref})
		}
	}
	return out
}

// preTransformSpec reads one pre-transform spec, filling in ref.name. ok is
// false when it had errors.
func (l *transformLoad) preTransformSpec(obj jsonObject, ref *specRef) (spec recordstore.Spec, ok bool) {
	p := &l.pre
	errs := len(p.errs)
	f := fieldReader{p: p, line: obj.line, at: place{spec: ref}, fields: obj.fields}
	f.warnUnknown(preTransformKeys)
	spec.EventType = f.str("event_type")
	ref.name = spec.EventType
	if spec.EventType == "" {
		p.errorf(obj.line, f.at.child("event_type"), "missing; it names the metrics this specification takes")
	}

	at := f.at.child("metric_id_list")
	spec.MetricIDs = f.strs("metric_id_list")
	switch {
	case !f.has("metric_id_list"):
		p.errorf(obj.line, at, "missing; it lists the metric_id of every transform specification the metrics feed")
	case len(spec.MetricIDs) == 0:
		p.warnf(obj.line, at, "empty: the metrics feed no transform specification")
	}
	for i, id := range spec.MetricIDs {
		switch {
		case id == "":
			p.errorf(obj.line, at, "entry %d is empty", i)
		case slices.Contains(spec.MetricIDs[:i], id):
			// Each entry makes a record of every metric.
			p.errorf(obj.line, at, "%q is listed twice, which would count its metrics twice", id)
		}
	}

	at = f.at.child("required_raw_fields_list")
	spec.RequiredFields = f.strs("required_raw_fields_list")
	if !f.has("required_raw_fields_list") {
		// The original failed on every batch without it.
		p.errorf(obj.line, at, `missing; list the fields a metric must have, e.g. ["creation_time"]`)
	}
	for i, field := range spec.RequiredFields {
		// The record store checks creation_time and the raw maps' entries;
		// the original's other top-level columns were either always set or
		// never, so naming one is a mistake either way.
		if _, key, ok := strings.Cut(field, "#"); ok && key != "" && slices.Contains(rawMapPrefixes, field[:len(field)-len(key)]) {
			continue
		}
		if field != "creation_time" {
			p.errorf(obj.line, at, "entry %d (%q) is not a field the record store can check; use creation_time, or %s", i, field, rawMapFieldForms)
		}
	}

	if params, ok := f.object("event_processing_params"); ok {
		params.warnUnknown(eventProcessingKeys)
		spec.DefaultZone = params.str("set_default_zone_to")
		params.str("set_default_geolocation_to") // checked, but unused, as in the original
		spec.DefaultRegion = params.str("set_default_region_to")
	}
	return spec, len(p.errs) == errs
}

// rawMapFieldForms describes the names that address the raw maps.
const rawMapFieldForms = "dimensions#<key>, meta#<key> or value_meta#<key>"

// transformSpecs reads and compiles the transform specs.
func (l *transformLoad) transformSpecs(data []byte) []*parsedTransform {
	p := &l.transform
	objects := p.readSpecObjects(data)
	if len(objects) == 0 && len(p.errs) == 0 {
		p.errorf(0, place{}, "no transform specifications")
	}
	var out []*parsedTransform
	first := map[string]*specRef{}
	for i, obj := range objects {
		t := &parsedTransform{line: obj.line, ref: &specRef{index: i + 1}}
		errs := len(p.errs)
		if l.transformSpec(obj, t) {
			l.compileTransform(t, errs)
		}
		if f, dup := first[t.spec.MetricID]; dup && t.spec.MetricID != "" {
			// Records reach a spec by its metric_id, the key of the
			// original's table.
			p.errorf(obj.line, place{spec: t.ref}.child("metric_id"), "%s has the same metric_id", f)
			continue
		}
		first[t.spec.MetricID] = t.ref
		out = append(out, t)
	}
	return out
}

// transformSpec reads one transform spec into t.spec, filling in
// t.ref.name. It returns false when the spec is too broken to compile.
func (l *transformLoad) transformSpec(obj jsonObject, t *parsedTransform) bool {
	p := &l.transform
	f := fieldReader{p: p, line: obj.line, at: place{spec: t.ref}, fields: obj.fields}
	f.warnUnknown(transformKeys)
	s := &t.spec
	s.MetricID = f.str("metric_id")
	t.ref.name = s.MetricID
	if s.MetricID == "" {
		p.errorf(obj.line, f.at.child("metric_id"), "missing; it identifies the specification, and records reach it by it")
	}
	s.MetricGroup = f.str("metric_group")

	params, ok := f.object("aggregation_params_map")
	if !ok {
		if !f.has("aggregation_params_map") {
			p.errorf(obj.line, f.at.child("aggregation_params_map"), "missing")
		}
		return false
	}
	params.warnUnknown(aggregationParamsKeys)
	if pipeline, ok := params.object(aggregationPipelineKey); ok {
		pipeline.warnUnknown(pipelineKeys)
		s.Source = pipeline.str("source")
		s.Usage = pipeline.str("usage")
		s.Setters = pipeline.strs("setters")
		s.Insert = pipeline.strs("insert")
	} else if !params.has(aggregationPipelineKey) {
		p.errorf(obj.line, params.at.child(aggregationPipelineKey), "missing")
	}
	s.AggregatedMetricName = params.str("aggregated_metric_name")
	s.AggregationPeriod = params.str("aggregation_period")
	s.GroupBy = params.strs("aggregation_group_by_list")
	s.FetchOperation = params.str("usage_fetch_operation")
	for _, e := range params.objects("filter_by_list") {
		e.warnUnknown(filterKeys)
		s.Filters = append(s.Filters, TransformFilter{Field: e.str("field_to_filter"), Expression: e.str("filter_expression"), Operation: e.str("filter_operation")})
	}
	s.UtilQuantityEventType = params.str("usage_fetch_util_quantity_event_type")
	s.UtilIdlePercEventType = params.str("usage_fetch_util_idle_perc_event_type")
	s.Formula = params.str("usage_formula")
	if inputs, ok := params.object("usage_formula_inputs"); ok {
		s.FormulaInputs = map[string]string{}
		for name := range inputs.fields {
			s.FormulaInputs[name] = inputs.str(name)
		}
	}
	s.RollupGroupBy = params.strs("setter_rollup_group_by_list")
	s.RollupOperation = params.str("setter_rollup_operation")
	s.DimensionList = params.strs("dimension_list")
	s.PreHourlyOperation = params.str("pre_hourly_operation")
	s.PreHourlyGroupBy = params.strs("pre_hourly_group_by_list")
	for _, required := range []string{"aggregation_group_by_list", "dimension_list"} {
		if !params.has(required) {
			// The original failed on every batch without them.
			p.errorf(obj.line, params.at.child(required), "missing")
		}
	}
	return true
}

// compileTransform validates t.spec and compiles its rules into t, unless
// the spec has errors beyond the first errs of the file. The messages keep
// the original's exception texts where it had them.
func (l *transformLoad) compileTransform(t *parsedTransform, errs int) {
	p := &l.transform
	s := &t.spec
	at := place{spec: t.ref}.child("aggregation_params_map").child
	errorf := func(field, format string, args ...any) { p.errorf(t.line, at(field), format, args...) }
	warnf := func(field, format string, args ...any) { p.warnf(t.line, at(field), format, args...) }

	usage, usageKnown, emits := l.pipeline(t)
	level := slices.IndexFunc(aggregationPeriods, func(a aggregationPeriod) bool { return a.name == s.AggregationPeriod })
	if level < 0 {
		errorf("aggregation_period", "must be one of daily, hourly, minutely, secondly, not %s", quoteOrMissing(s.AggregationPeriod))
	}
	if s.AggregatedMetricName == "" {
		errorf("aggregated_metric_name", "missing; it names the output metrics")
	}
	l.checkNames("aggregation_group_by_list", t, s.GroupBy, true)
	filters := l.filters(t)

	if usageKnown {
		switch {
		case usage.Operations != nil && !slices.Contains(usage.Operations, s.FetchOperation):
			errorf("usage_fetch_operation", "Operation %s is not supported; %s supports %s", noneIfEmpty(s.FetchOperation), s.Usage, strings.Join(usage.Operations, ", "))
		case usage.Operations == nil && s.FetchOperation != "":
			warnf("usage_fetch_operation", "is ignored: %s does not read it", s.Usage)
		}
	}

	rollupAt, rollupFn := l.rollup(t)

	l.checkNames("dimension_list", t, s.DimensionList, false)
	for i, d := range s.DimensionList {
		if j := slices.IndexFunc(s.DimensionList[:i], func(e string) bool { return e != d && stripRawPrefix(e) == stripRawPrefix(d) }); j >= 0 {
			warnf("dimension_list", "%q and %q both name the dimension %q; the later one wins", s.DimensionList[j], d, stripRawPrefix(d))
		}
	}
	preHourlyFn := l.preHourly(t)

	var plan UsagePlan
	if usageKnown && len(p.errs) == errs {
		var err error
		plan, err = usage.Compile(s, l.opts)
		l.usageErrors(t, err)
	}
	if len(p.errs) > errs || !emits {
		return
	}

	rule := &windowagg.Rule{
		Name: s.MetricID, MetricName: s.MetricID, OutputName: s.AggregatedMetricName,
		Filters: filters, GroupBy: s.GroupBy, OptionalGroupBy: true, AcrossTenants: true,
		Function: plan.Function, Combine: plan.Combine, Namer: l.namer(t, &plan, level, rollupAt),
		Window: aggregationPeriods[level].window,
	}
	if rollupFn != nil {
		rule.Rollup = &windowagg.Rollup{Function: rollupFn, GroupBy: s.RollupGroupBy, Ungrouped: ungrouped}
	}
	t.rule = l.validated(t, rule)
	if preHourlyFn != nil {
		t.preHourly = l.validated(t, l.preHourlyRule(s, level, preHourlyFn))
	}
}

// rollup checks the rollup_quantity setter of t.spec and returns its
// position among the setters (-1 for none) and its function (nil for none
// or a bad one).
func (l *transformLoad) rollup(t *parsedTransform) (at int, fn windowagg.Function) {
	s := &t.spec
	field := place{spec: t.ref}.child("aggregation_params_map").child
	at = slices.Index(s.Setters, setterRollup)
	l.checkNames("setter_rollup_group_by_list", t, s.RollupGroupBy, false)
	if at >= 0 || s.Usage == "calculate_rate" {
		for _, k := range s.RollupGroupBy {
			if k != "" && !slices.Contains(s.GroupBy, k) {
				l.transform.warnf(t.line, field("setter_rollup_group_by_list"), "%q is not in aggregation_group_by_list, so every row rolls up under %q", k, ungrouped)
			}
		}
	}
	if at >= 0 {
		if !slices.Contains(rollupOperations, s.RollupOperation) {
			l.transform.errorf(t.line, field("setter_rollup_operation"), "Operation %s is not supported; rollup_quantity supports %s", noneIfEmpty(s.RollupOperation), strings.Join(rollupOperations, ", "))
		} else {
			fn, _ = windowagg.LookupFunction(s.RollupOperation)
		}
	}
	return at, fn
}

// namer returns the naming of t.spec's outputs by its setters and its
// usage component's plan. The rollup resets the name and the period to
// "all": a setter counts only after the last rollup.
func (l *transformLoad) namer(t *parsedTransform, plan *UsagePlan, level, rollupAt int) *insertNamer {
	s := &t.spec
	lastIndex := func(setter string) int {
		for i := len(s.Setters) - 1; i >= 0; i-- {
			if s.Setters[i] == setter {
				return i
			}
		}
		return -1
	}
	sets := func(setter string) bool {
		return lastIndex(setter) > lastIndex(setterRollup) || plan.Named && rollupAt < 0
	}
	namer := &insertNamer{
		dimensions:  s.DimensionList,
		rolled:      plan.RolledUp || rollupAt >= 0,
		noProjectID: plan.NoProjectID,
		periodLevel: level + 1,
	}
	if sets(setterMetricName) {
		namer.metricName = s.AggregatedMetricName
	} else {
		reason := setterMetricName + " is not among the setters"
		if rollupAt >= 0 {
			reason = "no " + setterMetricName + " follows the last " + setterRollup + " among the setters"
		}
		at := place{spec: t.ref}.child("aggregation_params_map").child("aggregated_metric_name")
		l.transform.warnf(t.line, at, "is not applied, as %s, so the outputs are named %q, as the original named them", reason, namer.unset())
	}
	if sets(setterPeriod) {
		namer.period = s.AggregationPeriod
	}
	return namer
}

// pipeline checks the component names of t.spec's aggregation_pipeline. It
// returns the usage component, whether it is known, and whether the spec
// emits anything.
func (l *transformLoad) pipeline(t *parsedTransform) (usage UsageComponent, known, emits bool) {
	p := &l.transform
	s := &t.spec
	at := place{spec: t.ref}.child("aggregation_params_map").child(aggregationPipelineKey).child
	usage, known = usages.Lookup(s.Usage)
	switch {
	case s.Usage == "":
		p.errorf(t.line, at("usage"), "missing; one of: %s", strings.Join(usages.Names(), ", "))
	case !known:
		p.errorf(t.line, at("usage"), "unknown usage component %q; known: %s", s.Usage, strings.Join(usages.Names(), ", "))
	}
	for i, name := range s.Setters {
		switch {
		case !slices.Contains(setterComponents, name):
			p.errorf(t.line, at("setters"), "unknown setter component %q; known: %s", name, strings.Join(setterComponents, ", "))
		case slices.Contains(s.Setters[:i], name):
			p.warnf(t.line, at("setters"), "%q is listed twice; it is applied once", name)
		}
	}
	for _, name := range s.Insert {
		if !slices.Contains(insertComponents, name) {
			p.errorf(t.line, at("insert"), "unknown insert component %q; known: %s", name, strings.Join(insertComponents, ", "))
		}
	}
	emits = slices.Contains(s.Insert, insertFinal) || slices.Contains(s.Insert, insertPreHourly)
	if !emits {
		p.warnf(t.line, at("insert"), "lists neither %s nor %s, so the original wrote nothing for this specification; it is not compiled", insertFinal, insertPreHourly)
	}
	return usage, known, emits
}

// validated returns rule when it passes Validate, and otherwise records
// why. The checks before it should leave nothing for this safety net.
func (l *transformLoad) validated(t *parsedTransform, rule *windowagg.Rule) *windowagg.Rule {
	if err := rule.Validate(); err != nil {
		l.transform.errorf(t.line, place{spec: t.ref}, "%v", err)
		return nil
	}
	return rule
}

// checkNames checks a list of field names of field. record says that they
// name record fields, which the rules read as dimensions of the records.
func (l *transformLoad) checkNames(field string, t *parsedTransform, names []string, record bool) {
	at := place{spec: t.ref}.child("aggregation_params_map").child(field)
	for i, name := range names {
		switch {
		case name == "" || slices.Contains(rawMapPrefixes, name):
			l.transform.errorf(t.line, at, "entry %d (%q) names no field", i, name)
		case slices.Contains(names[:i], name):
			l.transform.errorf(t.line, at, "%q is listed twice", name)
		case record && !isRecordField(name):
			l.transform.errorf(t.line, at, "%q is not a record field; use one of %s, or %s", name, strings.Join(recordFields, ", "), rawMapFieldForms)
		}
	}
}

func isRecordField(name string) bool {
	if slices.Contains(recordFields, name) {
		return true
	}
	return slices.ContainsFunc(rawMapPrefixes, func(p string) bool { return strings.HasPrefix(name, p) && len(name) > len(p) })
}

// filters compiles filter_by_list.
func (l *transformLoad) filters(t *parsedTransform) []windowagg.Filter {
	var out []windowagg.Filter
	for i, f := range t.spec.Filters {
		at := place{spec: t.ref}.child("aggregation_params_map").child(fmt.Sprintf("filter_by_list[%d]", i))
		if f.Field == "" || f.Expression == "" || (f.Operation != "include" && f.Operation != "exclude") {
			l.transform.errorf(t.line, at, "Encountered invalid filter details: field to filter = %s, filter expression = %s, filter operation = %s.  All values must be supplied and filter operation must be either 'include' or 'exclude'.", f.Field, f.Expression, f.Operation)
			continue
		}
		if !isRecordField(f.Field) {
			l.transform.errorf(t.line, at.child("field_to_filter"), "%q is not a record field; use one of %s, or %s", f.Field, strings.Join(recordFields, ", "), rawMapFieldForms)
			continue
		}
		re, err := regexp.Compile(f.Expression)
		if err != nil {
			l.transform.errorf(t.line, at.child("filter_expression"), "invalid regular expression (Go syntax, without backreferences or lookaround): %v", err)
			continue
		}
		out = append(out, windowagg.Filter{Dimension: f.Field, Pattern: re, Exclude: f.Operation == "exclude"})
	}
	return out
}

// preHourly checks the pre-hourly fields of t.spec and returns the function
// of pre_hourly_operation, nil when the spec has none.
func (l *transformLoad) preHourly(t *parsedTransform) windowagg.Function {
	s := &t.spec
	at := place{spec: t.ref}.child("aggregation_params_map")
	errorf := func(field, format string, args ...any) { l.transform.errorf(t.line, at.child(field), format, args...) }
	if s.PreHourlyOperation == "" {
		if slices.Contains(s.Insert, insertPreHourly) {
			// The pre-hourly processor would have failed on the rows.
			errorf("pre_hourly_operation", "missing; %s sends the rows to the pre-hourly processor, which needs it (Operation None is not supported)", insertPreHourly)
		}
		return nil
	}
	var fn windowagg.Function
	switch op := s.PreHourlyOperation; {
	case !slices.Contains(preHourlyOperations, op):
		errorf("pre_hourly_operation", "Operation %s is not supported; the pre-hourly processor supports %s", op, strings.Join(preHourlyOperations, ", "))
	case op == "rate" && s.Usage != "calculate_rate":
		errorf("pre_hourly_operation", "rate needs the oldest and latest quantities that only calculate_rate writes into its rows, not %s", quoteOrMissing(s.Usage))
	case op == "rate":
		fn = preHourlyRate{}
	default:
		fn, _ = windowagg.LookupFunction(op)
	}
	groupBy := s.PreHourlyGroupBy
	switch {
	case groupBy == nil:
		errorf("pre_hourly_group_by_list", `missing; it is needed with pre_hourly_operation (["default"] for the ten identity fields)`)
	case slices.Contains(groupBy, "default") && len(groupBy) > 1:
		errorf("pre_hourly_group_by_list", `"default" stands for the whole list and cannot be combined with other entries`)
	case len(groupBy) == 1 && groupBy[0] == "default":
		groupBy = defaultPreHourlyGroupBy
	}
	l.checkNames("pre_hourly_group_by_list", t, groupBy, false)
	if groupBy != nil && !slices.Contains(groupBy, "aggregated_metric_name") {
		l.transform.warnf(t.line, at.child("pre_hourly_group_by_list"), `does not include aggregated_metric_name, so the pre-hourly outputs are named "all", as the original named them`)
	}
	return fn
}

// preHourlyRule compiles the pre-hourly rule of s, whose period is
// aggregationPeriods[level]. The original's pre-hourly processor grouped
// the rows by the period's usage columns followed by
// pre_hourly_group_by_list; the window makes the columns redundant for
// grouping, but as group keys they reach the namer.
func (l *transformLoad) preHourlyRule(s *TransformSpec, level int, fn windowagg.Function) *windowagg.Rule {
	var groupBy []string
	for _, c := range periodColumns[:level+1] {
		groupBy = append(groupBy, c.usage)
	}
	list := s.PreHourlyGroupBy
	if len(list) == 1 && list[0] == "default" {
		list = defaultPreHourlyGroupBy
	}
	for _, k := range list {
		if !slices.Contains(groupBy, k) {
			groupBy = append(groupBy, k)
		}
	}
	rule := &windowagg.Rule{
		Name: s.MetricID, MetricName: s.MetricID, OutputName: s.AggregatedMetricName,
		GroupBy: groupBy, OptionalGroupBy: true, AcrossTenants: true,
		Function: fn, Window: aggregationPeriods[level].window,
		Namer: &insertNamer{dimensions: s.DimensionList, rolled: true},
	}
	if _, rate := fn.(preHourlyRate); rate && l.opts.RateDoubleRecordCount {
		rule.Combine = edgeRecordCount{}
	}
	return rule
}

// usageErrors records the errors of a usage component's Compile.
func (l *transformLoad) usageErrors(t *parsedTransform, err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	params := place{spec: t.ref}.child("aggregation_params_map")
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			l.transform.errorf(t.line, params.child(fe.Field), "%v", fe.Err)
		} else {
			l.transform.errorf(t.line, params.child(aggregationPipelineKey).child("usage"), "%s: %v", t.spec.Usage, e)
		}
	}
}

// crossCheck warns about metric_ids that only one of the files names.
func (l *transformLoad) crossCheck(pres []parsedPre, transforms []*parsedTransform) {
	fed := map[string][]string{} // metric_id -> the event types that feed it
	for _, p := range pres {
		for _, id := range p.spec.MetricIDs {
			fed[id] = append(fed[id], p.spec.EventType)
		}
	}
	defined := map[string]bool{}
	for _, t := range transforms {
		s := &t.spec
		defined[s.MetricID] = true
		at := place{spec: t.ref}
		switch {
		case s.MetricID == "":
		case len(fed[s.MetricID]) == 0:
			l.transform.warnf(t.line, at.child("metric_id"), "no pre-transform specification lists %q in its metric_id_list, so no records reach this specification", s.MetricID)
		case s.Usage == "fetch_quantity_util" || s.Usage == "calculate_formula":
			eventTypes := []string{s.UtilQuantityEventType, s.UtilIdlePercEventType}
			if s.Usage == "calculate_formula" {
				eventTypes = slices.Sorted(maps.Values(s.FormulaInputs))
			}
			for _, et := range eventTypes {
				if et != "" && !slices.Contains(fed[s.MetricID], et) {
					l.transform.warnf(t.line, at.child("metric_id"), "no pre-transform specification of event_type %q lists %q, so %s gets none of those records", et, s.MetricID, s.Usage)
				}
			}
		}
	}
	for _, p := range pres {
		for _, id := range p.spec.MetricIDs {
			if !defined[id] {
				l.pre.warnf(p.line, place{spec: p.ref}.child("metric_id_list"), "no transform specification has metric_id %q, so those records are dropped", id)
			}
		}
	}
}

// quoteOrMissing quotes s, or says that it is missing.
func quoteOrMissing(s string) string {
	if s == "" {
		return "missing"
	}
	return strconv.Quote(s)
}

// noneIfEmpty is s, or "None" as the original printed a missing value.
func noneIfEmpty(s string) string {
	if s == "" {
		return "None"
	}
	return s
}
