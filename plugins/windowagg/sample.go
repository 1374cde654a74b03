package windowagg

import "github.com/monasca-connect/monasca-connect/plugins/monasca"

// Sample is one input value that is not a Monasca metric, reduced to what
// the engine reads of a metric: what selects and groups it, where in time
// it goes and what it adds. A record of the record store and an
// instance-usage row of monasca-transform make theirs (package
// recordstore), so the engine knows no input format but the metric.
type Sample struct {
	// Name selects the rules whose MetricName it is: a metric's name, or
	// the transform spec (metric_id) a record or usage row belongs to.
	Name string
	// Dimensions are what rules filter and group by; keys are unique.
	Dimensions []monasca.Dimension
	// TenantID splits the series of a rule, unless it aggregates across
	// tenants; Region is reported with the series.
	TenantID string
	Region   string
	// Timestamp places the sample in its windows (epoch ms).
	Timestamp int64
	Value     float64
}

// Dimension returns the value of the dimension key and whether it is present.
func (s *Sample) Dimension(key string) (string, bool) { return monasca.Lookup(s.Dimensions, key) }

// single is the Partial of a sample that stands for one record: itself.
func single(ts int64, v float64) Partial {
	return Partial{Records: 1, FirstTime: ts, FirstValue: v, LastTime: ts, LastValue: v}
}
