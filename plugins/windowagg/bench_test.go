package windowagg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// realisticMetrics returns n metrics of the mix the benchmarks use: 6 metric
// names, 500 hosts, 4 dimensions, 10 tenants, one sample per host and name
// every second.
func realisticMetrics(n int, start int64) []monasca.Metric {
	names := []string{"cpu.idle_perc", "cpu.user_perc", "mem.used_mb", "disk.used_space_mb", "net.in_bytes_sec", "load.avg_1_min"}
	out := make([]monasca.Metric, n)
	for i := range out {
		host := i / len(names) % 500
		out[i] = monasca.Metric{
			Name: names[i%len(names)],
			Dimensions: []monasca.Dimension{
				{Key: "hostname", Value: fmt.Sprintf("compute-%03d", host)},
				{Key: "service", Value: "compute"},
				{Key: "component", Value: "monasca-agent"},
				{Key: "cluster", Value: fmt.Sprintf("cluster-%d", host%4)},
			},
			Timestamp: start + int64(i/(len(names)*500))*1000,
			Value:     float64(i % 100),
			TenantID:  fmt.Sprintf("%032x", host%10),
			Region:    "useast",
		}
	}
	return out
}

// realisticRules returns 5 specs of which 2 match each metric of
// realisticMetrics whose name they select.
func realisticRules(b *testing.B) []Rule {
	sum, _ := LookupFunction("sum")
	avg, _ := LookupFunction("avg")
	max, _ := LookupFunction("max")
	return []Rule{
		{Name: "cpu per host", MetricName: "cpu.idle_perc", OutputName: "cpu.idle_perc.avg", Function: avg, GroupBy: []string{"hostname"}},
		{Name: "cpu per cluster", MetricName: "cpu.idle_perc", OutputName: "cpu.idle_perc.cluster", Function: avg, GroupBy: []string{"cluster", "hostname"}, Rollup: &Rollup{Function: sum, GroupBy: []string{"cluster"}}},
		{Name: "mem total", MetricName: "mem.used_mb", OutputName: "mem.used_mb.total", Function: sum},
		{Name: "mem max per cluster", MetricName: "mem.used_mb", OutputName: "mem.used_mb.max", Function: max, GroupBy: []string{"cluster"}},
		{Name: "net per host", MetricName: "net.in_bytes_sec", OutputName: "net.in.avg", Function: avg, GroupBy: []string{"hostname", "service"}},
	}
}

