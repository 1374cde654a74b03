package windowagg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

func newSnapEngine(t testing.TB, clock *fakeClock, lateness time.Duration, rules ...Rule) *Engine {
	t.Helper()
	e, err := New(Config{
		Window: 10 * time.Second, Lag: 2 * time.Second, AllowedLateness: lateness,
		// Every snapshot test replays input: max_past must not change it.
		IdleTimeout: 30 * time.Second, MaxFuture: time.Hour, MaxPast: time.Hour, Clock: clock.Now,
	}, rules)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// snapshotRules are the rules of the two-stage tests, a rule with a window
// of its own and two rules of one name, which restore by occurrence.
func snapshotRules(t *testing.T) []Rule {
	return append(twoStageRules(t),
		Rule{Name: "min_30s", MetricName: "mem", OutputName: "mem_min", Function: fn(t, "min"), GroupBy: []string{"hostname"}, Window: 30 * time.Second},
		Rule{Name: "dup", MetricName: "cpu", OutputName: "dup_sum", Function: fn(t, "sum"), GroupBy: []string{"service"}},
		Rule{Name: "dup", MetricName: "cpu", OutputName: "dup_count", Function: fn(t, "count"), GroupBy: []string{"service"}},
	)
}

// sameAggregates compares every field, values bit for bit.
func sameAggregates(t *testing.T, what string, got, want []Aggregate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d aggregates, want %d:\n got %s\nwant %s", what, len(got), len(want),
			strings.Join(aggregateLines(got), "\n    "), strings.Join(aggregateLines(want), "\n    "))
	}
	for i := range got {
		g, w := got[i], want[i]
		if math.Float64bits(g.Value) != math.Float64bits(w.Value) {
			t.Fatalf("%s: aggregate %d value %v, want %v", what, i, g.Value, w.Value)
		}
		g.Value, w.Value = 0, 0
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: aggregate %d\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

func restoreInto(t *testing.T, e interface{ RestoreSnapshot([]byte) error }, snap []byte) {
	t.Helper()
	if err := e.RestoreSnapshot(snap); err != nil {
		t.Fatal(err)
	}
}

// held counts the windows and series an engine holds, over all rules.
type held struct{ windows, series int }

func holding(e *Engine) held {
	var h held
	for _, r := range e.Status().Rules {
		h.windows += len(r.Windows)
		h.series += r.OpenSeries
	}
	return h
}

// dropped is what a restore into to of the snapshot of from dropped.
func dropped(from, to *Engine) held {
	a, b := holding(from), holding(to)
	return held{a.windows - b.windows, a.series - b.series}
}

type sourcedMetric struct {
	src Source
	m   *monasca.Metric
}

// randomStream returns n metrics of several tenants, regions, hosts and
// services from two sources, up to spread ms out of order.
func randomStream(seed uint64, n int, spread int64) []sourcedMetric {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]sourcedMetric, n)
	for i := range out {
		ts := t0 + int64(i)*10 + rng.Int64N(spread)
		m := metric([]string{"cpu", "mem"}[rng.IntN(2)], ts, math.Round(rng.Float64()*1e6)/1e3-100, []string{"a", "b", "c"}[rng.IntN(3)],
			"hostname", fmt.Sprintf("h%d", rng.IntN(6)), "service", []string{"nova", "swift", "neutron"}[rng.IntN(3)])
		m.Region = []string{"useast", "uswest", "eu"}[rng.IntN(3)]
		out[i] = sourcedMetric{[]Source{p0, p1}[rng.IntN(2)], m}
	}
	return out
}

