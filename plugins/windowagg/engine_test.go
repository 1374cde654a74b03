package windowagg

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// fakeClock is a settable wall clock.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

// t0 is a window-aligned epoch time in ms (2024-01-01T00:00:00Z).
const t0 = int64(1704067200000)

func fn(t *testing.T, name string) Function {
	t.Helper()
	f, ok := LookupFunction(name)
	if !ok {
		t.Fatalf("function %q is not registered", name)
	}
	return f
}

func newTestEngine(t *testing.T, clock *fakeClock, rules ...Rule) *Engine {
	t.Helper()
	e, err := New(Config{
		Window: 10 * time.Second, Lag: 2 * time.Second,
		IdleTimeout: 30 * time.Second, MaxFuture: time.Hour, Clock: clock.Now,
	}, rules)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func metric(name string, ts int64, v float64, tenant string, dims ...string) *monasca.Metric {
	m := &monasca.Metric{Name: name, Timestamp: ts, Value: v, TenantID: tenant, Region: "useast"}
	for i := 0; i+1 < len(dims); i += 2 {
		m.Dimensions = append(m.Dimensions, monasca.Dimension{Key: dims[i], Value: dims[i+1]})
	}
	return m
}

// sampleOf is m as a Sample, for AddSample and AddPartial.
func sampleOf(m *monasca.Metric) *Sample {
	return &Sample{Name: m.Name, Dimensions: m.Dimensions, TenantID: m.TenantID, Region: m.Region, Timestamp: m.Timestamp, Value: m.Value}
}

var p0 = Source{Stream: "metrics", Partition: 0}
var p1 = Source{Stream: "metrics", Partition: 1}

func dimsOf(a Aggregate) map[string]string {
	out := map[string]string{}
	for _, d := range a.Dimensions {
		out[d.Key] = d.Value
	}
	return out
}

func TestWindowsAreEpochAlignedAndCloseAfterLag(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "cpu", OutputName: "cpu_sum", Function: fn(t, "sum")})
	e.Add(p0, metric("cpu", t0+9_999, 1, "a"))  // window [t0, t0+10s)
	e.Add(p0, metric("cpu", t0+10_000, 2, "a")) // next window
	e.Add(p0, metric("cpu", t0+11_999, 4, "a")) // watermark t0+11.999s: end+lag = t0+12s not reached
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("window closed before end+lag: %+v", out)
	}
	e.Add(p0, metric("cpu", t0+12_000, 8, "a"))
	out, frontier := e.Flush(nil)
	if len(out) != 1 {
		t.Fatalf("want the first window only, got %+v", out)
	}
	a := out[0]
	if a.WindowStart != t0 || a.WindowEnd != t0+10_000 || a.Value != 1 || a.Count != 1 || a.Name != "cpu_sum" {
		t.Fatalf("unexpected aggregate %+v", a)
	}
	if frontier != t0+12_000 {
		t.Fatalf("frontier %d, want %d", frontier, t0+12_000)
	}
}

func TestFunctions(t *testing.T) {
	// Samples arrive out of time order: delta and rate must use the earliest
	// and latest by timestamp, not by arrival.
	samples := []struct {
		ts int64
		v  float64
	}{{t0 + 5_000, 30}, {t0 + 1_000, 10}, {t0 + 9_000, 50}, {t0 + 3_000, 5}}
	cases := map[string]float64{
		"sum": 95, "count": 4, "avg": 23.75, "min": 5, "max": 50,
		"delta": 40,       // 50 (t+9s) - 10 (t+1s)
		"rate":  40 / 8.0, // per second over 8 s
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{now: time.UnixMilli(t0)}
			e := newTestEngine(t, clock, Rule{Name: name, MetricName: "m", OutputName: "o", Function: fn(t, name)})
			for _, s := range samples {
				e.Add(p0, metric("m", s.ts, s.v, "t"))
			}
			out := e.FlushAll(nil)
			if len(out) != 1 || out[0].Value != want {
				t.Fatalf("%s = %+v, want %v", name, out, want)
			}
			if out[0].FirstTime != t0+1_000 || out[0].LastTime != t0+9_000 || out[0].Count != 4 {
				t.Fatalf("first/last/count wrong: %+v", out[0])
			}
		})
	}
}

