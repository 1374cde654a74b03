package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
)

// Fields of the kafka output. Names and meanings follow Connect's
// kafka_franz output where they agree.
const (
	outputFieldKey          = "key"
	outputFieldPartitioner  = "partitioner"
	outputFieldPartition    = "partition"
	outputFieldMetadata     = "metadata"
	outputFieldTimestampMs  = "timestamp_ms"
	outputFieldMaxInFlight  = "max_in_flight"
	outputFieldBatching     = "batching"
	outputFieldCompression  = "compression"
	outputFieldMaxMsgBytes  = "max_message_bytes"
	outputFieldTimeout      = "timeout"
	outputFieldCreateTopic  = "create_topic"
	outputFieldCreateEnable = "enabled"
)

// Partitioners of the kafka output.
const (
	partitionerMurmur2 = "murmur2_hash"
	partitionerManual  = "manual"
)

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Writes messages to a Kafka topic with idempotent, acks=all produce requests.").
		Description(`
A batch is written as a whole and the output waits for every record: a record that fails (the topic
is missing, a broker is down longer than `+"`timeout`"+`) fails the write with an error naming it, so that
the caller retries it, instead of being retried in the background without end. When a topic is
deleted and created again, the output forgets what it knew about it after the first failed write and
the next write goes to the new topic.

A static `+"`topic`"+` is announced to the stream with its partition count as the brokers report it
(refreshed every second), for a buffer that addresses partitions itself with the `+"`manual`"+`
partitioner.`).
		Fields(connectionFields()...).
		Fields(
			service.NewInterpolatedStringField(fieldWriteTopic).
				Description("The topic to write to."),
			service.NewInterpolatedStringField(outputFieldKey).
				Description("The key of each record. Records without a key are spread over the partitions.").
				Example("${! @monasca_series_id }").
				Optional(),
			service.NewStringEnumField(outputFieldPartitioner, partitionerMurmur2, partitionerManual).
				Description("How a record's partition is chosen. `murmur2_hash` is Kafka's default partitioner: a key's partition is the murmur2 hash of the key modulo the partition count, as with the Java client, so other clients agree on it; records without a key stick to one partition per batch. `manual` takes the partition from `partition`.").
				Default(partitionerMurmur2),
			service.NewInterpolatedStringField(outputFieldPartition).
				Description("The partition of each record with the `manual` partitioner, a number from 0 to the partition count minus 1.").
				Example("${! @monasca_partition }").
				Optional(),
			service.NewMetadataFilterField(outputFieldMetadata).
				Description("Which metadata of a message to write as record headers.").
				Optional(),
			service.NewInterpolatedStringField(outputFieldTimestampMs).
				Description("The timestamp of each record in milliseconds since the Unix epoch. Without it, the time of producing.").
				Example("${! timestamp_unix_milli() }").
				Optional().
				Advanced(),
			service.NewIntField(outputFieldMaxInFlight).
				Description("The number of batches written at the same time.").
				Default(10),
			service.NewBatchPolicyField(outputFieldBatching),
			service.NewStringEnumField(outputFieldCompression, "none", "gzip", "snappy", "lz4", "zstd").
				Description("The compression of record batches. `none` by default because every consumer can read it: older Monasca consumers (kafka-python without its optional lz4 or snappy packages, the old Java client of monasca-thresh) cannot read every codec. `lz4` is a good choice when all consumers support it.").
				Default("none").
				Advanced(),
			service.NewStringField(outputFieldMaxMsgBytes).
				Description("The largest record batch sent, before compression. Keep it at most the topic's `max.message.bytes`.").
				Example("100MB").
				Default("1MB").
				Advanced(),
			service.NewDurationField(outputFieldTimeout).
				Description("How long a write may take, at least `1s`. A write that takes longer fails back to the caller.").
				Default("10s").
				Advanced(),
			service.NewObjectField(outputFieldCreateTopic,
				service.NewBoolField(outputFieldCreateEnable).
					Description("Whether to create the topic at start-up when it does not exist.").
					Default(false),
				service.NewIntField(fieldTopicPartitions).
					Description("The partition count of a created topic; -1 takes the brokers' default.").
					Default(-1),
				service.NewIntField(fieldTopicReplicationFactor).
					Description("The replication factor of a created topic; -1 takes the brokers' default.").
					Default(-1),
			).
				Description("Creates a static `topic` when it is missing, for clusters that do not create topics on first use.").
				Advanced(),
		)
}

func init() {
	err := service.RegisterBatchOutput("kafka", outputSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			var policy service.BatchPolicy
			o, err := newOutput(conf, res)
			if err != nil {
				return nil, policy, 0, err
			}
			if policy, err = conf.FieldBatchPolicy(outputFieldBatching); err != nil {
				return nil, policy, 0, err
			}
			maxInFlight, err := conf.FieldInt(outputFieldMaxInFlight)
			if err != nil {
				return nil, policy, 0, err
			}
			return o, policy, maxInFlight, nil
		})
	if err != nil {
		panic(err)
	}
}

