package monasca

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// transformExample is the input example of monasca-transform's
// docs/data_formats.md, with its fractional timestamp.
const transformExample = `{"metric":{"timestamp":1523323485360.6650390625,"name":"monasca.collection_time_sec",
  "dimensions":{"hostname":"devstack","component":"monasca-agent","service":"monitoring"},
  "value":0.0340659618,"value_meta":null},
 "meta":{"region":"RegionOne","tenantId":"d6bece1bbeff47c1b8734cd4e544dc02"},"creation_time":1523323489}`

// envelope builds an envelope around a metric body with a valid meta.
func envelope(metric string) string {
	return `{"metric":{` + metric + `},"meta":{"tenantId":"t","region":"r"},"creation_time":1489000000}`
}

// base is a valid metric body for envelope.
const base = `"name":"n","dimensions":{"a":"1"},"timestamp":1489000000000,"value":2`

func TestDecodeSuccess(t *testing.T) {
	dims := func(kv ...string) []Dimension {
		var d []Dimension
		for i := 0; i < len(kv); i += 2 {
			d = append(d, Dimension{kv[i], kv[i+1]})
		}
		return d
	}
	want := func(name string, ts int64, v float64, d []Dimension) Metric {
		return Metric{Name: name, Dimensions: d, Timestamp: ts, Value: v, TenantID: "t", Region: "r"}
	}
	std := want("n", 1489000000000, 2, dims("a", "1"))
	long := strings.Repeat("x", 255)
	var many strings.Builder
	var manyDims []Dimension
	for i := range DefaultMaxDimensions {
		fmt.Fprintf(&many, `"k%d":"v%d",`, i, i)
		manyDims = append(manyDims, Dimension{fmt.Sprint("k", i), fmt.Sprint("v", i)})
	}
	manyBody := strings.TrimSuffix(many.String(), ",")

	tests := []struct {
		name string
		in   string
		want Metric
	}{
		{"monasca-transform example", transformExample, Metric{
			Name:       "monasca.collection_time_sec",
			Dimensions: dims("hostname", "devstack", "component", "monasca-agent", "service", "monitoring"),
			Timestamp:  1523323485360, Value: 0.0340659618,
			TenantID: "d6bece1bbeff47c1b8734cd4e544dc02", Region: "RegionOne",
		}},
		{"monasca-aggregator example",
			`{"metric":{"name":"metric2","dimensions":{"service":"0","hostname":"1"},"timestamp":1489000000000,"value":2.0,"value_meta":{}},"meta":{"tenantId":"abc","region":"useast"},"creation_time":1489000000}`,
			Metric{Name: "metric2", Dimensions: dims("service", "0", "hostname", "1"), Timestamp: 1489000000000, Value: 2, TenantID: "abc", Region: "useast"}},
		{"members in reverse order",
			`{"creation_time":1,"meta":{"region":"r","tenantId":"t"},"metric":{"value":2,"timestamp":1489000000000,"dimensions":{"a":"1"},"name":"n"}}`, std},
		{"whitespace everywhere",
			" \t\r\n{ \"metric\" :\n{ \"name\" : \"n\" , \"dimensions\" : { \"a\" : \"1\" } , \"timestamp\" : 1489000000000 , \"value\" : 2 } ,\r\n\"meta\" : { \"tenantId\" : \"t\" , \"region\" : \"r\" } } \n\t ", std},
		{"unknown members with nested values",
			`{"x":{"a":[1,-2.5e3,true,false,null,{"b":[[]]},"s\"\\\u00e9"]},"metric":{"y":[{},{"z":{}}],` + base + `,"w":"\ud83d\ude00"},"meta":{"tenantId":"t","o":{"p":[0]},"region":"r"},"z":-0}`, std},
		{"value_meta object of mixed types", envelope(base + `,"value_meta":{"record_count":6.0,"s":"x","o":{"a":[1]},"n":null,"b":true}`), std},
		{"value_meta string", envelope(base + `,"value_meta":"{}"`), std},
		{"value_meta with Python non-finite tokens", envelope(base + `,"value_meta":{"a":NaN,"b":Infinity,"c":-Infinity,"d":[NaN]}`), std},
		{"creation_time float", `{"metric":{` + base + `},"meta":{"tenantId":"t","region":"r"},"creation_time":1489000000.25}`, std},
		{"creation_time string", `{"metric":{` + base + `},"meta":{"tenantId":"t","region":"r"},"creation_time":"1489000000"}`, std},
		{"creation_time missing", `{"metric":{` + base + `},"meta":{"tenantId":"t","region":"r"}}`, std},
		{"meta with non-string members", `{"metric":{` + base + `},"meta":{"userId":7,"tenantId":"t","x":{"y":[true]},"region":"r","z":null}}`, std},
		{"meta missing", `{"metric":{` + base + `}}`, Metric{Name: "n", Dimensions: dims("a", "1"), Timestamp: 1489000000000, Value: 2}},
		{"meta null", `{"metric":{` + base + `},"meta":null}`, Metric{Name: "n", Dimensions: dims("a", "1"), Timestamp: 1489000000000, Value: 2}},
		{"tenantId and region null", `{"metric":{` + base + `},"meta":{"tenantId":null,"region":null}}`, Metric{Name: "n", Dimensions: dims("a", "1"), Timestamp: 1489000000000, Value: 2}},
		{"repeated meta replaces", `{"metric":{` + base + `},"meta":{"tenantId":"x","region":"y"},"meta":{"tenantId":"t","region":"r"}}`, std},
		{"repeated meta member", `{"metric":{` + base + `},"meta":{"tenantId":"x","tenantId":"t","region":"r"}}`, std},
		{"fractional timestamp", envelope(`"name":"n","timestamp":1485288947372.3062,"value":1`), want("n", 1485288947372, 1, nil)},
		{"fraction just below the next millisecond", envelope(`"name":"n","timestamp":1485288947372.99999999999,"value":1`), want("n", 1485288947372, 1, nil)},
		{"timestamp with exponent", envelope(`"name":"n","timestamp":1.4852889473723062e12,"value":1`), want("n", 1485288947372, 1, nil)},
		{"timestamp with exponent and zeros", envelope(`"name":"n","timestamp":0.00014852889473723062E+16,"value":1`), want("n", 1485288947372, 1, nil)},
		{"timestamp with integral exponent", envelope(`"name":"n","timestamp":1485288947372e0,"value":1`), want("n", 1485288947372, 1, nil)},
		{"timestamp with negative exponent", envelope(`"name":"n","timestamp":14852889473723062e-4,"value":1`), want("n", 1485288947372, 1, nil)},
		{"smallest timestamp", envelope(`"name":"n","timestamp":1e11,"value":1`), want("n", 1e11, 1, nil)},
		{"largest timestamp", envelope(`"name":"n","timestamp":253402300799999.999,"value":1`), want("n", 253402300799999, 1, nil)},
		{"negative zero value", envelope(`"name":"n","timestamp":1489000000000,"value":-0.0`), want("n", 1489000000000, math.Copysign(0, -1), nil)},
		{"underflowing value", envelope(`"name":"n","timestamp":1489000000000,"value":1e-400`), want("n", 1489000000000, 0, nil)},
		{"value with huge negative exponent", envelope(`"name":"n","timestamp":1489000000000,"value":1e-99999999999999999999`), want("n", 1489000000000, 0, nil)},
		{"value with exponent", envelope(`"name":"n","timestamp":1489000000000,"value":-1.5E+2`), want("n", 1489000000000, -150, nil)},
		{"largest value", envelope(`"name":"n","timestamp":1489000000000,"value":1.7976931348623157e308`), want("n", 1489000000000, math.MaxFloat64, nil)},
		{"dimensions null", envelope(`"name":"n","dimensions":null,"timestamp":1489000000000,"value":2`), want("n", 1489000000000, 2, nil)},
		{"dimensions empty", envelope(`"name":"n","dimensions":{ },"timestamp":1489000000000,"value":2`), want("n", 1489000000000, 2, nil)},
		{"repeated dimension keeps position and last value", envelope(`"name":"n","dimensions":{"a":"1","b":"2","a":"3"},"timestamp":1489000000000,"value":2`),
			want("n", 1489000000000, 2, dims("a", "3", "b", "2"))},
		{"repeated dimensions member replaces", envelope(`"name":"n","dimensions":{"x":"1","y":"2"},"dimensions":{"a":"1"},"timestamp":1489000000000,"value":2`), std},
		{"repeated metric replaces", `{"metric":{"name":"old","dimensions":{"x":"y"},"timestamp":1489000000001,"value":9},"metric":{` + base + `},"meta":{"tenantId":"t","region":"r"}}`, std},
		{"repeated name", envelope(`"name":"x","name":"n","dimensions":{"a":"1"},"timestamp":1489000000000,"value":2`), std},
		{"null name then name", envelope(`"name":null,"name":"n","dimensions":{"a":"1"},"timestamp":1489000000000,"value":2`), std},
		{"escapes", envelope(`"name":"q\"b\\s\/b\bf\fn\nr\rt\tu\u0041\u00e9\u65e5\uD83D\uDE00","timestamp":1489000000000,"value":2`),
			want("q\"b\\s/b\bf\fn\nr\rt\tuAé日😀", 1489000000000, 2, nil)},
		{"escaped NUL", envelope(`"name":"a\u0000b","timestamp":1489000000000,"value":2`), want("a\x00b", 1489000000000, 2, nil)},
		{"escaped keys", `{"m\u0065tric":{"n\u0061me":"n","dimensions":{"\u0061":"\u0031"},"timestamp":1489000000000,"value":2},"meta":{"tenant\u0049d":"t","region":"r"}}`, std},
		{"raw unicode", envelope(`"name":"café.日本","dimensions":{"ключ":"значение","e":"😀"},"timestamp":1489000000000,"value":2`),
			want("café.日本", 1489000000000, 2, dims("ключ", "значение", "e", "😀"))},
		{"255-byte name and dimensions", envelope(`"name":"` + long + `","dimensions":{"` + long + `":"` + long + `"},"timestamp":1489000000000,"value":2`),
			want(long, 1489000000000, 2, dims(long, long))},
		{"escaped name of 255 bytes", envelope(`"name":"` + strings.Repeat(`\u0041`, 255) + `","timestamp":1489000000000,"value":2`),
			want(strings.Repeat("A", 255), 1489000000000, 2, nil)},
		{"as many dimensions as allowed", envelope(`"name":"n","dimensions":{` + manyBody + `},"timestamp":1489000000000,"value":2`),
			want("n", 1489000000000, 2, manyDims)},
		{"deepest nesting", `{"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `,"metric":{` + base + `},"meta":{"tenantId":"t","region":"r"}}`, std},
	}
	var d Decoder
	var m Metric
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.Decode([]byte(tt.in), &m); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := m
			if len(got.Dimensions) == 0 {
				got.Dimensions = nil
			}
			if !reflect.DeepEqual(got, tt.want) || math.Signbit(got.Value) != math.Signbit(tt.want.Value) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	var many strings.Builder
	for i := range DefaultMaxDimensions + 1 {
		fmt.Fprintf(&many, `"k%d":"v",`, i)
	}
	tooMany := strings.TrimSuffix(many.String(), ",")
	ts := func(v string) string { return envelope(`"name":"n","timestamp":` + v + `,"value":1`) }
	val := func(v string) string { return envelope(`"name":"n","timestamp":1489000000000,"value":` + v) }

	tests := []struct {
		name   string
		in     string
		reason Reason
		field  string
	}{
		{"empty", "", ReasonMalformedJSON, ""},
		{"whitespace only", " \n", ReasonMalformedJSON, ""},
		{"open brace", "{", ReasonMalformedJSON, ""},
		{"truncated after key", `{"metric":`, ReasonMalformedJSON, ""},
		{"truncated in metric", `{"metric":{"name":"n"`, ReasonMalformedJSON, "metric"},
		{"truncated in string", `{"metric":{"name":"n`, ReasonMalformedJSON, "metric.name"},
		{"truncated in escape", `{"metric":{"name":"n\`, ReasonMalformedJSON, "metric.name"},
		{"truncated in number", `{"metric":{"value":1.`, ReasonMalformedJSON, "metric.value"},
		{"truncated envelope", envelope(base)[:50], ReasonMalformedJSON, "metric"},
		{"truncated in timestamp", envelope(base)[:60], ReasonMalformedJSON, ""},
		{"wrong type before a syntax error", envelope(`"name":1,"timestamp":1489000000000,"value":1`) + ",", ReasonMalformedJSON, ""},
		{"invalid UTF-8 after a wrong type", "{\"metric\":{\"name\":1},\"x\":\"\xff\"}", ReasonInvalidUTF8, ""},
		{"trailing garbage", envelope(base) + "x", ReasonMalformedJSON, ""},
		{"second object", envelope(base) + "{}", ReasonMalformedJSON, ""},
		{"trailing garbage after empty object", "{}x", ReasonMalformedJSON, ""},
		{"two scalars", "1 2", ReasonMalformedJSON, ""},
		{"truncated top-level array", "[1,", ReasonMalformedJSON, ""},
		{"top-level string and garbage", `"x" y`, ReasonMalformedJSON, ""},
		{"top-level garbage", "x", ReasonMalformedJSON, ""},
		{"bad literal", `{"x":tru}`, ReasonMalformedJSON, ""},
		{"literal with garbage", `{"x":nul}`, ReasonMalformedJSON, ""},
		{"literal followed by garbage", `{"x":nullx}`, ReasonMalformedJSON, ""},
		{"leading zero", `{"x":01}`, ReasonMalformedJSON, ""},
		{"bare fraction", `{"x":.5}`, ReasonMalformedJSON, ""},
		{"empty fraction", `{"x":1.}`, ReasonMalformedJSON, ""},
		{"empty exponent", `{"x":1e}`, ReasonMalformedJSON, ""},
		{"lone minus", `{"x":-}`, ReasonMalformedJSON, ""},
		{"plus sign", `{"x":+1}`, ReasonMalformedJSON, ""},
		{"hex number", `{"x":0x10}`, ReasonMalformedJSON, ""},
		{"lowercase nan token", `{"x":nan}`, ReasonMalformedJSON, ""},
		{"raw control character", "{\"x\":\"a\x01\"}", ReasonMalformedJSON, ""},
		{"raw newline in string", "{\"x\":\"a\n\"}", ReasonMalformedJSON, ""},
		{"invalid escape", `{"x":"\q"}`, ReasonMalformedJSON, ""},
		{"truncated after escape", `{"x":"\n`, ReasonMalformedJSON, ""},
		{"truncated unicode escape", `{"x":"\u00`, ReasonMalformedJSON, ""},
		{"raw control character after escape", "{\"x\":\"\\n\x1f\"}", ReasonMalformedJSON, ""},
		{"short unicode escape", `{"x":"\u12"}`, ReasonMalformedJSON, ""},
		{"non-hex unicode escape", `{"x":"\u12g4"}`, ReasonMalformedJSON, ""},
		{"missing colon", `{"x" 1}`, ReasonMalformedJSON, ""},
		{"missing comma", `{"x":1 "y":2}`, ReasonMalformedJSON, ""},
		{"trailing comma in object", `{"x":1,}`, ReasonMalformedJSON, ""},
		{"trailing comma in array", `{"x":[1,]}`, ReasonMalformedJSON, ""},
		{"unclosed array", `{"x":[1}`, ReasonMalformedJSON, ""},
		{"unquoted key", `{x:1}`, ReasonMalformedJSON, ""},
		{"single quotes", `{'x':1}`, ReasonMalformedJSON, ""},
		{"leading comma", `{,}`, ReasonMalformedJSON, ""},
		{"too deep", `{"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, ReasonMalformedJSON, ""},
		{"bad number as value", val(`1.5x`), ReasonMalformedJSON, "metric"},
		{"bad token as value", val(`Nan`), ReasonMalformedJSON, "metric.value"},

		{"no members", `{}`, ReasonMissingField, "metric"},
		{"metric null", `{"metric":null}`, ReasonMissingField, "metric"},
		{"metric replaced by null", `{"metric":{` + base + `},"metric":null}`, ReasonMissingField, "metric"},
		{"no name", envelope(`"timestamp":1489000000000,"value":1`), ReasonMissingField, "metric.name"},
		{"name null", envelope(`"name":null,"timestamp":1489000000000,"value":1`), ReasonMissingField, "metric.name"},
		{"name empty", envelope(`"name":"","timestamp":1489000000000,"value":1`), ReasonMissingField, "metric.name"},
		{"name replaced by null", envelope(`"name":"n","name":null,"timestamp":1489000000000,"value":1`), ReasonMissingField, "metric.name"},
		{"no timestamp", envelope(`"name":"n","value":1`), ReasonMissingField, "metric.timestamp"},
		{"timestamp null", ts("null"), ReasonMissingField, "metric.timestamp"},
		{"no value", envelope(`"name":"n","timestamp":1489000000000`), ReasonMissingField, "metric.value"},
		{"value null", val("null"), ReasonMissingField, "metric.value"},

		{"top-level array", `[1,{"metric":{}}]`, ReasonWrongType, ""},
		{"top-level string", ` "x" `, ReasonWrongType, ""},
		{"top-level null", `null`, ReasonWrongType, ""},
		{"metric string", `{"metric":"x"}`, ReasonWrongType, "metric"},
		{"metric array", `{"metric":[]}`, ReasonWrongType, "metric"},
		{"name number", envelope(`"name":1,"timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.name"},
		{"name object", envelope(`"name":{"a":"b"},"timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.name"},
		{"name boolean", envelope(`"name":true,"timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.name"},
		{"dimensions array", envelope(`"name":"n","dimensions":[],"timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.dimensions"},
		{"dimensions string", envelope(`"name":"n","dimensions":"a=b","timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.dimensions"},
		{"dimension value number", envelope(`"name":"n","dimensions":{"a":1},"timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.dimensions"},
		{"dimension value null", envelope(`"name":"n","dimensions":{"a":null},"timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.dimensions"},
		{"dimension value object", envelope(`"name":"n","dimensions":{"a":{"b":"c"}},"timestamp":1489000000000,"value":1`), ReasonWrongType, "metric.dimensions"},
		{"value object", val(`{"v":1}`), ReasonWrongType, "metric.value"},
		{"value array", val(`[1]`), ReasonWrongType, "metric.value"},
		{"value boolean", val(`true`), ReasonWrongType, "metric.value"},
		{"value string holding a number", val(`"99999999.5"`), ReasonWrongType, "metric.value"},
		{"value escaped string holding a number", val(`"\u0032"`), ReasonWrongType, "metric.value"},
		{"value string with exponent", val(`"2.5e-3"`), ReasonWrongType, "metric.value"},
		{"value NaN string", val(`"NaN"`), ReasonWrongType, "metric.value"},
		{"value -inf string", val(`"-inf"`), ReasonWrongType, "metric.value"},
		{"value overflowing string", val(`"1e400"`), ReasonWrongType, "metric.value"},
		{"value non-numeric string", val(`"abc"`), ReasonWrongType, "metric.value"},
		{"value empty string", val(`""`), ReasonWrongType, "metric.value"},
		{"value string with spaces", val(`" 1"`), ReasonWrongType, "metric.value"},
		{"value hex string", val(`"0x10"`), ReasonWrongType, "metric.value"},
		{"timestamp string holding a number", ts(`"1796561600000"`), ReasonWrongType, "metric.timestamp"},
		{"timestamp string with a fraction", ts(`"1489000000000.0"`), ReasonWrongType, "metric.timestamp"},
		{"timestamp seconds string", ts(`"1489000000"`), ReasonWrongType, "metric.timestamp"},
		{"timestamp inf string", ts(`"inf"`), ReasonWrongType, "metric.timestamp"},
		{"timestamp non-numeric string", ts(`"2017-01-01"`), ReasonWrongType, "metric.timestamp"},
		{"string timestamp before a malformed value", envelope(`"name":"n","timestamp":"1489000000000","value":1.`), ReasonMalformedJSON, ""},
		{"invalid UTF-8 in a string timestamp", envelope("\"name\":\"n\",\"timestamp\":\"1\xff\",\"value\":1"), ReasonInvalidUTF8, "metric.timestamp"},
		{"timestamp object", ts(`{}`), ReasonWrongType, "metric.timestamp"},
		{"meta string", `{"metric":{` + base + `},"meta":"t"}`, ReasonWrongType, "meta"},
		{"meta array", `{"metric":{` + base + `},"meta":[]}`, ReasonWrongType, "meta"},
		{"tenantId number", `{"metric":{` + base + `},"meta":{"tenantId":1}}`, ReasonWrongType, "meta.tenantId"},
		{"region object", `{"metric":{` + base + `},"meta":{"region":{}}}`, ReasonWrongType, "meta.region"},
		{"wrong type after truncation is malformed", `{"metric":{"value":{"a":`, ReasonMalformedJSON, ""},

		{"NaN token", val(`NaN`), ReasonNonFiniteValue, "metric.value"},
		{"Infinity token", val(`Infinity`), ReasonNonFiniteValue, "metric.value"},
		{"-Infinity token", val(`-Infinity`), ReasonNonFiniteValue, "metric.value"},
		{"overflow", val(`1e309`), ReasonNonFiniteValue, "metric.value"},
		{"negative overflow", val(`-1.8e308`), ReasonNonFiniteValue, "metric.value"},
		{"huge exponent", val(`1e99999999999999999999`), ReasonNonFiniteValue, "metric.value"},

		{"invalid UTF-8 in name", envelope("\"name\":\"a\xffb\",\"timestamp\":1489000000000,\"value\":1"), ReasonInvalidUTF8, "metric.name"},
		{"invalid UTF-8 in escaped name", envelope("\"name\":\"\\n\xff\",\"timestamp\":1489000000000,\"value\":1"), ReasonInvalidUTF8, "metric.name"},
		{"truncated UTF-8 sequence", envelope("\"name\":\"\xe6\x97\",\"timestamp\":1489000000000,\"value\":1"), ReasonInvalidUTF8, "metric.name"},
		{"UTF-8 encoded surrogate", envelope("\"name\":\"\xed\xa0\x80\",\"timestamp\":1489000000000,\"value\":1"), ReasonInvalidUTF8, "metric.name"},
		{"overlong UTF-8", envelope("\"name\":\"\xc0\xaf\",\"timestamp\":1489000000000,\"value\":1"), ReasonInvalidUTF8, "metric.name"},
		{"invalid UTF-8 in dimension key", envelope("\"name\":\"n\",\"dimensions\":{\"\xff\":\"v\"},\"timestamp\":1489000000000,\"value\":1"), ReasonInvalidUTF8, "metric.dimensions"},
		{"invalid UTF-8 in skipped value_meta", envelope(base + ",\"value_meta\":{\"a\":[\"\xfe\"]}"), ReasonInvalidUTF8, "metric"},
		{"invalid UTF-8 in unknown key", "{\"\xff\":1}", ReasonInvalidUTF8, ""},
		{"invalid UTF-8 in meta", `{"metric":{` + base + "},\"meta\":{\"x\":\"\x80\"}}", ReasonInvalidUTF8, "meta"},
		{"lone high surrogate", envelope(`"name":"a\ud800","timestamp":1489000000000,"value":1`), ReasonInvalidUTF8, "metric.name"},
		{"lone low surrogate", envelope(`"name":"a\udc00b","timestamp":1489000000000,"value":1`), ReasonInvalidUTF8, "metric.name"},
		{"high surrogate and a letter", envelope(`"name":"\ud800\u0041","timestamp":1489000000000,"value":1`), ReasonInvalidUTF8, "metric.name"},
		{"two high surrogates", envelope(`"name":"\ud800\ud800","timestamp":1489000000000,"value":1`), ReasonInvalidUTF8, "metric.name"},
		{"lone surrogate in skipped value", `{"x":"\udfff"}`, ReasonInvalidUTF8, ""},

		{"name too long", envelope(`"name":"` + long + `","timestamp":1489000000000,"value":1`), ReasonNameTooLong, "metric.name"},
		{"escaped name too long", envelope(`"name":"` + strings.Repeat(`\u00e9`, 128) + `","timestamp":1489000000000,"value":1`), ReasonNameTooLong, "metric.name"},
		{"too many dimensions", envelope(`"name":"n","dimensions":{` + tooMany + `},"timestamp":1489000000000,"value":1`), ReasonTooManyDimensions, "metric.dimensions"},
		{"dimension key too long", envelope(`"name":"n","dimensions":{"` + long + `":"v"},"timestamp":1489000000000,"value":1`), ReasonDimensionTooLong, "metric.dimensions"},
		{"dimension value too long", envelope(`"name":"n","dimensions":{"k":"` + long + `"},"timestamp":1489000000000,"value":1`), ReasonDimensionTooLong, "metric.dimensions"},

		{"timestamp in seconds", ts("1489000000"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp in fractional seconds", ts("1489000000.123"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp just below range", ts("99999999999.999"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp just above range", ts("253402300800000"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp far above range", ts("1e300"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp with huge exponent", ts("1e99999999999999999999"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp zero with huge exponent", ts("0e99999999999999999999"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp with huge negative exponent", ts("1489000000000e-99999999999999999999"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp with many digits", ts("1489000000000000000000000000000"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp zero", ts("0"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp negative", ts("-1489000000000"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp negative zero", ts("-0"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp NaN", ts("NaN"), ReasonTimestampOutOfRange, "metric.timestamp"},
		{"timestamp -Infinity", ts("-Infinity"), ReasonTimestampOutOfRange, "metric.timestamp"},
	}
	var d Decoder
	var m Metric
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Decode([]byte(tt.in), &m)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, want a *DecodeError", err)
			}
			if de.Reason != tt.reason || de.Field != tt.field {
				t.Errorf("Decode = %v: reason %q field %q, want reason %q field %q", err, de.Reason, de.Field, tt.reason, tt.field)
			}
			if de.Offset < 0 || de.Offset > len(tt.in) {
				t.Errorf("offset %d outside the input of %d bytes", de.Offset, len(tt.in))
			}
		})
	}
}

// TestDecodeRequireTenant checks the tenant rule of per-tenant
// aggregation; without RequireTenant the same envelopes decode (see
// TestDecodeSuccess).
func TestDecodeRequireTenant(t *testing.T) {
	body := `{"metric":{` + base + `}`
	tests := []struct {
		name   string
		in     string
		reason Reason
		field  string
	}{
		{"meta missing", body + `}`, ReasonMissingTenant, "meta.tenantId"},
		{"meta null", body + `,"meta":null}`, ReasonMissingTenant, "meta.tenantId"},
		{"meta empty", body + `,"meta":{}}`, ReasonMissingTenant, "meta.tenantId"},
		{"tenantId null", body + `,"meta":{"tenantId":null,"region":"r"}}`, ReasonMissingTenant, "meta.tenantId"},
		{"tenantId empty", body + `,"meta":{"tenantId":"","region":"r"}}`, ReasonMissingTenant, "meta.tenantId"},
		{"tenantId replaced by null", body + `,"meta":{"tenantId":"t","tenantId":null}}`, ReasonMissingTenant, "meta.tenantId"},
		{"meta replaced by one without tenantId", body + `,"meta":{"tenantId":"t"},"meta":{"region":"r"}}`, ReasonMissingTenant, "meta.tenantId"},
		{"tenantId in the dimensions only", `{"metric":{"name":"n","dimensions":{"tenantId":"t"},"timestamp":1489000000000,"value":2}}`, ReasonMissingTenant, "meta.tenantId"},
		{"missing field first", `{"metric":{"name":"n","timestamp":1489000000000}}`, ReasonMissingField, "metric.value"},
		{"tenantId number", body + `,"meta":{"tenantId":7}}`, ReasonWrongType, "meta.tenantId"},
		{"malformed first", body + `,"meta":{}`, ReasonMalformedJSON, ""},
	}
	for _, kept := range []bool{false, true} {
		d := Decoder{RequireTenant: true, KeepMaps: kept}
		var m Metric
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/keepmaps=%v", tt.name, kept), func(t *testing.T) {
				err := d.Decode([]byte(tt.in), &m)
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("Decode = %v, want a *DecodeError", err)
				}
				if de.Reason != tt.reason || de.Field != tt.field {
					t.Errorf("Decode = %v: reason %q field %q, want reason %q field %q", err, de.Reason, de.Field, tt.reason, tt.field)
				}
			})
		}
		if err := d.Decode([]byte(envelope(base)), &m); err != nil || m.TenantID != "t" {
			t.Errorf("keepmaps=%v: envelope with a tenant: %v, tenant %q", kept, err, m.TenantID)
		}
	}
}

func TestDecodeMaxDimensions(t *testing.T) {
	d := Decoder{MaxDimensions: 2}
	var m Metric
	ok := envelope(`"name":"n","dimensions":{"a":"1","b":"2","a":"3","b":"4"},"timestamp":1489000000000,"value":1`)
	if err := d.Decode([]byte(ok), &m); err != nil {
		t.Fatalf("two distinct keys, repeated: %v", err)
	}
	bad := envelope(`"name":"n","dimensions":{"a":"1","b":"2","c":"3"},"timestamp":1489000000000,"value":1`)
	if err := d.Decode([]byte(bad), &m); ReasonOf(err) != ReasonTooManyDimensions {
		t.Fatalf("three keys with limit 2: %v", err)
	}
}

// TestDecodeScratchGrowth decodes many escaped strings, so the scratch
// buffer reallocates mid-decode, and checks that earlier strings survive.
func TestDecodeScratchGrowth(t *testing.T) {
	var body strings.Builder
	var want []Dimension
	for i := range 40 {
		v := strings.Repeat(string(rune('a'+i%26)), 200)
		fmt.Fprintf(&body, `"k\u00e9%d":"%s\n",`, i, v)
		want = append(want, Dimension{fmt.Sprintf("ké%d", i), v + "\n"})
	}
	in := envelope(`"name":"n\t","dimensions":{` + strings.TrimSuffix(body.String(), ",") + `},"timestamp":1489000000000,"value":1`)
	var d Decoder
	var m Metric
	if err := d.Decode([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "n\t" || !reflect.DeepEqual(m.Dimensions, want) {
		t.Errorf("got name %q dimensions %q", m.Name, m.Dimensions)
	}
}

func TestMetricDimension(t *testing.T) {
	var d Decoder
	var m Metric
	if err := d.Decode([]byte(benchEnvelope), &m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Dimension("component"); !ok || v != "monasca-agent" {
		t.Errorf(`Dimension("component") = %q, %v`, v, ok)
	}
	if v, ok := m.Dimension("device"); ok || v != "" {
		t.Errorf(`Dimension("device") = %q, %v`, v, ok)
	}
}

func TestReasonOf(t *testing.T) {
	var d Decoder
	err := d.Decode([]byte("{"), &Metric{})
	tests := []struct {
		err  error
		want Reason
	}{
		{nil, ""},
		{err, ReasonMalformedJSON},
		{fmt.Errorf("partition 3: %w", err), ReasonMalformedJSON},
		{errors.New("other"), ReasonUnknown},
	}
	for _, tt := range tests {
		if got := ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	var d Decoder
	err := d.Decode([]byte(envelope(`"name":"n","dimensions":{"host":7},"timestamp":1489000000000,"value":1`)), &Metric{})
	const want = `monasca envelope: metric.dimensions: value of "host" is a number, want a string (wrong_type at byte 43)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestDecodeAllocs(t *testing.T) {
	inputs := map[string]string{
		"realistic": benchEnvelope,
		"escaped":   envelope(`"name":"a\u00e9\n","dimensions":{"k\"":"v\\","x":"\ud83d\ude00"},"timestamp":1489000000000.5,"value":2`),
	}
	for name, in := range inputs {
		if allocs := decodeAllocs(t, &Decoder{}, []byte(in)); allocs != 0 {
			t.Errorf("%s: %v allocations per Decode, want 0", name, allocs)
		}
	}
}

// decodeAllocs decodes in with d once, failing the test on an error, and
// returns the allocations of each further Decode into the same Metric.
func decodeAllocs(t *testing.T, d *Decoder, in []byte) float64 {
	t.Helper()
	var m Metric
	if err := d.Decode(in, &m); err != nil {
		t.Fatal(err)
	}
	return testing.AllocsPerRun(1000, func() {
		if err := d.Decode(in, &m); err != nil {
			t.Fatal(err)
		}
	})
}
