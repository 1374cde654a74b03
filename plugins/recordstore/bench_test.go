package recordstore

import (
	"testing"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// Envelopes of monasca-transform's test data: a host metric that fans out
// to four transform specs, and a vcpus metric with a large value_meta.
const (
	benchCPU = `{"metric":{"name":"cpu.total_logical_cores","dimensions":{"hostname":"test-cp1-comp0027-mgmt","service":"monitoring","component":"monasca-agent"},` +
		`"timestamp":1457366963000,"value":8.0},"meta":{"tenantId":"d6bece1bbeff47c1b8734cd4e544dc02","region":"useast"},"creation_time":1457366963}`
	benchVcpus = `{"metric":{"name":"vcpus","dimensions":{"region":"useast","unit":"vcpu","resource_id":"b1a7f31d-3f85-4475-a50b-77094b62b078","source":"openstack",` +
		`"project_id":"8647fd5030b04a799b0411cc38c4102d","user_id":"a69aabac824c4e1688702b8eb7e22af2","type":"gauge"},"timestamp":1453308000000,"value":1.0,` +
		`"value_meta":{"audit_period_beginning":"2016-05-13T23:00:00.000000","availability_zone":"None","host":"test-cp1-comp0037-mgmt","event_type":"compute.instance.update",` +
		`"launched_at":"2016-05-13T23:14:06.000000","deleted_at":"","state":"active","memory_mb":"512","root_gb":"1","vcpus":"1","audit_period_ending":"2016-05-13T23:15:29.476223",` +
		`"ephemeral_gb":"0","instance_flavor_id":"1","created_at":"2016-05-13 23:13:44+00:00","disk_gb":"1","image_ref_url":"http://10.241.104.4:9292/images/12990d03-8059-4052-8b93-d4c6376fea57"}},` +
		`"meta":{"tenantId":"225bbc4c5c1c4dfaa910cb44b5a4d7b7","region":"unset"},"creation_time":1458166131}`
)

func BenchmarkConvert(b *testing.B) {
	for _, bm := range []struct{ name, envelope string }{{"cpu_4_ids", benchCPU}, {"vcpus_2_ids", benchVcpus}} {
		b.Run(bm.name, func(b *testing.B) {
			c := newTestConverter(b)
			m := decode(b, bm.envelope)
			var recs []Record
			b.ReportAllocs()
			for b.Loop() {
				var out Outcome
				if recs, out = c.Convert(m, recs[:0]); out.Status != Converted {
					b.Fatal(out)
				}
			}
		})
	}
}

// BenchmarkDecodeConvert is the whole per-message cost of the record store:
// decoding with KeepMaps, then converting.
func BenchmarkDecodeConvert(b *testing.B) {
	in := []byte(benchCPU)
	c := newTestConverter(b)
	d := monasca.Decoder{KeepMaps: true}
	var m monasca.Metric
	var recs []Record
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(in, &m); err != nil {
			b.Fatal(err)
		}
		var out Outcome
		if recs, out = c.Convert(&m, recs[:0]); out.Status != Converted {
			b.Fatal(out)
		}
	}
}

func BenchmarkDecodeInstanceUsage(b *testing.B) {
	in := []byte(usageExample)
	var u InstanceUsage
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeInstanceUsage(in, &u); err != nil {
			b.Fatal(err)
		}
	}
}
