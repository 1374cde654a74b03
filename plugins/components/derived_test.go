package components

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/internal/streamtest"
)

const derivedSpecs = `
aggregationSpecifications:
  - name: mem
    aggregatedMetricName: mem.utilization_perc
    groupedDimensions: [hostname]
    inputs:
      used: {filteredMetricName: mem.used_mb, function: avg}
      total: {filteredMetricName: mem.total_mb, function: max}
    formula: root = this.used / this.total * 100
`

// derivedInput is the input of the derived tests: h1 has both inputs in
// two partitions, h2 no total, h3 a zero total.
func derivedInput() []*service.Message {
	var msgs []*service.Message
	for i, m := range []struct {
		name, host string
		ts         int64
		v          float64
		partition  int
	}{
		{"mem.used_mb", "h1", t0 + 1_000, 20, 0}, {"mem.used_mb", "h1", t0 + 2_000, 40, 1},
		{"mem.total_mb", "h1", t0 + 3_000, 100, 1}, {"mem.total_mb", "h1", t0 + 4_000, 50, 0},
		{"mem.used_mb", "h2", t0 + 1_000, 1, 0},
		{"mem.used_mb", "h3", t0 + 1_000, 1, 0}, {"mem.total_mb", "h3", t0 + 1_000, 0, 1},
		{"mem.used_mb", "h1", t0 + 12_500, 1, 0}, {"mem.used_mb", "h1", t0 + 12_600, 1, 1},
	} {
		msgs = append(msgs, onPartition(envelope(m.name, m.host, m.ts, m.v), "metrics", m.partition, i))
	}
	return msgs
}

// derivedLines summarises aggregates as name, hostname, timestamp, value
// and record count, sorted.
func derivedLines(t *testing.T, batch service.MessageBatch) []string {
	t.Helper()
	var lines []string
	for _, msg := range batch {
		raw, _ := msg.AsBytes()
		var env struct {
			Metric struct {
				Name       string            `json:"name"`
				Dimensions map[string]string `json:"dimensions"`
				Timestamp  int64             `json:"timestamp"`
				Value      float64           `json:"value"`
				ValueMeta  struct {
					RecordCount int64 `json:"record_count"`
				} `json:"value_meta"`
			} `json:"metric"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %v %d %v n=%d", env.Metric.Name, env.Metric.Dimensions, env.Metric.Timestamp, env.Metric.Value, env.Metric.ValueMeta.RecordCount))
	}
	slices.Sort(lines)
	return lines
}

// TestDerivedScaleOutMatchesOneInstance: a derived specification gives the
// same aggregates in one instance and through stage one's partials merged
// by stage two.
func TestDerivedScaleOutMatchesOneInstance(t *testing.T) {
	specs := writeSpecsText(t, derivedSpecs)
	want := []string{"mem.utilization_perc map[hostname:h1] 1704067200000 30 n=4"}

	clock := newTestClock(t0 + 13_000)
	single := newTestBufferWithSpecs(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), specs, "")
	write(t, single, derivedInput()...)
	if got := derivedLines(t, drain(t, single, clock)); !slices.Equal(got, want) {
		t.Fatalf("one instance: got %v, want %v", got, want)
	}

	clock = newTestClock(t0 + 13_000)
	one := newTestBufferWithSpecs(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), specs,
		"stage: partials\npartials_partitions: 2\nprogress_interval: 1ms")
	write(t, one, derivedInput()...)
	partials := drain(t, one, clock)
	two := newTestBufferWithSpecs(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), specs, "stage: merge")
	for i, msg := range partials {
		p, _ := msg.MetaGet(partitionMetaKey)
		n, _ := strconv.Atoi(p)
		write(t, two, onPartition(msg.Copy(), "partials", n, i))
	}
	if got := derivedLines(t, drain(t, two, clock)); !slices.Equal(got, want) {
		t.Fatalf("two stages: got %v, want %v", got, want)
	}
}

// TestDerivedSkippedCounter: the groups without a derived value are
// counted by reason in a running stream.
func TestDerivedSkippedCounter(t *testing.T) {
	counters := &rsCounters{counts: map[string]int64{}}
	env := service.NewEnvironment()
	if err := env.RegisterMetricsExporter("rs_counters", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) { return counters, nil }); err != nil {
		t.Fatal(err)
	}
	out := (streamtest.Options{Env: env, MetricsYAML: "rs_counters: {}"}).RunProcessor(t,
		"monasca_aggregate:\n  window_size: 10s\n  max_past: 0s\n  aggregation_specs: "+writeSpecsText(t, derivedSpecs),
		service.MessageBatch(derivedInput()))
	if got := derivedLines(t, out); len(got) != 1 || got[0] != "mem.utilization_perc map[hostname:h1] 1704067200000 30 n=4" {
		t.Errorf("got %v", got)
	}
	counters.mu.Lock()
	defer counters.mu.Unlock()
	for key, want := range map[string]int64{
		"monasca_derived_skipped_total[missing_input]":    2, // h2, and h1's second window without a total
		"monasca_derived_skipped_total[division_by_zero]": 1,
		"monasca_derived_skipped_total[not_a_number]":     0,
		"monasca_derived_skipped_total[formula_error]":    0,
	} {
		if got := counters.counts[key]; got != want {
			t.Errorf("%s = %d, want %d (all: %v)", key, got, want, counters.counts)
		}
	}
}
