package harness

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/plugins/checkpoint"
	"github.com/monasca-connect/monasca-connect/plugins/kafka"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// Kafka is a one-broker Kafka cluster in this process, on loopback, and a
// client of it. Topics are not created automatically, as in production:
// the pipelines create their own state topics, and the caller the others.
type Kafka struct {
	Cluster *kfake.Cluster
	// Brokers are the seed brokers, comma-separated as KAFKA_BROKERS
	// takes them.
	Brokers string
	// Client produces each record to the partition it names.
	Client *kgo.Client
	Admin  *kadm.Client
}

// StartKafka starts a cluster with the given topics and partition counts.
func StartKafka(topics map[string]int32) (*Kafka, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	for _, topic := range slices.Sorted(maps.Keys(topics)) {
		opts = append(opts, kfake.SeedTopics(topics[topic], topic))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting kfake: %w", err)
	}
	k := &Kafka{Cluster: cluster, Brokers: strings.Join(cluster.ListenAddrs(), ",")}
	for _, a := range cluster.ListenAddrs() {
		if host, _, _ := net.SplitHostPort(a); !net.ParseIP(host).IsLoopback() {
			cluster.Close()
			return nil, fmt.Errorf("kfake listens on %s, not loopback", a)
		}
	}
	k.Client, err = kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		cluster.Close()
		return nil, err
	}
	k.Admin = kadm.NewClient(k.Client)
	return k, nil
}

// Close stops the client and the cluster.
func (k *Kafka) Close() {
	k.Client.Close()
	k.Cluster.Close()
}

// Checkpoint is a checkpoint of the monasca_aggregate buffer, as read from
// its state topic.
type Checkpoint struct {
	// Positions holds, per input partition, the offset of the last input
	// the checkpoint holds.
	Positions map[windowagg.Source]int64
	Bytes     int // the payload's size
	Manifests int // see kafka.Saved
}

// ReadCheckpoint reads the checkpoint saved under key on a state topic of
// the cluster, as a claim would have read it when the topic ended at ends
// (nil: now); found is false when nothing is saved under key. A saved
// frontier is not a checkpoint: an error.
func (k *Kafka) ReadCheckpoint(ctx context.Context, topic, key string, ends kadm.ListedOffsets) (c Checkpoint, found bool, err error) {
	saved, err := kafka.ReadSaved(ctx, k.Cluster.ListenAddrs(), topic, key, ends)
	if err != nil || !saved.Found {
		return c, false, err
	}
	c.Bytes, c.Manifests = len(saved.Value), saved.Manifests
	if c.Positions, _, err = checkpoint.Decode(saved.Value); err != nil {
		return c, true, fmt.Errorf("the value saved under %q on %s: %w", key, topic, err)
	}
	return c, true, nil
}

// SumOffsets adds up offsets, leaving out partitions listed with an error.
func SumOffsets(offsets kadm.ListedOffsets) int64 {
	var n int64
	offsets.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n
}

// Uncommitted describes, partition by partition, where committed falls
// short of ends; nothing when every record before ends is committed.
func Uncommitted(ends kadm.ListedOffsets, committed kadm.OffsetResponses) []string {
	var short []string
	ends.Each(func(o kadm.ListedOffset) {
		got, ok := committed.Lookup(o.Topic, o.Partition)
		switch {
		case o.Err != nil:
			short = append(short, fmt.Sprintf("p%d: %v", o.Partition, o.Err))
		case o.Offset == 0:
			// Nothing to commit.
		case !ok || got.Err != nil:
			short = append(short, fmt.Sprintf("p%d: nothing committed of %d", o.Partition, o.Offset))
		case got.At < o.Offset:
			short = append(short, fmt.Sprintf("p%d: committed %d of %d", o.Partition, got.At, o.Offset))
		}
	})
	slices.Sort(short)
	return short
}

// PipelineEnv is the environment the shipped pipelines read, besides their
// specifications and tuning.
type PipelineEnv struct {
	Brokers         string // KAFKA_BROKERS
	MetricsTopic    string // METRICS_TOPIC, the input
	AggregatedTopic string // AGGREGATED_TOPIC, the output
	Group           string // CONSUMER_GROUP, also the state topic's prefix and state key
	InstanceID      string // INSTANCE_ID, the static group membership
	HTTPAddress     string // HTTP_ADDRESS, of /metrics and /ready
}

// List returns the environment as NAME=value entries.
func (e PipelineEnv) List() []string {
	return []string{
		"KAFKA_BROKERS=" + e.Brokers,
		"METRICS_TOPIC=" + e.MetricsTopic,
		"AGGREGATED_TOPIC=" + e.AggregatedTopic,
		"CONSUMER_GROUP=" + e.Group,
		"INSTANCE_ID=" + e.InstanceID,
		"HTTP_ADDRESS=" + e.HTTPAddress,
	}
}
