package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
)

// testTimeout bounds every test that talks to a cluster.
const testTimeout = time.Minute

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testCluster starts an in-process cluster on a free loopback port with the
// given topics and returns its address.
func testCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// testTimestamp is the timestamp of produced record 0; record i is i ms
// later.
var testTimestamp = time.UnixMilli(1_700_000_000_000)

// produce writes records 0..n-1 to topic, record i to partition
// i%partitions with key k<i>, value v<i> and header seq=<i>.
func produce(t *testing.T, ctx context.Context, addr, topic string, partitions int32, from, n int, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var records []*kgo.Record
	for i := from; i < from+n; i++ {
		records = append(records, &kgo.Record{
			Partition: int32(i) % partitions,
			Key:       fmt.Appendf(nil, "k%d", i),
			Value:     fmt.Appendf(nil, "v%d", i),
			Headers:   []kgo.RecordHeader{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}},
			Timestamp: testTimestamp.Add(time.Duration(i) * time.Millisecond),
		})
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// newTestInput builds an input from YAML (the connection to addr added) and
// connects it. It is closed when the test ends.
func newTestInput(t *testing.T, ctx context.Context, addr, yaml string) (*input, *assignment.Hub) {
	t.Helper()
	conf, err := inputSpec().ParseYAML(fmt.Sprintf("seed_brokers: [ %q ]\nheartbeat_interval: 100ms\n%s", addr, yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	res := service.MockResources()
	in, err := newInput(conf, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := in.Close(ctx); err != nil {
			t.Errorf("closing: %v", err)
		}
	})
	return in, assignment.Of(res)
}

// testBatch is a batch read from an input.
type testBatch struct {
	part        assignment.Partition
	first, last int64
	msgs        service.MessageBatch
	ack         service.AckFunc
}

func (b testBatch) String() string {
	return fmt.Sprintf("%s/%d[%d-%d]", b.part.Topic, b.part.Partition, b.first, b.last)
}

// startReader reads batches from in in the background, as benthos does,
// and checks each is of one partition in offset order. Cancelling its
// reads (when the test ends, or by the returned func) is what benthos does
// when the stream stops.
func startReader(t *testing.T, in *input) (<-chan testBatch, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan testBatch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msgs, ack, err := in.ReadBatch(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, service.ErrEndOfInput) {
					return
				}
				t.Logf("reading: %v", err)
				continue
			}
			b := testBatch{msgs: msgs, ack: ack}
			for i, m := range msgs {
				topic, _ := m.MetaGetMut(metaTopic)
				partition, _ := m.MetaGetMut(metaPartition)
				offset, _ := m.MetaGetMut(metaOffset)
				p := assignment.Partition{Topic: topic.(string), Partition: partition.(int32)}
				if i == 0 {
					b.part, b.first = p, offset.(int64)
				} else if p != b.part || offset.(int64) <= b.last {
					t.Errorf("batch %v: message %d is %v offset %d", b, i, p, offset)
				}
				b.last = offset.(int64)
			}
			select {
			case ch <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return ch, stop
}

// readRecords reads batches until they hold n records.
func readRecords(t *testing.T, ch <-chan testBatch, n int) []testBatch {
	t.Helper()
	var batches []testBatch
	timeout := time.After(testTimeout / 2)
	for got := 0; got < n; {
		select {
		case b := <-ch:
			batches = append(batches, b)
			got += len(b.msgs)
		case <-timeout:
			t.Fatalf("read %d of %d records", got, n)
		}
	}
	return batches
}

// expectNoBatch checks that nothing is read for d.
func expectNoBatch(t *testing.T, ch <-chan testBatch, d time.Duration) {
	t.Helper()
	select {
	case b := <-ch:
		t.Fatalf("unexpected batch %v", b)
	case <-time.After(d):
	}
}

func ack(t *testing.T, b testBatch, err error) {
	t.Helper()
	if e := b.ack(context.Background(), err); e != nil {
		t.Fatal(e)
	}
}

// committed returns the group's committed offset of each partition of
// topic, -1 for none.
func committed(t *testing.T, ctx context.Context, addr, group, topic string, partitions int32) []int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resps, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	offsets := make([]int64, partitions)
	for p := range offsets {
		offsets[p] = -1
		if r, ok := resps.Lookup(topic, int32(p)); ok && r.Err == nil {
			offsets[p] = r.At
		}
	}
	return offsets
}

// waitFor waits until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout / 2)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitCommitted(t *testing.T, ctx context.Context, addr, group, topic string, want ...int64) {
	t.Helper()
	var got []int64
	waitFor(t, fmt.Sprintf("commits %v", want), func() bool {
		got = committed(t, ctx, addr, group, topic, int32(len(want)))
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
}

// probeListener records a hub's events; its hooks run inside them.
type probeListener struct {
	mu        sync.Mutex
	events    []string
	held      map[assignment.Partition]bool
	topics    map[string]int32
	onRevoked func(ctx context.Context, parts []assignment.Partition)
	onStop    func(ctx context.Context)
}

func newProbe(t *testing.T, hub *assignment.Hub) *probeListener {
	l := &probeListener{held: map[assignment.Partition]bool{}}
	hub.Listen(context.Background(), l)
	return l
}

func (l *probeListener) Assigned(_ context.Context, parts []assignment.Partition, topics map[string]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprint("assigned ", parts))
	for _, p := range parts {
		l.held[p] = true
	}
	l.topics = topics
}

func (l *probeListener) Revoked(ctx context.Context, parts []assignment.Partition) {
	l.mu.Lock()
	l.events = append(l.events, fmt.Sprint("revoked ", parts))
	for _, p := range parts {
		delete(l.held, p)
	}
	hook := l.onRevoked
	l.mu.Unlock()
	if hook != nil {
		hook(ctx, parts)
	}
}

func (l *probeListener) Lost(parts []assignment.Partition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprint("lost ", parts))
	for _, p := range parts {
		delete(l.held, p)
	}
}

