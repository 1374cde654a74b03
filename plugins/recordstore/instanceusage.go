package recordstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Layouts of the instance-usage time strings, all in UTC.
const (
	usageDateLayout = "2006-01-02"
	timestampLayout = "2006-01-02 15:04:05"
)

// maxUnixMillis is 9999-12-31T23:59:59.999Z, the last instant Monasca can
// store; later times in a row are errors.
const maxUnixMillis = 253_402_300_799_999

// DecodeInstanceUsage decodes one instance-usage row, the JSON object that
// monasca-transform's first stage wrote to the metrics_pre_hourly topic,
// into u (pass u.Sample() and u.Records to windowagg.Engine.AddPartial):
//
//   - u.MetricID is processing_meta.metric_id, the transform spec the row
//     belongs to;
//   - u.Fields are every top-level string field of the row (tenant_id,
//     host, usage_date, aggregation_period, ...) in input order, then every
//     extra_data_map entry whose key is not already present: the names
//     stage 2 groups by, with extra_data_map supplying "dimensions#<key>"
//     and the fields a row lacks;
//   - u.Start is the start of the row's usage period in epoch
//     milliseconds: usage_date ("YYYY-MM-DD", UTC), plus usage_hour and
//     usage_minute when they are two-digit numbers. "all", "NA", null or an
//     absent usage_hour or usage_minute means the row covers the enclosing
//     period;
//   - u.Quantity is quantity.
//
// u.Records has Records = record_count (a float in the rows, such as
// 4.0), and FirstTime and LastTime from firstrecord_timestamp_unix and
// lastrecord_timestamp_unix (float seconds, truncated toward negative
// infinity to the millisecond), with FirstValue = LastValue = quantity. A
// rate row, whose processing_meta holds oldest_timestamp_string,
// oldest_quantity, latest_timestamp_string and latest_quantity, takes
// FirstValue and LastValue from the oldest and latest quantities (strings
// holding numbers). Its times stay the record times when the row has them:
// calculate_rate wrote its first record's time as the oldest string and its
// last record's as the latest, so they order rows alike, to the millisecond
// instead of the second, and the aggregate then reports the record times of
// the rows it took the quantities from, as the original did. Without them
// the "YYYY-MM-DD HH:MM:SS" UTC strings give the times.
//
// Like monasca-transform, which read processing_meta and extra_data_map as
// maps of strings, a non-string entry of those maps is taken as its JSON
// text and a null one as absent. The rate entries are the only numbers
// read from strings, because monasca-transform wrote them so; quantity,
// record_count and the unix times must be JSON numbers, as it wrote them.
// A row that is not such an object, lacks metric_id, usage_date, quantity
// or record_count (or the unix times of a row that is not a rate row), holds a field of the wrong type, a
// non-integral or negative record count, a time outside the years 1970 to
// 9999, or some but not all of the rate entries, is an error; u is then
// unspecified.
//
// This input is low-volume, so DecodeInstanceUsage uses encoding/json and
// allocates. u's strings do not alias b; u.Fields reuses its array.
func DecodeInstanceUsage(b []byte, u *InstanceUsage) error {
	if !utf8.Valid(b) {
		return errors.New("instance usage: invalid UTF-8")
	}
	members, err := objectMembers(b)
	if err != nil {
		return fmt.Errorf("instance usage: %w", err)
	}
	*u = InstanceUsage{Fields: u.Fields[:0]}
	var row usageMembers
	if err := row.read(members, u); err != nil {
		return fmt.Errorf("instance usage: %w", err)
	}
	if err := row.values(u); err != nil {
		return fmt.Errorf("instance usage: %w", err)
	}
	return nil
}

// usageMembers are the members of an instance-usage row that are not
// fields.
type usageMembers struct {
	quantity, records, firstUnix, lastUnix json.RawMessage
	processingMeta                         []member
	usage                                  [3]string // usageFields
}

// read sorts the members of a row into m and u.Fields.
func (m *usageMembers) read(members []member, u *InstanceUsage) error {
	var extra []member
	for _, mb := range members {
		switch mb.key {
		case "quantity":
			m.quantity = mb.value
		case "record_count":
			m.records = mb.value
		case "firstrecord_timestamp_unix":
			m.firstUnix = mb.value
		case "lastrecord_timestamp_unix":
			m.lastUnix = mb.value
		case "processing_meta", "extra_data_map":
			entries, err := stringMap(mb.value)
			if err != nil {
				return fmt.Errorf("%s: %w", mb.key, err)
			}
			if mb.key == "processing_meta" {
				m.processingMeta = entries
			} else {
				extra = entries
			}
		default:
			v, isString, err := jsonString(mb.value)
			if err != nil {
				return fmt.Errorf("%s: %w", mb.key, err)
			}
			if i := indexOf(usageFields[:], mb.key); i >= 0 {
				if !isString && !isNull(mb.value) {
					return fmt.Errorf("%s: want a string, got %s", mb.key, mb.value)
				}
				m.usage[i] = v
			}
			if isString {
				u.Fields = append(u.Fields, monasca.Dimension{Key: mb.key, Value: v})
			}
		}
	}
	for _, e := range extra {
		if _, ok := u.Field(e.key); !ok {
			u.Fields = append(u.Fields, monasca.Dimension{Key: e.key, Value: e.text})
		}
	}
	return nil
}

