package conformancedata_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDirFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cases.json"), "[]")
	t.Setenv(conformancedata.EnvDir, dir)
	if got := conformancedata.Dir(t); got != dir {
		t.Errorf("Dir = %s, want %s", got, dir)
	}
}

func TestDirAbsentSkips(t *testing.T) {
	t.Setenv(conformancedata.EnvDir, filepath.Join(t.TempDir(), "absent"))
	var skipped bool
	t.Run("absent", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		conformancedata.Dir(t)
		t.Error("Dir did not skip")
	})
	if !skipped {
		t.Error("Dir did not skip without the dataset")
	}
}

// TestDirDefault checks the default: beside the module root, whichever
// package directory the test runs in.
func TestDirDefault(t *testing.T) {
	t.Setenv(conformancedata.EnvDir, "")
	want, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "conformance", "monasca-transform"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(want, "cases.json")); err != nil {
		t.Skipf("conformance dataset not found at %s: %v", want, err)
	}
	if got := conformancedata.Dir(t); got != want {
		t.Errorf("Dir = %s, want %s", got, want)
	}
}

func TestCases(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cases.json"), `[{"id":"A","stage":"first","data":["d.jsonl"],"pre_transform_specs":"p.jsonl","transform_specs":null,
		"expected":[{"name":"n","metric_id":"m","dimensions":{"host":"h"},"value":2.5,"value_meta":{"record_count":4,"firstrecord_timestamp_string":"f","lastrecord_timestamp_string":"l"}}],
		"dropped_by_insert_validation":[{"metric_id":"x"}],"output_filter":{"name":["n"]},"expected_meta":{"region":"r"},"expected_kind":"metric","expected_complete":true}]`)
	cases := conformancedata.Cases(t, dir)
	if len(cases) != 1 {
		t.Fatalf("%d cases, want 1", len(cases))
	}
	c := cases[0]
	e := c.Expected[0]
	if c.ID != "A" || c.Stage != "first" || !slices.Equal(c.Data, []string{"d.jsonl"}) || c.PreTransformSpecs != "p.jsonl" || c.TransformSpecs != "" ||
		c.ExpectedKind != "metric" || !c.ExpectedComplete || c.OutputFilter["name"][0] != "n" || c.ExpectedMeta["region"] != "r" ||
		len(c.Dropped) != 1 || c.Dropped[0].MetricID != "x" ||
		e.Name != "n" || e.MetricID != "m" || e.Dimensions["host"] != "h" || e.Value != 2.5 ||
		e.ValueMeta != (conformancedata.ValueMeta{RecordCount: 4, First: "f", Last: "l"}) {
		t.Errorf("case %+v", c)
	}
}

func TestLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lines.jsonl")
	write(t, path, "{\"a\":1}\r\n\n  \n {\"b\":2} \n{\"c\":3}")
	var got []string
	for _, l := range conformancedata.Lines(t, path) {
		got = append(got, string(l))
	}
	if want := []string{`{"a":1}`, `{"b":2}`, `{"c":3}`}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

func TestParseOutput(t *testing.T) {
	o, err := conformancedata.ParseOutput([]byte(`{"metric":{"name":"n","dimensions":{"host":"h"},"timestamp":1,"value":2.5,
		"value_meta":{"record_count":4.0,"firstrecord_timestamp_string":"f","lastrecord_timestamp_string":"l"}},"meta":{"tenantId":"t","region":"r"},"creation_time":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "n" || len(o.Dimensions) != 1 || o.Dimensions["host"] != "h" || o.Value != 2.5 ||
		o.ValueMeta != (conformancedata.ValueMeta{RecordCount: 4, First: "f", Last: "l"}) || o.Meta["tenantId"] != "t" || o.Meta["region"] != "r" {
		t.Errorf("output %+v", o)
	}
	if _, err := conformancedata.ParseOutput([]byte(`[1]`)); err == nil {
		t.Error("no error for a JSON array")
	}
}

