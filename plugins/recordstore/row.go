package recordstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Row is a record in the layout of monasca-transform's record store
// rows, whose column order it follows: what the monasca_record_store
// processor writes and DecodeRow reads.
type Row struct {
	EventTimestampUnix   float64           `json:"event_timestamp_unix"`
	EventTimestampString string            `json:"event_timestamp_string"`
	EventType            string            `json:"event_type"`
	EventQuantityName    string            `json:"event_quantity_name"`
	EventQuantity        float64           `json:"event_quantity"`
	ResourceUUID         string            `json:"resource_uuid"`
	TenantID             string            `json:"tenant_id"`
	UserID               string            `json:"user_id"`
	Region               string            `json:"region"`
	Zone                 string            `json:"zone"`
	Host                 string            `json:"host"`
	EventDate            string            `json:"event_date"`
	EventHour            string            `json:"event_hour"`
	EventMinute          string            `json:"event_minute"`
	EventSecond          string            `json:"event_second"`
	MetricGroup          string            `json:"metric_group"`
	MetricID             string            `json:"metric_id"`
	Meta                 map[string]string `json:"meta"`
	Dimensions           map[string]string `json:"dimensions"`
	ValueMeta            map[string]string `json:"value_meta"`
}

// EncodeRow renders a record as JSON. The maps are written with sorted
// keys, so equal records give equal bytes.
func EncodeRow(r *Record) ([]byte, error) {
	t := time.UnixMilli(r.Timestamp).UTC()
	j := Row{
		EventTimestampUnix:   float64(r.Timestamp) / 1000,
		EventTimestampString: t.Format("2006-01-02 15:04:05"),
		EventQuantity:        r.Value,
		EventDate:            t.Format("2006-01-02"),
		EventHour:            t.Format("15"),
		EventMinute:          t.Format("04"),
		EventSecond:          t.Format("05"),
		Meta:                 map[string]string{},
		Dimensions:           map[string]string{},
		ValueMeta:            map[string]string{},
	}
	for _, d := range r.Fields {
		switch d.Key {
		case KeyEventType:
			j.EventType, j.EventQuantityName = d.Value, d.Value
		case KeyMetricID:
			j.MetricID, j.MetricGroup = d.Value, d.Value
		case KeyTenantID:
			j.TenantID = d.Value
		case KeyUserID:
			j.UserID = d.Value
		case KeyResourceUUID:
			j.ResourceUUID = d.Value
		case KeyRegion:
			j.Region = d.Value
		case KeyZone:
			j.Zone = d.Value
		case KeyHost:
			j.Host = d.Value
		default:
			if k, ok := strings.CutPrefix(d.Key, PrefixDimensions); ok {
				j.Dimensions[k] = d.Value
			} else if k, ok := strings.CutPrefix(d.Key, PrefixMeta); ok {
				j.Meta[k] = d.Value
			} else if k, ok := strings.CutPrefix(d.Key, PrefixValueMeta); ok {
				j.ValueMeta[k] = d.Value
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&j); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DecodeRow reads a record-store row (as EncodeRow writes it, and as
// monasca-transform's record store held it) into rec: MetricID is
// metric_id, the record fields and the raw maps become Fields, in the
// layout of the package documentation, Timestamp comes from event_timestamp_unix
// (seconds) and Value from event_quantity, which must be JSON numbers, as
// EncodeRow and monasca-transform's record store write them. This input is
// for replaying and testing records, not a hot path: it uses encoding/json
// and allocates.
func DecodeRow(b []byte, rec *Record) error {
	var r Row
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("record store row: %w", err)
	}
	switch {
	case r.MetricID == "":
		return errors.New("record store row: metric_id is missing or empty")
	case r.EventType == "":
		return errors.New("record store row: event_type is missing or empty")
	case math.IsNaN(r.EventTimestampUnix) || math.IsInf(r.EventTimestampUnix, 0) || r.EventTimestampUnix < 0 || r.EventTimestampUnix > maxUnixMillis/1000:
		return fmt.Errorf("record store row: event_timestamp_unix %v is out of range", r.EventTimestampUnix)
	}
	*rec = Record{
		MetricID:  r.MetricID,
		Timestamp: int64(math.Floor(r.EventTimestampUnix * 1000)),
		Value:     r.EventQuantity,
		Region:    r.Region,
		Fields:    rec.Fields[:0],
	}
	for _, f := range [...][2]string{
		{KeyEventType, r.EventType}, {KeyMetricID, r.MetricID}, {KeyTenantID, r.TenantID}, {KeyUserID, r.UserID},
		{KeyResourceUUID, r.ResourceUUID}, {KeyRegion, r.Region}, {KeyZone, r.Zone}, {KeyHost, r.Host},
	} {
		rec.Fields = append(rec.Fields, monasca.Dimension{Key: f[0], Value: f[1]})
	}
	for _, raw := range [...]struct {
		prefix  string
		entries map[string]string
	}{{PrefixDimensions, r.Dimensions}, {PrefixMeta, r.Meta}, {PrefixValueMeta, r.ValueMeta}} {
		for k, v := range raw.entries {
			rec.Fields = append(rec.Fields, monasca.Dimension{Key: raw.prefix + k, Value: v})
		}
	}
	return nil
}
