package windowagg

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// goFormula is a Formula in plain Go, so that these tests exercise the
// engine and not a formula language.
type goFormula func(v []float64) (float64, error)

func (f goFormula) Eval(v []float64) (float64, error) { return f(v) }

// utilisation is used / total · 100 with a checked division.
var utilisation = goFormula(func(v []float64) (float64, error) {
	if v[1] == 0 {
		return 0, ErrDivisionByZero
	}
	return v[0] / v[1] * 100, nil
})

// memRule derives memory utilisation per host from the average of
// mem.used_mb and the maximum of mem.total_mb.
func memRule(t testing.TB) Rule {
	count, _ := LookupFunction("count")
	avg, _ := LookupFunction("avg")
	max, _ := LookupFunction("max")
	return Rule{
		Name: "mem_util", OutputName: "mem.utilization_perc", Function: count,
		GroupBy: []string{"hostname", InputKey},
		Inputs: []Input{
			{Name: "used", MetricName: "mem.used_mb"},
			{Name: "total", MetricName: "mem.total_mb", Reject: []monasca.Dimension{{Key: "bogus"}}},
		},
		Combine: &Derivation{Key: 1, Formula: utilisation, Variables: []Variable{
			{Name: "used", Match: "used", Function: avg},
			{Name: "total", Match: "total", Function: max},
		}},
	}
}

func skippedOf(r *Rule) map[string]int64 {
	out := map[string]int64{}
	for _, s := range r.Combine.(*Derivation).TakeSkipped() {
		out[s.Reason] = s.Count
	}
	return out
}

// TestDerivedValues: one value per group and window from several inputs;
// a group missing an input, or dividing by zero, or whose formula gives no
// finite number, gives none and is counted by reason.
func TestDerivedValues(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	nan := memRule(t)
	nan.Name, nan.OutputName = "nan", "nan"
	nan.Combine = &Derivation{Key: 1, Variables: nan.Combine.(*Derivation).Variables,
		Formula: goFormula(func(v []float64) (float64, error) { return math.Inf(1), nil })}
	failing := memRule(t)
	failing.Name, failing.OutputName = "failing", "failing"
	failing.Combine = &Derivation{Key: 1, Variables: failing.Combine.(*Derivation).Variables,
		Formula: goFormula(func(v []float64) (float64, error) { return 0, errors.New("boom") })}
	e := newTestEngine(t, clock, memRule(t), nan, failing)
	add := func(name, host string, ts int64, v float64, dims ...string) {
		e.Add(p0, metric(name, ts, v, "t", append([]string{"hostname", host}, dims...)...))
	}
	add("mem.used_mb", "h1", t0+1_000, 20, "service", "x")
	add("mem.used_mb", "h1", t0+2_000, 40)
	add("mem.total_mb", "h1", t0+3_000, 100)
	add("mem.total_mb", "h1", t0+4_000, 200, "bogus", "1") // rejected by the input
	add("mem.used_mb", "h2", t0+1_000, 20)                 // no total
	add("mem.used_mb", "h3", t0+1_000, 20)
	add("mem.total_mb", "h3", t0+1_000, 0) // division by zero
	add("mem.total_mb", "h4", t0+11_000, 50)
	add("mem.used_mb", "h4", t0+12_000, 5)
	got := aggregateLines(e.FlushAll(nil))
	want := []string{
		"mem.utilization_perc [{hostname h1}] t 1704067200000 30 n=3 1704067201000..1704067203000",
		"mem.utilization_perc [{hostname h4}] t 1704067210000 10 n=2 1704067211000..1704067212000",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rules := e.rules
	for i, want := range []map[string]int64{
		{SkipMissingInput: 1, SkipDivisionByZero: 1},
		{SkipMissingInput: 1, SkipNotANumber: 3},
		{SkipMissingInput: 1, SkipFormulaError: 3},
	} {
		if got := skippedOf(&rules[i].Rule); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("rule %s skipped %v, want %v", rules[i].Name, got, want)
		}
		if got := skippedOf(&rules[i].Rule); len(got) != 0 {
			t.Errorf("rule %s: TakeSkipped did not reset: %v", rules[i].Name, got)
		}
	}
}