// output is the kafka output.
type output struct {
	cl        *kgo.Client
	log       *service.Logger
	topic     *service.InterpolatedString
	static    string // the topic when it is not interpolated
	key       *service.InterpolatedString
	partition *service.InterpolatedString
	timestamp *service.InterpolatedString
	metadata  *service.MetadataFilter
	timeout   time.Duration
	create    *topicSpec // nil: do not create the topic
}

func newOutput(conf *service.ParsedConfig, res *service.Resources) (*output, error) {
	o := &output{log: res.Logger()}
	var err error
	if o.topic, err = conf.FieldInterpolatedString(fieldWriteTopic); err != nil {
		return nil, err
	}
	o.static, _ = o.topic.Static()
	if conf.Contains(outputFieldKey) {
		if o.key, err = conf.FieldInterpolatedString(outputFieldKey); err != nil {
			return nil, err
		}
	}
	if conf.Contains(outputFieldTimestampMs) {
		if o.timestamp, err = conf.FieldInterpolatedString(outputFieldTimestampMs); err != nil {
			return nil, err
		}
	}
	if conf.Contains(outputFieldMetadata) {
		if o.metadata, err = conf.FieldMetadataFilter(outputFieldMetadata); err != nil {
			return nil, err
		}
	}
	if o.timeout, err = conf.FieldDuration(outputFieldTimeout); err != nil {
		return nil, err
	}
	if o.timeout < time.Second {
		return nil, fmt.Errorf("%s: %v is less than 1s", outputFieldTimeout, o.timeout)
	}
	if o.create, err = createTopicSpec(conf, o.static); err != nil {
		return nil, err
	}

	opts, err := clientOptions(conf)
	if err != nil {
		return nil, err
	}
	partitioner, err := o.partitioner(conf)
	if err != nil {
		return nil, err
	}
	codec, err := compressionCodec(conf)
	if err != nil {
		return nil, err
	}
	maxBytes, err := byteSize(conf, outputFieldMaxMsgBytes)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		// Idempotent writes (franz-go's default) need acks from all
		// in-sync replicas; saying so keeps it true if defaults change.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(partitioner),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(maxBytes),
		// A broker waits at most timeout for the replicas. Records
		// themselves are bounded by WriteBatch's context, not by
		// RecordDeliveryTimeout: franz-go counts that from the record's
		// timestamp, which timestamp_ms may set in the past.
		kgo.ProduceRequestTimeout(o.timeout),
	)
	if o.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, err
	}
	if o.static != "" {
		assignment.SetOutput(res, outputPartitions{cl: o.cl, topic: o.static})
	}
	return o, nil
}

func (o *output) partitioner(conf *service.ParsedConfig) (kgo.Partitioner, error) {
	name, err := conf.FieldString(outputFieldPartitioner)
	if err != nil {
		return nil, err
	}
	hasPartition := conf.Contains(outputFieldPartition)
	switch {
	case name == partitionerManual && !hasPartition:
		return nil, fmt.Errorf("%s: %s needs %s", outputFieldPartitioner, partitionerManual, outputFieldPartition)
	case name != partitionerManual && hasPartition:
		return nil, fmt.Errorf("%s is used only with %s: %s", outputFieldPartition, outputFieldPartitioner, partitionerManual)
	case name == partitionerManual:
		if o.partition, err = conf.FieldInterpolatedString(outputFieldPartition); err != nil {
			return nil, err
		}
		return kgo.ManualPartitioner(), nil
	}
	// nil: Kafka's murmur2 hash for keys, sticky for records without one.
	return kgo.StickyKeyPartitioner(nil), nil
}

func compressionCodec(conf *service.ParsedConfig) (kgo.CompressionCodec, error) {
	name, err := conf.FieldString(outputFieldCompression)
	if err != nil {
		return kgo.NoCompression(), err
	}
	switch name {
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), nil
}

func createTopicSpec(conf *service.ParsedConfig, static string) (*topicSpec, error) {
	enabled, err := conf.FieldBool(outputFieldCreateTopic, outputFieldCreateEnable)
	if err != nil || !enabled {
		return nil, err
	}
	if static == "" {
		return nil, fmt.Errorf("%s: an interpolated %s cannot be created at start-up", outputFieldCreateTopic, fieldWriteTopic)
	}
	partitions, err := conf.FieldInt(outputFieldCreateTopic, fieldTopicPartitions)
	if err != nil {
		return nil, err
	}
	replication, err := conf.FieldInt(outputFieldCreateTopic, fieldTopicReplicationFactor)
	if err != nil {
		return nil, err
	}
	return &topicSpec{name: static, partitions: int32(partitions), replicationFactor: int16(replication)}, nil
}

