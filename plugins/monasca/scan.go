package monasca

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// This file holds the Decoder's lexical layer: whitespace, strings, literals,
// object punctuation and skipping of values the envelope does not use. Every
// method takes the index of the first byte to read in d.in and returns the
// index just past what it read.

// maxDepth bounds the nesting of objects and arrays so that hostile input
// cannot drive the recursion in skipValue arbitrarily deep; encoding/json
// uses the same limit.
const maxDepth = 10000

// plain marks the bytes a JSON string can hold as they are: printable ASCII
// other than the quote and the backslash. Everything else needs a closer look
// (end of string, escape, control character, or multi-byte UTF-8).
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainRun returns the index of the first byte at or after j in s that is
// not plain, or len(s). Names and dimension values are mostly longer than 8
// bytes, so it tests 8 bytes at a time, SWAR style.
func plainRun(s string, j int) int {
	const ones = 0x0101010101010101
	const highs = 0x8080808080808080
	for j+8 <= len(s) {
		x := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[j:]), 8))
		// The high bit of a byte of m is set where x has a byte below
		// 0x20 (the subtraction borrows), a quote or a backslash (the
		// xor makes it zero, which borrows), or a byte of 0x80 or more.
		// A borrow can also set high bits in later bytes, but only after
		// a byte that is flagged anyway, so the first flag is exact.
		m := ((x - ones*0x20) | ((x ^ ones*'"') - ones) | ((x ^ ones*'\\') - ones) | x) & highs
		if m != 0 {
			return j + bits.TrailingZeros64(m)/8
		}
		j += 8
	}
	for j < len(s) && plain[s[j]] {
		j++
	}
	return j
}

// ws skips JSON whitespace.
func (d *Decoder) ws(i int) int {
	s := d.in
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// str reads the JSON string whose opening quote is at i and returns its
// value. The value aliases the input when the string has no escapes; an
// escaped string is unescaped into d.scratch. During one Decode, d.scratch
// is only appended to (skip reclaims only the room it used itself), so
// earlier values stay intact.
func (d *Decoder) str(i int) (string, int, error) {
	s := d.in
	start := i + 1
	j := start
	for {
		j = plainRun(s, j)
		if j >= len(s) {
			return "", j, d.fail(ReasonMalformedJSON, j, "unterminated string")
		}
		switch c := s[j]; {
		case c == '"':
			return s[start:j], j + 1, nil
		case c == '\\':
			return d.unescape(start, j)
		case c < 0x20:
			return "", j, d.fail(ReasonMalformedJSON, j, "control character 0x%02x in string", c)
		default:
			n, err := d.utf8Rune(j)
			if err != nil {
				return "", j, err
			}
			j += n
		}
	}
}

// unescape finishes str for a string whose first backslash is at j, copying
// the value into d.scratch. Its loop is str's with a copy at each step, kept
// apart so that str, for the common string without escapes, copies nothing.
func (d *Decoder) unescape(start, j int) (string, int, error) {
	s := d.in
	base := len(d.scratch)
	d.scratch = append(d.scratch, s[start:j]...)
	for {
		k := plainRun(s, j)
		d.scratch = append(d.scratch, s[j:k]...)
		j = k
		if j >= len(s) {
			return "", j, d.fail(ReasonMalformedJSON, j, "unterminated string")
		}
		switch c := s[j]; {
		case c == '"':
			// Every escape writes at least one byte, so the value is not
			// empty and &d.scratch[base] is in range. The string is made
			// only now because an append above may have moved d.scratch.
			return unsafe.String(&d.scratch[base], len(d.scratch)-base), j + 1, nil
		case c == '\\':
			var err error
			if j, err = d.escape(j); err != nil {
				return "", j, err
			}
		case c < 0x20:
			return "", j, d.fail(ReasonMalformedJSON, j, "control character 0x%02x in string", c)
		default:
			n, err := d.utf8Rune(j)
			if err != nil {
				return "", j, err
			}
			d.scratch = append(d.scratch, s[j:j+n]...)
			j += n
		}
	}
}

// escape decodes the escape sequence whose backslash is at j and appends its
// UTF-8 encoding to d.scratch.
func (d *Decoder) escape(j int) (int, error) {
	s := d.in
	if j+1 >= len(s) {
		return j, d.fail(ReasonMalformedJSON, j, "unterminated string")
	}
	var c byte
	switch s[j+1] {
	case '"', '\\', '/':
		c = s[j+1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		return d.escapeU(j)
	default:
		return j, d.fail(ReasonMalformedJSON, j, "invalid escape \\%c in string", s[j+1])
	}
	d.scratch = append(d.scratch, c)
	return j + 2, nil
}

// escapeU decodes the \uXXXX escape at j, joining a UTF-16 surrogate pair
// written as two escapes into one code point.
func (d *Decoder) escapeU(j int) (int, error) {
	s := d.in
	r, ok := hex4(s, j+2)
	if !ok {
		return j, d.fail(ReasonMalformedJSON, j, "invalid \\u escape in string")
	}
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return j, d.fail(ReasonInvalidUTF8, j, "unpaired surrogate \\u%04x in string", r)
	case r >= 0xd800 && r <= 0xdbff:
		lo, ok := rune(0), false
		if j+7 < len(s) && s[j+6] == '\\' && s[j+7] == 'u' {
			lo, ok = hex4(s, j+8)
		}
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return j, d.fail(ReasonInvalidUTF8, j, "unpaired surrogate \\u%04x in string", r)
		}
		r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
		j += 6
	}
	d.scratch = utf8.AppendRune(d.scratch, r)
	return j + 6, nil
}

