package monascaspec

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
	"github.com/monasca-connect/monasca-connect/plugins/recordstore"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// loadConformanceSpecs loads a pre-transform and a transform spec file of
// the dataset's specs directory, failing on errors and warnings.
func loadConformanceSpecs(t *testing.T, pre, transform string, opts TransformOptions) *TransformSpecs {
	t.Helper()
	dir := filepath.Join(conformancedata.Dir(t), "specs")
	specs, warnings, err := LoadTransformSpecs(filepath.Join(dir, pre), filepath.Join(dir, transform), opts)
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	if len(warnings) > 0 {
		t.Fatalf("unexpected warnings:\n%s", strings.Join(warnings, "\n"))
	}
	return specs
}

// ruleNamed returns the rule of metric_id id.
func ruleNamed(t *testing.T, rules []windowagg.Rule, id string) windowagg.Rule {
	t.Helper()
	i := slices.IndexFunc(rules, func(r windowagg.Rule) bool { return r.Name == id })
	if i < 0 {
		t.Fatalf("no rule %q", id)
	}
	return rules[i]
}

func TestLoadTransformSpecsShippedAndTestSpecs(t *testing.T) {
	for _, tt := range []struct {
		dir        string
		pre, rules int
	}{
		{"default", 17, 26},
		{"test", 25, 44},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			specs := loadConformanceSpecs(t, tt.dir+"/pre_transform_specs.jsonl", tt.dir+"/transform_specs.jsonl", TransformOptions{})
			// Every shipped spec has a pre_hourly_operation.
			if len(specs.PreTransform) != tt.pre || len(specs.Rules) != tt.rules || len(specs.PreHourly) != tt.rules {
				t.Fatalf("got %d pre-transform specs, %d rules, %d pre-hourly rules", len(specs.PreTransform), len(specs.Rules), len(specs.PreHourly))
			}
			for _, rules := range [][]windowagg.Rule{specs.Rules, specs.PreHourly} {
				for _, r := range rules {
					if err := r.Validate(); err != nil {
						t.Error(err)
					}
				}
			}
			pre := specs.PreTransform[slices.IndexFunc(specs.PreTransform, func(s recordstore.Spec) bool { return s.EventType == "cpu.total_logical_cores" })]
			if want := (recordstore.Spec{
				EventType: "cpu.total_logical_cores", MetricIDs: []string{"cpu_total_all", "cpu_total_host", "cpu_util_all", "cpu_util_host"},
				RequiredFields: []string{"creation_time"}, DefaultRegion: "W", DefaultZone: "1",
			}); !reflect.DeepEqual(pre, want) {
				t.Errorf("pre-transform spec:\n got %+v\nwant %+v", pre, want)
			}

			mem := ruleNamed(t, specs.Rules, "mem_total_all")
			if mem.MetricName != "mem_total_all" || !reflect.DeepEqual(mem.GroupBy, []string{"host", "metric_id", "tenant_id"}) ||
				mem.Function.Name() != "avg" || mem.Rollup == nil || mem.Rollup.Function.Name() != "sum" || len(mem.Rollup.GroupBy) != 0 ||
				mem.Rollup.Ungrouped != "NA" || mem.Window != time.Hour || !mem.AcrossTenants || !mem.OptionalGroupBy || mem.Combine != nil {
				t.Errorf("mem_total_all: %+v", mem)
			}
			if util := ruleNamed(t, specs.Rules, "cpu_util_host"); !reflect.DeepEqual(util.Combine, &utilCombiner{
				eventType: 0, keys: []string{"host"}, quantityType: "cpu.total_logical_cores", idleType: "cpu.idle_perc",
			}) || util.Rollup == nil || !reflect.DeepEqual(util.Rollup.GroupBy, []string{"host"}) {
				t.Errorf("cpu_util_host: %+v", util)
			}
			if rate := ruleNamed(t, specs.Rules, "swift_usage_rate"); !reflect.DeepEqual(rate.Combine, &rateCombiner{groupBy: []string{}}) || rate.Rollup != nil {
				t.Errorf("swift_usage_rate: %+v", rate)
			}

			ph := ruleNamed(t, specs.PreHourly, "storage_objects_size_all")
			wantGroupBy := append([]string{"usage_date", "usage_hour"}, defaultPreHourlyGroupBy...)
			if ph.MetricName != "storage_objects_size_all" || ph.Function.Name() != "sum" || !reflect.DeepEqual(ph.GroupBy, wantGroupBy) ||
				ph.Window != time.Hour || ph.Rollup != nil || ph.Combine != nil {
				t.Errorf("storage_objects_size_all pre-hourly: %+v", ph)
			}
			if rate := ruleNamed(t, specs.PreHourly, "swift_usage_rate"); rate.Function != (preHourlyRate{}) {
				t.Errorf("swift_usage_rate pre-hourly: %+v", rate)
			}
		})
	}
}