func BenchmarkEngineAdd(b *testing.B) {
	start := int64(1704067200000)
	metrics := realisticMetrics(6*500*60, start) // one minute of samples
	clock := time.UnixMilli(start)
	e, err := New(Config{Window: time.Minute, Lag: 2 * time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour,
		Clock: func() time.Time { return clock }}, realisticRules(b))
	if err != nil {
		b.Fatal(err)
	}
	src := Source{Stream: "metrics", Partition: 0}
	for i := range metrics { // warm: every series exists
		e.Add(src, &metrics[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Add(src, &metrics[i%len(metrics)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkEngineFlush100kSeries(b *testing.B) {
	start := int64(1704067200000)
	avg, _ := LookupFunction("avg")
	rules := []Rule{{Name: "per host", MetricName: "m", OutputName: "o", Function: avg, GroupBy: []string{"hostname"}}}
	metrics := make([]monasca.Metric, 100_000)
	for i := range metrics {
		metrics[i] = monasca.Metric{Name: "m", Timestamp: start, Value: 1, TenantID: "tenant",
			Dimensions: []monasca.Dimension{{Key: "hostname", Value: fmt.Sprintf("host-%06d", i)}}}
	}
	clock := time.UnixMilli(start)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e, _ := New(Config{Window: 10 * time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour, Clock: func() time.Time { return clock }}, rules)
		for j := range metrics {
			e.Add(Source{}, &metrics[j])
		}
		b.StartTimer()
		if out := e.FlushAll(nil); len(out) != len(metrics) {
			b.Fatalf("flushed %d", len(out))
		}
	}
}

// BenchmarkEngineAdd200Specs matches the realistic metrics against 200
// specifications: 40 per name for 5 of the 6 names, each with a dimension
// filter that one in 40 of its metrics passes.
func BenchmarkEngineAdd200Specs(b *testing.B) {
	start := int64(1704067200000)
	metrics := realisticMetrics(6*500*60, start)
	avg, _ := LookupFunction("avg")
	var rules []Rule
	for i := 0; i < 200; i++ {
		name := metrics[i%5].Name
		rules = append(rules, Rule{
			Name: fmt.Sprintf("spec %d", i), MetricName: name, OutputName: fmt.Sprintf("%s.%d", name, i),
			Function: avg, GroupBy: []string{"hostname"},
			Require: []monasca.Dimension{{Key: "cluster", Value: fmt.Sprintf("cluster-%d", i%4)}},
			Reject:  []monasca.Dimension{{Key: "component", Value: "none"}},
		})
	}
	clock := time.UnixMilli(start)
	e, err := New(Config{Window: time.Minute, Lag: 2 * time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour,
		Clock: func() time.Time { return clock }}, rules)
	if err != nil {
		b.Fatal(err)
	}
	for i := range metrics {
		e.Add(Source{}, &metrics[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Add(Source{}, &metrics[i%len(metrics)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
}

// BenchmarkEngineMemoryPerSeries reports the heap held per open series:
// 100k hosts with realistic names and tenants, one rule grouping by host.
func BenchmarkEngineMemoryPerSeries(b *testing.B) {
	start := int64(1704067200000)
	avg, _ := LookupFunction("avg")
	rules := []Rule{{Name: "per host", MetricName: "cpu.idle_perc", OutputName: "o", Function: avg, GroupBy: []string{"hostname"}}}
	const series = 100_000
	metrics := make([]monasca.Metric, series)
	for i := range metrics {
		metrics[i] = monasca.Metric{Name: "cpu.idle_perc", Timestamp: start, Value: 1, TenantID: fmt.Sprintf("%032x", i%10), Region: "useast",
			Dimensions: []monasca.Dimension{{Key: "hostname", Value: fmt.Sprintf("compute-%06d", i)}}}
	}
	reportHeapPerSeries(b, rules, metrics, series)
}

// reportHeapPerSeries reports the heap an engine with rules holds after
// adding metrics, per series.
func reportHeapPerSeries(b *testing.B, rules []Rule, metrics []monasca.Metric, series int) {
	clock := time.UnixMilli(metrics[0].Timestamp)
	var perSeries float64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e, _ := New(Config{Window: time.Minute, IdleTimeout: time.Minute, MaxFuture: time.Hour, Clock: func() time.Time { return clock }}, rules)
		for j := range metrics {
			e.Add(Source{}, &metrics[j])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perSeries = float64(after.HeapAlloc-before.HeapAlloc) / float64(series)
		runtime.KeepAlive(e)
	}
	b.ReportMetric(perSeries, "bytes/series")
}

// BenchmarkEngineAddBySeries shows how the add cost grows with the number of
// open series: one rule grouping by host, with 1k to 1M hosts.
func BenchmarkEngineAddBySeries(b *testing.B) {
	start := int64(1704067200000)
	avg, _ := LookupFunction("avg")
	rules := []Rule{{Name: "per host", MetricName: "cpu.idle_perc", OutputName: "o", Function: avg, GroupBy: []string{"hostname"}}}
	for _, series := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("series=%d", series), func(b *testing.B) {
			metrics := make([]monasca.Metric, series)
			for i := range metrics {
				metrics[i] = monasca.Metric{Name: "cpu.idle_perc", Timestamp: start, Value: 1, TenantID: fmt.Sprintf("%032x", i%10),
					Dimensions: []monasca.Dimension{{Key: "hostname", Value: fmt.Sprintf("compute-%07d", i)}}}
			}
			clock := time.UnixMilli(start)
			e, _ := New(Config{Window: time.Minute, IdleTimeout: time.Minute, MaxFuture: time.Hour, Clock: func() time.Time { return clock }}, rules)
			for i := range metrics {
				e.Add(Source{}, &metrics[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Add(Source{}, &metrics[i%series])
			}
		})
	}
}

// BenchmarkMergerContribute measures stage two: 4 stage-one sources each
// contribute the states of one minute of realisticMetrics (FlushStates of
// an Engine), then report progress past them, and the Merger flushes.
func BenchmarkMergerContribute(b *testing.B) {
	start := int64(1704067200000)
	now := time.UnixMilli(start)
	cfg := Config{Window: time.Minute, Lag: 2 * time.Second, IdleTimeout: time.Hour, MaxFuture: time.Hour,
		Clock: func() time.Time { return now }}
	one, err := New(cfg, realisticRules(b))
	if err != nil {
		b.Fatal(err)
	}
	metrics := realisticMetrics(6*500*60, start)
	for i := range metrics {
		one.Add(Source{Stream: "metrics", Partition: int32(i % 4)}, &metrics[i])
	}
	// Every source past the minute: its windows close.
	for p := range int32(4) {
		one.Add(Source{Stream: "metrics", Partition: p}, &monasca.Metric{Name: "x", Timestamp: start + 10*60_000})
	}
	states, through := one.FlushStates(nil)
	if len(states) == 0 {
		b.Fatal("no states")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		two := newBenchMerger(b, cfg, realisticRules(b))
		for p := range int32(4) {
			src := Source{Stream: "partials", Partition: p}
			for j := range states {
				if _, err := two.Contribute(src, int64(j), &states[j]); err != nil {
					b.Fatal(err)
				}
			}
			two.Progress(src, int64(len(states)), through, false)
		}
		if out, _ := two.Flush(nil); len(out) == 0 {
			b.Fatal("nothing flushed")
		}
	}
	b.ReportMetric(float64(4*len(states)*b.N)/b.Elapsed().Seconds(), "contributions/s")
}

func newBenchMerger(b *testing.B, cfg Config, rules []Rule) *Merger {
	m, err := NewMerger(cfg, rules)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkAccumulatingAdd is BenchmarkEngineAdd with every rule's function
// replaced by one that keeps an accumulator, in a window of an hour that
// samples fill in time order, one per host and name every second.
func BenchmarkAccumulatingAdd(b *testing.B) {
	for _, name := range []string{"avg", "stddev", "p95", "increase", "time_weighted_avg"} {
		b.Run(name, func(b *testing.B) {
			start := int64(1704067200000)
			metrics := realisticMetrics(6*500, start) // one second of samples
			clock := time.UnixMilli(start)
			rules := realisticRules(b)
			f, _ := LookupFunction(name)
			for i := range rules {
				rules[i].Function = f
			}
			e, err := New(Config{Window: time.Hour, Lag: 2 * time.Second, IdleTimeout: time.Minute, MaxFuture: 2 * time.Hour,
				Clock: func() time.Time { return clock }}, rules)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := metrics[i%len(metrics)]
				m.Timestamp = start + int64(i/len(metrics))%3_600*1000
				e.Add(Source{}, &m)
			}
		})
	}
}

// BenchmarkAccumulatorMemoryPerSeries is the heap per open series of a
// rule whose function keeps an accumulator, with 60 samples per series
// spread over two orders of magnitude (a minute of one-second latencies).
func BenchmarkAccumulatorMemoryPerSeries(b *testing.B) {
	for _, name := range []string{"avg", "stddev", "p95", "increase"} {
		b.Run(name, func(b *testing.B) {
			start := int64(1704067200000)
			f, _ := LookupFunction(name)
			rules := []Rule{{Name: "per host", MetricName: "lat", OutputName: "o", Function: f, GroupBy: []string{"hostname"}}}
			const series = 10_000
			rng := rand.New(rand.NewPCG(1, 1))
			metrics := make([]monasca.Metric, series*60)
			for i := range metrics {
				metrics[i] = monasca.Metric{Name: "lat", Timestamp: start + int64(i/series)*1000, Value: math.Exp(rng.Float64() * 4.6), TenantID: "t",
					Dimensions: []monasca.Dimension{{Key: "hostname", Value: fmt.Sprintf("compute-%06d", i%series)}}}
			}
			reportHeapPerSeries(b, rules, metrics, series)
		})
	}
}
