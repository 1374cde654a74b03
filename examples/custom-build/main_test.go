package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/internal/streamtest"
)

// TestCustomFunctionAndUsage runs both spec languages with the extensions
// registered by this build, through the monasca_aggregate processor.
func TestCustomFunctionAndUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	aggregation := write("aggregation.yaml", `
aggregationSpecifications:
  - name: cpu spread
    aggregatedMetricName: cpu.spread
    filteredMetricName: cpu.idle_perc
    function: spread
`)
	pre := write("pre.json", `{"event_type":"cpu.idle_perc","metric_id_list":["cpu_spread"],"required_raw_fields_list":["creation_time"],"event_processing_params":{}}`)
	transform := write("transform.json", `{"aggregation_params_map":{"aggregation_pipeline":{"source":"streaming","usage":"fetch_quantity_spread","setters":["set_aggregated_metric_name","set_aggregated_period"],"insert":["insert_data"]},"aggregated_metric_name":"cpu.idle_perc_spread_agg","aggregation_period":"hourly","aggregation_group_by_list":["host"],"usage_fetch_operation":"spread","dimension_list":["aggregation_period","host"]},"metric_group":"cpu_spread","metric_id":"cpu_spread"}`)

	// The metrics are of 2024, older than the default max_past.
	for name, conf := range map[string]string{
		"aggregator": "max_past: 0s\naggregation_specs: " + aggregation,
		"transform":  "max_past: 0s\npre_transform_specs: " + pre + "\ntransform_specs: " + transform,
	} {
		t.Run(name, func(t *testing.T) {
			batch := service.MessageBatch{}
			for i, v := range []float64{40, 95, 10} {
				batch = append(batch, service.NewMessage(fmt.Appendf(nil,
					`{"metric":{"name":"cpu.idle_perc","dimensions":{"hostname":"h1"},"timestamp":%d,"value":%g},"meta":{"tenantId":"t","region":"r"},"creation_time":1}`,
					int64(1704067200000)+int64(i)*1000, v)))
			}
			var got []string
			for _, m := range streamtest.RunProcessor(t, nil, "monasca_aggregate:\n  "+strings.ReplaceAll(conf, "\n", "\n  "), batch) {
				raw, _ := m.AsBytes()
				got = append(got, string(raw))
			}
			if len(got) != 1 {
				t.Fatalf("want one aggregate, got %q", got)
			}
			var want string
			if name == "aggregator" {
				want = `"name":"cpu.spread","dimensions":{},"timestamp":1704067200000,"value":85`
			} else {
				want = `"name":"cpu.idle_perc_spread_agg","dimensions":{"aggregation_period":"hourly","host":"h1"},"timestamp":1704067200000,"value":85`
			}
			if !strings.Contains(got[0], want) {
				t.Fatalf("aggregate %s lacks %s", got[0], want)
			}
		})
	}
}
