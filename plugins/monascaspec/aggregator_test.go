package monascaspec

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// ruleView is a windowagg.Rule with functions replaced by their names, so
// that rules compare with reflect.DeepEqual and print readably.
type ruleView struct {
	Name             string
	MetricName       string
	Require          []monasca.Dimension
	Reject           []monasca.Dimension
	GroupBy          []string
	Function         string
	RollupFunction   string
	RollupGroupBy    []string
	OutputName       string
	OutputDimensions []monasca.Dimension
	Window           time.Duration
}

func view(r windowagg.Rule) ruleView {
	v := ruleView{
		Name: r.Name, MetricName: r.MetricName, Require: r.Require, Reject: r.Reject,
		GroupBy: r.GroupBy, OutputName: r.OutputName, OutputDimensions: r.OutputDimensions,
		Window: r.Window,
	}
	if r.Function != nil {
		v.Function = r.Function.Name()
	}
	if r.Rollup != nil {
		v.RollupFunction = r.Rollup.Function.Name()
		v.RollupGroupBy = r.Rollup.GroupBy
	}
	return v
}

func views(rules []windowagg.Rule) []ruleView {
	var vs []ruleView
	for _, r := range rules {
		vs = append(vs, view(r))
	}
	return vs
}

// dims builds dimensions from key, value, key, value, ...
func dims(kv ...string) []monasca.Dimension {
	var ds []monasca.Dimension
	for i := 0; i < len(kv); i += 2 {
		ds = append(ds, monasca.Dimension{Key: kv[i], Value: kv[i+1]})
	}
	return ds
}

func mustParse(t *testing.T, yaml string) ([]windowagg.Rule, []string) {
	t.Helper()
	rules, warnings, err := ParseAggregationSpecs([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			t.Errorf("returned rule does not validate: %v", err)
		}
	}
	return rules, warnings
}

func TestLoadAggregationSpecsShippedExample(t *testing.T) {
	rules, warnings, err := LoadAggregationSpecs("../../pipelines/aggregation-specifications.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	want := []ruleView{
		{Name: "Aggregation0", MetricName: "metric0", Function: "count", OutputName: "aggregated-metric0"},
		{
			Name: "Aggregation1", MetricName: "metric1", Require: dims("hostname", "test-01"),
			Function: "sum", OutputName: "aggregated-metric1", OutputDimensions: dims("hostname", "test-01"),
		},
		{
			Name: "Aggregation2", MetricName: "metric2", GroupBy: []string{"hostname", "service"},
			Function: "avg", OutputName: "aggregated-metric2",
		},
		{
			Name: "Aggregation3", MetricName: "metric3", GroupBy: []string{"hostname", "service"},
			Function: "avg", RollupFunction: "sum", RollupGroupBy: []string{"service"},
			OutputName: "aggregated-metric3",
		},
		{
			Name: "Aggregation4", MetricName: "metric4", Require: dims("cluster", "test-cluster-01"),
			Reject:  dims("device", "", "hostname", "inactive-host"),
			GroupBy: []string{"hostname"}, Function: "count", OutputName: "aggregated-metric4",
			OutputDimensions: dims("cluster", "test-cluster-01"),
		},
		{
			Name: "Response time spread", MetricName: "http.response_time", GroupBy: []string{"service"},
			Function: "stddev", OutputName: "http.response_time.stddev",
		},
		{
			Name: "Response time p95", MetricName: "http.response_time", GroupBy: []string{"service"},
			Function: "p95", OutputName: "http.response_time.p95",
		},
		{
			Name: "MemoryUtilisation", GroupBy: []string{"hostname", windowagg.InputKey},
			Function: "count", OutputName: "mem.utilization_perc",
		},
		{
			Name: "Network bytes in per project", MetricName: "vm.net.in_bytes", GroupBy: []string{"project_id"},
			Function: "increase", OutputName: "vm.net.in_bytes.increase",
		},
		{
			Name: "Running time per project", MetricName: "vm.state", GroupBy: []string{"project_id"},
			Function: "time_in_state", OutputName: "vm.running_seconds",
		},
	}
	if got := views(rules); !reflect.DeepEqual(got, want) {
		t.Errorf("rules:\n got %+v\nwant %+v", got, want)
	}
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
	}
	// Require and OutputDimensions must not share storage: the engine may
	// extend the output dimensions.
	if &rules[1].Require[0] == &rules[1].OutputDimensions[0] {
		t.Error("Require and OutputDimensions share their backing array")
	}
}

