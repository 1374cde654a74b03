package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestInputMessagesMetadata(t *testing.T) {
	p := newInputPartition("metrics", 3)
	ts := time.UnixMilli(1_700_000_000_123)
	records := []*kgo.Record{
		{Value: []byte("a"), Offset: 10, Timestamp: ts, Key: []byte("k1"),
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("x")}, {Key: "kafka_offset", Value: []byte("spoof")}}},
		{Value: []byte("b"), Offset: 11, Timestamp: ts, Key: []byte("k1"),
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("y")}}},
		{Value: []byte("c"), Offset: 13, Timestamp: ts.Add(time.Millisecond),
			Headers: []kgo.RecordHeader{{Key: "other", Value: []byte("y")}}},
		{Value: []byte("d"), Offset: 14, Timestamp: ts.Add(time.Millisecond), Key: []byte{}},
	}
	batch := p.messages(records)
	if len(batch) != len(records) {
		t.Fatalf("%d messages for %d records", len(batch), len(records))
	}
	for i, want := range []struct {
		value   string
		offset  int64
		key     any // nil: no kafka_key
		ms      int64
		headers map[string]string
	}{
		{"a", 10, "k1", 1_700_000_000_123, map[string]string{"origin": "x"}},
		{"b", 11, "k1", 1_700_000_000_123, map[string]string{"origin": "y"}},
		{"c", 13, nil, 1_700_000_000_124, map[string]string{"other": "y"}},
		{"d", 14, "", 1_700_000_000_124, nil},
	} {
		m := batch[i]
		if b, _ := m.AsBytes(); string(b) != want.value {
			t.Errorf("message %d: value %q, want %q", i, b, want.value)
		}
		meta := map[string]any{}
		_ = m.MetaWalkMut(func(k string, v any) error {
			meta[k] = v
			return nil
		})
		expect := map[string]any{
			metaTopic:     "metrics",
			metaPartition: int32(3),
			metaOffset:    want.offset,
			metaTimestamp: want.ms,
		}
		if want.key != nil {
			expect[metaKey] = want.key
		}
		for k, v := range want.headers {
			expect[k] = v
		}
		if len(meta) != len(expect) {
			t.Errorf("message %d: metadata %v, want %v", i, meta, expect)
		}
		for k, v := range expect {
			if meta[k] != v {
				t.Errorf("message %d: %s = %#v (%T), want %#v (%T)", i, k, meta[k], meta[k], v, v)
			}
		}
	}
}

// benchRecords returns n records of one partition shaped like Monasca
// metrics: 300-byte values, no key, one producer batch's timestamp.
func benchRecords(n int, key, header bool, distinctTimestamps bool) []*kgo.Record {
	value := make([]byte, 300)
	ts := time.UnixMilli(1_700_000_000_000)
	records := make([]*kgo.Record, n)
	for i := range records {
		r := &kgo.Record{Topic: "metrics", Partition: 3, Offset: int64(1_000_000 + i), Value: value, Timestamp: ts}
		if distinctTimestamps {
			r.Timestamp = ts.Add(time.Duration(i) * time.Millisecond)
		}
		if key {
			r.Key = fmt.Appendf(nil, "series-%d", i)
		}
		if header {
			r.Headers = []kgo.RecordHeader{{Key: "monasca_origin", Value: []byte("monasca-aggregation")}}
		}
		records[i] = r
	}
	return records
}

// BenchmarkInputMessages measures the conversion of records into messages
// with their metadata; one op is one record.
func BenchmarkInputMessages(b *testing.B) {
	for _, bc := range []struct {
		name                  string
		key, header, distinct bool
	}{
		{"plain", false, false, false},
		{"header", false, true, false},
		{"distinct_timestamps", false, false, true},
		{"key_header_distinct_timestamps", true, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const batchSize = 1024
			records := benchRecords(batchSize, bc.key, bc.header, bc.distinct)
			p := newInputPartition("metrics", 3)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += batchSize {
				p.messages(records[:min(batchSize, b.N-done)])
			}
		})
	}
}
