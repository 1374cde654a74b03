package components

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func onPartition(msg *service.Message, topic string, partition, offset int) *service.Message {
	msg.MetaSetMut("kafka_topic", topic)
	msg.MetaSetMut("kafka_partition", partition)
	msg.MetaSetMut("kafka_offset", offset)
	return msg
}

// drain reads and acknowledges everything b has to write, moving the clock
// on by a second per read, until it has been quiet for a moment or writes
// the same progress twice in a row.
func drain(t *testing.T, b *aggregateBuffer, clock *testClock) service.MessageBatch {
	t.Helper()
	var out service.MessageBatch
	var lastProgress string
	for {
		clock.Set(clock.Now().UnixMilli() + 1000)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		batch, ack, err := b.ReadBatch(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := ack(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		raw, _ := batch[0].AsBytes()
		if json.Valid(raw) && string(raw[:min(len(raw), 12)]) == `{"progress":` {
			if string(raw) == lastProgress {
				return out
			}
			lastProgress = string(raw)
		}
		out = append(out, batch...)
	}
}

// TestScaleOutStagesMatchOneInstance runs two input partitions through a
// stage-one buffer and its output through a stage-two buffer, as the
// partials topic would deliver it, and gets the single instance's value.
func TestScaleOutStagesMatchOneInstance(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	one := newTestBuffer(t, clock, "stage: partials\npartials_partitions: 2\nprogress_interval: 1ms")
	first := write(t, one,
		onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 10),
		onPartition(envelope("cpu", "h2", t0+2_000, 2), "metrics", 0, 11))
	write(t, one, onPartition(envelope("cpu", "h1", t0+3_000, 4), "metrics", 1, 7))
	write(t, one, onPartition(envelope("cpu", "h1", t0+12_500, 100), "metrics", 0, 12))
	write(t, one, onPartition(envelope("cpu", "h1", t0+12_600, 100), "metrics", 1, 8))

	partials := drain(t, one, clock)
	if !first.acked() {
		t.Fatal("stage one did not acknowledge input whose window's states were delivered")
	}
	states, progressed := 0, map[string]int64{}
	for _, msg := range partials {
		var m wireMessage
		raw, _ := msg.AsBytes()
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if p, ok := msg.MetaGet(partitionMetaKey); !ok || (p != "0" && p != "1") {
			t.Fatalf("message without a partials partition: %s", raw)
		}
		if m.State != nil {
			states++
		}
		for _, p := range m.Progress {
			if p.Through != nil {
				progressed[strconv.Itoa(int(p.Source.Partition))] = *p.Through
			}
		}
	}
	if states != 3 || progressed["0"] < t0+12_000 || progressed["1"] < t0+12_000 {
		t.Fatalf("want 3 states and progress through at least %d for both partitions, got %d states, progress %v", t0+12_000, states, progressed)
	}

	two := newTestBuffer(t, clock, "stage: merge")
	for i, msg := range partials {
		p, _ := msg.MetaGet(partitionMetaKey)
		n, _ := strconv.Atoi(p)
		write(t, two, onPartition(msg.Copy(), "partials", n, i))
	}
	out := drain(t, two, clock)
	if len(out) != 1 {
		t.Fatalf("want one aggregate, got %d", len(out))
	}
	var env outEnvelopeForTest
	raw, _ := out[0].AsBytes()
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	if env.Metric.Name != "cpu.total" || env.Metric.Value != 7 || env.Metric.Timestamp != t0 || env.Metric.ValueMeta.RecordCount != 3 {
		t.Fatalf("want cpu.total 7 over 3 records at %d, got %s", t0, raw)
	}

	// Stage one replays after a crash: the same states again change nothing.
	for i, msg := range partials {
		p, _ := msg.MetaGet(partitionMetaKey)
		n, _ := strconv.Atoi(p)
		write(t, two, onPartition(msg.Copy(), "partials", n, len(partials)+i))
	}
	if out := drain(t, two, clock); len(out) != 0 {
		t.Fatalf("a replay of stage one's states was emitted again: %d messages", len(out))
	}
}

type outEnvelopeForTest struct {
	Metric struct {
		Name      string  `json:"name"`
		Timestamp int64   `json:"timestamp"`
		Value     float64 `json:"value"`
		ValueMeta struct {
			RecordCount int64 `json:"record_count"`
		} `json:"value_meta"`
	} `json:"metric"`
}

// TestMergeStageRejectsMismatchedStages: states from a stage one with
// another window lag are counted as invalid, not merged.
func TestMergeStageRejectsMismatchedStages(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	two := newTestBuffer(t, clock, "stage: merge\ndead_letter: true")
	msg := service.NewMessage([]byte(`{"progress":[{"source":{"topic":"metrics","partition":0,"offset":1},"through":1,"idle":false,"lag_ms":5000}]}`))
	write(t, two, onPartition(msg, "partials", 0, 1))
	msg = service.NewMessage([]byte(`{"state":{"source":{"topic":"metrics","partition":0,"offset":1},"rule":"nope","window_start":0,"window_end":10000,"count":1}}`))
	write(t, two, onPartition(msg, "partials", 0, 2))
	out := drain(t, two, clock)
	if len(out) != 2 {
		t.Fatalf("want 2 dead letters, got %d", len(out))
	}
	for _, m := range out {
		if r, _ := m.MetaGet(invalidReasonMetaKey); r != reasonStateMismatch {
			t.Errorf("dead letter reason %q, want %s", r, reasonStateMismatch)
		}
	}
}

// TestScaleOutAccumulatorsMatchOneInstance: functions with accumulators
// (stddev, a percentile, a counter's increase) travel through the partials topic's JSON and give
// the single instance's values.
func TestScaleOutAccumulatorsMatchOneInstance(t *testing.T) {
	specs := writeSpecsText(t, `
aggregationSpecifications:
  - name: spread
    aggregatedMetricName: cpu.stddev
    filteredMetricName: cpu
    function: stddev
  - name: p90
    aggregatedMetricName: cpu.p90
    filteredMetricName: cpu
    function: p90
  - name: increase
    aggregatedMetricName: cpu.increase
    filteredMetricName: cpu
    function: increase
`)
	var input []*service.Message
	for i := range 40 {
		input = append(input, onPartition(envelope("cpu", fmt.Sprintf("h%d", i%5), t0+int64(i)*200, float64(i*i%97)), "metrics", i%2, 10+i))
	}
	late := func(p int) *service.Message { // moves both partitions' watermarks on
		return onPartition(envelope("cpu", "h1", t0+12_500, 0), "metrics", p, 100)
	}
	values := func(out service.MessageBatch) map[string]float64 {
		got := map[string]float64{}
		for _, msg := range out {
			var env outEnvelopeForTest
			raw, _ := msg.AsBytes()
			if err := json.Unmarshal(raw, &env); err != nil {
				t.Fatal(err)
			}
			if env.Metric.Timestamp == t0 {
				got[env.Metric.Name] = env.Metric.Value
			}
		}
		return got
	}
	clock := newTestClock(t0 + 13_000)
	single := newTestBufferWithSpecs(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), specs, "state_cache: state")
	write(t, single, input...)
	write(t, single, late(0), late(1))
	want := values(drain(t, single, clock))

	clock = newTestClock(t0 + 13_000)
	one := newTestBufferWithSpecs(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), specs,
		"state_cache: state\nstage: partials\npartials_partitions: 2\nprogress_interval: 1ms")
	for _, msg := range input {
		write(t, one, msg)
	}
	write(t, one, late(0))
	write(t, one, late(1))
	partials := drain(t, one, clock)
	two := newTestBufferWithSpecs(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), specs, "state_cache: state\nstage: merge")
	for i, msg := range partials {
		p, _ := msg.MetaGet(partitionMetaKey)
		n, _ := strconv.Atoi(p)
		write(t, two, onPartition(msg.Copy(), "partials", n, i))
	}
	got := values(drain(t, two, clock))
	if len(want) != 3 || len(got) != 3 || math.Abs(got["cpu.stddev"]-want["cpu.stddev"]) > 1e-9*want["cpu.stddev"] ||
		got["cpu.p90"] != want["cpu.p90"] || got["cpu.increase"] != want["cpu.increase"] {
		t.Fatalf("two stages %v, one instance %v", got, want)
	}

	// Stage one replays after a crash: the same states, accumulators
	// included, change nothing.
	for i, msg := range partials {
		p, _ := msg.MetaGet(partitionMetaKey)
		n, _ := strconv.Atoi(p)
		write(t, two, onPartition(msg.Copy(), "partials", n, len(partials)+i))
	}
	if out := drain(t, two, clock); len(out) != 0 {
		t.Fatalf("a replay of stage one's states was emitted again: %d messages", len(out))
	}
}
