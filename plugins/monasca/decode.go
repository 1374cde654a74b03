package monasca

import (
	"fmt"
	"strconv"
	"unsafe"
)

// DefaultMaxDimensions is the dimension limit of a Decoder whose
// MaxDimensions is zero. Monasca itself sets none; agents send about ten at
// most, and a bound keeps group keys and the duplicate-key check small.
const DefaultMaxDimensions = 50

// maxNameLength and maxDimensionLength are Monasca's limits on metric names
// and dimension keys and values. The Decoder counts bytes, which is cheap
// and never looser than the API's count of characters.
const (
	maxNameLength      = 255
	maxDimensionLength = 255
)

// MaxMapEntries is the largest number of distinct keys that meta or
// metric.value_meta may have when a Decoder keeps them (Decoder.KeepMaps).
// The Monasca API allows 16 value_meta entries, and meta normally holds
// tenantId and region; the bound keeps hostile input from making the
// duplicate-key check quadratic.
const MaxMapEntries = 256

// Decoder decodes Monasca metric envelopes,
//
//	{"metric":{"name":..,"dimensions":{..},"timestamp":..,"value":..,"value_meta":..},
//	 "meta":{"tenantId":..,"region":..,..},"creation_time":..}
//
// with a single-pass scanner specialised for this shape, which does not
// allocate once the Decoder and the Metric it fills have warmed up. Members
// may come in any order; unknown members are skipped whatever their value.
//
// A Decoder is meant to be reused and must not be used by two goroutines at
// once. Its zero value is ready to use.
type Decoder struct {
	// MaxDimensions is the largest number of distinct dimension keys a
	// metric may have; 0 means DefaultMaxDimensions.
	MaxDimensions int
	// KeepMaps makes Decode also fill Metric.Meta, Metric.ValueMeta and
	// Metric.CreationTime, which monasca-transform's record store reads.
	// Without it they stay empty and cost nothing.
	KeepMaps bool
	// RequireTenant makes a metric without a tenant invalid
	// (ReasonMissingTenant): meta, or its tenantId, absent, null or "".
	// Set it where aggregation is per tenant, as with monasca-aggregator's
	// specifications: the Monasca API stamps every metric with its
	// tenant, so one without comes from a broken producer, and its
	// aggregates would be published under the empty tenant.
	RequireTenant bool

	in      string // the input being decoded, aliasing the caller's bytes
	scratch []byte // unescaped strings of the current input
	field   string // the field being decoded, for errors
}

