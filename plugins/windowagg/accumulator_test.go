package windowagg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// accRules are one rule per accumulating function, grouped by host.
func accRules(t *testing.T) []Rule {
	t.Helper()
	var rules []Rule
	for _, f := range []string{"stddev", "p50", "p90", "p95", "p99"} {
		rules = append(rules, Rule{Name: f, MetricName: "lat", GroupBy: []string{"host"}, OutputName: "lat." + f, Function: fn(t, f)})
	}
	return rules
}

// refSample is one sample of the randomized input.
type refSample struct {
	host  string
	ts    int64
	value float64
}

// randomSamples draws n samples over 6 hosts and 3 windows of 10 s,
// shuffled within a second (inside the lag), with values of every kind a
// sketch must handle: a large offset with a small spread (cancellation in
// a naive variance), negatives, zeros and a range of many magnitudes.
func randomSamples(rng *rand.Rand, n int) []refSample {
	out := make([]refSample, n)
	for i := range out {
		host := fmt.Sprintf("h%d", rng.IntN(6))
		var v float64
		switch rng.IntN(4) {
		case 0:
			v = 1e9 + rng.Float64()
		case 1:
			v = -math.Exp(rng.Float64() * 20)
		case 2:
			v = 0
		default:
			v = math.Exp(rng.NormFloat64() * 5)
		}
		out[i] = refSample{host: host, ts: t0 + int64(i)*30_000/int64(n), value: v}
	}
	shuffleWithinLag(rng, out, 20, func(s refSample) int64 { return s.ts })
	return out
}

// shuffleWithinLag swaps samples of s, which are in time order, with one up
// to reach places later when they are less than a second apart: out of
// order, but inside the tests' lag.
func shuffleWithinLag[T any](rng *rand.Rand, s []T, reach int, ts func(T) int64) {
	for i := range s {
		j := min(len(s)-1, i+rng.IntN(reach))
		if ts(s[j])-ts(s[i]) < 1_000 {
			s[i], s[j] = s[j], s[i]
		}
	}
}

// throughStages runs samples through three stage-one engines, add folding
// into the engine of partition p what goes there, and a Merger with rules,
// and returns what the Merger emits.
func throughStages(t *testing.T, clock *fakeClock, rules []Rule, add func(p int32, src Source, e *Engine)) []Aggregate {
	t.Helper()
	merger := newStageTwo(t, clock, 0, rules...)
	for p := range int32(3) {
		src := Source{Stream: "metrics", Partition: p}
		stage1 := newTestEngine(t, clock, rules...)
		add(p, src, stage1)
		clock.advance(time.Minute) // every source idle: everything closes
		states, _ := stage1.FlushStates(nil)
		clock.advance(-time.Minute)
		for i := range states {
			if _, err := merger.Contribute(src, int64(i), &states[i]); err != nil {
				t.Fatal(err)
			}
		}
		merger.Progress(src, int64(len(states)), math.MaxInt64-1, true)
	}
	got, _ := merger.Flush(nil)
	return got
}

// reference computes, without the engine, every rule's value per window
// start and host: a two-pass population standard deviation and the value
// at rank ⌊q·(n−1)⌋ of the sorted values.
func reference(samples []refSample) map[string]float64 {
	type key struct {
		start int64
		host  string
	}
	groups := map[key][]float64{}
	for _, s := range samples {
		k := key{WindowStart(s.ts, 10_000), s.host}
		groups[k] = append(groups[k], s.value)
	}
	out := map[string]float64{}
	for k, vs := range groups {
		mean := 0.0
		for _, v := range vs {
			mean += v
		}
		mean /= float64(len(vs))
		ss := 0.0
		for _, v := range vs {
			ss += (v - mean) * (v - mean)
		}
		out[fmt.Sprintf("stddev %d %s", k.start, k.host)] = math.Sqrt(ss / float64(len(vs)))
		sorted := slices.Sorted(slices.Values(vs))
		for _, p := range []int{50, 90, 95, 99} {
			q := float64(p) / 100
			out[fmt.Sprintf("p%d %d %s", p, k.start, k.host)] = sorted[int(q*float64(len(vs)-1))]
		}
	}
	return out
}

