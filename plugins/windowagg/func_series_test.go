package windowagg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// seriesRules are one rule per function over input series, grouped by
// project: every project has several VMs, each an input series.
func seriesRules(t *testing.T) []Rule {
	t.Helper()
	var rules []Rule
	for _, f := range []string{"increase", "counter_rate"} {
		rules = append(rules, Rule{Name: f, MetricName: "vm.net.in_bytes", GroupBy: []string{"project"}, OutputName: "net." + f, Function: fn(t, f)})
	}
	rules = append(rules,
		Rule{Name: "time_weighted_avg", MetricName: "vm.state", GroupBy: []string{"project"}, OutputName: "state.twa", Function: fn(t, "time_weighted_avg")},
		Rule{Name: "time_in_state", MetricName: "vm.state", GroupBy: []string{"project"}, OutputName: "state.running_s", Function: TimeInState(1)})
	return rules
}

// vmSample is one sample of the randomized input.
type vmSample struct {
	name, project, vm string
	ts                int64
	value             float64
}

// randomVMSamples draws samples of 12 VMs in 3 projects over 6 windows of
// 10 s: a byte counter per VM that rises and sometimes resets (a restarted
// agent), and a state gauge (0, 1 or 2), at random times; some VMs skip
// whole windows; the order is shuffled within a second (inside the lag).
func randomVMSamples(rng *rand.Rand) []vmSample {
	var out []vmSample
	for v := range 12 {
		vm, project := fmt.Sprintf("vm%d", v), fmt.Sprintf("p%d", v%3)
		counter := rng.Float64() * 1e6
		skip := rng.IntN(6)
		for ts := t0 + rng.Int64N(3_000); ts < t0+60_000; ts += 500 + rng.Int64N(4_000) {
			if WindowStart(ts, 10_000) == t0+int64(skip)*10_000 && v%4 == 0 {
				continue
			}
			if rng.IntN(15) == 0 {
				counter = rng.Float64() * 100 // reset
			} else {
				counter += rng.Float64() * 1e4
			}
			out = append(out,
				vmSample{"vm.net.in_bytes", project, vm, ts, counter},
				vmSample{"vm.state", project, vm, ts + rng.Int64N(300), float64(rng.IntN(3))})
		}
	}
	slices.SortFunc(out, func(a, b vmSample) int { return int(a.ts - b.ts) })
	shuffleWithinLag(rng, out, 8, func(s vmSample) int64 { return s.ts })
	return out
}

// seriesReference computes, without the engine, every rule's value per
// window and project from the definitions: per VM its samples in time
// order, and the last one of the window before as the carried sample.
func seriesReference(samples []vmSample) map[string]float64 {
	type key struct {
		name, vm string
	}
	bySeries := map[key][]vmSample{}
	projects := map[string]string{}
	for _, s := range samples {
		k := key{s.name, s.vm}
		bySeries[k] = append(bySeries[k], s)
		projects[s.vm] = s.project
	}
	for _, ss := range bySeries {
		slices.SortStableFunc(ss, func(a, b vmSample) int { return int(a.ts - b.ts) })
	}
	out := map[string]float64{}
	for w := int64(0); w < 7; w++ {
		start, end := t0+w*10_000, t0+(w+1)*10_000
		type acc struct {
			inc, weighted, running float64
			ms                     int64
			any                    bool
		}
		per := map[string]*acc{}
		for k, ss := range bySeries {
			var carried *vmSample
			var in []vmSample
			for i := range ss {
				switch {
				case ss[i].ts >= start-10_000 && ss[i].ts < start:
					carried = &ss[i]
				case ss[i].ts >= start && ss[i].ts < end:
					in = append(in, ss[i])
				}
			}
			if len(in) == 0 {
				continue
			}
			a := per[k.name+" "+projects[k.vm]]
			if a == nil {
				a = &acc{}
				per[k.name+" "+projects[k.vm]] = a
			}
			a.any = true
			prev := carried
			for i := range in {
				if prev != nil {
					if in[i].value >= prev.value {
						a.inc += in[i].value - prev.value
					} else {
						a.inc += in[i].value
					}
				}
				prev = &in[i]
			}
			from, held := start, carried
			for i := range in {
				if held != nil {
					d := in[i].ts - from
					a.weighted += held.value * float64(d)
					a.ms += d
					if held.value == 1 {
						a.running += float64(d)
					}
				}
				from, held = in[i].ts, &in[i]
			}
			d := end - from
			a.weighted += held.value * float64(d)
			a.ms += d
			if held.value == 1 {
				a.running += float64(d)
			}
		}
		for k, a := range per {
			var name, project string
			fmt.Sscan(k, &name, &project)
			if name == "vm.net.in_bytes" {
				out[fmt.Sprintf("increase %d %s", start, project)] = a.inc
				out[fmt.Sprintf("counter_rate %d %s", start, project)] = a.inc / 10
			} else {
				out[fmt.Sprintf("time_weighted_avg %d %s", start, project)] = a.weighted / float64(a.ms)
				out[fmt.Sprintf("time_in_state %d %s", start, project)] = a.running / 1000
			}
		}
	}
	return out
}

