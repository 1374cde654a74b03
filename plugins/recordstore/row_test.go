package recordstore

import (
	"slices"
	"strings"
	"testing"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

func TestRowRoundTrip(t *testing.T) {
	conv, err := NewConverter([]Spec{{EventType: "vcpus", MetricIDs: []string{"vcpus_all"}, RequiredFields: []string{"creation_time"}}})
	if err != nil {
		t.Fatal(err)
	}
	var d monasca.Decoder
	d.KeepMaps = true
	var m monasca.Metric
	if err := d.Decode([]byte(`{"metric":{"name":"vcpus","dimensions":{"project_id":"p1","resource_id":"r1"},"timestamp":1453308005123,"value":2,"value_meta":{"host":"comp0294"}},"meta":{"tenantId":"t","region":"RegionOne"},"creation_time":1}`), &m); err != nil {
		t.Fatal(err)
	}
	recs, out := conv.Convert(&m, nil)
	if out.Status != Converted || len(recs) != 1 {
		t.Fatalf("%+v %d", out, len(recs))
	}
	raw, err := EncodeRow(&recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := DecodeRow(raw, &back); err != nil {
		t.Fatal(err)
	}
	sortDims := func(d []monasca.Dimension) []monasca.Dimension {
		d = slices.Clone(d)
		slices.SortFunc(d, func(a, b monasca.Dimension) int { return strings.Compare(a.Key, b.Key) })
		return d
	}
	if back.MetricID != "vcpus_all" || back.Timestamp != recs[0].Timestamp || back.Value != 2 ||
		!slices.Equal(sortDims(back.Fields), sortDims(recs[0].Fields)) {
		t.Fatalf("row %s decoded to %+v, want %+v", raw, back, recs[0])
	}
}

func TestDecodeRowErrors(t *testing.T) {
	for name, row := range map[string]string{
		"not json":          `{`,
		"no metric_id":      `{"event_type":"a","event_timestamp_unix":1}`,
		"no event_type":     `{"metric_id":"a","event_timestamp_unix":1}`,
		"negative time":     `{"metric_id":"a","event_type":"a","event_timestamp_unix":-1}`,
		"wrong quantity":    `{"metric_id":"a","event_type":"a","event_timestamp_unix":1,"event_quantity":"x"}`,
		"dimension objects": `{"metric_id":"a","event_type":"a","event_timestamp_unix":1,"dimensions":{"a":{}}}`,
	} {
		var r Record
		if err := DecodeRow([]byte(row), &r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
