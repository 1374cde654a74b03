package windowagg

import (
	"math"
	"testing"
	"time"
)

// TestStatusShowsSourcesWindowsAndCloseTimes: the status copies each
// source's latest event time, each rule's windows with their close times
// and series, and the close time Flush would reach, and changes nothing.
func TestStatusShowsSourcesWindowsAndCloseTimes(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 13_000)}
	e := newTestEngine(t, clock,
		Rule{Name: "total", MetricName: "cpu", OutputName: "o", Function: fn(t, "sum")},
		Rule{Name: "per host", MetricName: "cpu", OutputName: "p", Function: fn(t, "sum"), GroupBy: []string{"hostname"}})
	e.Add(p1, metric("cpu", t0+1_000, 1, "a", "hostname", "h1"))
	e.Add(p0, metric("cpu", t0+2_000, 1, "a", "hostname", "h2"))
	e.Add(p0, metric("cpu", t0+11_000, 1, "a", "hostname", "h2"))

	st := e.Status()
	if st.Frontier != math.MinInt64 || st.Watermark != t0+1_000 || st.CloseThrough != t0+1_000 {
		t.Fatalf("frontier %d, watermark %d, close through %d", st.Frontier, st.Watermark, st.CloseThrough)
	}
	if len(st.Sources) != 2 || st.Sources[0].Source != p0 || st.Sources[0].LatestEventTime != t0+11_000 ||
		st.Sources[1].Source != p1 || st.Sources[1].LatestEventTime != t0+1_000 || st.Sources[0].Quiet {
		t.Fatalf("sources %+v", st.Sources)
	}
	if len(st.Rules) != 2 || st.Rules[0].Name != "total" || st.Rules[1].Name != "per host" {
		t.Fatalf("rules %+v", st.Rules)
	}
	total, perHost := st.Rules[0], st.Rules[1]
	if total.OpenSeries != 2 || perHost.OpenSeries != 3 {
		t.Fatalf("open series %d and %d, want 2 and 3", total.OpenSeries, perHost.OpenSeries)
	}
	want := []WindowStatus{{Start: t0, End: t0 + 10_000, CloseAt: t0 + 12_000, Series: 2}, {Start: t0 + 10_000, End: t0 + 20_000, CloseAt: t0 + 22_000, Series: 1}}
	if len(perHost.Windows) != 2 || perHost.Windows[0] != want[0] || perHost.Windows[1] != want[1] {
		t.Fatalf("windows %+v, want %+v", perHost.Windows, want)
	}
	open := make([]int64, 2)
	e.AddOpenSeries(open)
	if open[0] != 2 || open[1] != 3 || e.OpenSeries() != 5 {
		t.Fatalf("AddOpenSeries %v, OpenSeries %d", open, e.OpenSeries())
	}
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("Status changed the engine: flushed %+v", out)
	}
}