func TestDeltaAndRateNeedTwoDistinctSamples(t *testing.T) {
	for _, name := range []string{"delta", "rate"} {
		clock := &fakeClock{now: time.UnixMilli(t0)}
		e := newTestEngine(t, clock, Rule{Name: name, MetricName: "m", OutputName: "o", Function: fn(t, name)})
		e.Add(p0, metric("m", t0+1_000, 7, "t"))
		if out := e.FlushAll(nil); len(out) != 0 {
			t.Fatalf("%s of one sample emitted %+v", name, out)
		}
	}
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "rate", MetricName: "m", OutputName: "o", Function: fn(t, "rate")})
	e.Add(p0, metric("m", t0+1_000, 7, "t"))
	e.Add(p0, metric("m", t0+1_000, 9, "t"))
	if out := e.FlushAll(nil); len(out) != 0 {
		t.Fatalf("rate over zero seconds emitted %+v", out)
	}
}

func TestFiltersRejectsAndGroupsLikeMonascaAggregator(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{
		Name: "Aggregation4", MetricName: "metric4", OutputName: "aggregated-metric4", Function: fn(t, "count"),
		Require:          []monasca.Dimension{{Key: "cluster", Value: "test-cluster-01"}},
		Reject:           []monasca.Dimension{{Key: "hostname", Value: "inactive-host"}, {Key: "device", Value: ""}},
		GroupBy:          []string{"hostname"},
		OutputDimensions: []monasca.Dimension{{Key: "cluster", Value: "test-cluster-01"}},
	})
	add := func(dims ...string) AddResult { return e.Add(p0, metric("metric4", t0+1_000, 1, "t", dims...)) }
	if r := add("cluster", "test-cluster-01", "hostname", "h1"); r.Matched != 1 {
		t.Fatal("matching metric not aggregated")
	}
	add("cluster", "test-cluster-01", "hostname", "h1")
	add("cluster", "test-cluster-01", "hostname", "h2")
	for _, dims := range [][]string{
		{"cluster", "other", "hostname", "h1"},                            // filter value differs
		{"hostname", "h1"},                                                // filter dimension missing
		{"cluster", "test-cluster-01", "hostname", "inactive-host"},       // rejected value
		{"cluster", "test-cluster-01", "hostname", "h1", "device", "sda"}, // rejected: any value
		{"cluster", "test-cluster-01"},                                    // grouped dimension missing
	} {
		if r := add(dims...); r.Matched != 0 {
			t.Fatalf("%v should not match", dims)
		}
	}
	if r := e.Add(p0, metric("metric5", t0, 1, "t", "cluster", "test-cluster-01", "hostname", "h1")); r.Matched != 0 {
		t.Fatal("other metric name matched")
	}
	out := e.FlushAll(nil)
	if len(out) != 2 {
		t.Fatalf("want 2 series, got %+v", out)
	}
	got := map[string]float64{}
	for _, a := range out {
		d := dimsOf(a)
		if d["cluster"] != "test-cluster-01" || len(d) != 2 {
			t.Fatalf("output dimensions %v", d)
		}
		got[d["hostname"]] = a.Value
	}
	if got["h1"] != 2 || got["h2"] != 1 {
		t.Fatalf("counts %v", got)
	}
}

func TestTenantsNeverMix(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum"),
		GroupBy: []string{"service"}, Rollup: &Rollup{Function: fn(t, "sum")}})
	e.Add(p0, metric("m", t0, 1, "tenantA", "service", "x"))
	e.Add(p0, metric("m", t0, 2, "tenantA", "service", "y"))
	e.Add(p0, metric("m", t0, 10, "tenantB", "service", "x"))
	out := e.FlushAll(nil)
	if len(out) != 2 {
		t.Fatalf("want one rollup per tenant, got %+v", out)
	}
	sums := map[string]float64{}
	for _, a := range out {
		sums[a.TenantID] = a.Value
		if len(a.Dimensions) != 0 {
			t.Fatalf("rollup without keys kept dimensions %v", a.Dimensions)
		}
	}
	if sums["tenantA"] != 3 || sums["tenantB"] != 10 {
		t.Fatalf("per-tenant sums %v", sums)
	}
}

