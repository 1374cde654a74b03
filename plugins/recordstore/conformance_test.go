package recordstore

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// readPreTransformSpecs reads a pre_transform_specs file as Specs.
func readPreTransformSpecs(t *testing.T, path string) []Spec {
	t.Helper()
	var specs []Spec
	for _, line := range conformancedata.Lines(t, path) {
		var s struct {
			EventType string   `json:"event_type"`
			MetricIDs []string `json:"metric_id_list"`
			Required  []string `json:"required_raw_fields_list"`
			Params    struct {
				Region string `json:"set_default_region_to"`
				Zone   string `json:"set_default_zone_to"`
			} `json:"event_processing_params"`
		}
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		specs = append(specs, Spec{EventType: s.EventType, MetricIDs: s.MetricIDs, RequiredFields: s.Required, DefaultRegion: s.Params.Region, DefaultZone: s.Params.Zone})
	}
	return specs
}

// usageOf maps the metric_id of each transform spec to its usage component
// and, for fetch_quantity_util, the event type whose records it counts.
func usageOf(t *testing.T, path string) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for _, line := range conformancedata.Lines(t, path) {
		var s struct {
			MetricID string `json:"metric_id"`
			Params   struct {
				Pipeline struct {
					Usage string `json:"usage"`
				} `json:"aggregation_pipeline"`
				UtilQuantity string `json:"usage_fetch_util_quantity_event_type"`
			} `json:"aggregation_params_map"`
		}
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[s.MetricID] = [2]string{s.Params.Pipeline.Usage, s.Params.UtilQuantity}
	}
	return out
}

// TestConformanceRecordCounts converts the input of every stage-1 case with
// its pre-transform specs and checks, for every expected output, that the
// records of its metric_id, hour and group are as many as the output's
// record_count. That exercises the join on event_type, the required
// fields, the fan-out and the derivation of host and tenant_id (by which
// the per-host and per-project outputs are grouped).
func TestConformanceRecordCounts(t *testing.T) {
	dir := conformancedata.Dir(t)
	checked := 0
	for _, c := range conformancedata.Cases(t, dir) {
		if c.PreTransformSpecs == "" || len(c.Expected) == 0 {
			continue
		}
		t.Run(c.ID, func(t *testing.T) {
			conv, err := NewConverter(readPreTransformSpecs(t, filepath.Join(dir, c.PreTransformSpecs)))
			if err != nil {
				t.Fatal(err)
			}
			usage := usageOf(t, filepath.Join(dir, c.TransformSpecs))
			// The records, their strings copied.
			var records []map[string]string
			var times []int64
			dec := monasca.Decoder{KeepMaps: true}
			var m monasca.Metric
			var recs []Record
			for _, path := range c.Data {
				for _, line := range conformancedata.Lines(t, filepath.Join(dir, path)) {
					if err := dec.Decode(line, &m); err != nil {
						t.Fatalf("%s: %v", path, err)
					}
					recs, _ = conv.Convert(&m, recs[:0])
					for _, r := range recs {
						fields := map[string]string{}
						for _, d := range r.Fields {
							fields[strings.Clone(d.Key)] = strings.Clone(d.Value)
						}
						records = append(records, fields)
						times = append(times, r.Timestamp)
					}
				}
			}
			for _, e := range c.Expected {
				first, err := time.Parse(timestampLayout, e.ValueMeta.First)
				if err != nil {
					t.Fatal(err)
				}
				hour := first.Truncate(time.Hour).UnixMilli()
				u := usage[e.MetricID]
				n := 0
				for i, r := range records {
					if r[KeyMetricID] != e.MetricID || times[i] < hour || times[i] >= hour+3600_000 ||
						u[0] == "fetch_quantity_util" && r[KeyEventType] != u[1] || !inGroup(r, e.Dimensions) {
						continue
					}
					n++
				}
				if u[0] == "calculate_rate" {
					// Its record count adds the oldest and the latest
					// passes over the same records.
					n *= 2
				}
				if float64(n) != e.ValueMeta.RecordCount {
					t.Errorf("%s %v: %d records, want %v", e.MetricID, e.Dimensions, n, e.ValueMeta.RecordCount)
				}
				checked++
			}
		})
	}
	if checked == 0 {
		t.Error("no expected output checked")
	}
}

// inGroup reports whether a record belongs to the group of an output with
// the given dimensions: "all" stands for every value, and the other
// dimensions name record fields.
func inGroup(r, dims map[string]string) bool {
	for k, v := range dims {
		if v == "all" || k == "aggregation_period" {
			continue
		}
		field := PrefixDimensions + k
		switch k {
		case "host":
			field = KeyHost
		case "project_id":
			field = KeyTenantID
		}
		if r[field] != v {
			return false
		}
	}
	return true
}

// TestConformanceInstanceUsage decodes every instance-usage row of the
// dataset and checks, for the stage-2 cases that are not rates, that the
// rows of each metric_id hold as many records as its expected outputs
// (including those the insert step drops) add up to.
func TestConformanceInstanceUsage(t *testing.T) {
	dir := conformancedata.Dir(t)
	for _, c := range conformancedata.Cases(t, dir) {
		if c.Stage != "second" {
			continue
		}
		t.Run(c.ID, func(t *testing.T) {
			usage := usageOf(t, filepath.Join(dir, c.TransformSpecs))
			records := map[string]int64{}
			var m InstanceUsage
			for _, path := range c.Data {
				for _, line := range conformancedata.Lines(t, filepath.Join(dir, path)) {
					err := DecodeInstanceUsage(line, &m)
					p := m.Records
					if err != nil {
						t.Fatalf("%s: %v\n%s", path, err, line)
					}
					date, _ := m.Field("usage_date")
					hour, _ := m.Field("usage_hour")
					if want, _ := time.Parse("2006-01-02 15", date+" "+hour); m.Start != want.UnixMilli() {
						t.Errorf("%s: timestamp %d, want %s %s:00", m.MetricID, m.Start, date, hour)
					}
					if p.FirstTime > p.LastTime && usage[m.MetricID][0] != "calculate_rate" {
						t.Errorf("%s: first %d after last %d", m.MetricID, p.FirstTime, p.LastTime)
					}
					records[m.MetricID] += p.Records
				}
			}
			want := map[string]int64{}
			for _, e := range append(c.Expected, c.Dropped...) {
				want[e.MetricID] += int64(e.ValueMeta.RecordCount)
			}
			for id, n := range want {
				if usage[id][0] != "calculate_rate" && records[id] != n {
					t.Errorf("%s: rows hold %d records, outputs %d", id, records[id], n)
				}
			}
		})
	}
}

// TestConformanceRateRows checks the partials of case D-stage2's rate rows:
// oldest and latest come from processing_meta.
func TestConformanceRateRows(t *testing.T) {
	dir := conformancedata.Dir(t)
	var got [][2]float64
	var m InstanceUsage
	for _, line := range conformancedata.Lines(t, filepath.Join(dir, "data", "metrics_pre_hourly_data", "metrics_pre_hourly_data.jsonl")) {
		err := DecodeInstanceUsage(line, &m)
		p := m.Records
		if err != nil {
			t.Fatal(err)
		}
		if m.MetricID == "swift_usage_rate" {
			got = append(got, [2]float64{p.FirstValue, p.LastValue})
		}
	}
	want := [][2]float64{{7291, 6575}, {6291, 5575}, {5291, 4575}}
	if len(got) != len(want) {
		t.Fatalf("rate rows %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rate row %d: oldest, latest %v, want %v", i, got[i], want[i])
		}
	}
}
