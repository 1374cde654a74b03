package conformancedata

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"testing"
)

// Output is an output metric as the comparison reads it: the fields of a
// Monasca envelope that the dataset's rules compare.
type Output struct {
	Name       string
	Dimensions map[string]string
	Value      float64
	ValueMeta  ValueMeta
	Meta       map[string]string
}

// ParseOutput reads an output metric from a Monasca envelope
// ({"metric":{...},"meta":{...},...}).
func ParseOutput(b []byte) (Output, error) {
	var e struct {
		Metric struct {
			Name       string            `json:"name"`
			Dimensions map[string]string `json:"dimensions"`
			Value      float64           `json:"value"`
			ValueMeta  ValueMeta         `json:"value_meta"`
		} `json:"metric"`
		Meta map[string]string `json:"meta"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return Output{}, fmt.Errorf("not a Monasca envelope: %w", err)
	}
	return Output{
		Name:       e.Metric.Name,
		Dimensions: e.Metric.Dimensions,
		Value:      e.Metric.Value,
		ValueMeta:  e.Metric.ValueMeta,
		Meta:       e.Meta,
	}, nil
}

// Compare fails the test with every difference Diff finds between the
// outputs and the case's expected metrics.
func Compare(t testing.TB, c *Case, got []Output) {
	t.Helper()
	for _, p := range Diff(c, got) {
		t.Error(p)
	}
}

// Diff applies the dataset's comparison rules and returns the differences,
// none when the outputs conform: unless the case's expected set is
// complete, only outputs named in its output_filter are compared; outputs
// are a multiset matched by name and exact dimensions; values and record
// counts agree to a relative 1e-9; the first and last record times (where
// expected) exactly; every output carries the case's expected meta. A
// missing or an extra output is a difference.
func Diff(c *Case, got []Output) []string {
	var problems []string
	if names := c.OutputFilter["name"]; len(names) > 0 && !c.ExpectedComplete {
		got = slices.DeleteFunc(slices.Clone(got), func(o Output) bool { return !slices.Contains(names, o.Name) })
	}
	unmatched := slices.Clone(got)
	for _, want := range c.Expected {
		i := slices.IndexFunc(unmatched, func(o Output) bool {
			return o.Name == want.Name && equalDims(o.Dimensions, want.Dimensions)
		})
		if i < 0 {
			problems = append(problems, fmt.Sprintf("missing %s %v = %v (rc %v)", want.Name, sortedDims(want.Dimensions), want.Value, want.ValueMeta.RecordCount))
			continue
		}
		o := unmatched[i]
		unmatched = slices.Delete(unmatched, i, i+1)
		what := fmt.Sprintf("%s %v", want.Name, sortedDims(want.Dimensions))
		if !near(o.Value, want.Value) {
			problems = append(problems, fmt.Sprintf("%s: value %v, want %v", what, o.Value, want.Value))
		}
		vm := o.ValueMeta
		if !near(vm.RecordCount, want.ValueMeta.RecordCount) {
			problems = append(problems, fmt.Sprintf("%s: record_count %v, want %v", what, vm.RecordCount, want.ValueMeta.RecordCount))
		}
		if want.ValueMeta.First != "" && vm.First != want.ValueMeta.First {
			problems = append(problems, fmt.Sprintf("%s: firstrecord_timestamp_string %q, want %q", what, vm.First, want.ValueMeta.First))
		}
		if want.ValueMeta.Last != "" && vm.Last != want.ValueMeta.Last {
			problems = append(problems, fmt.Sprintf("%s: lastrecord_timestamp_string %q, want %q", what, vm.Last, want.ValueMeta.Last))
		}
		for _, k := range slices.Sorted(maps.Keys(c.ExpectedMeta)) {
			if v := c.ExpectedMeta[k]; o.Meta[k] != v {
				problems = append(problems, fmt.Sprintf("%s: meta.%s %q, want %q", what, k, o.Meta[k], v))
			}
		}
	}
	for _, o := range unmatched {
		problems = append(problems, fmt.Sprintf("unexpected %s %v = %v (rc %v)", o.Name, sortedDims(o.Dimensions), o.Value, o.ValueMeta.RecordCount))
	}
	return problems
}

func equalDims(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sortedDims(d map[string]string) []string {
	out := make([]string, 0, len(d))
	for k, v := range d {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// near reports whether a and b agree to a relative 1e-9 (or are equal).
func near(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
