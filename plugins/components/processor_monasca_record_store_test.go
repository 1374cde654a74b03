package components

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
	"github.com/monasca-connect/monasca-connect/internal/streamtest"
)

// rsSpecs are pre-transform specs of monasca-transform's test spec file,
// JSON lines as the original stored them, with a blank line.
const rsSpecs = `{"event_processing_params":{"set_default_zone_to":"1","set_default_geolocation_to":"1","set_default_region_to":"W"},"event_type":"cpu.total_logical_cores","metric_id_list":["cpu_total_all","cpu_total_host","cpu_util_all","cpu_util_host"],"required_raw_fields_list":["creation_time"]}
{"event_processing_params":{"set_default_zone_to":"1","set_default_geolocation_to":"1","set_default_region_to":"W"},"event_type":"vcpus","metric_id_list":["vcpus_all","vcpus_project"],"required_raw_fields_list":["creation_time","dimensions#project_id","dimensions#resource_id"]}

{"event_processing_params":{"set_default_zone_to":"1","set_default_geolocation_to":"1","set_default_region_to":"W"},"event_type":"pod.net.in_bytes_sec","metric_id_list":["pod_net_in_b_per_sec_total_all"],"required_raw_fields_list":["creation_time","meta#tenantId","dimensions#namespace"]}
{"event_type":"plain","metric_id_list":["plain_all"],"required_raw_fields_list":[]}
`

func rsWriteFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pre_transform_specs.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func rsNewProcessor(t *testing.T, specsPath, extra string) *recordStoreProcessor {
	t.Helper()
	conf, err := recordStoreProcessorSpec().ParseYAML(fmt.Sprintf("pre_transform_specs: %s\n%s", specsPath, extra), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newRecordStoreProcessorFromConfig(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rsProcess runs one envelope through p and returns the records as JSON
// objects.
func rsProcess(t *testing.T, p *recordStoreProcessor, envelope string) []map[string]any {
	t.Helper()
	batch, err := p.Process(context.Background(), service.NewMessage([]byte(envelope)))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, msg := range batch {
		b, err := msg.AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("output %s: %v", b, err)
		}
		out = append(out, rec)
	}
	return out
}

func TestRecordStoreRecord(t *testing.T) {
	p := rsNewProcessor(t, rsWriteFile(t, rsSpecs), "")
	msg := service.NewMessage([]byte(`{"metric":{"name":"vcpus","dimensions":{"project_id":"8647","resource_id":"b1a7","region":"useast"},"timestamp":1453308042123.9,"value":1.0,` +
		`"value_meta":{"host":"comp0037","deleted_at":"","vcpus":1}},"meta":{"tenantId":"225b","region":"unset"},"creation_time":1458166131}`))
	msg.MetaSetMut("kafka_key", "k")
	batch, err := p.Process(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event_timestamp_unix":1453308042.123,"event_timestamp_string":"2016-01-20 16:40:42","event_type":"vcpus","event_quantity_name":"vcpus",` +
		`"event_quantity":1,"resource_uuid":"b1a7","tenant_id":"8647","user_id":"NA","region":"unset","zone":"1","host":"comp0037",` +
		`"event_date":"2016-01-20","event_hour":"16","event_minute":"40","event_second":"42","metric_group":"%[1]s","metric_id":"%[1]s",` +
		`"meta":{"region":"unset","tenantId":"225b"},"dimensions":{"project_id":"8647","region":"useast","resource_id":"b1a7"},` +
		`"value_meta":{"deleted_at":"","host":"comp0037","vcpus":"1"}}`
	if len(batch) != 2 {
		t.Fatalf("%d records, want 2", len(batch))
	}
	for i, id := range []string{"vcpus_all", "vcpus_project"} {
		b, _ := batch[i].AsBytes()
		if w := fmt.Sprintf(want, id); string(b) != w {
			t.Errorf("record %d\n%s\nwant\n%s", i, b, w)
		}
		if k, _ := batch[i].MetaGetMut("kafka_key"); k != "k" {
			t.Errorf("record %d lost the input's metadata: %v", i, k)
		}
	}
}

func TestRecordStoreFanOut(t *testing.T) {
	p := rsNewProcessor(t, rsWriteFile(t, rsSpecs), "")
	recs := rsProcess(t, p, `{"metric":{"name":"cpu.total_logical_cores","dimensions":{"hostname":"comp0027"},"timestamp":1457366963000,"value":8},"meta":{"tenantId":"t","region":"useast"},"creation_time":1}`)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r["metric_id"].(string))
		if r["host"] != "comp0027" || r["event_quantity"] != 8.0 || r["metric_group"] != r["metric_id"] {
			t.Errorf("record %v", r)
		}
	}
	if want := []string{"cpu_total_all", "cpu_total_host", "cpu_util_all", "cpu_util_host"}; !slices.Equal(ids, want) {
		t.Errorf("metric ids %q, want %q", ids, want)
	}
}

func TestRecordStoreDerivedFields(t *testing.T) {
	envelope := func(dims, valueMeta, meta string) string {
		return `{"metric":{"name":"cpu.total_logical_cores","dimensions":` + dims + `,"timestamp":1457366963000,"value":8,"value_meta":` + valueMeta +
			`},"meta":` + meta + `,"creation_time":1}`
	}
	tests := []struct {
		name, envelope string
		want           map[string]string
	}{
		{"nothing to derive from", envelope(`{}`, `null`, `{}`),
			map[string]string{"tenant_id": "NA", "user_id": "NA", "resource_uuid": "NA", "region": "W", "zone": "1", "host": "NA"}},
		{"first candidates", envelope(`{"tenantId":"a","tenant_id":"b","project_id":"c","instanceId":"i","resource_id":"r","hostname":"h"}`, `{"host":"vm"}`,
			`{"tenantId":"m","userId":"u","region":"R","zone":"Z"}`),
			map[string]string{"tenant_id": "a", "user_id": "u", "resource_uuid": "i", "region": "R", "zone": "Z", "host": "h"}},
		{"empty values fall through", envelope(`{"tenantId":"","tenant_id":"","project_id":"c","instanceId":"","resource_id":"r","hostname":""}`, `{"host":"vm"}`,
			`{"tenantId":"m","userId":"","region":"","zone":""}`),
			map[string]string{"tenant_id": "c", "user_id": "NA", "resource_uuid": "r", "region": "W", "zone": "1", "host": "vm"}},
		{"tenant_id second candidate", envelope(`{"tenant_id":"b","project_id":"c"}`, `null`, `{"tenantId":"m"}`),
			map[string]string{"tenant_id": "b", "user_id": "NA", "resource_uuid": "NA", "region": "W", "zone": "1", "host": "NA"}},
	}
	p := rsNewProcessor(t, rsWriteFile(t, rsSpecs), "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := rsProcess(t, p, tt.envelope)
			if len(recs) != 4 {
				t.Fatalf("%d records, want 4", len(recs))
			}
			for k, v := range tt.want {
				if recs[0][k] != v {
					t.Errorf("%s = %v, want %q", k, recs[0][k], v)
				}
			}
		})
	}
}

