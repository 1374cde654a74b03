package monascaspec

import (
	"slices"
	"strings"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// rawMapPrefixes address the raw maps of a metric in field names
// ("dimensions#hostname"); the insert step strips them from dimension keys.
var rawMapPrefixes = []string{"dimensions#", "meta#", "value_meta#"}

// usageRowFields are the string fields of an instance-usage row that the
// insert step reads directly. Every other name is looked up among the
// columns the row was grouped by (its extra_data_map).
var usageRowFields = []string{
	"tenant_id", "user_id", "resource_uuid", "geolocation", "region", "zone", "host", "project_id",
	"aggregated_metric_name", "aggregation_period", "usage_date", "usage_hour", "usage_minute",
	"firstrecord_timestamp_string", "lastrecord_timestamp_string",
}

// periodColumns are the columns an aggregation period groups by, coarsest
// first: the record-store name, the instance-usage name, and the layout of
// the value (UTC, as the reference tests ran the original).
var periodColumns = [...]struct{ record, usage, layout string }{
	{"event_date", "usage_date", "2006-01-02"},
	{"event_hour", "usage_hour", "15"},
	{"event_minute", "usage_minute", "04"},
	{"event_second", "usage_second", "05"},
}

// timestampLayout is the layout of firstrecord_timestamp_string and
// lastrecord_timestamp_string.
const timestampLayout = "2006-01-02 15:04:05"

// insertNamer names the final rows of a transform spec as monasca-transform's
// insert step named its instance-usage rows: the metric name is the row's
// aggregated_metric_name, and every entry d of dimension_list becomes a
// dimension whose key is d without its dimensions#, meta# or value_meta#
// prefix and whose value is the row's top-level field d or, when the row has
// no such field, the grouped column d, or "all".
//
// Engine rows hold only their group keys, so the namer reconstructs the
// other fields the way the original's components filled them: a fetch row
// reads "NA" outside its group and a rolled-up row "all"; project_id is the
// grouped tenant_id; the setters write the spec's name and period.
type insertNamer struct {
	dimensions []string // dimension_list
	// rolled says that the rows stand for rolled-up rows (rollup_quantity,
	// calculate_rate, the pre-hourly processor) rather than fetch rows. It
	// is decided at compile time, because calculate_rate's rows are rolled
	// up without a Rollup in the rule.
	rolled bool
	// noProjectID says that the fetch rows carry no project_id.
	noProjectID bool
	// metricName and period, when not empty, are what the setters wrote
	// into aggregated_metric_name and aggregation_period after any rollup.
	metricName, period string
	// periodLevel, when positive, is how many period columns the rows were
	// grouped by; their values derive from the time of the row's first
	// record, which lies in the row's window. Zero when the period columns
	// are group keys of the rows (the pre-hourly rules).
	periodLevel int
}

// Name implements windowagg.Namer. Dimensions are sorted by key; of two
// entries with the same key the later one wins, as it did in the original's
// dictionary. Invalid names and empty values are left to the output
// validator, which drops such metrics as the original's insert step did.
func (n *insertNamer) Name(_ *windowagg.Rule, row *windowagg.Row, _ bool) (string, []monasca.Dimension, bool) {
	dims := make([]monasca.Dimension, 0, len(n.dimensions))
	for _, d := range n.dimensions {
		key, v := stripRawPrefix(d), n.field(row, d)
		if i := slices.IndexFunc(dims, func(x monasca.Dimension) bool { return x.Key == key }); i >= 0 {
			dims[i].Value = v
			continue
		}
		dims = append(dims, monasca.Dimension{Key: key, Value: v})
	}
	slices.SortFunc(dims, func(a, b monasca.Dimension) int { return strings.Compare(a.Key, b.Key) })
	return n.field(row, "aggregated_metric_name"), dims, true
}

// field returns the value of the instance-usage field or grouped column
// name in the row.
func (n *insertNamer) field(row *windowagg.Row, name string) string {
	if v, ok := n.periodField(row, name); ok {
		return v
	}
	switch name {
	case "aggregated_metric_name":
		if n.metricName != "" {
			return n.metricName
		}
	case "aggregation_period":
		if n.period != "" {
			return n.period
		}
	case "project_id":
		switch {
		case n.rolled:
			return grouped(row, "tenant_id", "all")
		case !n.noProjectID:
			return grouped(row, "tenant_id", "NA")
		}
		// Absent from the row: the insert step looked in extra_data_map.
		return grouped(row, name, "all")
	case "firstrecord_timestamp_string":
		return time.UnixMilli(row.State.FirstTime).UTC().Format(timestampLayout)
	case "lastrecord_timestamp_string":
		return time.UnixMilli(row.State.LastTime).UTC().Format(timestampLayout)
	}
	if slices.Contains(usageRowFields, name) {
		return grouped(row, name, n.unset())
	}
	return grouped(row, name, "all")
}

// unset is the value of a top-level field outside the row's group.
func (n *insertNamer) unset() string {
	if n.rolled {
		return "all"
	}
	return ungrouped
}

// periodField returns the value of a period column derived from the row's
// time, and false for other names. Fetch rows have usage_date, usage_hour
// and usage_minute as fields and the grouped record columns (event_date,
// ...) in extra_data_map; rolled-up rows have the grouped usage columns.
func (n *insertNamer) periodField(row *windowagg.Row, name string) (string, bool) {
	if n.periodLevel == 0 {
		return "", false
	}
	for i, c := range periodColumns {
		isField := i < 3 // usage_second is not an instance-usage field
		grouped := i < n.periodLevel
		switch {
		case grouped && (name == c.usage && (n.rolled || isField) || name == c.record && !n.rolled):
			return time.UnixMilli(row.State.FirstTime).UTC().Format(c.layout), true
		case name == c.usage && isField:
			return n.unset(), true
		}
	}
	return "", false
}

// grouped returns the row's value of the group key name, or otherwise.
func grouped(row *windowagg.Row, name, otherwise string) string {
	if v, ok := row.Get(name); ok {
		return v
	}
	return otherwise
}

// stripRawPrefix returns name without a dimensions#, meta# or value_meta#
// prefix.
func stripRawPrefix(name string) string {
	for _, p := range rawMapPrefixes {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return rest
		}
	}
	return name
}