func (l *probeListener) Stopping(ctx context.Context) {
	l.mu.Lock()
	l.events = append(l.events, "stopping")
	hook := l.onStop
	l.mu.Unlock()
	if hook != nil {
		hook(ctx)
	}
}

func (l *probeListener) holds() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

func (l *probeListener) log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// Acknowledgements out of order: the commit stops before the oldest
// unacknowledged batch; a nacked batch is delivered again, and counts once
// acknowledged.
func TestInputCommitsAcknowledgedPrefix(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(1, "metrics"))
	produce(t, ctx, addr, "metrics", 1, 0, 40)
	in, _ := newTestInput(t, ctx, addr, "topics: [ metrics ]\nconsumer_group: g\nbatch_size: 10\ncommit_period: 50ms\n")
	ch, _ := startReader(t, in)

	batches := readRecords(t, ch, 40)
	if len(batches) < 3 {
		t.Fatalf("%d batches, want at least 3 of at most 10 records", len(batches))
	}
	for i, b := range batches {
		if len(b.msgs) > 10 {
			t.Fatalf("batch %v has %d records, more than batch_size", b, len(b.msgs))
		}
		if i > 0 && b.first != batches[i-1].last+1 {
			t.Fatalf("batch %v does not follow %v", b, batches[i-1])
		}
	}
	b0, b1, b2 := batches[0], batches[1], batches[2]

	ack(t, b2, nil)
	time.Sleep(300 * time.Millisecond) // several commit periods
	if got := committed(t, ctx, addr, "g", "metrics", 1); got[0] != -1 {
		t.Fatalf("committed %d with only a later batch acknowledged", got[0])
	}

	ack(t, b0, nil)
	waitCommitted(t, ctx, addr, "g", "metrics", b0.last+1)

	// b1 rejected: it comes again, with the same records and metadata,
	// and the commit does not pass it meanwhile.
	ack(t, b1, errors.New("output failed"))
	again := readRecords(t, ch, 1)[0]
	if again.part != b1.part || again.first != b1.first || again.last != b1.last || len(again.msgs) != len(b1.msgs) {
		t.Fatalf("redelivered %v, want %v", again, b1)
	}
	for i, m := range again.msgs {
		want, _ := b1.msgs[i].AsBytes()
		if got, _ := m.AsBytes(); string(got) != string(want) {
			t.Fatalf("redelivered message %d is %q, want %q", i, got, want)
		}
		if k, _ := m.MetaGetMut(metaKey); k != fmt.Sprintf("k%d", b1.first+int64(i)) {
			t.Fatalf("redelivered message %d has key %v", i, k)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := committed(t, ctx, addr, "g", "metrics", 1); got[0] != b0.last+1 {
		t.Fatalf("committed %d past a rejected batch, want %d", got[0], b0.last+1)
	}
	ack(t, again, nil)
	waitCommitted(t, ctx, addr, "g", "metrics", b2.last+1)

	// An acknowledgement after the nack's redelivery was acknowledged
	// (benthos acknowledges each delivery once) changes nothing.
	ack(t, b1, nil)
	for _, b := range batches[3:] {
		ack(t, b, nil)
	}
	waitCommitted(t, ctx, addr, "g", "metrics", 40)
}

// A nacked batch whose records retention deleted meanwhile cannot come
// again: it counts as acknowledged, so that the partition's commits go on.
func TestInputNackOfDeletedRecords(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(1, "metrics"))
	produce(t, ctx, addr, "metrics", 1, 0, 30)
	in, _ := newTestInput(t, ctx, addr, "topics: [ metrics ]\nconsumer_group: g\nbatch_size: 10\ncommit_period: 50ms\n")
	ch, _ := startReader(t, in)
	batches := readRecords(t, ch, 30)

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: "metrics", Partition: 0, At: batches[0].last + 1})
	if _, err := kadm.NewClient(cl).DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}

	ack(t, batches[0], errors.New("output failed"))
	for _, b := range batches[1:] {
		ack(t, b, nil)
	}
	waitCommitted(t, ctx, addr, "g", "metrics", 30)
	expectNoBatch(t, ch, 300*time.Millisecond)
}

