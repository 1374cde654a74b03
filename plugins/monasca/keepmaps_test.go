package monasca

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// entries builds a []Dimension from key/value pairs; nil for none, as an
// empty Meta or ValueMeta is compared after normalising to nil.
func entries(kv ...string) []Dimension {
	var d []Dimension
	for i := 0; i < len(kv); i += 2 {
		d = append(d, Dimension{kv[i], kv[i+1]})
	}
	return d
}

func TestDecodeKeepMaps(t *testing.T) {
	// vcpus is an envelope of monasca-transform's kafka_data test
	// resource, shortened: numbers as strings, empty strings, and the host
	// only in value_meta.
	const vcpus = `{"metric":{"name":"vcpus","dimensions":{"resource_id":"b1a7","project_id":"8647"},"timestamp":1453308000000,"value":1.0,` +
		`"value_meta":{"host":"comp0037","deleted_at":"","vcpus":"1","state":"active"}},"meta":{"tenantId":"225b","region":"unset"},"creation_time":1458166131}`

	tests := []struct {
		name         string
		in           string
		meta, vmeta  []Dimension
		creationTime string
	}{
		{"vcpus", vcpus,
			entries("tenantId", "225b", "region", "unset"),
			entries("host", "comp0037", "deleted_at", "", "vcpus", "1", "state", "active"),
			"1458166131"},
		{"monasca-transform example with null value_meta", transformExample,
			entries("region", "RegionOne", "tenantId", "d6bece1bbeff47c1b8734cd4e544dc02"), nil, "1523323489"},
		{"non-string values as their JSON text",
			`{"metric":{` + base + `,"value_meta":{"n":6.0,"e":-1.5E+3,"t":true,"f":false,"o":{"a": [1, "\u00e9"]},"a":[],"nan":NaN}},` +
				`"meta":{"tenantId":"t","userId":7,"zone":null,"x":{"y":[true]},"region":"r"},"creation_time":1489000000.25}`,
			entries("tenantId", "t", "userId", "7", "x", `{"y":[true]}`, "region", "r"),
			entries("n", "6.0", "e", "-1.5E+3", "t", "true", "f", "false", "o", `{"a": [1, "\u00e9"]}`, "a", "[]", "nan", "NaN"),
			"1489000000.25"},
		{"escaped keys and values are unescaped",
			`{"metric":{` + base + `,"value_meta":{"h\u006fst":"a\nb"}},"meta":{"tenant\u0049d":"t","z\u006fne":"\u00e9"},"creation_time":"\u0031"}`,
			entries("tenantId", "t", "zone", "é"), entries("host", "a\nb"), "1"},
		{"repeated key keeps its first position and last value",
			`{"metric":{` + base + `,"value_meta":{"a":"1","b":"2","a":"3"}},"meta":{"region":"x","tenantId":"t","region":"r"}}`,
			entries("region", "r", "tenantId", "t"), entries("a", "3", "b", "2"), ""},
		{"repeated key whose last value is null is absent",
			`{"metric":{` + base + `,"value_meta":{"a":"1","b":"2","a":null,"c":null}},"meta":{"tenantId":"t","region":"r","tenantId":null}}`,
			entries("region", "r"), entries("b", "2"), ""},
		{"repeated value_meta replaces",
			`{"metric":{` + base + `,"value_meta":{"a":"1"},"value_meta":{"b":"2"}}}`, nil, entries("b", "2"), ""},
		{"value_meta that is not an object has no entries",
			`{"metric":{` + base + `,"value_meta":{"a":"1"},"value_meta":"{\"b\":\"2\"}"}}`, nil, nil, ""},
		{"value_meta array", `{"metric":{` + base + `,"value_meta":[{"a":"1"}]}}`, nil, nil, ""},
		{"repeated metric replaces value_meta",
			`{"metric":{"value_meta":{"a":"1"}},"metric":{` + base + `}}`, nil, nil, ""},
		{"repeated meta replaces",
			`{"metric":{` + base + `},"meta":{"zone":"z","region":"x"},"meta":{"region":"r"}}`, entries("region", "r"), nil, ""},
		{"creation_time empty string", `{"metric":{` + base + `},"creation_time":""}`, nil, nil, ""},
		{"creation_time null", `{"metric":{` + base + `},"creation_time":null}`, nil, nil, ""},
		{"creation_time object", `{"metric":{` + base + `},"creation_time":{"s":1}}`, nil, nil, `{"s":1}`},
		{"repeated creation_time", `{"creation_time":1,"metric":{` + base + `},"creation_time":2}`, nil, nil, "2"},
		{"empty maps", `{"metric":{` + base + `,"value_meta":{}},"meta":{},"creation_time":0}`, nil, nil, "0"},
	}
	keep := Decoder{KeepMaps: true}
	var plain Decoder
	var m, p Metric
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := keep.Decode([]byte(tt.in), &m); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := []any{nilIfEmpty(m.Meta), nilIfEmpty(m.ValueMeta), m.CreationTime}
			want := []any{tt.meta, tt.vmeta, tt.creationTime}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("meta, value_meta, creation_time =\n%q\nwant\n%q", got, want)
			}
			// KeepMaps adds fields and changes nothing else.
			if err := plain.Decode([]byte(tt.in), &p); err != nil {
				t.Fatalf("Decode without KeepMaps: %v", err)
			}
			if !equalMetrics(m, p) {
				t.Errorf("with KeepMaps\n%+v\nwithout\n%+v", m, p)
			}
			if len(p.Meta) != 0 || len(p.ValueMeta) != 0 || p.CreationTime != "" {
				t.Errorf("without KeepMaps: meta %q value_meta %q creation_time %q, want none", p.Meta, p.ValueMeta, p.CreationTime)
			}
		})
	}
}

