package components

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/checkpoint"
)

// t0 is a window-aligned epoch time in ms (2024-01-01T00:00:00Z).
const t0 = int64(1704067200000)

const testSpecs = `
aggregationSpecifications:
  - name: cpu total
    aggregatedMetricName: cpu.total
    filteredMetricName: cpu
    groupedDimensions: [ hostname ]
    function: sum
    rollup:
      function: sum
`

func writeSpecs(t *testing.T) string {
	t.Helper()
	return writeSpecsText(t, testSpecs)
}

// writeSpecsText writes specifications to a file and returns its path.
func writeSpecsText(t *testing.T, specs string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "specs.yaml")
	if err := os.WriteFile(path, []byte(specs), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

// newTestClock returns a clock set to ms, in Unix milliseconds.
func newTestClock(ms int64) *testClock {
	c := &testClock{}
	c.Set(ms)
	return c
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(ms int64) {
	c.mu.Lock()
	c.now = time.UnixMilli(ms)
	c.mu.Unlock()
}

// recordingAck records whether and how an input acknowledgement was called.
type recordingAck struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (r *recordingAck) fn() service.AckFunc {
	return func(_ context.Context, err error) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		r.err = err
		return nil
	}
}

func (r *recordingAck) acked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls > 0
}

// newTestBuffer builds a buffer on fresh resources with a memory cache
// "state", in which it saves unless extra names another store.
func newTestBuffer(t *testing.T, clock *testClock, extra string, opts ...service.MockResourcesOptFn) *aggregateBuffer {
	t.Helper()
	return newTestBufferOn(t, clock, service.MockResources(append(opts, service.MockResourcesOptAddCache("state"))...), extra)
}

// newBuffer builds a buffer from its parsed configuration.
func newBuffer(conf *service.ParsedConfig, res *service.Resources, clock *testClock) (*aggregateBuffer, error) {
	c, err := parseBufferConfig(conf, res.Logger())
	if err != nil {
		return nil, err
	}
	return newAggregateBuffer(c, res, clock.Now)
}

// newTestBufferOn is newTestBuffer with given resources, which buffers
// standing for successive runs share (a state cache).
func newTestBufferOn(t *testing.T, clock *testClock, res *service.Resources, extra string) *aggregateBuffer {
	t.Helper()
	return newTestBufferWithSpecs(t, clock, res, writeSpecs(t), extra)
}