// Connect checks that the brokers answer and creates the topic if asked to.
func (o *output) Connect(ctx context.Context) error {
	if err := ping(ctx, o.cl); err != nil {
		return err
	}
	if o.create != nil {
		_, err := ensureTopic(ctx, o.cl, *o.create)
		return err
	}
	if o.static != "" {
		if _, err := cachedPartitions(ctx, o.cl, o.static, 0); errors.Is(err, kerr.UnknownTopicOrPartition) {
			o.log.Warnf("Topic %q does not exist: writes fail until it is created (or set %s.%s)", o.static, outputFieldCreateTopic, outputFieldCreateEnable)
		}
	}
	return nil
}

// WriteBatch produces every message of batch and waits for all of them. It
// fails with a *service.BatchError naming the messages that failed.
func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	var batchErr *service.BatchError
	fail := func(i int, err error) {
		if batchErr == nil {
			batchErr = service.NewBatchError(batch, err)
		}
		batchErr = batchErr.Failed(i, err)
	}
	recs := make([]*kgo.Record, 0, len(batch))
	indexes := make([]int, 0, len(batch))
	fields := o.executors(batch)
	for i := range batch {
		r, err := o.record(batch, i, fields)
		if err != nil {
			fail(i, fmt.Errorf("message %d: %w", i, err))
			continue
		}
		recs = append(recs, r)
		indexes = append(indexes, i)
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	errs, err := produceAll(ctx, o.cl, recs)
	if err != nil {
		return fmt.Errorf("writing %d records: %w", len(recs), err)
	}
	var purged map[string]bool // reading a nil map is fine; most batches need none
	for j, err := range errs {
		if err == nil {
			continue
		}
		r := recs[j]
		if !purged[r.Topic] && (errors.Is(err, kerr.UnknownTopicID) || errors.Is(err, kerr.UnknownTopicOrPartition)) {
			// The topic is gone or was recreated: forget its
			// partitions and IDs so that the next write looks it up
			// anew instead of failing on stale metadata.
			if purged == nil {
				purged = map[string]bool{}
			}
			purged[r.Topic] = true
			o.cl.PurgeTopicsFromClient(r.Topic)
		}
		fail(indexes[j], fmt.Errorf("writing to topic %q partition %d: %w", r.Topic, r.Partition, err))
	}
	if batchErr != nil {
		return batchErr
	}
	return nil
}

// produceAll produces recs and returns each record's error. It returns
// early with ctx's error when ctx ends first: franz-go cannot fail a record
// of a request in flight until the request ends, and that can take longer.
func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) ([]error, error) {
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return errs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// batchExecutors are a batch's interpolations, one per field set. Made
// once per batch: MessageBatch.TryInterpolated* copies the batch on every
// call, which made a batch's cost grow with the square of its size.
type batchExecutors struct {
	topic, key, partition, timestamp *service.MessageBatchInterpolationExecutor
}

func (o *output) executors(batch service.MessageBatch) batchExecutors {
	var e batchExecutors
	if o.static == "" {
		e.topic = batch.InterpolationExecutor(o.topic)
	}
	if o.key != nil {
		e.key = batch.InterpolationExecutor(o.key)
	}
	if o.partition != nil {
		e.partition = batch.InterpolationExecutor(o.partition)
	}
	if o.timestamp != nil {
		e.timestamp = batch.InterpolationExecutor(o.timestamp)
	}
	return e
}

func (o *output) record(batch service.MessageBatch, i int, e batchExecutors) (*kgo.Record, error) {
	value, err := batch[i].AsBytes()
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{Topic: o.static, Value: value}
	if e.topic != nil {
		if r.Topic, err = e.topic.TryString(i); err != nil {
			return nil, fmt.Errorf("%s: %w", fieldWriteTopic, err)
		}
	}
	if e.key != nil {
		if r.Key, err = e.key.TryBytes(i); err != nil {
			return nil, fmt.Errorf("%s: %w", outputFieldKey, err)
		}
	}
	if e.partition != nil {
		s, err := e.partition.TryString(i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", outputFieldPartition, err)
		}
		p, err := strconv.ParseInt(s, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("%s: %q is not a partition number", outputFieldPartition, s)
		}
		r.Partition = int32(p)
	}
	if e.timestamp != nil {
		s, err := e.timestamp.TryString(i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", outputFieldTimestampMs, err)
		}
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number of milliseconds", outputFieldTimestampMs, s)
		}
		r.Timestamp = time.UnixMilli(ms)
	}
	if o.metadata != nil {
		_ = o.metadata.Walk(batch[i], func(k, v string) error {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			return nil
		})
	}
	return r, nil
}

// Close stops the client; records still buffered fail.
func (o *output) Close(context.Context) error {
	o.cl.Close()
	return nil
}
