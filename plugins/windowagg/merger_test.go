package windowagg

import (
	"bytes"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// goldenRules and goldenFeed build the stage-two state of
// testdata/merger-v1.hex, a snapshot written by the engine with
// Config.Contributions before the Merger had a type of its own.
func goldenRules(t *testing.T) []Rule {
	return []Rule{
		{Name: "sum_by_host", MetricName: "cpu", OutputName: "cpu_sum", Function: fn(t, "sum"), GroupBy: []string{"hostname"}},
		{Name: "avg_all", MetricName: "cpu", OutputName: "cpu_avg", Function: fn(t, "avg")},
	}
}

func goldenFeed(t *testing.T, two interface {
	Contribute(Source, int64, *SeriesState) (AddResult, error)
	Progress(Source, int64, int64, bool)
	Flush([]Aggregate) ([]Aggregate, int64)
}) {
	a, b := Source{Stream: "partials", Partition: 0}, Source{Stream: "partials", Partition: 1}
	contribute := func(src Source, pos int64, rule string, start int64, tenant, region string, values []string, vs ...float64) {
		t.Helper()
		if _, err := two.Contribute(src, pos, &SeriesState{Rule: rule, WindowStart: start, WindowEnd: start + 10_000,
			TenantID: tenant, Region: region, Values: values, State: stateOf(vs...)}); err != nil {
			t.Fatal(err)
		}
	}
	contribute(a, 3, "sum_by_host", t0, "x", "r1", []string{"h1"}, 1, 2)
	contribute(b, 4, "sum_by_host", t0, "x", "r1", []string{"h1"}, 5)
	contribute(b, 4, "sum_by_host", t0, "y", "r2", []string{"h2"}, 7)
	contribute(a, 3, "avg_all", t0, "x", "r1", nil, 1, 2)
	two.Progress(a, 5, t0+12_000, false)
	two.Progress(b, 6, t0+12_000, false)
	two.Flush(nil)
	contribute(a, 7, "sum_by_host", t0, "x", "r1", []string{"h1"}, 1, 2, 3) // a correction
	contribute(a, 8, "sum_by_host", t0+10_000, "x", "r1", []string{"h1"}, 4)
	contribute(b, 9, "avg_all", t0+10_000, "y", "r2", nil, 6, 8)
	two.Progress(a, 10, t0+15_000, true)
}

// TestMergerRestoresOldSnapshot: a Merger restores the snapshot the engine
// with Config.Contributions wrote for the same state, writes the same bytes
// back, and emits what that engine emitted.
func TestMergerRestoresOldSnapshot(t *testing.T) {
	raw, err := os.ReadFile("testdata/merger-v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.UnixMilli(t0 + 30_000)}
	fed := newStageTwo(t, clock, 20*time.Second, goldenRules(t)...)
	goldenFeed(t, fed)
	if !bytes.Equal(fed.AppendSnapshot(nil), golden) {
		t.Error("a Merger's snapshot differs from the one written before it had a type")
	}
	m := newStageTwo(t, clock, 20*time.Second, goldenRules(t)...)
	restoreInto(t, m, golden)
	if !bytes.Equal(m.AppendSnapshot(nil), golden) {
		t.Error("the restored Merger's snapshot differs")
	}
	if _, err := New(m.cfg, goldenRules(t)); err != nil {
		t.Fatal(err)
	} else if e, _ := New(m.cfg, goldenRules(t)); e.RestoreSnapshot(golden) == nil {
		t.Error("an Engine restored a Merger's snapshot")
	}
	clock.advance(time.Minute)
	want := []string{
		"cpu_avg [] y 1704067210000 7 n=2 1704067200000..1704067200001",
		"cpu_sum [{hostname h1}] x 1704067200000 11 n=4 1704067200000..1704067200002",
		"cpu_sum [{hostname h1}] x 1704067210000 4 n=1 1704067200000..1704067200000",
		"cpu_sum [{hostname h2}] y 1704067200000 7 n=1 1704067200000..1704067200000",
	}
	if got := aggregateLines(m.FlushAll(nil)); !slices.Equal(got, want) {
		t.Fatalf("restored Merger emitted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
