package kafka

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
)

// edgeOutput builds and connects a kafka output from yaml (see
// edgeConfig).
func edgeOutput(t *testing.T, c *kfake.Cluster, res *service.Resources, yaml string) *output {
	t.Helper()
	o, err := newOutput(edgeConfig(t, outputSpec(), c, yaml), res)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	if err := o.Connect(edgeContext(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	return o
}

// edgeConsume reads n records of topic from its start.
func edgeConsume(t *testing.T, c *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := edgeContext(t, 10*time.Second)
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(recs), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}

func edgeBatch(contents ...string) service.MessageBatch {
	batch := make(service.MessageBatch, len(contents))
	for i, c := range contents {
		batch[i] = service.NewMessage([]byte(c))
	}
	return batch
}

// TestOutputMurmur2MatchesJavaClient checks keyed records land where the
// Java client's default partitioner puts them, with the murmur2 values of
// Kafka's own UtilsTest.
func TestOutputMurmur2MatchesJavaClient(t *testing.T) {
	c := edgeCluster(t)
	edgeCreate(t, edgeAdmin(t, c), "metrics", 8)
	o := edgeOutput(t, c, service.MockResources(), `
seed_brokers: BROKERS
topic: metrics
key: ${! content() }
`)
	javaMurmur2 := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	var keys []string
	for k := range javaMurmur2 {
		keys = append(keys, k)
	}
	if err := o.WriteBatch(edgeContext(t, 10*time.Second), edgeBatch(keys...)); err != nil {
		t.Fatal(err)
	}
	for _, r := range edgeConsume(t, c, "metrics", len(keys)) {
		// Java: Utils.toPositive(murmur2(key)) % numPartitions.
		want := int32((uint32(javaMurmur2[string(r.Key)]) & 0x7fffffff) % 8)
		if r.Partition != want {
			t.Errorf("key %q: partition %d, the Java client's is %d", r.Key, r.Partition, want)
		}
	}
}

func TestOutputHeadersAndTimestampFromMetadata(t *testing.T) {
	c := edgeCluster(t)
	edgeCreate(t, edgeAdmin(t, c), "metrics", 1)
	o := edgeOutput(t, c, service.MockResources(), `
seed_brokers: BROKERS
topic: metrics
metadata:
  include_prefixes: [ monasca_ ]
timestamp_ms: ${! @ts }
`)
	msg := service.NewMessage([]byte("m"))
	msg.MetaSetMut("monasca_origin", "aggregator")
	msg.MetaSetMut("kafka_partition", "3")
	msg.MetaSetMut("ts", "1700000000123")
	if err := o.WriteBatch(edgeContext(t, 10*time.Second), service.MessageBatch{msg}); err != nil {
		t.Fatal(err)
	}
	r := edgeConsume(t, c, "metrics", 1)[0]
	if len(r.Headers) != 1 || r.Headers[0].Key != "monasca_origin" || string(r.Headers[0].Value) != "aggregator" {
		t.Errorf("headers %v, want only monasca_origin=aggregator", r.Headers)
	}
	if ms := r.Timestamp.UnixMilli(); ms != 1700000000123 {
		t.Errorf("timestamp %d, want 1700000000123", ms)
	}
}

func TestOutputManualPartition(t *testing.T) {
	c := edgeCluster(t)
	edgeCreate(t, edgeAdmin(t, c), "metrics", 4)
	o := edgeOutput(t, c, service.MockResources(), `
seed_brokers: BROKERS
topic: metrics
key: same-key-everywhere
partitioner: manual
partition: ${! @monasca_partition }
`)
	batch := edgeBatch("0", "1", "2", "3", "3", "1")
	for _, m := range batch {
		b, _ := m.AsBytes()
		m.MetaSetMut("monasca_partition", string(b))
	}
	if err := o.WriteBatch(edgeContext(t, 10*time.Second), batch); err != nil {
		t.Fatal(err)
	}
	for _, r := range edgeConsume(t, c, "metrics", len(batch)) {
		if want, _ := strconv.Atoi(string(r.Value)); r.Partition != int32(want) {
			t.Errorf("record %q in partition %d", r.Value, r.Partition)
		}
	}

	// Past the partition count, not a number, good: only the last lands.
	batch = edgeBatch("9", "x", "2")
	for _, m := range batch {
		b, _ := m.AsBytes()
		m.MetaSetMut("monasca_partition", string(b))
	}
	err := o.WriteBatch(edgeContext(t, 10*time.Second), batch)
	var batchErr *service.BatchError
	if !errors.As(err, &batchErr) || batchErr.IndexedErrors() != 2 {
		t.Fatalf("got %v, want a batch error for the first two messages", err)
	}
	twos := 0
	for _, r := range edgeConsume(t, c, "metrics", 7) {
		if string(r.Value) == "2" && r.Partition == 2 {
			twos++
		}
	}
	if twos != 2 {
		t.Errorf("%d records 2 in partition 2, want 2", twos)
	}
}

func TestOutputPartitionerConfigErrors(t *testing.T) {
	c := edgeCluster(t)
	for _, yaml := range []string{
		"seed_brokers: BROKERS\ntopic: t\npartitioner: manual\n",
		"seed_brokers: BROKERS\ntopic: t\npartition: '1'\n",
		"seed_brokers: BROKERS\ntopic: ${! @t }\ncreate_topic: { enabled: true }\n",
		"seed_brokers: BROKERS\ntopic: t\ntimeout: 100ms\n",
	} {
		if _, err := newOutput(edgeConfig(t, outputSpec(), c, yaml), service.MockResources()); err == nil {
			t.Errorf("accepted:\n%s", yaml)
		}
	}
}

// TestOutputMissingTopicFailsWithinTimeout checks that a write to a topic
// that does not exist fails back instead of waiting for it.
func TestOutputMissingTopicFailsWithinTimeout(t *testing.T) {
	c := edgeCluster(t)
	o := edgeOutput(t, c, service.MockResources(), `
seed_brokers: BROKERS
topic: missing
timeout: 2s
`)
	start := time.Now()
	err := o.WriteBatch(edgeContext(t, 30*time.Second), edgeBatch("a", "b"))
	took := time.Since(start)
	var batchErr *service.BatchError
	if !errors.As(err, &batchErr) || batchErr.IndexedErrors() != 2 {
		t.Fatalf("got %v, want a batch error for both records", err)
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("got %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	// Well below the caller's 30s: the write gave up at its own timeout
	// rather than retrying until the caller's context ended.
	if took > 15*time.Second {
		t.Errorf("the write took %v with a 2s timeout", took)
	}
}

// TestOutputUnansweredProduceFailsWithinTimeout checks that a write fails
// back after timeout when the broker does not answer, though franz-go
// cannot fail the records of a request in flight before the connection
// times out.
func TestOutputUnansweredProduceFailsWithinTimeout(t *testing.T) {
	c := edgeCluster(t)
	edgeCreate(t, edgeAdmin(t, c), "metrics", 1)
	o := edgeOutput(t, c, service.MockResources(), `
seed_brokers: BROKERS
topic: metrics
timeout: 1s
`)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, nil, true // no answer
	})
	start := time.Now()
	err := o.WriteBatch(edgeContext(t, 30*time.Second), edgeBatch("a"))
	if took := time.Since(start); err == nil || took > 15*time.Second {
		t.Fatalf("got %v after %v, want an error after the 1s timeout, not the caller's 30s", err, took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}
}

func TestOutputCreatesTopicAndReportsPartitions(t *testing.T) {
	c := edgeCluster(t)
	adm := edgeAdmin(t, c)
	res := service.MockResources()
	o := edgeOutput(t, c, res, `
seed_brokers: BROKERS
topic: aggregates
create_topic:
  enabled: true
  partitions: 3
`)
	ctx := edgeContext(t, 20*time.Second)
	if err := o.WriteBatch(ctx, edgeBatch("a")); err != nil {
		t.Fatal(err)
	}
	pc, ok := assignment.Output(res)
	if !ok {
		t.Fatal("the output did not announce its topic")
	}
	if n, err := pc.Partitions(ctx); n != 3 || err != nil {
		t.Fatalf("partitions: %d, %v; want 3", n, err)
	}
	if _, err := adm.UpdatePartitions(ctx, 5, "aggregates"); err != nil {
		t.Fatal(err)
	}
	edgeEventually(t, 5*time.Second, "the partition count to follow the topic", func() bool {
		n, err := pc.Partitions(ctx)
		return n == 5 && err == nil
	})
}

// TestOutputRecoversFromRecreatedTopic deletes and recreates the topic
// between writes: the write after the recreation may fail, the ones after
// must land in the new topic.
func TestOutputRecoversFromRecreatedTopic(t *testing.T) {
	c := edgeCluster(t)
	adm := edgeAdmin(t, c)
	edgeCreate(t, adm, "metrics", 2)
	res := service.MockResources()
	o := edgeOutput(t, c, res, `
seed_brokers: BROKERS
topic: metrics
timeout: 2s
`)
	ctx := edgeContext(t, 60*time.Second)
	if err := o.WriteBatch(ctx, edgeBatch("old")); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopics(ctx, "metrics"); err != nil {
		t.Fatal(err)
	}
	edgeCreate(t, adm, "metrics", 4)

	var failures int
	edgeEventually(t, 20*time.Second, "a write to the recreated topic", func() bool {
		err := o.WriteBatch(ctx, edgeBatch("new", "new", "new", "new"))
		if err != nil {
			failures++
			t.Logf("write after recreation: %v", err)
		}
		return err == nil
	})
	if failures > 1 {
		t.Errorf("%d writes failed after the recreation; one at most should", failures)
	}
	for _, r := range edgeConsume(t, c, "metrics", 4) {
		if string(r.Value) != "new" {
			t.Errorf("the recreated topic holds %q", r.Value)
		}
	}
	pc, _ := assignment.Output(res)
	edgeEventually(t, 5*time.Second, "the partition count of the recreated topic", func() bool {
		n, err := pc.Partitions(ctx)
		return n == 4 && err == nil
	})
}

// edgeEventually polls cond until it holds, failing the test after d.
func edgeEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