// TestSnapshotRoundTrip feeds engine a a stream, restores its snapshot
// taken midway into b, and feeds the rest to both: every Add result, every
// flush and the final state must be identical.
func TestSnapshotRoundTrip(t *testing.T) {
	for _, lateness := range []time.Duration{0, 30 * time.Second} {
		t.Run(fmt.Sprintf("lateness=%v", lateness), func(t *testing.T) {
			rules := snapshotRules(t)
			clock := &fakeClock{now: time.UnixMilli(t0 + 600_000)}
			a := newSnapEngine(t, clock, lateness, rules...)
			stream := randomStream(3, 8000, 15_000)
			const flushEvery, snapshotAt = 250, 4100
			for i, sm := range stream[:snapshotAt] {
				a.Add(sm.src, sm.m)
				if i%flushEvery == flushEvery-1 {
					a.Flush(nil)
				}
			}
			snap := a.AppendSnapshot(nil)
			b := newSnapEngine(t, clock, lateness, rules...)
			restoreInto(t, b, snap)
			if stats := dropped(a, b); stats != (held{}) {
				t.Fatalf("dropped %+v", stats)
			}
			if again := b.AppendSnapshot(nil); !bytes.Equal(again, snap) {
				t.Fatal("the snapshot of the restored engine differs")
			}
			if b.OpenSeries() != a.OpenSeries() || b.Frontier() != a.Frontier() || a.OpenSeries() == 0 {
				t.Fatalf("restored %d series up to %d, want %d up to %d", b.OpenSeries(), b.Frontier(), a.OpenSeries(), a.Frontier())
			}

			if lateness > 0 {
				// A late sample for the last window closed before the
				// snapshot, which is kept: both correct it alike.
				start := WindowStart(a.Frontier()-2_000-10_000, 10_000)
				m := metric("cpu", start+500, 42, "a", "hostname", "h1", "service", "nova")
				ra, rb := a.Add(p0, m), b.Add(p0, m)
				if ra != rb || ra.Corrected != 5 {
					t.Fatalf("late sample: %+v and %+v, want 5 corrections", ra, rb)
				}
				outA, _ := a.Flush(nil)
				outB, _ := b.Flush(nil)
				if len(outA) == 0 {
					t.Fatal("no correction emitted")
				}
				sameAggregates(t, "correction", outB, outA)
			}

			var late, corrected, emitted int
			for i := snapshotAt; i < len(stream); i++ {
				sm := stream[i]
				ra, rb := a.Add(sm.src, sm.m), b.Add(sm.src, sm.m)
				if ra != rb {
					t.Fatalf("metric %d: %+v, restored engine %+v", i, ra, rb)
				}
				late += ra.Late
				corrected += ra.Corrected
				if i%flushEvery == flushEvery-1 {
					outA, fa := a.Flush(nil)
					outB, fb := b.Flush(nil)
					if fa != fb {
						t.Fatalf("frontiers %d and %d", fa, fb)
					}
					sameAggregates(t, fmt.Sprintf("flush after metric %d", i), outB, outA)
					emitted += len(outA)
				}
			}
			if !bytes.Equal(a.AppendSnapshot(nil), b.AppendSnapshot(nil)) {
				t.Fatal("states differ at the end of the stream")
			}
			clock.advance(time.Minute) // every source idle
			outA, _ := a.Flush(nil)
			outB, _ := b.Flush(nil)
			sameAggregates(t, "idle flush", outB, outA)
			sameAggregates(t, "flush all", b.FlushAll(nil), a.FlushAll(nil))
			emitted += len(outA)
			if emitted == 0 || (lateness == 0) != (late > 0) || (lateness > 0) != (corrected > 0) {
				t.Fatalf("the stream exercised too little: %d emitted, %d late, %d corrected", emitted, late, corrected)
			}
		})
	}
}

// TestSnapshotBitExact restores states that plain samples never make: the
// empty state's infinities and extremes, NaN with a payload, negative zero.
func TestSnapshotBitExact(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	rule := Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum"), GroupBy: []string{"host"}}
	a := newSnapEngine(t, clock, 0, rule)
	// The state of no samples.
	empty := State{Min: math.Inf(1), Max: math.Inf(-1), FirstTime: math.MaxInt64, LastTime: math.MinInt64}
	states := []State{
		empty,
		{Count: 3, Records: 7, Sum: math.Float64frombits(0x7ff8_0000_dead_beef), Min: math.Copysign(0, -1), Max: math.Inf(1),
			FirstTime: math.MinInt64, FirstValue: math.Inf(-1), LastTime: math.MaxInt64, LastValue: math.SmallestNonzeroFloat64,
			FirstRecords: -2, LastRecords: math.MaxInt64},
		stateOf(1, 2, 3),
		stateOf(-0.5),
	}
	for i := range states {
		a.Add(p0, metric("m", t0, 1, "t", "host", fmt.Sprint(i)))
	}
	w := a.rules[0].windows[t0]
	for key, i := range w.index {
		_, values := decodeSeriesKey(key, nil)
		n := 0
		fmt.Sscan(values[0], &n)
		w.series(i).state = states[n]
		w.series(i).position = int64(n) - 2
	}
	b := newSnapEngine(t, clock, 0, rule)
	restoreInto(t, b, a.AppendSnapshot(nil))
	bw := b.rules[0].windows[t0]
	if bw == nil || len(bw.index) != len(states) {
		t.Fatalf("restored window %+v", bw)
	}
	for key, i := range w.index {
		want, got := w.series(i), bw.series(bw.index[key])
		if got.position != want.position || got.region != want.region || !sameState(&got.state, &want.state) {
			t.Fatalf("series %q: %+v, want %+v", key, got, want)
		}
	}
}

