package recordstore

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// The record fields, as dimension keys of a record. They are the column
// names of monasca-transform's record store, which transform specs name in
// their group-by and filter lists.
const (
	KeyEventType    = "event_type"
	KeyMetricID     = "metric_id"
	KeyTenantID     = "tenant_id"
	KeyUserID       = "user_id"
	KeyResourceUUID = "resource_uuid"
	KeyRegion       = "region"
	KeyZone         = "zone"
	KeyHost         = "host"
)

// The prefixes of the dimension keys that carry a metric's raw maps: the
// dimension "dimensions#hostname" of a record is the metric's dimension
// hostname, and likewise for meta and value_meta entries.
const (
	PrefixDimensions = "dimensions#"
	PrefixMeta       = "meta#"
	PrefixValueMeta  = "value_meta#"
)

// NotAvailable is the value of a derived record field that the metric does
// not provide.
const NotAvailable = "NA"

// fixedKeys is the number of record fields every record starts with, in the
// order of the package documentation; metricIDIndex is the position of
// metric_id among them, the one field that differs between the records of
// one metric.
const (
	fixedKeys     = 8
	metricIDIndex = 1
)

// Status says what Convert did with a metric.
type Status uint8

// The statuses of Convert. Their String values are stable snake_case labels
// for logs and Prometheus.
const (
	// Converted: the metric became one record per metric id of its spec.
	Converted Status = iota
	// Unmatched: no spec has the metric's name as its event_type.
	// monasca-transform dropped such metrics silently.
	Unmatched
	// MissingRequiredField: the metric lacks a field its spec requires,
	// or has it empty.
	MissingRequiredField
)