// Decode decodes the envelope in b into m, or returns a *DecodeError.
//
// Strings in m alias b, or the Decoder's scratch buffer when they contained
// escapes. They are therefore valid only while b is unchanged and until the
// next call to Decode on the same Decoder; copy them (strings.Clone) to keep
// them longer. m.Dimensions reuses its backing array, so decoding into the
// same Metric each time avoids allocating; copy it before reusing m, too.
// After an error, m holds an unspecified mix of old and new values.
//
// Decode rejects what the Monasca API would reject, and is lenient only
// where Monasca's own producers disagree with each other:
//   - timestamp and value must be JSON numbers. A string is of the wrong
//     type (ReasonWrongType) even when it holds a number: the API never
//     writes one, and monasca-aggregator, whose fields were float64,
//     rejected it; only monasca-transform's Spark schema read them as
//     strings, an accident of its DataFrame schema, not a format anyone
//     produced. (monasca-transform's record-store and instance-usage rows
//     are not envelopes: package recordstore reads them, with the leniency
//     their data needs.) Timestamp fractions are truncated toward negative
//     infinity.
//   - Python's NaN, Infinity and -Infinity tokens are read anywhere; as the
//     value or timestamp they are rejected as non-finite.
//   - With RequireTenant, meta.tenantId must be a non-empty string
//     (ReasonMissingTenant). A tenantId that is not a string or null is of
//     the wrong type with or without it.
//   - value_meta, creation_time and unknown members may hold any value, and
//     meta members other than tenantId and region too.
//   - null stands for an absent member, except as a dimension value, which
//     must be a string. A repeated member replaces the earlier one, as in
//     encoding/json with a map; a repeated dimension key keeps its first
//     position and its last value.
//   - Strings must be valid UTF-8 and may not escape unpaired surrogates.
//
// With KeepMaps, meta and metric.value_meta may each have at most
// MaxMapEntries distinct keys (ReasonTooManyMapEntries); a repeated key keeps
// its first position and its last value, and a repeated key whose last value
// is null is absent.
//
// When the input has several faults, a fault of syntax or encoding
// (malformed_json, invalid_utf8) is reported in preference to any other,
// then the first in input order, and only then a missing field or tenant,
// which are known only at the end of the envelope.
func (d *Decoder) Decode(b []byte, m *Metric) error {
	d.in = unsafe.String(unsafe.SliceData(b), len(b))
	d.scratch = d.scratch[:0]
	err := d.envelope(m)
	if r := ReasonOf(err); r != "" && r != ReasonMalformedJSON && r != ReasonInvalidUTF8 {
		// The envelope was abandoned at its first fault, but the input may
		// still turn out not to be JSON, as when a truncated message ends
		// in a number that is out of range, or a value of the wrong type
		// is itself malformed. Not being JSON is the more fundamental
		// fault, so report it instead.
		if lexErr := d.lexical(); lexErr != nil {
			err = lexErr
		}
	}
	// Keep the Decoder from holding on to b.
	d.in = ""
	return err
}

// lexical checks the whole input for faults of syntax and encoding only.
func (d *Decoder) lexical() error {
	d.field = ""
	i, err := d.skip(d.ws(0), 0)
	if err == nil {
		err = d.end(i)
	}
	return err
}

// Fields whose presence Decode checks at the end of the envelope.
const (
	seenMetric = 1 << iota
	seenName
	seenTimestamp
	seenValue
)

// envelope decodes the top-level object. Each object of the envelope is
// walked by a loop of its own (open, key, a switch on the key) rather than
// by one walker taking a callback per member: this is the hot path, and the
// callback would cost an indirect call per member.
func (d *Decoder) envelope(m *Metric) error {
	*m = Metric{Dimensions: m.Dimensions[:0], Meta: m.Meta[:0], ValueMeta: m.ValueMeta[:0]}
	d.field = ""
	s := d.in
	i := d.ws(0)
	if i >= len(s) {
		return d.fail(ReasonMalformedJSON, i, "empty input")
	}
	if s[i] != '{' {
		return d.wrongType(i, "an object")
	}
	seen := 0
	var err error
	var more bool
	for i, more = d.open(i); more; {
		var k string
		if k, i, err = d.key(i); err != nil {
			return err
		}
		switch k {
		case "metric":
			i, err = d.metric(i, m, &seen)
		case "meta":
			i, err = d.meta(i, m)
		default:
			// Tested here rather than as a case of its own so that
			// without KeepMaps the switch stays as short as before.
			if d.KeepMaps && k == "creation_time" {
				d.field = "creation_time"
				m.CreationTime, _, i, err = d.entry(i, 1)
			} else {
				i, err = d.skip(i, 1)
			}
		}
		if err != nil {
			return err
		}
		d.field = ""
		if i, more, err = d.next(i); err != nil {
			return err
		}
	}
	if err := d.end(i); err != nil {
		return err
	}
	missing := ""
	switch {
	case seen&seenMetric == 0:
		missing = "metric"
	case seen&seenName == 0:
		missing = "metric.name"
	case seen&seenTimestamp == 0:
		missing = "metric.timestamp"
	case seen&seenValue == 0:
		missing = "metric.value"
	case d.RequireTenant && m.TenantID == "":
		d.field = "meta.tenantId"
		return d.fail(ReasonMissingTenant, len(s), "missing, null or empty")
	default:
		return nil
	}
	d.field = missing
	return d.fail(ReasonMissingField, len(s), "missing, null or empty")
}

