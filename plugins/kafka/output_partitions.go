package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionCountMaxAge is how old the partition count the output reports
// to its stream may be.
const partitionCountMaxAge = time.Second

// outputPartitions tells the stream the partition count of the output's
// static topic.
type outputPartitions struct {
	cl    *kgo.Client
	topic string
}

// Partitions returns the topic's partition count, at most
// partitionCountMaxAge old.
func (p outputPartitions) Partitions(ctx context.Context) (int32, error) {
	return cachedPartitions(ctx, p.cl, p.topic, partitionCountMaxAge)
}
