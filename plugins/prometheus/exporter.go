package prometheus

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	fieldUseHistogramTiming = "use_histogram_timing"
	fieldHistogramBuckets   = "histogram_buckets"
	fieldQuantiles          = "summary_quantiles_objectives"
	fieldQuantile           = "quantile"
	fieldQuantileError      = "error"
	fieldAddProcessMetrics  = "add_process_metrics"
	fieldAddGoMetrics       = "add_go_metrics"
)

func configSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Summary("Exports metrics in the Prometheus text format at the /metrics endpoint of the HTTP server.").
		Description("Metric names are exported as given, without a prefix. Timings are exported in seconds, as summaries or, with `use_histogram_timing`, as histograms.").
		Fields(
			service.NewBoolField(fieldUseHistogramTiming).
				Description("Export timings as histograms instead of summaries. See https://prometheus.io/docs/practices/histograms/.").
				Advanced().
				Default(false),
			service.NewFloatListField(fieldHistogramBuckets).
				Description("Upper bounds, in seconds and strictly increasing, of the timing histograms' buckets. Empty means Prometheus' default buckets (5ms to 10s). Used with `use_histogram_timing`.").
				Advanced().
				Default([]any{}),
			service.NewObjectListField(fieldQuantiles,
				service.NewFloatField(fieldQuantile).
					Description("The quantile, between 0 and 1."),
				service.NewFloatField(fieldQuantileError).
					Description("The error allowed in the quantile's estimate: with 0.01, the estimate of quantile 0.9 lies between quantiles 0.89 and 0.91."),
			).
				Description("The quantiles the timing summaries estimate. An empty list exports only their count and sum. Used without `use_histogram_timing`.").
				Advanced().
				Default([]any{
					map[string]any{fieldQuantile: 0.5, fieldQuantileError: 0.05},
					map[string]any{fieldQuantile: 0.9, fieldQuantileError: 0.01},
					map[string]any{fieldQuantile: 0.99, fieldQuantileError: 0.001},
				}),
			service.NewBoolField(fieldAddProcessMetrics).
				Description("Also export the process' metrics: CPU, memory, file descriptors.").
				Advanced().
				Default(true),
			service.NewBoolField(fieldAddGoMetrics).
				Description("Also export the Go runtime's metrics: garbage collection, goroutines, heap.").
				Advanced().
				Default(true),
		)
}

func init() {
	service.MustRegisterMetricsExporter("prometheus", configSpec(),
		func(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
			return newExporter(conf, log)
		})
}

// exporter is a service.MetricsExporter over its own Prometheus registry.
type exporter struct {
	log     *service.Logger
	reg     *prometheus.Registry
	handler http.Handler

	histogram  bool
	buckets    []float64
	objectives map[float64]float64

	mu       sync.Mutex
	families map[string]family
}

// family is what the first constructor of a metric name fixed, so that later
// constructors of that name share its series.
type family struct {
	kind       string
	labelNames []string
	// get is the family's series lookup, a func(...string) (S, error) with
	// S the kind's service.MetricsExporter* interface.
	get any
}

func newExporter(conf *service.ParsedConfig, log *service.Logger) (*exporter, error) {
	e := &exporter{
		log:        log,
		reg:        prometheus.NewRegistry(),
		objectives: map[float64]float64{},
		families:   map[string]family{},
	}
	e.handler = promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})

	var err error
	if e.histogram, err = conf.FieldBool(fieldUseHistogramTiming); err != nil {
		return nil, err
	}
	if e.buckets, err = conf.FieldFloatList(fieldHistogramBuckets); err != nil {
		return nil, err
	}
	if len(e.buckets) == 0 {
		e.buckets = prometheus.DefBuckets
	}
	// Prometheus panics on unordered buckets when it creates a series, so
	// they are refused here instead.
	for i := 1; i < len(e.buckets); i++ {
		if e.buckets[i] <= e.buckets[i-1] {
			return nil, fmt.Errorf("%s: %v is not strictly increasing", fieldHistogramBuckets, e.buckets)
		}
	}

	quantiles, err := conf.FieldObjectList(fieldQuantiles)
	if err != nil {
		return nil, err
	}
	for _, qc := range quantiles {
		q, err := qc.FieldFloat(fieldQuantile)
		if err != nil {
			return nil, err
		}
		qErr, err := qc.FieldFloat(fieldQuantileError)
		if err != nil {
			return nil, err
		}
		if q < 0 || q > 1 || qErr < 0 || qErr > 1 {
			return nil, fmt.Errorf("%s: quantile %v with error %v: both must be between 0 and 1", fieldQuantiles, q, qErr)
		}
		e.objectives[q] = qErr
	}

	if add, err := conf.FieldBool(fieldAddProcessMetrics); err != nil {
		return nil, err
	} else if add {
		e.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if add, err := conf.FieldBool(fieldAddGoMetrics); err != nil {
		return nil, err
	} else if add {
		e.reg.MustRegister(collectors.NewGoCollector())
	}
	return e, nil
}

// HandlerFunc serves the registry; benthos mounts it at /metrics.
func (e *exporter) HandlerFunc() http.HandlerFunc {
	return e.handler.ServeHTTP
}

// Close does nothing: the registry holds no resources beyond memory, and
// keeping it lets /metrics still be read after the stream stops.
func (e *exporter) Close(context.Context) error {
	return nil
}