// checkAgainstReference compares aggregates with the reference: stddev to
// 1e-9 relative (or 1e-6 absolute, for values around 1e9 whose spread is
// below 1), percentiles within PercentileAccuracy.
func checkAgainstReference(t *testing.T, aggs []Aggregate, want map[string]float64) {
	t.Helper()
	got := map[string]float64{}
	for _, a := range aggs {
		got[fmt.Sprintf("%s %d %s", a.Rule, a.WindowStart, dimsOf(a)["host"])] = a.Value
	}
	if len(got) != len(want) {
		t.Fatalf("%d aggregates, want %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: missing", k)
		case k[:6] == "stddev":
			if math.Abs(g-w) > 1e-9*math.Abs(w)+1e-6 {
				t.Errorf("%s = %v, want %v", k, g, w)
			}
		case math.Abs(g-w) > PercentileAccuracy*math.Abs(w)+1e-300:
			t.Errorf("%s = %v, want %v within %v", k, g, w, PercentileAccuracy)
		}
	}
}

func addAll(e *Engine, src Source, samples []refSample) {
	for _, s := range samples {
		e.Add(src, metric("lat", s.ts, s.value, "t", "host", s.host))
	}
}

func TestAccumulatingFunctionsAgainstReference(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		samples := randomSamples(rng, 50+rng.IntN(2000))
		clock := &fakeClock{now: time.UnixMilli(t0 + 120_000)}
		e := newTestEngine(t, clock, accRules(t)...)
		addAll(e, p0, samples)
		checkAgainstReference(t, e.FlushAll(nil), reference(samples))
	}
}

// TestAccumulatorsSurviveSnapshots: an engine restored from a snapshot
// taken midway, fed the rest, emits what one fed everything emits, bit for
// bit.
func TestAccumulatorsSurviveSnapshots(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	samples := randomSamples(rng, 3000)
	clock := &fakeClock{now: time.UnixMilli(t0 + 120_000)}
	whole := newTestEngine(t, clock, accRules(t)...)
	addAll(whole, p0, samples)

	first := newTestEngine(t, clock, accRules(t)...)
	addAll(first, p0, samples[:1700])
	snap := first.AppendSnapshot(nil)
	if snap[len(snapshotMagic)] != 2 {
		t.Fatalf("snapshot version %d, want 2 with accumulators", snap[len(snapshotMagic)])
	}
	restored := newTestEngine(t, clock, accRules(t)...)
	if err := restored.RestoreSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if again := restored.AppendSnapshot(nil); string(again) != string(snap) {
		t.Fatal("the restored engine's snapshot differs")
	}
	addAll(restored, p0, samples[1700:])
	if got, want := aggregateLines(restored.FlushAll(nil)), aggregateLines(whole.FlushAll(nil)); !slices.Equal(got, want) {
		t.Fatalf("after a restore:\n%v\nwant\n%v", got, want)
	}
}

