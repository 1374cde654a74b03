// Package monasca holds the Monasca metric envelope: the message every Monasca
// agent, API and persister exchanges on Kafka. It decodes envelopes without
// allocating, encodes them, and applies the Monasca API's validation rules.
package monasca

// Dimension is one key/value pair of a metric's dimensions.
type Dimension struct {
	Key   string
	Value string
}

// Metric is one decoded Monasca metric envelope, reduced to the fields that
// aggregation reads. Strings produced by a Decoder alias the decoded bytes
// (see Decoder.Decode); copy them before keeping them.
type Metric struct {
	Name       string
	Dimensions []Dimension // in input order; keys are unique
	Timestamp  int64       // event time, epoch milliseconds (fractions truncated)
	Value      float64     // always finite
	TenantID   string      // meta.tenantId; "" when absent
	Region     string      // meta.region; "" when absent
}

// Dimension returns the value of the dimension key and whether it is present.
func (m *Metric) Dimension(key string) (string, bool) {
	for i := range m.Dimensions {
		if m.Dimensions[i].Key == key {
			return m.Dimensions[i].Value, true
		}
	}
	return "", false
}
