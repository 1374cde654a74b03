package monasca

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func validMetric() Metric {
	return Metric{
		Name:       "cpu.idle_perc_agg",
		Dimensions: []Dimension{{"aggregation_period", "hourly"}, {"host", "all"}, {"project_id", "é日本😀"}},
		Timestamp:  1466420400000, Value: 3840,
		TenantID: "abc", Region: "useast",
	}
}

func TestValidateOutputAccepts(t *testing.T) {
	m := validMetric()
	valueMeta := []Field{
		{"record_count", 6},
		{"firstrecord_timestamp_string", "2016-06-20 11:24:59"},
		{"n", int64(-1)},
		{"f", 0.5},
	}
	if err := ValidateOutput(&m, valueMeta); err != nil {
		t.Errorf("valid metric: %v", err)
	}
	m.Dimensions = nil
	m.Name = strings.Repeat("é", 255)
	if err := ValidateOutput(&m, nil); err != nil {
		t.Errorf("255-character name without dimensions: %v", err)
	}
	m.Name = "n"
	m.Dimensions = []Dimension{{strings.Repeat("日", 255), strings.Repeat("😀", 255)}, {"a_b", "x y(z)"}}
	if err := ValidateOutput(&m, make([]Field, 0)); err != nil {
		t.Errorf("255-character dimensions: %v", err)
	}
	// Exactly 2048 characters as Python's json.dumps writes them, with
	// ASCII, BMP and astral characters.
	for _, s := range []string{strings.Repeat("a", 2039), strings.Repeat("é", 339) + "aaaaa", strings.Repeat("😀", 169) + strings.Repeat("a", 11)} {
		if err := ValidateOutput(&m, []Field{{"k", s}}); err != nil {
			t.Errorf("value_meta of exactly 2048 characters: %v", err)
		}
		if err := ValidateOutput(&m, []Field{{"k", s + "a"}}); err == nil {
			t.Errorf("value_meta of 2049 characters accepted")
		}
	}
}

func TestValidateOutputRejects(t *testing.T) {
	sixteen := make([]Field, 16)
	for i := range sixteen {
		sixteen[i] = Field{fmt.Sprint("k", i), "v"}
	}
	tests := []struct {
		name      string
		edit      func(m *Metric)
		valueMeta []Field
		field     string
	}{
		{"empty name", func(m *Metric) { m.Name = "" }, nil, "metric.name"},
		{"256-character name", func(m *Metric) { m.Name = strings.Repeat("é", 256) }, nil, "metric.name"},
		{"name with &", func(m *Metric) { m.Name = "&invalidmetricname" }, nil, "metric.name"},
		{"name with parenthesis", func(m *Metric) { m.Name = "cpu(0)" }, nil, "metric.name"},
		{"name with space", func(m *Metric) { m.Name = "cpu idle" }, nil, "metric.name"},
		{"name with backslash", func(m *Metric) { m.Name = `a\b` }, nil, "metric.name"},
		{"name with control character", func(m *Metric) { m.Name = "a\x7fb" }, nil, "metric.name"},
		{"name with newline", func(m *Metric) { m.Name = "a\nb" }, nil, "metric.name"},
		{"name with C1 control", func(m *Metric) { m.Name = "a\u0085b" }, nil, "metric.name"},
		{"name not UTF-8", func(m *Metric) { m.Name = "a\xff" }, nil, "metric.name"},
		{"empty dimension key", func(m *Metric) { m.Dimensions[0].Key = "" }, nil, "metric.dimensions"},
		{"empty dimension value", func(m *Metric) { m.Dimensions[0].Value = "" }, nil, "metric.dimensions"},
		{"256-character dimension key", func(m *Metric) { m.Dimensions[0].Key = strings.Repeat("k", 256) }, nil, "metric.dimensions"},
		{"256-character dimension value", func(m *Metric) { m.Dimensions[0].Value = strings.Repeat("日", 256) }, nil, "metric.dimensions"},
		{"dimension key starting with _", func(m *Metric) { m.Dimensions[0].Key = "_tenant" }, nil, "metric.dimensions"},
		{"dimension key with =", func(m *Metric) { m.Dimensions[0].Key = "a=b" }, nil, "metric.dimensions"},
		{"dimension value with ;", func(m *Metric) { m.Dimensions[0].Value = "a;b" }, nil, "metric.dimensions"},
		{"dimension value with quote", func(m *Metric) { m.Dimensions[0].Value = `a"b` }, nil, "metric.dimensions"},
		{"dimension value with brace", func(m *Metric) { m.Dimensions[0].Value = "{x}" }, nil, "metric.dimensions"},
		{"dimension value not UTF-8", func(m *Metric) { m.Dimensions[0].Value = "\xc0" }, nil, "metric.dimensions"},
		{"repeated dimension key", func(m *Metric) { m.Dimensions[2].Key = "host" }, nil, "metric.dimensions"},
		{"NaN value", func(m *Metric) { m.Value = math.NaN() }, nil, "metric.value"},
		{"infinite value", func(m *Metric) { m.Value = math.Inf(-1) }, nil, "metric.value"},
		{"17 value_meta entries", nil, append(sixteen, Field{"k16", "v"}), "metric.value_meta"},
		{"empty value_meta key", nil, []Field{{"", "v"}}, "metric.value_meta"},
		{"256-character value_meta key", nil, []Field{{strings.Repeat("k", 256), "v"}}, "metric.value_meta"},
		{"value_meta key not UTF-8", nil, []Field{{"\xff", "v"}}, "metric.value_meta"},
		{"repeated value_meta key", nil, []Field{{"a", "v"}, {"a", "w"}}, "metric.value_meta"},
		{"value_meta value not UTF-8", nil, []Field{{"a", "\xff"}}, "metric.value_meta"},
		{"value_meta NaN", nil, []Field{{"a", math.NaN()}}, "metric.value_meta"},
		{"value_meta unsupported type", nil, []Field{{"a", true}}, "metric.value_meta"},
		{"value_meta nil", nil, []Field{{"a", nil}}, "metric.value_meta"},
		{"value_meta too long", nil, []Field{{"a", strings.Repeat("x", 1000)}, {"b", strings.Repeat("y", 1000)}, {"c", strings.Repeat("z", 100)}}, "metric.value_meta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMetric()
			if tt.edit != nil {
				tt.edit(&m)
			}
			err := ValidateOutput(&m, tt.valueMeta)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("ValidateOutput = %v, want a *ValidationError", err)
			}
			if ve.Field != tt.field || !strings.HasPrefix(err.Error(), "invalid monasca metric: "+tt.field+": ") {
				t.Errorf("ValidateOutput = %v, want field %s", err, tt.field)
			}
		})
	}
	// Sixteen entries are allowed.
	m := validMetric()
	if err := ValidateOutput(&m, sixteen); err != nil {
		t.Errorf("16 value_meta entries: %v", err)
	}
}

