package conformancedata_test

import (
	"os"
	"path/filepath"
	"slices"
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
