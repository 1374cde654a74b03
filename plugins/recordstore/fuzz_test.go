package recordstore

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// FuzzDecodeInstanceUsage checks that DecodeInstanceUsage never panics, that
// what it accepts is consistent, and that its dimensions are what
// encoding/json reads from the row. The seed corpus is in
// testdata/fuzz/FuzzDecodeInstanceUsage.
func FuzzDecodeInstanceUsage(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		var m monasca.Metric
		p, err := DecodeInstanceUsage(in, &m)
		if err != nil {
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON")
		}
		switch {
		case m.Name == "":
			t.Errorf("empty name")
		case math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || math.IsNaN(p.FirstValue) || math.IsInf(p.FirstValue, 0) ||
			math.IsNaN(p.LastValue) || math.IsInf(p.LastValue, 0):
			t.Errorf("non-finite value %v or partial %+v", m.Value, p)
		case p.Records < 0:
			t.Errorf("negative record count %d", p.Records)
		case m.Timestamp < 0 || m.Timestamp > maxUnixMillis || p.FirstTime < 0 || p.FirstTime > maxUnixMillis || p.LastTime < 0 || p.LastTime > maxUnixMillis:
			t.Errorf("time out of range: %d, partial %+v", m.Timestamp, p)
		case m.Timestamp%60_000 != 0:
			t.Errorf("timestamp %d is not the start of a minute", m.Timestamp)
		}

		// Decoding again into the same metric gives the same result.
		first := m
		first.Dimensions = slices.Clone(m.Dimensions)
		if p2, err := DecodeInstanceUsage(in, &m); err != nil || p2 != p || !reflect.DeepEqual(m, first) {
			t.Fatalf("second decode: %v, %+v %+v, first %+v %+v", err, m, p2, first, p)
		}

		// Every dimension is a top-level string, or an extra_data_map
		// entry under a key that is not one.
		var row map[string]any
		if err := json.Unmarshal(in, &row); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		extra, _ := row["extra_data_map"].(map[string]any)
		seen := map[string]bool{}
		for _, d := range m.Dimensions {
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