func nilIfEmpty(d []Dimension) []Dimension {
	if len(d) == 0 {
		return nil
	}
	return d
}

func TestDecodeKeepMapsErrors(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		// Repeats and nulls do not count.
		b.WriteString(`"k0":"again","gone":null`)
		return b.String()
	}
	tests := []struct {
		name   string
		in     string
		reason Reason
		field  string
	}{
		{"too many value_meta entries", `{"metric":{` + base + `,"value_meta":{` + many(MaxMapEntries+1) + `}}}`, ReasonTooManyMapEntries, "metric.value_meta"},
		{"too many meta entries", `{"metric":{` + base + `},"meta":{` + many(MaxMapEntries+1) + `}}`, ReasonTooManyMapEntries, "meta"},
		{"invalid UTF-8 in value_meta", "{\"metric\":{" + base + ",\"value_meta\":{\"a\":[\"\xfe\"]}}}", ReasonInvalidUTF8, "metric.value_meta"},
		{"malformed value_meta", `{"metric":{` + base + `,"value_meta":{"a":}}}`, ReasonMalformedJSON, "metric.value_meta"},
		{"malformed creation_time", `{"metric":{` + base + `},"creation_time":"\q"}`, ReasonMalformedJSON, "creation_time"},
		{"tenantId must still be a string", `{"metric":{` + base + `},"meta":{"tenantId":1}}`, ReasonWrongType, "meta.tenantId"},
	}
	d := Decoder{KeepMaps: true}
	var m Metric
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Decode([]byte(tt.in), &m)
			de, ok := err.(*DecodeError)
			if !ok {
				t.Fatalf("Decode = %v, want a *DecodeError", err)
			}
			if de.Reason != tt.reason || de.Field != tt.field {
				t.Errorf("Decode = %v: reason %q field %q, want reason %q field %q", err, de.Reason, de.Field, tt.reason, tt.field)
			}
		})
	}
	// The limit counts distinct keys.
	in := `{"metric":{` + base + `,"value_meta":{` + many(MaxMapEntries) + `}}}`
	if err := d.Decode([]byte(in), &m); err != nil || len(m.ValueMeta) != MaxMapEntries {
		t.Errorf("%d distinct keys: %v, %d entries", MaxMapEntries, err, len(m.ValueMeta))
	}
}

// TestDecodeKeepMapsScratch checks that escaped keys and values of the maps
// survive later escaped strings and skipped values, which reuse the scratch
// buffer.
func TestDecodeKeepMapsScratch(t *testing.T) {
	in := `{"metric":{"value_meta":{"k\u0031":"v\u0031","skip":{"x":"\u0041\u0042"},"k\u0032":"v\u0032"},` +
		`"name":"n\u0041","timestamp":1489000000000,"value":1,"x":["\u0043"]},"meta":{"\u0074enantId":"\u0074"},"creation_time":"\u0035"}`
	d := Decoder{KeepMaps: true}
	var m Metric
	if err := d.Decode([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	wantVM := entries("k1", "v1", "skip", `{"x":"\u0041\u0042"}`, "k2", "v2")
	if m.Name != "nA" || !reflect.DeepEqual(m.ValueMeta, wantVM) || !reflect.DeepEqual(m.Meta, entries("tenantId", "t")) || m.CreationTime != "5" {
		t.Errorf("got %+v", m)
	}
}

func TestDecodeKeepMapsAllocs(t *testing.T) {
	b := []byte(`{"metric":{"name":"vcpus","dimensions":{"resource_id":"b1a7"},"timestamp":1453308000000,"value":1.0,` +
		`"value_meta":{"host":"comp0037","deleted_at":"","vcpus":1,"o":{"a":"\u0041"}}},"meta":{"tenantId":"225b","region":"unset","userId":"u\u0031"},"creation_time":1458166131}`)
	if allocs := decodeAllocs(t, &Decoder{KeepMaps: true}, b); allocs != 0 {
		t.Errorf("%v allocations per Decode with KeepMaps, want 0", allocs)
	}
}
