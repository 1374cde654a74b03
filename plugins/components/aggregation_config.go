package components

import (
	"errors"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/monascaspec"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Field names shared by the monasca_aggregate buffer and processor.
const (
	maFieldAggregationSpecs = "aggregation_specs"
	maFieldWindowSize       = "window_size"
	maFieldWindowLag        = "window_lag"
	maFieldIdleTimeout      = "idle_timeout"
	maFieldDiscovery        = "partition_discovery"
	maFieldMaxFuture        = "max_future"
	maFieldOrigin           = "origin"
)

// originMetaKey marks messages written by monasca-connect. The output writes
// it as a Kafka header, and the aggregation skips input that carries its own
// origin, so a pipeline whose output topic is its input topic never
// re-aggregates its own results.
const originMetaKey = "monasca_origin"

func aggregationFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField(maFieldAggregationSpecs).
			Description("Path of a monasca-aggregator `aggregation-specifications.yaml` file. Keys are case-insensitive and the file is validated at start-up: an unknown function, a missing field or a rollup over dimensions that are not grouped stops the pipeline with an error naming the specification and the field.").
			Example("/etc/monasca/aggregation-specifications.yaml"),
		service.NewDurationField(maFieldWindowSize).
			Description("Size of the tumbling event-time windows, from 1s to 24h. Windows are aligned to the UTC epoch: window k covers [k*size, (k+1)*size).").
			Default("10s"),
		service.NewDurationField(maFieldWindowLag).
			Description("How far the watermark must pass the end of a window before the window closes: the time allowed for out-of-order metrics. A metric for a closed window is late: it is counted and dropped.").
			Default("2s"),
		service.NewDurationField(maFieldIdleTimeout).
			Description("A partition that has delivered nothing for this long no longer holds the watermark back; when every partition has been quiet this long, all open windows close. Keep it above the time a consumer needs to rejoin its group, and above the pipeline's shutdown_timeout, or a stopping or rejoining instance closes windows before it has read their data.").
			Default("30s"),
		service.NewDurationField(maFieldDiscovery).
			Description("After a partition delivers for the first time, windows are not closed on the watermark for this long. Kafka starts serving the partitions of an assignment at slightly different moments (one partition's backlog can arrive well before another's), and a watermark computed before all of them have delivered would declare the others' data late.").
			Default("2s").
			Advanced(),
		service.NewDurationField(maFieldMaxFuture).
			Description("Metrics stamped further than this ahead of the local clock are rejected and counted, so a bad clock cannot drag the watermark forward and close windows early.").
			Default("10m").
			Advanced(),
		service.NewStringField(maFieldOrigin).
			Description("Value of the `monasca_origin` metadata key set on every aggregate. Input messages carrying the same value (for example as a Kafka header, when the output topic is also the input topic) are skipped and counted instead of being aggregated again.").
			Default("monasca-connect").
			Advanced(),
	}
}

// aggregationConfig is the parsed form of aggregationFields.
type aggregationConfig struct {
	engine windowagg.Config
	rules  []windowagg.Rule
	origin string
}

func parseAggregationConfig(conf *service.ParsedConfig, log *service.Logger) (*aggregationConfig, error) {
	var c aggregationConfig
	var err error
	if c.engine.Window, err = conf.FieldDuration(maFieldWindowSize); err != nil {
		return nil, err
	}
	if c.engine.Lag, err = conf.FieldDuration(maFieldWindowLag); err != nil {
		return nil, err
	}
	if c.engine.IdleTimeout, err = conf.FieldDuration(maFieldIdleTimeout); err != nil {
		return nil, err
	}
	if c.engine.Discovery, err = conf.FieldDuration(maFieldDiscovery); err != nil {
		return nil, err
	}
	if c.engine.MaxFuture, err = conf.FieldDuration(maFieldMaxFuture); err != nil {
		return nil, err
	}
	if err := c.engine.Validate(); err != nil {
		return nil, err
	}
	if c.origin, err = conf.FieldString(maFieldOrigin); err != nil {
		return nil, err
	}
	path, err := conf.FieldString(maFieldAggregationSpecs)
	if err != nil {
		return nil, err
	}
	rules, warnings, err := monascaspec.LoadAggregationSpecs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", maFieldAggregationSpecs, err)
	}
	for _, w := range warnings {
		log.Warnf("%s: %s", maFieldAggregationSpecs, w)
	}
	if len(rules) == 0 {
		return nil, errors.New("no aggregation rules")
	}
	c.rules = rules
	return &c, nil
}

// newEngine builds an engine for c with the given clock (nil: time.Now).
func (c *aggregationConfig) newEngine(clock func() time.Time) (*windowagg.Engine, error) {
	cfg := c.engine
	cfg.Clock = clock
	return windowagg.New(cfg, c.rules)
}