func sameState(a, b *State) bool {
	f := math.Float64bits
	return a.Count == b.Count && a.Records == b.Records && f(a.Sum) == f(b.Sum) && f(a.Min) == f(b.Min) && f(a.Max) == f(b.Max) &&
		a.FirstTime == b.FirstTime && f(a.FirstValue) == f(b.FirstValue) && a.LastTime == b.LastTime && f(a.LastValue) == f(b.LastValue) &&
		a.FirstRecords == b.FirstRecords && a.LastRecords == b.LastRecords
}

type contribution struct {
	src      Source
	offset   int64
	state    *SeriesState // nil for progress
	through  int64
	idle     bool
	progress bool
}

// stageOneEvents runs a random stream through one stage-one engine per
// partition and returns what they hand to stage two, in order.
func stageOneEvents(t *testing.T, clock *fakeClock, rules []Rule) []contribution {
	const partitions = 4
	var stageOne [partitions]*Engine
	for i := range stageOne {
		stageOne[i] = newTestEngine(t, clock, rules...)
	}
	var events []contribution
	hand := func(offset int64) {
		for p, e := range stageOne {
			src := Source{Stream: "partials", Partition: int32(p)}
			states, frontier := e.FlushStates(nil)
			for i := range states {
				events = append(events, contribution{src: src, offset: offset, state: &states[i]})
			}
			events = append(events, contribution{src: src, offset: offset, through: frontier, idle: e.Idle(), progress: true})
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i, sm := range randomStream(4, 6000, 1500) {
		p := rng.IntN(partitions)
		stageOne[p].Add(Source{Stream: "metrics", Partition: int32(p)}, sm.m)
		if i%500 == 499 {
			hand(int64(i))
		}
	}
	clock.advance(time.Minute)
	hand(10_000)
	return events
}

// TestSnapshotRoundTripContributions restores a Merger midway:
// source progress, idleness and positions and series positions survive, so
// stale input after the restore is still ignored.
func TestSnapshotRoundTripContributions(t *testing.T) {
	rules := twoStageRules(t)
	clock := &fakeClock{now: time.UnixMilli(t0 + 600_000)}
	events := stageOneEvents(t, clock, rules)
	a := newStageTwo(t, clock, 0, rules...)
	ref := newStageTwo(t, clock, 0, rules...) // never restored, never sees stale input
	// A source that reported itself idle early on, with little progress:
	// were its idleness lost, it would hold the watermark.
	quiet := Source{Stream: "partials", Partition: 9}
	for _, e := range []*Merger{a, ref} {
		e.Progress(quiet, 3, t0, true)
	}
	apply := func(e *Merger, ev contribution) AddResult {
		t.Helper()
		if ev.progress {
			e.Progress(ev.src, ev.offset, ev.through, ev.idle)
			return AddResult{}
		}
		r, err := e.Contribute(ev.src, ev.offset, ev.state)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	snapshotAt := len(events) / 2
	for ; !events[snapshotAt].progress || events[snapshotAt-1].progress; snapshotAt++ {
		// Stop between a source's states and its progress, so that the
		// windows of those states are still open.
	}
	for _, ev := range events[:snapshotAt] {
		apply(a, ev)
		apply(ref, ev)
	}
	a.Flush(nil)
	ref.Flush(nil)
	b := newStageTwo(t, clock, 0, rules...)
	snap := a.AppendSnapshot(nil)
	restoreInto(t, b, snap)
	if !bytes.Equal(b.AppendSnapshot(nil), snap) {
		t.Fatal("the snapshot of the restored engine differs")
	}

	// Stale input, from a former owner of a partition: a contribution to an
	// open window at an older offset, and older progress.
	var stale *contribution
	for i := snapshotAt - 1; i >= 0 && stale == nil; i-- {
		if ev := events[i]; !ev.progress && ev.state.WindowEnd+2_000 > a.Frontier() {
			stale = &contribution{src: ev.src, offset: ev.offset - 1, state: &SeriesState{
				Rule: ev.state.Rule, WindowStart: ev.state.WindowStart, WindowEnd: ev.state.WindowEnd,
				TenantID: ev.state.TenantID, Region: ev.state.Region, Values: ev.state.Values, State: stateOf(1e9),
			}}
		}
	}
	if stale == nil {
		t.Fatal("no open window at the snapshot")
	}
	for _, e := range []*Merger{a, b} {
		if r := apply(e, *stale); r.Late != 1 || r.Replayed != 1 {
			t.Fatalf("stale contribution: %+v", r)
		}
		e.Progress(stale.src, 0, math.MaxInt64, true)
	}
	if !bytes.Equal(a.AppendSnapshot(nil), b.AppendSnapshot(nil)) {
		t.Fatal("stale input changed the engines differently")
	}

	var emitted int
	for i, ev := range events[snapshotAt:] {
		apply(ref, ev)
		if ra, rb := apply(a, ev), apply(b, ev); ra != rb {
			t.Fatalf("event %d: %+v, restored engine %+v", i, ra, rb)
		}
		if i%50 == 0 || i == len(events)-snapshotAt-1 {
			outA, _ := a.Flush(nil)
			outB, _ := b.Flush(nil)
			outRef, _ := ref.Flush(nil)
			sameAggregates(t, "restored engine", outB, outA)
			sameAggregates(t, "reference engine", outB, outRef)
			emitted += len(outA)
		}
	}
	if emitted == 0 || a.OpenSeries() != 0 || b.OpenSeries() != 0 {
		t.Fatalf("%d emitted; %d and %d series left open", emitted, a.OpenSeries(), b.OpenSeries())
	}
}

// TestRestoreSnapshotRulesChange: windows of a removed rule, of one whose
// window changed and of one whose grouping changed are dropped; a new rule
// starts empty; the frontier and the Restore frontier survive.
func TestRestoreSnapshotRulesChange(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 600_000)}
	rule := func(name string, window time.Duration, groupBy ...string) Rule {
		return Rule{Name: name, MetricName: "m", OutputName: name, Function: fn(t, "sum"), GroupBy: groupBy, Window: window}
	}
	a := newSnapEngine(t, clock, 0, rule("keep", 0, "host"), rule("gone", 0, "host"), rule("resized", 0, "host"), rule("regrouped", 0, "host"))
	a.Restore(t0 + 12_000) // [t0, t0+10s) was emitted by an earlier run
	for _, ts := range []int64{t0 + 15_000, t0 + 25_000, t0 + 31_000} {
		for _, host := range []string{"h1", "h2"} {
			a.Add(p0, metric("m", ts, float64(ts-t0)/1000, "t", "host", host))
		}
	}
	if out, f := a.Flush(nil); len(out) != 8 || f != t0+31_000 {
		t.Fatalf("flush before the snapshot: frontier %d, %+v", f, out)
	}
	a.Add(p1, metric("m", t0+35_000, 1, "t", "host", "h3"))

	b := newSnapEngine(t, clock, 0, rule("new", 0, "host"), rule("regrouped", 0, "host", "dc"), rule("resized", 20*time.Second, "host"), rule("keep", 0, "host"))
	restoreInto(t, b, a.AppendSnapshot(nil))
	stats := dropped(a, b)
	// Three dropped rules with two open windows each: [20s, 30s) with h1 and
	// h2, [30s, 40s) with h1, h2 and h3.
	if stats != (held{windows: 6, series: 15}) {
		t.Fatalf("dropped %+v", stats)
	}
	if b.Frontier() != a.Frontier() || b.OpenSeries() != 5 {
		t.Fatalf("frontier %d, %d open series", b.Frontier(), b.OpenSeries())
	}
	if r := b.Add(p0, metric("m", t0+5_000, 1, "t", "host", "h1", "dc", "x")); r.Late != 4 || r.Replayed != 3 { // the resized rule's window closes later
		t.Fatalf("sample of a window emitted before the Restore: %+v", r)
	}
	if r := b.Add(p0, metric("m", t0+15_000, 1, "t", "host", "h1", "dc", "x")); r.Late != 4 || r.Replayed != 0 {
		t.Fatalf("sample of a window emitted before the snapshot: %+v", r)
	}
	for _, e := range []*Engine{a, b} {
		e.Add(p0, metric("m", t0+36_000, 100, "t", "host", "h1", "dc", "x"))
	}
	var keepA []Aggregate
	for _, agg := range a.FlushAll(nil) {
		if agg.Rule == "keep" {
			keepA = append(keepA, agg)
		}
	}
	var keepB []Aggregate
	others := map[string][]float64{}
	for _, agg := range b.FlushAll(nil) {
		if agg.Rule == "keep" {
			keepB = append(keepB, agg)
		} else {
			others[agg.Rule] = append(others[agg.Rule], agg.Value)
		}
	}
	sameAggregates(t, "kept rule", keepB, keepA)
	if len(keepB) != 5 {
		t.Fatalf("kept rule emitted %+v", keepB)
	}
	want := map[string][]float64{"new": {100}, "regrouped": {100}, "resized": {100}}
	if !reflect.DeepEqual(others, want) {
		t.Fatalf("rules that started empty emitted %v, want %v", others, want)
	}
}

// damageEngine builds an engine with open and kept closed windows, dirty
// and clean, and two sources.
func damageEngine(t testing.TB, clock *fakeClock) (*Engine, func() *Engine) {
	avg, _ := LookupFunction("avg")
	rules := []Rule{
		{Name: "sum", MetricName: "m", OutputName: "o", Function: sumFunc{}, GroupBy: []string{"host"}},
		{Name: "avg", MetricName: "m", OutputName: "p", Function: avg, AcrossTenants: true},
	}
	mk := func() *Engine { return newSnapEngine(t, clock, 30*time.Second, rules...) }
	a := mk()
	a.Add(p0, metric("m", t0+1_000, 1, "t1", "host", "h1"))
	a.Add(p1, metric("m", t0+2_000, 2.5, "t2", "host", "h2"))
	a.Add(p0, metric("m", t0+13_000, 3, "t1", "host", "h1"))
	a.Add(p1, metric("m", t0+14_000, 4, "t1", "host", "h3"))
	a.Flush(nil)
	a.Add(p0, metric("m", t0+3_000, 5, "t2", "host", "h1")) // correction pending
	return a, mk
}

// TestRestoreSnapshotRejectsDamage: every truncation and every flipped
// byte of a snapshot fails, and leaves the engine as it was.
func TestRestoreSnapshotRejectsDamage(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	a, mk := damageEngine(t, clock)
	snap := a.AppendSnapshot(nil)
	e := mk()
	pristine := e.AppendSnapshot(nil)
	untouched := func(what string) {
		t.Helper()
		if !bytes.Equal(e.AppendSnapshot(nil), pristine) || e.OpenSeries() != 0 {
			t.Fatalf("%s changed the engine", what)
		}
	}
	for n := range len(snap) {
		if err := e.RestoreSnapshot(snap[:n]); err == nil {
			t.Fatalf("truncation to %d of %d bytes accepted", n, len(snap))
		}
		// The same with a valid checksum: the decoder itself must notice.
		if n != len(snap)-snapshotTrailer {
			if err := e.RestoreSnapshot(reseal(snap[:n])); err == nil {
				t.Fatalf("resealed truncation to %d of %d bytes accepted", n, len(snap))
			}
		}
	}
	untouched("a truncated snapshot")
	for i := range snap {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(snap)
			bad[i] ^= flip
			if err := e.RestoreSnapshot(bad); err == nil {
				t.Fatalf("byte %d flipped with %#x accepted", i, flip)
			}
		}
	}
	untouched("a corrupted snapshot")

	bad := bytes.Clone(snap)
	bad[len(snapshotMagic)] = snapshotVersion + 1
	if err := e.RestoreSnapshot(bad); err == nil || !strings.Contains(err.Error(), "version 3 is not supported") {
		t.Fatalf("unknown version: %v", err)
	}
	if err := newStageTwo(t, clock, 0, Rule{Name: "sum", MetricName: "m", OutputName: "o", Function: fn(t, "sum")}).RestoreSnapshot(snap); err == nil {
		t.Fatal("a stage-two engine took the snapshot of a plain one")
	}
	untouched("a rejected snapshot")

	// Damage behind a valid checksum either fails cleanly or restores
	// something the engine can run with.
	for i := snapshotHeader; i < len(snap)-snapshotTrailer; i++ {
		bad := bytes.Clone(snap[:len(snap)-snapshotTrailer])
		bad[i] ^= 0xff
		if err := e.RestoreSnapshot(reseal(bad)); err != nil {
			untouched("a resealed corrupted snapshot")
			continue
		}
		exercise(e)
		e = mk()
	}

	if err := e.RestoreSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.AppendSnapshot(nil), snap) {
		t.Fatal("restored after failures, the engine differs")
	}
	clock.advance(time.Minute)
	outA, _ := a.Flush(nil)
	outE, _ := e.Flush(nil)
	if len(outA) == 0 {
		t.Fatal("nothing to compare")
	}
	sameAggregates(t, "after failed restores", outE, outA)
}

