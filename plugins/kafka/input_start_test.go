package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceStamped writes n records to each of the given partitions of topic,
// record i of a partition stamped at(i), in one produce call: each
// partition's records form one batch of their own.
func produceStamped(t *testing.T, ctx context.Context, addr, topic string, partitions []int32, n int, at func(i int) time.Time) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var records []*kgo.Record
	for _, p := range partitions {
		for i := range n {
			records = append(records, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i), Timestamp: at(i)})
		}
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// startTimeTopic produces, to the three partitions of "metrics", five
// records stamped an hour before start each, and then, to partitions 0
// and 1 only, five stamped from start on, the first exactly at start.
// Partition 2 has no record at or after start.
//
// The records before and after start are produced in separate batches:
// the pinned kfake answers a lookup by time inside a batch with the last
// record stamped at or before the time, where Kafka answers with the first
// stamped at or after it. At a batch boundary whose first record is at the
// time or later, both answers are the same.
func startTimeTopic(t *testing.T, ctx context.Context, start time.Time) string {
	t.Helper()
	addr := testCluster(t, kfake.SeedTopics(3, "metrics"))
	produceStamped(t, ctx, addr, "metrics", []int32{0, 1, 2}, 5, func(i int) time.Time {
		return start.Add(-time.Hour + time.Duration(i)*time.Second)
	})
	produceStamped(t, ctx, addr, "metrics", []int32{0, 1}, 5, func(i int) time.Time {
		return start.Add(time.Duration(i) * time.Second)
	})
	return addr
}

// A new group with start_time receives, of each partition, the records
// from the first one stamped at or after it on, and starts a partition
// without such a record at its end: a record produced there later is
// delivered, none of the older ones.
func TestInputStartTimeNewGroup(t *testing.T) {
	ctx := testContext(t)
	start := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	addr := startTimeTopic(t, ctx, start)

	in, _ := newTestInput(t, ctx, addr, "topics: [ metrics ]\nconsumer_group: cutover\nstart_time: 2026-12-06T15:00:00Z\n")
	ch, _ := startReader(t, in)
	firstOffset := map[int32]int64{}
	for _, b := range readRecords(t, ch, 10) {
		if _, ok := firstOffset[b.part.Partition]; !ok {
			firstOffset[b.part.Partition] = b.first
		}
		for _, m := range b.msgs {
			ts, _ := m.MetaGetMut(metaTimestamp)
			if ms := ts.(int64); ms < start.UnixMilli() {
				t.Errorf("%v: a record stamped %v, before the start time", b, time.UnixMilli(ms).UTC())
			}
		}
	}
	if len(firstOffset) != 2 || firstOffset[0] != 5 || firstOffset[1] != 5 {
		t.Fatalf("began at %v, want partitions 0 and 1 at offset 5", firstOffset)
	}
	expectNoBatch(t, ch, 300*time.Millisecond)

	produceStamped(t, ctx, addr, "metrics", []int32{2}, 1, func(int) time.Time { return start.Add(time.Hour) })
	if b := readRecords(t, ch, 1)[0]; b.part.Partition != 2 || b.first != 5 {
		t.Fatalf("read %v, want the record produced to partition 2 at offset 5", b)
	}
}

// A group with committed offsets resumes from them: start_time, later than
// the records committed from, does not skip them.
func TestInputStartTimeIgnoredByGroupWithCommits(t *testing.T) {
	ctx := testContext(t)
	start := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	addr := startTimeTopic(t, ctx, start)

	const conf = "topics: [ metrics ]\nconsumer_group: g\nbatch_size: 3\ncommit_period: 1h\n"
	first, _ := newTestInput(t, ctx, addr, conf)
	ch, _ := startReader(t, first)
	// Acknowledge offsets 0-2 of every partition: records before start.
	for _, b := range readRecords(t, ch, 25) {
		if b.last <= 2 {
			ack(t, b, nil)
		}
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, ctx, addr, "g", "metrics", 3); fmt.Sprint(got) != "[3 3 3]" {
		t.Fatalf("committed %v at close, want [3 3 3]", got)
	}

	second, _ := newTestInput(t, ctx, addr, conf+"start_time: 2026-12-06T15:00:00Z\n")
	ch2, _ := startReader(t, second)
	firstOffset := map[int32]int64{}
	for _, b := range readRecords(t, ch2, 25-9) {
		if _, ok := firstOffset[b.part.Partition]; !ok {
			firstOffset[b.part.Partition] = b.first
		}
	}
	if fmt.Sprint(firstOffset) != "map[0:3 1:3 2:3]" {
		t.Fatalf("resumed at %v, want every partition at its commit, offset 3", firstOffset)
	}
	expectNoBatch(t, ch2, 300*time.Millisecond)
}

// A value that is not an RFC 3339 time, or one before 1970, fails the
// input's construction with an error naming the field.
func TestInputStartTimeInvalid(t *testing.T) {
	for _, v := range []string{"2026-12-06 15:00:00", "2026-12-06T15:00:00", "15:00", "1969-12-31T23:00:00Z"} {
		conf, err := inputSpec().ParseYAML(fmt.Sprintf("seed_brokers: [ \"localhost:9092\" ]\ntopics: [ m ]\nconsumer_group: g\nstart_time: %q", v), nil)
		if err == nil {
			_, err = newInput(conf, service.MockResources())
		}
		if err == nil || !strings.HasPrefix(err.Error(), inFieldStartTime+":") {
			t.Errorf("start_time %q: error %v, want one naming %s", v, err, inFieldStartTime)
		}
	}
}

// The empty default and a valid time both construct an input.
func TestInputStartTimeValid(t *testing.T) {
	for _, line := range []string{"", "start_time: \"\"", "start_time: 2026-12-06T15:00:00Z", "start_time: 2026-12-06T16:00:00.5+01:00"} {
		conf, err := inputSpec().ParseYAML("seed_brokers: [ \"localhost:9092\" ]\ntopics: [ m ]\nconsumer_group: g\n"+line, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newInput(conf, service.MockResources()); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}
