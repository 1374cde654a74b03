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
	"path/filepath"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
	"github.com/monasca-connect/monasca-connect/internal/streamtest"
	_ "github.com/monasca-connect/monasca-connect/plugins/components"
)

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
			conformancedata.Compare(t, &c, got)
		})
	}
}

// run feeds the case's data, as one batch, through a stream whose only
// processor is monasca_aggregate configured with the case's specs.
func run(t *testing.T, dir string, c *conformancedata.Case) []conformancedata.Output {
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
	var out []conformancedata.Output
	for _, msg := range streamtest.RunProcessor(t, nil, string(procConf), batch) {
		b, err := msg.AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		o, err := conformancedata.ParseOutput(b)
		if err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		out = append(out, o)
	}
	return out
}
