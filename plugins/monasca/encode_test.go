package monasca

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestAppendEnvelopeGolden(t *testing.T) {
	m := Metric{
		Name:       "cpu.idle_perc_agg",
		Dimensions: []Dimension{{"aggregation_period", "hourly"}, {"host", "all"}},
		Timestamp:  1466420400000, Value: 3840,
		TenantID: "abc", Region: "useast",
	}
	valueMeta := []Field{
		{"record_count", 6},
		{"firstrecord_timestamp_string", "2016-06-20 11:24:59"},
		{"avg", 0.5},
		{"n", int64(-7)},
	}
	got := string(AppendEnvelope([]byte("prefix:"), &m, valueMeta, 1466424000))
	const want = `prefix:{"metric":{"name":"cpu.idle_perc_agg","dimensions":{"aggregation_period":"hourly","host":"all"},` +
		`"timestamp":1466420400000,"value":3840,"value_meta":{"record_count":6,"firstrecord_timestamp_string":"2016-06-20 11:24:59","avg":0.5,"n":-7}},` +
		`"meta":{"tenantId":"abc","region":"useast"},"creation_time":1466424000}`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	empty := string(AppendEnvelope(nil, &Metric{Name: "n", Timestamp: 1e11, Value: math.NaN()}, nil, 0))
	const wantEmpty = `{"metric":{"name":"n","dimensions":{},"timestamp":100000000000,"value":null,"value_meta":{}},"meta":{"tenantId":"","region":""},"creation_time":0}`
	if empty != wantEmpty {
		t.Errorf("got\n%s\nwant\n%s", empty, wantEmpty)
	}

	unsupported := string(AppendEnvelope(nil, &Metric{}, []Field{{"b", true}, {"inf", math.Inf(1)}}, 0))
	if !strings.Contains(unsupported, `"value_meta":{"b":null,"inf":null}`) {
		t.Errorf("unsupported and non-finite values: %s", unsupported)
	}
}

// TestAppendEnvelopeRoundTrip checks that encoding/json reads back what
// AppendEnvelope writes, and so does Decode.
func TestAppendEnvelopeRoundTrip(t *testing.T) {
	tricky := "q\" b\\ s/ <&> \x00\x01\x1f\x7f \b\f\n\r\t é 日本 😀 \u2028\u2029 \ufffd"
	m := Metric{
		Name: "name." + tricky,
		Dimensions: []Dimension{
			{"k" + tricky, "v" + tricky},
			{"hostname", "compute-1"},
		},
		Timestamp: 1485288947372, Value: -1.5e-9,
		TenantID: tricky, Region: "RegionOne",
	}
	valueMeta := []Field{{"s", tricky}, {"i", 42}, {"i64", int64(math.MinInt64)}, {"f", 1e21}, {tricky, 0.1}}
	out := AppendEnvelope(nil, &m, valueMeta, 1485288950)

	var env struct {
		Metric struct {
			Name       string            `json:"name"`
			Dimensions map[string]string `json:"dimensions"`
			Timestamp  int64             `json:"timestamp"`
			Value      float64           `json:"value"`
			ValueMeta  map[string]any    `json:"value_meta"`
		} `json:"metric"`
		Meta         map[string]string `json:"meta"`
		CreationTime int64             `json:"creation_time"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("encoding/json cannot read %s: %v", out, err)
	}
	if env.Metric.Name != m.Name || env.Metric.Timestamp != m.Timestamp || env.Metric.Value != m.Value ||
		env.Meta["tenantId"] != m.TenantID || env.Meta["region"] != m.Region || env.CreationTime != 1485288950 {
		t.Errorf("round trip through encoding/json: %+v", env)
	}
	wantDims := map[string]string{"k" + tricky: "v" + tricky, "hostname": "compute-1"}
	if !reflect.DeepEqual(env.Metric.Dimensions, wantDims) {
		t.Errorf("dimensions %q, want %q", env.Metric.Dimensions, wantDims)
	}
	wantMeta := map[string]any{"s": tricky, "i": json.Number("42"), "i64": json.Number("-9223372036854775808"), "f": json.Number("1e+21"), tricky: json.Number("0.1")}
	if !reflect.DeepEqual(env.Metric.ValueMeta, wantMeta) {
		t.Errorf("value_meta %q, want %q", env.Metric.ValueMeta, wantMeta)
	}

	var d Decoder
	var got Metric
	if err := d.Decode(out, &got); err != nil {
		t.Fatalf("Decode cannot read %s: %v", out, err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip through Decode:\n%+v\nwant\n%+v", got, m)
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	corpus := []string{"", "plain", "\xff", "a\xffb", "\xe2\x80", "\xed\xa0\x80", "😀", "\u2028x\u2029", "<script>&amp;</script>", strings.Repeat("long plain text ", 10)}
	for c := range 256 {
		corpus = append(corpus, string([]byte{'a', byte(c), 'b'}), strings.Repeat("12345678", 1)+string([]byte{byte(c)}))
	}
	for _, s := range corpus {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := string(appendString(nil, s))
		if got != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("appendString(%q) = %s, encoding/json writes %s", s, got, want.String())
		}
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	corpus := []float64{
		0, math.Copysign(0, -1), 1, -1, 3840, 0.1, 0.5, 1.0 / 3, 2.0 / 3, 123.456, -41.73,
		1e-6, 9.999999999999999e-7, 1e-7, -1e-7, 1.5e-9, 1e20, 1e21, 9.999999999999999e20, 1.5e21, -1e21, 1e100, 1e-100,
		1466421899, 1466421899.5, 1485288947372.3062, 2147483648, 9007199254740993,
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 2.2250738585072014e-308,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		corpus = append(corpus, math.Float64frombits(rng.Uint64()), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(60)-30)))
	}
	for _, v := range corpus {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, v); !bytes.Equal(got, want) {
			t.Errorf("appendFloat(%v) = %s, encoding/json writes %s", v, got, want)
		}
	}
}

func TestFormatTimestamp(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{0, "1970-01-01 00:00:00"},
		{1466421899000, "2016-06-20 11:24:59"},
		{1466421899999, "2016-06-20 11:24:59"},
		{1485288947372, "2017-01-24 20:15:47"},
		{-1, "1969-12-31 23:59:59"},
		{253402300799999, "9999-12-31 23:59:59"},
	}
	for _, tt := range tests {
		if got := FormatTimestamp(tt.ms); got != tt.want {
			t.Errorf("FormatTimestamp(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
}

func TestAppendEnvelopeAllocs(t *testing.T) {
	m := Metric{
		Name:       "n\u00e9\n",
		Dimensions: []Dimension{{"a", "b"}, {"c", "d\"e"}},
		Timestamp:  1485288947372, Value: 1.5e-9,
		TenantID: "t", Region: "r",
	}
	valueMeta := []Field{{"s", "x"}, {"i", 1000}, {"i64", int64(1) << 40}, {"f", 0.25}}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = AppendEnvelope(buf[:0], &m, valueMeta, 1485288950)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per AppendEnvelope, want 0", allocs)
	}
}
