package recordstore

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// usageExample is the metrics_pre_hourly row of reference §2.3, from
// monasca-transform's test data.
const usageExample = `{"aggregated_metric_name":"pod.net.in_bytes_sec_agg","record_count":6.0,"user_id":"all","zone":"all","firstrecord_timestamp_string":"2016-06-20 11:24:59","tenant_id":"all","region":"all","usage_hour":"11","usage_date":"2016-06-20","processing_meta":{"metric_id":"pod_net_in_b_per_sec_per_app"},"resource_uuid":"all","aggregation_period":"hourly","host":"all","lastrecord_timestamp_string":"2016-06-20 11:29:44","firstrecord_timestamp_unix":1466421899.0,"project_id":"all","usage_minute":"all","lastrecord_timestamp_unix":1466422184.0,"quantity":150.0,"extra_data_map":{"dimensions#app":"wordpress"},"geolocation":"all"}`

// usageRate is a calculate_rate row of the same data.
const usageRate = `{"service_group":"all","geolocation":"all","aggregated_metric_name":"swiftlm.diskusage.rate_agg","record_count":34.0,"user_id":"all","zone":"all","firstrecord_timestamp_string":"2016-06-10 20:27:01","tenant_id":"all","region":"all","usage_hour":"20","usage_date":"2016-06-10","processing_meta":{"oldest_quantity":"7291.0","latest_timestamp_string":"2016-06-10 20:27:02","latest_quantity":"6575.0","metric_id":"swift_usage_rate","oldest_timestamp_string":"2016-06-10 20:27:01"},"resource_uuid":"all","aggregation_period":"hourly","host":"all","lastrecord_timestamp_string":"2016-06-10 20:27:02","firstrecord_timestamp_unix":1465590421.0,"project_id":"all","usage_minute":"all","lastrecord_timestamp_unix":1465590422.0,"quantity":15.6502}`

