package recordstore

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// testSpecs are pre-transform specs of monasca-transform's test spec file
// (specs/test/pre_transform_specs.jsonl), and one without defaults.
var testSpecs = []Spec{
	{EventType: "cpu.total_logical_cores", MetricIDs: []string{"cpu_total_all", "cpu_total_host", "cpu_util_all", "cpu_util_host"},
		RequiredFields: []string{"creation_time"}, DefaultRegion: "W", DefaultZone: "1"},
	{EventType: "vcpus", MetricIDs: []string{"vcpus_all", "vcpus_project"},
		RequiredFields: []string{"creation_time", "dimensions#project_id", "dimensions#resource_id"}, DefaultRegion: "W", DefaultZone: "1"},
	{EventType: "pod.net.in_bytes_sec", MetricIDs: []string{"pod_net_in_b_per_sec_total_all"},
		RequiredFields: []string{"creation_time", "meta#tenantId", "dimensions#namespace"}, DefaultRegion: "W", DefaultZone: "1"},
	{EventType: "swift.rate", MetricIDs: []string{"swift_usage_rate"}, RequiredFields: []string{"value_meta#record_count"}},
	{EventType: "plain", MetricIDs: []string{"plain_all"}},
}

func newTestConverter(t testing.TB, opts ...Option) *Converter {
	t.Helper()
	c, err := NewConverter(testSpecs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decode decodes an envelope as the record store needs it.
func decode(t testing.TB, envelope string) *monasca.Metric {
	t.Helper()
	d := monasca.Decoder{KeepMaps: true}
	var m monasca.Metric
	if err := d.Decode([]byte(envelope), &m); err != nil {
		t.Fatalf("Decode(%s): %v", envelope, err)
	}
	return &m
}

// env builds an envelope from the JSON texts of its parts; empty parts are
// left out.
func env(name, dims, valueMeta, meta, creationTime string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"metric":{"name":%q,"timestamp":1453308000123,"value":2.5`, name)
	if dims != "" {
		b.WriteString(`,"dimensions":` + dims)
	}
	if valueMeta != "" {
		b.WriteString(`,"value_meta":` + valueMeta)
	}
	b.WriteString("}")
	if meta != "" {
		b.WriteString(`,"meta":` + meta)
	}
	if creationTime != "" {
		b.WriteString(`,"creation_time":` + creationTime)
	}
	return b.String() + "}"
}

// fields returns the derived fields of a record, without the maps.
func fields(r *Record) map[string]string {
	out := map[string]string{}
	for _, d := range r.Fields[:fixedKeys] {
		out[d.Key] = d.Value
	}
	return out
}

func TestNewConverterErrors(t *testing.T) {
	specs := []Spec{
		{EventType: "a", MetricIDs: []string{"a1"}, RequiredFields: []string{"creation_time", "dimensions#x", "meta#y", "value_meta#z"}},
		{EventType: "a", MetricIDs: []string{"a2"}},
		{EventType: "", MetricIDs: []string{"e"}},
		{EventType: "b"},
		{EventType: "c", MetricIDs: []string{"c1", "", "c1"}},
		{EventType: "d", MetricIDs: []string{"d1"}, RequiredFields: []string{"", "dimensions#", "meta#", "value_meta#", "metric", "tags#x", "Creation_time"}},
	}
	_, err := NewConverter(specs)
	if err == nil {
		t.Fatal("NewConverter accepted invalid specs")
	}
	want := []string{
		`pre-transform spec 2 (event_type "a"): event_type repeats an earlier spec's`,
		`pre-transform spec 3 (event_type ""): event_type is empty`,
		`pre-transform spec 5 (event_type "c"): metric_id_list[1] is empty`,
		`pre-transform spec 5 (event_type "c"): metric_id_list repeats "c1"`,
		`pre-transform spec 6 (event_type "d"): required field "": want creation_time, dimensions#<key>, meta#<key> or value_meta#<key>`,
		`required field "dimensions#"`, `required field "meta#"`, `required field "value_meta#"`,
		`required field "metric"`, `required field "tags#x"`, `required field "Creation_time"`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "spec 1 ") {
		t.Errorf("error blames the valid spec 1:\n%s", msg)
	}
	if _, err := NewConverter(testSpecs); err != nil {
		t.Errorf("valid specs: %v", err)
	}
}

func TestConvertDerivedFields(t *testing.T) {
	const ct = "1458166131"
	tests := []struct {
		name     string
		envelope string
		want     map[string]string // derived fields that differ from none
	}{
		{"nothing to derive from", env("plain", "", "", "", ""), nil},
		{"tenant_id from dimensions tenantId first",
			env("plain", `{"tenantId":"a","tenant_id":"b","project_id":"c"}`, "", "", ""), map[string]string{KeyTenantID: "a"}},
		{"tenant_id from tenant_id second",
			env("plain", `{"tenantId":"","tenant_id":"b","project_id":"c"}`, "", "", ""), map[string]string{KeyTenantID: "b"}},
		{"tenant_id from project_id third",
			env("plain", `{"project_id":"c","tenant_id":""}`, "", "", ""), map[string]string{KeyTenantID: "c"}},
		{"tenant_id never from meta.tenantId",
			env("plain", "", "", `{"tenantId":"m","region":"r"}`, ""), map[string]string{KeyRegion: "r"}},
		{"user_id from meta userId", env("plain", `{"userId":"dim"}`, `{"userId":"vm"}`, `{"userId":"u"}`, ""), map[string]string{KeyUserID: "u"}},
		{"user_id empty", env("plain", "", "", `{"userId":""}`, ""), nil},
		{"resource_uuid from instanceId first",
			env("plain", `{"resource_id":"r","instanceId":"i"}`, "", "", ""), map[string]string{KeyResourceUUID: "i"}},
		{"resource_uuid from resource_id second",
			env("plain", `{"instanceId":"","resource_id":"r"}`, "", "", ""), map[string]string{KeyResourceUUID: "r"}},
		{"region and zone from meta", env("cpu.total_logical_cores", "", "", `{"region":"R","zone":"Z"}`, ct),
			map[string]string{KeyRegion: "R", KeyZone: "Z"}},
		{"region and zone default to the spec's", env("cpu.total_logical_cores", "", "", `{"region":"","zone":null}`, ct),
			map[string]string{KeyRegion: "W", KeyZone: "1"}},
		{"region not from dimensions", env("plain", `{"region":"useast","zone":"z"}`, "", "", ""), nil},
		{"host from dimensions hostname first",
			env("plain", `{"hostname":"h"}`, `{"host":"vm"}`, "", ""), map[string]string{KeyHost: "h"}},
		{"host from value_meta host second",
			env("plain", `{"hostname":""}`, `{"host":"vm"}`, "", ""), map[string]string{KeyHost: "vm"}},
		{"host not from a dimension host", env("plain", `{"host":"d"}`, "", "", ""), nil},
		{"vcpus", `{"metric":{"name":"vcpus","dimensions":{"region":"useast","unit":"vcpu","resource_id":"b1a7","source":"openstack","project_id":"8647","user_id":"a69a","type":"gauge"},` +
			`"timestamp":1453308000000,"value":1.0,"value_meta":{"host":"test-cp1-comp0037-mgmt","deleted_at":"","vcpus":"1"}},"meta":{"tenantId":"225b","region":"unset"},"creation_time":1458166131}`,
			map[string]string{KeyTenantID: "8647", KeyResourceUUID: "b1a7", KeyRegion: "unset", KeyZone: "1", KeyHost: "test-cp1-comp0037-mgmt"}},
	}
	c := newTestConverter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := decode(t, tt.envelope)
			recs, out := c.Convert(m, nil)
			if out.Status != Converted || len(recs) == 0 {
				t.Fatalf("Convert = %v, %d records", out, len(recs))
			}
			want := map[string]string{KeyTenantID: "NA", KeyUserID: "NA", KeyResourceUUID: "NA", KeyRegion: "NA", KeyZone: "NA", KeyHost: "NA"}
			for k, v := range tt.want {
				want[k] = v
			}
			got := fields(&recs[0])
			delete(got, KeyEventType)
			delete(got, KeyMetricID)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("derived fields\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestConvertLayout(t *testing.T) {
	c := newTestConverter(t)
	m := decode(t, `{"metric":{"name":"vcpus","dimensions":{"project_id":"p","resource_id":"r"},"timestamp":1453308000123.9,"value":3,`+
		`"value_meta":{"host":"h","n":6.0}},"meta":{"tenantId":"t","region":"useast"},"creation_time":1}`)
	recs, out := c.Convert(m, nil)
	if out != (Outcome{Status: Converted}) {
		t.Fatalf("outcome %+v", out)
	}
	want := Record{
		MetricID: "vcpus_all",
		Fields: dims(
			KeyEventType, "vcpus", KeyMetricID, "vcpus_all", KeyTenantID, "p", KeyUserID, "NA",
			KeyResourceUUID, "r", KeyRegion, "useast", KeyZone, "1", KeyHost, "h",
			"dimensions#project_id", "p", "dimensions#resource_id", "r",
			"meta#tenantId", "t", "meta#region", "useast",
			"value_meta#host", "h", "value_meta#n", "6.0"),
		Timestamp: 1453308000123, Value: 3, Region: "useast",
	}
	if len(recs) != 2 || !reflect.DeepEqual(recs[0], want) {
		t.Fatalf("records %+v\nwant first %+v", recs, want)
	}
	want.MetricID = "vcpus_project"
	want.Fields[metricIDIndex].Value = "vcpus_project"
	if !reflect.DeepEqual(recs[1], want) {
		t.Errorf("second record %+v\nwant %+v", recs[1], want)
	}
}

func TestConvertFanOut(t *testing.T) {
	c := newTestConverter(t)
	m := decode(t, env("cpu.total_logical_cores", `{"hostname":"comp0027"}`, "", `{"tenantId":"t","region":"r"}`, "1"))
	// Records are appended after what dst holds.
	prior := Record{MetricID: "prior"}
	recs, out := c.Convert(m, []Record{prior})
	if out.Status != Converted {
		t.Fatalf("outcome %+v", out)
	}
	if recs[0].MetricID != "prior" {
		t.Errorf("dst[0] overwritten: %+v", recs[0])
	}
	recs = recs[1:]
	var names []string
	for _, r := range recs {
		names = append(names, r.MetricID)
		if id, _ := r.Field(KeyMetricID); id != r.MetricID {
			t.Errorf("record %s has metric_id %q", r.MetricID, id)
		}
		if h, _ := r.Field(KeyHost); h != "comp0027" || r.Value != 2.5 || r.Timestamp != 1453308000123 {
			t.Errorf("record %+v", r)
		}
	}
	if want := []string{"cpu_total_all", "cpu_total_host", "cpu_util_all", "cpu_util_host"}; !slices.Equal(names, want) {
		t.Errorf("records %q, want %q", names, want)
	}
	// Each record owns its fields.
	recs[0].Fields[2].Value = "changed"
	for _, r := range recs[1:] {
		if r.Fields[2].Value == "changed" {
			t.Errorf("record %s shares its fields with the first", r.MetricID)
		}
	}
}

func TestConvertRequiredFields(t *testing.T) {
	tests := []struct {
		name, envelope string
		missing        string // "" when converted
	}{
		{"all present", env("vcpus", `{"project_id":"p","resource_id":"r"}`, "", "", "1"), ""},
		{"creation_time as a string", env("vcpus", `{"project_id":"p","resource_id":"r"}`, "", "", `"x"`), ""},
		{"creation_time absent", env("vcpus", `{"project_id":"p","resource_id":"r"}`, "", "", ""), "creation_time"},
		{"creation_time null", env("vcpus", `{"project_id":"p","resource_id":"r"}`, "", "", "null"), "creation_time"},
		{"creation_time empty", env("vcpus", `{"project_id":"p","resource_id":"r"}`, "", "", `""`), "creation_time"},
		{"dimension absent", env("vcpus", `{"resource_id":"r"}`, "", "", "1"), "dimensions#project_id"},
		{"dimension empty", env("vcpus", `{"project_id":"p","resource_id":""}`, "", "", "1"), "dimensions#resource_id"},
		{"dimension in meta does not count", env("vcpus", `{"project_id":"p"}`, "", `{"resource_id":"r"}`, "1"), "dimensions#resource_id"},
		{"meta entry", env("pod.net.in_bytes_sec", `{"namespace":"n"}`, "", `{"tenantId":"t"}`, "1"), ""},
		{"meta entry absent", env("pod.net.in_bytes_sec", `{"namespace":"n","tenantId":"t"}`, "", `{}`, "1"), "meta#tenantId"},
		{"meta entry null", env("pod.net.in_bytes_sec", `{"namespace":"n"}`, "", `{"tenantId":null}`, "1"), "meta#tenantId"},
		{"value_meta number", env("swift.rate", "", `{"record_count":6.0}`, "", ""), ""},
		{"value_meta empty string", env("swift.rate", "", `{"record_count":""}`, "", ""), "value_meta#record_count"},
		{"value_meta not an object", env("swift.rate", "", `"record_count"`, "", ""), "value_meta#record_count"},
	}
	c := newTestConverter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []Record{{MetricID: "prior"}}
			recs, out := c.Convert(decode(t, tt.envelope), dst)
			switch {
			case tt.missing == "" && out.Status != Converted:
				t.Errorf("outcome %+v, want converted", out)
			case tt.missing != "" && out != (Outcome{Status: MissingRequiredField, Field: tt.missing}):
				t.Errorf("outcome %+v, want missing %s", out, tt.missing)
			case tt.missing != "" && len(recs) != 1:
				t.Errorf("dst changed to %+v", recs)
			}
		})
	}
}

