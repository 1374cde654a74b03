package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// inputHeader marks every record the tests produce, so that the output
// collector can tell input from aggregates when both share one topic without
// relying on the pipeline's own marking.
const inputHeader = "e2e-input"

// refSpec mirrors one specification of testdata/aggregation-specifications.yaml
// for the reference model.
type refSpec struct {
	output, input string
	filtered      map[string]string
	rejected      map[string]string // "" rejects any value
	grouped       []string
	fn            string
	rollupFn      string // "" when the spec has no rollup
	rollupGrouped []string
}

// testSpecs is the reference model's copy of the test specifications.
var testSpecs = []refSpec{
	{output: "cpu.total_sum", input: "cpu.percent", filtered: map[string]string{"cluster": "prod"}, fn: "sum"},
	{output: "cpu.samples_per_host", input: "cpu.percent", rejected: map[string]string{"hostname": "host-5", "maintenance": ""}, grouped: []string{"hostname"}, fn: "count"},
	{output: "mem.avg_per_service", input: "mem.used_mb", grouped: []string{"service"}, fn: "avg"},
	{output: "net.peak_sum_per_service", input: "net.in_bytes", grouped: []string{"hostname", "service"}, fn: "max", rollupFn: "sum", rollupGrouped: []string{"service"}},
	{output: "cpu.total_sum_samples", input: "cpu.total_sum", fn: "count"},
}

type tenant struct{ id, region string }

var tenants = []tenant{{"tenant-a", "RegionOne"}, {"tenant-b", "RegionTwo"}}

// metricNames are the input names and their weights: three feed the specs,
// cpu.total_sum is an input that happens to carry an aggregate's name, and
// disk.read_ops matches no spec.
var metricNames = []struct {
	name   string
	weight int
}{
	{"cpu.percent", 35}, {"mem.used_mb", 20}, {"net.in_bytes", 25}, {"cpu.total_sum", 5}, {"disk.read_ops", 15},
}

// inputMetric is one valid metric of a workload. Values are integers so that
// every sum is exact whatever the order of summation.
type inputMetric struct {
	name   string
	dims   map[string]string
	ts     int64 // epoch ms
	value  int64
	tenant tenant
}

// badMessages are invalid envelopes, by the reason the pipeline must count
// them under in monasca_metrics_invalid_total.
var badMessages = map[string]string{
	"malformed_json":   `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0"},"timestamp":`,
	"wrong_type":       `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0"},"timestamp":%d,"value":"high"},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`,
	"non_finite_value": `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0"},"timestamp":%d,"value":NaN},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`,
	"missing_field":    `{"metric":{"dimensions":{"hostname":"host-0"},"timestamp":%d,"value":1},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`,
}

// workload describes the backlog a test produces.
type workload struct {
	window     time.Duration
	lag        time.Duration
	windows    int // number of consecutive windows the metrics fall in
	perWindow  int // valid metrics per window
	partitions int32
	bad        map[string]int // invalid messages to mix in, by reason
}

// generated is a produced backlog: the valid metrics, for the reference
// model, and the records, partition by partition.
type generated struct {
	metrics []inputMetric
	records []*kgo.Record
}

