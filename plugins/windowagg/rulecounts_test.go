package windowagg

import (
	"testing"
	"time"
)

// TestRuleCountsTellWhichRuleDidWhat: two rules take the same metrics; the
// per-rule counts tell that one of them hit the series limit, and that a
// late metric was late for both, where AddResult sums over the rules.
func TestRuleCountsTellWhichRuleDidWhat(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 13_000)}
	e, err := New(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: 30 * time.Second, MaxFuture: time.Hour,
		MaxSeries: 1, Clock: clock.Now}, []Rule{
		{Name: "total", MetricName: "cpu", OutputName: "cpu.total", Function: fn(t, "sum")},
		{Name: "per host", MetricName: "cpu", OutputName: "cpu.host", Function: fn(t, "sum"), GroupBy: []string{"hostname"}},
		{Name: "memory", MetricName: "mem", OutputName: "mem.total", Function: fn(t, "sum")},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Add(p0, metric("cpu", t0+1_000, 1, "a", "hostname", "h1"))
	e.Add(p0, metric("cpu", t0+2_000, 1, "a", "hostname", "h2")) // a second series of "per host"
	e.Add(p0, metric("cpu", t0+12_500, 1, "a", "hostname", "h1"))
	e.Flush(nil)
	e.Add(p0, metric("cpu", t0+3_000, 1, "a", "hostname", "h1")) // its window closed

	got := e.TakeRuleCounts(nil)
	want := []RuleCounts{
		{Matched: 3, Late: 1},
		{Matched: 2, Late: 1, Rejected: 1},
		{},
	}
	if len(got) != len(want) {
		t.Fatalf("counts of %d rules, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if again := e.TakeRuleCounts(got); again[0] != (RuleCounts{}) || again[1] != (RuleCounts{}) {
		t.Fatalf("counts not started again from zero: %+v", again)
	}
}

// TestRuleCountsLeaveReplaysAndCorrectionsApart: a replay of input emitted
// before a restore is not late, and a sample for a window kept for
// corrections counts as corrected.
func TestRuleCountsLeaveReplaysAndCorrectionsApart(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 13_000)}
	e, err := New(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: 30 * time.Second, MaxFuture: time.Hour,
		AllowedLateness: time.Minute, Clock: clock.Now}, []Rule{{Name: "r", MetricName: "cpu", OutputName: "o", Function: fn(t, "sum")}})
	if err != nil {
		t.Fatal(err)
	}
	e.Restore(t0 + 2_000) // the window before t0 was emitted by an earlier run
	e.Add(p0, metric("cpu", t0-5_000, 1, "a"))
	e.Add(p0, metric("cpu", t0+1_000, 1, "a"))
	e.Add(p0, metric("cpu", t0+12_500, 1, "a"))
	e.Flush(nil)
	e.Add(p0, metric("cpu", t0+2_000, 1, "a")) // its window is kept
	if got, want := e.TakeRuleCounts(nil)[0], (RuleCounts{Matched: 2, Corrected: 1}); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
}

// TestRuleCountsOfContributions: stage two counts contributions per rule.
func TestRuleCountsOfContributions(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e, err := NewMerger(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: 30 * time.Second, MaxFuture: time.Hour,
		Clock: clock.Now}, []Rule{
		{Name: "a", MetricName: "cpu", OutputName: "o", Function: fn(t, "sum")},
		{Name: "b", MetricName: "cpu", OutputName: "p", Function: fn(t, "sum")},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := SeriesState{Rule: "b", WindowStart: t0, WindowEnd: t0 + 10_000, TenantID: "t", State: State{Count: 1, Records: 1, Sum: 1}}
	if _, err := e.Contribute(p0, 1, &s); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Contribute(p0, 0, &s); err != nil { // stale: a replay, not late
		t.Fatal(err)
	}
	got := e.TakeRuleCounts(nil)
	if got[0] != (RuleCounts{}) || got[1] != (RuleCounts{Matched: 1}) {
		t.Fatalf("counts %+v", got)
	}
}

// TestAddAllocatesNothingForCounts: counting per rule keeps Add of a
// known series, and taking the counts into a reused slice, free of
// allocations.
func TestAddAllocatesNothingForCounts(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock,
		Rule{Name: "total", MetricName: "cpu", OutputName: "o", Function: fn(t, "sum")},
		Rule{Name: "per host", MetricName: "cpu", OutputName: "p", Function: fn(t, "avg"), GroupBy: []string{"hostname"}})
	m := metric("cpu", t0+1_000, 1, "a", "hostname", "h1")
	e.Add(p0, m)
	counts := e.TakeRuleCounts(nil)
	if n := testing.AllocsPerRun(100, func() {
		e.Add(p0, m)
		counts = e.TakeRuleCounts(counts)
	}); n != 0 {
		t.Fatalf("%v allocations per Add and TakeRuleCounts", n)
	}
}
