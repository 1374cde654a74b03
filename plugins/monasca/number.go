package monasca

import "strings"

// Timestamp bounds, in epoch milliseconds.
const (
	// minTimestamp is 1973-03-03T09:46:40Z. Any epoch-seconds timestamp up
	// to the year 5138 is smaller, so this rejects seconds sent as
	// milliseconds, which would otherwise land in January 1970.
	minTimestamp = 100_000_000_000
	// maxTimestamp is 9999-12-31T23:59:59.999Z, the last instant that the
	// Monasca API and its storage back ends can represent.
	maxTimestamp = 253_402_300_799_999
	// maxTimestampDigits is the number of digits of maxTimestamp.
	maxTimestampDigits = 15
)

// scanNumber returns the index just past the JSON number (RFC 8259 §6) that
// starts at s[i], or -1 when s[i:] does not start with one.
func scanNumber(s string, i int) int {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(s, i+1)
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// digits returns the index of the first non-digit at or after s[i].
func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// scanNonFinite returns the index just past the NaN, Infinity or -Infinity
// token that starts at s[i], or -1. These are not JSON, but Python's json
// module writes them for non-finite floats, so a Monasca producer written in
// Python emits them; accepting them lets such a metric be reported as
// non-finite instead of as unreadable.
func scanNonFinite(s string, i int) int {
	for _, tok := range [...]string{"NaN", "Infinity", "-Infinity"} {
		if strings.HasPrefix(s[i:], tok) {
			return i + len(tok)
		}
	}
	return -1
}

// timestampMillis converts the text of a JSON number, as accepted by
// scanNumber, to epoch milliseconds, truncating a fraction toward negative
// infinity, and reports whether the result is within the accepted range.
//
// It reads the decimal digits instead of going through float64 so that the
// truncation is exact: 1485288947372.99999999999 is 1485288947372, whereas
// its nearest float64 is 1485288947373.
func timestampMillis(num string) (int64, bool) {
	if num[0] == '-' {
		// Every negative number, including -0 and -0.5, is below
		// minTimestamp.
		return 0, false
	}
	// The number is intDigits[.fracDigits][e[±]exp]. Its integer part is
	// the first point digits of intDigits+fracDigits, padded with zeros.
	intEnd := digits(num, 0)
	fracStart, fracEnd := intEnd, intEnd
	if intEnd < len(num) && num[intEnd] == '.' {
		fracStart = intEnd + 1
		fracEnd = digits(num, fracStart)
	}
	exp := 0
	if k := fracEnd + 1; k < len(num) {
		neg := num[k] == '-'
		if num[k] == '-' || num[k] == '+' {
			k++
		}
		for ; k < len(num); k++ {
			// Any exponent beyond the clamp already puts the value far
			// outside the range; clamping keeps exp from overflowing.
			if exp < 1_000_000 {
				exp = exp*10 + int(num[k]-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	point := intEnd + exp
	nDigits := intEnd + fracEnd - fracStart
	var v int64
	significant := 0
	for k := 0; k < point; k++ {
		var c int64
		switch {
		case k < intEnd:
			c = int64(num[k] - '0')
		case k < nDigits:
			c = int64(num[fracStart+k-intEnd] - '0')
		case v == 0:
			// Only zeros are left, and so far the value is zero.
			return 0, false
		}
		if v == 0 && c == 0 {
			continue
		}
		if significant++; significant > maxTimestampDigits {
			return 0, false
		}
		v = v*10 + c
	}
	return v, v >= minTimestamp && v <= maxTimestamp
}