// hex4 parses the four hexadecimal digits at s[i:i+4].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// utf8Rune returns the length of the multi-byte UTF-8 sequence at j, which
// must be well formed.
func (d *Decoder) utf8Rune(j int) (int, error) {
	r, n := utf8.DecodeRuneInString(d.in[j:])
	if r == utf8.RuneError && n == 1 {
		return 0, d.fail(ReasonInvalidUTF8, j, "invalid UTF-8 byte 0x%02x in string", d.in[j])
	}
	return n, nil
}

// at returns the byte at i, or 0 at the end of the input, which no JSON
// value starts with.
func (d *Decoder) at(i int) byte {
	if i < len(d.in) {
		return d.in[i]
	}
	return 0
}

// stringOrNull reads a value that must be a string or null; for null it
// returns "" and isNull.
func (d *Decoder) stringOrNull(i int) (v string, isNull bool, end int, err error) {
	switch d.at(i) {
	case '"':
		v, end, err = d.str(i)
		return v, false, end, err
	case 'n':
		end, err = d.literal(i, "null")
		return "", true, end, err
	}
	return "", false, i, d.wrongType(i, "a string")
}

// literal reads the keyword lit at i.
func (d *Decoder) literal(i int, lit string) (int, error) {
	if !strings.HasPrefix(d.in[i:], lit) {
		return i, d.fail(ReasonMalformedJSON, i, "invalid literal, want %s", lit)
	}
	return i + len(lit), nil
}

// open reads the '{' at i, which the caller has checked, and reports whether
// the object has members; if so it returns the index of the first key.
func (d *Decoder) open(i int) (int, bool) {
	i = d.ws(i + 1)
	if i < len(d.in) && d.in[i] == '}' {
		return i + 1, false
	}
	return i, true
}

// key reads a member name and the colon after it, and returns the index of
// the member's value.
func (d *Decoder) key(i int) (string, int, error) {
	if i >= len(d.in) || d.in[i] != '"' {
		return "", i, d.fail(ReasonMalformedJSON, i, "want an object key")
	}
	k, i, err := d.str(i)
	if err != nil {
		return "", i, err
	}
	i = d.ws(i)
	if i >= len(d.in) || d.in[i] != ':' {
		return "", i, d.fail(ReasonMalformedJSON, i, "want ':' after object key")
	}
	return k, d.ws(i + 1), nil
}

// next reads what follows a member's value and reports whether another
// member follows; if so it returns the index of its key.
func (d *Decoder) next(i int) (int, bool, error) {
	i = d.ws(i)
	if i < len(d.in) {
		switch d.in[i] {
		case ',':
			return d.ws(i + 1), true, nil
		case '}':
			return i + 1, false, nil
		}
	}
	return i, false, d.fail(ReasonMalformedJSON, i, "want ',' or '}' after object member")
}

// skip reads and validates any value, including Python's NaN, Infinity and
// -Infinity tokens, and discards it. depth is the number of objects and
// arrays enclosing the value.
func (d *Decoder) skip(i, depth int) (int, error) {
	// Escaped strings inside the value are unescaped into d.scratch only to
	// be validated; nothing refers to them afterwards, so reclaim the room.
	mark := len(d.scratch)
	i, err := d.skipValue(i, depth)
	d.scratch = d.scratch[:mark]
	return i, err
}

func (d *Decoder) skipValue(i, depth int) (int, error) {
	s := d.in
	if i >= len(s) {
		return i, d.fail(ReasonMalformedJSON, i, "unexpected end of input, want a value")
	}
	if (s[i] == '{' || s[i] == '[') && depth >= maxDepth {
		return i, d.fail(ReasonMalformedJSON, i, "nesting deeper than %d", maxDepth)
	}
	var err error
	switch s[i] {
	case '{':
		var more bool
		for i, more = d.open(i); more; {
			if _, i, err = d.key(i); err != nil {
				return i, err
			}
			if i, err = d.skipValue(i, depth+1); err != nil {
				return i, err
			}
			if i, more, err = d.next(i); err != nil {
				return i, err
			}
		}
		return i, nil
	case '[':
		i = d.ws(i + 1)
		if i < len(s) && s[i] == ']' {
			return i + 1, nil
		}
		for {
			if i, err = d.skipValue(i, depth+1); err != nil {
				return i, err
			}
			i = d.ws(i)
			switch {
			case i < len(s) && s[i] == ',':
				i = d.ws(i + 1)
			case i < len(s) && s[i] == ']':
				return i + 1, nil
			default:
				return i, d.fail(ReasonMalformedJSON, i, "want ',' or ']' after array element")
			}
		}
	case '"':
		_, i, err = d.str(i)
		return i, err
	case 't':
		return d.literal(i, "true")
	case 'f':
		return d.literal(i, "false")
	case 'n':
		return d.literal(i, "null")
	}
	end := scanNumber(s, i)
	if end < 0 {
		end = scanNonFinite(s, i)
	}
	if end < 0 {
		return i, d.fail(ReasonMalformedJSON, i, "invalid value")
	}
	return end, nil
}

// wrongType reports that the value at i is not of the wanted type. The
// value may yet turn out to be malformed, in which case Decode reports that
// instead.
func (d *Decoder) wrongType(i int, want string) error {
	return d.fail(ReasonWrongType, i, "value is %s, want %s", kind(d.at(i)), want)
}

// kind names the type of the JSON value that starts with c, for messages.
func kind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'N', 'I':
		return "a number"
	}
	return "not a value"
}
