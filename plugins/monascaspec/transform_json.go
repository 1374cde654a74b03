package monascaspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// jsonObject is one specification of a monasca-transform spec file: its
// fields, undecoded, and the line it starts on.
type jsonObject struct {
	line   int
	fields map[string]json.RawMessage
}

// readSpecObjects splits data into specification objects. monasca-transform
// kept its specs one JSON object per line (its JSON files, and the rows of
// its MySQL tables); a JSON array of objects is accepted as well, so that
// specs may be written over several lines. The first non-space byte tells
// the two apart. Blank lines are skipped.
func (p *problems) readSpecObjects(data []byte) []jsonObject {
	data = bytes.TrimPrefix(data, utf8BOM)
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		return p.readSpecArray(data)
	}
	var objects []jsonObject
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var raw json.RawMessage
		if err := json.Unmarshal(line, &raw); err != nil {
			p.errorf(i+1, place{}, "invalid JSON: %v (each line must hold one whole specification; a file that starts with [ may hold a JSON array of specifications over several lines)", jsonErrorText(err))
			continue
		}
		if obj, ok := p.specObject(raw, i+1); ok {
			objects = append(objects, obj)
		}
	}
	return objects
}

// readSpecArray reads data as one JSON array of specification objects.
func (p *problems) readSpecArray(data []byte) []jsonObject {
	lineAt := func(offset int64) int { return 1 + bytes.Count(data[:min(int(offset), len(data))], []byte("\n")) }
	fail := func(err error, offset int64) []jsonObject {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			offset = syntax.Offset
		}
		p.errorf(lineAt(offset), place{}, "invalid JSON: %v", jsonErrorText(err))
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the [ seen by the caller
		return fail(err, 0)
	}
	var objects []jsonObject
	for dec.More() {
		// The element starts after the whitespace and the comma that
		// follow the previous one.
		start := dec.InputOffset()
		for start < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[start]) >= 0 {
			start++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail(err, start)
		}
		if obj, ok := p.specObject(raw, lineAt(start)); ok {
			objects = append(objects, obj)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return fail(err, dec.InputOffset())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		p.errorf(lineAt(dec.InputOffset()), place{}, "invalid JSON: unexpected data after the array of specifications")
	}
	return objects
}

// specObject decodes raw, a specification found on line, as an object.
func (p *problems) specObject(raw json.RawMessage, line int) (jsonObject, bool) {
	var fields map[string]json.RawMessage
	if describeJSON(raw) != "an object" || json.Unmarshal(raw, &fields) != nil {
		p.errorf(line, place{}, "a specification must be a JSON object, not %s", describeJSON(raw))
		return jsonObject{}, false
	}
	return jsonObject{line: line, fields: fields}, true
}

// jsonErrorText is err's message without the package prefix.
func jsonErrorText(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

// describeJSON names the kind of a JSON value for messages.
func describeJSON(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// fieldReader reads the fields of one JSON object of a specification,
// recording problems at the object's line and place. Absent fields and
// fields set to null read as empty, as they did in monasca-transform, where
// Spark turned both into None.
type fieldReader struct {
	p      *problems
	line   int
	at     place
	fields map[string]json.RawMessage
}

// has reports whether key is present and not null.
func (f fieldReader) has(key string) bool {
	raw, ok := f.fields[key]
	return ok && describeJSON(raw) != "null"
}

// str reads a string field.
func (f fieldReader) str(key string) string {
	if !f.has(key) {
		return ""
	}
	var s string
	if err := json.Unmarshal(f.fields[key], &s); err != nil {
		f.p.errorf(f.line, f.at.child(key), "must be a string, not %s", describeJSON(f.fields[key]))
	}
	return s
}

// strs reads a list of strings.
func (f fieldReader) strs(key string) []string {
	if !f.has(key) {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(f.fields[key], &list); err != nil {
		f.p.errorf(f.line, f.at.child(key), "must be a list of strings, not %s", describeJSON(f.fields[key]))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, raw := range list {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || describeJSON(raw) != "a string" {
			f.p.errorf(f.line, f.at.child(key), "entry %d must be a string, not %s", i, describeJSON(raw))
			continue
		}
		out = append(out, s)
	}
	return out
}

// object reads an object field; ok is false when it is absent, null or not
// an object (an error).
func (f fieldReader) object(key string) (fieldReader, bool) {
	if !f.has(key) {
		return fieldReader{}, false
	}
	sub := fieldReader{p: f.p, line: f.line, at: f.at.child(key)}
	if describeJSON(f.fields[key]) != "an object" || json.Unmarshal(f.fields[key], &sub.fields) != nil {
		f.p.errorf(f.line, sub.at, "must be an object, not %s", describeJSON(f.fields[key]))
		return fieldReader{}, false
	}
	return sub, true
}

// objects reads a list of objects; entries that are not objects are errors
// and left out.
func (f fieldReader) objects(key string) []fieldReader {
	if !f.has(key) {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(f.fields[key], &list); err != nil {
		f.p.errorf(f.line, f.at.child(key), "must be a list of objects, not %s", describeJSON(f.fields[key]))
		return nil
	}
	var out []fieldReader
	for i, raw := range list {
		entry := fieldReader{p: f.p, line: f.line, at: f.at.child(fmt.Sprintf("%s[%d]", key, i))}
		if describeJSON(raw) != "an object" || json.Unmarshal(raw, &entry.fields) != nil {
			f.p.errorf(f.line, entry.at, "must be an object, not %s", describeJSON(raw))
			continue
		}
		out = append(out, entry)
	}
	return out
}

// warnUnknown warns about the keys that are not in known: monasca-transform
// read its specs through a fixed schema and ignored everything else.
func (f fieldReader) warnUnknown(known []string) {
	var unknown []string
	for k := range f.fields {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		msg := fmt.Sprintf("unknown key %q is ignored", k)
		if s := suggest(k, known); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		f.p.warnf(f.line, f.at, "%s", msg)
	}
}