func TestLoadTransformSpecsConformanceNegativeCases(t *testing.T) {
	dir := filepath.Join(conformancedata.Dir(t), "specs", "cases")
	for _, tt := range []struct {
		pre, transform string
		want           string // "" for a spec that loads
	}{
		{"A/pre_transform_specs.jsonl", "A-negative/transform_specs_missing_field_to_filter.jsonl", "field to filter = ,"},
		{"A/pre_transform_specs.jsonl", "A-negative/transform_specs_missing_filter_expression.jsonl", "filter expression = ,"},
		{"A/pre_transform_specs.jsonl", "A-negative/transform_specs_missing_filter_operation.jsonl", "filter operation = ."},
		{"A/pre_transform_specs.jsonl", "A-negative/transform_specs_invalid_filter_operation.jsonl", "filter operation = invalid."},
		// The name is left to the output validator, which drops the
		// metrics as the original's insert step did.
		{"A/pre_transform_specs.jsonl", "A-negative/transform_specs_invalid_name.jsonl", ""},
		{"B/pre_transform_specs.jsonl", "B-negative/transform_specs_max.jsonl", "Operation max is not supported"},
		{"B/pre_transform_specs.jsonl", "B-negative/transform_specs_min.jsonl", "Operation min is not supported"},
		{"B/pre_transform_specs.jsonl", "B-negative/transform_specs_sum.jsonl", "Operation sum is not supported"},
	} {
		t.Run(tt.transform, func(t *testing.T) {
			transform := filepath.Join(dir, tt.transform)
			specs, _, err := LoadTransformSpecs(filepath.Join(dir, tt.pre), transform, TransformOptions{})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error:\n%v", err)
			case tt.want == "":
				return
			case err == nil || specs != nil:
				t.Fatalf("no error; want one containing %q", tt.want)
			}
			lines := errorLines(err)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], transform+`:1: specification 1 (`) || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("got\n%s\nwant one error on %s:1 containing %q", err, transform, tt.want)
			}
		})
	}
}

// Specs for tests, built from a valid base that each test edits.

const testPre = `{"event_type":"mem.total_mb","metric_id_list":["m1"],"required_raw_fields_list":["creation_time"],"event_processing_params":{"set_default_zone_to":"z","set_default_geolocation_to":"g","set_default_region_to":"r"}}`

// testTransform returns a valid transform spec line for metric_id m1, after
// edit has changed its top level and its aggregation_params_map. A nil
// value deletes a key.
func testTransform(t *testing.T, edit func(spec, params, pipeline map[string]any)) string {
	t.Helper()
	pipeline := map[string]any{
		"source": "streaming", "usage": "fetch_quantity",
		"setters": []string{"rollup_quantity", "set_aggregated_metric_name", "set_aggregated_period"},
		"insert":  []string{"prepare_data", "insert_data_pre_hourly"},
	}
	params := map[string]any{
		"aggregation_pipeline":        pipeline,
		"aggregated_metric_name":      "mem.total_mb_agg",
		"aggregation_period":          "hourly",
		"aggregation_group_by_list":   []string{"host", "metric_id"},
		"usage_fetch_operation":       "avg",
		"filter_by_list":              []any{},
		"setter_rollup_group_by_list": []string{"host"},
		"setter_rollup_operation":     "sum",
		"dimension_list":              []string{"aggregation_period", "host", "project_id"},
		"pre_hourly_operation":        "avg",
		"pre_hourly_group_by_list":    []string{"default"},
	}
	spec := map[string]any{"aggregation_params_map": params, "metric_group": "m1", "metric_id": "m1"}
	if edit != nil {
		edit(spec, params, pipeline)
	}
	for _, m := range []map[string]any{spec, params, pipeline} {
		for k, v := range m {
			if v == nil {
				delete(m, k)
			}
		}
	}
	line, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return string(line)
}

