// Package prometheus is monasca-connect's Prometheus metrics exporter: it
// registers the benthos metrics exporter "prometheus", which turns the
// counters, gauges and timers that benthos and the plugins create into
// Prometheus metrics and serves them in the Prometheus text format at
// /metrics on benthos' HTTP server. It replaces the exporter of the same name
// that came with Redpanda Connect. Registered under that name it is also the
// exporter benthos uses when a config has no metrics block.
//
// Metric names are exported as given, without a prefix (input_received,
// output_sent, monasca_metrics_received_total). Each exporter has its own
// Prometheus registry, so two streams or two tests never share a series.
//
// Glossary:
//
//   - exporter: one instance of the "prometheus" metrics component; it owns
//     a registry and the families registered in it.
//   - registry: the Prometheus registry (prometheus.Registry) that the
//     /metrics handler gathers from.
//   - family: all series of one metric name, with one kind and one ordered
//     list of label names, fixed by the first constructor registered under
//     that name; a later constructor for the same name shares the family, or
//     gets a no-op metric (and a logged warning) when its kind or label names
//     differ.
//   - label names, label values: benthos gives a metric's label names when
//     it creates the metric's constructor and the label values when it calls
//     that constructor; one set of label values is one series.
//   - series: one time series, a family's metric for one set of label values
//     (the only one when the family has no labels).
//   - counter: a value that only goes up (Prometheus counter).
//   - gauge: a value that is set (Prometheus gauge).
//   - timer: benthos' durations in nanoseconds, exported in seconds as a
//     summary or, with use_histogram_timing, as a histogram.
//   - summary: a Prometheus summary: count, sum and quantiles estimated in
//     the process; a quantile objective is a quantile with the error allowed
//     in its estimate.
//   - histogram: a Prometheus histogram: count, sum and cumulative counts of
//     observations per bucket, a bucket being an upper bound in seconds.
//   - process and Go metrics: Prometheus' standard collectors of the
//     process (CPU, memory, file descriptors) and of the Go runtime (GC,
//     goroutines), added to the registry by add_process_metrics and
//     add_go_metrics.
package prometheus