// TestRecordStoreVcpusHost is monasca-transform's vcpus case: the metric has
// no hostname dimension, so host comes from value_meta.host, and the
// project from dimensions.project_id.
func TestRecordStoreVcpusHost(t *testing.T) {
	p := rsNewProcessor(t, rsWriteFile(t, rsSpecs), "")
	recs := rsProcess(t, p, `{"metric":{"name":"vcpus","dimensions":{"region":"useast","unit":"vcpu","resource_id":"b1a7","source":"openstack","project_id":"9647","user_id":"a69a","type":"gauge"},`+
		`"timestamp":1453308005000,"value":3.0,"value_meta":{"host":"test-cp1-comp0012-mgmt","state":"active"}},"meta":{"tenantId":"225b","region":"unset"},"creation_time":1458166131}`)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for _, r := range recs {
		if r["host"] != "test-cp1-comp0012-mgmt" || r["tenant_id"] != "9647" || r["user_id"] != "NA" || r["region"] != "unset" {
			t.Errorf("record %v", r)
		}
	}
}

func TestRecordStoreDrops(t *testing.T) {
	p := rsNewProcessor(t, rsWriteFile(t, rsSpecs), "")
	for name, envelope := range map[string]string{
		"unmatched":                `{"metric":{"name":"cpu.idle_perc","timestamp":1457366963000,"value":8},"creation_time":1}`,
		"creation_time missing":    `{"metric":{"name":"cpu.total_logical_cores","timestamp":1457366963000,"value":8}}`,
		"required dimension empty": `{"metric":{"name":"vcpus","dimensions":{"project_id":"p","resource_id":""},"timestamp":1457366963000,"value":1},"creation_time":1}`,
		"required meta missing":    `{"metric":{"name":"pod.net.in_bytes_sec","dimensions":{"namespace":"n","tenantId":"t"},"timestamp":1457366963000,"value":1},"creation_time":1}`,
		"invalid envelope":         `{"metric":{"name":"cpu.total_logical_cores","timestamp":1457366963000,"value":"NaN"},"creation_time":1}`,
		"not JSON":                 `not json`,
	} {
		if recs := rsProcess(t, p, envelope); len(recs) != 0 {
			t.Errorf("%s: %d records, want none", name, len(recs))
		}
	}
}