// values sets everything of u but its fields from the members.
func (m *usageMembers) values(u *InstanceUsage) error {
	var err error
	if u.MetricID = entryText(m.processingMeta, "metric_id"); u.MetricID == "" {
		return errors.New("processing_meta.metric_id is missing or empty")
	}
	if u.Start, err = usageStart(m.usage); err != nil {
		return err
	}
	if u.Quantity, err = finite("quantity", m.quantity); err != nil {
		return err
	}
	p := &u.Records
	if p.Records, err = recordCount(m.records); err != nil {
		return err
	}
	rate, err := rateEnds(m.processingMeta, p)
	switch {
	case err != nil:
		return fmt.Errorf("processing_meta: %w", err)
	case rate && (m.firstUnix == nil || m.lastUnix == nil):
		return nil
	}
	if p.FirstTime, err = unixMillis("firstrecord_timestamp_unix", m.firstUnix); err != nil {
		return err
	}
	if p.LastTime, err = unixMillis("lastrecord_timestamp_unix", m.lastUnix); err != nil {
		return err
	}
	if !rate {
		p.FirstValue, p.LastValue = u.Quantity, u.Quantity
	}
	return nil
}

// usageFields are the fields usageStart reads, in its order.
var usageFields = [...]string{"usage_date", "usage_hour", "usage_minute"}

// usageStart returns the start of the usage period in epoch milliseconds.
func usageStart(usage [3]string) (int64, error) {
	date, err := time.Parse(usageDateLayout, usage[0])
	if err != nil || !inRange(date) {
		return 0, fmt.Errorf("usage_date %q: want YYYY-MM-DD from 1970 on", usage[0])
	}
	ms := date.UnixMilli()
	hour, hourSet, err := periodPart("usage_hour", usage[1], 23)
	if err != nil {
		return 0, err
	}
	minute, minuteSet, err := periodPart("usage_minute", usage[2], 59)
	switch {
	case err != nil:
		return 0, err
	case minuteSet && !hourSet:
		return 0, fmt.Errorf("usage_minute %q without a usage_hour", usage[2])
	}
	return ms + int64(hour)*3_600_000 + int64(minute)*60_000, nil
}

// periodPart reads a usage_hour or usage_minute: two digits up to max, or a
// value that stands for the whole enclosing period.
func periodPart(field, v string, max int) (n int, set bool, err error) {
	switch v {
	case "", "all", "NA":
		// "" is what an absent or null field leaves; monasca-transform
		// wrote "all" after a rollup and "NA" when the period was not
		// grouped.
		return 0, false, nil
	}
	if len(v) == 2 && '0' <= v[0] && v[0] <= '9' && '0' <= v[1] && v[1] <= '9' {
		if n = int(v[0]-'0')*10 + int(v[1]-'0'); n <= max {
			return n, true, nil
		}
	}
	return 0, false, fmt.Errorf("%s %q: want two digits up to %d, \"all\" or \"NA\"", field, v, max)
}

// rateEnds sets p's first and last samples from the oldest and latest
// entries of a rate row's processing_meta, and reports whether the row is
// one.
func rateEnds(pm []member, p *windowagg.Partial) (bool, error) {
	names := [...]string{"oldest_timestamp_string", "oldest_quantity", "latest_timestamp_string", "latest_quantity"}
	var v [len(names)]string
	var present, missing []string
	for i, name := range names {
		if v[i] = entryText(pm, name); v[i] != "" {
			present = append(present, name)
		} else {
			missing = append(missing, name)
		}
	}
	switch {
	case len(present) == 0:
		return false, nil
	case len(missing) > 0:
		return false, fmt.Errorf("a rate row needs all of %s, but %s missing or empty", strings.Join(names[:], ", "), strings.Join(missing, ", "))
	}
	var err error
	if p.FirstTime, err = parseTimestamp(names[0], v[0]); err != nil {
		return false, err
	}
	if p.FirstValue, err = parseQuantity(names[1], v[1]); err != nil {
		return false, err
	}
	if p.LastTime, err = parseTimestamp(names[2], v[2]); err != nil {
		return false, err
	}
	if p.LastValue, err = parseQuantity(names[3], v[3]); err != nil {
		return false, err
	}
	return true, nil
}

