// Package conformancedata locates and reads the monasca-transform
// conformance dataset for tests: real test data of monasca-transform with the
// values its tests assert, kept outside this repository and never copied into
// it.
//
// The dataset is the directory $MONASCA_CONFORMANCE_DIR or, when that is not
// set, shared/conformance/monasca-transform beside the module root (the
// nearest directory holding go.mod above the working directory), that is
// ../shared/conformance/monasca-transform from the root. Dir skips the test
// when the dataset is absent. Within it, cases.json lists the cases (read by
// Cases); data, spec and other files are named relative to the dataset
// directory and hold one JSON value a line (read by Lines).
//
// Compare checks outputs against a case by the dataset's comparison rules
// (Diff lists the differences, ParseOutput reads an output envelope), so
// that every test of the dataset compares alike.
//
// It is meant for tests only: the functions that read files take the test,
// and fail or skip it rather than returning errors.
package conformancedata

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// EnvDir is the environment variable naming the dataset directory.
const EnvDir = "MONASCA_CONFORMANCE_DIR"

// Case is a case of cases.json, as far as the tests read it.
type Case struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Stage is "first" (envelopes through pre-transform and transform
	// specs), "second" (instance-usage rows through the pre-hourly
	// step), "first+second" or "component".
	Stage string `json:"stage"`
	// Pipeline names the components a "component" case applies, such as
	// "fetch_quantity+rollup_quantity".
	Pipeline string `json:"pipeline"`
	// Data are the input files, relative to the dataset directory.
	Data []string `json:"data"`
	// PreTransformSpecs and TransformSpecs are spec files relative to
	// the dataset directory; "" where the case has none (null in
	// cases.json).
	PreTransformSpecs string `json:"pre_transform_specs"`
	TransformSpecs    string `json:"transform_specs"`
	// ExpectedKind is "metric" for cases whose Expected are output
	// metrics, or "instance_usage" for cases of single components.
	ExpectedKind string `json:"expected_kind"`
	// ExpectedComplete tells whether Expected are all the outputs, or
	// only those OutputFilter selects.
	ExpectedComplete bool                `json:"expected_complete"`
	OutputFilter     map[string][]string `json:"output_filter"`
	// ExpectedMeta is the meta every output carries.
	ExpectedMeta map[string]string `json:"expected_meta"`
	Expected     []Metric          `json:"expected"`
	// Dropped are the outputs that monasca-transform's insert step
	// dropped as invalid.
	Dropped []Metric `json:"dropped_by_insert_validation"`
}

// Metric is an expected output metric of a case.
type Metric struct {
	Name string `json:"name"`
	// MetricID is the metric_id of the transform spec that produces it.
	MetricID   string            `json:"metric_id"`
	Dimensions map[string]string `json:"dimensions"`
	Value      float64           `json:"value"`
	ValueMeta  ValueMeta         `json:"value_meta"`
	// A "component" case expects instance-usage rows, of which the
	// original test asserted AssertedFields, or a final metric.
	InstanceUsage  map[string]any `json:"instance_usage"`
	AssertedFields []string       `json:"asserted_fields"`
	FinalMetric    *Metric        `json:"final_metric"`
}

// ValueMeta is the value_meta of an output metric.
type ValueMeta struct {
	RecordCount float64 `json:"record_count"`
	First       string  `json:"firstrecord_timestamp_string"`
	Last        string  `json:"lastrecord_timestamp_string"`
}

// Dir returns the absolute path of the dataset directory, or skips the
// test, saying where it looked, when that holds no cases.json.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Skipf("conformance dataset not found (set %s): %v", EnvDir, err)
		}
		dir = filepath.Join(root, "..", "shared", "conformance", "monasca-transform")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "cases.json")); err != nil {
		t.Skipf("conformance dataset not found at %s (set %s): %v", abs, EnvDir, err)
	}
	return abs
}

// moduleRoot returns the nearest directory holding go.mod at or above the
// working directory.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", &os.PathError{Op: "find module root above", Path: wd, Err: os.ErrNotExist}
		}
		dir = parent
	}
}

// Cases returns the cases of dir's cases.json, failing the test when it
// cannot be read or holds no case.
func Cases(t testing.TB, dir string) []Case {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []Case
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, "cases.json"), err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", filepath.Join(dir, "cases.json"))
	}
	return cases
}

// Lines returns the non-blank lines of the file at path, without their
// surrounding white space, each in a slice of its own.
func Lines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for line := range bytes.Lines(b) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			lines = append(lines, bytes.Clone(line))
		}
	}
	return lines
}
