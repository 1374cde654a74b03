package monasca

import "testing"

// benchEnvelope is a typical monasca-agent metric of 285 bytes: four
// dimensions, a 32-hex-digit tenant and a region.
const benchEnvelope = `{"metric":{"name":"disk.space_used_perc","dimensions":{"hostname":"node-7","service":"system","component":"monasca-agent","mount_point":"/"},"timestamp":1523323485360,"value":41.73},"meta":{"tenantId":"d6bece1bbeff47c1b8734cd4e544dc02","region":"RegionOne"},"creation_time":1523323489}`

func BenchmarkDecode(b *testing.B) {
	benchmarkDecode(b, Decoder{}, []byte(benchEnvelope))
}

// benchmarkDecode measures d decoding in, again and again into one Metric.
func benchmarkDecode(b *testing.B, d Decoder, in []byte) {
	var m Metric
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(in, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEnvelope(b *testing.B) {
	m := Metric{
		Name: "disk.space_used_perc_agg",
		Dimensions: []Dimension{
			{"component", "monasca-agent"},
			{"hostname", "compute-0042.example.org"},
			{"mount_point", "/var/lib/nova"},
			{"service", "monitoring"},
		},
		Timestamp: 1523322000000, Value: 41.73125,
		TenantID: "d6bece1bbeff47c1b8734cd4e544dc02", Region: "RegionOne",
	}
	valueMeta := []Field{
		{"record_count", 360},
		{"firstrecord_timestamp_string", "2018-04-10 01:00:00"},
		{"lastrecord_timestamp_string", "2018-04-10 01:59:50"},
	}
	buf := AppendEnvelope(nil, &m, valueMeta, 1523325601)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEnvelope(buf[:0], &m, valueMeta, 1523325601)
	}
}

// BenchmarkDecodeKeepMaps decodes benchEnvelope with a value_meta of three
// entries, as the record store reads it.
func BenchmarkDecodeKeepMaps(b *testing.B) {
	benchmarkDecode(b, Decoder{KeepMaps: true}, []byte(`{"metric":{"name":"disk.space_used_perc","dimensions":{"hostname":"node-7","service":"system","component":"monasca-agent","mount_point":"/"},"timestamp":1523323485360,"value":41.73,"value_meta":{"host":"node-7","device":"sda1","fs":"ext4"}},"meta":{"tenantId":"d6bece1bbeff47c1b8734cd4e544dc02","region":"RegionOne"},"creation_time":1523323489}`))
}