func TestLoadAggregationSpecsMissingFile(t *testing.T) {
	_, _, err := LoadAggregationSpecs("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml") {
		t.Errorf("got %v, want an error naming the path", err)
	}
}

func TestParseAggregationSpecsCaseInsensitiveKeys(t *testing.T) {
	want := ruleView{
		Name: "cpu", MetricName: "cpu.idle_perc", Require: dims("region", "r1"),
		Reject: dims("hostname", "down"), GroupBy: []string{"hostname", "service"},
		Function: "max", RollupFunction: "sum", RollupGroupBy: []string{"service"},
		OutputName: "cpu.idle_agg", OutputDimensions: dims("region", "r1"),
	}
	tests := map[string]string{
		"documented spelling": `
aggregationSpecifications:
  - name: cpu
    aggregatedMetricName: cpu.idle_agg
    filteredMetricName: cpu.idle_perc
    filteredDimensions: {region: r1}
    rejectedDimensions: {hostname: down}
    groupedDimensions: [hostname, service]
    function: max
    rollup: {function: sum, groupedDimensions: [service]}
`,
		"lower case, as viper stores keys": `
aggregationspecifications:
  - name: cpu
    aggregatedmetricname: cpu.idle_agg
    filteredmetricname: cpu.idle_perc
    filtereddimensions: {region: r1}
    rejecteddimensions: {hostname: down}
    groupeddimensions: [hostname, service]
    function: max
    rollup: {function: sum, groupeddimensions: [service]}
`,
		"upper and mixed case at every level": `
AggregationSpecifications:
  - NAME: cpu
    AggregatedMetricName: cpu.idle_agg
    FILTEREDMETRICNAME: cpu.idle_perc
    FilteredDimensions: {region: r1}
    REJECTEDdimensions: {hostname: down}
    GroupedDimensions: [hostname, service]
    Function: max
    ROLLUP: {FUNCTION: sum, GroupedDimensions: [service]}
`,
		"function names are case-insensitive too": `
aggregationSpecifications:
  - name: cpu
    aggregatedMetricName: cpu.idle_agg
    filteredMetricName: cpu.idle_perc
    filteredDimensions: {region: r1}
    rejectedDimensions: {hostname: down}
    groupedDimensions: [hostname, service]
    function: MAX
    rollup: {function: Sum, groupedDimensions: [service]}
`,
	}
	for name, yaml := range tests {
		t.Run(name, func(t *testing.T) {
			rules, warnings := mustParse(t, yaml)
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			if got := views(rules); !reflect.DeepEqual(got, []ruleView{want}) {
				t.Errorf("\n got %+v\nwant %+v", got, []ruleView{want})
			}
		})
	}
}

func TestParseAggregationSpecsDimensionNamesKeepTheirCase(t *testing.T) {
	rules, _ := mustParse(t, `
aggregationSpecifications:
  - aggregatedMetricName: out
    filteredMetricName: in
    filteredDimensions: {HostName: a, hostname: b}
    groupedDimensions: [Service, service]
    function: sum
`)
	got := view(rules[0])
	if want := dims("HostName", "a", "hostname", "b"); !reflect.DeepEqual(got.Require, want) {
		t.Errorf("Require = %v, want %v", got.Require, want)
	}
	if want := []string{"Service", "service"}; !reflect.DeepEqual(got.GroupBy, want) {
		t.Errorf("GroupBy = %v, want %v", got.GroupBy, want)
	}
}

