package e2e

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// TestCutoverAtWindow follows the cut-over of docs/migrating.md: the
// original aggregator has published the windows up to W and stopped, and
// monasca-aggregation.yaml starts in a new consumer group with START_TIME
// at the start of window W+1. The input topic holds every window, in
// records stamped with their metrics' times. The pipeline must publish
// exactly the aggregates of the windows from W+1 on, each once, and read
// none of the records before START_TIME.
func TestCutoverAtWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cfg := pipelineConfig{
		inputTopic: "metrics", outputTopic: "aggregates",
		window: 2 * time.Second, lag: time.Second, idle: 5 * time.Second,
	}
	e := newEnv(t, cfg)
	w := workload{window: cfg.window, lag: cfg.lag, windows: 20, perWindow: 120, partitions: 4}
	metrics := w.generate(newRand(t), time.Now()).metrics
	size := cfg.window.Milliseconds()
	// generate fills the windows in order: the first metric is in the
	// first window. The original published the first ten.
	cut := metrics[0].ts/size*size + 10*size
	// The pinned kfake answers a lookup by time inside a batch with the
	// last record stamped at or before the time, Kafka with the first at
	// or after it. Without a record stamped at the start itself
	// (plugins/kafka/input_start_test.go has one) and with no batch
	// holding records from both sides of it, both answers are the same.
	for i := range metrics {
		if metrics[i].ts == cut {
			metrics[i].ts++
		}
	}
	want := expectedAggregates(metrics, cfg.window)
	maps.DeleteFunc(want, func(id aggID, _ expectedAgg) bool { return id.window < cut })

	// The records before the start and from it on are produced apart.
	var before, after []*kgo.Record
	for i, m := range metrics {
		r := inputRecord(int32(i)%w.partitions, m.envelope())
		r.Timestamp = time.UnixMilli(m.ts)
		if m.ts < cut {
			before = append(before, r)
		} else {
			after = append(after, r)
		}
	}
	e.produce(ctx, before)
	e.produce(ctx, after)
	startTime := time.UnixMilli(cut).UTC().Format(time.RFC3339)
	t.Logf("produced %d records before START_TIME=%s and %d from it on: %d aggregates expected",
		len(before), startTime, len(after), len(want))

	c := e.collect(ctx)
	started := time.Now()
	p := e.startProc(procSpec{env: []string{
		"AGGREGATION_SPECS=" + specsFile,
		"WINDOW_SIZE=" + cfg.window.String(),
		"WINDOW_LAG=" + cfg.lag.String(),
		"IDLE_TIMEOUT=" + cfg.idle.String(),
		"START_TIME=" + startTime,
	}})
	if e.waitDrained(ctx, c) {
		t.Logf("drained after %v", time.Since(started).Round(time.Millisecond))
	}
	checkOutputs(t, want, c.outputs(), started, false)

	samples, err := harness.Scrape(ctx, p.httpAddr)
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	logCounters(t, samples)
	if got := harness.Sum(samples, "monasca_metrics_received_total", "")[""]; got != float64(len(after)) {
		t.Errorf("monasca_metrics_received_total = %v, want %d: the records from START_TIME on, and no earlier one", got, len(after))
	}
}