func TestRollupReaggregatesGroupResults(t *testing.T) {
	// Aggregation3 of the monasca-aggregator example: avg per (hostname,
	// service), then sum of those averages per service.
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "Aggregation3", MetricName: "metric3", OutputName: "aggregated-metric3",
		Function: fn(t, "avg"), GroupBy: []string{"hostname", "service"},
		Rollup: &Rollup{Function: fn(t, "sum"), GroupBy: []string{"service"}}})
	for _, s := range []struct {
		host, svc string
		v         float64
	}{{"h1", "s1", 2}, {"h1", "s1", 4}, {"h2", "s1", 10}, {"h1", "s2", 7}} {
		e.Add(p0, metric("metric3", t0+1_000, s.v, "t", "hostname", s.host, "service", s.svc))
	}
	out := e.FlushAll(nil)
	if len(out) != 2 {
		t.Fatalf("want one series per service, got %+v", out)
	}
	for _, a := range out {
		d := dimsOf(a)
		if len(d) != 1 {
			t.Fatalf("rollup dimensions %v", d)
		}
		switch d["service"] {
		case "s1":
			if a.Value != 3+10 || a.Count != 3 {
				t.Fatalf("s1: %+v", a)
			}
		case "s2":
			if a.Value != 7 || a.Count != 1 {
				t.Fatalf("s2: %+v", a)
			}
		default:
			t.Fatalf("unexpected %v", d)
		}
	}
}

func TestWatermarkIsMinimumOverPartitions(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 3_600_000)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")})
	// Partition 0 has delivered a long backlog; partition 1 is behind.
	for i := int64(0); i < 60; i++ {
		e.Add(p0, metric("m", t0+i*1_000, 1, "t"))
	}
	e.Add(p1, metric("m", t0+500, 100, "t"))
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("closed windows partition 1 still holds: %+v", out)
	}
	// Partition 1 catches up; its data for the first window was not late.
	e.Add(p1, metric("m", t0+5_000, 100, "t"))
	e.Add(p1, metric("m", t0+12_500, 0, "t"))
	out, _ := e.Flush(nil)
	if len(out) != 1 || out[0].Value != 10+200 {
		t.Fatalf("first window should hold both partitions: %+v", out)
	}
}

func TestIdleSourceStopsHoldingTheWatermark(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")})
	e.Add(p1, metric("m", t0, 1, "t"))
	clock.advance(31 * time.Second) // p1 goes quiet
	e.Add(p0, metric("m", t0+1_000, 1, "t"))
	e.Add(p0, metric("m", t0+20_000, 1, "t"))
	out, _ := e.Flush(nil)
	if len(out) != 1 || out[0].Value != 2 {
		t.Fatalf("idle partition still held the watermark: %+v", out)
	}
}

func TestIdleFlushClosesEverythingOnlyWhenAllSourcesAreQuiet(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")})
	if out, f := e.Flush(nil); len(out) != 0 || f != math.MinInt64 {
		t.Fatal("flush with nothing open moved")
	}
	e.Add(p0, metric("m", t0+1_000, 5, "t"))
	clock.advance(29 * time.Second)
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("flushed before the idle timeout: %+v", out)
	}
	clock.advance(time.Second)
	out, frontier := e.Flush(nil)
	if len(out) != 1 || out[0].Value != 5 {
		t.Fatalf("idle flush: %+v", out)
	}
	// Nothing open: the frontier stays where the idle flush left it.
	clock.advance(time.Hour)
	if _, f := e.Flush(nil); f != frontier {
		t.Fatalf("frontier moved with nothing open: %d -> %d", frontier, f)
	}
}

func TestLateAndFutureMetrics(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 20_000)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")})
	e.Add(p0, metric("m", t0+1_000, 1, "t"))
	e.Add(p0, metric("m", t0+15_000, 1, "t"))
	if out, _ := e.Flush(nil); len(out) != 1 {
		t.Fatalf("want first window closed, got %+v", out)
	}
	if r := e.Add(p0, metric("m", t0+2_000, 1, "t")); r.Late != 1 || r.Matched != 0 || r.Replayed != 0 {
		t.Fatalf("late metric: %+v", r)
	}
	r := e.Add(p0, metric("m", t0+20_000+2*3_600_000, 1, "t"))
	if !r.Future || r.Matched != 0 {
		t.Fatalf("future metric: %+v", r)
	}
	// The rejected future metric must not have moved the watermark.
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("future metric closed windows: %+v", out)
	}
}