// generate builds the workload's backlog: windows starting ten minutes ago,
// epoch-aligned, spread round-robin over the partitions. Within a partition
// records follow event time with a jitter below half the lag, so no metric
// is late, and the invalid messages sit at random places.
func (w workload) generate(rng *rand.Rand, now time.Time) generated {
	size := w.window.Milliseconds()
	start := (now.Add(-10*time.Minute).UnixMilli() / size) * size // epoch ms
	var g generated
	total := 0
	for _, n := range metricNames {
		total += n.weight
	}
	type placed struct {
		rec   *kgo.Record
		order int64 // event time plus jitter
	}
	parts := make([][]placed, w.partitions)
	jitter := max(w.lag.Milliseconds()/2, 1)
	for i := range w.windows * w.perWindow {
		m := inputMetric{
			name:   pickName(rng.IntN(total)),
			dims:   pickDims(rng),
			ts:     start + int64(i/w.perWindow)*size + rng.Int64N(size),
			value:  rng.Int64N(1000),
			tenant: tenants[rng.IntN(len(tenants))],
		}
		if m.name == "net.in_bytes" {
			m.value *= 1000
		}
		g.metrics = append(g.metrics, m)
		p := int32(i) % w.partitions
		parts[p] = append(parts[p], placed{inputRecord(p, m.envelope()), m.ts + rng.Int64N(jitter)})
	}
	for _, reason := range slices.Sorted(maps.Keys(w.bad)) {
		for range w.bad[reason] {
			p := rng.Int32N(w.partitions)
			ts := start + rng.Int64N(int64(w.windows)*size)
			body := badMessages[reason]
			if strings.Contains(body, "%d") {
				body = fmt.Sprintf(body, ts)
			}
			parts[p] = append(parts[p], placed{inputRecord(p, []byte(body)), ts})
		}
	}
	for _, ps := range parts {
		slices.SortStableFunc(ps, func(a, b placed) int { return cmp.Compare(a.order, b.order) })
		for _, x := range ps {
			g.records = append(g.records, x.rec)
		}
	}
	return g
}

func pickName(r int) string {
	for _, n := range metricNames {
		if r < n.weight {
			return n.name
		}
		r -= n.weight
	}
	panic("weights do not cover the range")
}

// pickDims draws a dimension set: usually a host and a service, sometimes
// neither, with a cluster and now and then a maintenance flag.
func pickDims(rng *rand.Rand) map[string]string {
	d := map[string]string{}
	if rng.IntN(10) > 0 {
		d["hostname"] = fmt.Sprintf("host-%d", rng.IntN(6))
	}
	if rng.IntN(7) > 0 {
		d["service"] = fmt.Sprintf("svc-%c", 'a'+rng.IntN(3))
	}
	switch rng.IntN(10) {
	case 0:
	case 1, 2, 3:
		d["cluster"] = "staging"
	default:
		d["cluster"] = "prod"
	}
	if rng.IntN(20) == 0 {
		d["maintenance"] = "yes"
	}
	return d
}

