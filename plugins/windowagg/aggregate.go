package windowagg

import (
	"strings"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Aggregate is one output value: one series of one rule in one closed window.
type Aggregate struct {
	Rule        string // the rule's name
	Name        string // output metric name
	Dimensions  []monasca.Dimension
	TenantID    string
	Region      string // meta.region of the first sample that reached the series
	WindowStart int64  // epoch ms, inclusive
	WindowEnd   int64  // epoch ms, exclusive
	Value       float64
	Count       int64 // number of input samples behind Value
	FirstTime   int64 // epoch ms of the earliest input sample
	LastTime    int64 // epoch ms of the latest input sample
}

// SeriesID identifies the output series across windows: name, dimensions
// sorted by key, and tenant. It is stable, so it serves as the Kafka key that
// keeps one series in one partition.
func (a *Aggregate) SeriesID() string {
	var b strings.Builder
	n := len(a.Name) + len(a.TenantID) + 2
	for _, d := range a.Dimensions {
		n += len(d.Key) + len(d.Value) + 2
	}
	b.Grow(n)
	b.WriteString(a.Name)
	for _, d := range a.Dimensions {
		b.WriteByte(',')
		b.WriteString(d.Key)
		b.WriteByte('=')
		b.WriteString(d.Value)
	}
	b.WriteByte('@')
	b.WriteString(a.TenantID)
	return b.String()
}