func TestMaxPastRejectsClockErrors(t *testing.T) {
	now := t0 + 3_600_000
	clock := &fakeClock{now: time.UnixMilli(now)}
	rules := []Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")}}
	e, err := New(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: 30 * time.Second,
		MaxFuture: time.Hour, MaxPast: time.Hour, Clock: clock.Now}, rules)
	if err != nil {
		t.Fatal(err)
	}
	e.Add(p0, metric("m", now-20_000, 1, "t"))
	e.Add(p0, metric("m", now, 1, "t"))
	if r := e.Add(p1, metric("m", t0-1, 1, "t")); !r.TooOld || r.Future || r.Matched != 0 || r.Late != 0 || r.CloseAt != 0 {
		t.Fatalf("metric older than max_past: %+v", r)
	}
	// p1 delivered nothing valid, so it must not hold the watermark back.
	if out, _ := e.Flush(nil); len(out) != 1 || out[0].Value != 1 {
		t.Fatalf("the rejected metric held the watermark: %+v", out)
	}
	if r := e.Add(p1, metric("m", t0, 1, "t")); r.TooOld || r.Late != 1 {
		t.Fatalf("metric exactly max_past old: %+v", r)
	}

	off, err := New(Config{Window: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxFuture: time.Hour, Clock: clock.Now}, rules)
	if err != nil {
		t.Fatal(err)
	}
	if r := off.Add(p0, metric("m", now-365*24*3_600_000, 1, "t")); r.TooOld || r.Matched != 1 {
		t.Fatalf("max_past 0 rejected a year-old metric: %+v", r)
	}
}

// TestMaxPastLeavesRestoreAndReplayAlone restarts an engine from a snapshot
// nearly max_past later: the input replayed after it is within max_past and
// must be counted and aggregated as without the bound. The restored state
// itself is never subject to it.
func TestMaxPastLeavesRestoreAndReplayAlone(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 20_000)}
	cfg := Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: 30 * time.Second,
		MaxFuture: time.Hour, MaxPast: time.Hour, Clock: clock.Now}
	rules := []Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")}}
	a, err := New(cfg, rules)
	if err != nil {
		t.Fatal(err)
	}
	a.Add(p0, metric("m", t0+1_000, 1, "t"))
	a.Add(p0, metric("m", t0+15_000, 2, "t"))
	if out, _ := a.Flush(nil); len(out) != 1 {
		t.Fatalf("want the first window emitted, got %+v", out)
	}
	snap := a.AppendSnapshot(nil)

	clock.advance(59 * time.Minute)
	b, err := New(cfg, rules)
	if err != nil {
		t.Fatal(err)
	}
	restoreInto(t, b, snap)
	// The buffer skips input a checkpoint holds by its offset; input of an
	// emitted window that reaches the engine anyway is late, as before.
	if r := b.Add(p0, metric("m", t0+1_000, 1, "t")); r.TooOld || r.Late != 1 {
		t.Fatalf("replayed metric of an emitted window: %+v", r)
	}
	if r := b.Add(p0, metric("m", t0+16_000, 3, "t")); r.TooOld || r.Matched != 1 {
		t.Fatalf("metric after the snapshot: %+v", r)
	}
	// Without checkpoints only the emitted frontier is restored, and the
	// replay of its windows is counted as such.
	d, err := New(cfg, rules)
	if err != nil {
		t.Fatal(err)
	}
	d.Restore(a.Frontier())
	if r := d.Add(p0, metric("m", t0+1_000, 1, "t")); r.TooOld || r.Replayed != 1 {
		t.Fatalf("replayed metric after a frontier restore: %+v", r)
	}

	clock.advance(time.Minute) // every source idle: the open window closes
	if out, _ := b.Flush(nil); len(out) != 1 || out[0].WindowStart != t0+10_000 || out[0].Value != 5 {
		t.Fatalf("want the restored window complete (2+3), got %+v", out)
	}

	clock.advance(time.Hour)
	c, err := New(cfg, rules)
	if err != nil {
		t.Fatal(err)
	}
	restoreInto(t, c, snap)
	if out := c.FlushAll(nil); len(out) != 1 || out[0].Value != 2 {
		t.Fatalf("a restore older than max_past lost its state: %+v", out)
	}
}

