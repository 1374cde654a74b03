package monascaspec

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// These tests run compiled rules in the engine on records and
// instance-usage rows built here the way the record converter and the
// instance-usage decoder build them, and compare with the values of the
// conformance dataset's README (cases A, B, C, D).

var source = windowagg.Source{Stream: "test"}

// runRules feeds samples (plain, or with a partial) through an engine
// with rules and returns every aggregate.
func runRules(t *testing.T, rules []windowagg.Rule, inputs ...input) []windowagg.Aggregate {
	t.Helper()
	now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := windowagg.New(windowagg.Config{
		Window: time.Hour, Lag: time.Minute, IdleTimeout: time.Minute, MaxFuture: 24 * time.Hour * 365 * 20,
		Clock: func() time.Time { return now },
	}, rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		var res windowagg.AddResult
		if in.partial != nil {
			res = e.AddPartial(source, in.sample, *in.partial)
		} else {
			res = e.AddSample(source, in.sample)
		}
		if res.Matched == 0 {
			t.Fatalf("%+v matched no rule", in.sample)
		}
	}
	return e.FlushAll(nil)
}

type input struct {
	sample  *windowagg.Sample
	partial *windowagg.Partial
}

// record builds a record of the record store as the engine sees it: a
// sample named by metricID with the record fields as dimensions, "NA" where
// absent.
func record(metricID, eventType string, ts int64, value float64, kv ...string) input {
	m := &windowagg.Sample{Name: metricID, Timestamp: ts, Value: value}
	fields := map[string]string{"event_type": eventType, "metric_id": metricID}
	for _, f := range recordFields[2:] {
		fields[f] = "NA"
	}
	for i := 0; i < len(kv); i += 2 {
		fields[kv[i]] = kv[i+1]
	}
	for k, v := range fields {
		m.Dimensions = append(m.Dimensions, monasca.Dimension{Key: k, Value: v})
	}
	return input{sample: m}
}

// want is an expected final metric.
type want struct {
	name        string
	dims        map[string]string
	value       float64
	records     int64
	first, last string // UTC, timestampLayout
}

