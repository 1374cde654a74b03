// Package conformance runs the monasca-transform conformance dataset
// (shared/conformance/monasca-transform: real test data of monasca-transform
// with the values its tests assert) through the real monasca_aggregate
// plugin in a Connect stream, and compares every output.
//
// The dataset is read from $MONASCA_CONFORMANCE_DIR, by default
// ../shared/conformance/monasca-transform beside the module root (see
// internal/conformancedata); without it the test says so and skips. Nothing
// of it is copied into this repository.
package conformance

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
	"github.com/monasca-connect/monasca-connect/internal/streamtest"
	_ "github.com/monasca-connect/monasca-connect/plugins/components"
)

type outputEnvelope struct {
	Metric struct {
		Name       string                    `json:"name"`
		Dimensions map[string]string         `json:"dimensions"`
		Value      float64                   `json:"value"`
		ValueMeta  conformancedata.ValueMeta `json:"value_meta"`
	} `json:"metric"`
	Meta map[string]string `json:"meta"`
}

// compatibility is what the dataset asserts: monasca-transform's own
// behaviour, which monasca-connect corrects unless told otherwise.
var compatibility = []string{"second_resolution", "rate_latest_is_average", "rate_double_record_count", "util_missing_idle_is_busy"}

func TestMonascaTransformConformance(t *testing.T) {
	dir := conformancedata.Dir(t)
	for _, c := range conformancedata.Cases(t, dir) {
		t.Run(c.ID, func(t *testing.T) {
			if c.ExpectedKind != "metric" {
				t.Skipf("%s compares instance-usage rows of single components, which monasca-connect does not expose", c.ID)
			}
			got := run(t, dir, &c)
			compare(t, &c, got)
		})
	}
}

// run feeds the case's data, as one batch, through a stream whose only
// processor is monasca_aggregate configured with the case's specs.
func run(t *testing.T, dir string, c *conformancedata.Case) []outputEnvelope {
	t.Helper()
	conf := map[string]any{
		"transform_specs":   filepath.Join(dir, c.TransformSpecs),
		"compatibility":     compatibility,
		"publish_tenant_id": "111111",
		"publish_region":    "useast",
		"max_future":        "87600h",
	}
	if c.Stage == "second" {
		conf["transform_input"] = "instance_usage"
	} else {
		conf["pre_transform_specs"] = filepath.Join(dir, c.PreTransformSpecs)
	}
	procConf, err := json.Marshal(map[string]any{"monasca_aggregate": conf})
	if err != nil {
		t.Fatal(err)
	}
	var batch service.MessageBatch
	for _, name := range c.Data {
		for _, line := range conformancedata.Lines(t, filepath.Join(dir, name)) {
			batch = append(batch, service.NewMessage(line))
		}
	}
	var out []outputEnvelope
	for _, msg := range streamtest.RunProcessor(t, nil, string(procConf), batch) {
		b, err := msg.AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		var e outputEnvelope
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("output is not a Monasca envelope: %v: %s", err, b)
		}
		out = append(out, e)
	}
	return out
}

// compare applies the dataset's comparison rules: outputs are a multiset
// matched by name and exact dimensions; values and record counts agree to a
// relative 1e-9; the first and last record times exactly.
func compare(t *testing.T, c *conformancedata.Case, got []outputEnvelope) {
	t.Helper()
	if names := c.OutputFilter["name"]; len(names) > 0 && !c.ExpectedComplete {
		got = slices.DeleteFunc(got, func(e outputEnvelope) bool { return !slices.Contains(names, e.Metric.Name) })
	}
	unmatched := slices.Clone(got)
	for _, want := range c.Expected {
		i := slices.IndexFunc(unmatched, func(e outputEnvelope) bool {
			return e.Metric.Name == want.Name && equalDims(e.Metric.Dimensions, want.Dimensions)
		})
		if i < 0 {
			t.Errorf("missing %s %v = %v (rc %v)", want.Name, sortedDims(want.Dimensions), want.Value, want.ValueMeta.RecordCount)
			continue
		}
		e := unmatched[i]
		unmatched = slices.Delete(unmatched, i, i+1)
		what := fmt.Sprintf("%s %v", want.Name, sortedDims(want.Dimensions))
		if !close(e.Metric.Value, want.Value) {
			t.Errorf("%s: value %v, want %v", what, e.Metric.Value, want.Value)
		}
		vm := e.Metric.ValueMeta
		if !close(vm.RecordCount, want.ValueMeta.RecordCount) {
			t.Errorf("%s: record_count %v, want %v", what, vm.RecordCount, want.ValueMeta.RecordCount)
		}
		if want.ValueMeta.First != "" && vm.First != want.ValueMeta.First {
			t.Errorf("%s: firstrecord_timestamp_string %q, want %q", what, vm.First, want.ValueMeta.First)
		}
		if want.ValueMeta.Last != "" && vm.Last != want.ValueMeta.Last {
			t.Errorf("%s: lastrecord_timestamp_string %q, want %q", what, vm.Last, want.ValueMeta.Last)
		}
		for k, v := range c.ExpectedMeta {
			if e.Meta[k] != v {
				t.Errorf("%s: meta.%s %q, want %q", what, k, e.Meta[k], v)
			}
		}
	}
	for _, e := range unmatched {
		t.Errorf("unexpected %s %v = %v (rc %v)", e.Metric.Name, sortedDims(e.Metric.Dimensions), e.Metric.Value, e.Metric.ValueMeta.RecordCount)
	}
}

func equalDims(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sortedDims(d map[string]string) []string {
	out := make([]string, 0, len(d))
	for k, v := range d {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func close(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
