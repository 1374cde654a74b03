// Package recordstore turns Monasca metrics into monasca-transform's record
// store: the per-record fields that transform specifications group, filter
// and name by. A Record is laid out so:
//
//   - MetricID is the transform spec id (metric_id) the record fans out to;
//   - Fields hold the record fields: event_type, metric_id, tenant_id,
//     user_id, resource_uuid, region, zone and host (derived as
//     monasca-transform derived them, "NA" when absent), and the raw maps as
//     "dimensions#<key>", "meta#<key>" and "value_meta#<key>";
//   - Timestamp and Value are the metric's and Region is meta.region.
//
// The engine aggregates a record as a windowagg.Sample (Record.Sample),
// named by its metric id and without a tenant, since transform specs
// aggregate across tenants. The package also reads monasca-transform's
// instance-usage rows (DecodeInstanceUsage), which its hourly stage took.
package recordstore

// Spec is one pre-transform specification: which metrics enter the record
// store and which transform specs each of them feeds.
type Spec struct {
	// EventType selects metrics by exact name.
	EventType string
	// MetricIDs lists the transform specs each record fans out to.
	MetricIDs []string
	// RequiredFields must be present and non-empty for a metric to be
	// accepted: a top-level field ("creation_time") or "dimensions#<key>",
	// "meta#<key>" or "value_meta#<key>".
	RequiredFields []string
	// DefaultRegion and DefaultZone fill region and zone when meta has none.
	DefaultRegion string
	DefaultZone   string
}