// Every record arrives once, with its metadata, through a stream; the
// commits reach the end; the metrics report lag and partitions held.
func TestInputStreamDeliversEveryRecordOnce(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(4, "metrics"))
	const n = 1000
	produce(t, ctx, addr, "metrics", 4, 0, n)

	env := service.NewEnvironment()
	gauges := newGaugeProbe()
	if err := env.RegisterMetricsExporter("probe", service.NewConfigSpec(), func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) {
		return gauges, nil
	}); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	if err := sb.AddInputYAML(fmt.Sprintf(`
kafka:
  seed_brokers: [ %q ]
  topics: [ metrics ]
  consumer_group: stream
  batch_size: 7
  commit_period: 100ms
`, addr)); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetMetricsYAML("probe: {}"); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetLoggerYAML("level: OFF"); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		next  = map[int32]int64{}
		total int
		all   = make(chan struct{})
	)
	if err := sb.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		if len(batch) > 7 {
			t.Errorf("batch of %d records, more than batch_size", len(batch))
		}
		var part int32 = -1
		for _, m := range batch {
			key, _ := m.MetaGetMut(metaKey)
			var i int
			if _, err := fmt.Sscanf(key.(string), "k%d", &i); err != nil {
				t.Errorf("key %v: %v", key, err)
				continue
			}
			value, _ := m.AsBytes()
			topic, _ := m.MetaGetMut(metaTopic)
			partition, _ := m.MetaGetMut(metaPartition)
			offset, _ := m.MetaGetMut(metaOffset)
			ts, _ := m.MetaGetMut(metaTimestamp)
			seq, _ := m.MetaGetMut("seq")
			p := partition.(int32)
			if part == -1 {
				part = p
			}
			switch {
			case string(value) != fmt.Sprintf("v%d", i), topic != "metrics", p != int32(i%4), p != part,
				offset != int64(i/4), ts != testTimestamp.UnixMilli()+int64(i), seq != fmt.Sprint(i):
				t.Errorf("record %d: value %q topic %v partition %v offset %v timestamp %v seq %v", i, value, topic, partition, offset, ts, seq)
			}
			if offset.(int64) != next[p] {
				t.Errorf("partition %d: offset %d after %d", p, offset, next[p]-1)
			}
			next[p] = offset.(int64) + 1
			seen[key.(string)]++
			if total++; total == n {
				close(all)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stream, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- stream.Run(ctx) }()
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("received %d of %d records", total, n)
	}
	waitFor(t, "lag 0 on every partition and 4 partitions held", func() bool {
		for p := range 4 {
			if v, ok := gauges.get("kafka_consumer_lag", "metrics", fmt.Sprint(p)); !ok || v != 0 {
				return false
			}
		}
		v, ok := gauges.get("kafka_partitions_held")
		return ok && v == 4
	})
	if err := stream.StopWithin(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records of %d", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("record %s delivered %d times", k, c)
		}
	}
	if got := committed(t, ctx, addr, "stream", "metrics", 4); fmt.Sprint(got) != "[250 250 250 250]" {
		t.Fatalf("committed %v after the stream stopped, want 250 each", got)
	}
}