func (s Status) String() string {
	switch s {
	case Converted:
		return "converted"
	case Unmatched:
		return "unmatched"
	case MissingRequiredField:
		return "missing_required_field"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Outcome is the result of Convert for one metric.
type Outcome struct {
	Status Status
	// Field is, for MissingRequiredField, the first required field the
	// metric lacks, as the spec writes it ("dimensions#resource_id").
	Field string
}

// Option configures a Converter.
type Option func(*Converter)

// SecondResolution(true) truncates record timestamps to whole seconds
// (toward negative infinity). monasca-transform ordered records for its
// latest and oldest operations by event_timestamp_string, a time with
// 1-second resolution, with a stable sort: two records of the same second
// kept their arrival order even when their milliseconds said otherwise.
// Truncating the timestamps reproduces that order in the engine, whose ties
// keep arrival order too, at the cost of the milliseconds.
func SecondResolution(enabled bool) Option {
	return func(c *Converter) { c.secondResolution = enabled }
}

// Converter turns Monasca metrics into record-store records as
// monasca-transform's rdd_to_recordstore did, by pre-transform spec.
//
// A Converter keeps a buffer for the records' dimension keys, so it must not
// be used by two goroutines at once; Clone makes another for a second
// goroutine cheaply.
type Converter struct {
	specs            map[string]*compiledSpec
	secondResolution bool

	// keys holds the prefixed dimension keys of the current Convert.
	keys []byte
}

type compiledSpec struct {
	Spec
	required []requiredField
}

// source is where a required field is looked up.
type source uint8

const (
	fromCreationTime source = iota
	fromDimensions
	fromMeta
	fromValueMeta
)

type requiredField struct {
	from source
	key  string // the map key; empty for creation_time
	name string // as written in the spec
}

// NewConverter validates specs and returns a Converter for them. Every
// problem is reported, each naming its spec: an empty or repeated
// event_type, an empty metric id list, an empty or repeated metric id, and a
// required field that is none of "creation_time", "dimensions#<key>",
// "meta#<key>" and "value_meta#<key>".
//
// monasca-transform also accepted other bare names as required fields and
// evaluated them against its joined row: "metric" or "event_type" were
// always present, and any name it did not know made every metric of the
// spec fail. Neither is a useful requirement, so both are rejected here.
//
// The Converter keeps specs' strings and slices; do not modify them.
func NewConverter(specs []Spec, opts ...Option) (*Converter, error) {
	c := &Converter{specs: make(map[string]*compiledSpec, len(specs))}
	for _, o := range opts {
		o(c)
	}
	var errs []error
	for i := range specs {
		s := &specs[i]
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("pre-transform spec %d (event_type %q): %s", i+1, s.EventType, fmt.Sprintf(format, args...)))
		}
		cs := &compiledSpec{Spec: *s}
		switch {
		case s.EventType == "":
			fail("event_type is empty")
		case c.specs[s.EventType] != nil:
			fail("event_type repeats an earlier spec's; monasca-transform would have produced every record once per spec")
		default:
			c.specs[s.EventType] = cs
		}
		for j, id := range s.MetricIDs {
			switch {
			case id == "":
				fail("metric_id_list[%d] is empty", j)
			case indexOf(s.MetricIDs[:j], id) >= 0:
				fail("metric_id_list repeats %q, which would count every record twice", id)
			}
		}
		for _, name := range s.RequiredFields {
			f, ok := parseRequired(name)
			if !ok {
				fail("required field %q: want creation_time, dimensions#<key>, meta#<key> or value_meta#<key>", name)
				continue
			}
			cs.required = append(cs.required, f)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func parseRequired(name string) (requiredField, bool) {
	if name == "creation_time" {
		return requiredField{from: fromCreationTime, name: name}, true
	}
	for _, p := range [...]struct {
		prefix string
		from   source
	}{{PrefixDimensions, fromDimensions}, {PrefixMeta, fromMeta}, {PrefixValueMeta, fromValueMeta}} {
		if key, ok := strings.CutPrefix(name, p.prefix); ok && key != "" {
			return requiredField{from: p.from, key: key, name: name}, true
		}
	}
	return requiredField{}, false
}

// satisfied reports whether m has the field, non-empty: monasca-transform
// rejected a metric whose required field was null or "".
func (f *requiredField) satisfied(m *monasca.Metric) bool {
	entries := m.ValueMeta
	switch f.from {
	case fromCreationTime:
		return m.CreationTime != ""
	case fromDimensions:
		entries = m.Dimensions
	case fromMeta:
		entries = m.Meta
	}
	v, _ := monasca.Lookup(entries, f.key)
	return v != ""
}

// Clone returns a Converter with c's specs and options that shares no
// buffer with c, for use by another goroutine.
func (c *Converter) Clone() *Converter {
	return &Converter{specs: c.specs, secondResolution: c.secondResolution}
}

// Convert appends to dst the records of m, one per metric id of the spec
// whose event_type is m.Name, in the order of the spec's metric_id_list, and
// returns dst with the outcome; when the outcome is not Converted, dst is
// returned unchanged. The records are laid out as the package documentation
// describes; the derived fields follow monasca-transform:
//
//	tenant_id      dimensions tenantId, tenant_id, project_id (never meta.tenantId)
//	user_id        meta userId
//	resource_uuid  dimensions instanceId, resource_id
//	region         meta region, the spec's DefaultRegion
//	zone           meta zone, the spec's DefaultZone
//	host           dimension hostname, value_meta host
//
// each taking the first candidate that is present and not empty, and "NA"
// when there is none.
//
// m must come from a monasca.Decoder with KeepMaps set: Convert reads
// m.CreationTime, m.Meta and m.ValueMeta.
//
// Convert does not allocate once warmed up, when the caller passes the
// previous result back as dst[:0]: the records reuse the Fields arrays of
// the elements of dst between len(dst) and cap(dst). The records' strings
// alias m's strings, the specs' strings and a buffer of the Converter, so
// they are valid while m's are (see monasca.Decoder.Decode) and until the
// next Convert on this Converter; copy them to keep them longer.
func (c *Converter) Convert(m *monasca.Metric, dst []Record) ([]Record, Outcome) {
	s := c.specs[m.Name]
	if s == nil {
		return dst, Outcome{Status: Unmatched}
	}
	for i := range s.required {
		if f := &s.required[i]; !f.satisfied(m) {
			return dst, Outcome{Status: MissingRequiredField, Field: f.name}
		}
	}
	c.keys = c.keys[:0]
	dst, first := grow(dst)
	c.fill(first, s, m)
	base := len(dst) - 1
	for _, id := range s.MetricIDs[1:] {
		var r *Record
		dst, r = grow(dst)
		// dst may have moved: read the first record through it.
		f := &dst[base]
		*r = Record{MetricID: id, Fields: append(r.Fields[:0], f.Fields...), Timestamp: f.Timestamp, Value: f.Value, Region: f.Region}
		r.Fields[metricIDIndex].Value = id
	}
	return dst, Outcome{Status: Converted}
}

// fill makes rec the record of m for the first metric id of spec s, reusing
// rec.Fields. One pass over each map finds the candidates of the derived
// fields and adds the prefixed entries.
func (c *Converter) fill(rec *Record, s *compiledSpec, m *monasca.Metric) {
	ts := m.Timestamp
	if c.secondResolution {
		ts = windowagg.WindowStart(ts, 1000)
	}
	*rec = Record{MetricID: s.MetricIDs[0], Fields: rec.Fields[:0], Timestamp: ts, Value: m.Value, Region: m.Region}
	// The fixed fields come first but are known only after the passes:
	// reserve their room.
	d := append(rec.Fields, make([]monasca.Dimension, fixedKeys)...)
	var tenantID, tenantUnderscore, projectID, instanceID, resourceID, hostname string
	for _, dim := range m.Dimensions {
		switch dim.Key {
		case "tenantId":
			tenantID = dim.Value
		case "tenant_id":
			tenantUnderscore = dim.Value
		case "project_id":
			projectID = dim.Value
		case "instanceId":
			instanceID = dim.Value
		case "resource_id":
			resourceID = dim.Value
		case "hostname":
			hostname = dim.Value
		}
		d = append(d, monasca.Dimension{Key: c.prefixed(PrefixDimensions, dim.Key), Value: dim.Value})
	}
	var userID, zone string
	for _, e := range m.Meta {
		switch e.Key {
		case "userId":
			userID = e.Value
		case "zone":
			zone = e.Value
		}
		d = append(d, monasca.Dimension{Key: c.prefixed(PrefixMeta, e.Key), Value: e.Value})
	}
	var vmHost string
	for _, e := range m.ValueMeta {
		if e.Key == "host" {
			vmHost = e.Value
		}
		d = append(d, monasca.Dimension{Key: c.prefixed(PrefixValueMeta, e.Key), Value: e.Value})
	}
	fixed := d[:fixedKeys]
	fixed[0] = monasca.Dimension{Key: KeyEventType, Value: s.EventType}
	fixed[metricIDIndex] = monasca.Dimension{Key: KeyMetricID, Value: s.MetricIDs[0]}
	fixed[2] = monasca.Dimension{Key: KeyTenantID, Value: firstOf(tenantID, tenantUnderscore, projectID)}
	fixed[3] = monasca.Dimension{Key: KeyUserID, Value: firstOf(userID)}
	fixed[4] = monasca.Dimension{Key: KeyResourceUUID, Value: firstOf(instanceID, resourceID)}
	fixed[5] = monasca.Dimension{Key: KeyRegion, Value: firstOf(m.Region, s.DefaultRegion)}
	fixed[6] = monasca.Dimension{Key: KeyZone, Value: firstOf(zone, s.DefaultZone)}
	fixed[7] = monasca.Dimension{Key: KeyHost, Value: firstOf(hostname, vmHost)}
	rec.Fields = d
}

// grow extends dst by one element, reusing the element already in the
// backing array when there is room, so that its Fields array is reused.
func grow(dst []Record) ([]Record, *Record) {
	if len(dst) < cap(dst) {
		dst = dst[:len(dst)+1]
	} else {
		dst = append(dst, Record{})
	}
	return dst, &dst[len(dst)-1]
}

// prefixed returns prefix+key, built in c.keys. Strings made earlier in the
// same Convert stay valid when c.keys grows, since they keep the old array;
// they are overwritten only by a later Convert, as Convert documents.
func (c *Converter) prefixed(prefix, key string) string {
	start := len(c.keys)
	c.keys = append(c.keys, prefix...)
	c.keys = append(c.keys, key...)
	return unsafe.String(&c.keys[start], len(c.keys)-start)
}

// firstOf returns the first of values that is not empty, or NotAvailable:
// monasca-transform's chains of Spark when(x != "", x) clauses fell through
// on null and "" alike.
func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return NotAvailable
}
