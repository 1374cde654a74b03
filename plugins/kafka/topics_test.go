package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// edgeCluster starts a one-broker cluster on a free loopback port. Like the
// brokers in production it creates no topic on first use.
func edgeCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// edgeAdmin returns an admin client of c.
func edgeAdmin(t *testing.T, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// edgeCreate creates topic with partitions on c.
func edgeCreate(t *testing.T, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
}

// edgeConfig parses yaml with spec, after replacing BROKERS with c's
// address.
func edgeConfig(t *testing.T, spec *service.ConfigSpec, c *kfake.Cluster, yaml string) *service.ParsedConfig {
	t.Helper()
	return edgeConfigFor(t, spec, strings.ReplaceAll(yaml, "BROKERS", fmt.Sprintf("[%q]", strings.Join(c.ListenAddrs(), ","))))
}

// edgeConfigFor parses yaml with spec.
func edgeConfigFor(t *testing.T, spec *service.ConfigSpec, yaml string) *service.ParsedConfig {
	t.Helper()
	conf, err := spec.ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// edgeContext returns a context that ends with the test or after d.
func edgeContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestTopicEnsureCreatesMissingAndKeepsExisting(t *testing.T) {
	c := edgeCluster(t)
	adm := edgeAdmin(t, c)
	ctx := edgeContext(t, 20*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	if _, err := cachedPartitions(ctx, cl, "t1", 0); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("missing topic: got %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	n, err := ensureTopic(ctx, cl, topicSpec{name: "t1", partitions: 3, replicationFactor: -1})
	if err != nil || n != 3 {
		t.Fatalf("creating: got %d, %v; want 3 partitions", n, err)
	}
	edgeCreate(t, adm, "t2", 2)
	n, err = ensureTopic(ctx, cl, topicSpec{name: "t2", partitions: 5, replicationFactor: -1})
	if err != nil || n != 2 {
		t.Fatalf("existing: got %d, %v; want its 2 partitions", n, err)
	}
	_, err = ensureTopic(ctx, cl, topicSpec{name: "t3", partitions: 1, replicationFactor: 3})
	if !errors.Is(err, kerr.InvalidReplicationFactor) || !strings.Contains(err.Error(), `"t3"`) {
		t.Fatalf("replication factor above the broker count: got %v", err)
	}
}
