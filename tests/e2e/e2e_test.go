package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// TestAggregatesExactly runs the pipeline once over a backlog and expects
// exactly the reference aggregates, each once. The large backlog holds about
// ten input batches per partition (the pipeline batches 1024 messages), so
// Kafka serves the partitions of the group unevenly, which the watermark must
// absorb.
func TestAggregatesExactly(t *testing.T) {
	cfg := pipelineConfig{
		inputTopic: "metrics", outputTopic: "aggregates",
		window: 2 * time.Second, lag: time.Second, idle: 5 * time.Second,
	}
	t.Run("backlog_3600", func(t *testing.T) { runBacklogOnce(t, cfg, 30, 120) })
	t.Run("backlog_40000", func(t *testing.T) { runBacklogOnce(t, cfg, 100, 400) })
}

// TestSameTopicNoReaggregation writes the aggregates to the input topic. The
// pipeline reads them back and must skip them: the spec CpuTotalSamples
// counts metrics named like CpuTotal's output, so re-aggregating them would
// change its values or add windows.
func TestSameTopicNoReaggregation(t *testing.T) {
	runBacklogOnce(t, pipelineConfig{
		inputTopic: "metrics", outputTopic: "metrics",
		window: 2 * time.Second, lag: time.Second, idle: 5 * time.Second,
	}, 30, 120)
}

// backlog starts the test's Kafka cluster and produces the workload's
// backlog into it. It returns the environment, a collector of the output
// topic started after the backlog was written, and the expected aggregates.
func backlog(ctx context.Context, t *testing.T, cfg pipelineConfig, w workload, rng *rand.Rand) (*testEnv, *collector, map[aggID]expectedAgg) {
	t.Helper()
	e := newEnv(t, cfg)
	g := w.generate(rng, time.Now())
	expected := expectedAggregates(g.metrics, cfg.window)
	e.produce(ctx, g.records)
	t.Logf("produced %d records (%d valid metrics) over %d windows: %d aggregates expected",
		len(g.records), len(g.metrics), w.windows, len(expected))
	return e, e.collect(ctx), expected
}

// runBacklogOnce produces a backlog of windows*perWindow valid metrics over
// four partitions, plus invalid ones, runs the pipeline once until it has
// committed all of it, and checks the aggregates and the pipeline's counters.
func runBacklogOnce(t *testing.T, cfg pipelineConfig, windows, perWindow int) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	w := workload{
		window: cfg.window, lag: cfg.lag, windows: windows, perWindow: perWindow, partitions: 4,
		bad: map[string]int{"malformed_json": 5, "wrong_type": 4, "non_finite_value": 3, "missing_field": 2},
	}
	e, c, expected := backlog(ctx, t, cfg, w, newRand(t))
	samples := runOnce(ctx, t, e, c, expected, w.bad)
	// Within a partition no metric trails the latest before it by the lag
	// (see workload.generate), so none may be dropped as late.
	if late := harness.Sum(samples, "monasca_metrics_late_total", "")[""]; late != 0 {
		t.Errorf("monasca_metrics_late_total = %v, want 0: the watermark passed metrics of partitions not yet read", late)
	}
}

// runOnce runs the pipeline over the backlog e holds until it has drained,
// checks the outputs against expected and the invalid input counted by
// reason against invalid, and returns the pipeline's metrics.
func runOnce(ctx context.Context, t *testing.T, e *testEnv, c *collector, expected map[aggID]expectedAgg, invalid map[string]int) []harness.Sample {
	t.Helper()
	started := time.Now()
	p := e.start()
	if e.waitDrained(ctx, c) {
		t.Logf("drained after %v", time.Since(started).Round(time.Millisecond))
	}
	checkOutputs(t, expected, c.outputs(), started, false)

	samples, err := harness.Scrape(ctx, p.httpAddr)
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	logCounters(t, samples)
	got := harness.Sum(samples, "monasca_metrics_invalid_total", "reason")
	for _, reason := range slices.Sorted(maps.Keys(invalid)) {
		if got[reason] != float64(invalid[reason]) {
			t.Errorf("monasca_metrics_invalid_total{reason=%q} = %v, want %d", reason, got[reason], invalid[reason])
		}
	}
	for reason, n := range got {
		if _, ok := invalid[reason]; !ok && n != 0 {
			t.Errorf("monasca_metrics_invalid_total{reason=%q} = %v, want 0", reason, n)
		}
	}
	return samples
}

