package monascaspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// yamlReader walks a YAML document the way monasca-aggregator's viper and
// mapstructure decoding saw it (keys matched case-insensitively, scalars
// accepted where strings are expected) and records problems with the line
// they are on.
type yamlReader struct {
	problems
	shift    int // lines parse put in front of the data
	steps    int // nodes visited so far, see deref
	maxSteps int
}

// expansionLimit is the panic value with which deref abandons a read; run
// turns it back into an error.
type expansionLimit struct{}

func newYAMLReader(data []byte, source string) *yamlReader {
	return &yamlReader{
		problems: problems{source: source},
		// Far more than any real file needs (each node is visited a few
		// times, and a node takes at least two bytes), yet small enough to
		// stop an alias bomb within a fraction of a second.
		maxSteps: 10_000 + 100*len(data),
	}
}

// run calls read, turning an abandoned read (see deref) into an error.
func (r *yamlReader) run(read func()) {
	defer func() {
		if e := recover(); e != nil {
			if _, ok := e.(expansionLimit); !ok {
				panic(e)
			}
			r.errorf(0, place{}, "aliases and merge keys expand the document to more than %d nodes", r.maxSteps)
		}
	}()
	read()
}

var (
	utf8BOM       = []byte{0xEF, 0xBB, 0xBF}
	yamlErrorLine = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)
)

// parse returns the root node of the first YAML document in data. root is
// nil when data holds no document; ok is false after a syntax error, which
// is recorded.
func (r *yamlReader) parse(data []byte) (root *yaml.Node, ok bool) {
	input := data
	utf16 := bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE})
	if !utf16 {
		// yaml.v3 leaves the line out of errors on the first line (it takes
		// the 0-based line 0 for "unknown"). An extra newline in front puts
		// all content on line 2 or later; line() subtracts it again. A
		// byte-order mark must stay in front of it.
		bom := data[:len(data)-len(bytes.TrimPrefix(data, utf8BOM))]
		input = slices.Concat(bom, []byte("\n"), data[len(bom):])
		r.shift = 1
	}
	dec := yaml.NewDecoder(bytes.NewReader(input))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		msg := err.Error()
		if m := yamlErrorLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			r.errorf(max(line-r.shift, 0), place{}, "invalid YAML: %s", m[2])
		} else {
			line := 0
			if !utf16 {
				// Errors of yaml.v3's reader (bad encoding, control
				// characters) carry no position at all.
				line = unprintableLine(data)
			}
			r.errorf(line, place{}, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
		}
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		// yaml.v2, which monasca-aggregator used, read only the first
		// document as well, but did so silently.
		r.warnf(r.line(&next), place{}, "only the first YAML document is read; the rest of the file is ignored")
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

// unprintableLine returns the line of the first character that YAML does
// not allow in a stream (invalid UTF-8 included), or 0 when there is none.
func unprintableLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		c, size := utf8.DecodeRune(data[i:])
		switch {
		case c == '\n':
			line++
		case c == utf8.RuneError && size == 1, !yamlPrintable(c):
			return line
		}
		i += size
	}
	return 0
}

// yamlPrintable is YAML 1.2's c-printable.
func yamlPrintable(c rune) bool {
	return c == '\t' || c == '\n' || c == '\r' || c == 0x85 ||
		(c >= 0x20 && c <= 0x7E) || (c >= 0xA0 && c <= 0xD7FF) ||
		(c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF)
}

// line returns the 1-based line of n in the caller's data, or 0.
func (r *yamlReader) line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return max(n.Line-r.shift, 0)
}

// lineOr returns the line of n, or fallback when n is nil (an absent field).
func (r *yamlReader) lineOr(n *yaml.Node, fallback int) int {
	if n == nil {
		return fallback
	}
	return r.line(n)
}

// deref follows aliases to the node they name. Every node the reader looks
// at passes here, which makes it the place to bound the work: aliases can
// make a small file expand exponentially (lists of aliases to lists of
// aliases, merge keys of merge keys), so a read that visits more than
// maxSteps nodes is abandoned.
func (r *yamlReader) deref(n *yaml.Node) *yaml.Node {
	for {
		r.steps++
		if r.steps > r.maxSteps {
			panic(expansionLimit{})
		}
		if n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of n for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("the value %q", n.Value)
}

// pair is one key/value pair of a mapping; in is the mapping it is written
// in, which differs from the mapping read when it came through a merge key.
type pair struct {
	key, value *yaml.Node // key is dereferenced, value is not
	in         *yaml.Node
}

// pairs lists the pairs of mapping m with its merge keys (<<) expanded as
// YAML defines them: the pairs written in m come first, then those of the
// merged mappings in the order given, so a reader that keeps the first pair
// of each key lets written keys override merged ones and earlier merged
// mappings override later ones.
func (r *yamlReader) pairs(m *yaml.Node, at place) []pair {
	return r.collectPairs(m, at, map[*yaml.Node]bool{m: true})
}

// collectPairs is pairs for a mapping reached through the merge keys of the
// mappings in open.
func (r *yamlReader) collectPairs(m *yaml.Node, at place, open map[*yaml.Node]bool) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := r.deref(m.Content[i])
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" {
			own = append(own, pair{key: k, value: m.Content[i+1], in: m})
			continue
		}
		v := r.deref(m.Content[i+1])
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, s := range sources {
			switch s = r.deref(s); {
			case s.Kind != yaml.MappingNode:
				r.errorf(r.line(s), at, "the merge key << needs a mapping or a list of mappings, not %s", describe(s))
			case open[s]:
				r.errorf(r.line(k), at, "the merge key << includes a mapping into itself")
			default:
				open[s] = true
				merged = append(merged, r.collectPairs(s, at, open)...)
				delete(open, s)
			}
		}
	}
	return append(own, merged...)
}