// gaugeProbe is a metrics exporter that keeps the last value of each
// gauge.
type gaugeProbe struct {
	mu     sync.Mutex
	values map[string]int64
}

func newGaugeProbe() *gaugeProbe { return &gaugeProbe{values: map[string]int64{}} }

func (g *gaugeProbe) get(name string, labels ...string) (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, v := range g.values {
		if strings.HasPrefix(k, name+"{") && strings.HasSuffix(k, strings.Join(labels, ",")+"}") {
			return v, true
		}
	}
	return 0, false
}

type gaugeProbeGauge struct {
	g   *gaugeProbe
	key string
}

func (p gaugeProbeGauge) Set(v int64) {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	p.g.values[p.key] = v
}

type nopMetric struct{}

func (nopMetric) Incr(int64)   {}
func (nopMetric) Timing(int64) {}

func (g *gaugeProbe) NewCounterCtor(string, ...string) service.MetricsExporterCounterCtor {
	return func(...string) service.MetricsExporterCounter { return nopMetric{} }
}

func (g *gaugeProbe) NewTimerCtor(string, ...string) service.MetricsExporterTimerCtor {
	return func(...string) service.MetricsExporterTimer { return nopMetric{} }
}

// NewGaugeCtor keys a gauge by its name and its label values in order;
// benthos puts its own labels (label, path) before the component's.
func (g *gaugeProbe) NewGaugeCtor(name string, _ ...string) service.MetricsExporterGaugeCtor {
	return func(values ...string) service.MetricsExporterGauge {
		return gaugeProbeGauge{g, name + "{" + strings.Join(values, ",") + "}"}
	}
}

func (g *gaugeProbe) Close(context.Context) error { return nil }

// A restarted member resumes from the commit: acknowledged batches are not
// delivered again, unacknowledged ones are.
func TestInputResumesFromCommit(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(2, "metrics"))
	produce(t, ctx, addr, "metrics", 2, 0, 40)
	const conf = "topics: [ metrics ]\nconsumer_group: g\nbatch_size: 5\ncommit_period: 1h\n"

	first, _ := newTestInput(t, ctx, addr, conf)
	ch, _ := startReader(t, first)
	want := []int64{-1, -1}
	for _, b := range readRecords(t, ch, 40) {
		// Acknowledge up to offset 9 of partition 0 and 4 of partition 1.
		if b.last <= 9-5*int64(b.part.Partition) {
			ack(t, b, nil)
			want[b.part.Partition] = max(want[b.part.Partition], b.last+1)
		}
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, ctx, addr, "g", "metrics", 2); fmt.Sprint(got) != fmt.Sprint(want) || want[0] != 10 || want[1] != 5 {
		t.Fatalf("committed %v at close, want [10 5] (acknowledged %v)", got, want)
	}

	second, _ := newTestInput(t, ctx, addr, conf)
	ch2, _ := startReader(t, second)
	firstOffset := map[int32]int64{}
	for _, b := range readRecords(t, ch2, 40-15) {
		if _, ok := firstOffset[b.part.Partition]; !ok {
			firstOffset[b.part.Partition] = b.first
		}
	}
	if firstOffset[0] != 10 || firstOffset[1] != 5 {
		t.Fatalf("restart began at %v, want partition 0 at 10 and 1 at 5", firstOffset)
	}
	expectNoBatch(t, ch2, 300*time.Millisecond)
}

