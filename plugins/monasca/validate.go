package monasca

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The rules of monasca-common's metric validator
// (monasca_common/validation/metrics.py), which monasca-transform's
// insert_data applies to every metric before writing it. Lengths count
// characters (code points), as Python's len does.
const (
	maxNameChars      = 255
	maxDimensionChars = 255
	maxValueMetaCount = 16
	maxValueMetaKey   = 255
	maxValueMetaJSON  = 2048
	// dimensionForbidden may appear in neither dimension keys nor values.
	dimensionForbidden = `<>={},"\;&`
	// nameForbidden may not appear in metric names.
	nameForbidden = dimensionForbidden + "() "
)

// ValidationError is the error ValidateOutput returns.
type ValidationError struct {
	// Field is the dotted path of the field at fault, such as "metric.name"
	// or "metric.dimensions".
	Field string
	// Detail says what is wrong, for humans.
	Detail string
}

func (e *ValidationError) Error() string {
	return "invalid monasca metric: " + e.Field + ": " + e.Detail
}

// ValidateOutput checks a metric and its value_meta against the rules the
// Monasca API and monasca-transform apply before accepting a metric, so that
// nothing this program publishes is rejected downstream:
//   - the name is 1 to 255 characters, without any of <>={},"\;&() or a
//     space, and, stricter than Monasca, without control characters;
//   - dimension keys and values are 1 to 255 characters without any of
//     <>={},"\;&, keys do not start with '_', and keys are unique;
//   - the value is finite;
//   - value_meta has at most 16 entries with unique keys of 1 to 255
//     characters and supported, finite values, and it serialises to at
//     most 2048 characters, counted as monasca-common counts them: the
//     output of Python's json.dumps, with ", " and ": " separators and
//     non-ASCII characters escaped. That is never shorter than
//     AppendEnvelope's compact form, so the limit holds for it too.
//
// All strings must be valid UTF-8.
func ValidateOutput(m *Metric, valueMeta []Field) error {
	if err := validateName(m.Name); err != nil {
		return err
	}
	for i, dim := range m.Dimensions {
		if err := validateDimension(dim.Key, ""); err != nil {
			return err
		}
		if err := validateDimension(dim.Value, dim.Key); err != nil {
			return err
		}
		for _, prev := range m.Dimensions[:i] {
			if prev.Key == dim.Key {
				return invalid("metric.dimensions", "key %q is repeated", dim.Key)
			}
		}
	}
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		return invalid("metric.value", "%v is not finite", m.Value)
	}
	return validateValueMeta(valueMeta)
}

func validateName(name string) error {
	const field = "metric.name"
	if !utf8.ValidString(name) {
		return invalid(field, "not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > maxNameChars {
		return invalid(field, "%d characters, want 1 to %d", n, maxNameChars)
	}
	if i := strings.IndexAny(name, nameForbidden); i >= 0 {
		return invalid(field, "%q contains %q, which is not allowed", name, name[i])
	}
	if i := strings.IndexFunc(name, unicode.IsControl); i >= 0 {
		return invalid(field, "%q contains a control character", name)
	}
	return nil
}

// validateDimension checks the dimension key s when key is "", and
// otherwise s as the value of key.
func validateDimension(s, key string) error {
	const field = "metric.dimensions"
	what := func() string {
		if key == "" {
			return "key"
		}
		return fmt.Sprintf("value of %q", key)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "%s is not valid UTF-8", what())
	}
	if n := utf8.RuneCountInString(s); n < 1 || n > maxDimensionChars {
		return invalid(field, "%s %.64q has %d characters, want 1 to %d", what(), s, n, maxDimensionChars)
	}
	if i := strings.IndexAny(s, dimensionForbidden); i >= 0 {
		return invalid(field, "%s %q contains %q, which is not allowed", what(), s, s[i])
	}
	if key == "" && s[0] == '_' {
		return invalid(field, "key %q starts with '_', which is reserved", s)
	}
	return nil
}

func validateValueMeta(valueMeta []Field) error {
	const field = "metric.value_meta"
	if len(valueMeta) > maxValueMetaCount {
		return invalid(field, "%d entries, limit %d", len(valueMeta), maxValueMetaCount)
	}
	size := len("{}")
	for i, f := range valueMeta {
		if !utf8.ValidString(f.Key) {
			return invalid(field, "key %q is not valid UTF-8", f.Key)
		}
		if n := utf8.RuneCountInString(f.Key); n < 1 || n > maxValueMetaKey {
			return invalid(field, "key %.64q has %d characters, want 1 to %d", f.Key, n, maxValueMetaKey)
		}
		for _, prev := range valueMeta[:i] {
			if prev.Key == f.Key {
				return invalid(field, "key %q is repeated", f.Key)
			}
		}
		n, err := pyJSONValueLen(f.Value)
		if err != "" {
			return invalid(field, "value of %q %s", f.Key, err)
		}
		if i > 0 {
			size += len(", ")
		}
		size += pyJSONStringLen(f.Key) + len(": ") + n
	}
	if size > maxValueMetaJSON {
		return invalid(field, "%d characters as JSON, limit %d", size, maxValueMetaJSON)
	}
	return nil
}

// pyJSONValueLen returns the length of v in Python's json.dumps output, or
// what is wrong with v.
func pyJSONValueLen(v any) (int, string) {
	var buf [24]byte
	switch v := v.(type) {
	case string:
		if !utf8.ValidString(v) {
			return 0, "is not valid UTF-8"
		}
		return pyJSONStringLen(v), ""
	case int:
		return len(strconv.AppendInt(buf[:0], int64(v), 10)), ""
	case int64:
		return len(strconv.AppendInt(buf[:0], v, 10)), ""
	case float64:
		// Python would write NaN or Infinity, which is not JSON.
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, "is not finite"
		}
		return pyFloatLen(v), ""
	}
	return 0, fmt.Sprintf("has unsupported type %T", v)
}

// pyJSONStringLen returns the length of the valid UTF-8 string s in the
// output of Python's json.dumps, which by default escapes everything but
// printable ASCII, characters beyond the BMP as a surrogate pair.
func pyJSONStringLen(s string) int {
	n := len(`""`)
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t':
			n += len(`\n`)
		case ' ' <= r && r <= '~':
			n++
		case r <= 0xffff:
			n += len(`\u0000`)
		default:
			n += len(`\ud800\udc00`)
		}
	}
	return n
}

// pyFloatLen returns the length of Python's repr of the finite float v,
// which json.dumps writes: the shortest round-tripping digits, positional
// with at least one fractional digit (3840.0) when the decimal exponent is
// in -4..15, and otherwise d.ddde±XX with at least two exponent digits.
func pyFloatLen(v float64) int {
	var buf [32]byte
	// strconv's 'e' format has the same shortest digits and, like Python,
	// a signed exponent of at least two digits: [-]d[.ddd]e±XX.
	b := strconv.AppendFloat(buf[:0], v, 'e', -1, 64)
	e := bytes.IndexByte(b, 'e')
	exp, _ := strconv.Atoi(string(b[e+1:])) // always a valid integer
	point := exp + 1                        // digits before the decimal point
	if point <= -4 || point > 16 {
		return len(b) // Python writes this very form
	}
	sign := 0
	if b[0] == '-' {
		sign = 1
	}
	nDigits := e - sign
	if nDigits > 1 {
		nDigits-- // the '.'
	}
	switch {
	case point <= 0:
		return sign + len("0.") - point + nDigits
	case point < nDigits:
		return sign + nDigits + len(".")
	default:
		return sign + point + len(".0")
	}
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Detail: fmt.Sprintf(format, args...)}
}
