package monasca

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Field is one value_meta entry. Value is a string, int, int64 or float64;
// AppendEnvelope writes anything else as null, and ValidateOutput rejects it.
type Field struct {
	Key   string
	Value any
}

// AppendEnvelope appends m as a Monasca metric envelope to dst:
//
//	{"metric":{"name":..,"dimensions":{..},"timestamp":<ms>,"value":..,"value_meta":{..}},
//	 "meta":{"tenantId":..,"region":..},"creation_time":<s>}
//
// Dimensions and value_meta entries are written in the order given, so a
// caller that wants a canonical form sorts them first. Strings are escaped
// and numbers formatted as encoding/json does (without HTML escaping), so the
// output is byte-compatible with what json.Marshal-based producers write.
// creationTime is in epoch seconds, as the Monasca API writes it.
//
// AppendEnvelope cannot fail: a non-finite value, which JSON cannot
// express, is written as null. Run ValidateOutput first to rule that out.
// It does not allocate when dst has enough capacity.
func AppendEnvelope(dst []byte, m *Metric, valueMeta []Field, creationTime int64) []byte {
	dst = append(dst, `{"metric":{"name":`...)
	dst = appendString(dst, m.Name)
	dst = append(dst, `,"dimensions":{`...)
	for i, dim := range m.Dimensions {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, dim.Key)
		dst = append(dst, ':')
		dst = appendString(dst, dim.Value)
	}
	dst = append(dst, `},"timestamp":`...)
	dst = strconv.AppendInt(dst, m.Timestamp, 10)
	dst = append(dst, `,"value":`...)
	dst = appendFloat(dst, m.Value)
	dst = append(dst, `,"value_meta":{`...)
	for i, f := range valueMeta {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, f.Key)
		dst = append(dst, ':')
		switch v := f.Value.(type) {
		case string:
			dst = appendString(dst, v)
		case int:
			dst = strconv.AppendInt(dst, int64(v), 10)
		case int64:
			dst = strconv.AppendInt(dst, v, 10)
		case float64:
			dst = appendFloat(dst, v)
		default:
			dst = append(dst, "null"...)
		}
	}
	dst = append(dst, `}},"meta":{"tenantId":`...)
	dst = appendString(dst, m.TenantID)
	dst = append(dst, `,"region":`...)
	dst = appendString(dst, m.Region)
	dst = append(dst, `},"creation_time":`...)
	dst = strconv.AppendInt(dst, creationTime, 10)
	return append(dst, '}')
}

// appendFloat formats v as encoding/json formats a float64: the shortest
// representation that reads back as v, in positional notation unless v is
// below 1e-6 or at least 1e21 in magnitude, where it uses an exponent
// without a leading zero (1e-07 becomes 1e-7). Integral values therefore
// have no fraction (3840, not 3840.0). Non-finite values become null.
func appendFloat(dst []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, v, format, -1, 64)
	if format == 'e' {
		// strconv writes at least two exponent digits; drop the padding
		// zero of a single-digit exponent, which can only be negative
		// since positive exponents here are at least 21.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendString appends s as a JSON string, escaped as encoding/json escapes
// it with HTML escaping off: the quote, the backslash and control characters
// are escaped, as are U+2028 and U+2029, which JavaScript does not allow in
// string literals; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, needing no escape
	for i := plainRun(s, 0); i < len(s); i = plainRun(s, i) {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// timestampLayout is monasca-transform's layout of
// firstrecord_timestamp_string and lastrecord_timestamp_string.
const timestampLayout = "2006-01-02 15:04:05"

// FormatTimestamp formats epoch milliseconds as monasca-transform writes its
// firstrecord_timestamp_string and lastrecord_timestamp_string value_meta
// entries: "YYYY-MM-DD HH:MM:SS" in UTC, truncated to the second (toward
// negative infinity, as Python's utcfromtimestamp does).
func FormatTimestamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(timestampLayout)
}