func TestParseTransformSpecsBothFormats(t *testing.T) {
	spec2 := strings.ReplaceAll(testTransform(t, nil), `"m1"`, `"m2"`)
	pre2 := strings.ReplaceAll(testPre, `"m1"`, `"m1","m2"`)
	lines, linesWarnings, err := ParseTransformSpecs(
		[]byte("\n"+pre2+"\r\n\n"), []byte(testTransform(t, nil)+"\n   \n"+spec2+"\n"), "pre.json", "transform.json", TransformOptions{})
	if err != nil || len(linesWarnings) > 0 {
		t.Fatalf("JSON lines: %v %v", err, linesWarnings)
	}
	// The same specs as a JSON array, indented over several lines.
	var indented []string
	for _, s := range []string{testTransform(t, nil), spec2} {
		var v any
		_ = json.Unmarshal([]byte(s), &v)
		b, _ := json.MarshalIndent(v, "  ", "  ")
		indented = append(indented, string(b))
	}
	array, arrayWarnings, err := ParseTransformSpecs(
		[]byte(" [ "+pre2+" ]"), []byte("\ufeff[\n  "+strings.Join(indented, ",\n  ")+"\n]\n"), "pre.json", "transform.json", TransformOptions{})
	if err != nil || len(arrayWarnings) > 0 {
		t.Fatalf("JSON array: %v %v", err, arrayWarnings)
	}
	if len(lines.Rules) != 2 || len(lines.PreHourly) != 2 || len(lines.PreTransform) != 1 {
		t.Fatalf("%+v", lines)
	}
	if !reflect.DeepEqual(lines, array) {
		t.Fatalf("the formats differ:\n%+v\n%+v", lines, array)
	}
	if want := (recordstore.Spec{EventType: "mem.total_mb", MetricIDs: []string{"m1", "m2"}, RequiredFields: []string{"creation_time"}, DefaultRegion: "r", DefaultZone: "z"}); !reflect.DeepEqual(lines.PreTransform[0], want) {
		t.Errorf("got %+v, want %+v", lines.PreTransform[0], want)
	}

	// Errors in an array name the line each specification starts on.
	bad := strings.Replace(indented[1], `"avg"`, `"median"`, 1)
	_, _, err = ParseTransformSpecs([]byte(testPre), []byte("[\n  "+indented[0]+",\n  "+bad+"\n]"), "pre.json", "transform.json", TransformOptions{})
	wantLine := 3 + strings.Count(indented[0], "\n")
	if err == nil || !strings.HasPrefix(err.Error(), "transform.json:"+strconv.Itoa(wantLine)+`: specification 2 ("m2"): aggregation_params_map.pre_hourly_operation: Operation median is not supported`) {
		t.Fatalf("got %v, want an error on line %d", err, wantLine)
	}
}

// lines joins spec lines into a JSON-lines file.
func lines(specs ...string) []byte { return []byte(strings.Join(specs, "\n") + "\n") }