// A member joining takes partitions from the first: the first tells its
// listener before it commits, and what the listener acknowledges then is
// in the commit. Batches of revoked partitions are not handed on after.
func TestInputRevocationCommitsAcksMadeInRevoked(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(4, "metrics"))
	produce(t, ctx, addr, "metrics", 4, 0, 400)
	const conf = "topics: [ metrics ]\nconsumer_group: g\nbatch_size: 10\ncommit_period: 50ms\n"

	a, hubA := newTestInput(t, ctx, addr, conf)
	probeA := newProbe(t, hubA)
	ch, _ := startReader(t, a)
	var (
		mu      sync.Mutex
		pending = map[assignment.Partition][]testBatch{}
	)
	for _, b := range readRecords(t, ch, 400) {
		pending[b.part] = append(pending[b.part], b)
	}
	if probeA.holds() != 4 {
		t.Fatalf("first member holds %d partitions, want 4", probeA.holds())
	}
	if probeA.topics["metrics"] != 4 {
		t.Fatalf("partition counts %v, want metrics: 4", probeA.topics)
	}

	var revokedCommits []int64
	probeA.mu.Lock()
	probeA.onRevoked = func(ctx context.Context, parts []assignment.Partition) {
		// Nothing of them is committed yet: the commit comes after.
		revokedCommits = committed(t, ctx, addr, "g", "metrics", 4)
		mu.Lock()
		defer mu.Unlock()
		for _, p := range parts {
			for _, b := range pending[p] {
				ack(t, b, nil)
			}
			delete(pending, p)
		}
	}
	probeA.mu.Unlock()

	b, hubB := newTestInput(t, ctx, addr, conf)
	probeB := newProbe(t, hubB)
	waitFor(t, "the second member to hold partitions", func() bool { return probeB.holds() > 0 })
	if probeA.holds()+probeB.holds() != 4 || probeB.holds() != 2 {
		t.Fatalf("members hold %d and %d partitions, want 2 and 2", probeA.holds(), probeB.holds())
	}
	if fmt.Sprint(revokedCommits) != "[-1 -1 -1 -1]" {
		t.Fatalf("committed %v when Revoked was called, want nothing", revokedCommits)
	}
	got := committed(t, ctx, addr, "g", "metrics", 4)
	for p := range 4 {
		want := int64(-1)
		if !probeA.held[assignment.Partition{Topic: "metrics", Partition: int32(p)}] {
			want = 100 // revoked, acknowledged inside Revoked
		}
		if got[p] != want {
			t.Fatalf("committed %v after the revocation; partition %d want %d (events %v)", got, p, want, probeA.log())
		}
	}
	// The new owner starts at the commit and finds nothing left.
	chB, _ := startReader(t, b)
	expectNoBatch(t, chB, 500*time.Millisecond)

	// New records of revoked partitions go to the new owner only.
	produce(t, ctx, addr, "metrics", 4, 400, 4)
	for _, batch := range readRecords(t, chB, 2) {
		if probeA.held[batch.part] {
			t.Fatalf("second member read %v, held by the first", batch)
		}
	}
	for _, batch := range readRecords(t, ch, 2) {
		if !probeA.held[batch.part] {
			t.Fatalf("first member read %v, which it no longer holds", batch)
		}
	}
	// Late acknowledgements of partitions held still count.
	mu.Lock()
	for _, bs := range pending {
		for _, b := range bs {
			ack(t, b, nil)
		}
	}
	mu.Unlock()
	waitCommitted(t, ctx, addr, "g", "metrics", 100, 100, 100, 100)
}

