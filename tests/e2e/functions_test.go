package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// seriesSpecs are the specifications of TestFunctionsOverInputSeriesSurviveKills:
// functions whose value depends on each input series' own samples in time
// order and on its last sample before the window.
const seriesSpecs = `
aggregationSpecifications:
  - name: BytesIn
    aggregatedMetricName: vm.net.in_bytes.increase
    filteredMetricName: vm.net.in_bytes
    groupedDimensions: [project_id]
    function: increase
  - name: Running
    aggregatedMetricName: vm.running_seconds
    filteredMetricName: vm.state
    groupedDimensions: [project_id]
    function: time_in_state
    stateValue: 1
`

// TestFunctionsOverInputSeriesSurviveKills runs VM counters (that reset now
// and then) and VM states through the aggregation pipeline, with every VM's
// samples spread over the four partitions, produced in four parts: after
// each of the first three the pipeline starts and is killed at a random
// moment while it consumes, checkpointing every 100 ms so that most kills
// find a checkpoint to restore. Every
// window must have the reference value: the samples carried from one
// window into the next, and the windows' samples by input series, must
// survive each kill in the checkpoints.
func TestFunctionsOverInputSeriesSurviveKills(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	specs := writeSeriesSpecs(t)
	cfg := restartConfig
	cfg.env = []string{"AGGREGATION_SPECS=" + specs, "WINDOW_SIZE=" + cfg.window.String(),
		"WINDOW_LAG=" + cfg.lag.String(), "IDLE_TIMEOUT=" + cfg.idle.String(), "CHECKPOINT_INTERVAL=100ms"}
	e := newEnv(t, cfg)
	rng := newRand(t)
	metrics, recs := vmBacklog(rng, time.Now(), cfg.window, 200)
	expected := vmExpected(metrics, cfg.window)
	c := e.collect(ctx)
	t.Logf("%d samples of %d VMs over 200 windows: %d aggregates expected", len(recs), vms, len(expected))

	started := time.Now()
	produceWithKills(ctx, t, e, rng, c, recs, e.start)
	if e.waitDrained(ctx, c) {
		t.Logf("drained %v after the first start", time.Since(started).Round(time.Millisecond))
	}
	checkOutputs(t, expected, c.outputs(), started, true)
}

// writeSeriesSpecs writes seriesSpecs to a file and returns its path.
func writeSeriesSpecs(t *testing.T) string {
	t.Helper()
	specs := filepath.Join(t.TempDir(), "specs.yaml")
	if err := os.WriteFile(specs, []byte(seriesSpecs), 0o600); err != nil {
		t.Fatal(err)
	}
	return specs
}

// produceWithKills produces recs in four parts: after each of the first
// three it starts an instance and kills it at a random moment while it
// consumes; after the last it starts one that is left running.
func produceWithKills(ctx context.Context, t *testing.T, e *testEnv, rng *rand.Rand, c *collector, recs []*kgo.Record, start func() *process) {
	t.Helper()
	part := len(recs) / 4
	for i := range 3 {
		e.produce(ctx, recs[i*part:(i+1)*part])
		p := start()
		consuming := harness.WaitUntil(ctx, 40*time.Second, func() bool { return received(ctx, p) > 0 })
		d := time.Duration(rng.Int64N(int64(600 * time.Millisecond)))
		harness.Sleep(ctx, d)
		p.Kill()
		t.Logf("%s SIGKILL #%d%s %v after it started consuming (consuming: %v; %d outputs so far)",
			wallClock(), i+1, p.label(), d.Round(time.Millisecond), consuming, c.count())
	}
	e.produce(ctx, recs[3*part:])
	start()
}

// vmSample is one sample of the VM backlog.
type vmSample struct {
	name, project, vm string
	ts                int64
	value             int64
}

// vms is the number of VMs of the backlog, in four projects.
const vms = 40

// vmBacklog draws windows of samples of the VMs: every 250 ms
// (offset per VM, so that no two samples of one input series share a
// timestamp) a byte counter that rises, and resets to a small value one
// time in ten, and a state of 0, 1 or 2. Records go to random partitions,
// in time order, windows starting ten minutes ago.
func vmBacklog(rng *rand.Rand, now time.Time, window time.Duration, windows int) ([]vmSample, []*kgo.Record) {
	size := window.Milliseconds()
	start := now.Add(-10*time.Minute).UnixMilli() / size * size
	var samples []vmSample
	for v := range vms {
		vm, project := fmt.Sprintf("vm-%d", v), fmt.Sprintf("project-%d", v%4)
		counter := rng.Int64N(1_000_000)
		for ts := start + int64(v)*5; ts < start+int64(windows)*size; ts += 250 {
			if rng.IntN(10) == 0 {
				counter = rng.Int64N(100)
			} else {
				counter += rng.Int64N(10_000)
			}
			samples = append(samples,
				vmSample{"vm.net.in_bytes", project, vm, ts, counter},
				vmSample{"vm.state", project, vm, ts + 3, rng.Int64N(3)})
		}
	}
	slices.SortStableFunc(samples, func(a, b vmSample) int { return int(a.ts - b.ts) })
	recs := make([]*kgo.Record, len(samples))
	for i, s := range samples {
		m := inputMetric{name: s.name, ts: s.ts, value: s.value, tenant: tenants[0],
			dims: map[string]string{"project_id": s.project, "resource_id": s.vm, "hostname": "host-" + s.vm}}
		recs[i] = inputRecord(rng.Int32N(4), m.envelope())
	}
	return samples, recs
}