func TestParseTransformSpecsErrors(t *testing.T) {
	set := func(kv ...any) func(spec, params, pipeline map[string]any) {
		return func(spec, params, pipeline map[string]any) {
			for i := 0; i < len(kv); i += 2 {
				key := kv[i].(string)
				switch {
				case strings.HasPrefix(key, "pipeline."):
					pipeline[strings.TrimPrefix(key, "pipeline.")] = kv[i+1]
				case strings.HasPrefix(key, "top."):
					spec[strings.TrimPrefix(key, "top.")] = kv[i+1]
				default:
					params[key] = kv[i+1]
				}
			}
		}
	}
	util := set("pipeline.usage", "fetch_quantity_util", "aggregation_group_by_list", []string{"event_type", "host"},
		"usage_fetch_util_quantity_event_type", "cpu.total_logical_cores", "usage_fetch_util_idle_perc_event_type", "cpu.idle_perc")
	filter := func(field, expr, op string) func(spec, params, pipeline map[string]any) {
		return set("filter_by_list", []map[string]string{{"field_to_filter": field, "filter_expression": expr, "filter_operation": op}})
	}
	const at = `transform.json:1: specification 1 ("m1"): aggregation_params_map.`
	tests := []struct {
		name      string
		pre       string // testPre when empty
		transform string // a test spec edited by edit when empty
		edit      func(spec, params, pipeline map[string]any)
		want      []string
	}{
		{name: "unsupported fetch operation", edit: set("usage_fetch_operation", "median"),
			want: []string{at + "usage_fetch_operation: Operation median is not supported; fetch_quantity supports sum, max, min, avg, latest, oldest"}},
		{name: "missing fetch operation", edit: set("usage_fetch_operation", nil),
			want: []string{at + "usage_fetch_operation: Operation None is not supported; fetch_quantity supports"}},
		{name: "unsupported util operation", edit: func(s, p, pl map[string]any) { util(s, p, pl); p["usage_fetch_operation"] = "max" },
			want: []string{at + "usage_fetch_operation: Operation max is not supported; fetch_quantity_util supports avg, latest, oldest"}},
		{name: "util without event types and event_type grouping", edit: set("pipeline.usage", "fetch_quantity_util"),
			want: []string{
				at + "usage_fetch_util_quantity_event_type: missing; fetch_quantity_util needs the event type of the total quantity",
				at + "usage_fetch_util_idle_perc_event_type: missing; fetch_quantity_util needs the event type of the idle percentage",
				at + `aggregation_group_by_list: must include "event_type" for fetch_quantity_util`,
			}},
		{name: "util with one event type for both", edit: func(s, p, pl map[string]any) {
			util(s, p, pl)
			p["usage_fetch_util_idle_perc_event_type"] = "cpu.total_logical_cores"
		},
			want: []string{at + "usage_fetch_util_idle_perc_event_type: is the same as usage_fetch_util_quantity_event_type"}},
		{name: "unsupported rollup operation", edit: set("setter_rollup_operation", "median"),
			want: []string{at + "setter_rollup_operation: Operation median is not supported; rollup_quantity supports sum, max, min, avg"}},
		{name: "missing rollup operation", edit: set("setter_rollup_operation", nil),
			want: []string{at + "setter_rollup_operation: Operation None is not supported"}},
		{name: "unknown components", edit: set("pipeline.usage", "fetch_everything", "pipeline.setters", []string{"rollup_quantity", "round"}, "pipeline.insert", []string{"insert_data", "print"}),
			want: []string{
				at + `aggregation_pipeline.usage: unknown usage component "fetch_everything"; known: ` + strings.Join(usages.Names(), ", "),
				at + `aggregation_pipeline.setters: unknown setter component "round"; known: rollup_quantity, set_aggregated_metric_name, set_aggregated_period`,
				at + `aggregation_pipeline.insert: unknown insert component "print"; known: prepare_data, insert_data, insert_data_pre_hourly`,
			}},
		{name: "missing usage and pipeline", edit: set("pipeline.usage", nil),
			want: []string{at + "aggregation_pipeline.usage: missing; one of: "}},
		{name: "missing pipeline", edit: set("aggregation_pipeline", nil),
			want: []string{at + "aggregation_pipeline: missing", at + "aggregation_pipeline.usage: missing"}},
		{name: "filter without field", edit: filter("", "-mgmt$", "exclude"),
			want: []string{at + "filter_by_list[0]: Encountered invalid filter details: field to filter = , filter expression = -mgmt$, filter operation = exclude.  All values must be supplied and filter operation must be either 'include' or 'exclude'."}},
		{name: "filter entry lacking a key", edit: set("filter_by_list", []map[string]string{{"field_to_filter": "host", "filter_expression": "x"}}),
			want: []string{at + "filter_by_list[0]: Encountered invalid filter details: field to filter = host, filter expression = x, filter operation = .  All values"}},
		{name: "filter with a bad regular expression", edit: filter("host", "comp(0", "include"),
			want: []string{at + "filter_by_list[0].filter_expression: invalid regular expression (Go syntax, without backreferences or lookaround): error parsing regexp: missing closing ): `comp(0`"}},
		{name: "filter on a field records lack", edit: filter("hostname", "x", "include"),
			want: []string{at + `filter_by_list[0].field_to_filter: "hostname" is not a record field; use one of event_type, metric_id, tenant_id, user_id, resource_uuid, region, zone, host, or dimensions#<key>, meta#<key> or value_meta#<key>`}},
		{name: "filter list of strings", edit: set("filter_by_list", []string{"host"}),
			want: []string{at + "filter_by_list[0]: must be an object, not a string"}},
		{name: "unknown aggregation period", edit: set("aggregation_period", "weekly"),
			want: []string{at + `aggregation_period: must be one of daily, hourly, minutely, secondly, not "weekly"`}},
		{name: "missing aggregation period", edit: set("aggregation_period", nil),
			want: []string{at + `aggregation_period: must be one of daily, hourly, minutely, secondly, not missing`}},
		{name: "bad group lists", edit: set("aggregation_group_by_list", []string{"host", "hostname", "", "dimensions#", "host"}, "setter_rollup_group_by_list", []string{"host", "host"}),
			want: []string{
				at + `aggregation_group_by_list: "hostname" is not a record field; use one of`,
				at + `aggregation_group_by_list: entry 2 ("") names no field`,
				at + `aggregation_group_by_list: entry 3 ("dimensions#") names no field`,
				at + `aggregation_group_by_list: "host" is listed twice`,
				at + `setter_rollup_group_by_list: "host" is listed twice`,
			}},
		{name: "missing fields", edit: set("aggregation_group_by_list", nil, "dimension_list", nil, "aggregated_metric_name", nil, "top.metric_id", nil),
			want: []string{
				`transform.json:1: specification 1: metric_id: missing`,
				`transform.json:1: specification 1: aggregation_params_map.aggregation_group_by_list: missing`,
				`transform.json:1: specification 1: aggregation_params_map.dimension_list: missing`,
				`transform.json:1: specification 1: aggregation_params_map.aggregated_metric_name: missing`,
			}},
		{name: "missing parameters", edit: set("top.aggregation_params_map", nil),
			want: []string{at[:len(at)-1] + ": missing"}},
		{name: "wrong field types", edit: set("aggregation_group_by_list", "host", "pipeline.setters", []any{1}, "aggregated_metric_name", true),
			want: []string{
				at + "aggregation_pipeline.setters: entry 0 must be a string, not a number",
				at + "aggregated_metric_name: must be a string, not a boolean",
				at + "aggregation_group_by_list: must be a list of strings, not a string",
				at + "aggregated_metric_name: missing",
			}},
		{name: "unsupported pre-hourly operation", edit: set("pre_hourly_operation", "median"),
			want: []string{at + "pre_hourly_operation: Operation median is not supported; the pre-hourly processor supports sum, max, min, avg, rate"}},
		{name: "pre-hourly rate without calculate_rate", edit: set("pre_hourly_operation", "rate"),
			want: []string{at + `pre_hourly_operation: rate needs the oldest and latest quantities that only calculate_rate writes into its rows, not "fetch_quantity"`}},
		{name: "pre-hourly rows without operation", edit: set("pre_hourly_operation", nil),
			want: []string{at + "pre_hourly_operation: missing; insert_data_pre_hourly sends the rows to the pre-hourly processor"}},
		{name: "pre-hourly group list", edit: set("pre_hourly_group_by_list", []string{"default", "host"}),
			want: []string{at + `pre_hourly_group_by_list: "default" stands for the whole list`}},
		{name: "missing pre-hourly group list", edit: set("pre_hourly_group_by_list", nil),
			want: []string{at + `pre_hourly_group_by_list: missing; it is needed with pre_hourly_operation`}},
		{name: "duplicate metric_id", transform: string(lines(testTransform(t, nil), testTransform(t, nil))),
			want: []string{`transform.json:2: specification 2 ("m1"): metric_id: specification 1 ("m1") has the same metric_id`}},
		{name: "invalid JSON lines", transform: string(lines(testTransform(t, nil), `{"metric_id": "m2",`, `"m3"`, `[]`)),
			want: []string{
				"transform.json:2: invalid JSON: unexpected end of JSON input (each line must hold one whole specification",
				"transform.json:3: a specification must be a JSON object, not a string",
				"transform.json:4: a specification must be a JSON object, not a list",
			}},
		{name: "invalid JSON array", transform: "[\n" + testTransform(t, nil) + ",\n  {\"metric_id\": }\n]",
			want: []string{`transform.json:3: invalid JSON: invalid character '}' looking for beginning of value`}},
		{name: "data after the array", transform: "[" + testTransform(t, nil) + "]\n[]",
			want: []string{"transform.json:2: invalid JSON: unexpected data after the array of specifications"}},
		{name: "empty transform file", transform: "\n \n",
			want: []string{"transform.json: no transform specifications"}},
		{name: "pre-transform errors",
			pre: string(lines(
				`{"metric_id_list":[],"required_raw_fields_list":["creation_time"]}`,
				`{"event_type":"mem.total_mb","metric_id_list":["m1","m1",""],"required_raw_fields_list":["dimensions#",""]}`,
				`{"event_type":"mem.total_mb","metric_id_list":["m1"]}`,
				`{"event_type":"x","metric_id_list":"m1","required_raw_fields_list":[],"event_processing_params":[]}`,
			)),
			want: []string{
				`pre.json:1: specification 1: event_type: missing; it names the metrics this specification takes`,
				`pre.json:2: specification 2 ("mem.total_mb"): metric_id_list: "m1" is listed twice, which would count its metrics twice`,
				`pre.json:2: specification 2 ("mem.total_mb"): metric_id_list: entry 2 is empty`,
				`pre.json:2: specification 2 ("mem.total_mb"): required_raw_fields_list: entry 0 ("dimensions#") is not a field the record store can check`,
				`pre.json:2: specification 2 ("mem.total_mb"): required_raw_fields_list: entry 1 ("") is not a field the record store can check`,
				`pre.json:3: specification 3 ("mem.total_mb"): required_raw_fields_list: missing`,
				`pre.json:3: specification 3 ("mem.total_mb"): event_type: specification 2 ("mem.total_mb") has the same event_type`,
				`pre.json:4: specification 4 ("x"): metric_id_list: must be a list of strings, not a string`,
				`pre.json:4: specification 4 ("x"): event_processing_params: must be an object, not a list`,
			}},
		{name: "empty pre-transform file", pre: " ",
			want: []string{"pre.json: no pre-transform specifications"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre, transform := tt.pre, tt.transform
			if pre == "" {
				pre = testPre
			}
			if transform == "" {
				transform = testTransform(t, tt.edit)
			}
			specs, _, err := ParseTransformSpecs([]byte(pre), []byte(transform), "pre.json", "transform.json", TransformOptions{})
			if err == nil || specs != nil {
				t.Fatalf("no error; want:\n%s", strings.Join(tt.want, "\n"))
			}
			assertContainsInOrder(t, "errors", errorLines(err), tt.want)
		})
	}
}