func (m inputMetric) envelope() []byte {
	b, err := json.Marshal(map[string]any{
		"metric": map[string]any{
			"name": m.name, "dimensions": m.dims, "timestamp": m.ts, "value": m.value, "value_meta": map[string]string{},
		},
		"meta":          map[string]string{"tenantId": m.tenant.id, "region": m.tenant.region},
		"creation_time": m.ts / 1000,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func inputRecord(partition int32, value []byte) *kgo.Record {
	return &kgo.Record{
		Partition: partition,
		Value:     value,
		Headers:   []kgo.RecordHeader{{Key: inputHeader, Value: []byte("1")}},
	}
}

// aggID identifies one aggregate: its series (the expected Kafka key, name
// and sorted dimensions and tenant) and its window start.
type aggID struct {
	series string
	window int64
}

func (id aggID) String() string {
	return fmt.Sprintf("%s window %s", id.series, time.UnixMilli(id.window).UTC().Format("15:04:05.000"))
}

// expectedAgg is what one aggregate must carry.
type expectedAgg struct {
	value       float64
	count       int64
	first, last string // firstrecord/lastrecord_timestamp_string
	region      string
}

// seriesID renders the series key as the pipeline must write it as the Kafka
// key: name, dimensions sorted by key as ,k=v, then @tenant.
func seriesID(name string, dims map[string]string, tenant string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range slices.Sorted(maps.Keys(dims)) {
		fmt.Fprintf(&b, ",%s=%s", k, dims[k])
	}
	b.WriteString("@" + tenant)
	return b.String()
}

// acc is the reference accumulator of one group in one window.
type acc struct {
	sum, max, count int64
	first, last     int64
	region          string
}

func (a *acc) add(ts, v int64, region string) {
	if a.count == 0 {
		*a = acc{sum: v, max: v, count: 1, first: ts, last: ts, region: region}
		return
	}
	a.sum += v
	a.max = max(a.max, v)
	a.count++
	a.first = min(a.first, ts)
	a.last = max(a.last, ts)
}

func (a *acc) result(fn string) float64 {
	switch fn {
	case "sum":
		return float64(a.sum)
	case "count":
		return float64(a.count)
	case "avg":
		return float64(a.sum) / float64(a.count)
	case "max":
		return float64(a.max)
	}
	panic("reference model lacks function " + fn)
}

// merge folds the samples summarised by o into a.
func (a *acc) merge(o *acc) {
	if a.count == 0 {
		*a = *o
		return
	}
	a.sum += o.sum
	a.max = max(a.max, o.max)
	a.count += o.count
	a.first = min(a.first, o.first)
	a.last = max(a.last, o.last)
}

// expect renders the group as the aggregate the function fn yields.
func (a *acc) expect(fn string) expectedAgg {
	return expectedAgg{
		value: a.result(fn), count: a.count,
		first: formatRecordTime(a.first), last: formatRecordTime(a.last), region: a.region,
	}
}

func formatRecordTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05")
}

func (s *refSpec) matches(m *inputMetric) bool {
	if m.name != s.input {
		return false
	}
	for k, v := range s.filtered {
		if m.dims[k] != v {
			return false
		}
	}
	for k, v := range s.rejected {
		if got, ok := m.dims[k]; ok && (v == "" || got == v) {
			return false
		}
	}
	for _, k := range s.grouped {
		if _, ok := m.dims[k]; !ok {
			return false
		}
	}
	return true
}

// outputDims returns the spec's filtered dimensions plus the given keys with
// their values in dims.
func (s *refSpec) outputDims(keys []string, dims map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range s.filtered {
		out[k] = v
	}
	for _, k := range keys {
		out[k] = dims[k]
	}
	return out
}

// expectedAggregates computes, independently of the product, every aggregate
// the specifications yield over metrics in windows of the given size.
func expectedAggregates(metrics []inputMetric, window time.Duration) map[aggID]expectedAgg {
	size := window.Milliseconds()
	type groupKey struct {
		spec   int
		window int64
		tenant string
		dims   string // the grouped dimensions as a series id
	}
	type group struct {
		acc    acc
		tenant string
		dims   map[string]string // grouped dimensions with their values
	}
	groups := map[groupKey]*group{}
	for i := range metrics {
		m := &metrics[i]
		for si := range testSpecs {
			s := &testSpecs[si]
			if !s.matches(m) {
				continue
			}
			grouped := map[string]string{}
			for _, k := range s.grouped {
				grouped[k] = m.dims[k]
			}
			k := groupKey{si, m.ts / size * size, m.tenant.id, seriesID("", grouped, "")}
			g := groups[k]
			if g == nil {
				g = &group{tenant: m.tenant.id, dims: grouped}
				groups[k] = g
			}
			g.acc.add(m.ts, m.value, m.tenant.region)
		}
	}
	out := map[aggID]expectedAgg{}
	type rollup struct {
		fn      string
		values  acc // the group results, folded as values
		samples acc // the samples behind them: count and time range
	}
	rollups := map[aggID]*rollup{}
	for k, g := range groups {
		s := &testSpecs[k.spec]
		if s.rollupFn == "" {
			dims := s.outputDims(s.grouped, g.dims)
			out[aggID{seriesID(s.output, dims, g.tenant), k.window}] = g.acc.expect(s.fn)
			continue
		}
		id := aggID{seriesID(s.output, s.outputDims(s.rollupGrouped, g.dims), g.tenant), k.window}
		v := g.acc.result(s.fn)
		if v != float64(int64(v)) {
			panic("rollup inputs must be integers for an exact reference")
		}
		r := rollups[id]
		if r == nil {
			r = &rollup{fn: s.rollupFn}
			rollups[id] = r
		}
		r.values.add(k.window, int64(v), g.acc.region)
		r.samples.merge(&g.acc)
	}
	for id, r := range rollups {
		// The record count and time range are those of the samples; the
		// value is the rollup function over the group results.
		e := r.samples.expect("count")
		e.value = r.values.result(r.fn)
		out[id] = e
	}
	return out
}