// fields reads mapping m, whose keys are the known ones, matched
// case-insensitively as mapstructure matched monasca-aggregator's struct
// fields. It returns the values by the known spelling of their key. An
// unknown key is a warning, as the original ignored it; a key written twice
// in one mapping is an error, as which of the two the original used depended
// on map order.
func (r *yamlReader) fields(m *yaml.Node, known []string, at place) map[string]*yaml.Node {
	values := map[string]*yaml.Node{}
	firsts := map[string]pair{}
	for _, p := range r.pairs(m, at) {
		i := -1
		if p.key.Kind == yaml.ScalarNode && !isNull(p.key) {
			i = slices.IndexFunc(known, func(k string) bool { return strings.EqualFold(k, p.key.Value) })
		}
		switch {
		case i < 0 && p.key.Kind != yaml.ScalarNode:
			r.warnf(r.line(p.key), at, "a key that is %s is ignored", describe(p.key))
			continue
		case i < 0:
			msg := fmt.Sprintf("unknown key %q is ignored", p.key.Value)
			if s := suggest(p.key.Value, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			r.warnf(r.line(p.key), at, "%s", msg)
			continue
		}
		first, repeated := firsts[known[i]]
		switch {
		case !repeated:
			firsts[known[i]] = p
			values[known[i]] = p.value
		case first.in != p.in:
			// A merged pair, overridden by an earlier one.
		case first.key.Value == p.key.Value:
			r.errorf(r.line(p.key), at.child(known[i]), "given twice (lines %d and %d)", r.line(first.key), r.line(p.key))
		default:
			r.errorf(r.line(p.key), at.child(known[i]), "given twice, as %q on line %d and as %q on line %d (keys are case-insensitive)",
				first.key.Value, r.line(first.key), p.key.Value, r.line(p.key))
		}
	}
	return values
}

// suggest returns the known key that key most likely misspells, or "".
// Case, underscores and hyphens are ignored, and at most two edits allowed.
func suggest(key string, known []string) string {
	normal := func(s string) string {
		return strings.Map(func(c rune) rune {
			if c == '_' || c == '-' {
				return -1
			}
			return unicode.ToLower(c)
		}, s)
	}
	k := normal(key)
	best, bestDistance := "", 3
	for _, c := range known {
		nc := normal(c)
		// The distance is at least the difference in length; skipping
		// early keeps a long unknown key from costing a full comparison.
		if d := utf8.RuneCountInString(k) - utf8.RuneCountInString(nc); d > 2 || d < -2 {
			continue
		}
		if d := editDistance(k, nc); d < bestDistance {
			best, bestDistance = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	row := make([]int, len(rb)+1)
	for j := range row {
		row[j] = j
	}
	for i := range ra {
		diagonal := row[0]
		row[0] = i + 1
		for j := range rb {
			cost := 1
			if ra[i] == rb[j] {
				cost = 0
			}
			diagonal, row[j+1] = row[j+1], min(row[j+1]+1, row[j]+1, diagonal+cost)
		}
	}
	return row[len(rb)]
}

// str reads n as a string the way monasca-aggregator's weak decoding
// accepted one: any scalar, null reading as "". An absent field (n nil)
// reads as "" too. ok is false, after an error, when n is not a scalar.
//
// A plain scalar is taken exactly as written. For numbers and booleans that
// differs from the original, which formatted the value yaml.v2 had typed
// (1.0 became "1", yes became "1"); such a difference is a warning.
func (r *yamlReader) str(n *yaml.Node, at place) (s string, ok bool) {
	if n == nil {
		return "", true
	}
	n = r.deref(n)
	switch {
	case n.Kind != yaml.ScalarNode:
		r.errorf(r.line(n), at, "must be a string, not %s", describe(n))
		return "", false
	case isNull(n):
		return "", true
	case n.Style == 0: // plain and untagged, the only scalars YAML types
		if old := aggregatorString(n.Value); old != n.Value {
			r.warnf(r.line(n), at, "the unquoted value %s is read as the string %q, but monasca-aggregator read it as %q; quote it to make the intent explicit",
				n.Value, n.Value, old)
		}
	}
	return n.Value, true
}

// yamlV1Float is the float syntax of yaml.v2's resolver.
var yamlV1Float = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// aggregatorString returns the string monasca-aggregator made of the plain
// scalar s: yaml.v2 typed it by YAML 1.1 rules, then mapstructure's weak
// decoding formatted the typed value (integers in decimal, floats in the
// shortest non-exponent form, booleans as "1" and "0", null as "").
func aggregatorString(s string) string {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return "1"
	case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return "0"
	case "", "~", "null", "Null", "NULL":
		return ""
	case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF":
		return "+Inf"
	case "-.inf", "-.Inf", "-.INF":
		return "-Inf"
	case ".nan", ".NaN", ".NAN":
		return "NaN"
	}
	formatFloat := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	switch c := s[0]; {
	case c == '.':
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return formatFloat(f)
		}
	case c == '+' || c == '-' || (c >= '0' && c <= '9'):
		plain := strings.ReplaceAll(s, "_", "")
		if i, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if u, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return strconv.FormatUint(u, 10)
		}
		if yamlV1Float.MatchString(plain) {
			if f, err := strconv.ParseFloat(plain, 64); err == nil {
				return formatFloat(f)
			}
		}
	}
	return s
}
