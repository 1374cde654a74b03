package monasca

import (
	"errors"
	"fmt"
)

// Reason classifies why an envelope was rejected. Its values are stable,
// snake_case and few, so they can be used directly as a Prometheus label.
type Reason string

// The reasons Decoder.Decode reports.
const (
	// ReasonMalformedJSON: not JSON (syntax error, truncation, empty input,
	// nesting deeper than 10000, or data after the top-level object).
	ReasonMalformedJSON Reason = "malformed_json"
	// ReasonMissingField: metric, metric.name, metric.timestamp or
	// metric.value is absent, null, or (for the name) empty.
	ReasonMissingField Reason = "missing_field"
	// ReasonWrongType: valid JSON, but a field holds a type the envelope does
	// not allow there, such as an object as the value, a number as a
	// dimension value, or a string as the value or timestamp, even one
	// that holds a number.
	ReasonWrongType Reason = "wrong_type"
	// ReasonMissingTenant: with Decoder.RequireTenant, meta or
	// meta.tenantId is absent, null or empty.
	ReasonMissingTenant Reason = "missing_tenant"
	// ReasonNonFiniteValue: metric.value is NaN or infinite, or a number too
	// large for a float64.
	ReasonNonFiniteValue Reason = "non_finite_value"
	// ReasonInvalidUTF8: a string holds bytes that are not UTF-8, or a \u
	// escape of an unpaired UTF-16 surrogate, which has no UTF-8 encoding.
	ReasonInvalidUTF8 Reason = "invalid_utf8"
	// ReasonNameTooLong: metric.name is longer than Monasca's limit of 255
	// bytes.
	ReasonNameTooLong Reason = "name_too_long"
	// ReasonTooManyDimensions: more distinct dimension keys than
	// Decoder.MaxDimensions allows.
	ReasonTooManyDimensions Reason = "too_many_dimensions"
	// ReasonDimensionTooLong: a dimension key or value is longer than
	// Monasca's limit of 255 bytes.
	ReasonDimensionTooLong Reason = "dimension_too_long"
	// ReasonTooManyMapEntries: with Decoder.KeepMaps, meta or
	// metric.value_meta has more than MaxMapEntries distinct keys.
	ReasonTooManyMapEntries Reason = "too_many_map_entries"
	// ReasonTimestampOutOfRange: metric.timestamp is non-finite, before
	// 1e11 ms (1973-03-03; epoch seconds sent where milliseconds belong
	// fall here), or after the last millisecond of the year 9999.
	ReasonTimestampOutOfRange Reason = "timestamp_out_of_range"
	// ReasonUnknown is what ReasonOf reports for an error that does not come
	// from a Decoder, so that a label value is never empty.
	ReasonUnknown Reason = "unknown"
)

// DecodeError is the error Decoder.Decode returns for every rejected
// envelope. It owns its strings: it stays valid after the input changes.
type DecodeError struct {
	Reason Reason
	// Field is the dotted path of the field at fault, such as "metric.value"
	// or "metric.dimensions"; empty when the envelope as a whole is at fault.
	Field string
	// Offset is the byte offset in the input at which the fault was found.
	Offset int
	// Detail says what is wrong, for humans.
	Detail string
}

func (e *DecodeError) Error() string {
	field := e.Field
	if field == "" {
		field = "envelope"
	}
	return fmt.Sprintf("monasca envelope: %s: %s (%s at byte %d)", field, e.Detail, e.Reason, e.Offset)
}

// ReasonOf returns the Reason of a *DecodeError found in err's chain,
// ReasonUnknown for any other non-nil error, and "" for nil.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	if de, ok := errors.AsType[*DecodeError](err); ok {
		return de.Reason
	}
	return ReasonUnknown
}
