package monasca

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"testing"
)

var reasons = []Reason{
	ReasonMalformedJSON, ReasonMissingField, ReasonWrongType, ReasonNonFiniteValue, ReasonInvalidUTF8,
	ReasonNameTooLong, ReasonTooManyDimensions, ReasonDimensionTooLong, ReasonTimestampOutOfRange,
}

// FuzzDecode checks Decode against encoding/json. The seed corpus is in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Decoder
		var m Metric
		err := d.Decode(in, &m)
		valid := json.Valid(in)
		// Python's non-finite tokens are the one syntax Decode accepts
		// beyond JSON.
		python := bytes.Contains(in, []byte("NaN")) || bytes.Contains(in, []byte("Infinity"))
		if err != nil {
			r := ReasonOf(err)
			switch {
			case !slices.Contains(reasons, r):
				t.Fatalf("unexpected reason %q: %v", r, err)
			case r == ReasonMalformedJSON && valid:
				t.Fatalf("malformed_json for valid JSON: %v", err)
			case !valid && !python && r != ReasonMalformedJSON && r != ReasonInvalidUTF8:
				t.Fatalf("invalid JSON reported as %v", err)
			}
			return
		}
		if !valid {
			if !python {
				t.Fatalf("accepted invalid JSON: %+v", m)
			}
			return
		}

		// Decoding again, after other input has reused the scratch
		// buffer and the Metric, must give the same result.
		first := m
		first.Dimensions = slices.Clone(m.Dimensions)
		_ = d.Decode([]byte(`{"metric":{"name":"\u0041\u0042\u0043\u0044\u0045\u0046\u0047\u0048","dimensions":{"\u0041":"\u0042\u0043\u0044\u0045\u0046\u0047"}}}`), &m)
		if err := d.Decode(in, &m); err != nil {
			t.Fatalf("second Decode failed: %v", err)
		}
		if !equalMetrics(m, first) {
			t.Fatalf("second Decode gave %+v, first %+v", m, first)
		}

		// UseNumber, because encoding/json cannot hold numbers beyond
		// float64 in skipped members, which Decode accepts.
		var env map[string]any
		jd := json.NewDecoder(bytes.NewReader(in))
		jd.UseNumber()
		if err := jd.Decode(&env); err != nil {
			t.Fatalf("encoding/json rejects an envelope Decode accepts: %v", err)
		}
		metric, _ := env["metric"].(map[string]any)
		if name, _ := metric["name"].(string); name != m.Name {
			t.Errorf("name %q, encoding/json %q", m.Name, name)
		}
		if v := jsonNumber(t, metric["value"]); math.Float64bits(v) != math.Float64bits(m.Value) {
			t.Errorf("value %v, encoding/json %v", m.Value, v)
		}
		// Decode truncates exactly; float64 may round a long fraction up.
		if ts := math.Floor(jsonNumber(t, metric["timestamp"])); math.Abs(ts-float64(m.Timestamp)) > 1 {
			t.Errorf("timestamp %d, encoding/json %v", m.Timestamp, ts)
		}
		dims, _ := metric["dimensions"].(map[string]any)
		if len(dims) != len(m.Dimensions) {
			t.Errorf("dimensions %q, encoding/json %q", m.Dimensions, dims)
		}
		for _, dim := range m.Dimensions {
			if v, ok := dims[dim.Key]; !ok || v != dim.Value {
				t.Errorf("dimension %q=%q, encoding/json %q", dim.Key, dim.Value, v)
			}
		}
		meta, _ := env["meta"].(map[string]any)
		tenant, _ := meta["tenantId"].(string)
		region, _ := meta["region"].(string)
		if tenant != m.TenantID || region != m.Region {
			t.Errorf("tenant %q region %q, encoding/json %q %q", m.TenantID, m.Region, tenant, region)
		}
	})
}

// jsonNumber returns the number encoding/json decoded, which may be a
// string holding one.
func jsonNumber(t *testing.T, v any) float64 {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			t.Fatalf("Decode accepted %v as a float64", v)
		}
		return f
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("Decode accepted %q as a number", v)
		}
		return f
	}
	t.Fatalf("Decode accepted %v (%T) as a number", v, v)
	return 0
}

func equalMetrics(a, b Metric) bool {
	return a.Name == b.Name && slices.Equal(a.Dimensions, b.Dimensions) && a.Timestamp == b.Timestamp &&
		math.Float64bits(a.Value) == math.Float64bits(b.Value) && a.TenantID == b.TenantID && a.Region == b.Region
}
