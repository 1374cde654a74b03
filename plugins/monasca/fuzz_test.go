package monasca

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

var reasons = []Reason{
	ReasonMalformedJSON, ReasonMissingField, ReasonWrongType, ReasonNonFiniteValue, ReasonInvalidUTF8,
	ReasonNameTooLong, ReasonTooManyDimensions, ReasonDimensionTooLong, ReasonTimestampOutOfRange,
	ReasonTooManyMapEntries, ReasonMissingTenant,
}

// FuzzDecode checks Decode against encoding/json, with and without
// KeepMaps. The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Decoder
		var m Metric
		err := d.Decode(in, &m)
		checkKeepMaps(t, in, err, &m)
		checkRequireTenant(t, in, err, &m)
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
		// buffer and the Metric, must give the same result. The first
		// result is copied, since its strings may alias the scratch
		// buffer, which the next Decode overwrites.
		first := cloneMetric(m)
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

// jsonNumber returns the number encoding/json decoded; anything else,
// a string holding a number included, must have been rejected.
func jsonNumber(t *testing.T, v any) float64 {
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("Decode accepted %v (%T) as a number", v, v)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatalf("Decode accepted %v as a float64", v)
	}
	return f
}

func equalMetrics(a, b Metric) bool {
	return a.Name == b.Name && slices.Equal(a.Dimensions, b.Dimensions) && a.Timestamp == b.Timestamp &&
		math.Float64bits(a.Value) == math.Float64bits(b.Value) && a.TenantID == b.TenantID && a.Region == b.Region
}

// checkRequireTenant decodes in with RequireTenant, which must only add
// missing_tenant for an envelope the plain Decode accepted without a tenant.
func checkRequireTenant(t *testing.T, in []byte, err error, m *Metric) {
	d := Decoder{RequireTenant: true}
	var rm Metric
	rerr := d.Decode(in, &rm)
	want := ReasonOf(err)
	if err == nil && m.TenantID == "" {
		want = ReasonMissingTenant
	}
	if got := ReasonOf(rerr); got != want {
		t.Fatalf("RequireTenant: %v, want reason %q", rerr, want)
	}
	if rerr == nil && !equalMetrics(*m, rm) {
		t.Fatalf("RequireTenant changed the metric from %+v to %+v", *m, rm)
	}
}

// checkKeepMaps decodes in with KeepMaps and checks the result against the
// plain Decode's (err, m) and, for valid JSON, the maps against
// encoding/json's reading of them.
func checkKeepMaps(t *testing.T, in []byte, err error, m *Metric) {
	if len(m.Meta) != 0 || len(m.ValueMeta) != 0 || m.CreationTime != "" {
		t.Fatalf("without KeepMaps: meta %q value_meta %q creation_time %q", m.Meta, m.ValueMeta, m.CreationTime)
	}
	d := Decoder{KeepMaps: true}
	var km Metric
	kerr := d.Decode(in, &km)
	// Keeping the maps adds one way to fail, which may come first in the
	// input but never hides a fault of syntax or encoding.
	if r, kr := ReasonOf(err), ReasonOf(kerr); r != kr &&
		(kr != ReasonTooManyMapEntries || r == ReasonMalformedJSON || r == ReasonInvalidUTF8) {
		t.Fatalf("KeepMaps changed the outcome from %v to %v", err, kerr)
	}
	if err != nil || kerr != nil {
		return
	}
	if !equalMetrics(*m, km) {
		t.Fatalf("KeepMaps changed the metric from %+v to %+v", *m, km)
	}
	first := cloneMetric(km)
	_ = d.Decode([]byte(`{"metric":{"value_meta":{"\u0041":"\u0042\u0043\u0044\u0045\u0046\u0047\u0048"}},"meta":{"\u0041":"\u0042"},"creation_time":"\u0041"}`), &km)
	if err := d.Decode(in, &km); err != nil {
		t.Fatalf("second Decode with KeepMaps failed: %v", err)
	}
	if !equalMetrics(km, first) || !slices.Equal(km.Meta, first.Meta) || !slices.Equal(km.ValueMeta, first.ValueMeta) || km.CreationTime != first.CreationTime {
		t.Fatalf("second Decode with KeepMaps gave %+v, first %+v", km, first)
	}
	if !json.Valid(in) {
		return // Python's non-finite tokens, which encoding/json rejects
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(in, &env); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	var metric map[string]json.RawMessage
	if err := json.Unmarshal(env["metric"], &metric); err != nil {
		t.Fatalf("encoding/json: metric: %v", err)
	}
	compareEntries(t, "meta", km.Meta, jsonEntries(t, env["meta"]))
	compareEntries(t, "value_meta", km.ValueMeta, jsonEntries(t, metric["value_meta"]))
	if want, _ := jsonEntryText(t, env["creation_time"]); km.CreationTime != want {
		t.Errorf("creation_time %q, encoding/json %q", km.CreationTime, want)
	}
}

// jsonEntries reads an object as monasca-transform's map of strings; any
// other value has no entries.
func jsonEntries(t *testing.T, raw json.RawMessage) map[string]string {
	var obj map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	out := map[string]string{}
	for k, v := range obj {
		if text, ok := jsonEntryText(t, v); ok {
			out[k] = text
		}
	}
	return out
}

// jsonEntryText returns a string's value or any other value's JSON text,
// and false for null or nothing.
func jsonEntryText(t *testing.T, raw json.RawMessage) (string, bool) {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", false
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		return s, true
	}
	return string(raw), true
}

func compareEntries(t *testing.T, what string, got []Dimension, want map[string]string) {
	seen := map[string]bool{}
	for _, e := range got {
		if seen[e.Key] {
			t.Errorf("%s: key %q repeated", what, e.Key)
		}
		seen[e.Key] = true
		if v, ok := want[e.Key]; !ok || v != e.Value {
			t.Errorf("%s: %q=%q, encoding/json %q (present %v)", what, e.Key, e.Value, v, ok)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%s: %q, encoding/json %q", what, got, want)
	}
}

// cloneMetric returns a deep copy of m whose strings alias nothing.
func cloneMetric(m Metric) Metric {
	c := m
	c.Name, c.TenantID, c.Region, c.CreationTime = strings.Clone(m.Name), strings.Clone(m.TenantID), strings.Clone(m.Region), strings.Clone(m.CreationTime)
	c.Dimensions, c.Meta, c.ValueMeta = cloneEntries(m.Dimensions), cloneEntries(m.Meta), cloneEntries(m.ValueMeta)
	return c
}

func cloneEntries(d []Dimension) []Dimension {
	c := make([]Dimension, len(d))
	for i, e := range d {
		c[i] = Dimension{strings.Clone(e.Key), strings.Clone(e.Value)}
	}
	return c
}
