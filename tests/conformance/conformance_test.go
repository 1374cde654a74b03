// Package conformance runs the monasca-transform conformance dataset
// (shared/conformance/monasca-transform: real test data of monasca-transform
// with the values its tests assert) through the real monasca_aggregate
// plugin in a Connect stream, and compares every output.
//
// Component cases (G) apply single components: see runComponents.
//
// The dataset is read from $MONASCA_CONFORMANCE_DIR, by default
// ../shared/conformance/monasca-transform beside the module root (see
// internal/conformancedata); without it the test says so and skips. Nothing
// of it is copied into this repository.
package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

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
			if c.Stage == "component" {
				runComponents(t, dir, &c)
				return
			}
			got := run(t, dir, &c, nil)
			conformancedata.Compare(t, &c, got)
		})
	}
}

// run feeds the case's data, as one batch, through a stream whose only
// processor is monasca_aggregate configured with the case's specs; a
// component case passes its own transform specs file, and its data are
// record-store rows. It returns the outputs and their timestamps.
func run(t *testing.T, dir string, c *conformancedata.Case, transformSpecs *string) []conformancedata.Output {
	t.Helper()
	outs, _ := runTimed(t, dir, c, transformSpecs)
	return outs
}

func runTimed(t *testing.T, dir string, c *conformancedata.Case, transformSpecs *string) ([]conformancedata.Output, []int64) {
	t.Helper()
	specs := filepath.Join(dir, c.TransformSpecs)
	if transformSpecs != nil {
		specs = *transformSpecs
	}
	conf := map[string]any{
		"transform_specs":   specs,
		"compatibility":     compatibility,
		"publish_tenant_id": "111111",
		"publish_region":    "useast",
		"max_future":        "87600h",
		// The dataset is of 2016 and 2017: a backfill of archived
		// metrics, which max_past 0s is for.
		"max_past": "0s",
	}
	switch c.Stage {
	case "second":
		conf["transform_input"] = "instance_usage"
	case "component":
		conf["transform_input"] = "records"
	default:
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
	var starts []int64
	for _, msg := range streamtest.RunProcessor(t, nil, string(procConf), batch) {
		b, err := msg.AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		o, err := conformancedata.ParseOutput(b)
		if err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		var e struct {
			Metric struct{ Timestamp int64 } `json:"metric"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
		starts = append(starts, e.Metric.Timestamp)
	}
	return out, starts
}

// runComponents checks a case that applies single components of a spec to
// record-store rows. monasca-connect compiles a spec's components into one
// rule, so the spec is cut down to the case's components (fetch_quantity
// alone, then with rollup_quantity, then with set_aggregated_metric_name)
// and named by the fields the original test asserts; each asserted field
// of an instance-usage row is then read from the output metric: quantity
// from the value, host and tenant_id from the dimensions (tenant_id as
// project_id, the field the insert step names it by), usage_date and
// usage_hour from the window start, aggregated_metric_name from the name.
func runComponents(t *testing.T, dir string, c *conformancedata.Case) {
	raw := conformancedata.Lines(t, filepath.Join(dir, c.TransformSpecs))
	if len(raw) != 1 {
		t.Fatalf("want one transform spec, got %d", len(raw))
	}
	var spec map[string]any
	if err := json.Unmarshal(raw[0], &spec); err != nil {
		t.Fatal(err)
	}
	params := spec["aggregation_params_map"].(map[string]any)
	pipeline := params["aggregation_pipeline"].(map[string]any)
	switch c.Pipeline {
	case "fetch_quantity":
		pipeline["setters"] = []string{}
	case "fetch_quantity+rollup_quantity":
		pipeline["setters"] = []string{"rollup_quantity"}
	case "fetch_quantity+rollup_quantity+set_aggregated_metric_name":
		pipeline["setters"] = []string{"rollup_quantity", "set_aggregated_metric_name"}
	case "generic_transform_builder":
	default:
		t.Fatalf("unknown component pipeline %q", c.Pipeline)
	}
	if c.Pipeline != "generic_transform_builder" {
		params["dimension_list"] = []string{"host", "tenant_id"}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "transform_spec.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, starts := runTimed(t, dir, c, &path)

	for _, want := range c.Expected {
		if want.FinalMetric != nil {
			final := *c
			final.Expected, final.ExpectedComplete = []conformancedata.Metric{*want.FinalMetric}, false
			final.OutputFilter = map[string][]string{"name": {want.FinalMetric.Name}}
			conformancedata.Compare(t, &final, got)
			continue
		}
		iu := want.InstanceUsage
		i := slices.IndexFunc(got, func(o conformancedata.Output) bool {
			return o.Dimensions["host"] == iu["host"] || c.Pipeline == "generic_transform_builder"
		})
		if i < 0 {
			t.Errorf("no output for instance-usage row of host %v", iu["host"])
			continue
		}
		o, start := got[i], time.UnixMilli(starts[i]).UTC()
		for _, field := range want.AssertedFields {
			var have any
			switch field {
			case "quantity":
				have = o.Value
			case "host":
				have = o.Dimensions["host"]
			case "tenant_id":
				v, ok := o.Dimensions["tenant_id"]
				if !ok {
					v = o.Dimensions["project_id"]
				}
				have = v
			case "usage_date":
				have = start.Format("2006-01-02")
			case "usage_hour":
				have = start.Format("15")
			case "aggregated_metric_name":
				have = o.Name
			default:
				t.Fatalf("no output field for asserted field %q", field)
			}
			if have != iu[field] {
				t.Errorf("host %v: %s = %v, want %v", iu["host"], field, have, iu[field])
			}
		}
	}
}
