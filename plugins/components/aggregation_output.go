package components

import (
	"strconv"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Metadata set on every aggregate message. The series id is the Kafka key in
// the shipped pipelines, so one series always lands in one partition.
const (
	seriesIDMetaKey    = "monasca_series_id"
	windowStartMetaKey = "monasca_window_start"
)

// outputConfig is how aggregates are rendered.
type outputConfig struct {
	origin   string
	tenantID string // replaces the input's tenant when set
	region   string // replaces the input's region when set
}

func parseOutputConfig(conf *service.ParsedConfig) (outputConfig, error) {
	var c outputConfig
	var err error
	if c.origin, err = conf.FieldString(maFieldOrigin); err != nil {
		return c, err
	}
	if c.tenantID, err = optionalString(conf, maFieldPublishTenantID); err != nil {
		return c, err
	}
	c.region, err = optionalString(conf, maFieldPublishRegion)
	return c, err
}

// encoder renders aggregates as Monasca envelopes (DESIGN "Output
// conventions"): the timestamp is the window start, value_meta carries the
// record count and the first and last record times as monasca-transform
// wrote them, and creation_time is the publication time in seconds.
// Aggregates the Monasca API would reject (monasca-transform's insert_data
// validation: a bad name, an empty dimension value) are dropped and counted.
type encoder struct {
	outputConfig
	emitted *service.MetricCounter
	invalid *service.MetricCounter
	log     *invalidLog
}

func newEncoder(c outputConfig, res *service.Resources) *encoder {
	e := &encoder{
		outputConfig: c,
		emitted:      res.Metrics().NewCounter("monasca_aggregates_emitted_total"),
		invalid:      res.Metrics().NewCounter("monasca_aggregates_invalid_total"),
		log:          &invalidLog{log: res.Logger(), every: 10 * time.Second, what: "aggregate the Monasca API would reject"},
	}
	exportAtZero(e.emitted, e.invalid)
	return e
}

// exportAtZero makes counters appear at 0 from the start: a counter that
// first appears at 1 shows Prometheus no increase, and an alert on its
// rate misses the first event.
func exportAtZero(counters ...*service.MetricCounter) {
	for _, c := range counters {
		c.Incr(0)
	}
}

func (e *encoder) encode(aggs []windowagg.Aggregate, now time.Time) service.MessageBatch {
	batch := make(service.MessageBatch, 0, len(aggs))
	for i := range aggs {
		a := &aggs[i]
		m := monasca.Metric{
			Name:       a.Name,
			Dimensions: a.Dimensions,
			Timestamp:  a.WindowStart,
			Value:      a.Value,
			TenantID:   a.TenantID,
			Region:     a.Region,
		}
		if e.tenantID != "" {
			m.TenantID = e.tenantID
		}
		if e.region != "" {
			m.Region = e.region
		}
		valueMeta := []monasca.Field{
			{Key: "record_count", Value: a.Count},
			{Key: "firstrecord_timestamp_string", Value: monasca.FormatTimestamp(a.FirstTime)},
			{Key: "lastrecord_timestamp_string", Value: monasca.FormatTimestamp(a.LastTime)},
		}
		if err := monasca.ValidateOutput(&m, valueMeta); err != nil {
			e.invalid.Incr(1)
			e.log.report("invalid_aggregate", err)
			continue
		}
		msg := service.NewMessage(monasca.AppendEnvelope(make([]byte, 0, 384), &m, valueMeta, now.Unix()))
		msg.MetaSetMut(originMetaKey, e.origin)
		msg.MetaSetMut(seriesIDMetaKey, seriesID(&m))
		msg.MetaSetMut(windowStartMetaKey, strconv.FormatInt(a.WindowStart, 10))
		batch = append(batch, msg)
	}
	e.emitted.Incr(int64(len(batch)))
	return batch
}

// seriesID is the output's name, dimensions (sorted by key) and tenant.
func seriesID(m *monasca.Metric) string {
	a := windowagg.Aggregate{Name: m.Name, Dimensions: m.Dimensions, TenantID: m.TenantID}
	return a.SeriesID()
}
