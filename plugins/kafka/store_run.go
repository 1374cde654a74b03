package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// waitReady waits until the store is ready.
func (s *Store) waitReady(ctx context.Context) error {
	err := s.waitFor(ctx, func() bool { return s.ready })
	if err != nil {
		if rerr := s.Ready(ctx); rerr != nil {
			return fmt.Errorf("%w (%w)", rerr, err)
		}
	}
	return err
}

// catchUp waits until the tail has read every record written before now.
func (s *Store) catchUp(ctx context.Context) error {
	ends, err := s.endOffsets(ctx)
	if err != nil {
		return err
	}
	return s.waitFor(ctx, func() bool { return s.caughtUp(ends) })
}

// endOffsets lists the end offsets of the topic, retrying errors that say
// to: the client may briefly hold a topic just created as missing.
func (s *Store) endOffsets(ctx context.Context) (kadm.ListedOffsets, error) {
	for {
		ends, err := kadm.NewClient(s.cl).ListEndOffsets(ctx, s.topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			return ends, nil
		}
		if !kerr.IsRetriable(err) {
			return nil, fmt.Errorf("listing the end offsets of topic %q: %w", s.topic, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("listing the end offsets of topic %q: %w (%w)", s.topic, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// caughtUp reports whether the tail has read up to ends.
func (s *Store) caughtUp(ends kadm.ListedOffsets) bool {
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		if s.next[o.Partition] < o.Offset {
			done = false
		}
	})
	return done
}

// waitFor waits until cond, called with s.mu held, is true.
func (s *Store) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, changed := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return errors.New("the state store is closed")
		}
	}
}

// run sets the store up, retrying until it works, then follows the topic.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	ends, ok := s.setUp(ctx)
	if !ok {
		return
	}
	s.mu.Lock()
	s.markReady(ends)
	s.broadcast()
	s.mu.Unlock()
	var lastErr string
	for {
		fetches := s.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			// Once per distinct error: franz-go keeps retrying.
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				s.log.Errorf("State topic %q partition %d: reading: %v", topic, partition, err)
			}
		})
		s.mu.Lock()
		fetches.EachRecord(s.apply)
		s.markReady(ends)
		s.broadcast()
		s.mu.Unlock()
	}
}

// markReady sets the store ready once the tail has read up to the end
// offsets the topic had at start-up.
func (s *Store) markReady(ends kadm.ListedOffsets) {
	if s.ready || !s.caughtUp(ends) {
		return
	}
	s.ready, s.setupErr = true, nil
	s.log.Infof("State topic %q: ready, %d keys read", s.topic, len(s.keys))
}

// broadcast wakes every waitFor; s.mu is held.
func (s *Store) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// setUp creates the topic if it is missing and lists its end offsets,
// retrying until that works or ctx ends. Each new reason for failing is
// logged as an error and kept for Ready.
func (s *Store) setUp(ctx context.Context) (kadm.ListedOffsets, bool) {
	wait := storeRetryMin
	for {
		ends, err := s.setUpOnce(ctx)
		if err == nil {
			return ends, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		err = fmt.Errorf("state topic %q: %w", s.topic, err)
		s.mu.Lock()
		if s.setupErr == nil || s.setupErr.Error() != err.Error() {
			s.log.Errorf("%v; retrying", err)
		}
		s.setupErr = err
		s.mu.Unlock()
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, false
		}
		wait = min(2*wait, storeRetryMax)
	}
}

func (s *Store) setUpOnce(ctx context.Context) (kadm.ListedOffsets, error) {
	ctx, cancel := context.WithTimeout(ctx, storeWriteTimeout)
	defer cancel()
	if err := ping(ctx, s.cl); err != nil {
		return nil, err
	}
	partitions, err := ensureTopic(ctx, s.cl, s.create)
	if err != nil {
		return nil, err
	}
	s.warnIfNotCompacted(ctx)
	ends, err := s.endOffsets(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.partitions = partitions
	s.mu.Unlock()
	// The consumer may still hold the topic as missing.
	s.cl.ForceMetadataRefresh()
	return ends, nil
}

// warnIfNotCompacted warns about a topic that deletes old records: it would
// lose values not saved for the retention time.
func (s *Store) warnIfNotCompacted(ctx context.Context) {
	configs, err := kadm.NewClient(s.cl).DescribeTopicConfigs(ctx, s.topic)
	if err != nil {
		s.log.Debugf("State topic %q: describing its configs: %v", s.topic, err)
		return
	}
	rc, err := configs.On(s.topic, nil)
	if err != nil || rc.Err != nil {
		return
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && !strings.Contains(c.MaybeValue(), "compact") {
			s.log.Warnf("State topic %q has cleanup.policy=%s: values not saved within its retention time are lost; set it to compact", s.topic, c.MaybeValue())
		}
	}
}
