package components

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/monascaspec"
	"github.com/monasca-connect/monasca-connect/plugins/recordstore"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Field names shared by the monasca_aggregate buffer and processor.
const (
	maFieldAggregationSpecs  = "aggregation_specs"
	maFieldPreTransformSpecs = "pre_transform_specs"
	maFieldTransformSpecs    = "transform_specs"
	maFieldTransformInput    = "transform_input"
	maFieldCompatibility     = "compatibility"
	maFieldPublishTenantID   = "publish_tenant_id"
	maFieldPublishRegion     = "publish_region"
	maFieldWindowSize        = "window_size"
	maFieldWindowLag         = "window_lag"
	maFieldIdleTimeout       = "idle_timeout"
	maFieldDiscovery         = "partition_discovery"
	maFieldMaxFuture         = "max_future"
	maFieldMaxPast           = "max_past"
	maFieldMaxSeries         = "max_series_per_window"
	maFieldLatePolicy        = "late_policy"
	maFieldAllowedLateness   = "allowed_lateness"
	maFieldOrigin            = "origin"
	maFieldDeadLetter        = "dead_letter"
)

// Values of transform_input.
const (
	transformInputMetrics       = "metrics"
	transformInputRecords       = "records"
	transformInputInstanceUsage = "instance_usage"
)

// Values of late_policy.
const (
	latePolicyDrop    = "drop"
	latePolicyCorrect = "correct"
)

// Values of compatibility: each reproduces one behaviour of
// monasca-transform that monasca-connect otherwise corrects.
const (
	compatSecondResolution      = "second_resolution"
	compatRateLatestIsAverage   = "rate_latest_is_average"
	compatRateDoubleRecordCount = "rate_double_record_count"
	compatUtilMissingIdleIsBusy = "util_missing_idle_is_busy"
)

// Metadata of dead letters: why a message could not be aggregated.
const (
	invalidReasonMetaKey = "monasca_invalid_reason"
	invalidErrorMetaKey  = "monasca_invalid_error"
)

// originMetaKey marks messages written by monasca-connect. The output writes
// it as a Kafka header, and the aggregation skips input that carries its own
// origin, so a pipeline whose output topic is its input topic never
// re-aggregates its own results.
const originMetaKey = "monasca_origin"

func aggregationFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField(maFieldAggregationSpecs).
			Description("Path of a monasca-aggregator `aggregation-specifications.yaml` file. Keys are case-insensitive and the file is validated at start-up: an unknown function, a missing field or a rollup over dimensions that are not grouped stops the pipeline with an error naming the specification and the field. Functions: monasca-aggregator's `sum`, `count`, `avg`, `min`, `max`, `latest`, `oldest`, `delta`, `rate`; `stddev` (population standard deviation) and `p50`, `p90`, `p95`, `p99` (percentiles within 1 %); over each input series (a metric with all its dimensions): `increase` and `counter_rate` (of a counter, resets counted from zero), `time_weighted_avg` and `time_in_state` (seconds at the value `stateValue`), each input series' last sample carried into the next window. Besides the original keys, a specification may derive its value from several metrics: `inputs` maps names to `{filteredMetricName, filteredDimensions, rejectedDimensions, function}` and `formula` is a Bloblang mapping of them (`root = this.used / this.total * 100`); a group and window lacking an input, dividing by zero or not giving a finite number gives no value and is counted in `monasca_derived_skipped_total{spec,reason}`. Set this, or `pre_transform_specs` and `transform_specs`.").
			Example("/etc/monasca/aggregation-specifications.yaml").
			Optional(),
		service.NewStringField(maFieldPreTransformSpecs).
			Description("Path of monasca-transform's `pre_transform_specs` (one JSON object per line, or a JSON array): which metrics enter the record store and which transform specs each feeds. Goes with `transform_specs`.").
			Optional(),
		service.NewStringField(maFieldTransformSpecs).
			Description("Path of monasca-transform's `transform_specs` (one JSON object per line, or a JSON array). Each spec aggregates its records per `aggregation_period` window, across tenants, and names its output by `dimension_list`, as monasca-transform's pipeline components did; every hour (or other period) is computed over all of its records in one pass.").
			Optional(),
		service.NewStringEnumField(maFieldTransformInput, transformInputMetrics, transformInputRecords, transformInputInstanceUsage).
			Description("With transform specs: `metrics` reads Monasca metrics (monasca-transform's first stage and its hourly stage in one); `records` reads record-store rows, as the `monasca_record_store` processor writes them, to replay or test records; `instance_usage` reads the instance-usage rows monasca-transform wrote to `metrics_pre_hourly` and applies each spec's `pre_hourly_operation`, to drain such a topic during a migration.").
			Default(transformInputMetrics).
			Advanced(),
		service.NewStringListField(maFieldCompatibility).
			Description("Reproduce monasca-transform behaviours that monasca-connect corrects by default (an entry may name several, comma-separated): `second_resolution` (latest and oldest order records by whole seconds, ties in arrival order), `rate_latest_is_average` (calculate_rate's latest value is the group average), `rate_double_record_count` (calculate_rate counts each record twice), `util_missing_idle_is_busy` (fetch_quantity_util counts a host without an idle reading as 100% busy instead of leaving it out).").
			Default([]any{}).
			Advanced(),
		service.NewStringField(maFieldPublishTenantID).
			Description("When set, every aggregate's `meta.tenantId` is this project instead of the input's tenant, as monasca-transform's `publish_kafka_project_id` did.").
			Optional(),
		service.NewStringField(maFieldPublishRegion).
			Description("When set, every aggregate's `meta.region` is this region, as monasca-transform's `publish_region` did.").
			Optional(),
		service.NewDurationField(maFieldWindowSize).
			Description("Size of the tumbling event-time windows of `aggregation_specs`, from 1s to 24h (transform specs take theirs from `aggregation_period`). Windows are aligned to the UTC epoch: window k covers [k*size, (k+1)*size).").
			Default("10s"),
		service.NewDurationField(maFieldWindowLag).
			Description("How far the watermark must pass the end of a window before the window closes: the time allowed for out-of-order metrics (monasca-transform: `late_metric_slack_time`). A metric for a closed window is late: it is counted and dropped.").
			Default("2s"),
		service.NewStringAnnotatedEnumField(maFieldLatePolicy, map[string]string{
			latePolicyDrop:    "A metric for a closed window is counted (`monasca_metrics_late_total`) and dropped.",
			latePolicyCorrect: "The state of a closed window is kept for `allowed_lateness`; a metric for it is folded in and the window's aggregates are emitted again, complete, replacing the earlier values in last-write-wins stores (`monasca_metrics_corrected_total`). Later metrics are dropped. Never a partial value: after a restart, windows emitted by the earlier run are no longer corrected.",
		}).
			Description("What happens to metrics for windows that have already closed.").
			Default(latePolicyDrop),
		service.NewDurationField(maFieldAllowedLateness).
			Description("With `late_policy: correct`, how long after it closes a window can still be corrected. Its state stays in memory that long.").
			Default("5m"),
		service.NewDurationField(maFieldIdleTimeout).
			Description("A partition that has delivered nothing for this long no longer holds the watermark back; when every partition has been quiet this long, all open windows close. Keep it above the time a consumer needs to rejoin its group, and above the pipeline's shutdown_timeout, or a stopping or rejoining instance closes windows before it has read their data.").
			Default("30s"),
		service.NewDurationField(maFieldDiscovery).
			Description("A fallback for inputs that do not report their partitions: after a partition delivers for the first time, windows are not closed on the watermark for this long, since Kafka starts serving the partitions of an assignment at slightly different moments and a watermark computed before all of them have delivered would declare the others' data late. The `kafka` input reports its assignment, and assigned partitions hold the watermark until they deliver (or stay quiet for `idle_timeout`), so stage `single` needs none; stage `partials` has one source per lane; stage `merge` keeps it, since its sources are stage one's partitions, which no assignment reports.").
			Default("2s").
			Advanced(),
		service.NewDurationField(maFieldMaxFuture).
			Description("Metrics stamped further than this ahead of the local clock are rejected and counted, so a bad clock cannot drag the watermark forward and close windows early.").
			Default("10m").
			Advanced(),
		service.NewDurationField(maFieldMaxPast).
			Description("Metrics stamped further than this behind the local clock are rejected and counted (`monasca_metrics_invalid_total{reason=\"timestamp_too_old\"}`): in a live stream such a timestamp is a clock error, and aggregating it would publish an aggregate for a window long gone. The default is Kafka's default retention (7 days, `log.retention.hours`): older input is normally no longer in the topic, so a backlog replayed after an outage is not cut; raise it with the input topic's `retention.ms`. It must cover the window size plus `window_lag` and `allowed_lateness`. `0s` turns the check off, for a backfill of archived metrics (the shipped pipelines' unit tests use fixed dates and set it so). Stage `merge` takes states stage one has checked, and does not check them again.").
			Default("168h").
			Advanced(),
		service.NewIntField(maFieldMaxSeries).
			Description("The most series one specification may hold in one window; a metric that would start another is rejected and counted (`monasca_metrics_invalid_total{reason=\"series_limit\"}`), so that a flood of distinct dimension values cannot exhaust memory. An open series costs about 150 bytes. 0 means no limit.").
			Default(1000000).
			Advanced(),
		service.NewBoolField(maFieldDeadLetter).
			Description("Pass every input message that cannot be aggregated (every reason of `monasca_metrics_invalid_total`: malformed, mistyped, such as a value or timestamp that is a string, non-finite, without a tenant where aggregation is per tenant, stamped too far ahead or behind, beyond the series limit, missing a required field) downstream as well, unchanged, with the metadata `monasca_invalid_reason` (the label of `monasca_metrics_invalid_total`) and `monasca_invalid_error`, so that a `switch` output can write it to a dead-letter topic. Its input is then acknowledged only once the dead letter is delivered.").
			Default(false).
			Advanced(),
		service.NewStringField(maFieldOrigin).
			Description("Value of the `monasca_origin` metadata key set on every aggregate. Input messages carrying the same value (for example as a Kafka header, when the output topic is also the input topic) are skipped and counted instead of being aggregated again.").
			Default("monasca-connect").
			Advanced(),
	}
}

