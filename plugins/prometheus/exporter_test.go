package prometheus

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	// generate and drop, for the stream tests.
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// newTestExporter builds an exporter from confYAML, with its warnings written
// to the returned buffer.
func newTestExporter(t *testing.T, confYAML string) (*exporter, *bytes.Buffer) {
	t.Helper()
	conf, err := configSpec().ParseYAML(confYAML, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	e, err := newExporter(conf, service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return e, &logs
}

// scrape returns the body of a GET /metrics on handler.
func scrape(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	rec := httptest.NewRecorder()
	handler(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, body %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// wantLines fails the test for each line missing from body.
func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	have := strings.Split(body, "\n")
	for _, l := range lines {
		if !slices.Contains(have, l) {
			t.Errorf("/metrics lacks the line %q; it is:\n%s", l, body)
		}
	}
}

// noMetrics are the exporter's fields that leave out the process and Go
// metrics, so that a scrape holds only the test's own.
const noMetrics = "add_process_metrics: false\nadd_go_metrics: false\n"

// runStream runs confYAML (with a generate input of count 5 and a drop
// output) to its end and returns its /metrics body.
func runStream(t *testing.T, confYAML string) string {
	t.Helper()
	sb := service.NewStreamBuilder()
	if err := sb.SetYAML(confYAML); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	sb.SetHTTPMux(mux)
	stream, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return scrape(t, mux.ServeHTTP)
}

const streamYAML = `
input:
  generate:
    count: 5
    interval: ""
    mapping: root = "m"
output:
  drop: {}
logger:
  level: OFF
`

func TestStreamExportsBenthosCounters(t *testing.T) {
	body := runStream(t, streamYAML+"metrics:\n  prometheus: {}\n")
	wantLines(t, body,
		`# TYPE input_received counter`,
		`input_received{label="",path="root.input"} 5`,
		`output_sent{label="",path="root.output"} 5`,
		`# TYPE output_latency_ns summary`,
	)
	// add_process_metrics and add_go_metrics default to true.
	for _, name := range []string{"\ngo_goroutines ", "\nprocess_cpu_seconds_total "} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q by default; it is:\n%s", strings.TrimSpace(name), body)
		}
	}
}

func TestStreamDefaultsToThisExporter(t *testing.T) {
	body := runStream(t, streamYAML)
	wantLines(t, body, `input_received{label="",path="root.input"} 5`)
}

func TestCounterWithoutLabels(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics)
	ctor := e.NewCounterCtor("monasca_metrics_received_total")
	c := ctor()
	c.Incr(3)
	f, ok := c.(interface{ IncrFloat64(float64) })
	if !ok {
		t.Fatalf("the counter %T has no IncrFloat64", c)
	}
	f.IncrFloat64(1.5)
	ctor().Incr(1)
	// A negative count would make Prometheus panic; it is dropped instead.
	c.Incr(-4)
	wantLines(t, scrape(t, e.HandlerFunc()),
		`# TYPE monasca_metrics_received_total counter`,
		`monasca_metrics_received_total 5.5`,
	)
	// Every call hands out the same series, resolved once: no label lookup
	// on the way to an increment.
	if ctor() != c {
		t.Error("two calls of a label-less counter's constructor returned different series")
	}
}

func TestCounterWithLabels(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics)
	ctor := e.NewCounterCtor("output_sent", "label", "path")
	ctor("kafka", "root.output").Incr(2)
	ctor("kafka", "root.output").Incr(3)
	ctor("", "root.output.fallback").Incr(1)
	wantLines(t, scrape(t, e.HandlerFunc()),
		`output_sent{label="kafka",path="root.output"} 5`,
		`output_sent{label="",path="root.output.fallback"} 1`,
	)
}

func TestGauges(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics)
	e.NewGaugeCtor("buffer_size")().Set(7)
	labelled := e.NewGaugeCtor("window_open", "tenant")
	labelled("a").Set(3)
	f, ok := labelled("a").(interface{ SetFloat64(float64) })
	if !ok {
		t.Fatalf("the gauge %T has no SetFloat64", labelled("a"))
	}
	f.SetFloat64(2.5)
	labelled("b").Set(-1)
	wantLines(t, scrape(t, e.HandlerFunc()),
		`# TYPE buffer_size gauge`,
		`buffer_size 7`,
		`window_open{tenant="a"} 2.5`,
		`window_open{tenant="b"} -1`,
	)
}

func TestTimerAsSummary(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics)
	tm := e.NewTimerCtor("processor_latency_ns", "label")("agg")
	tm.Timing(1_500_000_000)
	tm.Timing(500_000_000)
	wantLines(t, scrape(t, e.HandlerFunc()),
		`# TYPE processor_latency_ns summary`,
		`processor_latency_ns{label="agg",quantile="0.5"} 0.5`,
		`processor_latency_ns{label="agg",quantile="0.9"} 1.5`,
		`processor_latency_ns{label="agg",quantile="0.99"} 1.5`,
		`processor_latency_ns_sum{label="agg"} 2`,
		`processor_latency_ns_count{label="agg"} 2`,
	)
}