func parseTimestamp(field, v string) (int64, error) {
	t, err := time.Parse(timestampLayout, v)
	if err != nil || !inRange(t) {
		return 0, fmt.Errorf("%s %q: want YYYY-MM-DD HH:MM:SS from 1970 on", field, v)
	}
	return t.UnixMilli(), nil
}

// inRange reports whether t is in the years 1970 to 9999, the times a row
// may hold; the layouts cannot express later years.
func inRange(t time.Time) bool { return t.Unix() >= 0 }

func parseQuantity(field, v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s %q: want a finite number", field, v)
	}
	return f, nil
}

// finite reads a required JSON number as a finite float64.
func finite(field string, raw json.RawMessage) (float64, error) {
	text, err := number(field, raw)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		// A JSON number fails only by overflowing.
		return 0, fmt.Errorf("%s %s: out of range", field, text)
	}
	return f, nil
}

// recordCount reads record_count, a float that must hold a whole number.
func recordCount(raw json.RawMessage) (int64, error) {
	f, err := finite("record_count", raw)
	if err != nil {
		return 0, err
	}
	// 2^53: every whole float64 below it is exact.
	if f < 0 || f != math.Trunc(f) || f > 1<<53 {
		return 0, fmt.Errorf("record_count %v: want a whole number from 0 to 2^53", f)
	}
	return int64(f), nil
}

// unixMillis converts a required JSON number of epoch seconds to epoch
// milliseconds, truncating toward negative infinity. It works on the
// decimal text, because going through float64 would turn
// 1466421899.001 into 1466421899000.9998 ms and lose a millisecond.
func unixMillis(field string, raw json.RawMessage) (int64, error) {
	text, err := number(field, raw)
	if err != nil {
		return 0, err
	}
	outOfRange := func() error { return fmt.Errorf("%s %s: outside the years 1970 to 9999", field, text) }
	mantissa, exp := text, 0
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		// Bound the exponent before big.Rat expands it: any exponent of
		// this size is out of range unless the mantissa is zero, and a
		// zero written so is not a time either.
		if exp, err = strconv.Atoi(text[i+1:]); err != nil || exp < -400 || exp > 400 {
			return 0, outOfRange()
		}
		mantissa = text[:i]
	}
	r, ok := new(big.Rat).SetString(mantissa + "e" + strconv.Itoa(exp+3))
	if !ok {
		return 0, outOfRange()
	}
	// A Rat's denominator is positive, and Int.Div rounds toward negative
	// infinity for a positive divisor.
	ms := new(big.Int).Div(r.Num(), r.Denom())
	if !ms.IsInt64() || ms.Int64() < 0 || ms.Int64() > maxUnixMillis {
		return 0, outOfRange()
	}
	return ms.Int64(), nil
}

// number returns the text of a required JSON number.
func number(field string, raw json.RawMessage) (string, error) {
	switch {
	case len(raw) == 0 || isNull(raw):
		return "", fmt.Errorf("%s is missing", field)
	case raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9':
		return string(raw), nil
	}
	return "", fmt.Errorf("%s: want a number, got %s", field, raw)
}

// member is one member of a JSON object.
type member struct {
	key   string
	value json.RawMessage
	text  string // for stringMap: the entry's value as a string
}

// objectMembers returns the members of the JSON object b in input order. A
// repeated key keeps its first position and its last value, as a JSON
// object read into a map would.
func objectMembers(b []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("want a JSON object")
	}
	var members []member
	index := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("want an object key")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if i, ok := index[key]; ok {
			members[i].value = v
			continue
		}
		index[key] = len(members)
		members = append(members, member{key: key, value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return members, nil
}

// stringMap reads an object as monasca-transform's map of strings: a string
// entry is its value, a null entry is absent, and any other entry is its
// JSON text. null reads as no entries.
func stringMap(raw json.RawMessage) ([]member, error) {
	if isNull(raw) {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("want an object, got %s", raw)
	}
	members, err := objectMembers(raw)
	if err != nil {
		return nil, err
	}
	kept := members[:0]
	for _, mb := range members {
		v, isString, err := jsonString(mb.value)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s: %w", mb.key, err)
		case isString:
			mb.text = v
		case isNull(mb.value):
			continue
		default:
			mb.text = string(mb.value)
		}
		kept = append(kept, mb)
	}
	return kept, nil
}

// entryText returns the value of key among the entries of a stringMap, or
// "" when it is absent.
func entryText(entries []member, key string) string {
	for _, e := range entries {
		if e.key == key {
			return e.text
		}
	}
	return ""
}

// jsonString returns the value of raw when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false, nil
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		// Without escapes the value is the text between the quotes:
		// json.Decoder has checked it, and the row is valid UTF-8.
		return string(raw[1 : len(raw)-1]), true, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, err
	}
	return s, true, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }
