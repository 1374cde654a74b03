package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/internal/conformancedata"
	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// transformCompatibility is what the conformance dataset asserts:
// monasca-transform's own behaviour, which monasca-connect corrects unless
// told otherwise (as in tests/conformance).
const transformCompatibility = "second_resolution,rate_latest_is_average,rate_double_record_count,util_missing_idle_is_busy"

// TestTransformPipelineCaseE runs case E of the monasca-transform
// conformance dataset end to end: the 426 envelopes of its data file go
// through Kafka into the built binary running pipelines/monasca-transform.yaml
// with the dataset's test specs, and every metric read back from the output
// topic is compared with the case's expected set by the dataset's rules (see
// conformancedata.Diff), its Kafka key with its series id.
//
// The data's event times are of 2016 and 2017 and no later input moves the
// watermark past the last hours, so they close when every partition has
// been quiet for IDLE_TIMEOUT (3s); the idle close does not wait for the
// pipeline's 15s partition discovery hold, which holds only closes on the
// watermark. The test skips without the dataset (see
// internal/conformancedata).
func TestTransformPipelineCaseE(t *testing.T) {
	runTransformCaseE(t, false)
}

// TestScaleOutTransformCaseE runs case E through the two scale-out stages
// instead (pipelines/scale-out/stage1.yaml and stage2.yaml, one instance
// each, four partials partitions) with the same specs: the transform spec
// language, including the components that join rows (utilisation, rates),
// must give the single pipeline's values.
func TestScaleOutTransformCaseE(t *testing.T) {
	runTransformCaseE(t, true)
}