// aggregationLintRule requires exactly one of the two spec languages.
// An empty path counts as absent (see optionalString). A pipeline for either
// language leaves both empty by default, so setting neither is reported at
// start-up rather than by the linter.
const aggregationLintRule = `root = match {
  this.aggregation_specs.or("") != "" && (this.pre_transform_specs.or("") != "" || this.transform_specs.or("") != "") => ["set either aggregation_specs or transform_specs, not both"],
}`

// inputKind is what the input messages are.
type inputKind int

const (
	inputMetrics          inputKind = iota // Monasca metrics for aggregation specs, aggregated as they are
	inputTransformMetrics                  // Monasca metrics for transform specs, converted to records here
	inputRecords                           // record-store rows (transform_input: records)
	inputInstanceUsage                     // monasca-transform's instance-usage rows
	inputStates                            // series states and progress of a stage-one buffer
)

// aggregationConfig is the parsed form of aggregationFields.
type aggregationConfig struct {
	engine     windowagg.Config
	rules      []windowagg.Rule
	deadLetter bool
	input      inputKind
	converter  *recordstore.Converter // for inputTransformMetrics
	output     outputConfig
}

func parseAggregationConfig(conf *service.ParsedConfig, log *service.Logger) (*aggregationConfig, error) {
	var c aggregationConfig
	var err error
	if c.engine, err = parseEngineConfig(conf); err != nil {
		return nil, err
	}
	if c.output, err = parseOutputConfig(conf); err != nil {
		return nil, err
	}
	if c.deadLetter, err = conf.FieldBool(maFieldDeadLetter); err != nil {
		return nil, err
	}
	warnings, err := c.loadSpecs(conf)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warnf("%s", w)
	}
	if len(c.rules) == 0 {
		return nil, errors.New("the specifications define no aggregation")
	}
	return &c, nil
}

// parseEngineConfig reads the engine's timing and limits.
func parseEngineConfig(conf *service.ParsedConfig) (windowagg.Config, error) {
	var c windowagg.Config
	var err error
	for _, d := range []struct {
		field string
		to    *time.Duration
	}{
		{maFieldWindowSize, &c.Window}, {maFieldWindowLag, &c.Lag}, {maFieldIdleTimeout, &c.IdleTimeout},
		{maFieldDiscovery, &c.Discovery}, {maFieldMaxFuture, &c.MaxFuture}, {maFieldMaxPast, &c.MaxPast},
	} {
		if *d.to, err = conf.FieldDuration(d.field); err != nil {
			return c, err
		}
	}
	if c.MaxSeries, err = conf.FieldInt(maFieldMaxSeries); err != nil {
		return c, err
	}
	policy, err := conf.FieldString(maFieldLatePolicy)
	if err != nil {
		return c, err
	}
	if policy == latePolicyCorrect {
		if c.AllowedLateness, err = conf.FieldDuration(maFieldAllowedLateness); err != nil {
			return c, err
		}
		if c.AllowedLateness <= 0 {
			return c, fmt.Errorf("%s must be positive with %s: %s", maFieldAllowedLateness, maFieldLatePolicy, latePolicyCorrect)
		}
	}
	return c, c.Validate()
}