func TestParseTransformSpecsWarnings(t *testing.T) {
	tests := []struct {
		name           string
		pre, transform string
		want           []string
		rules          int // stage-1 rules compiled
	}{
		{
			name: "unknown keys",
			pre:  `{"event_type":"mem.total_mb","metric_id_list":["m1"],"required_raw_fields_list":[],"service_id":"x","event_processing_params":{"set_default_zone":"1"}}`,
			transform: testTransform(t, func(spec, params, pipeline map[string]any) {
				spec["metric_grp"] = "x"
				params["dimensions_list"] = []string{}
				pipeline["setter"] = []string{}
				params["filter_by_list"] = []map[string]string{{"field_to_filter": "host", "filter_expression": "x", "filter_operation": "include", "filter_op": "x"}}
			}),
			want: []string{
				`pre.json:1: specification 1 ("mem.total_mb"): unknown key "service_id" is ignored`,
				`pre.json:1: specification 1 ("mem.total_mb"): event_processing_params: unknown key "set_default_zone" is ignored; did you mean "set_default_zone_to"?`,
				`transform.json:1: specification 1 ("m1"): unknown key "metric_grp" is ignored; did you mean "metric_group"?`,
				`transform.json:1: specification 1 ("m1"): aggregation_params_map: unknown key "dimensions_list" is ignored; did you mean "dimension_list"?`,
				`transform.json:1: specification 1 ("m1"): aggregation_params_map.aggregation_pipeline: unknown key "setter" is ignored; did you mean "setters"?`,
				`transform.json:1: specification 1 ("m1"): aggregation_params_map.filter_by_list[0]: unknown key "filter_op" is ignored`,
			},
			rules: 1,
		},
		{
			name:      "metric ids in one file only",
			pre:       string(lines(`{"event_type":"a","metric_id_list":["m1","m9"],"required_raw_fields_list":[]}`, `{"event_type":"b","metric_id_list":[],"required_raw_fields_list":[]}`)),
			transform: string(lines(testTransform(t, nil), strings.ReplaceAll(testTransform(t, nil), `"m1"`, `"m2"`))),
			want: []string{
				`pre.json:2: specification 2 ("b"): metric_id_list: empty: the metrics feed no transform specification`,
				`pre.json:1: specification 1 ("a"): metric_id_list: no transform specification has metric_id "m9", so those records are dropped`,
				`transform.json:2: specification 2 ("m2"): metric_id: no pre-transform specification lists "m2" in its metric_id_list, so no records reach this specification`,
			},
			rules: 2,
		},
		{
			name: "util event types not fed",
			pre:  testPre,
			transform: testTransform(t, func(_, params, pipeline map[string]any) {
				pipeline["usage"] = "fetch_quantity_util"
				params["aggregation_group_by_list"] = []string{"event_type", "host"}
				params["usage_fetch_util_quantity_event_type"] = "mem.total_mb"
				params["usage_fetch_util_idle_perc_event_type"] = "cpu.idle_perc"
			}),
			want:  []string{`transform.json:1: specification 1 ("m1"): metric_id: no pre-transform specification of event_type "cpu.idle_perc" lists "m1", so fetch_quantity_util gets none of those records`},
			rules: 1,
		},
		{
			name: "no output",
			pre:  testPre,
			transform: testTransform(t, func(_, params, pipeline map[string]any) {
				pipeline["insert"] = []string{"prepare_data"}
			}),
			want: []string{`transform.json:1: specification 1 ("m1"): aggregation_params_map.aggregation_pipeline.insert: lists neither insert_data nor insert_data_pre_hourly, so the original wrote nothing for this specification; it is not compiled`},
		},
		{
			name: "setters",
			pre:  testPre,
			transform: testTransform(t, func(_, params, pipeline map[string]any) {
				pipeline["setters"] = []string{"set_aggregated_metric_name", "rollup_quantity", "rollup_quantity"}
			}),
			want: []string{
				`transform.json:1: specification 1 ("m1"): aggregation_params_map.aggregation_pipeline.setters: "rollup_quantity" is listed twice; it is applied once`,
				`transform.json:1: specification 1 ("m1"): aggregation_params_map.aggregated_metric_name: is not applied, as no set_aggregated_metric_name follows the last rollup_quantity among the setters, so the outputs are named "all", as the original named them`,
			},
			rules: 1,
		},
		{
			name: "no setters",
			pre:  testPre,
			transform: testTransform(t, func(_, _, pipeline map[string]any) {
				pipeline["setters"] = []string{}
			}),
			want:  []string{`transform.json:1: specification 1 ("m1"): aggregation_params_map.aggregated_metric_name: is not applied, as set_aggregated_metric_name is not among the setters, so the outputs are named "NA", as the original named them`},
			rules: 1,
		},
		{
			name: "calculate_rate",
			pre:  testPre,
			transform: testTransform(t, func(_, params, pipeline map[string]any) {
				pipeline["usage"] = "calculate_rate"
				pipeline["setters"] = []string{"set_aggregated_period"}
				params["setter_rollup_group_by_list"] = []string{"dimensions#mount"}
				params["pre_hourly_group_by_list"] = []string{"host"}
			}),
			want: []string{
				`transform.json:1: specification 1 ("m1"): aggregation_params_map.usage_fetch_operation: is ignored: calculate_rate does not read it`,
				`transform.json:1: specification 1 ("m1"): aggregation_params_map.setter_rollup_group_by_list: "dimensions#mount" is not in aggregation_group_by_list, so every row rolls up under "NA"`,
				`transform.json:1: specification 1 ("m1"): aggregation_params_map.pre_hourly_group_by_list: does not include aggregated_metric_name, so the pre-hourly outputs are named "all", as the original named them`,
			},
			rules: 1,
		},
		{
			name: "one dimension twice",
			pre:  testPre,
			transform: testTransform(t, func(_, params, _ map[string]any) {
				params["dimension_list"] = []string{"host", "dimensions#host"}
			}),
			want:  []string{`transform.json:1: specification 1 ("m1"): aggregation_params_map.dimension_list: "host" and "dimensions#host" both name the dimension "host"; the later one wins`},
			rules: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, warnings, err := ParseTransformSpecs([]byte(tt.pre), []byte(tt.transform), "pre.json", "transform.json", TransformOptions{})
			if err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
			assertContainsInOrder(t, "warnings", warnings, tt.want)
			if len(specs.Rules) != tt.rules {
				t.Errorf("got %d rules, want %d", len(specs.Rules), tt.rules)
			}
		})
	}
}