// end checks that only whitespace follows the top-level value, which ends
// just before i.
func (d *Decoder) end(i int) error {
	if i = d.ws(i); i < len(d.in) {
		return d.fail(ReasonMalformedJSON, i, "data after the top-level value")
	}
	return nil
}

// metric decodes the value of the envelope's "metric" member. A repeated
// "metric" member replaces the earlier one entirely.
func (d *Decoder) metric(i int, m *Metric, seen *int) (int, error) {
	m.Name, m.Dimensions, m.ValueMeta, m.Timestamp, m.Value = "", m.Dimensions[:0], m.ValueMeta[:0], 0, 0
	*seen = 0
	d.field = "metric"
	switch d.at(i) {
	case 'n':
		return d.literal(i, "null")
	case '{':
	default:
		return i, d.wrongType(i, "an object")
	}
	*seen = seenMetric
	var err error
	var more bool
	for i, more = d.open(i); more; {
		var k string
		if k, i, err = d.key(i); err != nil {
			return i, err
		}
		switch k {
		case "name":
			d.field = "metric.name"
			i, err = d.name(i, m, seen)
		case "dimensions":
			d.field = "metric.dimensions"
			i, err = d.dimensions(i, m)
		case "timestamp":
			d.field = "metric.timestamp"
			i, err = d.timestamp(i, m, seen)
		case "value":
			d.field = "metric.value"
			i, err = d.value(i, m, seen)
		default:
			// value_meta lands here unless KeepMaps is set: aggregation
			// does not read it, and its producers disagree on its value
			// types.
			if d.KeepMaps && k == "value_meta" {
				d.field = "metric.value_meta"
				i, err = d.valueMeta(i, m)
			} else {
				d.field = "metric"
				i, err = d.skip(i, 2)
			}
		}
		if err != nil {
			return i, err
		}
		d.field = "metric"
		if i, more, err = d.next(i); err != nil {
			return i, err
		}
	}
	return i, nil
}

func (d *Decoder) name(i int, m *Metric, seen *int) (int, error) {
	v, isNull, end, err := d.stringOrNull(i)
	switch {
	case err != nil:
		return end, err
	case len(v) > maxNameLength:
		return end, d.fail(ReasonNameTooLong, i, "%d bytes, limit %d", len(v), maxNameLength)
	case isNull || v == "":
		*seen &^= seenName
	default:
		*seen |= seenName
	}
	m.Name = v
	return end, nil
}

// dimensions decodes the value of "dimensions": an object of strings, or
// null for none. A repeated "dimensions" member replaces the earlier one.
func (d *Decoder) dimensions(i int, m *Metric) (int, error) {
	m.Dimensions = m.Dimensions[:0]
	switch d.at(i) {
	case 'n':
		return d.literal(i, "null")
	case '{':
	default:
		return i, d.wrongType(i, "an object")
	}
	s := d.in
	limit := d.MaxDimensions
	if limit <= 0 {
		limit = DefaultMaxDimensions
	}
	var err error
	var more bool
	for i, more = d.open(i); more; {
		var k, v string
		if k, i, err = d.key(i); err != nil {
			return i, err
		}
		if i >= len(s) || s[i] != '"' {
			return i, d.fail(ReasonWrongType, i, "value of %.64q is %s, want a string", k, kind(d.at(i)))
		}
		start := i
		if v, i, err = d.str(i); err != nil {
			return i, err
		}
		if len(k) > maxDimensionLength {
			return i, d.fail(ReasonDimensionTooLong, start, "key %.64q… is %d bytes, limit %d", k, len(k), maxDimensionLength)
		}
		if len(v) > maxDimensionLength {
			return i, d.fail(ReasonDimensionTooLong, start, "value of %.64q is %d bytes, limit %d", k, len(v), maxDimensionLength)
		}
		if !setDimension(m, k, v, limit) {
			return i, d.fail(ReasonTooManyDimensions, start, "more than %d dimensions", limit)
		}
		if i, more, err = d.next(i); err != nil {
			return i, err
		}
	}
	return i, nil
}