// check compares aggregates with the expected metrics as the dataset's
// rules say: unordered, matched by name and dimensions, values equal to
// 1e-9 relative.
func check(t *testing.T, got []windowagg.Aggregate, wants ...want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d aggregates, want %d: %+v", len(got), len(wants), got)
	}
	format := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(timestampLayout) }
	dimsOf := func(a windowagg.Aggregate) map[string]string {
		dims := map[string]string{}
		for _, d := range a.Dimensions {
			dims[d.Key] = d.Value
		}
		return dims
	}
	for _, w := range wants {
		i := slices.IndexFunc(got, func(a windowagg.Aggregate) bool { return a.Name == w.name && reflect.DeepEqual(dimsOf(a), w.dims) })
		if i < 0 {
			t.Errorf("no aggregate %s %v in %+v", w.name, w.dims, got)
			continue
		}
		if a := got[i]; !near(a.Value, w.value) || a.Count != w.records || format(a.FirstTime) != w.first || format(a.LastTime) != w.last {
			t.Errorf("%s %v:\n got %v records %d %s..%s\nwant %v records %d %s..%s", w.name, w.dims,
				a.Value, a.Count, format(a.FirstTime), format(a.LastTime), w.value, w.records, w.first, w.last)
		}
	}
}

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// readJSONLines decodes every line of a file of the dataset.
func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(conformancedata.Dir(t), path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// envelopeRecords turns the dataset's envelopes of the given metric names
// into records of metricID, with the host and the listed dimensions: as much
// of the record converter as the cases need.
func envelopeRecords(t *testing.T, path, metricID string, names []string, dimensions ...string) []input {
	var out []input
	for _, env := range readJSONLines(t, path) {
		m := env["metric"].(map[string]any)
		if !slices.Contains(names, m["name"].(string)) {
			continue
		}
		dims := m["dimensions"].(map[string]any)
		kv := []string{"host", dims["hostname"].(string)}
		for _, d := range dimensions {
			kv = append(kv, "dimensions#"+d, dims[d].(string))
		}
		out = append(out, record(metricID, m["name"].(string), int64(m["timestamp"].(float64)), m["value"].(float64), kv...))
	}
	return out
}

// hourly are the dimensions of most cases' outputs.
var hourly = map[string]string{"aggregation_period": "hourly", "host": "all", "project_id": "all"}

func TestTransformRulesFetchQuantity(t *testing.T) {
	// Case A: four mem.total_mb samples of one host, grouped by host and
	// rolled up by host.
	const t0 = 1453308000000 // 2016-01-20 16:40:00
	var records []input
	for i, v := range []float64{4096, 2048, 8192, 1024} {
		ts := t0 + []int64{0, 16_000, 31_000, 46_000}[i]
		records = append(records, record("mem_total_all", "mem.total_mb", ts, v, "host", "mini-mon", "tenant_id", "583d49ab6aca482da653dd838deaf538"))
	}
	for op, value := range map[string]float64{"latest": 1024, "oldest": 4096, "max": 8192, "min": 1024, "avg": 3840, "sum": 15360} {
		t.Run(op, func(t *testing.T) {
			specs := loadConformanceSpecs(t, "cases/A/pre_transform_specs.jsonl", "cases/A/transform_specs_"+op+".jsonl", TransformOptions{})
			check(t, runRules(t, specs.Rules, records...), want{"mem.total_mb_agg",
				map[string]string{"aggregation_period": "hourly", "host": "mini-mon", "project_id": "all"},
				value, 4, "2016-01-20 16:40:00", "2016-01-20 16:40:46"})
		})
	}
}

func TestTransformRulesFetchQuantityLatestByProject(t *testing.T) {
	// Case C: the latest vcpus of every host, summed per project.
	const t0 = 1453308000000 // 2016-01-20 16:40:00
	const p1, p2 = "8647fd5030b04a799b0411cc38c4102d", "9647fd5030b04a799b0411cc38c4102d"
	var records []input
	for _, r := range []struct {
		project, host string
		second        int64
		value         float64
	}{
		{p1, "comp0037", 0, 1}, {p1, "comp0037", 20, 2}, {p1, "comp0037", 30, 3}, {p1, "comp0037", 32, 3}, {p1, "comp0037", 38, 2}, {p1, "comp0037", 42, 1},
		{p2, "comp0294", 5, 1}, {p2, "comp0294", 36, 2}, {p2, "comp0294", 46, 3},
		{p2, "comp0158", 10, 2}, {p2, "comp0158", 25, 3}, {p2, "comp0158", 40, 1},
		{p2, "comp0009", 15, 2}, {p2, "comp0009", 34, 2},
	} {
		records = append(records, record("vcpus_project", "vcpus", t0+r.second*1000, r.value, "host", r.host, "tenant_id", r.project))
	}
	specs := loadConformanceSpecs(t, "cases/C/pre_transform_specs_by_project.jsonl", "cases/C/transform_specs_by_project.jsonl", TransformOptions{})
	check(t, runRules(t, specs.Rules, records...),
		want{"vcpus_agg", map[string]string{"aggregation_period": "hourly", "host": "all", "project_id": p1}, 1, 6, "2016-01-20 16:40:00", "2016-01-20 16:40:42"},
		want{"vcpus_agg", map[string]string{"aggregation_period": "hourly", "host": "all", "project_id": p2}, 6, 8, "2016-01-20 16:40:05", "2016-01-20 16:40:46"},
	)
}

func TestTransformRulesFetchQuantityUtil(t *testing.T) {
	// Case B: utilised cores per host from the total and the idle
	// percentage, summed over the hosts.
	names := []string{"cpu.total_logical_cores", "cpu.idle_perc"}
	records := envelopeRecords(t, "data/cpu_kafka_data/cpu_kafka_data.jsonl", "cpu_util_all", names)
	for op, value := range map[string]float64{"latest": 7.7700000000000005, "oldest": 9.52, "avg": 7.134214285714285} {
		t.Run(op, func(t *testing.T) {
			specs := loadConformanceSpecs(t, "cases/B/pre_transform_specs.jsonl", "cases/B/transform_specs_"+op+".jsonl", TransformOptions{})
			check(t, runRules(t, specs.Rules, records...), want{"cpu.utilized_logical_cores_agg", hourly, value, 13, "2016-03-07 16:09:23", "2016-03-07 16:10:38"})
		})
	}

	// Without the idle readings of one host its utilisation is unknown;
	// the original counted that host as fully busy.
	var partial []input
	for _, r := range records {
		if host, _ := r.sample.Dimension("host"); host != "test-cp1-comp0333-mgmt" || !hasEventType(r, "cpu.idle_perc") {
			partial = append(partial, r)
		}
	}
	for _, compat := range []bool{false, true} {
		specs := loadConformanceSpecs(t, "cases/B/pre_transform_specs.jsonl", "cases/B/transform_specs_latest.jsonl", TransformOptions{UtilMissingIdleIsBusy: compat})
		if compat {
			// 1.12 for comp0027, and comp0333's latest total of 10.
			check(t, runRules(t, specs.Rules, partial...), want{"cpu.utilized_logical_cores_agg", hourly, 1.12 + 10, 13, "2016-03-07 16:09:23", "2016-03-07 16:10:38"})
		} else {
			check(t, runRules(t, specs.Rules, partial...), want{"cpu.utilized_logical_cores_agg", hourly, 1.12, 7, "2016-03-07 16:09:23", "2016-03-07 16:10:38"})
		}
	}
}

func hasEventType(in input, eventType string) bool {
	v, _ := in.sample.Dimension("event_type")
	return v == eventType
}

func TestTransformRulesCalculateRate(t *testing.T) {
	// Case D: the swift disk rate, the percentage by which the available
	// space shrank, over four (host, mount) groups within one second.
	records := envelopeRecords(t, "data/kafka_data/kafka_data.jsonl", "swift_usage_rate", []string{"swiftlm.diskusage.host.val.avail"}, "mount")
	run := func(opts TransformOptions) []windowagg.Aggregate {
		specs := loadConformanceSpecs(t, "test/pre_transform_specs.jsonl", "test/transform_specs.jsonl", opts)
		return runRules(t, []windowagg.Rule{ruleNamed(t, specs.Rules, "swift_usage_rate")}, records...)
	}
	const second = "2016-06-10 20:27:01"
	// The original: L = Σ averages = 3363.4285714285716, O = Σ oldest =
	// 1128+916+1526+914 = 4484, and every record counted twice.
	check(t, run(TransformOptions{RateLatestIsAverage: true, RateDoubleRecordCount: true}),
		want{"swiftlm.diskusage.rate_agg", hourly, 24.990442207212947, 34, second, second})
	// Correct: L = Σ latest samples = 904+916+901+0.
	check(t, run(TransformOptions{}),
		want{"swiftlm.diskusage.rate_agg", hourly, (4484.0 - 2721) / 4484 * 100, 17, second, second})
}

// usageRow turns an instance-usage row of the dataset into the input of a
// pre-hourly rule, as the instance-usage decoder does: the row's string
// fields and extra_data_map entries as dimensions, stamped at the start of
// its usage hour, with its record count and first and last records (for
// rate rows, the oldest and latest quantities) as a partial.
func usageRow(t *testing.T, row map[string]any) input {
	t.Helper()
	meta := row["processing_meta"].(map[string]any)
	start, err := time.Parse("2006-01-02 15", row["usage_date"].(string)+" "+row["usage_hour"].(string))
	if err != nil {
		t.Fatal(err)
	}
	quantity := row["quantity"].(float64)
	m := &windowagg.Sample{Name: meta["metric_id"].(string), Timestamp: start.UnixMilli(), Value: quantity}
	for k, v := range row {
		if s, ok := v.(string); ok {
			m.Dimensions = append(m.Dimensions, monasca.Dimension{Key: k, Value: s})
		}
	}
	extra, _ := row["extra_data_map"].(map[string]any)
	for k, v := range extra {
		if _, present := m.Dimension(k); !present {
			m.Dimensions = append(m.Dimensions, monasca.Dimension{Key: k, Value: v.(string)})
		}
	}
	p := &windowagg.Partial{
		Records:   int64(row["record_count"].(float64)),
		FirstTime: int64(row["firstrecord_timestamp_unix"].(float64) * 1000), FirstValue: quantity,
		LastTime: int64(row["lastrecord_timestamp_unix"].(float64) * 1000), LastValue: quantity,
	}
	if oldest, ok := meta["oldest_quantity"].(string); ok {
		parse := func(key string) int64 {
			ts, err := time.Parse(timestampLayout, meta[key].(string))
			if err != nil {
				t.Fatal(err)
			}
			return ts.UnixMilli()
		}
		p.FirstTime, p.LastTime = parse("oldest_timestamp_string"), parse("latest_timestamp_string")
		var err1, err2 error
		p.FirstValue, err1 = strconv.ParseFloat(oldest, 64)
		p.LastValue, err2 = strconv.ParseFloat(meta["latest_quantity"].(string), 64)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
	}
	return input{sample: m, partial: p}
}

// usageRows reads the instance-usage rows of a dataset file that belong to
// metricID.
func usageRows(t *testing.T, path, metricID string) []input {
	var out []input
	for _, row := range readJSONLines(t, path) {
		if row["processing_meta"].(map[string]any)["metric_id"] == metricID {
			out = append(out, usageRow(t, row))
		}
	}
	return out
}

func TestTransformPreHourlyRules(t *testing.T) {
	t.Run("A2 avg", func(t *testing.T) {
		// Six rows of one group; aggregation_period is grouped, so it
		// comes from the rows.
		specs := loadConformanceSpecs(t, "cases/A2/pre_transform_specs.jsonl", "cases/A2/transform_specs_avg.jsonl", TransformOptions{})
		rows := usageRows(t, "data/fetch_quantity_data_second_stage/fetch_quantity_data_second_stage.jsonl", "mem_total_all")
		check(t, runRules(t, specs.PreHourly, rows...), want{"mem.total_mb_agg",
			map[string]string{"aggregation_period": "prehourly", "host": "mini-mon", "project_id": "all"},
			1446.5, 39, "2016-01-20 16:40:00", "2016-01-20 17:40:00"})
	})

	specs := loadConformanceSpecs(t, "test/pre_transform_specs.jsonl", "test/transform_specs.jsonl", TransformOptions{})
	const preHourly = "data/metrics_pre_hourly_data/metrics_pre_hourly_data.jsonl"
	t.Run("F per app", func(t *testing.T) {
		// Grouped by dimensions#app from extra_data_map; the dimensions
		// outside the group, and names that are no field, read "all".
		const id = "pod_net_in_b_per_sec_per_app"
		got := runRules(t, []windowagg.Rule{ruleNamed(t, specs.PreHourly, id)}, usageRows(t, preHourly, id)...)
		dims := map[string]string{"aggregation_period": "hourly", "app": "wordpress", "namespace": "all", "pod_name": "all", "interface": "all", "deployment": "all"}
		check(t, got, want{"pod.net.in_bytes_sec_agg", dims, 175, 14, "2016-06-20 11:24:59", "2016-06-20 11:39:44"})
	})
	t.Run("D rate", func(t *testing.T) {
		// O = 7291, the oldest quantity of the earliest row, and L = 4575,
		// the latest quantity of the latest row. The original counted the
		// records of those two rows (68); the rule counts every row's
		// records once (3 × 34). Its last record is the latest row's
		// latest sample, where the original took that row's
		// lastrecord_timestamp_string, which the test data sets to
		// 20:27:02 in every row.
		const id = "swift_usage_rate"
		got := runRules(t, []windowagg.Rule{ruleNamed(t, specs.PreHourly, id)}, usageRows(t, preHourly, id)...)
		check(t, got, want{"swiftlm.diskusage.rate_agg", hourly, 37.25140584281991, 102, "2016-06-10 20:27:01", "2016-06-10 20:47:02"})
	})
}

func TestInsertNamerFields(t *testing.T) {
	// How the insert step reads each field of fetch rows, rolled-up rows
	// and fetch rows without project_id, for a minutely spec.
	first := time.Date(2016, 1, 20, 16, 40, 5, 0, time.UTC).UnixMilli()
	row := &windowagg.Row{
		Keys:   []string{"host", "tenant_id", "dimensions#app"},
		Values: []string{"h1", "t1", "wordpress"},
		State:  windowagg.State{FirstTime: first, LastTime: first + 50_000},
	}
	fields := []string{
		"host", "tenant_id", "user_id", "geolocation", "project_id", "aggregated_metric_name", "aggregation_period",
		"usage_date", "usage_hour", "usage_minute", "usage_second", "event_date", "event_minute", "event_second",
		"dimensions#app", "dimensions#namespace", "interface", "firstrecord_timestamp_string", "lastrecord_timestamp_string",
	}
	for _, tt := range []struct {
		name  string
		namer insertNamer
		want  []string
	}{
		{"fetch", insertNamer{periodLevel: 3},
			[]string{"h1", "t1", "NA", "NA", "t1", "NA", "NA", "2016-01-20", "16", "40", "all", "2016-01-20", "40", "all", "wordpress", "all", "all", "2016-01-20 16:40:05", "2016-01-20 16:40:55"}},
		{"fetch latest", insertNamer{periodLevel: 3, noProjectID: true, metricName: "x_agg", period: "minutely"},
			[]string{"h1", "t1", "NA", "NA", "all", "x_agg", "minutely", "2016-01-20", "16", "40", "all", "2016-01-20", "40", "all", "wordpress", "all", "all", "2016-01-20 16:40:05", "2016-01-20 16:40:55"}},
		{"rolled up", insertNamer{periodLevel: 3, rolled: true},
			[]string{"h1", "t1", "all", "all", "t1", "all", "all", "2016-01-20", "16", "40", "all", "all", "all", "all", "wordpress", "all", "all", "2016-01-20 16:40:05", "2016-01-20 16:40:55"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range fields {
				got = append(got, tt.namer.field(row, f))
			}
			if !reflect.DeepEqual(got, tt.want) {
				for i := range fields {
					if got[i] != tt.want[i] {
						t.Errorf("%s: got %q, want %q", fields[i], got[i], tt.want[i])
					}
				}
			}
		})
	}

	n := insertNamer{dimensions: []string{"project_id", "dimensions#app", "host", "value_meta#host"}, rolled: true, metricName: "x_agg"}
	name, dims, ok := n.Name(nil, row, true)
	if want := []monasca.Dimension{{Key: "app", Value: "wordpress"}, {Key: "host", Value: "all"}, {Key: "project_id", Value: "t1"}}; name != "x_agg" || !ok || !reflect.DeepEqual(dims, want) {
		t.Errorf("got %q %v %v, want x_agg %v", name, dims, ok, want)
	}
}

// TestTransformRulesNewOperations runs case A's specification with this
// build's operations of fetch_quantity and rollup_quantity: the four
// samples 4096, 2048, 8192, 1024 of one host. Their population standard
// deviation is 2685.5...; their 95th percentile is the value at rank 2 of
// 0..3, 4096, within 1 %; as a counter they rise by 6144 and reset twice
// (to 2048, to 1024), an increase of 6144 + 2048 + 1024 = 9216.
func TestTransformRulesNewOperations(t *testing.T) {
	const t0 = 1453308000000 // 2016-01-20 16:40:00
	var records []input
	for i, v := range []float64{4096, 2048, 8192, 1024} {
		ts := t0 + []int64{0, 16_000, 31_000, 46_000}[i]
		records = append(records, record("mem_total_all", "mem.total_mb", ts, v, "host", "mini-mon", "tenant_id", "583d49ab6aca482da653dd838deaf538"))
	}
	dir := filepath.Join(conformancedata.Dir(t), "specs", "cases", "A")
	pre, err := os.ReadFile(filepath.Join(dir, "pre_transform_specs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(dir, "transform_specs_avg.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	mean := (4096.0 + 2048 + 8192 + 1024) / 4
	ss := 0.0
	for _, v := range []float64{4096, 2048, 8192, 1024} {
		ss += (v - mean) * (v - mean)
	}
	for _, tt := range []struct {
		fetch, rollup string
		value, within float64
	}{
		{"stddev", "sum", math.Sqrt(ss / 4), 1e-9},
		{"p95", "sum", 4096, 0.01},
		{"increase", "sum", 9216, 1e-9},
		{"avg", "p99", 3840, 0.01}, // one host: the p99 of one value
	} {
		t.Run(tt.fetch+"/"+tt.rollup, func(t *testing.T) {
			spec := strings.Replace(string(base), `"usage_fetch_operation":"avg"`, `"usage_fetch_operation":"`+tt.fetch+`"`, 1)
			spec = strings.Replace(spec, `"setter_rollup_operation":"sum"`, `"setter_rollup_operation":"`+tt.rollup+`"`, 1)
			specs, _, err := ParseTransformSpecs(pre, []byte(spec), "pre", "transform", TransformOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := runRules(t, specs.Rules, records...)
			if len(got) != 1 || math.Abs(got[0].Value-tt.value) > tt.within*tt.value {
				t.Fatalf("got %+v, want %v within %v", got, tt.value, tt.within)
			}
		})
	}
}