func utcMillis(layout, v string) int64 {
	t, err := time.Parse(layout, v)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestDecodeInstanceUsage(t *testing.T) {
	var m InstanceUsage
	err := DecodeInstanceUsage([]byte(usageExample), &m)
	p := m.Records
	if err != nil {
		t.Fatal(err)
	}
	wantP := windowagg.Partial{Records: 6, FirstTime: 1466421899000, FirstValue: 150, LastTime: 1466422184000, LastValue: 150}
	want := InstanceUsage{
		MetricID: "pod_net_in_b_per_sec_per_app",
		Fields: dims(
			"aggregated_metric_name", "pod.net.in_bytes_sec_agg", "user_id", "all", "zone", "all",
			"firstrecord_timestamp_string", "2016-06-20 11:24:59", "tenant_id", "all", "region", "all",
			"usage_hour", "11", "usage_date", "2016-06-20", "resource_uuid", "all", "aggregation_period", "hourly",
			"host", "all", "lastrecord_timestamp_string", "2016-06-20 11:29:44", "project_id", "all",
			"usage_minute", "all", "geolocation", "all", "dimensions#app", "wordpress"),
		Start:    utcMillis(timestampLayout, "2016-06-20 11:00:00"),
		Quantity: 150,
		Records:  wantP,
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("row\n%+v\nwant\n%+v", m, want)
	}
	if p != wantP {
		t.Errorf("partial %+v, want %+v", p, wantP)
	}
}

func TestDecodeInstanceUsageRate(t *testing.T) {
	var m InstanceUsage
	err := DecodeInstanceUsage([]byte(usageRate), &m)
	p := m.Records
	if err != nil {
		t.Fatal(err)
	}
	want := windowagg.Partial{
		Records:   34,
		FirstTime: utcMillis(timestampLayout, "2016-06-10 20:27:01"), FirstValue: 7291,
		LastTime: utcMillis(timestampLayout, "2016-06-10 20:27:02"), LastValue: 6575,
	}
	if p != want || m.MetricID != "swift_usage_rate" || m.Quantity != 15.6502 || m.Start != utcMillis(timestampLayout, "2016-06-10 20:00:00") {
		t.Errorf("row %+v partial %+v, want partial %+v", m, p, want)
	}
	// The rate entries are not dimensions.
	if _, ok := m.Field("oldest_quantity"); ok {
		t.Errorf("processing_meta entries among the dimensions: %q", m.Fields)
	}
}

// row builds an instance-usage row from the example's essentials and the
// members given, which replace the essentials of the same name (a
// repeated key keeps its last value).
func row(members ...string) string {
	essentials := `"processing_meta":{"metric_id":"m"},"usage_date":"2016-06-20","quantity":2.5,"record_count":3,` +
		`"firstrecord_timestamp_unix":1466421899,"lastrecord_timestamp_unix":1466422184`
	if len(members) == 0 {
		return "{" + essentials + "}"
	}
	return "{" + essentials + "," + strings.Join(members, ",") + "}"
}

func TestDecodeInstanceUsageFields(t *testing.T) {
	day := utcMillis(usageDateLayout, "2016-06-20")
	tests := []struct {
		name string
		in   string
		ts   int64
		dims []monasca.Dimension
		p    windowagg.Partial
	}{
		{"whole day", row(), day, dims("usage_date", "2016-06-20"), windowagg.Partial{}},
		{"hour", row(`"usage_hour":"23"`), day + 23*3600_000, nil, windowagg.Partial{}},
		{"hour and minute", row(`"usage_hour":"07"`, `"usage_minute":"59"`), day + 7*3600_000 + 59*60_000, nil, windowagg.Partial{}},
		{"hour NA", row(`"usage_hour":"NA"`, `"usage_minute":"NA"`), day, nil, windowagg.Partial{}},
		{"hour null", row(`"usage_hour":null`), day, nil, windowagg.Partial{}},
		{"minute all", row(`"usage_hour":"11"`, `"usage_minute":"all"`), day + 11*3600_000, nil, windowagg.Partial{}},
		{"extra_data_map fills what the row lacks",
			row(`"host":"h"`, `"tenant_id":null`, `"extra_data_map":{"host":"x","tenant_id":"t","dimensions#a":"1","n":2,"z":null}`), day,
			dims("usage_date", "2016-06-20", "host", "h", "tenant_id", "t", "dimensions#a", "1", "n", "2"), windowagg.Partial{}},
		{"non-string fields are not dimensions", row(`"b":true`, `"o":{"x":"y"}`, `"a":["z"]`, `"s":""`), day,
			dims("usage_date", "2016-06-20", "s", ""), windowagg.Partial{}},
		{"repeated key keeps its last value", row(`"host":"a"`, `"host":"b"`, `"quantity":7`), day,
			dims("usage_date", "2016-06-20", "host", "b"), windowagg.Partial{}},
		{"exact milliseconds", row(`"firstrecord_timestamp_unix":1466421899.001`, `"lastrecord_timestamp_unix":1.4664218990019999e9`), day, nil,
			windowagg.Partial{Records: 3, FirstTime: 1466421899001, FirstValue: 2.5, LastTime: 1466421899001, LastValue: 2.5}},
		{"zero and tiny exponents", row(`"firstrecord_timestamp_unix":0`, `"lastrecord_timestamp_unix":14664218990019E-4`), day, nil,
			windowagg.Partial{Records: 3, FirstTime: 0, FirstValue: 2.5, LastTime: 1466421899001, LastValue: 2.5}},
		{"metric_id as a number", row(`"processing_meta":{"metric_id":7}`), day, nil, windowagg.Partial{}},
	}
	var m InstanceUsage
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeInstanceUsage([]byte(tt.in), &m)
			p := m.Records
			if err != nil {
				t.Fatal(err)
			}
			if m.Start != tt.ts {
				t.Errorf("timestamp %d, want %d", m.Start, tt.ts)
			}
			if tt.dims != nil && !reflect.DeepEqual(m.Fields, tt.dims) {
				t.Errorf("dimensions %q, want %q", m.Fields, tt.dims)
			}
			if tt.p != (windowagg.Partial{}) && p != tt.p {
				t.Errorf("partial %+v, want %+v", p, tt.p)
			}
		})
	}
}

