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

	// The fields below are filled only by a Decoder with KeepMaps set, for
	// monasca-transform's record store, whose specifications can require
	// creation_time and address any entry of meta and value_meta. They are
	// empty otherwise, so that aggregation does not pay for them.
	//
	// monasca-transform read meta and value_meta as maps of strings and
	// creation_time as a string, so a Decoder does the same: a string value
	// is taken as is, null counts as absent, and any other value (number,
	// boolean, object, array) is taken as its JSON text as written in the
	// input, which is what lets "value_meta#record_count" be required.

	// Meta holds the entries of meta, tenantId and region included, in
	// input order; keys are unique.
	Meta []Dimension
	// ValueMeta holds the entries of metric.value_meta in input order; keys
	// are unique. A value_meta that is not an object has no entries.
	ValueMeta []Dimension
	// CreationTime is the text of creation_time, "" when it is absent, null
	// or the empty string: exactly when monasca-transform's required field
	// "creation_time" is not satisfied.
	CreationTime string
}

// Dimension returns the value of the dimension key and whether it is present.
func (m *Metric) Dimension(key string) (string, bool) { return Lookup(m.Dimensions, key) }

// Lookup returns the value of key among entries and whether it is present.
// Lists are short, so a scan beats a map here.
func Lookup(entries []Dimension, key string) (string, bool) {
	for i := range entries {
		if entries[i].Key == key {
			return entries[i].Value, true
		}
	}
	return "", false
}