func TestLoadTransformSpecsMissingFiles(t *testing.T) {
	_, _, err := LoadTransformSpecs("no-such-pre.json", "no-such-transform.json", TransformOptions{})
	if err == nil || !strings.Contains(err.Error(), "no-such-pre.json") || !strings.Contains(err.Error(), "no-such-transform.json") {
		t.Fatalf("got %v, want errors naming both files", err)
	}
}

// constantUsage is a usage component defined outside the built-in ones.
type constantUsage struct{}

func (constantUsage) Name() string                              { return "constant" }
func (constantUsage) Result(s *windowagg.State) (float64, bool) { return 42, s.Count > 0 }

func TestRegisterUsage(t *testing.T) {
	RegisterUsage("fetch_constant", UsageComponent{
		Operations: []string{"constant"},
		Compile: func(spec *TransformSpec, _ TransformOptions) (UsagePlan, error) {
			if spec.MetricID == "bad" {
				return UsagePlan{}, errors.Join(&FieldError{Field: "dimension_list", Err: errors.New("no dimensions for constants")}, errors.New("does not like this spec"))
			}
			return UsagePlan{Function: constantUsage{}}, nil
		},
	})
	spec := testTransform(t, func(_, params, pipeline map[string]any) {
		pipeline["usage"] = "fetch_constant"
		params["usage_fetch_operation"] = "constant"
	})
	specs, _, err := ParseTransformSpecs([]byte(testPre), []byte(spec), "pre.json", "transform.json", TransformOptions{})
	if err != nil || specs.Rules[0].Function != (constantUsage{}) {
		t.Fatalf("%v %+v", err, specs)
	}
	_, _, err = ParseTransformSpecs([]byte(testPre), []byte(strings.ReplaceAll(spec, `"m1"`, `"bad"`)), "pre.json", "transform.json", TransformOptions{})
	assertContainsInOrder(t, "errors", errorLines(err), []string{
		`transform.json:1: specification 1 ("bad"): aggregation_params_map.dimension_list: no dimensions for constants`,
		`transform.json:1: specification 1 ("bad"): aggregation_params_map.aggregation_pipeline.usage: fetch_constant: does not like this spec`,
	})

	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	RegisterUsage("fetch_quantity", UsageComponent{Compile: compileFetchQuantity})
}
