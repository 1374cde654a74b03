package recordstore

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"
)

// FuzzDecodeInstanceUsage checks that DecodeInstanceUsage never panics, that
// what it accepts is consistent, and that its dimensions are what
// encoding/json reads from the row. The seed corpus is in
// testdata/fuzz/FuzzDecodeInstanceUsage.
func FuzzDecodeInstanceUsage(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		var m InstanceUsage
		err := DecodeInstanceUsage(in, &m)
		p := m.Records
		if err != nil {
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON")
		}
		switch {
		case m.MetricID == "":
			t.Errorf("empty name")
		case math.IsNaN(m.Quantity) || math.IsInf(m.Quantity, 0) || math.IsNaN(p.FirstValue) || math.IsInf(p.FirstValue, 0) ||
			math.IsNaN(p.LastValue) || math.IsInf(p.LastValue, 0):
			t.Errorf("non-finite value %v or partial %+v", m.Quantity, p)
		case p.Records < 0:
			t.Errorf("negative record count %d", p.Records)
		case m.Start < 0 || m.Start > maxUnixMillis || p.FirstTime < 0 || p.FirstTime > maxUnixMillis || p.LastTime < 0 || p.LastTime > maxUnixMillis:
			t.Errorf("time out of range: %d, partial %+v", m.Start, p)
		case m.Start%60_000 != 0:
			t.Errorf("timestamp %d is not the start of a minute", m.Start)
		}

		// Decoding again into the same row gives the same result.
		first := m
		first.Fields = slices.Clone(m.Fields)
		if err := DecodeInstanceUsage(in, &m); err != nil || m.Records != p || !reflect.DeepEqual(m, first) {
			t.Fatalf("second decode: %v, %+v, first %+v", err, m, first)
		}

		// Every dimension is a top-level string, or an extra_data_map
		// entry under a key that is not one.
		var row map[string]any
		if err := json.Unmarshal(in, &row); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		extra, _ := row["extra_data_map"].(map[string]any)
		seen := map[string]bool{}
		for _, d := range m.Fields {
			if seen[d.Key] {
				t.Errorf("dimension %q repeated", d.Key)
			}
			seen[d.Key] = true
			top, isString := row[d.Key].(string)
			switch {
			case isString && d.Key != "processing_meta" && d.Key != "extra_data_map":
				if top != d.Value {
					t.Errorf("dimension %q=%q, row %q", d.Key, d.Value, top)
				}
			case extra[d.Key] == nil:
				t.Errorf("dimension %q=%q is neither a top-level string nor an extra_data_map entry", d.Key, d.Value)
			}
		}
		for k, v := range row {
			if _, ok := v.(string); ok && !seen[k] {
				t.Errorf("top-level string %q missing from the dimensions", k)
			}
		}
	})
}