// newTestBufferWithSpecs is newTestBufferOn with the specifications file
// at specsPath. Unless extra names a store, it saves in the cache "state".
func newTestBufferWithSpecs(t *testing.T, clock *testClock, res *service.Resources, specsPath, extra string) *aggregateBuffer {
	t.Helper()
	if !strings.Contains(extra, "state_store:") && !strings.Contains(extra, "state_cache:") {
		extra += "\nstate_cache: state"
	}
	conf, err := aggregateBufferSpec().ParseYAML(fmt.Sprintf(`
aggregation_specs: %s
window_size: 10s
window_lag: 2s
idle_timeout: 1m
partition_discovery: 0s
check_interval: 5ms
%s`, specsPath, extra), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBuffer(conf, res, clock)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func envelope(name, host string, ts int64, v float64) *service.Message {
	msg := service.NewMessage(fmt.Appendf(nil,
		`{"metric":{"name":%q,"dimensions":{"hostname":%q},"timestamp":%d,"value":%g,"value_meta":null},"meta":{"tenantId":"t1","region":"r1"},"creation_time":1}`,
		name, host, ts, v))
	msg.MetaSetMut("kafka_topic", "metrics")
	msg.MetaSetMut("kafka_partition", 0)
	return msg
}

func write(t *testing.T, b *aggregateBuffer, msgs ...*service.Message) *recordingAck {
	t.Helper()
	ack := &recordingAck{}
	if err := b.WriteBatch(context.Background(), service.MessageBatch(msgs), ack.fn()); err != nil {
		t.Fatal(err)
	}
	return ack
}

func read(t *testing.T, b *aggregateBuffer) (service.MessageBatch, service.AckFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	batch, ack, err := b.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	return batch, ack
}

// readOne reads a batch that must be one message: what, as the test
// wants it.
func readOne(t *testing.T, b *aggregateBuffer, what string) (*service.Message, service.AckFunc) {
	t.Helper()
	batch, ack := read(t, b)
	if len(batch) != 1 {
		t.Fatalf("want %s, got %d messages", what, len(batch))
	}
	return batch[0], ack
}

func readNothing(t *testing.T, b *aggregateBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if batch, _, err := b.ReadBatch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expected nothing to read, got %d messages, %v", len(batch), err)
	}
}

// TestBufferAcksInputOnceACheckpointHoldsIt: input is acknowledged once a
// saved checkpoint holds it, open windows too, and a restart from that
// checkpoint skips the replayed input and completes the open window.
func TestBufferAcksInputOnceACheckpointHoldsIt(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	res := service.MockResources(service.MockResourcesOptAddCache("state"))
	const store = "state_cache: state\nstate_key: group-a"
	b := newTestBufferOn(t, clock, res, store)
	input := []*service.Message{
		onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 0),
		onPartition(envelope("cpu", "h2", t0+2_000, 2), "metrics", 0, 1),
		onPartition(envelope("cpu", "h1", t0+12_500, 4), "metrics", 0, 2), // next window; moves the watermark past t0+12s
	}
	first := write(t, b, input[:2]...)
	second := write(t, b, input[2])

	out, outAck := readOne(t, b, "one aggregate")
	got, _ := out.AsStructured()
	metric := got.(map[string]any)["metric"].(map[string]any)
	if v, _ := metric["value"].(interface{ String() string }); v == nil || v.String() != "3" {
		t.Fatalf("aggregate %v", got)
	}
	if id, _ := out.MetaGet(seriesIDMetaKey); id != "cpu.total@t1" {
		t.Fatalf("series id %q", id)
	}
	if first.acked() || second.acked() {
		t.Fatal("input acknowledged before a saved checkpoint held it")
	}
	if err := outAck(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !first.acked() || first.err != nil || !second.acked() {
		t.Fatalf("input not acknowledged once its checkpoint was saved: %+v %+v", first, second)
	}
	readNothing(t, b) // the checkpoint after the delivery holds the window as closed

	b2 := newTestBufferOn(t, clock, res, store)
	if replayed := write(t, b2, input...); !replayed.acked() {
		t.Fatal("replayed input the checkpoint holds was not skipped")
	}
	clock.Set(t0 + 25_000)
	write(t, b2, onPartition(envelope("cpu", "h1", t0+24_000, 1), "metrics", 0, 3))
	out, _ = readOne(t, b2, "the open window's aggregate")
	if raw, _ := out.AsBytes(); !strings.Contains(string(raw), fmt.Sprintf(`"timestamp":%d,"value":4,`, t0+10_000)) {
		t.Fatalf("after the restart: %s, want the window from t0+10s with value 4", raw)
	}
}

func TestBufferRetriesFailedOutputAndHoldsInput(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	b := newTestBuffer(t, clock, "")
	in := write(t, b, envelope("cpu", "h1", t0+1_000, 5))
	write(t, b, envelope("cpu", "h1", t0+12_500, 1))

	batch, outAck := read(t, b)
	if err := outAck(context.Background(), errors.New("broker down")); err != nil {
		t.Fatal(err)
	}
	if in.acked() {
		t.Fatal("input acknowledged (or nacked) after a failed output write")
	}
	readNothing(t, b) // the retry waits for its back-off
	clock.Set(t0 + 14_000)
	again, outAck := read(t, b)
	if len(again) != len(batch) {
		t.Fatalf("retry has %d messages, want %d", len(again), len(batch))
	}
	a, _ := again[0].AsBytes()
	o, _ := batch[0].AsBytes()
	if string(a) != string(o) {
		t.Fatalf("retry differs:\n%s\n%s", a, o)
	}
	_ = outAck(context.Background(), nil)
	if !in.acked() || in.err != nil {
		t.Fatal("input not acknowledged after the retry succeeded")
	}
}

func TestBufferAcksUnusableInputAtOnce(t *testing.T) {
	clock := newTestClock(t0)
	b := newTestBuffer(t, clock, "")
	own := envelope("cpu", "h1", t0, 1)
	own.MetaSetMut(originMetaKey, "monasca-connect")
	for name, msg := range map[string]*service.Message{
		"malformed":  service.NewMessage([]byte(`{"metric":`)),
		"unmatched":  envelope("mem", "h1", t0, 1),
		"own output": own,
		"future":     envelope("cpu", "h1", t0+24*3_600_000, 1),
	} {
		if ack := write(t, b, msg); !ack.acked() || ack.err != nil {
			t.Errorf("%s: not acknowledged at once", name)
		}
	}
	if ack := write(t, b, service.NewMessage([]byte(`nope`)), envelope("cpu", "h1", t0, 1)); ack.acked() {
		t.Fatal("a batch with one good metric was acknowledged before its window closed")
	}
}

func TestBufferEndOfInputLeavesOpenWindowsUnacknowledged(t *testing.T) {
	clock := newTestClock(t0)
	b := newTestBuffer(t, clock, "")
	in := write(t, b, envelope("cpu", "h1", t0+1_000, 1))
	b.EndOfInput()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := b.ReadBatch(ctx); !errors.Is(err, service.ErrEndOfBuffer) {
		t.Fatalf("want end of buffer, got %v", err)
	}
	if in.acked() {
		t.Fatal("input of an open window acknowledged at shutdown: it would be committed unaggregated")
	}
}

func TestBufferIdleTimeoutClosesQuietWindows(t *testing.T) {
	clock := newTestClock(t0)
	b := newTestBuffer(t, clock, "")
	in := write(t, b, envelope("cpu", "h1", t0+1_000, 7))
	readNothing(t, b)
	clock.Set(t0 + 61_000)
	_, ack := readOne(t, b, "the idle flush's aggregate")
	_ = ack(context.Background(), nil)
	if !in.acked() {
		t.Fatal("input not released after the idle flush was delivered")
	}
}

// TestBufferRestoresCloseTimeOfEarlierVersion: a plain close time, which
// versions that saved only that left in the store, restores: replayed
// input of windows closed before it is skipped, the open window's folded.
func TestBufferRestoresCloseTimeOfEarlierVersion(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	res := service.MockResources(service.MockResourcesOptAddCache("state"))
	if err := newCacheStore(res, "state", clock.Now).Save(context.Background(), "group-a", fmt.Append(nil, t0+12_500)); err != nil {
		t.Fatal(err)
	}
	b := newTestBufferOn(t, clock, res, "state_cache: state\nstate_key: group-a")
	if replayed := write(t, b, envelope("cpu", "h1", t0+1_000, 1)); !replayed.acked() {
		t.Fatal("replayed input of an emitted window was not skipped")
	}
	if open := write(t, b, envelope("cpu", "h1", t0+12_500, 1)); open.acked() {
		t.Fatal("input of the open window was skipped")
	}
}

// BenchmarkBufferWriteBatch measures the buffer without Kafka: decoding,
// folding and holding acknowledgements for batches of 1024 realistic
// envelopes (6 names, 500 hosts, 10 tenants; one spec matches 1 in 6).
func BenchmarkBufferWriteBatch(b *testing.B) {
	clock := newTestClock(t0)
	dir := b.TempDir()
	path := filepath.Join(dir, "specs.yaml")
	if err := os.WriteFile(path, []byte(testSpecs), 0o600); err != nil {
		b.Fatal(err)
	}
	conf, err := aggregateBufferSpec().ParseYAML("aggregation_specs: "+path+"\nwindow_size: 1h\nidle_timeout: 1h\nstate_cache: state\n", nil)
	if err != nil {
		b.Fatal(err)
	}
	buf, err := newBuffer(conf, service.MockResources(service.MockResourcesOptAddCache("state")), clock)
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"cpu", "cpu.user_perc", "mem.used_mb", "disk.used_space_mb", "net.in_bytes_sec", "load.avg_1_min"}
	batches := make([]service.MessageBatch, 64)
	var size int
	for i := range batches {
		batch := make(service.MessageBatch, 1024)
		for j := range batch {
			k := i*1024 + j
			raw := fmt.Appendf(nil,
				`{"metric":{"name":%q,"dimensions":{"hostname":"compute-%03d","service":"compute","component":"monasca-agent","cluster":"cluster-%d"},"timestamp":%d,"value":%d.5,"value_meta":{}},"meta":{"tenantId":"%032x","region":"useast"},"creation_time":%d}`,
				names[k%len(names)], k/6%500, k%4, t0+int64(k/3000)*1000, k%100, k%10, t0/1000)
			size += len(raw)
			batch[j] = service.NewMessage(raw)
			batch[j].MetaSetMut("kafka_topic", "metrics")
			batch[j].MetaSetMut("kafka_partition", j%8)
		}
		batches[i] = batch
	}
	ack := func(context.Context, error) error { return nil }
	b.SetBytes(int64(size / len(batches)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := buf.WriteBatch(context.Background(), batches[i%len(batches)], ack); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "metrics/s")
}

func TestBufferCorrectsLateDataAndHoldsItUntilTheCorrectionIsDelivered(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	b := newTestBuffer(t, clock, "late_policy: correct\nallowed_lateness: 1m")
	write(t, b, envelope("cpu", "h1", t0+1_000, 1))
	write(t, b, envelope("cpu", "h1", t0+12_500, 1))
	_, ack := read(t, b)
	_ = ack(context.Background(), nil)

	late := write(t, b, envelope("cpu", "h2", t0+2_000, 5))
	if late.acked() {
		t.Fatal("late input acknowledged before its correction was delivered")
	}
	correction, ack := readOne(t, b, "the corrected aggregate")
	raw, _ := correction.AsBytes()
	if !strings.Contains(string(raw), `"timestamp":1704067200000,"value":6,`) {
		t.Fatalf("correction is not the complete value: %s", raw)
	}
	_ = ack(context.Background(), nil)
	if !late.acked() {
		t.Fatal("late input not released after its correction was delivered")
	}
}

func TestBufferPassesDeadLettersDownstreamBeforeAcknowledging(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	b := newTestBuffer(t, clock, "dead_letter: true")
	bad := service.NewMessage([]byte(`{"metric":{"name":"cpu","timestamp":1704067201000,"value":"high"}}`))
	bad.MetaSetMut("kafka_key", "k1")
	in := write(t, b, bad)
	if in.acked() {
		t.Fatal("invalid input acknowledged before its dead letter was delivered")
	}
	letter, ack := readOne(t, b, "the dead letter")
	raw, _ := letter.AsBytes()
	reason, _ := letter.MetaGet(invalidReasonMetaKey)
	key, _ := letter.MetaGet("kafka_key")
	if string(raw) != `{"metric":{"name":"cpu","timestamp":1704067201000,"value":"high"}}` || reason != "wrong_type" || key != "k1" {
		t.Fatalf("dead letter %s, reason %q, key %q", raw, reason, key)
	}
	_ = ack(context.Background(), nil)
	if !in.acked() {
		t.Fatal("invalid input not acknowledged after its dead letter was delivered")
	}
}

func TestBufferClosesNoWindowOnceStopping(t *testing.T) {
	clock := newTestClock(t0)
	res := service.MockResources(service.MockResourcesOptAddCache("state"))
	b := newTestBufferOn(t, clock, res, "")
	defer b.Close(context.Background())
	write(t, b, envelope("cpu", "h1", t0+1_000, 1))
	b.hub.Stop(context.Background()) // as the input does when the stream stops
	// The watermark passes the window, but the stop came first: the window
	// may lack data that partitions not yet read hold.
	in := write(t, b, envelope("cpu", "h1", t0+12_500, 1))
	readNothing(t, b)
	clock.Set(t0 + 120_000) // long idle
	readNothing(t, b)
	if !in.acked() {
		t.Fatal("input folded while stopping not released by a checkpoint")
	}

	// The saved checkpoint holds both windows open, for the next run.
	saved, _, err := newCacheStore(res, "state", clock.Now).Claim(context.Background(), "monasca-aggregate")
	if err != nil {
		t.Fatal(err)
	}
	engine, err := b.config.aggregation.newEngine(clock.Now, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Restore(saved, engine); err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for _, agg := range engine.FlushAll(nil) {
		starts = append(starts, agg.WindowStart)
	}
	if !slices.Equal(starts, []int64{t0, t0 + 10_000}) {
		t.Fatalf("the checkpoint holds windows %v, want %v", starts, []int64{t0, t0 + 10_000})
	}
}

// TestStartTimeSkipsWindowsBeforeIt: with start_time, a fresh buffer
// computes only the windows that end after it; metrics of earlier windows
// (written to Kafka after the cut, measured before it) are skipped as
// replayed, not published as partial values.
func TestStartTimeSkipsWindowsBeforeIt(t *testing.T) {
	for _, store := range []string{"", "state_cache: state\nstate_key: group-a\n"} {
		clock := newTestClock(t0 + 23_000)
		b := newTestBuffer(t, clock, store+"start_time: 2024-01-01T00:00:10Z", service.MockResourcesOptAddCache("state"))
		before := write(t, b, envelope("cpu", "h1", t0+9_000, 5))
		write(t, b, envelope("cpu", "h1", t0+11_000, 1), envelope("cpu", "h1", t0+22_500, 1))
		out, ack := readOne(t, b, "the window after the start")
		_ = ack(context.Background(), nil)
		raw, _ := out.AsBytes()
		if !strings.Contains(string(raw), fmt.Sprintf(`"timestamp":%d`, t0+10_000)) || !strings.Contains(string(raw), `"value":1`) {
			t.Fatalf("%q: want the window from t0+10s with value 1, got %s", store, raw)
		}
		if !before.acked() {
			t.Fatalf("%q: the metric before the start was not skipped", store)
		}
	}
}