func addVMs(e *Engine, src func(vmSample) Source, samples []vmSample) {
	for _, s := range samples {
		e.Add(src(s), metric(s.name, s.ts, s.value, "t", "project", s.project, "vm", s.vm, "host", "h-"+s.vm))
	}
}

func one(vmSample) Source { return p0 }

// checkSeries compares aggregates with the reference, to 1e-9 relative.
func checkSeries(t *testing.T, aggs []Aggregate, want map[string]float64) {
	t.Helper()
	got := map[string]float64{}
	for _, a := range aggs {
		got[fmt.Sprintf("%s %d %s", a.Rule, a.WindowStart, dimsOf(a)["project"])] = a.Value
	}
	if len(got) != len(want) {
		t.Errorf("%d aggregates, want %d", len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9*math.Abs(w)+1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
}

// flushInOrder closes the windows one by one, as a live stream would, by
// moving the watermark (a sample of another metric on every source).
func flushInOrder(e *Engine, sources []Source) []Aggregate {
	var out []Aggregate
	for w := int64(1); w <= 7; w++ {
		for _, src := range sources {
			e.Add(src, metric("tick", t0+w*10_000+2_000, 0, "t"))
		}
		out, _ = e.Flush(out)
	}
	return out
}

func TestSeriesFunctionsAgainstReference(t *testing.T) {
	for seed := range uint64(20) {
		samples := randomVMSamples(rand.New(rand.NewPCG(seed, 11)))
		clock := &fakeClock{now: time.UnixMilli(t0 + 30_000)}
		e := newTestEngine(t, clock, seriesRules(t)...)
		addVMs(e, one, samples)
		checkSeries(t, flushInOrder(e, []Source{p0}), seriesReference(samples))
	}
}

// TestSeriesFunctionsSurviveSnapshots restores an engine midway, between
// windows and with a window open, and gets the uninterrupted values.
func TestSeriesFunctionsSurviveSnapshots(t *testing.T) {
	samples := randomVMSamples(rand.New(rand.NewPCG(5, 5)))
	clock := &fakeClock{now: time.UnixMilli(t0 + 30_000)}
	e := newTestEngine(t, clock, seriesRules(t)...)
	var out []Aggregate
	half := len(samples) / 2
	addVMs(e, one, samples[:half])
	out, _ = e.Flush(out) // closes the windows before the first half's end
	restored := newTestEngine(t, clock, seriesRules(t)...)
	if err := restored.RestoreSnapshot(e.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	addVMs(restored, one, samples[half:])
	out = append(out, flushInOrder(restored, []Source{p0})...)
	checkSeries(t, out, seriesReference(samples))
}

// TestSeriesFunctionsAcrossStages: the samples spread over three stage-one
// engines at random (one VM's samples in several partitions), merged by a
// Merger, give the reference values.
func TestSeriesFunctionsAcrossStages(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	samples := randomVMSamples(rng)
	clock := &fakeClock{now: time.UnixMilli(t0 + 120_000)}
	part := make([]int32, len(samples))
	for i := range part {
		part[i] = rng.Int32N(3)
	}
	got := throughStages(t, clock, seriesRules(t), func(p int32, src Source, e *Engine) {
		for i, s := range samples {
			if part[i] == p {
				e.Add(src, metric(s.name, s.ts, s.value, "t", "project", s.project, "vm", s.vm, "host", "h-"+s.vm))
			}
		}
	})
	checkSeries(t, got, seriesReference(samples))
}

// TestTimeInStateWorkedExample: a VM running (1) from 2 s, stopped (0) at
// 6 s, running again at 8 s, in a window of 10 s: 6 s running; the next
// window starts running (carried) until a stop at 13 s: 3 s.
func TestTimeInStateWorkedExample(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 30_000)}
	e := newTestEngine(t, clock, Rule{Name: "up", MetricName: "vm.state", OutputName: "vm.running_s", GroupBy: []string{"vm"}, Function: TimeInState(1)})
	for _, s := range []struct {
		ms int64
		v  float64
	}{{2_000, 1}, {6_000, 0}, {8_000, 1}, {13_000, 0}, {19_000, 0}} {
		e.Add(p0, metric("vm.state", t0+s.ms, s.v, "t", "vm", "a"))
	}
	out := flushInOrder(e, []Source{p0})
	if len(out) != 2 || out[0].Value != 6 || out[1].Value != 3 {
		t.Fatalf("%v, want 6 then 3 seconds", aggregateLines(out))
	}
}

func TestSeriesFunctionsRefusedInRollups(t *testing.T) {
	r := Rule{Name: "r", MetricName: "m", OutputName: "o", GroupBy: []string{"vm"}, Function: fn(t, "sum"), Rollup: &Rollup{Function: fn(t, "increase")}}
	if err := r.Validate(); err == nil {
		t.Fatal("a rollup by increase validated")
	}
}
