package monascaspec

import (
	"testing"

	"github.com/monasca-connect/monasca-connect/plugins/recordstore"
)

// FuzzParseTransformSpecs feeds arbitrary pre_transform_specs and
// transform_specs to the loader: it must never panic, and what it returns
// without an error must be usable: every rule validates and the
// pre-transform specs build a record converter.
func FuzzParseTransformSpecs(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzParseTransformSpecs.
	f.Add([]byte(`{"event_type":"mem.total_mb","metric_id_list":["mem_total_all"],"required_raw_fields_list":["creation_time"],"event_processing_params":{"set_default_zone_to":"1","set_default_geolocation_to":"1","set_default_region_to":"W"}}`),
		[]byte(`{"aggregation_params_map":{"aggregation_pipeline":{"source":"streaming","usage":"fetch_quantity","setters":["rollup_quantity","set_aggregated_metric_name","set_aggregated_period"],"insert":["prepare_data","insert_data_pre_hourly"]},"aggregated_metric_name":"mem.total_mb_agg","aggregation_period":"hourly","aggregation_group_by_list":["host","metric_id","tenant_id"],"usage_fetch_operation":"avg","filter_by_list":[],"setter_rollup_group_by_list":[],"setter_rollup_operation":"sum","dimension_list":["aggregation_period","host","project_id"],"pre_hourly_operation":"avg","pre_hourly_group_by_list":["default"]},"metric_group":"mem_total_all","metric_id":"mem_total_all"}`))
	f.Fuzz(func(t *testing.T, pre, transform []byte) {
		specs, _, err := ParseTransformSpecs(pre, transform, "pre.json", "transform.json", TransformOptions{})
		if err != nil {
			if specs != nil {
				t.Fatalf("specs returned with an error: %v", err)
			}
			return
		}
		for _, r := range append(specs.Rules, specs.PreHourly...) {
			if err := r.Validate(); err != nil {
				t.Fatalf("returned rule does not validate: %v", err)
			}
		}
		if _, err := recordstore.NewConverter(specs.PreTransform); err != nil {
			t.Fatalf("the loader accepted pre-transform specs the converter rejects: %v", err)
		}
	})
}