// restartConfig is the pipeline configuration of the tests that stop and
// start instances. The idle timeout stays above the pipeline's 10s
// shutdown_timeout and the 10s it takes a restarted consumer to rejoin, so
// neither a stopping nor a rejoining instance closes windows it has not read
// in full.
var restartConfig = pipelineConfig{
	inputTopic: "metrics", outputTopic: "aggregates",
	window: time.Second, lag: time.Second, idle: 15 * time.Second,
}

// TestCrashAndRestartExactlyOnceValues kills the pipeline with SIGKILL four
// times and stops it once with SIGTERM while it works through a backlog of a
// hundred windows, restarting it each time, and then lets it finish. Every
// window must be emitted with its complete value: a duplicate is allowed only
// when identical, and nothing may be missing or partial.
//
// Every kill lands while the instance holds all partitions and consumes, not
// while it joins the consumer group: with the pinned kfake, a member that
// dies during a rebalance can be removed twice (by the rebalance and by its
// session timer), which corrupts the group's protocol counts so that every
// later join fails with INCONSISTENT_GROUP_PROTOCOL (fixed upstream in
// franz-go PR #1437). TestRollingRestartExactlyOnceValues covers instances
// that hold only some of the partitions.
func TestCrashAndRestartExactlyOnceValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	w := workload{
		window: restartConfig.window, lag: restartConfig.lag, windows: 100, perWindow: 600, partitions: 4,
		bad: map[string]int{"malformed_json": 20, "wrong_type": 20, "non_finite_value": 20, "missing_field": 20},
	}
	rng := newRand(t)
	e, c, expected := backlog(ctx, t, restartConfig, w, rng)
	started := time.Now()

	// The moments to interrupt at. Each waits for a condition or a limit,
	// whichever comes first: they choose when to interrupt, the outcome
	// does not depend on them.
	firstOutput := func(*process) string {
		n := c.count()
		if harness.WaitUntil(ctx, 40*time.Second, func() bool { return c.count() > n }) {
			return fmt.Sprintf("as its first aggregates arrived (%d outputs so far)", c.count())
		}
		return "after 40s without new aggregates"
	}
	randomlyWhileConsuming := func(p *process) string {
		consuming := harness.WaitUntil(ctx, 40*time.Second, func() bool { return received(ctx, p) > 0 })
		d := time.Duration(rng.Int64N(int64(time.Second)))
		harness.Sleep(ctx, d)
		if !consuming {
			return "after 40s without input"
		}
		return fmt.Sprintf("%v after it started consuming (%d outputs so far)", d.Round(time.Millisecond), c.count())
	}
	kills := []func(*process) string{firstOutput, randomlyWhileConsuming, firstOutput, randomlyWhileConsuming}
	for i, moment := range kills {
		p := e.start()
		when := moment(p)
		p.Kill()
		t.Logf("%s SIGKILL #%d %s", wallClock(), i+1, when)
		if ctx.Err() != nil {
			t.Fatal("test deadline reached")
		}
	}
	p := e.start()
	when := randomlyWhileConsuming(p)
	t.Logf("%s SIGTERM %s", wallClock(), when)
	stopCtx, stopCancel := context.WithTimeout(ctx, 40*time.Second)
	err := p.Stop(stopCtx)
	stopCancel()
	t.Logf("%s exited with %v", wallClock(), err)

	p = e.start()
	if e.waitDrained(ctx, c) {
		t.Logf("drained %v after the first start", time.Since(started).Round(time.Millisecond))
	}
	checkOutputs(t, expected, c.outputs(), started, true)
	if samples, err := harness.Scrape(ctx, p.httpAddr); err == nil {
		logCounters(t, samples)
	}
}