// TestDerivedInputsShareAMetric: a metric that two inputs select feeds
// both, and a rollup re-aggregates the derived values.
func TestDerivedInputsShareAMetric(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 60_000)}
	sum, count, avg := fn(t, "sum"), fn(t, "count"), fn(t, "avg")
	perSample := Rule{
		Name: "net", OutputName: "net.bytes_per_sample", Function: count,
		GroupBy: []string{"cluster", "hostname", InputKey},
		Inputs:  []Input{{Name: "in", MetricName: "net.in"}, {Name: "out", MetricName: "net.out"}, {Name: "n", MetricName: "net.in"}},
		Combine: &Derivation{Key: 2, Formula: goFormula(func(v []float64) (float64, error) { return (v[0] + v[1]) / v[2], nil }),
			Variables: []Variable{{"in", "in", sum}, {"out", "out", sum}, {"n", "n", count}}},
		Rollup: &Rollup{Function: avg, GroupBy: []string{"cluster"}},
	}
	e := newTestEngine(t, clock, perSample)
	for _, m := range []*monasca.Metric{
		metric("net.in", t0+1_000, 10, "t", "cluster", "c", "hostname", "h1"),
		metric("net.in", t0+2_000, 20, "t", "cluster", "c", "hostname", "h1"),
		metric("net.out", t0+3_000, 30, "t", "cluster", "c", "hostname", "h1"),
		metric("net.in", t0+1_000, 4, "t", "cluster", "c", "hostname", "h2"),
		metric("net.out", t0+1_000, 6, "t", "cluster", "c", "hostname", "h2"),
	} {
		if res := e.Add(p0, m); res.Matched != map[string]int{"net.in": 2, "net.out": 1}[m.Name] {
			t.Fatalf("%s matched %d windows", m.Name, res.Matched)
		}
	}
	// h1: (30 + 30) / 2 = 30; h2: (4 + 6) / 1 = 10; the rollup's average 20.
	want := []string{"net.bytes_per_sample [{cluster c}] t 1704067200000 20 n=8 1704067201000..1704067203000"}
	if got := aggregateLines(e.FlushAll(nil)); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDerivedRuleValidation(t *testing.T) {
	for _, c := range []struct {
		edit func(r *Rule)
		want string
	}{
		{func(r *Rule) { r.MetricName = "m" }, `rule "mem_util": a rule with inputs selects its metrics by its inputs only`},
		{func(r *Rule) { r.GroupBy = []string{"hostname"} }, `rule "mem_util": a rule with inputs must group by "_input" last`},
		{func(r *Rule) { r.Combine = nil }, `rule "mem_util": a rule with inputs needs a Combiner to join them`},
		{func(r *Rule) { r.Inputs[1].Name = "" }, `rule "mem_util": input 2 has no name`},
		{func(r *Rule) { r.Inputs[1].MetricName = "" }, `rule "mem_util": input "total" has no metric name`},
		{func(r *Rule) { r.Inputs[1].Name = "used" }, `rule "mem_util": input "used" is given twice`},
		{func(r *Rule) { r.Rollup = &Rollup{Function: r.Function, GroupBy: []string{InputKey}} }, `rule "mem_util": the rollup of a rule with inputs cannot group by "_input"`},
	} {
		r := memRule(t)
		c.edit(&r)
		if err := r.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %s", err, c.want)
		}
	}
	r := memRule(t)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

// memSample is one random input of TestDerivedAgainstReference.
type memSample struct {
	name, tenant, host string
	ts                 int64
	v                  float64
	partition          int32
}

// referenceUtilisation computes memRule's output from samples in plain Go:
// per tenant, host and window, avg(used) / max(total) · 100, with the
// groups skipped per reason.
func referenceUtilisation(samples []memSample) (lines []string, skipped map[string]int64) {
	type group struct {
		usedSum, usedN, totalMax float64
		haveTotal                bool
		records                  int64
		first, last              int64
	}
	groups := map[[3]string]*group{}
	var order [][3]string
	for _, s := range samples {
		k := [3]string{s.tenant, s.host, fmt.Sprint(WindowStart(s.ts, 10_000))}
		g := groups[k]
		if g == nil {
			g = &group{first: s.ts, last: s.ts}
			groups[k] = g
			order = append(order, k)
		}
		g.records++
		g.first, g.last = min(g.first, s.ts), max(g.last, s.ts)
		if s.name == "mem.used_mb" {
			g.usedSum += s.v
			g.usedN++
		} else if !g.haveTotal || s.v > g.totalMax {
			g.totalMax, g.haveTotal = s.v, true
		}
	}
	skipped = map[string]int64{}
	for _, k := range order {
		g := groups[k]
		switch {
		case g.usedN == 0 || !g.haveTotal:
			skipped[SkipMissingInput]++
		case g.totalMax == 0:
			skipped[SkipDivisionByZero]++
		default:
			lines = append(lines, fmt.Sprintf("mem.utilization_perc [{hostname %s}] %s %s %v n=%d %d..%d",
				k[1], k[0], k[2], g.usedSum/g.usedN/g.totalMax*100, g.records, g.first, g.last))
		}
	}
	slices.Sort(lines)
	return lines, skipped
}