// vmExpected computes, independently of the product, the aggregates of
// seriesSpecs: per window and project, over each VM's samples in time
// order with its last sample of the window before carried in, the
// counter's increase (a lower value is a reset, counted from zero) and the
// seconds in state 1.
func vmExpected(samples []vmSample, window time.Duration) map[aggID]expectedAgg {
	size := window.Milliseconds()
	type series struct{ name, vm string }
	bySeries := map[series][]vmSample{}
	project := map[string]string{}
	for _, s := range samples {
		k := series{s.name, s.vm}
		bySeries[k] = append(bySeries[k], s) // samples are in time order
		project[s.vm] = s.project
	}
	type group struct {
		name, project string
		start         int64
	}
	type result struct {
		count, first, last int64
		runningMs          int64
		increase           int64
	}
	results := map[group]*result{}
	for k, ss := range bySeries {
		for i, s := range ss {
			start := s.ts / size * size
			g := group{k.name, project[k.vm], start}
			r := results[g]
			if r == nil {
				r = &result{first: s.ts, last: s.ts}
				results[g] = r
			}
			r.count++
			r.first, r.last = min(r.first, s.ts), max(r.last, s.ts)
			var prev *vmSample
			if i > 0 && ss[i-1].ts >= start-size {
				prev = &ss[i-1] // in this window, or carried from the one before
			}
			if k.name == "vm.net.in_bytes" {
				if prev != nil {
					if s.value >= prev.value {
						r.increase += s.value - prev.value
					} else {
						r.increase += s.value
					}
				}
				continue
			}
			// The state held from the window's start (carried) or the
			// previous sample until this one, and from the last sample
			// of the window until its end.
			if prev != nil && prev.value == 1 {
				r.runningMs += s.ts - max(prev.ts, start)
			}
			if (i+1 == len(ss) || ss[i+1].ts >= start+size) && s.value == 1 {
				r.runningMs += start + size - s.ts
			}
		}
	}
	out := map[aggID]expectedAgg{}
	for g, r := range results {
		name, value := "vm.net.in_bytes.increase", float64(r.increase)
		if g.name == "vm.state" {
			name, value = "vm.running_seconds", float64(r.runningMs)/1000
		}
		id := aggID{seriesID(name, map[string]string{"project_id": g.project}, tenants[0].id), g.start}
		out[id] = expectedAgg{value: value, count: r.count, first: formatRecordTime(r.first), last: formatRecordTime(r.last), region: tenants[0].region}
	}
	return out
}

// TestFunctionsOverInputSeriesAcrossStages runs the same VMs through the
// two scale-out stages (pipelines/scale-out), killing the stage-one
// instance three times mid-stream and then the stage-two instance once it
// has published part of the windows: stage one ships each window's samples
// by input series in its partials, stage two merges every partition's and
// carries each VM's last sample into the next window (in its checkpoints),
// and every window must have the reference value of one instance.
func TestFunctionsOverInputSeriesAcrossStages(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	specs := writeSeriesSpecs(t)
	cfg := restartConfig
	cfg.partitions = map[string]int32{"partials": 4}
	e := newEnv(t, cfg)
	rng := newRand(t)
	metrics, recs := vmBacklog(rng, time.Now(), cfg.window, 200)
	expected := vmExpected(metrics, cfg.window)
	c := e.collect(ctx)
	common := []string{"AGGREGATION_SPECS=" + specs, "WINDOW_SIZE=" + cfg.window.String(), "WINDOW_LAG=" + cfg.lag.String(),
		"PARTIALS_TOPIC=partials", "CHECKPOINT_INTERVAL=100ms"}
	stage1 := procSpec{name: "stage1", pipeline: filepath.Join("scale-out", "stage1.yaml"), group: e.group + "-stage1",
		env: append(slices.Clone(common), "IDLE_TIMEOUT=5s")}
	stage2 := procSpec{name: "stage2", pipeline: filepath.Join("scale-out", "stage2.yaml"), group: e.group + "-stage2", env: common}
	two := e.startProc(stage2)

	started := time.Now()
	produceWithKills(ctx, t, e, rng, c, recs, func() *process { return e.startProc(stage1) })
	published := harness.WaitUntil(ctx, time.Minute, func() bool { return c.count() > len(expected)/3 })
	two.Kill()
	t.Logf("%s SIGKILL of stage two (published a third: %v; %d outputs so far)", wallClock(), published, c.count())
	e.startProc(stage2)
	if !harness.WaitUntil(ctx, time.Minute, func() bool { return allSeen(expected, c.outputs()) }) {
		t.Errorf("not every expected aggregate arrived within a minute of the last start")
	}
	t.Logf("%s %d outputs %v after the first start", wallClock(), c.count(), time.Since(started).Round(time.Millisecond))
	checkOutputs(t, expected, c.outputs(), started, true)
}