// setDimension sets dimension k to v, keeping the position of an existing
// k. It reports false when k is new and m already has limit dimensions.
func setDimension(m *Metric, k, v string, limit int) bool {
	for j := range m.Dimensions {
		if m.Dimensions[j].Key == k {
			m.Dimensions[j].Value = v
			return true
		}
	}
	if len(m.Dimensions) >= limit {
		return false
	}
	m.Dimensions = append(m.Dimensions, Dimension{Key: k, Value: v})
	return true
}

func (d *Decoder) timestamp(i int, m *Metric, seen *int) (int, error) {
	text, k, end, err := d.numeric(i)
	switch {
	case err != nil:
		return end, err
	case k == numNull:
		*seen &^= seenTimestamp
		return end, nil
	case k == numNonFinite:
		return end, d.fail(ReasonTimestampOutOfRange, i, "not finite")
	}
	ts, ok := timestampMillis(text)
	if !ok {
		return end, d.fail(ReasonTimestampOutOfRange, i, "%.40s is outside %d..%d ms (1973..9999)", text, minTimestamp, maxTimestamp)
	}
	m.Timestamp = ts
	*seen |= seenTimestamp
	return end, nil
}

func (d *Decoder) value(i int, m *Metric, seen *int) (int, error) {
	text, k, end, err := d.numeric(i)
	switch {
	case err != nil:
		return end, err
	case k == numNull:
		*seen &^= seenValue
		return end, nil
	case k == numNonFinite:
		return end, d.fail(ReasonNonFiniteValue, i, "not finite")
	}
	// text is a valid JSON number, so the only possible error is
	// overflow; underflow rounds to zero without an error.
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return end, d.fail(ReasonNonFiniteValue, i, "%.40s overflows float64", text)
	}
	m.Value = v
	*seen |= seenValue
	return end, nil
}

// numKind classifies what numeric read.
type numKind uint8

const (
	numFinite    numKind = iota // text holds a JSON number
	numNonFinite                // a NaN or infinity token
	numNull                     // JSON null
)

// numeric reads a value that must hold a number: a JSON number, Python's
// NaN or infinity tokens, or null. For a finite number it returns its text,
// which aliases the input. A string is of the wrong type even when it holds
// a number (see Decode).
func (d *Decoder) numeric(i int) (text string, k numKind, end int, err error) {
	s := d.in
	switch d.at(i) {
	case 'n':
		end, err = d.literal(i, "null")
		return "", numNull, end, err
	case '"':
		// Read the string for the message, and so that a fault inside
		// it is reported as such.
		if text, end, err = d.str(i); err != nil {
			return "", 0, end, err
		}
		return "", 0, end, d.fail(ReasonWrongType, i, "value is a string (%.40q), want a JSON number", text)
	case '{', '[', 't', 'f':
		return "", 0, i, d.wrongType(i, "a number")
	}
	if end = scanNumber(s, i); end >= 0 {
		return s[i:end], numFinite, end, nil
	}
	if end = scanNonFinite(s, i); end >= 0 {
		return "", numNonFinite, end, nil
	}
	return "", 0, i, d.fail(ReasonMalformedJSON, i, "invalid value")
}