func (e *exporter) NewCounterCtor(name string, labelNames ...string) service.MetricsExporterCounterCtor {
	return newCtor(e, "counter", name, labelNames, service.MetricsExporterCounter(noop{}),
		func() (prometheus.Collector, func(...string) (service.MetricsExporterCounter, error), error) {
			vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: "Counter " + name + "."}, labelNames)
			return vec, series(labelNames, vec.GetMetricWithLabelValues, func(c prometheus.Counter) service.MetricsExporterCounter {
				return counter{c}
			}), nil
		})
}

func (e *exporter) NewGaugeCtor(name string, labelNames ...string) service.MetricsExporterGaugeCtor {
	return newCtor(e, "gauge", name, labelNames, service.MetricsExporterGauge(noop{}),
		func() (prometheus.Collector, func(...string) (service.MetricsExporterGauge, error), error) {
			vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: "Gauge " + name + "."}, labelNames)
			return vec, series(labelNames, vec.GetMetricWithLabelValues, func(g prometheus.Gauge) service.MetricsExporterGauge {
				return gauge{g}
			}), nil
		})
}

func (e *exporter) NewTimerCtor(name string, labelNames ...string) service.MetricsExporterTimerCtor {
	return newCtor(e, "timer", name, labelNames, service.MetricsExporterTimer(noop{}),
		func() (prometheus.Collector, func(...string) (service.MetricsExporterTimer, error), error) {
			help := "Timer " + name + ", in seconds."
			// Prometheus reserves a label name for each type and panics
			// when a metric uses it.
			var vec interface {
				prometheus.Collector
				GetMetricWithLabelValues(...string) (prometheus.Observer, error)
			}
			if e.histogram {
				if slices.Contains(labelNames, "le") {
					return nil, nil, fmt.Errorf(`label name "le" is reserved in histograms`)
				}
				vec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: e.buckets}, labelNames)
			} else {
				if slices.Contains(labelNames, "quantile") {
					return nil, nil, fmt.Errorf(`label name "quantile" is reserved in summaries`)
				}
				vec = prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: name, Help: help, Objectives: e.objectives}, labelNames)
			}
			return vec, series(labelNames, vec.GetMetricWithLabelValues, func(o prometheus.Observer) service.MetricsExporterTimer {
				return timer{o}
			}), nil
		})
}

// newCtor returns the constructor of name's series: the family's series
// lookup, built by build and registered the first time name is seen, shared
// afterwards. A name the registry refuses, or already taken by another kind
// or other label names, gets a constructor of no-op metrics and a warning,
// since a metric's mistake must not stop the pipeline.
func newCtor[S any](e *exporter, kind, name string, labelNames []string, none S,
	build func() (prometheus.Collector, func(...string) (S, error), error),
) func(...string) S {
	get, err := e.family(kind, name, labelNames, func() (prometheus.Collector, any, error) {
		return build()
	})
	if err != nil {
		e.log.Warnf("Metric %s %q with labels %v is not exported: %v", kind, name, labelNames, err)
		return func(...string) S { return none }
	}
	lookup := get.(func(...string) (S, error))
	return func(labelValues ...string) S {
		s, err := lookup(labelValues...)
		if err != nil {
			e.log.Warnf("Metric %s %q is not exported for label values %v: %v", kind, name, labelValues, err)
			return none
		}
		return s
	}
}

// family returns the series lookup of name, building and registering the
// family when name is new.
func (e *exporter) family(kind, name string, labelNames []string, build func() (prometheus.Collector, any, error)) (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.families[name]; ok {
		if f.kind != kind || !slices.Equal(f.labelNames, labelNames) {
			return nil, fmt.Errorf("the name is taken by a %s with labels %v", f.kind, f.labelNames)
		}
		return f.get, nil
	}
	collector, get, err := build()
	if err != nil {
		return nil, err
	}
	if err := e.reg.Register(collector); err != nil {
		return nil, err
	}
	e.families[name] = family{kind: kind, labelNames: slices.Clone(labelNames), get: get}
	return get, nil
}

// series returns the series lookup of a family vector. Without labels the
// one series is resolved once, so that an increment is a plain Prometheus
// metric's, with no label lookup; with labels each call looks its values up,
// with an error rather than WithLabelValues' panic on a wrong count.
func series[M, S any](labelNames []string, get func(...string) (M, error), wrap func(M) S) func(...string) (S, error) {
	if len(labelNames) == 0 {
		m, err := get()
		s := wrap(m)
		return func(...string) (S, error) { return s, err }
	}
	return func(labelValues ...string) (S, error) {
		m, err := get(labelValues...)
		return wrap(m), err
	}
}

type counter struct{ c prometheus.Counter }

// Incr drops negative counts: Prometheus panics on them, and a counter only
// goes up.
func (c counter) Incr(n int64) {
	if n > 0 {
		c.c.Add(float64(n))
	}
}

func (c counter) IncrFloat64(n float64) {
	if n > 0 {
		c.c.Add(n)
	}
}

type gauge struct{ g prometheus.Gauge }

func (g gauge) Set(v int64)          { g.g.Set(float64(v)) }
func (g gauge) SetFloat64(v float64) { g.g.Set(v) }

type timer struct{ o prometheus.Observer }

// Timing observes benthos' nanoseconds as seconds, Prometheus' base unit.
func (t timer) Timing(ns int64) { t.o.Observe(float64(ns) / 1e9) }

// noop stands in for a metric that could not be registered.
type noop struct{}

func (noop) Incr(int64)   {}
func (noop) Set(int64)    {}
func (noop) Timing(int64) {}