func TestDiff(t *testing.T) {
	metric := func(name, host string, value, rc float64) conformancedata.Metric {
		return conformancedata.Metric{Name: name, Dimensions: map[string]string{"host": host}, Value: value,
			ValueMeta: conformancedata.ValueMeta{RecordCount: rc, First: "f", Last: "l"}}
	}
	output := func(m conformancedata.Metric) conformancedata.Output {
		return conformancedata.Output{Name: m.Name, Dimensions: m.Dimensions, Value: m.Value, ValueMeta: m.ValueMeta,
			Meta: map[string]string{"tenantId": "111111", "region": "useast"}}
	}
	a, b := metric("a", "h1", 1.5, 2), metric("a", "h2", 1e6, 3)
	c := &conformancedata.Case{
		ExpectedComplete: true,
		ExpectedMeta:     map[string]string{"tenantId": "111111", "region": "useast"},
		Expected:         []conformancedata.Metric{a, b},
	}
	// Outputs are a multiset: order does not matter, values agree to 1e-9.
	nearB := output(b)
	nearB.Value *= 1 + 1e-12
	if d := conformancedata.Diff(c, []conformancedata.Output{nearB, output(a)}); len(d) != 0 {
		t.Errorf("conforming outputs: %q", d)
	}
	for _, tc := range []struct {
		name string
		got  func() []conformancedata.Output
		want []string // in the differences, one each
	}{
		{"missing", func() []conformancedata.Output { return []conformancedata.Output{output(a)} }, []string{"missing a [host=h2]"}},
		{"extra", func() []conformancedata.Output {
			return []conformancedata.Output{output(a), output(b), output(b)}
		}, []string{"unexpected a [host=h2]"}},
		{"value", func() []conformancedata.Output {
			o := output(b)
			o.Value *= 1 + 1e-8
			return []conformancedata.Output{output(a), o}
		}, []string{"a [host=h2]: value"}},
		{"record_count", func() []conformancedata.Output {
			o := output(a)
			o.ValueMeta.RecordCount = 4
			return []conformancedata.Output{o, output(b)}
		}, []string{"a [host=h1]: record_count 4, want 2"}},
		{"first", func() []conformancedata.Output {
			o := output(a)
			o.ValueMeta.First = "g"
			return []conformancedata.Output{o, output(b)}
		}, []string{`firstrecord_timestamp_string "g", want "f"`}},
		{"last", func() []conformancedata.Output {
			o := output(a)
			o.ValueMeta.Last = "m"
			return []conformancedata.Output{o, output(b)}
		}, []string{`lastrecord_timestamp_string "m", want "l"`}},
		{"dimensions", func() []conformancedata.Output {
			o := output(a)
			o.Dimensions = map[string]string{"host": "h1", "x": "y"}
			return []conformancedata.Output{o, output(b)}
		}, []string{"missing a [host=h1]", "unexpected a [host=h1 x=y]"}},
		{"meta", func() []conformancedata.Output {
			o := output(a)
			o.Meta = map[string]string{"tenantId": "other", "region": "useast"}
			return []conformancedata.Output{o, output(b)}
		}, []string{`meta.tenantId "other", want "111111"`}},
	} {
		d := conformancedata.Diff(c, tc.got())
		ok := len(d) == len(tc.want)
		for i := 0; ok && i < len(d); i++ {
			ok = strings.Contains(d[i], tc.want[i])
		}
		if !ok {
			t.Errorf("%s: differences %q, want them to contain %q", tc.name, d, tc.want)
		}
	}

	// An incomplete case compares only the outputs its filter names.
	filtered := &conformancedata.Case{OutputFilter: map[string][]string{"name": {"a"}}, Expected: []conformancedata.Metric{a}}
	other := output(metric("b", "h1", 7, 1))
	if d := conformancedata.Diff(filtered, []conformancedata.Output{other, output(a)}); len(d) != 0 {
		t.Errorf("filtered case: %q", d)
	}
	if d := conformancedata.Diff(filtered, []conformancedata.Output{other}); len(d) != 1 {
		t.Errorf("filtered case without its output: %q", d)
	}
}