// TestVersionOneSnapshotDropsAccumulatingRules: a snapshot without
// accumulators restores the windows of plain rules and drops those of a
// rule whose function now keeps one (they could only give partial values).
func TestVersionOneSnapshotDropsAccumulatingRules(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 5_000)}
	plain := []Rule{
		{Name: "sum", MetricName: "lat", OutputName: "lat.sum", Function: fn(t, "sum")},
		{Name: "spread", MetricName: "lat", OutputName: "lat.spread", Function: fn(t, "avg")},
	}
	old := newTestEngine(t, clock, plain...)
	old.Add(p0, metric("lat", t0+1_000, 3, "t"))
	snap := old.AppendSnapshot(nil)
	if snap[len(snapshotMagic)] != 1 {
		t.Fatalf("snapshot version %d, want 1 without accumulators", snap[len(snapshotMagic)])
	}
	now := slices.Clone(plain)
	now[1].Function = fn(t, "stddev")
	e := newTestEngine(t, clock, now...)
	if err := e.RestoreSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	e.Add(p0, metric("lat", t0+2_000, 5, "t"))
	got := aggregateLines(e.FlushAll(nil))
	want := []string{ // the stddev over the new sample alone; the sum over both
		"lat.spread [] t 1704067200000 0 n=1 1704067202000..1704067202000",
		"lat.sum [] t 1704067200000 8 n=2 1704067201000..1704067202000",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestAccumulatorsMergeAcrossStages: the samples split over three
// stage-one engines and merged by a Merger give the one engine's values
// (percentiles exactly: sketches of one mapping merge bin by bin).
func TestAccumulatorsMergeAcrossStages(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	samples := randomSamples(rng, 2500)
	clock := &fakeClock{now: time.UnixMilli(t0 + 120_000)}
	one := newTestEngine(t, clock, accRules(t)...)
	addAll(one, p0, samples)
	want := one.FlushAll(nil)

	got := throughStages(t, clock, accRules(t), func(p int32, src Source, e *Engine) {
		for i, s := range samples {
			if int32(i%3) == p {
				e.Add(src, metric("lat", s.ts, s.value, "t", "host", s.host))
			}
		}
	})
	byKey := func(aggs []Aggregate) map[string]float64 {
		m := map[string]float64{}
		for _, a := range aggs {
			m[fmt.Sprintf("%s %d %s", a.Rule, a.WindowStart, dimsOf(a)["host"])] = a.Value
		}
		return m
	}
	g, w := byKey(got), byKey(want)
	if len(g) != len(w) {
		t.Fatalf("%d aggregates from the stages, %d from one engine", len(g), len(w))
	}
	for k, v := range w {
		if k[:6] == "stddev" {
			if math.Abs(g[k]-v) > 1e-9*math.Abs(v)+1e-6 {
				t.Errorf("%s = %v from the stages, %v from one engine", k, g[k], v)
			}
		} else if g[k] != v {
			t.Errorf("%s = %v from the stages, %v from one engine", k, g[k], v)
		}
	}
}

// TestRollupWithAccumulatingFunction: a rollup's function may keep an
// accumulator: the p90 of the per-host sums.
func TestRollupWithAccumulatingFunction(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "lat", GroupBy: []string{"host"}, OutputName: "lat.p90",
		Function: fn(t, "sum"), Rollup: &Rollup{Function: fn(t, "p90")}})
	for i := range 11 {
		e.Add(p0, metric("lat", t0+1_000, float64(i*10), "t", "host", fmt.Sprint(i)))
	}
	out := e.FlushAll(nil)
	if len(out) != 1 || math.Abs(out[0].Value-90) > 0.9 {
		t.Fatalf("rollup p90 %+v, want 90 within 1 %%", out)
	}
}

// TestReplayedAccumulatorsAreRecognised: with closed windows kept for
// corrections, stage one's replay of the same states, accumulators
// included, is a replay, not a correction to emit again.
func TestReplayedAccumulatorsAreRecognised(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	rules := accRules(t)
	rules = append(rules, seriesRules(t)[0])
	stage1 := newTestEngine(t, clock, rules...)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range 300 {
		v := rng.Float64() * 100
		stage1.Add(p0, metric("lat", t0+int64(i)*30, v, "t", "host", fmt.Sprint(i%3)))
		stage1.Add(p0, metric("vm.net.in_bytes", t0+int64(i)*30, float64(i), "t", "project", "p", "vm", fmt.Sprint(i%4)))
	}
	states, _ := stage1.FlushStates(nil)
	two := newStageTwo(t, clock, time.Minute, rules...)
	contribute := func(pos int64) AddResult {
		var total AddResult
		for i := range states {
			r, err := two.Contribute(p0, pos, &states[i])
			if err != nil {
				t.Fatal(err)
			}
			total.Merge(r)
		}
		return total
	}
	contribute(1)
	two.Progress(p0, 1, t0+12_000, false)
	if out, _ := two.Flush(nil); len(out) != len(states) {
		t.Fatalf("%d aggregates for %d states", len(out), len(states))
	}
	if r := contribute(2); r.Corrected != 0 || r.Replayed != len(states) {
		t.Fatalf("a replay of %d states: %+v", len(states), r)
	}
	if out, _ := two.Flush(nil); len(out) != 0 {
		t.Fatalf("a replay was emitted again: %v", aggregateLines(out))
	}
}