func TestParseAggregationSpecsWeakTyping(t *testing.T) {
	// spec is the body of one specification; check inspects the rule.
	tests := []struct {
		name     string
		spec     string
		check    func(ruleView) bool
		warnings []string // each must be contained in one warning, in order
	}{
		{
			name: "integer dimension value and metric name",
			spec: "filteredMetricName: 42\nfilteredDimensions: {port: 8080}",
			check: func(v ruleView) bool {
				return v.MetricName == "42" && reflect.DeepEqual(v.Require, dims("port", "8080"))
			},
		},
		{
			name:  "float kept as written, with a warning about the original's reading",
			spec:  "filteredMetricName: m\nfilteredDimensions: {version: 1.0}",
			check: func(v ruleView) bool { return reflect.DeepEqual(v.Require, dims("version", "1.0")) },
			warnings: []string{
				`test.yaml:6: specification 1 ("s"): filteredDimensions.version: the unquoted value 1.0 is read as the string "1.0", but monasca-aggregator read it as "1"; quote it to make the intent explicit`,
			},
		},
		{
			name: "YAML 1.1 and 1.2 booleans kept as written",
			spec: "filteredMetricName: m\nfilteredDimensions: {enabled: true}\nrejectedDimensions: {debug: yes, trace: off}",
			check: func(v ruleView) bool {
				return v.Require[0].Value == "true" && v.Reject[0].Value == "yes" && v.Reject[1].Value == "off"
			},
			warnings: []string{
				`filteredDimensions.enabled: the unquoted value true is read as the string "true", but monasca-aggregator read it as "1"`,
				`rejectedDimensions.debug: the unquoted value yes is read as the string "yes", but monasca-aggregator read it as "1"`,
				`rejectedDimensions.trace: the unquoted value off is read as the string "off", but monasca-aggregator read it as "0"`,
			},
		},
		{
			name: "octal-looking and hex numbers",
			spec: "filteredMetricName: m\nfilteredDimensions: {a: 010, b: 0x1F, c: 1_000}",
			check: func(v ruleView) bool {
				return reflect.DeepEqual(v.Require, dims("a", "010", "b", "0x1F", "c", "1_000"))
			},
			warnings: []string{
				`filteredDimensions.a: the unquoted value 010 is read as the string "010", but monasca-aggregator read it as "8"`,
				`filteredDimensions.b: the unquoted value 0x1F is read as the string "0x1F", but monasca-aggregator read it as "31"`,
				`filteredDimensions.c: the unquoted value 1_000 is read as the string "1_000", but monasca-aggregator read it as "1000"`,
			},
		},
		{
			name: "quoted values are strings without a warning",
			spec: "filteredMetricName: '1.0'\nfilteredDimensions: {version: \"1.0\", enabled: 'true'}",
			check: func(v ruleView) bool {
				return v.MetricName == "1.0" && reflect.DeepEqual(v.Require, dims("enabled", "true", "version", "1.0"))
			},
		},
		{
			name:  "numeric dimension name",
			spec:  "filteredMetricName: m\nfilteredDimensions: {1: x}",
			check: func(v ruleView) bool { return reflect.DeepEqual(v.Require, dims("1", "x")) },
		},
		{
			name:  "null rejected value rejects any value, like an empty string",
			spec:  "filteredMetricName: m\nrejectedDimensions: {a: , b: ~, c: null, d: ''}",
			check: func(v ruleView) bool { return reflect.DeepEqual(v.Reject, dims("a", "", "b", "", "c", "", "d", "")) },
		},
		{
			name:  "groupedDimensions as one string",
			spec:  "filteredMetricName: m\ngroupedDimensions: hostname",
			check: func(v ruleView) bool { return reflect.DeepEqual(v.GroupBy, []string{"hostname"}) },
		},
		{
			name: "groupedDimensions as a comma-separated string",
			spec: "filteredMetricName: m\ngroupedDimensions: hostname, service\nrollup: {function: sum, groupedDimensions: service}",
			check: func(v ruleView) bool {
				return reflect.DeepEqual(v.GroupBy, []string{"hostname", "service"}) && reflect.DeepEqual(v.RollupGroupBy, []string{"service"})
			},
		},
		{
			name:  "groupedDimensions as a number",
			spec:  "filteredMetricName: m\ngroupedDimensions: 5",
			check: func(v ruleView) bool { return reflect.DeepEqual(v.GroupBy, []string{"5"}) },
		},
		{
			name: "empty and null collections stand for absent ones",
			spec: "filteredMetricName: m\nfilteredDimensions: []\nrejectedDimensions: ~\ngroupedDimensions: {}\nrollup: {}",
			check: func(v ruleView) bool {
				return v.Require == nil && v.Reject == nil && v.GroupBy == nil && v.RollupFunction == "" && v.OutputDimensions == nil
			},
		},
		{
			name:  "an empty string of groupedDimensions is no grouping, as viper split it",
			spec:  "filteredMetricName: m\ngroupedDimensions: ''\nrollup: ~",
			check: func(v ruleView) bool { return v.GroupBy == nil && v.RollupFunction == "" },
		},
		{
			name:  "rollup without groupedDimensions gives one series per tenant",
			spec:  "filteredMetricName: m\ngroupedDimensions: [a]\nrollup: {function: avg}",
			check: func(v ruleView) bool { return v.RollupFunction == "avg" && v.RollupGroupBy == nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "aggregationSpecifications:\n  - name: s\n    aggregatedMetricName: out\n    function: sum\n    " +
				strings.ReplaceAll(tt.spec, "\n", "\n    ") + "\n"
			rules, warnings := mustParse(t, yaml)
			if len(rules) != 1 || !tt.check(view(rules[0])) {
				t.Errorf("unexpected rules %+v", views(rules))
			}
			assertContainsInOrder(t, "warnings", warnings, tt.warnings)
		})
	}
}

// assertContainsInOrder checks that got has one entry per want, each
// containing the corresponding want.
func assertContainsInOrder(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d, want %d:\n%s", what, len(got), len(want), strings.Join(got, "\n"))
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d]:\n got %s\nwant it to contain %s", what, i, got[i], want[i])
		}
	}
}

// errorLines splits a joined error into its messages.
func errorLines(err error) []string {
	var lines []string
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			lines = append(lines, e.Error())
		}
		return lines
	}
	return []string{err.Error()}
}

func TestParseAggregationSpecsErrors(t *testing.T) {
	known := strings.Join(windowagg.FunctionNames(), ", ")
	tests := []struct {
		name string
		yaml string
		want []string // the exact messages, in order
	}{
		{
			name: "missing aggregatedMetricName",
			yaml: `
aggregationSpecifications:
  - name: a
    filteredMetricName: in
    function: sum
`,
			want: []string{`test.yaml:3: specification 1 ("a"): aggregatedMetricName: must have an aggregated metric name`},
		},
		{
			name: "missing filteredMetricName and function in an unnamed specification",
			yaml: `
aggregationSpecifications:
  - aggregatedMetricName: out
`,
			want: []string{
				`test.yaml:3: specification 1: filteredMetricName: must have a filtered metric name`,
				`test.yaml:3: specification 1: function: must have a function`,
			},
		},
		{
			name: "empty values count as missing and point at the value",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: ""
    filteredMetricName: ~
    function: ''
`,
			want: []string{
				`test.yaml:4: specification 1 ("a"): aggregatedMetricName: must have an aggregated metric name`,
				`test.yaml:5: specification 1 ("a"): filteredMetricName: must have a filtered metric name`,
				`test.yaml:6: specification 1 ("a"): function: must have a function`,
			},
		},
		{
			name: "an empty list item misses everything",
			yaml: "aggregationSpecifications:\n  -\n",
			want: []string{
				`test.yaml:2: specification 1: aggregatedMetricName: must have an aggregated metric name`,
				`test.yaml:2: specification 1: filteredMetricName: must have a filtered metric name`,
				`test.yaml:2: specification 1: function: must have a function`,
			},
		},
		{
			name: "unknown function",
			yaml: `
aggregationSpecifications:
  - {name: a, aggregatedMetricName: o, filteredMetricName: i, function: summ}
`,
			want: []string{`test.yaml:3: specification 1 ("a"): function: unknown function "summ"; known functions: ` + known},
		},
		{
			name: "unknown rollup function",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    groupedDimensions: [h]
    rollup:
      function: median
`,
			want: []string{`test.yaml:9: specification 1 ("a"): rollup.function: unknown function "median"; known functions: ` + known},
		},
		{
			name: "time_in_state without, or with a bad, stateValue; stateValue elsewhere; increase in a rollup",
			yaml: `
aggregationSpecifications:
  - {name: a, aggregatedMetricName: o, filteredMetricName: i, function: time_in_state}
  - {name: b, aggregatedMetricName: o, filteredMetricName: i, function: Time_In_State, stateValue: running}
  - {name: c, aggregatedMetricName: o, filteredMetricName: i, function: sum, stateValue: 1}
  - {name: d, aggregatedMetricName: o, filteredMetricName: i, function: sum, groupedDimensions: [h], rollup: {function: increase}}
`,
			want: []string{
				`test.yaml:3: specification 1 ("a"): stateValue: must be the value whose time time_in_state measures`,
				`test.yaml:4: specification 2 ("b"): stateValue: must be a finite number, not "running"`,
				`test.yaml:5: specification 3 ("c"): stateValue: is read only with function time_in_state`,
				`test.yaml:6: specification 4 ("d"): rule "d": rollup function increase needs input series, which the group values are not`,
			},
		},
		{
			name: "rollup groups by a dimension that is not grouped",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    groupedDimensions: [hostname, service]
    rollup:
      function: sum
      groupedDimensions: [service, region, zone]
`,
			want: []string{`test.yaml:10: specification 1 ("a"): rollup.groupedDimensions: must have all rollup.groupedDimensions also in groupedDimensions; missing from groupedDimensions: "region", "zone"`},
		},
		{
			name: "rollup groups but nothing is grouped (the original's own test)",
			yaml: `
aggregationSpecifications:
  - {name: Aggregation, aggregatedMetricName: o, filteredMetricName: i, function: count, rollup: {function: sum, groupedDimensions: [service]}}
`,
			want: []string{`test.yaml:3: specification 1 ("Aggregation"): rollup.groupedDimensions: must have all rollup.groupedDimensions also in groupedDimensions; missing from groupedDimensions: "service"`},
		},
		{
			name: "rollup.groupedDimensions without rollup.function",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    groupedDimensions: [service]
    rollup:
      groupedDimensions: [service]
`,
			want: []string{`test.yaml:9: specification 1 ("a"): rollup.function: must be set when rollup.groupedDimensions is given`},
		},
		{
			name: "empty dimension names",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    filteredDimensions: {"": x}
    rejectedDimensions: {~: x}
    groupedDimensions: [h, ""]
    rollup: {function: sum, groupedDimensions: "h,"}
`,
			want: []string{
				`test.yaml:7: specification 1 ("a"): filteredDimensions: a dimension name is empty`,
				`test.yaml:8: specification 1 ("a"): rejectedDimensions: a dimension name is empty`,
				`test.yaml:9: specification 1 ("a"): groupedDimensions: a dimension name is empty`,
				`test.yaml:10: specification 1 ("a"): rollup.groupedDimensions: a dimension name is empty`,
			},
		},
		{
			name: "duplicate dimensions",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    filteredDimensions:
      hostname: a
      hostname: b
    groupedDimensions:
      - hostname
      - service
      - hostname
    rollup: {function: sum, groupedDimensions: [service, service]}
`,
			want: []string{
				`test.yaml:9: specification 1 ("a"): filteredDimensions: dimension "hostname" is given twice (lines 8 and 9)`,
				`test.yaml:13: specification 1 ("a"): groupedDimensions: dimension "hostname" is listed twice (lines 11 and 13)`,
				`test.yaml:14: specification 1 ("a"): rollup.groupedDimensions: dimension "service" is listed twice (lines 14 and 14)`,
			},
		},
		{
			name: "keys given twice, also when spelled differently",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    Function: avg
    name: b
`,
			want: []string{
				`test.yaml:7: specification 1 ("a"): function: given twice, as "function" on line 6 and as "Function" on line 7 (keys are case-insensitive)`,
				`test.yaml:8: specification 1 ("a"): name: given twice (lines 3 and 8)`,
			},
		},
		{
			name: "values of the wrong kind",
			yaml: `
aggregationSpecifications:
  - name: [a]
    aggregatedMetricName: {x: y}
    filteredMetricName: i
    function: sum
    filteredDimensions: [a, b]
    rejectedDimensions: {a: [b]}
    groupedDimensions: {a: b}
    rollup: sum
  - just a string
`,
			want: []string{
				`test.yaml:3: specification 1: name: must be a string, not a list`,
				`test.yaml:4: specification 1: aggregatedMetricName: must be a string, not a mapping`,
				`test.yaml:7: specification 1: filteredDimensions: must be a mapping of dimension names to values, not a list`,
				`test.yaml:8: specification 1: rejectedDimensions.a: must be a string, not a list`,
				`test.yaml:9: specification 1: groupedDimensions: must be a list of dimension names, not a mapping`,
				`test.yaml:10: specification 1: rollup: must be a mapping with the keys function and groupedDimensions, not the value "sum"`,
				`test.yaml:11: specification 2: must be a mapping of specification keys, not the value "just a string"`,
			},
		},
		{
			name: "a dimension name that is not a string",
			yaml: `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    filteredDimensions: {[x]: y}
`,
			want: []string{`test.yaml:7: specification 1 ("a"): filteredDimensions: a dimension name must be a string, not a list`},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{`test.yaml: aggregationSpecifications: missing; the file must hold the list of aggregation specifications under this key`},
		},
		{
			name: "only comments",
			yaml: "# nothing here\n",
			want: []string{`test.yaml: aggregationSpecifications: missing; the file must hold the list of aggregation specifications under this key`},
		},
		{
			name: "missing list",
			yaml: "windowSize: 10\n",
			want: []string{`test.yaml:1: aggregationSpecifications: missing; the file must hold the list of aggregation specifications under this key`},
		},
		{
			name: "empty list",
			yaml: "aggregationSpecifications: []\n",
			want: []string{`test.yaml:1: aggregationSpecifications: the list is empty; the file must define at least one aggregation specification`},
		},
		{
			name: "null list",
			yaml: "\naggregationSpecifications:\n",
			want: []string{`test.yaml:2: aggregationSpecifications: the list is empty; the file must define at least one aggregation specification`},
		},
		{
			name: "not a list",
			yaml: "aggregationSpecifications: {name: a}\n",
			want: []string{`test.yaml:1: aggregationSpecifications: must be a list of specifications, not a mapping`},
		},
		{
			name: "not a mapping",
			yaml: "- aggregationSpecifications\n",
			want: []string{`test.yaml:1: the file must be a mapping with the key aggregationSpecifications, not a list`},
		},
		{
			name: "syntax error on the first line",
			yaml: "aggregationSpecifications: a: b\n",
			want: []string{`test.yaml:1: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "syntax error on a later line",
			yaml: "aggregationSpecifications: []\n\tfoo: 1\n",
			want: []string{`test.yaml:2: invalid YAML: found character that cannot start any token`},
		},
		{
			name: "syntax error after a byte-order mark",
			yaml: "\ufeffaggregationSpecifications: a: b\n",
			want: []string{`test.yaml:1: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "invalid UTF-8, which yaml.v3 reports without a position",
			yaml: "aggregationSpecifications:\n  - name: \xff\n",
			want: []string{`test.yaml:2: invalid YAML: invalid leading UTF-8 octet`},
		},
		{
			name: "control character",
			yaml: "aggregationSpecifications:\n\n  - name: \x01\n",
			want: []string{`test.yaml:3: invalid YAML: control characters are not allowed`},
		},
		{
			name: "merge key with a scalar",
			yaml: `
aggregationSpecifications:
  - <<: 5
    name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
`,
			want: []string{`test.yaml:3: specification 1 ("a"): the merge key << needs a mapping or a list of mappings, not the value "5"`},
		},
		{
			name: "merge key that includes its own mapping",
			yaml: `
aggregationSpecifications:
  - &self
    <<: *self
    name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
`,
			want: []string{`test.yaml:4: specification 1 ("a"): the merge key << includes a mapping into itself`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, _, err := ParseAggregationSpecs([]byte(tt.yaml), "test.yaml")
			if err == nil {
				t.Fatalf("no error; rules %+v", views(rules))
			}
			if rules != nil {
				t.Errorf("rules returned with an error: %+v", views(rules))
			}
			got := errorLines(err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestParseAggregationSpecsCollectsAllErrors(t *testing.T) {
	yaml := `
aggregationSpecifications:
  - name: good
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
  - name: no-output
    filteredMetricName: i
    function: sum
  - name: bad-function
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum2
  - name: bad-rollup
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    groupedDimensions: [a, a]
    rollup: {function: nope, groupedDimensions: [b]}
    grouped_dimensions: [c]
`
	rules, warnings, err := ParseAggregationSpecs([]byte(yaml), "specs.yaml")
	if rules != nil {
		t.Errorf("rules returned with errors: %+v", views(rules))
	}
	want := []string{
		`specs.yaml:7: specification 2 ("no-output"): aggregatedMetricName: must have an aggregated metric name`,
		`specs.yaml:13: specification 3 ("bad-function"): function: unknown function "sum2"`,
		`specs.yaml:18: specification 4 ("bad-rollup"): groupedDimensions: dimension "a" is listed twice (lines 18 and 18)`,
		`specs.yaml:19: specification 4 ("bad-rollup"): rollup.function: unknown function "nope"`,
	}
	assertContainsInOrder(t, "errors", errorLines(err), want)
	// The subset check is left out while groupedDimensions itself is wrong.
	if strings.Contains(err.Error(), "must have all rollup.groupedDimensions") {
		t.Errorf("cascading error reported:\n%v", err)
	}
	assertContainsInOrder(t, "warnings", warnings, []string{
		`specs.yaml:20: specification 4 ("bad-rollup"): unknown key "grouped_dimensions" is ignored; did you mean "groupedDimensions"?`,
	})
}

func TestParseAggregationSpecsWarnings(t *testing.T) {
	yaml := `
aggregationSpecifications:
  - name: a
    aggregatedMetricName: o
    filteredMetricName: i
    function: sum
    groupDimensions: [h]
    Fuction: avg
    comment: not a key
    rollup: {function: sum, groupedDimension: [h]}
  - name: a
    aggregatedMetricName: o2
    filteredMetricName: i
    function: sum
  - {aggregatedMetricName: o3, filteredMetricName: i, function: sum}
windowSize: 10
aggregationSpecification: []
---
aggregationSpecifications: []
`
	rules, warnings := mustParse(t, yaml)
	if len(rules) != 3 {
		t.Errorf("got %d rules, want 3", len(rules))
	}
	if rules[2].Name != "specification 3" {
		t.Errorf("unnamed rule is named %q, want %q", rules[2].Name, "specification 3")
	}
	want := []string{
		`test.yaml:18: only the first YAML document is read; the rest of the file is ignored`,
		`test.yaml:7: specification 1 ("a"): unknown key "groupDimensions" is ignored; did you mean "groupedDimensions"?`,
		`test.yaml:8: specification 1 ("a"): unknown key "Fuction" is ignored; did you mean "function"?`,
		`test.yaml:9: specification 1 ("a"): unknown key "comment" is ignored`,
		`test.yaml:10: specification 1 ("a"): rollup: unknown key "groupedDimension" is ignored; did you mean "groupedDimensions"?`,
		`test.yaml:11: specification 2 ("a"): specification 1 has the same name; logs and metrics will not tell the two apart`,
		`test.yaml:16: unknown key "windowSize" is ignored`,
		`test.yaml:17: unknown key "aggregationSpecification" is ignored; did you mean "aggregationSpecifications"?`,
	}
	// Top-level keys are read before the list, so sort both the same way.
	if !reflect.DeepEqual(slices.Sorted(slices.Values(warnings)), slices.Sorted(slices.Values(want))) {
		t.Errorf("warnings:\n got %s\nwant %s", strings.Join(warnings, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestParseAggregationSpecsAnchorsAndMergeKeys(t *testing.T) {
	rules, warnings := mustParse(t, `
aggregationSpecifications:
  - &pod
    name: pod.cpu
    aggregatedMetricName: namespace.cpu.total_time_agg
    filteredMetricName: pod.cpu.total_time
    function: max
    groupedDimensions: &byPod [namespace, pod_name]
    rollup: &sumByNamespace {function: sum, groupedDimensions: [namespace]}
  - <<: *pod
    name: pod.mem
    aggregatedMetricName: namespace.mem.usage_agg
    filteredMetricName: pod.mem.usage_bytes
    function: avg
  - <<: [{name: first, function: min}, *pod]
    filteredDimensions: {cluster: c1}
`)
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	want := []ruleView{
		{
			Name: "pod.cpu", MetricName: "pod.cpu.total_time", GroupBy: []string{"namespace", "pod_name"},
			Function: "max", RollupFunction: "sum", RollupGroupBy: []string{"namespace"},
			OutputName: "namespace.cpu.total_time_agg",
		},
		{
			Name: "pod.mem", MetricName: "pod.mem.usage_bytes", GroupBy: []string{"namespace", "pod_name"},
			Function: "avg", RollupFunction: "sum", RollupGroupBy: []string{"namespace"},
			OutputName: "namespace.mem.usage_agg",
		},
		{
			Name: "first", MetricName: "pod.cpu.total_time", Require: dims("cluster", "c1"),
			GroupBy: []string{"namespace", "pod_name"}, Function: "min", RollupFunction: "sum",
			RollupGroupBy: []string{"namespace"}, OutputName: "namespace.cpu.total_time_agg",
			OutputDimensions: dims("cluster", "c1"),
		},
	}
	if got := views(rules); !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
}

func TestParseAggregationSpecsAliasBomb(t *testing.T) {
	// Each level merges the previous one ten times: 10^9 pairs at the top.
	var b strings.Builder
	b.WriteString("m0: &m0 {name: x}\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "m%d: &m%d {<<: [%s]}\n", i, i, strings.Repeat(fmt.Sprintf("*m%d, ", i-1), 10))
	}
	b.WriteString("aggregationSpecifications:\n  - {<<: *m9, aggregatedMetricName: o, filteredMetricName: i, function: sum}\n")
	start := time.Now()
	_, _, err := ParseAggregationSpecs([]byte(b.String()), "bomb.yaml")
	if err == nil || !strings.Contains(err.Error(), "bomb.yaml: aliases and merge keys expand the document to more than") {
		t.Errorf("got %v, want the alias expansion error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestAggregatorString(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "abc", "1": "1", "-1": "-1", "+1": "1", "01": "1", "010": "8", "09": "9", "0x1F": "31",
		"1_000": "1000", "1.0": "1", "1.50": "1.5", "1e3": "1000", ".5": "0.5", "-.5": "-0.5",
		"18446744073709551615": "18446744073709551615", "1e400": "1e400",
		"yes": "1", "Off": "0", "TRUE": "1", "~": "", "null": "", ".inf": "+Inf", "-.Inf": "-Inf", ".NaN": "NaN",
		"1.2.3": "1.2.3", "-": "-", "+": "+", ".": ".", "2001-12-14": "2001-12-14", "0o17": "15",
	} {
		if got := aggregatorString(in); got != want {
			t.Errorf("aggregatorString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := aggregatorSpecKeys
	for key, want := range map[string]string{
		"aggregated_metric_name": "aggregatedMetricName",
		"grouped-dimensions":     "groupedDimensions",
		"fuction":                "function",
		"rollups":                "rollup",
		"comment":                "",
		"x":                      "",
	} {
		if got := suggest(key, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

func FuzzParseAggregationSpecs(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzParseAggregationSpecs.
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, _, err := ParseAggregationSpecs(data, "fuzz.yaml")
		if err != nil {
			if rules != nil {
				t.Fatalf("rules returned with an error: %v", err)
			}
			var joined interface{ Unwrap() []error }
			if errors.As(err, &joined) {
				for _, e := range joined.Unwrap() {
					if !strings.HasPrefix(e.Error(), "fuzz.yaml") {
						t.Fatalf("error does not name the source: %q", e)
					}
				}
			}
			return
		}
		if len(rules) == 0 {
			t.Fatal("no rules and no error")
		}
		for _, r := range rules {
			if err := r.Validate(); err != nil {
				t.Fatalf("returned rule does not validate: %v", err)
			}
		}
	})
}

func TestParseAggregationSpecsFunctionsOverInputSeries(t *testing.T) {
	rules, _ := mustParse(t, `
aggregationSpecifications:
  - {name: a, aggregatedMetricName: o1, filteredMetricName: vm.net.in_bytes, function: increase, groupedDimensions: [project]}
  - {name: b, aggregatedMetricName: o2, filteredMetricName: vm.net.in_bytes, function: counter_rate}
  - {name: c, aggregatedMetricName: o3, filteredMetricName: vm.cpu_util, function: time_weighted_avg}
  - {name: d, aggregatedMetricName: o4, filteredMetricName: vm.state, function: time_in_state, stateValue: 1}
`)
	var names []string
	for _, r := range rules {
		names = append(names, r.Function.Name())
	}
	if want := []string{"increase", "counter_rate", "time_weighted_avg", "time_in_state"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("functions %v, want %v", names, want)
	}
}
