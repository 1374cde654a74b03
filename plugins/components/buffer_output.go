package components

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// outChunk is one output batch of a flush, or the stage's other output
// (flush nil).
type outChunk struct {
	flush    *flushMark
	batch    service.MessageBatch
	attempts int
	retryAt  time.Time
}

// nextReady takes the head of the queue when its back-off has passed.
// Called with mu held.
func (b *aggregateBuffer) nextReady(now time.Time) *outChunk {
	if len(b.queue) == 0 || b.queue[0].retryAt.After(now) {
		return nil
	}
	c := b.queue[0]
	b.queue = b.queue[1:]
	return c
}

// chunkAck returns the read-side acknowledgement of a chunk. A failure puts
// the chunk back at the head of the queue with back-off: the output is
// retried, and the input stays held, for as long as it takes.
func (b *aggregateBuffer) chunkAck(c *outChunk) service.AckFunc {
	return func(ctx context.Context, err error) error {
		if err != nil {
			b.mu.Lock()
			c.attempts++
			c.retryAt = b.clock().Add(retryBackoff(c.attempts))
			b.queue = append([]*outChunk{c}, b.queue...)
			b.mu.Unlock()
			b.retries.Incr(1)
			b.log.Warnf("Writing %d messages failed (attempt %d), retrying: %v", len(c.batch), c.attempts, err)
			return nil
		}
		if c.flush == nil {
			return nil
		}
		b.mu.Lock()
		c.flush.pending--
		b.mu.Unlock()
		b.settle(ctx)
		return nil
	}
}

// retryBackoff doubles from 100ms up to 10s.
func retryBackoff(attempts int) time.Duration {
	d := 100 * time.Millisecond << min(attempts-1, 7)
	return min(d, 10*time.Second)
}

// sleep waits for d or ctx and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