// TestPythonJSONLengths compares the lengths the validator computes with
// Python's json.dumps output for the same values, recorded from CPython 3.
func TestPythonJSONLengths(t *testing.T) {
	floats := []struct {
		v      float64
		python string
	}{
		{0, "0.0"}, {math.Copysign(0, -1), "-0.0"}, {1, "1.0"}, {3840, "3840.0"}, {0.1, "0.1"},
		{1.0 / 3, "0.3333333333333333"}, {1e-4, "0.0001"}, {1.5e-4, "0.00015"}, {1e-5, "1e-05"},
		{1.5e-5, "1.5e-05"}, {-2.5e-7, "-2.5e-07"}, {1e15, "1000000000000000.0"}, {1e16, "1e+16"},
		{1.5e16, "1.5e+16"}, {123456789012345.6, "123456789012345.6"}, {1234567890123456, "1234567890123456.0"},
		{12345678901234567, "1.2345678901234568e+16"}, {1e22, "1e+22"}, {1e100, "1e+100"},
		{5e-324, "5e-324"}, {math.MaxFloat64, "1.7976931348623157e+308"}, {-123.456, "-123.456"},
		{1466421899, "1466421899.0"}, {0.000123456789, "0.000123456789"},
	}
	for _, f := range floats {
		if got := pyFloatLen(f.v); got != len(f.python) {
			t.Errorf("pyFloatLen(%v) = %d, Python writes %s (%d)", f.v, got, f.python, len(f.python))
		}
	}
	// len(json.dumps({"record_count": 6, "firstrecord_timestamp_string":
	// "2016-06-20 11:24:59", "x": "é\x7f😀\"\\\n\x01", "f": 1.5,
	// "g": -2.5e-07, "p": "a"*1895})) == 2048
	valueMeta := func(pad int) []Field {
		return []Field{
			{"record_count", 6},
			{"firstrecord_timestamp_string", "2016-06-20 11:24:59"},
			{"x", "é\x7f😀\"\\\n\x01"},
			{"f", 1.5},
			{"g", -2.5e-7},
			{"p", strings.Repeat("a", pad)},
		}
	}
	m := validMetric()
	if err := ValidateOutput(&m, valueMeta(1895)); err != nil {
		t.Errorf("value_meta of 2048 characters in Python: %v", err)
	}
	if err := ValidateOutput(&m, valueMeta(1896)); err == nil {
		t.Errorf("value_meta of 2049 characters in Python accepted")
	}
}