func TestTimerSummaryQuantilesConfigured(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics+"summary_quantiles_objectives: [{quantile: 0.75, error: 0.01}]\n")
	e.NewTimerCtor("latency")().Timing(1_000_000_000)
	body := scrape(t, e.HandlerFunc())
	wantLines(t, body, `latency{quantile="0.75"} 1`, `latency_count 1`)
	if strings.Contains(body, `quantile="0.5"`) {
		t.Errorf("default quantiles exported although others are configured:\n%s", body)
	}
}

func TestTimerAsHistogram(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics+"use_histogram_timing: true\nhistogram_buckets: [0.1, 1]\n")
	tm := e.NewTimerCtor("output_latency_ns")()
	tm.Timing(50_000_000)
	tm.Timing(500_000_000)
	tm.Timing(2_000_000_000)
	wantLines(t, scrape(t, e.HandlerFunc()),
		`# TYPE output_latency_ns histogram`,
		`output_latency_ns_bucket{le="0.1"} 1`,
		`output_latency_ns_bucket{le="1"} 2`,
		`output_latency_ns_bucket{le="+Inf"} 3`,
		`output_latency_ns_sum 2.55`,
		`output_latency_ns_count 3`,
	)
}

func TestHistogramDefaultBuckets(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics+"use_histogram_timing: true\n")
	e.NewTimerCtor("latency", "path")("root").Timing(3_000_000_000)
	wantLines(t, scrape(t, e.HandlerFunc()),
		`latency_bucket{path="root",le="2.5"} 0`,
		`latency_bucket{path="root",le="5"} 1`,
	)
}

func TestSameNameTwiceSharesTheSeries(t *testing.T) {
	e, logs := newTestExporter(t, noMetrics)
	e.NewCounterCtor("input_received", "label", "path")("in", "root.input").Incr(2)
	e.NewCounterCtor("input_received", "label", "path")("in", "root.input").Incr(3)
	e.NewGaugeCtor("lag")().Set(1)
	e.NewGaugeCtor("lag")().Set(4)
	e.NewTimerCtor("took")().Timing(1_000_000_000)
	e.NewTimerCtor("took")().Timing(1_000_000_000)
	body := scrape(t, e.HandlerFunc())
	wantLines(t, body,
		`input_received{label="in",path="root.input"} 5`,
		`lag 4`,
		`took_count 2`,
	)
	if n := strings.Count(body, "# TYPE input_received "); n != 1 {
		t.Errorf("input_received is exported %d times:\n%s", n, body)
	}
	if logs.Len() != 0 {
		t.Errorf("sharing a family logged: %s", logs)
	}
}

func TestConflictsAreNoOpsWithWarnings(t *testing.T) {
	e, logs := newTestExporter(t, noMetrics)
	e.NewCounterCtor("sent", "path")("root").Incr(1)

	for name, incr := range map[string]func(){
		"other label names":  func() { e.NewCounterCtor("sent", "label")("x").Incr(10) },
		"no label names":     func() { e.NewCounterCtor("sent")().Incr(10) },
		"other kind":         func() { e.NewGaugeCtor("sent", "path")("root").Set(10) },
		"wrong value count":  func() { e.NewCounterCtor("sent", "path")("root", "extra").Incr(10) },
		"reserved quantile":  func() { e.NewTimerCtor("took", "quantile")("0.5").Timing(10) },
		"empty metric name":  func() { e.NewCounterCtor("")().Incr(10) },
		"invalid label name": func() { e.NewCounterCtor("bad_label", "")("v").Incr(10) },
	} {
		logs.Reset()
		incr()
		if !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("%s: no warning logged (logs: %q)", name, logs)
		}
	}
	body := scrape(t, e.HandlerFunc())
	wantLines(t, body, `sent{path="root"} 1`)
	if strings.Contains(body, "took") || strings.Contains(body, "bad_label") {
		t.Errorf("a refused metric is exported:\n%s", body)
	}
}

func TestReservedHistogramLabel(t *testing.T) {
	e, logs := newTestExporter(t, noMetrics+"use_histogram_timing: true\n")
	e.NewTimerCtor("took", "le")("1").Timing(10)
	if !strings.Contains(logs.String(), "reserved in histograms") {
		t.Errorf("no warning for the label le (logs: %q)", logs)
	}
}

func TestExportersHaveTheirOwnRegistries(t *testing.T) {
	a, _ := newTestExporter(t, "")
	b, _ := newTestExporter(t, "")
	a.NewCounterCtor("input_received")().Incr(1)
	b.NewCounterCtor("input_received")().Incr(2)
	wantLines(t, scrape(t, a.HandlerFunc()), `input_received 1`)
	wantLines(t, scrape(t, b.HandlerFunc()), `input_received 2`)
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestProcessAndGoMetricsCanBeLeftOut(t *testing.T) {
	e, _ := newTestExporter(t, noMetrics)
	body := scrape(t, e.HandlerFunc())
	if strings.Contains(body, "go_goroutines") || strings.Contains(body, "process_cpu_seconds_total") {
		t.Errorf("process or Go metrics exported although turned off:\n%s", body)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, confYAML := range []string{
		"histogram_buckets: [1, 0.5]",
		"histogram_buckets: [1, 1]",
		"summary_quantiles_objectives: [{quantile: 1.5, error: 0.01}]",
		"summary_quantiles_objectives: [{quantile: 0.5, error: -1}]",
	} {
		conf, err := configSpec().ParseYAML(confYAML, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newExporter(conf, nil); err == nil {
			t.Errorf("%s: no error", confYAML)
		}
	}
}