func TestRestoreSkipsReplayedWindows(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")})
	e.Restore(t0 + 12_000) // the window [t0, t0+10s) was emitted before
	r := e.Add(p0, metric("m", t0+5_000, 1, "t"))
	if r.Late != 1 || r.Replayed != 1 || r.CloseAt != 0 {
		t.Fatalf("replayed metric: %+v", r)
	}
	r = e.Add(p0, metric("m", t0+15_000, 1, "t"))
	if r.Matched != 1 || r.CloseAt != t0+22_000 {
		t.Fatalf("metric of an open window: %+v", r)
	}
}

func TestCloseAtCoversEveryMatchedWindow(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e, err := New(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour, Clock: clock.Now},
		[]Rule{
			{Name: "short", MetricName: "m", OutputName: "a", Function: fn(t, "sum")},
			{Name: "hourly", MetricName: "m", OutputName: "b", Function: fn(t, "sum"), Window: time.Hour},
		})
	if err != nil {
		t.Fatal(err)
	}
	r := e.Add(p0, metric("m", t0+1_000, 1, "t"))
	if r.Matched != 2 || r.CloseAt != t0+3_600_000+2_000 {
		t.Fatalf("%+v", r)
	}
}

func TestSeriesKeysCannotCollide(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "count"), GroupBy: []string{"a", "b"}})
	e.Add(p0, metric("m", t0, 1, "t", "a", "x\x00", "b", "y"))
	e.Add(p0, metric("m", t0, 1, "t", "a", "x", "b", "\x00y"))
	if out := e.FlushAll(nil); len(out) != 2 {
		t.Fatalf("distinct groups merged: %+v", out)
	}
}

func TestNegativeTimestampsAlignDownward(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(0)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")})
	e.Add(p0, metric("m", -1, 1, "t"))
	out := e.FlushAll(nil)
	if len(out) != 1 || out[0].WindowStart != -10_000 {
		t.Fatalf("%+v", out)
	}
}

func TestNewRejectsBadConfigAndRules(t *testing.T) {
	good := Config{Window: 10 * time.Second, IdleTimeout: time.Second, MaxFuture: time.Second}
	rule := Rule{Name: "r", MetricName: "m", OutputName: "o", Function: sumFunc{}}
	for name, tc := range map[string]struct {
		cfg   Config
		rules []Rule
	}{
		"window too small":              {Config{Window: time.Millisecond, IdleTimeout: time.Second, MaxFuture: time.Second}, []Rule{rule}},
		"window too large":              {Config{Window: 25 * time.Hour, IdleTimeout: time.Second, MaxFuture: time.Second}, []Rule{rule}},
		"no idle timeout":               {Config{Window: time.Second, MaxFuture: time.Second}, []Rule{rule}},
		"negative max past":             {Config{Window: time.Second, IdleTimeout: time.Second, MaxFuture: time.Second, MaxPast: -time.Second}, []Rule{rule}},
		"max past below window and lag": {Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: time.Second, MaxFuture: time.Second, MaxPast: 11 * time.Second}, []Rule{rule}},
		"max past below a rule's window": {Config{Window: 10 * time.Second, IdleTimeout: time.Second, MaxFuture: time.Second, MaxPast: time.Minute},
			[]Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: sumFunc{}, Window: time.Hour}}},
		"max past below lateness": {Config{Window: 10 * time.Second, IdleTimeout: time.Second, MaxFuture: time.Second, AllowedLateness: time.Minute, MaxPast: 30 * time.Second}, []Rule{rule}},
		"no rules":                {good, nil},
		"no function":             {good, []Rule{{Name: "r", MetricName: "m", OutputName: "o"}}},
		"rollup not grouped":      {good, []Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: sumFunc{}, GroupBy: []string{"a"}, Rollup: &Rollup{Function: sumFunc{}, GroupBy: []string{"b"}}}}},
		"no output name":          {good, []Rule{{Name: "r", MetricName: "m", Function: sumFunc{}}}},
	} {
		if _, err := New(tc.cfg, tc.rules); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSeriesID(t *testing.T) {
	a := Aggregate{Name: "cpu", TenantID: "t1", Dimensions: []monasca.Dimension{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}}
	if id := a.SeriesID(); id != "cpu,a=1,b=2@t1" {
		t.Fatal(id)
	}
}

func TestDiscoveryHoldsTheWatermarkForNewSources(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 3_600_000)}
	e, err := New(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: time.Minute,
		Discovery: 5 * time.Second, MaxFuture: time.Hour, Clock: clock.Now},
		[]Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")}})
	if err != nil {
		t.Fatal(err)
	}
	// Partition 0 delivers a long stretch before partition 1 is served.
	for i := int64(0); i < 60; i++ {
		e.Add(p0, metric("m", t0+i*1_000, 1, "t"))
	}
	clock.advance(4 * time.Second)
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("closed windows within the discovery hold: %+v", out)
	}
	e.Add(p1, metric("m", t0+500, 100, "t")) // not late: nothing closed yet
	e.Add(p1, metric("m", t0+30_000, 0, "t"))
	clock.advance(4 * time.Second) // 4s after partition 1 appeared: still held
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("closed windows within the hold of the second source: %+v", out)
	}
	clock.advance(time.Second)
	out, _ := e.Flush(nil)
	if len(out) != 2 || out[0].Value != 110 {
		t.Fatalf("want the first two windows with both partitions, got %+v", out)
	}
}

func TestSeriesLimitBoundsOpenSeries(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	const limit = 1000
	e, err := New(Config{Window: 10 * time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour, MaxSeries: limit, Clock: clock.Now},
		[]Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "count"), GroupBy: []string{"id"}}})
	if err != nil {
		t.Fatal(err)
	}
	m := metric("m", t0, 1, "t", "id", "")
	rejected := 0
	for i := 0; i < 1_000_000; i++ {
		m.Dimensions[0].Value = fmt.Sprintf("series-%07d", i)
		rejected += e.Add(p0, m).Rejected
	}
	if e.OpenSeries() != limit || rejected != 1_000_000-limit {
		t.Fatalf("open series %d, rejected %d", e.OpenSeries(), rejected)
	}
	// A series already open still takes samples.
	m.Dimensions[0].Value = "series-0000000"
	if r := e.Add(p0, m); r.Matched != 1 || r.Rejected != 0 {
		t.Fatalf("existing series refused: %+v", r)
	}
	// The next window has room again.
	m.Timestamp = t0 + 10_000
	m.Dimensions[0].Value = "series-0999999"
	if r := e.Add(p0, m); r.Matched != 1 {
		t.Fatalf("next window refused: %+v", r)
	}
}

func TestLateSamplesCorrectClosedWindowsWithCompleteValues(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	e, err := New(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: time.Minute,
		AllowedLateness: 30 * time.Second, MaxFuture: time.Hour, Clock: clock.Now},
		[]Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum"), GroupBy: []string{"host"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.Add(p0, metric("m", t0+1_000, 1, "t", "host", "a"))
	e.Add(p0, metric("m", t0+2_000, 2, "t", "host", "a"))
	e.Add(p0, metric("m", t0+13_000, 0, "t", "host", "a"))
	if out, _ := e.Flush(nil); len(out) != 1 || out[0].Value != 3 {
		t.Fatalf("first emission: %+v", out)
	}
	// Late samples: one for the emitted series, one for a new series of the
	// closed window.
	if r := e.Add(p0, metric("m", t0+3_000, 4, "t", "host", "a")); r.Corrected != 1 || r.Late != 0 || r.Matched != 0 {
		t.Fatalf("late sample: %+v", r)
	}
	e.Add(p0, metric("m", t0+4_000, 10, "t", "host", "b"))
	out, _ := e.Flush(nil)
	if len(out) != 2 || out[0].Value != 7 || out[0].Count != 3 || out[1].Value != 10 || out[0].WindowStart != t0 {
		t.Fatalf("correction must carry complete values: %+v", out)
	}
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("an unchanged window was emitted again: %+v", out)
	}
	// Past the allowed lateness the window is gone: late samples are dropped.
	e.Add(p0, metric("m", t0+45_000, 0, "t", "host", "a"))
	e.Flush(nil)
	if r := e.Add(p0, metric("m", t0+5_000, 1, "t", "host", "a")); r.Late != 1 || r.Corrected != 0 {
		t.Fatalf("sample past the allowed lateness: %+v", r)
	}
}
