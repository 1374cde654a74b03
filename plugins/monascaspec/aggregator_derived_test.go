package monascaspec

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

const memUtilSpec = `
aggregationSpecifications:
  - name: MemUtil
    aggregatedMetricName: mem.utilization_perc
    groupedDimensions: [hostname]
    INPUTS:
      used:
        filteredMetricName: mem.used_mb
        filteredDimensions: {service: monitoring, region: r1}
        function: avg
      total:
        FilteredMetricName: mem.total_mb
        filteredDimensions: {service: monitoring}
        rejectedDimensions: {device: ""}
        function: max
    Formula: root = this.used / this.total * 100
`

func TestParseDerivedSpec(t *testing.T) {
	rules, warnings := mustParse(t, memUtilSpec)
	if len(rules) != 1 || len(warnings) != 0 {
		t.Fatalf("rules %+v, warnings %v", views(rules), warnings)
	}
	r := rules[0]
	want := []windowagg.Input{
		{Name: "used", MetricName: "mem.used_mb", Require: dims("region", "r1", "service", "monitoring")},
		{Name: "total", MetricName: "mem.total_mb", Require: dims("service", "monitoring"), Reject: dims("device", "")},
	}
	if !reflect.DeepEqual(r.Inputs, want) {
		t.Errorf("inputs %+v, want %+v", r.Inputs, want)
	}
	if !slices.Equal(r.GroupBy, []string{"hostname", windowagg.InputKey}) || r.MetricName != "" || r.OutputName != "mem.utilization_perc" {
		t.Errorf("rule %+v", view(r))
	}
	if !reflect.DeepEqual(r.OutputDimensions, dims("service", "monitoring")) {
		t.Errorf("output dimensions %v, want those common to every input", r.OutputDimensions)
	}
	d := r.Combine.(*windowagg.Derivation)
	if d.Key != 1 || len(d.Variables) != 2 || d.Variables[0].Function.Name() != "avg" || d.Variables[1].Function.Name() != "max" {
		t.Errorf("derivation %+v", d)
	}
	if v, err := d.Formula.Eval([]float64{25, 200}); v != 12.5 || err != nil {
		t.Errorf("formula: %v, %v", v, err)
	}
}

// TestDerivedSpecRuns: a parsed derived specification in the engine, with
// a rollup over its values.
func TestDerivedSpecRuns(t *testing.T) {
	rules, _ := mustParse(t, `
aggregationSpecifications:
  - name: net
    aggregatedMetricName: net.total_bytes_sec
    groupedDimensions: [cluster, hostname]
    inputs:
      in: {filteredMetricName: net.in_bytes_sec, function: avg}
      out: {filteredMetricName: net.out_bytes_sec, function: avg}
    formula: this.in + this.out
    rollup: {function: sum, groupedDimensions: [cluster]}
`)
	now := time.UnixMilli(1704067260000)
	e, err := windowagg.New(windowagg.Config{Window: time.Minute, IdleTimeout: time.Minute, MaxFuture: time.Hour, Clock: func() time.Time { return now }}, rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name, host string
		v          float64
	}{{"net.in_bytes_sec", "h1", 10}, {"net.in_bytes_sec", "h1", 20}, {"net.out_bytes_sec", "h1", 5}, {"net.in_bytes_sec", "h2", 1}, {"net.out_bytes_sec", "h2", 2}, {"net.in_bytes_sec", "h3", 1}} {
		e.Add(windowagg.Source{}, &monasca.Metric{Name: m.name, Timestamp: 1704067200000, Value: m.v, TenantID: "t",
			Dimensions: dims("cluster", "c", "hostname", m.host)})
	}
	out := e.FlushAll(nil)
	// h1: 15 + 5, h2: 1 + 2, h3 has no output rate.
	if len(out) != 1 || out[0].Value != 23 || !reflect.DeepEqual(out[0].Dimensions, dims("cluster", "c")) || out[0].Count != 5 {
		t.Fatalf("got %+v", out)
	}
	if s := rules[0].Combine.(*windowagg.Derivation).TakeSkipped(); len(s) != 1 || s[0].Reason != windowagg.SkipMissingInput || s[0].Count != 1 {
		t.Errorf("skipped %+v", s)
	}
}

func TestDerivedFormulaResults(t *testing.T) {
	for _, c := range []struct {
		formula string
		values  []float64
		want    float64
		err     error // nil, or the windowagg error it wraps
		msg     string
	}{
		{formula: "root = this.a / this.b", values: []float64{1, 4}, want: 0.25},
		{formula: "this.a - this.b", values: []float64{1, 4}, want: -3},
		{formula: "root = [this.a, this.b].max()", values: []float64{1, 4}, want: 4},
		{formula: "root = this.a / this.b", values: []float64{1, 0}, err: windowagg.ErrDivisionByZero,
			msg: "division by zero: failed assignment (line 1): field `this.b`: attempted to divide by zero"},
		{formula: "root = this.a % this.b", values: []float64{1, 0}, err: windowagg.ErrDivisionByZero},
		{formula: `root = if this.b == 0 { deleted() } else { this.a / this.b }`, values: []float64{1, 0}, err: windowagg.ErrNotANumber,
			msg: "not a finite number: the formula deleted root"},
		{formula: `root = "x"`, values: []float64{1, 0}, err: windowagg.ErrNotANumber, msg: "not a finite number: the formula gave string x"},
		{formula: `root = this.a.string() + "x"`, values: []float64{1, 0}, err: windowagg.ErrNotANumber},
		{formula: `root = throw("no")`, values: []float64{1, 0}, msg: "failed assignment (line 1): no"},
	} {
		f, err := compileFormula(c.formula, []string{"a", "b"})
		if err != nil {
			t.Fatalf("%s: %v", c.formula, err)
		}
		got, err := f.Eval(c.values)
		switch {
		case c.err == nil && c.msg == "" && (err != nil || got != c.want):
			t.Errorf("%s: %v, %v; want %v", c.formula, got, err, c.want)
		case c.err != nil && !errors.Is(err, c.err), c.msg != "" && (err == nil || err.Error() != c.msg):
			t.Errorf("%s: error %v; want %v %q", c.formula, err, c.err, c.msg)
		}
	}
	// Infinity is not Bloblang's to catch: the Derivation refuses it.
	f, _ := compileFormula("this.a * this.b", []string{"a", "b"})
	if got, err := f.Eval([]float64{math.MaxFloat64, 2}); err != nil || !math.IsInf(got, 1) {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestParseDerivedSpecErrors(t *testing.T) {
	spec := func(body string) string {
		return "aggregationSpecifications:\n  - name: d\n    aggregatedMetricName: o\n    " + strings.ReplaceAll(strings.TrimSpace(body), "\n", "\n    ") + "\n"
	}
	known := strings.Join(windowagg.FunctionNames(), ", ")
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"formula without inputs", `formula: this.a`, []string{
			`test.yaml:2: specification 1 ("d"): inputs: missing; a specification with a formula needs its inputs`}},
		{"inputs without formula", `inputs: {a: {filteredMetricName: m, function: sum}}`, []string{
			`test.yaml:2: specification 1 ("d"): formula: must have a formula: a Bloblang mapping of the inputs that assigns root a number`}},
		{"single-input keys beside inputs", `
filteredMetricName: m
function: sum
inputs: {a: {filteredMetricName: m, function: sum}}
formula: this.a`, []string{
			`test.yaml:4: specification 1 ("d"): filteredMetricName: not allowed with inputs; give it in each input`,
			`test.yaml:5: specification 1 ("d"): function: not allowed with inputs; give it in each input`}},
		{"empty inputs", "inputs: {}\nformula: this.a", []string{
			`test.yaml:4: specification 1 ("d"): inputs: must name at least one input`}},
		{"inputs as a list", "inputs: [a]\nformula: this.a", []string{
			`test.yaml:4: specification 1 ("d"): inputs: must be a mapping of input names to inputs, not a list`}},
		{"bad input", `
inputs:
  1st: {filteredMetricName: m, function: sum}
  a: {function: summ}
  b: m
formula: this.a`, []string{
			`test.yaml:5: specification 1 ("d"): inputs: input name "1st" must be letters, digits and _, not starting with a digit: the formula reads it as this.<name>`,
			`test.yaml:6: specification 1 ("d"): inputs.a.filteredMetricName: must have a filtered metric name`,
			`test.yaml:6: specification 1 ("d"): inputs.a.function: unknown function "summ"; known functions: ` + known,
			`test.yaml:7: specification 1 ("d"): inputs.b: must be a mapping with the keys filteredMetricName, filteredDimensions, rejectedDimensions and function, not the value "m"`}},
		{"input without function", `
inputs:
  a: {filteredMetricName: m}
formula: this.a`, []string{
			`test.yaml:5: specification 1 ("d"): inputs.a.function: must have a function`}},
		{"formula does not parse", `
inputs: {a: {filteredMetricName: m, function: sum}}
formula: this.a +`, []string{
			`test.yaml:5: specification 1 ("d"): formula: is not a valid Bloblang mapping: expected query, but reached end of input`}},
		{"formula reads an undeclared input", `
inputs: {a: {filteredMetricName: m, function: sum}, b: {filteredMetricName: n, function: sum}}
formula: this.a / this.c`, []string{
			`test.yaml:5: specification 1 ("d"): formula: reads this.c, which is not an input; the inputs are "a", "b"`}},
		{"impure function", `
inputs: {a: {filteredMetricName: m, function: sum}}
formula: root = env("X")`, []string{
			`test.yaml:5: specification 1 ("d"): formula: is not a valid Bloblang mapping: unrecognised function 'env'`}},
		{"rollup by a dimension not grouped", `
inputs: {a: {filteredMetricName: m, function: sum}}
formula: this.a
groupedDimensions: [h]
rollup: {function: sum, groupedDimensions: [c]}`, []string{
			`test.yaml:7: specification 1 ("d"): rollup.groupedDimensions: must have all rollup.groupedDimensions also in groupedDimensions; missing from groupedDimensions: "c"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rules, _, err := ParseAggregationSpecs([]byte(spec(c.body)), "test.yaml")
			if err == nil || rules != nil {
				t.Fatalf("rules %+v, error %v", views(rules), err)
			}
			if got := errorLines(err); !reflect.DeepEqual(got, c.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(c.want, "\n     "))
			}
		})
	}
}

// BenchmarkBloblangFormula is the cost of one derived value at window
// close: the input object and the Bloblang query.
func BenchmarkBloblangFormula(b *testing.B) {
	f, err := compileFormula("root = this.used / this.total * 100", []string{"used", "total"})
	if err != nil {
		b.Fatal(err)
	}
	values := []float64{25, 200}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := f.Eval(values); err != nil {
			b.Fatal(err)
		}
	}
}