// loadSpecs loads the specifications of either language into c.rules (and
// c.input and c.converter) and returns their warnings.
func (c *aggregationConfig) loadSpecs(conf *service.ParsedConfig) ([]string, error) {
	aggPath, err := optionalString(conf, maFieldAggregationSpecs)
	if err != nil {
		return nil, err
	}
	prePath, err := optionalString(conf, maFieldPreTransformSpecs)
	if err != nil {
		return nil, err
	}
	transformPath, err := optionalString(conf, maFieldTransformSpecs)
	if err != nil {
		return nil, err
	}
	switch {
	case aggPath != "":
		if prePath != "" || transformPath != "" {
			return nil, fmt.Errorf("set either %s or %s and %s, not both", maFieldAggregationSpecs, maFieldPreTransformSpecs, maFieldTransformSpecs)
		}
		var warnings []string
		if c.rules, warnings, err = monascaspec.LoadAggregationSpecs(aggPath); err != nil {
			return nil, fmt.Errorf("%s: %w", maFieldAggregationSpecs, err)
		}
		return warnings, nil
	case transformPath != "":
		return c.loadTransformSpecs(conf, prePath, transformPath)
	}
	return nil, fmt.Errorf("set %s or %s", maFieldAggregationSpecs, maFieldTransformSpecs)
}

// loadTransformSpecs reads the transform specs, and the pre-transform specs
// unless the input is instance-usage rows, which do not go through the
// record store.
func (c *aggregationConfig) loadTransformSpecs(conf *service.ParsedConfig, prePath, path string) ([]string, error) {
	input, err := conf.FieldString(maFieldTransformInput)
	if err != nil {
		return nil, err
	}
	if prePath == "" && input == transformInputMetrics {
		return nil, fmt.Errorf("%s is required with %s when %s is %s", maFieldPreTransformSpecs, maFieldTransformSpecs, maFieldTransformInput, transformInputMetrics)
	}
	compat, err := conf.FieldStringList(maFieldCompatibility)
	if err != nil {
		return nil, err
	}
	var opts monascaspec.TransformOptions
	var secondResolution bool
	// An entry may list several, comma-separated, or be empty, as an
	// environment variable in a pipeline gives them.
	for name := range compatNames(compat) {
		switch name {
		case compatSecondResolution:
			secondResolution = true
		case compatRateLatestIsAverage:
			opts.RateLatestIsAverage = true
		case compatRateDoubleRecordCount:
			opts.RateDoubleRecordCount = true
		case compatUtilMissingIdleIsBusy:
			opts.UtilMissingIdleIsBusy = true
		default:
			return nil, fmt.Errorf("%s: unknown behaviour %q; known: %s, %s, %s, %s", maFieldCompatibility, name,
				compatSecondResolution, compatRateLatestIsAverage, compatRateDoubleRecordCount, compatUtilMissingIdleIsBusy)
		}
	}
	var pre []byte
	if prePath != "" {
		if pre, err = os.ReadFile(prePath); err != nil {
			return nil, fmt.Errorf("%s: %w", maFieldPreTransformSpecs, err)
		}
	}
	transform, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", maFieldTransformSpecs, err)
	}
	specs, warnings, err := monascaspec.ParseTransformSpecs(pre, transform, prePath, path, opts)
	if err != nil {
		return warnings, err
	}
	switch input {
	case transformInputInstanceUsage:
		c.input, c.rules = inputInstanceUsage, specs.PreHourly
		return warnings, nil
	case transformInputRecords:
		c.input, c.rules = inputRecords, specs.Rules
		return warnings, nil
	}
	c.input, c.rules = inputTransformMetrics, specs.Rules
	if c.converter, err = recordstore.NewConverter(specs.PreTransform, recordstore.SecondResolution(secondResolution)); err != nil {
		return warnings, fmt.Errorf("%s: %w", maFieldPreTransformSpecs, err)
	}
	return warnings, nil
}

// compatNames yields the behaviours named in a compatibility list.
func compatNames(list []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, entry := range list {
			for name := range strings.SplitSeq(entry, ",") {
				if name = strings.TrimSpace(name); name != "" && !yield(name) {
					return
				}
			}
		}
	}
}

// optionalString returns the string set in field name, "" when it is
// absent or empty: a pipeline for either spec language, such as the shipped
// scale-out stages, leaves the other language's variables empty.
func optionalString(conf *service.ParsedConfig, name string) (string, error) {
	if !conf.Contains(name) {
		return "", nil
	}
	return conf.FieldString(name)
}

// newEngine returns an engine of c with the given clock (nil: time.Now).
// With assigned, the engine's sources are the input's partitions, which the
// input reports and the lane expects before they deliver, so the discovery
// hold (the fallback for inputs that do not) is off.
func (c *aggregationConfig) newEngine(clock func() time.Time, assigned bool) (*windowagg.Engine, error) {
	cfg := c.engine
	cfg.Clock = clock
	if assigned {
		cfg.Discovery = 0
	}
	return windowagg.New(cfg, c.rules)
}

// newMerger returns a Merger of c (stage merge) with the given clock.
func (c *aggregationConfig) newMerger(clock func() time.Time) (*windowagg.Merger, error) {
	cfg := c.engine
	cfg.Clock = clock
	return windowagg.NewMerger(cfg, c.rules)
}