// TestDerivedAgainstReference runs random samples, with missing inputs and
// zero totals, through one engine and through two stages (an engine per
// partition, then a Merger), and compares both with referenceUtilisation.
func TestDerivedAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 13))
	for round := range 20 {
		var samples []memSample
		for i := range 2000 {
			s := memSample{
				name:   []string{"mem.used_mb", "mem.total_mb"}[rng.IntN(2)],
				tenant: []string{"a", "b"}[rng.IntN(2)], host: fmt.Sprintf("h%d", rng.IntN(8)),
				ts: t0 + int64(i)*20 + rng.Int64N(2_000), partition: rng.Int32N(3),
			}
			// Integer values keep sums exact in any order; totals are
			// often all zero in a group.
			s.v = float64(rng.IntN(100))
			if s.name == "mem.total_mb" {
				s.v = float64(rng.IntN(2) * rng.IntN(4) * 100)
			}
			if s.host == "h7" && s.name == "mem.total_mb" {
				continue // never a total: always a missing input
			}
			samples = append(samples, s)
		}
		want, wantSkipped := referenceUtilisation(samples)

		clock := &fakeClock{now: time.UnixMilli(t0 + 600_000)}
		single := newTestEngine(t, clock, memRule(t))
		stageOne := make([]*Engine, 3)
		for i := range stageOne {
			stageOne[i] = newTestEngine(t, clock, memRule(t))
		}
		for _, s := range samples {
			m := metric(s.name, s.ts, s.v, s.tenant, "hostname", s.host)
			src := Source{Stream: "metrics", Partition: s.partition}
			single.Add(src, m)
			stageOne[s.partition].Add(src, m)
		}
		clock.advance(time.Minute)
		got := aggregateLines(single.FlushAll(nil))
		two := newStageTwo(t, clock, 0, memRule(t))
		for p, e := range stageOne {
			src := Source{Stream: "metrics", Partition: int32(p)}
			states, frontier := e.FlushStates(nil)
			for i := range states {
				if _, err := two.Contribute(src, 1, &states[i]); err != nil {
					t.Fatal(err)
				}
			}
			two.Progress(src, 1, frontier, false)
		}
		merged, _ := two.Flush(nil)
		if len(want) == 0 || !slices.Equal(got, want) || !slices.Equal(aggregateLines(merged), want) {
			t.Fatalf("round %d:\none engine %s\ntwo stages %s\nreference %s", round,
				strings.Join(got, "\n    "), strings.Join(aggregateLines(merged), "\n    "), strings.Join(want, "\n    "))
		}
		for name, r := range map[string]*Rule{"one engine": &single.rules[0].Rule, "two stages": &two.rules[0].Rule} {
			if got := skippedOf(r); fmt.Sprint(got) != fmt.Sprint(wantSkipped) {
				t.Fatalf("round %d, %s: skipped %v, reference %v", round, name, got, wantSkipped)
			}
		}
	}
}

// BenchmarkEngineAddDerived is BenchmarkEngineAdd with a derived rule
// besides the realistic ones: memory utilisation per cluster and host from
// two of the mix's metrics. The hot path must stay free of allocations.
func BenchmarkEngineAddDerived(b *testing.B) {
	start := int64(1704067200000)
	metrics := realisticMetrics(6*500*60, start)
	for i := range metrics {
		if metrics[i].Name == "disk.used_space_mb" {
			metrics[i].Name = "mem.total_mb" // the second input
		}
	}
	clock := time.UnixMilli(start)
	rule := memRule(b)
	rule.GroupBy = []string{"cluster", "hostname", InputKey}
	rule.Combine.(*Derivation).Key = 2
	e, err := New(Config{Window: time.Minute, Lag: 2 * time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour,
		Clock: func() time.Time { return clock }}, append(realisticRules(b), rule))
	if err != nil {
		b.Fatal(err)
	}
	for i := range metrics { // warm: every series exists
		e.Add(p0, &metrics[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Add(p0, &metrics[i%len(metrics)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
}

// BenchmarkDerivationCombine measures the join and formula of one window's
// close: 500 hosts of two inputs.
func BenchmarkDerivationCombine(b *testing.B) {
	rule := memRule(b)
	var rows []Row
	for h := range 500 {
		for _, in := range []string{"used", "total"} {
			rows = append(rows, Row{Keys: rule.GroupBy, Values: []string{fmt.Sprintf("h%03d", h), in}, TenantID: "t", State: stateOf(float64(h+1), 7)})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out := rule.Combine.Combine(&rule, slices.Clone(rows)); len(out) != 500 {
			b.Fatalf("%d rows", len(out))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/500, "ns/row")
}
