package recordstore

import (
	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Record is one row of the record store: a metric as one transform spec
// sees it. Converter.Convert makes records from metrics, DecodeRow reads
// them back from JSON and EncodeRow writes them.
type Record struct {
	// MetricID is the transform spec the record feeds.
	MetricID string
	// Fields are the record fields in the order of the package
	// documentation, then the metric's raw map entries, prefixed.
	Fields []monasca.Dimension
	// Timestamp and Value are the metric's; Region is its meta.region.
	Timestamp int64
	Value     float64
	Region    string
}

// Field returns the value of the record field key and whether it is present.
func (r *Record) Field(key string) (string, bool) { return monasca.Lookup(r.Fields, key) }

// Sample is the record as the engine aggregates it (Engine.AddSample): named
// by its metric id, grouped and filtered by its fields, without a tenant,
// since transform specs aggregate across tenants.
func (r *Record) Sample() windowagg.Sample {
	return windowagg.Sample{Name: r.MetricID, Dimensions: r.Fields, Timestamp: r.Timestamp, Value: r.Value, Region: r.Region}
}

// InstanceUsage is one instance-usage row of monasca-transform, an
// aggregate of its first stage that its hourly stage aggregated further
// (see DecodeInstanceUsage).
type InstanceUsage struct {
	// MetricID is the transform spec the row belongs to.
	MetricID string
	// Fields are the row's string fields, then extra_data_map entries.
	Fields []monasca.Dimension
	// Start is the start of the row's usage period, epoch ms.
	Start int64
	// Quantity is the row's value.
	Quantity float64
	// Records summarises the records behind Quantity.
	Records windowagg.Partial
}

// Field returns the value of the row's field key and whether it is present.
func (u *InstanceUsage) Field(key string) (string, bool) { return monasca.Lookup(u.Fields, key) }

// Sample is the row as the engine aggregates it, with u.Records as its
// partial (Engine.AddPartial).
func (u *InstanceUsage) Sample() windowagg.Sample {
	return windowagg.Sample{Name: u.MetricID, Dimensions: u.Fields, Timestamp: u.Start, Value: u.Quantity}
}