// At checkpoint_limit the partition's fetching pauses: no more records are
// handed on until acknowledgements make room, and fetching resumes then.
func TestInputCheckpointLimitPausesPartition(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(1, "metrics"))
	produce(t, ctx, addr, "metrics", 1, 0, 500)
	in, _ := newTestInput(t, ctx, addr, "topics: [ metrics ]\nconsumer_group: g\nbatch_size: 16\ncheckpoint_limit: 50\ncommit_period: 50ms\n")
	ch, _ := startReader(t, in)

	batches := readRecords(t, ch, 50)
	expectNoBatch(t, ch, 500*time.Millisecond)
	handed := 0
	for _, b := range batches {
		handed += len(b.msgs)
	}
	if handed != 50 {
		t.Fatalf("%d records handed on, want the limit 50", handed)
	}
	paused := in.cl.PauseFetchPartitions(nil)
	if len(paused["metrics"]) != 1 {
		t.Fatalf("paused %v, want metrics/0", paused)
	}

	// Acknowledging a later batch makes no room: the oldest is still out.
	ack(t, batches[len(batches)-1], nil)
	expectNoBatch(t, ch, 300*time.Millisecond)

	// Acknowledge the rest as it comes, keeping what is unacknowledged
	// under the limit the whole time.
	out := batches[:len(batches)-1]
	inFlight := handed
	for read := handed; read < 500; {
		ack(t, out[0], nil)
		inFlight -= len(out[0].msgs)
		out = out[1:]
		if len(out) == 0 {
			inFlight = 0
		}
		select {
		case b := <-ch:
			out = append(out, b)
			read += len(b.msgs)
			if inFlight += len(b.msgs); inFlight > 50 {
				t.Fatalf("%d records in flight, more than the limit", inFlight)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("stalled after %d records", read)
		}
	}
	for _, b := range out {
		ack(t, b, nil)
	}
	waitCommitted(t, ctx, addr, "g", "metrics", 500)
	if paused := in.cl.PauseFetchPartitions(nil); len(paused) != 0 {
		t.Fatalf("still paused: %v", paused)
	}
}

// When the stream stops, benthos cancels the read: the input tells the
// listener, which acknowledges what it held, and commits that at once.
func TestInputStopCommitsAcksMadeInStopping(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(2, "metrics"))
	produce(t, ctx, addr, "metrics", 2, 0, 20)
	in, hub := newTestInput(t, ctx, addr, "topics: [ metrics ]\nconsumer_group: g\ncommit_period: 1h\n")
	probe := newProbe(t, hub)
	ch, stopReading := startReader(t, in)
	batches := readRecords(t, ch, 20)
	probe.mu.Lock()
	probe.onStop = func(context.Context) {
		for _, b := range batches {
			ack(t, b, nil)
		}
	}
	probe.mu.Unlock()

	stopReading()
	if got := committed(t, ctx, addr, "g", "metrics", 2); fmt.Sprint(got) != "[10 10]" {
		t.Fatalf("committed %v once the read was cancelled, want [10 10] (events %v)", got, probe.log())
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if events := probe.log(); strings.Count(strings.Join(events, ";"), "stopping") != 1 {
		t.Fatalf("events %v, want one stopping", events)
	}
}

