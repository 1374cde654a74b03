package components

import (
	"context"
	"fmt"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/monascaspec"
	"github.com/monasca-connect/monasca-connect/plugins/recordstore"
)

const (
	mrsFieldPreTransformSpecs = "pre_transform_specs"
	mrsFieldSecondResolution  = "second_resolution"
)

// reasonMissingRequiredField labels metrics dropped for lacking a field
// their pre-transform spec requires; the other reasons come from the
// decoder.
const reasonMissingRequiredField = "missing_required_field"

func recordStoreProcessorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Version("0.1.0").
		Summary("Converts Monasca metrics into monasca-transform's record store, one JSON message per record, to show what transform specifications see.").
		Description(`
Each input message is a Monasca metric envelope. It is joined with the `+"`pre_transform_specs`"+` on
`+"`metric.name == event_type`"+`, checked against the spec's `+"`required_raw_fields_list`"+` (each field present and not
empty: `+"`creation_time`"+`, `+"`dimensions#<key>`"+`, `+"`meta#<key>`"+` or `+"`value_meta#<key>`"+`), and turned into one record per
entry of the spec's `+"`metric_id_list`"+`, exactly as monasca-transform built its record store. Each record becomes one
message, a JSON object with the record-store columns:

- `+"`event_timestamp_unix`"+` (seconds, fractional), `+"`event_timestamp_string`"+` (`+"`YYYY-MM-DD HH:MM:SS`"+`), `+"`event_date`"+`,
  `+"`event_hour`"+`, `+"`event_minute`"+`, `+"`event_second`"+`, all UTC;
- `+"`event_type`"+` and `+"`event_quantity_name`"+` (the metric name), `+"`event_quantity`"+` (the value);
- `+"`tenant_id`"+` (dimension tenantId, tenant_id or project_id; never meta.tenantId), `+"`user_id`"+` (meta.userId),
  `+"`resource_uuid`"+` (dimension instanceId or resource_id), `+"`region`"+` and `+"`zone`"+` (meta, then the spec's
  `+"`set_default_region_to`"+`/`+"`set_default_zone_to`"+`), `+"`host`"+` (dimension hostname, then value_meta.host), each the
  first candidate present and not empty, else `+"`NA`"+`;
- `+"`metric_group`"+` and `+"`metric_id`"+` (the transform spec the record feeds);
- `+"`dimensions`"+`, `+"`meta`"+` and `+"`value_meta`"+`: the metric's maps, as the `+"`dimensions#<key>`"+` notation of transform specs
  reads them (meta and value_meta values that are not strings appear as their JSON text).

The output messages keep the input's metadata. Metrics that no spec selects are dropped silently, as monasca-transform
dropped them. Invalid envelopes (as the `+"`monasca_aggregate`"+` buffer reads them: a value or timestamp that is a string,
for one, is invalid) and metrics lacking a required field are dropped too, counted in
`+"`monasca_records_skipped_total{reason}`"+` and logged at a limited rate.
`).
		Fields(
			service.NewStringField(mrsFieldPreTransformSpecs).
				Description("Path of a monasca-transform `pre_transform_specs` file: one JSON object per line, as the original's files and database rows hold them, or a JSON array of such objects. It is validated at start-up: an empty or repeated `event_type`, an empty `metric_id_list` or a required field of another form stops the pipeline with an error naming the specification.").
				Example("/etc/monasca/pre_transform_specs.json"),
			service.NewBoolField(mrsFieldSecondResolution).
				Description("Truncate record times to whole seconds. monasca-transform ordered records by a time string of 1-second resolution for its `latest` and `oldest` operations, so records of the same second kept their arrival order; truncating reproduces that order at the cost of the milliseconds.").
				Default(false).
				Advanced(),
		).
		Example("Inspecting the record store", "Print the records that a metric stream produces for the shipped specifications.", `
input:
  stdin: {}
pipeline:
  processors:
    - monasca_record_store:
        pre_transform_specs: ./pre_transform_specs.json
output:
  stdout: {}
`)
}

func init() {
	service.MustRegisterProcessor("monasca_record_store", recordStoreProcessorSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Processor, error) {
			return newRecordStoreProcessorFromConfig(conf, mgr)
		})
}

type recordStoreProcessor struct {
	skipped *service.MetricCounter
	log     *invalidLog
	// workers hold the per-call state: processors may be called from
	// several goroutines, and Decoder and Converter are not safe for that.
	workers sync.Pool
}

type recordStoreWorker struct {
	dec     monasca.Decoder
	metric  monasca.Metric
	records []recordstore.Record
	conv    *recordstore.Converter
}

func newRecordStoreProcessorFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*recordStoreProcessor, error) {
	path, err := conf.FieldString(mrsFieldPreTransformSpecs)
	if err != nil {
		return nil, err
	}
	secondResolution, err := conf.FieldBool(mrsFieldSecondResolution)
	if err != nil {
		return nil, err
	}
	specs, warnings, err := monascaspec.LoadPreTransformSpecs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mrsFieldPreTransformSpecs, err)
	}
	for _, w := range warnings {
		mgr.Logger().Warnf("%s", w)
	}
	conv, err := recordstore.NewConverter(specs, recordstore.SecondResolution(secondResolution))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", mrsFieldPreTransformSpecs, path, err)
	}
	p := &recordStoreProcessor{
		skipped: mgr.Metrics().NewCounter("monasca_records_skipped_total", "reason"),
		log:     newInvalidLog(mgr.Logger()),
	}
	p.workers.New = func() any {
		return &recordStoreWorker{dec: monasca.Decoder{KeepMaps: true}, conv: conv.Clone()}
	}
	return p, nil
}

// Process turns one envelope into its records, or drops it.
func (p *recordStoreProcessor) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	w := p.workers.Get().(*recordStoreWorker)
	defer p.workers.Put(w)
	raw, err := msg.AsBytes()
	if err == nil {
		err = w.dec.Decode(raw, &w.metric)
	}
	if err != nil {
		p.skip(string(monasca.ReasonOf(err)), err)
		return nil, nil
	}
	var out recordstore.Outcome
	w.records, out = w.conv.Convert(&w.metric, w.records[:0])
	switch out.Status {
	case recordstore.Unmatched:
		return nil, nil
	case recordstore.MissingRequiredField:
		p.skip(reasonMissingRequiredField, fmt.Errorf("metric %q lacks required field %q of its pre-transform spec, or has it empty", w.metric.Name, out.Field))
		return nil, nil
	}
	batch := make(service.MessageBatch, len(w.records))
	for i := range w.records {
		b, err := recordstore.EncodeRow(&w.records[i])
		if err != nil {
			return nil, err
		}
		batch[i] = msg.Copy()
		batch[i].SetBytes(b)
	}
	return batch, nil
}

func (p *recordStoreProcessor) skip(reason string, err error) {
	p.skipped.Incr(1, reason)
	p.log.report(reason, err)
}

func (p *recordStoreProcessor) Close(context.Context) error { return nil }
