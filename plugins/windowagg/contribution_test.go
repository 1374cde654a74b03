package windowagg

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func newStageTwo(t *testing.T, clock *fakeClock, lateness time.Duration, rules ...Rule) *Merger {
	t.Helper()
	e, err := NewMerger(Config{
		Window: 10 * time.Second, Lag: 2 * time.Second, AllowedLateness: lateness,
		IdleTimeout: time.Minute, MaxFuture: time.Hour, Clock: clock.Now,
	}, rules)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func twoStageRules(t *testing.T) []Rule {
	return []Rule{
		{Name: "sum_by_host", MetricName: "cpu", OutputName: "cpu_sum", Function: fn(t, "sum"), GroupBy: []string{"hostname"}},
		{Name: "avg_all", MetricName: "cpu", OutputName: "cpu_avg", Function: fn(t, "avg")},
		{Name: "max_rollup", MetricName: "cpu", OutputName: "cpu_max_of_sums", Function: fn(t, "sum"),
			GroupBy: []string{"hostname", "service"}, Rollup: &Rollup{Function: fn(t, "max"), GroupBy: []string{"service"}}},
		{Name: "count_all_tenants", MetricName: "mem", OutputName: "mem_count", Function: fn(t, "count"), AcrossTenants: true},
		{Name: "rate_by_host", MetricName: "mem", OutputName: "mem_rate", Function: fn(t, "rate"), GroupBy: []string{"hostname"}},
		{Name: "latest", MetricName: "mem", OutputName: "mem_latest", Function: fn(t, "latest"), GroupBy: []string{"hostname"}},
	}
}

func aggregateLines(aggs []Aggregate) []string {
	lines := make([]string, len(aggs))
	for i, a := range aggs {
		lines[i] = fmt.Sprintf("%s %v %s %d %v n=%d %d..%d", a.Name, a.Dimensions, a.TenantID, a.WindowStart, a.Value, a.Count, a.FirstTime, a.LastTime)
	}
	slices.Sort(lines)
	return lines
}

// TestTwoStageEqualsOneEngine runs the same input through one engine, and
// through one stage-one engine per partition whose states a stage-two
// engine merges: the aggregates must be identical.
func TestTwoStageEqualsOneEngine(t *testing.T) {
	rules := twoStageRules(t)
	clock := &fakeClock{now: time.UnixMilli(t0 + 600_000)}
	single := newTestEngine(t, clock, rules...)
	const partitions = 4
	var stageOne [partitions]*Engine
	for i := range stageOne {
		stageOne[i] = newTestEngine(t, clock, rules...)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		// Integer values keep sums exact in any order.
		ts := t0 + int64(i)*10 + rng.Int64N(1500)
		name := []string{"cpu", "mem"}[rng.IntN(2)]
		m := metric(name, ts, float64(rng.IntN(100)), []string{"a", "b"}[rng.IntN(2)],
			"hostname", fmt.Sprintf("h%d", rng.IntN(5)), "service", []string{"nova", "swift"}[rng.IntN(2)])
		p := rng.Int32N(partitions)
		single.Add(Source{Stream: "metrics", Partition: p}, m)
		stageOne[p].Add(Source{Stream: "metrics", Partition: p}, m)
	}
	clock.advance(time.Minute) // every source idle: all windows close
	want := single.FlushAll(nil)

	two := newStageTwo(t, clock, 0, rules...)
	for p, e := range stageOne {
		src := Source{Stream: "metrics", Partition: int32(p)}
		states, frontier := e.FlushStates(nil)
		if !e.Idle() {
			t.Fatalf("stage-one engine %d is not idle after closing everything", p)
		}
		for i := range states {
			if _, err := two.Contribute(src, 100, &states[i]); err != nil {
				t.Fatal(err)
			}
		}
		two.Progress(src, 100, frontier, false)
	}
	got, _ := two.Flush(nil)
	if len(want) == 0 || !slices.Equal(aggregateLines(got), aggregateLines(want)) {
		t.Fatalf("two stages differ from one engine:\n got %s\nwant %s", strings.Join(aggregateLines(got), "\n    "), strings.Join(aggregateLines(want), "\n    "))
	}
}

// TestStatesRouteByFinalGroup checks that states that end up in one output
// row share a route, and that others do not.
func TestStatesRouteByFinalGroup(t *testing.T) {
	rules := twoStageRules(t)
	clock := &fakeClock{now: time.UnixMilli(t0 + 600_000)}
	e := newTestEngine(t, clock, rules...)
	e.Add(p0, metric("cpu", t0, 1, "a", "hostname", "h1", "service", "nova"))
	e.Add(p0, metric("cpu", t0, 1, "a", "hostname", "h2", "service", "nova"))
	e.Add(p0, metric("cpu", t0, 1, "a", "hostname", "h2", "service", "swift"))
	clock.advance(time.Minute)
	states, _ := e.FlushStates(nil)
	routes := map[string]map[string]bool{} // rule -> routes
	for _, s := range states {
		if routes[s.Rule] == nil {
			routes[s.Rule] = map[string]bool{}
		}
		routes[s.Rule][s.Route] = true
	}
	for rule, want := range map[string]int{"sum_by_host": 2, "avg_all": 1, "max_rollup": 2} {
		if len(routes[rule]) != want {
			t.Errorf("rule %s: %d routes, want %d", rule, len(routes[rule]), want)
		}
	}
}

func stateOf(values ...float64) State {
	var s State
	for i, v := range values {
		s.Add(t0+int64(i), v)
	}
	return s
}

// TestContributionReplacesNewerAndIgnoresStale: a source's contribution is
// replaced by one at a later or equal offset, never added to, and one at an
// earlier offset is ignored.
func TestContributionReplacesNewerAndIgnoresStale(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	two := newStageTwo(t, clock, 0, Rule{Name: "s", MetricName: "cpu", OutputName: "cpu_sum", Function: fn(t, "sum")})
	contribute := func(src Source, offset int64, values ...float64) AddResult {
		t.Helper()
		r, err := two.Contribute(src, offset, &SeriesState{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, TenantID: "a", State: stateOf(values...)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	contribute(p0, 10, 1, 2)    // 3
	contribute(p0, 12, 1, 2, 4) // replaces: 7
	contribute(p0, 11, 100)     // stale
	contribute(p1, 5, 10)       // another source: + 10
	contribute(p1, 5, 10)       // the same again: a replay
	two.Progress(p0, 12, t0+12_000, false)
	if out, _ := two.Flush(nil); len(out) != 0 {
		t.Fatalf("closed before every source passed the window: %+v", out)
	}
	two.Progress(p1, 5, t0+12_000, false)
	out, _ := two.Flush(nil)
	if len(out) != 1 || out[0].Value != 17 || out[0].Count != 4 {
		t.Fatalf("want one sum of 17 over 4 samples, got %+v", out)
	}
	if r := contribute(p1, 5, 10); r.Late != 1 || r.Replayed != 1 || r.Matched != 0 {
		t.Fatalf("a source's window sent again after it reported it delivered: %+v, want it counted as replayed", r)
	}
	p2 := Source{Stream: "metrics", Partition: 2}
	two.Progress(p2, 1, t0, false) // p2 has not delivered the window
	if r := contribute(p2, 5, 10); r.Late != 1 || r.Replayed != 0 {
		t.Fatalf("a window the source had not delivered, arriving after it closed: %+v, want it counted as late", r)
	}
}

// TestProgressIdleAndStale: an idle source does not hold the watermark;
// progress at an older offset (a former owner of the partition) changes
// nothing.
func TestProgressIdleAndStale(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	two := newStageTwo(t, clock, 0, Rule{Name: "s", MetricName: "cpu", OutputName: "cpu_sum", Function: fn(t, "sum")})
	if _, err := two.Contribute(p0, 1, &SeriesState{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, TenantID: "a", State: stateOf(1)}); err != nil {
		t.Fatal(err)
	}
	two.Progress(p0, 1, t0+12_000, false)
	two.Progress(p1, 50, t0, false)
	if out, _ := two.Flush(nil); len(out) != 0 {
		t.Fatalf("closed while p1 holds the watermark: %+v", out)
	}
	two.Progress(p1, 40, t0+12_000, true) // stale: ignored
	if out, _ := two.Flush(nil); len(out) != 0 {
		t.Fatalf("stale progress moved the watermark: %+v", out)
	}
	two.Progress(p1, 51, t0, true)
	if out, _ := two.Flush(nil); len(out) != 1 {
		t.Fatalf("an idle source still holds the watermark: %+v", out)
	}
}

// TestContributionCorrectsKeptWindow: with allowed lateness, a changed
// contribution to an emitted window re-emits it, complete.
func TestContributionCorrectsKeptWindow(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	two := newStageTwo(t, clock, time.Minute, Rule{Name: "s", MetricName: "cpu", OutputName: "cpu_sum", Function: fn(t, "sum")})
	for _, src := range []Source{p0, p1} {
		if _, err := two.Contribute(src, 1, &SeriesState{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, State: stateOf(1)}); err != nil {
			t.Fatal(err)
		}
		two.Progress(src, 1, t0+12_000, false)
	}
	if out, _ := two.Flush(nil); len(out) != 1 || out[0].Value != 2 {
		t.Fatalf("want 2, got %+v", out)
	}
	r, err := two.Contribute(p1, 2, &SeriesState{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, State: stateOf(1, 5)})
	if err != nil || r.Corrected != 1 {
		t.Fatalf("correction: %+v %v", r, err)
	}
	if out, _ := two.Flush(nil); len(out) != 1 || out[0].Value != 7 || out[0].Count != 3 {
		t.Fatalf("want the corrected, complete 7 over 3 samples, got %+v", out)
	}
}

func TestContributionErrors(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	two := newStageTwo(t, clock, 0, Rule{Name: "s", MetricName: "cpu", OutputName: "o", Function: fn(t, "sum"), GroupBy: []string{"h"}})
	for _, s := range []SeriesState{
		{Rule: "nope", WindowStart: t0, WindowEnd: t0 + 10_000, Values: []string{"x"}, State: stateOf(1)},
		{Rule: "s", WindowStart: t0 + 1, WindowEnd: t0 + 10_001, Values: []string{"x"}, State: stateOf(1)},
		{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, State: stateOf(1)},
		{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, Values: []string{"x"}},
	} {
		if _, err := two.Contribute(p0, 0, &s); err == nil {
			t.Errorf("no error for %+v", s)
		}
	}
	if _, err := NewMerger(Config{Window: time.Second, IdleTimeout: time.Second, MaxFuture: time.Second},
		[]Rule{{Name: "x", MetricName: "a", OutputName: "b", Function: fn(t, "sum")}, {Name: "x", MetricName: "c", OutputName: "d", Function: fn(t, "sum")}}); err == nil {
		t.Error("duplicate rule names accepted")
	}
}

// TestSilentSourcesCloseNothing: when every stage-one source falls silent
// without reporting itself idle (stage one is down), open windows stay open;
// once all report idle, they close.
func TestSilentSourcesCloseNothing(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	two := newStageTwo(t, clock, 0, Rule{Name: "s", MetricName: "cpu", OutputName: "cpu_sum", Function: fn(t, "sum")})
	if _, err := two.Contribute(p0, 1, &SeriesState{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, State: stateOf(1)}); err != nil {
		t.Fatal(err)
	}
	two.Progress(p0, 1, t0, false)
	clock.advance(time.Hour)
	if out, _ := two.Flush(nil); len(out) != 0 {
		t.Fatalf("closed on silence alone: %+v", out)
	}
	two.Progress(p0, 2, t0, true)
	if out, _ := two.Flush(nil); len(out) != 1 {
		t.Fatalf("not closed once every source reported idle: %+v", out)
	}
}
