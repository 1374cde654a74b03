package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fields of the components that write a topic and may create it.
const (
	fieldWriteTopic             = "topic"
	fieldTopicPartitions        = "partitions"
	fieldTopicReplicationFactor = "replication_factor"
)

// topicSpec is a topic to create when it is missing. Brokers in production
// do not create topics on first use, so the output and the state store
// create theirs themselves.
type topicSpec struct {
	name string
	// partitions and replicationFactor of -1 take the broker's defaults
	// (Kafka 2.4+).
	partitions        int32
	replicationFactor int16
	configs           map[string]*string
}

// ensureTopic creates the topic when it does not exist and returns its
// partition count.
func ensureTopic(ctx context.Context, cl *kgo.Client, spec topicSpec) (int32, error) {
	n, err := cachedPartitions(ctx, cl, spec.name, 0)
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return n, err
	}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, spec.partitions, spec.replicationFactor, spec.configs, spec.name)
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		// Created by someone else meanwhile.
	case err != nil && resp.ErrMessage != "":
		return 0, fmt.Errorf("creating topic %q: %w: %s", spec.name, err, resp.ErrMessage)
	case err != nil:
		return 0, fmt.Errorf("creating topic %q: %w", spec.name, err)
	}
	// Brokers learn of a new topic a moment after creating it, and the
	// client's metadata still holds it as missing: wait until both know
	// it, so that the caller can use it at once.
	for {
		n, err := cachedPartitions(ctx, cl, spec.name, time.Nanosecond)
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for the created topic %q: %w", spec.name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cachedPartitions returns a topic's partition count from the client's
// metadata, refreshed when it is older than maxAge (0: the client's
// metadata_min_age), so that callers can ask often and still follow a topic
// that grows or is recreated. A missing topic is
// kerr.UnknownTopicOrPartition.
func cachedPartitions(ctx context.Context, cl *kgo.Client, topic string, maxAge time.Duration) (int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.RequestCachedMetadata(ctx, req, maxAge)
	if err != nil {
		return 0, fmt.Errorf("describing topic %q: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return 0, fmt.Errorf("describing topic %q: %w", topic, err)
		}
		return int32(len(t.Partitions)), nil
	}
	return 0, fmt.Errorf("describing topic %q: %w", topic, kerr.UnknownTopicOrPartition)
}