func TestConvertUnmatched(t *testing.T) {
	c := newTestConverter(t)
	dst := make([]Record, 1, 4)
	recs, out := c.Convert(decode(t, env("cpu.idle_perc", `{"hostname":"h"}`, "", "", "1")), dst)
	if out != (Outcome{Status: Unmatched}) || len(recs) != 1 {
		t.Errorf("outcome %+v, %d records", out, len(recs))
	}
}

func TestConvertSecondResolution(t *testing.T) {
	m := decode(t, env("plain", "", "", "", ""))
	for _, tt := range []struct {
		opts []Option
		want int64
	}{
		{nil, 1453308000123},
		{[]Option{SecondResolution(false)}, 1453308000123},
		{[]Option{SecondResolution(true)}, 1453308000000},
	} {
		recs, _ := newTestConverter(t, tt.opts...).Convert(m, nil)
		if recs[0].Timestamp != tt.want {
			t.Errorf("%d options: timestamp %d, want %d", len(tt.opts), recs[0].Timestamp, tt.want)
		}
	}
	for _, tt := range []struct{ ms, want int64 }{{1999, 1000}, {2000, 2000}, {-1, -1000}, {-1000, -1000}, {-1001, -2000}} {
		if got := windowagg.WindowStart(tt.ms, 1000); got != tt.want {
			t.Errorf("truncating %d gives %d, want %d", tt.ms, got, tt.want)
		}
	}
}