// reseal returns a snapshot payload with a valid checksum.
func reseal(payload []byte) []byte {
	out := bytes.Clone(payload)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// exercise runs a restored engine through what it does: nothing may panic,
// and its snapshot must restore again.
func exercise(e *Engine) {
	e.Add(p0, metric("m", t0+5_000, 1, "t1", "host", "h1"))
	e.Flush(nil)
	snap := e.AppendSnapshot(nil)
	again, _ := New(e.cfg, ruleList(&e.store))
	if err := again.RestoreSnapshot(snap); err != nil {
		panic(fmt.Sprintf("a restored engine's snapshot does not restore: %v", err))
	}
	e.FlushAll(nil)
	e.FlushStates(nil)
}

// exerciseMerger is exercise for a Merger.
func exerciseMerger(m *Merger) {
	m.Contribute(p0, 1, &SeriesState{Rule: m.rules[0].Name, WindowStart: t0, WindowEnd: t0 + m.rules[0].size, Values: make([]string, len(m.rules[0].GroupBy)), State: stateOf(1)})
	m.Progress(p0, 1, t0+100_000, false)
	m.Flush(nil)
	snap := m.AppendSnapshot(nil)
	again, _ := NewMerger(m.cfg, ruleList(&m.store))
	if err := again.RestoreSnapshot(snap); err != nil {
		panic(fmt.Sprintf("a restored merger's snapshot does not restore: %v", err))
	}
	m.FlushAll(nil)
}

func ruleList(e *store) []Rule {
	rules := make([]Rule, len(e.rules))
	for i, r := range e.rules {
		rules[i] = r.Rule
	}
	return rules
}

func FuzzRestoreSnapshot(f *testing.F) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	a, _ := damageEngine(f, clock)
	f.Add(a.AppendSnapshot(nil))
	two, err := NewMerger(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour,
		Clock: clock.Now}, []Rule{{Name: "s", MetricName: "m", OutputName: "o", Function: sumFunc{}, GroupBy: []string{"host"}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, src := range []Source{p0, p1} {
		two.Contribute(src, 4, &SeriesState{Rule: "s", WindowStart: t0, WindowEnd: t0 + 10_000, TenantID: "x", Values: []string{"h"}, State: stateOf(1, 2)})
		two.Progress(src, 5, t0+1_000, src == p1)
	}
	f.Add(two.AppendSnapshot(nil))
	plainCfg, plainRules := a.cfg, ruleList(&a.store)
	twoCfg, twoRules := two.cfg, ruleList(&two.store)

	f.Fuzz(func(t *testing.T, data []byte) {
		candidates := [][]byte{data}
		if len(data) >= snapshotHeader+snapshotTrailer {
			candidates = append(candidates, reseal(data[:len(data)-snapshotTrailer]))
		}
		for _, snap := range candidates {
			e, err := New(plainCfg, plainRules)
			if err != nil {
				t.Fatal(err)
			}
			if e.RestoreSnapshot(snap) == nil {
				exercise(e)
			}
			m, err := NewMerger(twoCfg, twoRules)
			if err != nil {
				t.Fatal(err)
			}
			if m.RestoreSnapshot(snap) == nil {
				exerciseMerger(m)
			}
		}
	})
}

// snapshotBenchEngine holds series series of one rule in one window, as
// BenchmarkEngineMemoryPerSeries does.
func snapshotBenchEngine(b *testing.B, series int) (*Engine, func() *Engine) {
	start := int64(1704067200000)
	avg, _ := LookupFunction("avg")
	rules := []Rule{{Name: "per host", MetricName: "cpu.idle_perc", OutputName: "o", Function: avg, GroupBy: []string{"hostname"}}}
	clock := time.UnixMilli(start)
	mk := func() *Engine {
		e, err := New(Config{Window: time.Minute, IdleTimeout: time.Minute, MaxFuture: time.Hour, Clock: func() time.Time { return clock }}, rules)
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	e := mk()
	m := monasca.Metric{Name: "cpu.idle_perc", Region: "useast", Dimensions: []monasca.Dimension{{Key: "hostname"}}}
	for i := range series {
		m.Timestamp, m.Value = start+int64(i%60_000), float64(i%100)
		m.TenantID = fmt.Sprintf("%032x", i%10)
		m.Dimensions[0].Value = fmt.Sprintf("compute-%06d", i)
		e.Add(Source{Stream: "metrics", Partition: int32(i % 4)}, &m)
		if i%3 == 0 {
			m.Value++
			e.Add(Source{Stream: "metrics", Partition: int32(i % 4)}, &m)
		}
	}
	if e.OpenSeries() != series {
		b.Fatalf("%d series", e.OpenSeries())
	}
	return e, mk
}

func BenchmarkSnapshot(b *testing.B) {
	e, _ := snapshotBenchEngine(b, 100_000)
	var snap []byte
	b.ReportAllocs()
	for b.Loop() {
		snap = e.AppendSnapshot(snap[:0])
	}
	b.ReportMetric(float64(len(snap)), "bytes")
}

func BenchmarkRestoreSnapshot(b *testing.B) {
	e, mk := snapshotBenchEngine(b, 100_000)
	snap := e.AppendSnapshot(nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := mk().RestoreSnapshot(snap); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(snap)), "bytes")
}

// TestRestoreSnapshotHoldsDiscovery: restored sources count as seen, and
// discovered, at the restore, so the discovery hold applies again.
func TestRestoreSnapshotHoldsDiscovery(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 3_600_000)}
	mk := func() *Engine {
		e, err := New(Config{Window: 10 * time.Second, Lag: 2 * time.Second, IdleTimeout: time.Minute,
			Discovery: 5 * time.Second, MaxFuture: time.Hour, Clock: clock.Now},
			[]Rule{{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a := mk()
	for i := range int64(60) {
		a.Add(p0, metric("m", t0+i*1_000, 1, "t"))
	}
	clock.advance(50 * time.Second) // past a's hold, within the idle timeout
	b := mk()
	restoreInto(t, b, a.AppendSnapshot(nil))
	if out, _ := b.Flush(nil); len(out) != 0 {
		t.Fatalf("closed windows within the discovery hold after the restore: %+v", out)
	}
	clock.advance(5 * time.Second)
	outA, _ := a.Flush(nil)
	outB, _ := b.Flush(nil)
	if len(outA) != 5 {
		t.Fatalf("want 5 windows closed on the watermark, got %+v", outA)
	}
	sameAggregates(t, "after the hold", outB, outA)
	// 60 s after a's last sample a's source is idle, b's is not: b has seen
	// it at the restore.
	clock.advance(5 * time.Second)
	if out, _ := b.Flush(nil); len(out) != 0 {
		t.Fatalf("the restored source went idle early: %+v", out)
	}
	if out, _ := a.Flush(nil); len(out) != 1 {
		t.Fatalf("idle flush: %+v", out)
	}
}