// TestRollingRestartExactlyOnceValues replaces the pipeline as a rolling
// update does: a second instance joins the consumer group while the first
// works through the backlog, the two share the partitions, and then the
// first is stopped with SIGTERM and the second finishes. While they share
// the partitions each reads only some of them; windows must still be emitted
// with their complete values only.
func TestRollingRestartExactlyOnceValues(t *testing.T) {
	// Two instances in one consumer group each aggregate only the
	// partitions they hold and publish partial values: exact totals across
	// instances need the keyed two-stage design of the scale-out work. The
	// shipped pipelines are for one instance per consumer group (deploy them
	// with a Recreate strategy), so this test documents the limit and runs
	// only on request.
	if os.Getenv("E2E_MULTI_INSTANCE") == "" {
		t.Skip("one instance per consumer group until the keyed two-stage pipelines exist; set E2E_MULTI_INSTANCE=1 to run")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	w := workload{
		window: restartConfig.window, lag: restartConfig.lag, windows: 100, perWindow: 600, partitions: 4,
	}
	e, c, expected := backlog(ctx, t, restartConfig, w, newRand(t))
	started := time.Now()

	old := e.start()
	if !harness.WaitUntil(ctx, 40*time.Second, func() bool { return received(ctx, old) > 0 }) {
		t.Fatal("the first instance read nothing within 40s")
	}
	e.start()
	if !harness.WaitUntil(ctx, 40*time.Second, func() bool { return len(e.assignedMembers(ctx)) == 2 }) {
		t.Fatal("the two instances did not share the partitions within 40s")
	}
	t.Logf("%s both instances hold partitions (%d outputs so far); SIGTERM to the first", wallClock(), c.count())
	stopCtx, stopCancel := context.WithTimeout(ctx, 40*time.Second)
	err := old.Stop(stopCtx)
	stopCancel()
	t.Logf("%s exited with %v", wallClock(), err)

	if e.waitDrained(ctx, c) {
		t.Logf("drained %v after the first start", time.Since(started).Round(time.Millisecond))
	}
	checkOutputs(t, expected, c.outputs(), started, true)
}

// newRand returns a random source seeded from E2E_SEED, or from the clock;
// the seed is logged so that a failing run can be repeated with the same
// data and interruption delays.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("E2E_SEED: %v", err)
		}
	}
	t.Logf("E2E_SEED=%d", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

// received returns monasca_metrics_received_total of a process, 0 when it
// cannot be read (yet).
func received(ctx context.Context, p *process) float64 {
	samples, err := harness.Scrape(ctx, p.httpAddr)
	if err != nil {
		return 0
	}
	return harness.Sum(samples, "monasca_metrics_received_total", "")[""]
}

// logCounters logs the pipeline's own view of a run, for diagnosis.
func logCounters(t *testing.T, samples []harness.Sample) {
	var b strings.Builder
	for _, name := range []string{
		"monasca_metrics_received_total", "monasca_metrics_aggregated_total", "monasca_metrics_unmatched_total",
		"monasca_metrics_late_total", "monasca_metrics_replayed_total", "monasca_metrics_own_output_skipped_total",
		"monasca_aggregates_emitted_total", "monasca_output_retries_total",
	} {
		fmt.Fprintf(&b, " %s=%v", strings.TrimPrefix(name, "monasca_"), harness.Sum(samples, name, "")[""])
	}
	t.Logf("pipeline counters of the last run:%s", b.String())
}

// checkOutputs compares the aggregates read with the expected ones. Every
// output must be an expected aggregate with exactly the expected value,
// record count, record time range, region and Kafka key, and a creation time
// in seconds during the run; every expected aggregate must have arrived.
// A repeated aggregate is an error unless allowDuplicates, and even then it
// must match exactly like the first.
func checkOutputs(t *testing.T, expected map[aggID]expectedAgg, outs []output, since time.Time, allowDuplicates bool) {
	t.Helper()
	var bad, unexpected, duplicated, missing []string
	seen := map[aggID]int{}
	correct := map[aggID]bool{}
	wrongAt := map[string]int{} // wrong outputs by publication second
	for _, o := range outs {
		where := fmt.Sprintf("p%d@%d", o.partition, o.offset)
		if ct := o.env.CreationTime; ct != nil {
			where += time.Unix(*ct, 0).UTC().Format(" (published 15:04:05)")
		}
		id, ok := o.id()
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: not an aggregate envelope (%v): %s", where, o.decodeErr, o.raw))
			continue
		}
		seen[id]++
		want, ok := expected[id]
		if !ok {
			unexpected = append(unexpected, fmt.Sprintf("%s: %v: %s", where, id, o.raw))
			continue
		}
		if seen[id] == 2 && !allowDuplicates {
			duplicated = append(duplicated, fmt.Sprintf("%s: %v", where, id))
		}
		if problems := compareOutput(&o, id, want, since); problems != "" {
			bad = append(bad, fmt.Sprintf("%s: %v: %s; got %s", where, id, problems, o.raw))
			if ct := o.env.CreationTime; ct != nil {
				wrongAt[time.Unix(*ct, 0).UTC().Format("15:04:05")]++
			}
		} else {
			correct[id] = true
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(expected), compareIDs) {
		if seen[id] == 0 {
			want := expected[id]
			missing = append(missing, fmt.Sprintf("%v: value %v record_count %d", id, want.value, want.count))
		}
	}
	dups, neverCorrect := 0, 0
	for id, n := range seen {
		dups += max(n-1, 0)
		if _, ok := expected[id]; ok && !correct[id] {
			neverCorrect++
		}
	}
	t.Logf("%d outputs for %d expected aggregates: %d repeated, %d wrong (%d aggregates never right), %d unexpected, %d missing",
		len(outs), len(expected), dups, len(bad), neverCorrect, len(unexpected), len(missing))
	if len(wrongAt) > 0 {
		var b strings.Builder
		for _, at := range slices.Sorted(maps.Keys(wrongAt)) {
			fmt.Fprintf(&b, " %s: %d;", at, wrongAt[at])
		}
		t.Logf("wrong outputs by publication time:%s", b.String())
	}
	report(t, "wrong aggregates", bad)
	report(t, "unexpected aggregates", unexpected)
	report(t, "duplicated aggregates", duplicated)
	report(t, "missing aggregates", missing)
}

func compareIDs(a, b aggID) int {
	if a.window != b.window {
		return cmp.Compare(a.window, b.window)
	}
	return strings.Compare(a.series, b.series)
}

// compareOutput lists how an output differs from the aggregate it claims to
// be, "" when it does not.
func compareOutput(o *output, id aggID, want expectedAgg, since time.Time) string {
	var p []string
	m := &o.env.Metric
	if o.key != id.series {
		p = append(p, fmt.Sprintf("Kafka key %q, want %q", o.key, id.series))
	}
	switch {
	case m.Value == nil:
		p = append(p, "no value")
	case *m.Value != want.value:
		p = append(p, fmt.Sprintf("value %v, want %v", *m.Value, want.value))
	}
	switch rc := m.ValueMeta.RecordCount; {
	case rc == nil:
		p = append(p, "no value_meta.record_count")
	case *rc != want.count:
		p = append(p, fmt.Sprintf("record_count %d, want %d", *rc, want.count))
	}
	if m.ValueMeta.First != want.first || m.ValueMeta.Last != want.last {
		p = append(p, fmt.Sprintf("record times %q..%q, want %q..%q", m.ValueMeta.First, m.ValueMeta.Last, want.first, want.last))
	}
	if o.env.Meta.Region != want.region {
		p = append(p, fmt.Sprintf("region %q, want %q", o.env.Meta.Region, want.region))
	}
	if ct := o.env.CreationTime; ct == nil || *ct < since.Unix()-1 || *ct > time.Now().Unix()+1 {
		p = append(p, "creation_time is not the publication time in epoch seconds")
	}
	return strings.Join(p, "; ")
}

// report fails the test with up to 25 of the given problems.
func report(t *testing.T, what string, problems []string) {
	t.Helper()
	if len(problems) == 0 {
		return
	}
	shown := problems[:min(len(problems), 25)]
	t.Errorf("%d %s:\n  %s", len(problems), what, strings.Join(shown, "\n  "))
}