// TestConvertKeysSurviveGrowth converts a metric with more map entries than
// the key buffer holds, so that it grows in the middle of a Convert, and
// checks every key, also after a Clone converts something else.
func TestConvertKeysSurviveGrowth(t *testing.T) {
	var dims, vm []string
	for i := range 40 {
		dims = append(dims, fmt.Sprintf(`"d%02d":"v%d"`, i, i))
		vm = append(vm, fmt.Sprintf(`"m%02d":%d`, i, i))
	}
	c := newTestConverter(t)
	recs, _ := c.Convert(decode(t, env("plain", "{"+strings.Join(dims, ",")+"}", "{"+strings.Join(vm, ",")+"}", "", "")), nil)
	clone := c.Clone()
	if _, out := clone.Convert(decode(t, env("plain", `{"zz":"zz"}`, "", "", "")), nil); out.Status != Converted {
		t.Fatal(out)
	}
	got := recs[0].Fields[fixedKeys:]
	if len(got) != 80 {
		t.Fatalf("%d map entries, want 80", len(got))
	}
	for i := range 40 {
		if d := got[i]; d.Key != fmt.Sprintf("dimensions#d%02d", i) || d.Value != fmt.Sprint("v", i) {
			t.Errorf("entry %d: %+v", i, d)
		}
		if d := got[40+i]; d.Key != fmt.Sprintf("value_meta#m%02d", i) || d.Value != fmt.Sprint(i) {
			t.Errorf("entry %d: %+v", 40+i, d)
		}
	}
}

func TestConvertAllocs(t *testing.T) {
	c := newTestConverter(t)
	m := decode(t, `{"metric":{"name":"cpu.total_logical_cores","dimensions":{"hostname":"comp0027","service":"monitoring","component":"monasca-agent"},"timestamp":1453308000000,"value":8,`+
		`"value_meta":{"host":"h"}},"meta":{"tenantId":"t","region":"r"},"creation_time":1}`)
	recs, _ := c.Convert(m, nil)
	allocs := testing.AllocsPerRun(1000, func() {
		var out Outcome
		if recs, out = c.Convert(m, recs[:0]); out.Status != Converted || len(recs) != 4 {
			t.Fatal(out)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Convert, want 0", allocs)
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Converted: "converted", Unmatched: "unmatched", MissingRequiredField: "missing_required_field", 9: "Status(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
	}
}
