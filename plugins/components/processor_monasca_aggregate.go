package components

import (
	"context"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func aggregateProcessorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Version("0.1.0").
		Summary("Aggregates the Monasca metrics of each batch on its own, with the same specifications and engine as the monasca_aggregate buffer. For unit tests and batch jobs; not crash-safe for streams.").
		Description(`
Every message of a batch is folded into the windows of the specifications it matches, exactly as the `+"`monasca_aggregate`"+`
buffer does, and at the end of the batch every window is closed and its aggregates are returned as one batch, in window order.
Nothing is carried from one batch to the next, so the output depends only on the batch: this is what makes it the tool for
`+"`monasca-connect test`"+` unit tests of a specifications file.

A processor cannot hold acknowledgements: the input of a batch is acknowledged once its aggregates are delivered, and a
stream whose windows span several batches must use the `+"`monasca_aggregate`"+` buffer instead.

The output messages carry the same content and metadata as the buffer's.
`).
		Fields(aggregationFields()...).
		LintRule(aggregationLintRule).
		Example("Unit-testing a specifications file", "Feed a batch of metrics and assert the aggregates with `monasca-connect test`.", `
pipeline:
  processors:
    - monasca_aggregate:
        aggregation_specs: ./aggregation-specifications.yaml
        window_size: 10s
`).
		Example("Derived metrics", "A specification with `inputs` and a Bloblang `formula` derives one value per group and window from several metrics: here memory utilisation per host, `avg(mem.used_mb) / max(mem.total_mb) * 100`. A host without one of the inputs in a window, or with a zero total, gets no value for it, and the skip is counted in `monasca_derived_skipped_total{spec,reason}`.", `
# aggregation-specifications.yaml:
#   aggregationSpecifications:
#     - name: MemoryUtilisation
#       aggregatedMetricName: mem.utilization_perc
#       groupedDimensions: [hostname]
#       inputs:
#         used: {filteredMetricName: mem.used_mb, function: avg}
#         total: {filteredMetricName: mem.total_mb, function: max}
#       formula: root = this.used / this.total * 100
pipeline:
  processors:
    - monasca_aggregate:
        aggregation_specs: ./aggregation-specifications.yaml
        window_size: 1m
`)
}

func init() {
	service.MustRegisterBatchProcessor("monasca_aggregate", aggregateProcessorSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			return newAggregateProcessorFromConfig(conf, mgr)
		})
}

type aggregateProcessor struct {
	config  *aggregationConfig
	stats   *foldStats
	derived *derivedStats
	log     *invalidLog
	encoder *encoder

	mu sync.Mutex
}

func newAggregateProcessorFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*aggregateProcessor, error) {
	ac, err := parseAggregationConfig(conf, mgr.Logger())
	if err != nil {
		return nil, err
	}
	if _, err := ac.newEngine(nil, false); err != nil {
		return nil, err
	}
	return &aggregateProcessor{
		config:  ac,
		stats:   newFoldStats(mgr.Metrics(), ac.rules),
		derived: newDerivedStats(mgr.Metrics(), mgr.Logger(), ac.rules),
		log:     newInvalidLog(mgr.Logger()),
		encoder: newEncoder(ac.output, mgr),
	}, nil
}

// ProcessBatch aggregates batch with a fresh engine and closes every window.
func (p *aggregateProcessor) ProcessBatch(_ context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	engine, err := p.config.newEngine(nil, false)
	if err != nil {
		return nil, err
	}
	f := newFolder(engine, p.config, p.stats, p.log)
	f.foldBatch(batch)
	out := append(p.encoder.encode(engine.FlushAll(nil), time.Now()), f.deadLetters...)
	p.derived.record()
	if len(out) == 0 {
		return nil, nil
	}
	return []service.MessageBatch{out}, nil
}

func (p *aggregateProcessor) Close(context.Context) error { return nil }