func dims(kv ...string) []monasca.Dimension {
	var d []monasca.Dimension
	for i := 0; i < len(kv); i += 2 {
		d = append(d, monasca.Dimension{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func TestDecodeInstanceUsageErrors(t *testing.T) {
	rate := `"processing_meta":{"metric_id":"m","oldest_timestamp_string":"2016-06-10 20:27:01","oldest_quantity":"7291.0","latest_timestamp_string":"2016-06-10 20:27:02","latest_quantity":"6575.0"}`
	tests := []struct{ name, in, want string }{
		{"empty", ``, "EOF"},
		{"not an object", `[1]`, "want a JSON object"},
		{"truncated", row()[:40], "unexpected EOF"},
		{"trailing data", row() + `{}`, "data after the JSON object"},
		{"invalid UTF-8", "{\"host\":\"\xff\"}", "invalid UTF-8"},
		{"no metric_id", row(`"processing_meta":{"event_type":"x"}`), "processing_meta.metric_id is missing"},
		{"empty metric_id", row(`"processing_meta":{"metric_id":""}`), "processing_meta.metric_id is missing"},
		{"processing_meta not an object", row(`"processing_meta":"m"`), "processing_meta: want an object"},
		{"extra_data_map an array", row(`"extra_data_map":[]`), "extra_data_map: want an object"},
		{"no usage_date", row(`"usage_date":null`), `usage_date "": want YYYY-MM-DD from 1970 on`},
		{"bad usage_date", row(`"usage_date":"2016-6-20"`), `usage_date "2016-6-20"`},
		{"usage_date a number", row(`"usage_date":20160620`), "usage_date: want a string"},
		{"usage_date before 1970", row(`"usage_date":"1969-12-31"`), `usage_date "1969-12-31": want YYYY-MM-DD from 1970 on`},
		{"hour 24", row(`"usage_hour":"24"`), `usage_hour "24": want two digits up to 23`},
		{"hour one digit", row(`"usage_hour":"7"`), `usage_hour "7"`},
		{"hour a number", row(`"usage_hour":11`), "usage_hour: want a string"},
		{"minute 60", row(`"usage_hour":"01"`, `"usage_minute":"60"`), `usage_minute "60"`},
		{"minute without hour", row(`"usage_minute":"15"`), `usage_minute "15" without a usage_hour`},
		{"no quantity", row(`"quantity":null`), "quantity is missing"},
		{"quantity a string", row(`"quantity":"2.5"`), `quantity: want a number, got "2.5"`},
		{"quantity overflows", row(`"quantity":1e999`), "quantity 1e999: out of range"},
		{"no record_count", `{"processing_meta":{"metric_id":"m"},"usage_date":"2016-06-20","quantity":1}`, "record_count is missing"},
		{"fractional record_count", row(`"record_count":4.5`), "record_count 4.5: want a whole number"},
		{"negative record_count", row(`"record_count":-1`), "record_count -1: want a whole number"},
		{"no first time", row(`"firstrecord_timestamp_unix":null`), "firstrecord_timestamp_unix is missing"},
		{"last time a string", row(`"lastrecord_timestamp_unix":"1466422184"`), "lastrecord_timestamp_unix: want a number"},
		{"negative time", row(`"firstrecord_timestamp_unix":-0.001`), "outside the years 1970 to 9999"},
		{"time in milliseconds", row(`"firstrecord_timestamp_unix":1466421899000`), "outside the years 1970 to 9999"},
		{"huge exponent", row(`"lastrecord_timestamp_unix":1e999999999`), "outside the years 1970 to 9999"},
		{"incomplete rate row", row(`"processing_meta":{"metric_id":"m","oldest_quantity":"1"}`),
			"needs all of oldest_timestamp_string, oldest_quantity, latest_timestamp_string, latest_quantity, but oldest_timestamp_string, latest_timestamp_string, latest_quantity missing"},
		{"bad rate time", row(strings.Replace(rate, "20:27:01", "20:27", 1)), `oldest_timestamp_string "2016-06-10 20:27": want YYYY-MM-DD HH:MM:SS`},
		{"rate quantity not a number", row(strings.Replace(rate, `"6575.0"`, `"abc"`, 1)), `latest_quantity "abc": want a finite number`},
		{"rate time before 1970", row(strings.Replace(rate, "2016-06-10 20:27:02", "0000-01-01 00:00:00", 1)), `latest_timestamp_string "0000-01-01 00:00:00": want YYYY-MM-DD HH:MM:SS from 1970 on`},
		{"rate quantity NaN", row(strings.Replace(rate, `"7291.0"`, `"NaN"`, 1)), `oldest_quantity "NaN": want a finite number`},
	}
	var m InstanceUsage
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeInstanceUsage([]byte(tt.in), &m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A complete rate row needs no unix times.
	if err := DecodeInstanceUsage([]byte(`{"usage_date":"2016-06-10","quantity":1,"record_count":2,`+rate+`}`), &m); err != nil {
		t.Errorf("rate row without unix times: %v", err)
	}
}

func TestDecodeInstanceUsageReusesDimensions(t *testing.T) {
	var m InstanceUsage
	if err := DecodeInstanceUsage([]byte(usageExample), &m); err != nil {
		t.Fatal(err)
	}
	before := &m.Fields[:1][0]
	if err := DecodeInstanceUsage([]byte(row()), &m); err != nil {
		t.Fatal(err)
	}
	if &m.Fields[0] != before || len(m.Fields) != 1 {
		t.Errorf("dimensions %q did not reuse their array", m.Fields)
	}
}