func runTransformCaseE(t *testing.T, scaleOut bool) {
	dir := conformancedata.Dir(t)
	c := findCase(t, dir, "E")
	if c.Stage != "first" || c.ExpectedKind != "metric" || c.PreTransformSpecs == "" || c.TransformSpecs == "" {
		t.Fatalf("case E is no longer a first-stage metric case: stage %q, kind %q, specs %q and %q",
			c.Stage, c.ExpectedKind, c.PreTransformSpecs, c.TransformSpecs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 80*time.Second)
	defer cancel()

	specs := []string{
		"PRE_TRANSFORM_SPECS=" + filepath.Join(dir, c.PreTransformSpecs),
		"TRANSFORM_SPECS=" + filepath.Join(dir, c.TransformSpecs),
		"TRANSFORM_COMPATIBILITY=" + transformCompatibility,
		// The data are of 2016 and 2017: a backfill, for which the
		// pipelines' age check (max_past) is off.
		"MAX_PAST=0s",
	}
	cfg := pipelineConfig{
		inputTopic:  "metrics",
		outputTopic: "transformed",
		pipeline:    "monasca-transform.yaml",
		env:         append(slices.Clone(specs), "LATE_METRIC_SLACK=1s", "IDLE_TIMEOUT=3s"),
	}
	if scaleOut {
		cfg.partitions = map[string]int32{"partials": 4}
	}
	e := newEnv(t, cfg)
	recs := transformInput(t, dir, c)
	e.produce(ctx, recs)
	t.Logf("produced %d envelopes: %d outputs expected", len(recs), len(c.Expected))
	col := e.collect(ctx)

	started := time.Now()
	// first reads the input, last writes the output: the same process,
	// or the two stages.
	var first, last *process
	if scaleOut {
		stages := filepath.Join(repoRoot, "pipelines", "scale-out")
		stage := append(slices.Clone(specs), "WINDOW_LAG=1s", "PARTIALS_TOPIC=partials")
		first = e.startProc(procSpec{name: "stage1", pipeline: filepath.Join(stages, "stage1.yaml"),
			env: append(slices.Clone(stage), "IDLE_TIMEOUT=3s", "PARTIALS_CREATE_PARTITIONS=4")})
		last = e.startProc(procSpec{name: "stage2", pipeline: filepath.Join(stages, "stage2.yaml"), group: e.group + "-stage2",
			env: append(slices.Clone(stage), "PUBLISH_TENANT_ID=111111", "PUBLISH_REGION=useast")})
		// Stage one's input is committed, and its windows closed, before
		// stage two has merged them: wait for the outputs first.
		if !harness.WaitUntil(ctx, 60*time.Second, func() bool { return col.count() >= len(c.Expected) }) {
			t.Errorf("%d outputs within 60s, %d expected", col.count(), len(c.Expected))
		}
	} else {
		first = e.start()
		last = first
	}
	if !e.waitDrained(ctx, col) {
		t.FailNow()
	}
	t.Logf("drained after %v", time.Since(started).Round(time.Millisecond))

	outs := col.outputs()
	got := make([]conformancedata.Output, 0, len(outs))
	for _, o := range outs {
		where := fmt.Sprintf("p%d@%d", o.partition, o.offset)
		m, err := conformancedata.ParseOutput(o.raw)
		if err != nil {
			t.Errorf("%s: %v: %s", where, err, o.raw)
			continue
		}
		if want := seriesID(m.Name, m.Dimensions, m.Meta["tenantId"]); o.key != want {
			t.Errorf("%s: Kafka key %q, want the series id %q", where, o.key, want)
		}
		// Not a rule of the dataset, which ignores metric.timestamp:
		// monasca-connect stamps an hourly metric with its hour's start.
		if ts := o.env.Metric.Timestamp; ts == nil || *ts%time.Hour.Milliseconds() != 0 {
			t.Errorf("%s: metric.timestamp is not the start of an hour: %s", where, o.raw)
		}
		got = append(got, m)
	}
	t.Logf("%d outputs read from %s", len(outs), cfg.outputTopic)
	conformancedata.Compare(t, c, got)

	in, err := harness.Scrape(ctx, first.httpAddr)
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	out, err := harness.Scrape(ctx, last.httpAddr)
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	logCounters(t, in)
	if n := harness.Sum(in, "monasca_metrics_received_total", "")[""]; n != float64(len(recs)) {
		t.Errorf("monasca_metrics_received_total = %v, want %d", n, len(recs))
	}
	for _, samples := range [][]harness.Sample{in, out} {
		if n := harness.Sum(samples, "monasca_metrics_late_total", "")[""]; n != 0 {
			t.Errorf("monasca_metrics_late_total = %v, want 0", n)
		}
	}
	// Every aggregate emitted was read once: none was written twice.
	if n := harness.Sum(out, "monasca_aggregates_emitted_total", "")[""]; n != float64(len(outs)) {
		t.Errorf("monasca_aggregates_emitted_total = %v, but %d outputs were read", n, len(outs))
	}
}

// findCase returns the case of the dataset with the given id.
func findCase(t *testing.T, dir, id string) *conformancedata.Case {
	t.Helper()
	for _, c := range conformancedata.Cases(t, dir) {
		if c.ID == id {
			return &c
		}
	}
	t.Fatalf("%s: no case %s", filepath.Join(dir, "cases.json"), id)
	return nil
}

// transformInput returns the case's data, one record per line in file order.
// All records of one metric name go to one partition, in file order, so
// that records of equal second-resolution timestamps keep their order
// (case D's oldest depends on it); the names go round robin over the four
// partitions in the order they first occur.
func transformInput(t *testing.T, dir string, c *conformancedata.Case) []*kgo.Record {
	t.Helper()
	const partitions = 4
	partitionOf := map[string]int32{}
	var recs []*kgo.Record
	for _, name := range c.Data {
		for i, line := range conformancedata.Lines(t, filepath.Join(dir, name)) {
			var env struct {
				Metric struct {
					Name string `json:"name"`
				} `json:"metric"`
			}
			if err := json.Unmarshal(line, &env); err != nil {
				t.Fatalf("%s:%d: %v", name, i+1, err)
			}
			p, ok := partitionOf[env.Metric.Name]
			if !ok {
				p = int32(len(partitionOf) % partitions)
				partitionOf[env.Metric.Name] = p
			}
			recs = append(recs, &kgo.Record{Partition: p, Value: line})
		}
	}
	// The pipeline commits, and waitDrained waits for, every partition:
	// each must hold input.
	if len(partitionOf) < partitions {
		t.Fatalf("%s: %d metric names, fewer than the %d partitions", strings.Join(c.Data, ", "), len(partitionOf), partitions)
	}
	return recs
}
