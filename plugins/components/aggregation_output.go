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

// encodeAggregate renders one aggregate as a Monasca envelope (DESIGN "Output
// conventions"): the timestamp is the window start, value_meta carries the
// record count and the first and last record times as monasca-transform
// wrote them, and creation_time is the publication time in seconds.
func encodeAggregate(a *windowagg.Aggregate, origin string, now time.Time) *service.Message {
	m := monasca.Metric{
		Name:       a.Name,
		Dimensions: a.Dimensions,
		Timestamp:  a.WindowStart,
		Value:      a.Value,
		TenantID:   a.TenantID,
		Region:     a.Region,
	}
	valueMeta := []monasca.Field{
		{Key: "record_count", Value: a.Count},
		{Key: "firstrecord_timestamp_string", Value: monasca.FormatTimestamp(a.FirstTime)},
		{Key: "lastrecord_timestamp_string", Value: monasca.FormatTimestamp(a.LastTime)},
	}
	msg := service.NewMessage(monasca.AppendEnvelope(make([]byte, 0, 384), &m, valueMeta, now.Unix()))
	msg.MetaSetMut(originMetaKey, origin)
	msg.MetaSetMut(seriesIDMetaKey, a.SeriesID())
	msg.MetaSetMut(windowStartMetaKey, strconv.FormatInt(a.WindowStart, 10))
	return msg
}
