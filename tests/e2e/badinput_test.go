package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// rejectedInputs are envelopes the Monasca API would reject, by the reason
// the pipeline must count them under. Each %d is a timestamp in the
// backlog's windows, and each would change an aggregate if it were taken:
// all match a specification, for tenant-a. The first ones are the faults
// seen in production: a value and a timestamp that are strings holding
// numbers, metrics without a tenant or without meta, a clock a year back.
var rejectedInputs = []struct{ reason, body string }{
	{"wrong_type", `{"metric":{"name":"net.in_bytes","dimensions":{"hostname":"host-0","service":"svc-a"},"timestamp":%d,"value":"99999999.5"},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"wrong_type", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0","cluster":"prod"},"timestamp":"%d","value":1},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"missing_tenant", `{"metric":{"name":"mem.used_mb","dimensions":{"service":"svc-a"},"timestamp":%d,"value":999999},"meta":{"region":"RegionOne"},"creation_time":1}`},
	{"missing_tenant", `{"metric":{"name":"mem.used_mb","dimensions":{"service":"svc-a"},"timestamp":%d,"value":999999},"meta":{"tenantId":"","region":"RegionOne"},"creation_time":1}`},
	{"missing_tenant", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0","cluster":"prod"},"timestamp":%d,"value":1},"creation_time":1}`},
	{"timestamp_too_old", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0","cluster":"prod"},"timestamp":%d,"value":1},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"timestamp_in_future", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0","cluster":"prod"},"timestamp":%d,"value":1},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"malformed_json", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0"},"timestamp":%d`},
	{"malformed_json", `cpu.percent host-0 %d 1`},
	{"missing_field", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0","cluster":"prod"},"timestamp":%d},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"wrong_type", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0"},"timestamp":%d,"value":"high"},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"non_finite_value", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0","cluster":"prod"},"timestamp":%d,"value":NaN},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"non_finite_value", `{"metric":{"name":"net.in_bytes","dimensions":{"hostname":"host-0","service":"svc-a"},"timestamp":%d,"value":1e400},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"invalid_utf8", "{\"metric\":{\"name\":\"cpu.percent\",\"dimensions\":{\"hostname\":\"host-\xff\"},\"timestamp\":%d,\"value\":1},\"meta\":{\"tenantId\":\"tenant-a\",\"region\":\"RegionOne\"},\"creation_time\":1}"},
	{"name_too_long", `{"metric":{"name":"` + strings.Repeat("c", 256) + `","timestamp":%d,"value":1},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"dimension_too_long", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"` + strings.Repeat("h", 256) + `"},"timestamp":%d,"value":1},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
	{"timestamp_out_of_range", `{"metric":{"name":"cpu.percent","dimensions":{"hostname":"host-0","cluster":"prod"},"timestamp":%d,"value":1},"meta":{"tenantId":"tenant-a","region":"RegionOne"},"creation_time":1}`},
}

// TestBadInputChangesNoAggregate mixes every kind of rejected input into a
// backlog of valid metrics, each at a random place in a random partition,
// runs the aggregation pipeline once, and expects exactly the reference
// aggregates of the valid metrics, and each rejected message counted once
// under its reason in monasca_metrics_invalid_total.
func TestBadInputChangesNoAggregate(t *testing.T) {
	cfg := pipelineConfig{
		inputTopic: "metrics", outputTopic: "aggregates",
		window: 2 * time.Second, lag: time.Second, idle: 5 * time.Second,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rng := newRand(t)
	w := workload{window: cfg.window, lag: cfg.lag, windows: 30, perWindow: 120, partitions: 4}
	e := newEnv(t, cfg)
	g := w.generate(rng, time.Now())
	expected := expectedAggregates(g.metrics, cfg.window)

	const day = 24 * 3_600_000
	recs := g.records
	want := map[string]int{}
	for _, bad := range rejectedInputs {
		// The timestamp of a valid metric: a window that has, or will
		// have, an aggregate the bad one would change.
		ts := g.metrics[rng.IntN(len(g.metrics))].ts
		switch bad.reason {
		case "timestamp_too_old":
			ts -= 365 * day
		case "timestamp_in_future":
			ts += day
		case "timestamp_out_of_range":
			ts /= 1000 // seconds sent as milliseconds
		}
		body := bad.body
		if strings.Contains(body, "%d") {
			body = fmt.Sprintf(body, ts)
		}
		// Next to a random record, in its partition.
		i := rng.IntN(len(recs) + 1)
		p := rng.Int32N(w.partitions)
		if i < len(recs) {
			p = recs[i].Partition
		}
		recs = slices.Insert(recs, i, inputRecord(p, []byte(body)))
		want[bad.reason]++
	}
	e.produce(ctx, recs)
	t.Logf("produced %d records (%d valid metrics, %d rejected): %d aggregates expected",
		len(recs), len(g.metrics), len(rejectedInputs), len(expected))
	runOnce(ctx, t, e, e.collect(ctx), expected, want)
}