func TestRecordStoreSecondResolution(t *testing.T) {
	const envelope = `{"metric":{"name":"plain","timestamp":1457366963999,"value":8}}`
	for extra, want := range map[string]float64{"": 1457366963.999, "second_resolution: false": 1457366963.999, "second_resolution: true": 1457366963} {
		recs := rsProcess(t, rsNewProcessor(t, rsWriteFile(t, rsSpecs), extra), envelope)
		if len(recs) != 1 || recs[0]["event_timestamp_unix"] != want || recs[0]["event_second"] != "23" {
			t.Errorf("%q: %v, want event_timestamp_unix %v", extra, recs, want)
		}
	}
}

func TestRecordStoreConfigErrors(t *testing.T) {
	for name, tt := range map[string]struct{ specs, want string }{
		"missing file": {"", "no such file"},
		"invalid spec": {`{"event_type":"a","metric_id_list":[]}` + "\n" + `{"event_type":"a","metric_id_list":["x"],"required_raw_fields_list":["tags#x"]}`,
			`specification 2 ("a"): required_raw_fields_list: entry 0 ("tags#x") is not a field the record store can check`},
	} {
		path := filepath.Join(t.TempDir(), "missing.json")
		if tt.specs != "" {
			path = rsWriteFile(t, tt.specs)
		}
		conf, err := recordStoreProcessorSpec().ParseYAML("pre_transform_specs: "+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = newRecordStoreProcessorFromConfig(conf, service.MockResources())
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "pre_transform_specs: ") {
			t.Errorf("%s: error %v, want one containing %q", name, err, tt.want)
		}
	}
}

// rsCounters is a metrics exporter that records counters, to check the
// processor's in a running stream.
type rsCounters struct {
	mu     sync.Mutex
	counts map[string]int64
}

// NewCounterCtor keys counters by name and reason label, as
// "name[reason]"; the framework adds labels of its own.
func (c *rsCounters) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	reason := slices.Index(labelKeys, "reason")
	return func(labelValues ...string) service.MetricsExporterCounter {
		key := name
		if reason >= 0 {
			key += "[" + labelValues[reason] + "]"
		}
		return rsCounter{c: c, key: key}
	}
}

func (c *rsCounters) NewTimerCtor(string, ...string) service.MetricsExporterTimerCtor {
	return func(...string) service.MetricsExporterTimer { return rsNop{} }
}

func (c *rsCounters) NewGaugeCtor(string, ...string) service.MetricsExporterGaugeCtor {
	return func(...string) service.MetricsExporterGauge { return rsNop{} }
}

func (c *rsCounters) Close(context.Context) error { return nil }

type rsCounter struct {
	c   *rsCounters
	key string
}

func (r rsCounter) Incr(n int64) {
	r.c.mu.Lock()
	r.c.counts[r.key] += n
	r.c.mu.Unlock()
}

func (r rsCounter) IncrFloat64(f float64) { r.Incr(int64(f)) }

type rsNop struct{}

func (rsNop) Timing(int64)        {}
func (rsNop) Set(int64)           {}
func (rsNop) SetFloat64(float64)  {}
func (rsNop) Incr(int64)          {}
func (rsNop) IncrFloat64(float64) {}
func (rsNop) Decr(int64)          {}
func (rsNop) DecrFloat64(float64) {}