// Partitions lost without a rebalance (the group no longer knows the
// member) are dropped unsaved: acknowledgements made after are not
// committed, and the member reads them again from the commit.
func TestInputLostPartitionsAreNotCommitted(t *testing.T) {
	ctx := testContext(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "metrics"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	produce(t, ctx, addr, "metrics", 1, 0, 20)
	in, hub := newTestInput(t, ctx, addr, "topics: [ metrics ]\nconsumer_group: g\nbatch_size: 10\ncommit_period: 50ms\n")
	probe := newProbe(t, hub)
	ch, _ := startReader(t, in)
	batches := readRecords(t, ch, 20)
	ack(t, batches[0], nil)
	waitCommitted(t, ctx, addr, "g", "metrics", batches[0].last+1)

	// The next heartbeat learns the member is unknown: the partitions are
	// lost, and the member joins again.
	c.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	waitFor(t, "the partition to be lost", func() bool {
		return strings.Contains(strings.Join(probe.log(), ";"), "lost [{metrics 0}]")
	})
	for _, b := range batches[1:] {
		ack(t, b, nil)
	}
	again := readRecords(t, ch, 20-len(batches[0].msgs))
	if again[0].first != batches[0].last+1 {
		t.Fatalf("after the loss the member read from %d, want the commit %d", again[0].first, batches[0].last+1)
	}
	time.Sleep(200 * time.Millisecond)
	if got := committed(t, ctx, addr, "g", "metrics", 1); got[0] != batches[0].last+1 {
		t.Fatalf("committed %d: acknowledgements of a lost partition counted", got[0])
	}
	for _, b := range again {
		ack(t, b, nil)
	}
	waitCommitted(t, ctx, addr, "g", "metrics", 20)
}

func TestInputWrongAddressFailsConnect(t *testing.T) {
	conf, err := inputSpec().ParseYAML("seed_brokers: [ \"127.0.0.1:1\" ]\ntopics: [ metrics ]\nconsumer_group: g\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newInput(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = in.Connect(ctx)
	if err == nil || !strings.Contains(err.Error(), "reaching the brokers") {
		t.Fatalf("connect error %v, want one about reaching the brokers", err)
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// Fields of Connect's inputs that this input does not have fail lint,
// naming the field, so that a carried-over configuration does not
// silently behave differently.
func TestInputLintRejectsUnsupportedFields(t *testing.T) {
	base := `
input:
  kafka:
    seed_brokers: [ "localhost:9092" ]
    topics: [ metrics ]
    consumer_group: g
%s
output:
  drop: {}
`
	if err := service.NewStreamBuilder().SetYAML(fmt.Sprintf(base, "    checkpoint_limit: 10")); err != nil {
		t.Fatalf("a supported configuration fails: %v", err)
	}
	for _, field := range []string{
		"unordered_processing: { enabled: true }",
		"auto_replay_nacks: false",
		"batching: { count: 10 }",
		"partition_buffer_bytes: 1MB",
		"max_yield_batch_bytes: 32KB",
		"regexp_topics: true",
		"rack_id: a",
		"start_from_oldest: true",
		"multi_header: true",
		"topic_lag_refresh_period: 5s",
		"timely_nacks_maximum_wait: 1m",
	} {
		name, _, _ := strings.Cut(field, ":")
		err := service.NewStreamBuilder().SetYAML(fmt.Sprintf(base, "    "+field))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: lint error %v, want one naming the field", name, err)
		}
	}
}

func TestInputConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"topics: [ \" , \" ]\nconsumer_group: g", "at least one topic"},
		{"topics: [ m ]\nconsumer_group: \"\"", "consumer_group"},
		{"topics: [ m ]\nconsumer_group: g\nbatch_size: 0", "batch_size"},
		{"topics: [ m ]\nconsumer_group: g\ncheckpoint_limit: -1", "checkpoint_limit"},
		{"topics: [ m ]\nconsumer_group: g\nfetch_max_bytes: lots", "fetch_max_bytes"},
		{"topics: [ m ]\nconsumer_group: g\nheartbeat_interval: 20s", "heartbeat_interval"},
		{"topics: [ m ]\nconsumer_group: g\nstart_offset: middle", "start_offset"},
		{"topics: [ m ]\nconsumer_group: g\nbalancer: random", "balancer"},
	} {
		conf, err := inputSpec().ParseYAML("seed_brokers: [ \"localhost:9092\" ]\n"+tc.yaml, nil)
		if err == nil {
			_, err = newInput(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one about %s", tc.yaml, err, tc.want)
		}
	}
}

func TestInputTopicsSplitAtCommas(t *testing.T) {
	conf, err := inputSpec().ParseYAML("seed_brokers: [ \"localhost:9092\" ]\ntopics: [ \"a, b\", c, a ]\nconsumer_group: g", nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newInput(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in.topics) != "[a b c]" {
		t.Fatalf("topics %v, want [a b c]", in.topics)
	}
}