// meta decodes the value of the envelope's "meta" member, of which only
// tenantId and region are read unless KeepMaps is set. A repeated "meta"
// member replaces the earlier one.
func (d *Decoder) meta(i int, m *Metric) (int, error) {
	m.TenantID, m.Region, m.Meta = "", "", m.Meta[:0]
	d.field = "meta"
	switch d.at(i) {
	case 'n':
		return d.literal(i, "null")
	case '{':
	default:
		return i, d.wrongType(i, "an object")
	}
	var err error
	var more bool
	for i, more = d.open(i); more; {
		var k string
		if k, i, err = d.key(i); err != nil {
			return i, err
		}
		start := i
		var isNull bool
		switch k {
		case "tenantId":
			d.field = "meta.tenantId"
			m.TenantID, isNull, i, err = d.stringOrNull(i)
			if err == nil && d.KeepMaps {
				err = d.keep(&m.Meta, k, m.TenantID, !isNull, start)
			}
		case "region":
			d.field = "meta.region"
			m.Region, isNull, i, err = d.stringOrNull(i)
			if err == nil && d.KeepMaps {
				err = d.keep(&m.Meta, k, m.Region, !isNull, start)
			}
		default:
			if d.KeepMaps {
				i, err = d.keepEntry(&m.Meta, k, i, 2)
			} else {
				i, err = d.skip(i, 2)
			}
		}
		if err != nil {
			return i, err
		}
		d.field = "meta"
		if i, more, err = d.next(i); err != nil {
			return i, err
		}
	}
	return i, nil
}

// valueMeta decodes the value of "value_meta" for KeepMaps. Its producers
// disagree on its shape, so a value that is not an object is accepted and
// read as no entries, as before. A repeated "value_meta" member replaces the
// earlier one.
func (d *Decoder) valueMeta(i int, m *Metric) (int, error) {
	m.ValueMeta = m.ValueMeta[:0]
	if d.at(i) != '{' {
		return d.skip(i, 2)
	}
	var err error
	var more bool
	for i, more = d.open(i); more; {
		var k string
		if k, i, err = d.key(i); err != nil {
			return i, err
		}
		if i, err = d.keepEntry(&m.ValueMeta, k, i, 3); err != nil {
			return i, err
		}
		if i, more, err = d.next(i); err != nil {
			return i, err
		}
	}
	return i, nil
}

// keepEntry reads the value at i of the meta or value_meta member k, at the
// given depth, and sets it in *list.
func (d *Decoder) keepEntry(list *[]Dimension, k string, i, depth int) (int, error) {
	v, present, end, err := d.entry(i, depth)
	if err == nil {
		err = d.keep(list, k, v, present, i)
	}
	return end, err
}

// entry reads the value at i as monasca-transform's schema reads a map of
// strings: a string is its value, null is absent, and any other value is its
// JSON text, aliasing the input.
func (d *Decoder) entry(i, depth int) (v string, present bool, end int, err error) {
	switch d.at(i) {
	case '"':
		v, end, err = d.str(i)
		return v, true, end, err
	case 'n':
		end, err = d.literal(i, "null")
		return "", false, end, err
	}
	// skip reclaims the scratch space of escaped strings inside the value,
	// which is safe: the text returned is the input's, escapes and all.
	if end, err = d.skip(i, depth); err != nil {
		return "", false, end, err
	}
	return d.in[i:end], true, end, nil
}

// keep sets entry k of *list to v, keeping the position of an existing k,
// or removes k when the value is absent (a repeated key whose last value is
// null). offset is where the value starts, for the error.
func (d *Decoder) keep(list *[]Dimension, k, v string, present bool, offset int) error {
	l := *list
	for j := range l {
		if l[j].Key == k {
			if present {
				l[j].Value = v
			} else {
				*list = append(l[:j], l[j+1:]...)
			}
			return nil
		}
	}
	switch {
	case !present:
		return nil
	case len(l) >= MaxMapEntries:
		return d.fail(ReasonTooManyMapEntries, offset, "more than %d entries", MaxMapEntries)
	}
	*list = append(l, Dimension{Key: k, Value: v})
	return nil
}

// fail returns a DecodeError for the field being decoded. It is only called
// on the way out, so its allocations do not touch the success path.
func (d *Decoder) fail(r Reason, offset int, format string, args ...any) error {
	return &DecodeError{Reason: r, Field: d.field, Offset: offset, Detail: fmt.Sprintf(format, args...)}
}