// TestRecordStoreStream runs the processor in a stream, as a pipeline
// would, and checks its output and its skip counter.
func TestRecordStoreStream(t *testing.T) {
	counters := &rsCounters{counts: map[string]int64{}}
	env := service.NewEnvironment()
	if err := env.RegisterMetricsExporter("rs_counters", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) { return counters, nil }); err != nil {
		t.Fatal(err)
	}
	var batches []service.MessageBatch
	for _, envelope := range []string{
		`{"metric":{"name":"cpu.total_logical_cores","dimensions":{"hostname":"h"},"timestamp":1457366963000,"value":8},"creation_time":1}`,
		`{"metric":{"name":"cpu.total_logical_cores","timestamp":1457366963000,"value":8}}`,
		`{"metric":{"name":"vcpus","dimensions":{"project_id":"p"},"timestamp":1457366963000,"value":1},"creation_time":1}`,
		`{"metric":{"name":"plain","timestamp":1457366963000,"value":NaN}}`,
		`{"metric":{"name":"plain","timestamp":"1457366963000","value":1}}`,
		`{"metric":{"name":"unknown","timestamp":1457366963000,"value":1}}`,
		`{`,
		`{"metric":{"name":"plain","timestamp":1457366963000,"value":1}}`,
	} {
		batches = append(batches, service.MessageBatch{service.NewMessage([]byte(envelope))})
	}
	var ids []string
	for _, msg := range (streamtest.Options{Env: env, MetricsYAML: "rs_counters: {}"}).RunProcessor(t,
		"monasca_record_store:\n  pre_transform_specs: "+rsWriteFile(t, rsSpecs), batches...) {
		b, _ := msg.AsBytes()
		var rec struct {
			MetricID string `json:"metric_id"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.MetricID)
	}

	slices.Sort(ids)
	if want := []string{"cpu_total_all", "cpu_total_host", "cpu_util_all", "cpu_util_host", "plain_all"}; !slices.Equal(ids, want) {
		t.Errorf("records %q, want %q", ids, want)
	}
	counters.mu.Lock()
	defer counters.mu.Unlock()
	for key, want := range map[string]int64{
		"monasca_records_skipped_total[missing_required_field]": 2,
		"monasca_records_skipped_total[non_finite_value]":       1,
		"monasca_records_skipped_total[wrong_type]":             1,
		"monasca_records_skipped_total[malformed_json]":         1,
	} {
		if got := counters.counts[key]; got != want {
			t.Errorf("%s = %d, want %d (all: %v)", key, got, want, counters.counts)
		}
	}
}

// TestRecordStoreConformance runs every envelope of monasca-transform's
// kafka_data test resource through the processor with the test specs, and
// checks the records against the expected outputs of case E: for each,
// the records of its metric_id, hour and group must be as many as its
// record_count. The dataset is found by conformancedata.Dir and not copied.
func TestRecordStoreConformance(t *testing.T) {
	dir := conformancedata.Dir(t)
	cases := conformancedata.Cases(t, dir)
	i := slices.IndexFunc(cases, func(c conformancedata.Case) bool { return c.ID == "E" })
	if i < 0 {
		t.Fatal("case E not found")
	}
	e := cases[i]
	p := rsNewProcessor(t, filepath.Join(dir, e.PreTransformSpecs), "")

	// The usage component of each transform spec, and for
	// fetch_quantity_util the event type whose records it counts.
	usage := map[string][2]string{}
	for _, line := range conformancedata.Lines(t, filepath.Join(dir, e.TransformSpecs)) {
		var s struct {
			MetricID string `json:"metric_id"`
			Params   struct {
				Pipeline     struct{ Usage string } `json:"aggregation_pipeline"`
				UtilQuantity string                 `json:"usage_fetch_util_quantity_event_type"`
			} `json:"aggregation_params_map"`
		}
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatal(err)
		}
		usage[s.MetricID] = [2]string{s.Params.Pipeline.Usage, s.Params.UtilQuantity}
	}

	var records []map[string]any
	for _, line := range conformancedata.Lines(t, filepath.Join(dir, e.Data[0])) {
		for _, r := range rsProcess(t, p, string(line)) {
			unix := time.UnixMilli(int64(r["event_timestamp_unix"].(float64) * 1000)).UTC()
			if s := unix.Format("2006-01-02 15:04:05"); r["event_timestamp_string"] != s || r["event_date"] != s[:10] ||
				r["event_hour"] != s[11:13] || r["event_minute"] != s[14:16] || r["event_second"] != s[17:] {
				t.Errorf("record times disagree: %v", r)
			}
			records = append(records, r)
		}
	}
	for _, want := range e.Expected {
		first, err := time.Parse("2006-01-02 15:04:05", want.ValueMeta.First)
		if err != nil {
			t.Fatal(err)
		}
		hour := first.Truncate(time.Hour).Format("2006-01-02 15")
		u := usage[want.MetricID]
		n := 0
		for _, r := range records {
			if r["metric_id"] != want.MetricID || r["event_date"].(string)+" "+r["event_hour"].(string) != hour ||
				u[0] == "fetch_quantity_util" && r["event_type"] != u[1] || !rsInGroup(r, want.Dimensions) {
				continue
			}
			n++
		}
		if u[0] == "calculate_rate" {
			n *= 2 // it counts the records once for oldest, once for latest
		}
		if float64(n) != want.ValueMeta.RecordCount {
			t.Errorf("%s %v: %d records, want %v", want.MetricID, want.Dimensions, n, want.ValueMeta.RecordCount)
		}
	}
}

// rsInGroup reports whether a record belongs to the group of an output
// with the given dimensions; "all" stands for every value.
func rsInGroup(r map[string]any, dims map[string]string) bool {
	for k, v := range dims {
		var got any
		switch k {
		case "aggregation_period":
			continue
		case "host":
			got = r["host"]
		case "project_id":
			got = r["tenant_id"]
		default:
			got = r["dimensions"].(map[string]any)[k]
		}
		if v != "all" && got != v {
			return false
		}
	}
	return true
}
