package components

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/checkpoint"
)

// lazyStore resolves the buffer's state store at first use: resources may
// be built after the buffer.
type lazyStore struct {
	res          *service.Resources
	store, cache string // resource names, one set
	clock        func() time.Time

	once sync.Once
	s    stateStore
	err  error
}

func (ls *lazyStore) get(ctx context.Context) (stateStore, error) {
	ls.once.Do(func() {
		if ls.cache != "" {
			ls.s = newCacheStore(ls.res, ls.cache, ls.clock)
			return
		}
		ls.err = ls.res.AccessCustomResource(ctx, stateStoreResource, ls.store, func(v any) {
			s, ok := v.(stateStore)
			if !ok {
				ls.err = fmt.Errorf("%s resource %q is not a state store", stateStoreResource, ls.store)
				return
			}
			ls.s = s
		})
		if ls.err != nil {
			ls.err = fmt.Errorf("%s %q: %w", mabFieldStateStore, ls.store, ls.err)
		}
	})
	return ls.s, ls.err
}

// ready fails while the state store cannot be used, so that the input does
// not consume what could never be acknowledged.
func (ls *lazyStore) ready(ctx context.Context) error {
	s, err := ls.get(ctx)
	if err != nil {
		return err
	}
	if rc, ok := s.(readyChecker); ok {
		return rc.Ready(ctx)
	}
	return nil
}

// restore reads what an earlier run (or a former owner of its partitions)
// saved for lane l before its first input is folded, retrying until it
// succeeds: aggregating without it could count input twice or emit partial
// values. It reports false only when ctx ends first. Lanes are restored
// when their partitions are assigned (in the background), or, with inputs
// that report no partitions, at their first input (the scale-out stages)
// or the first read (stage single), so that a store that is slow to come
// up delays data, not start-up.
func (b *aggregateBuffer) restore(ctx context.Context, l *lane) bool {
	if l.restored.Load() {
		return true
	}
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	for attempt := 1; !l.restored.Load(); attempt++ {
		err := b.restoreLane(ctx, l)
		if err == nil {
			break
		}
		b.log.Warnf("Reading the saved window state %q failed (attempt %d), input waits: %v", l.stateKey, attempt, err)
		if !sleep(ctx, retryBackoff(attempt)) {
			return false
		}
	}
	return true
}

// restoreLane claims lane l's key in the store and continues from the
// checkpoint saved there, if any. Called with l.saveMu held.
func (b *aggregateBuffer) restoreLane(ctx context.Context, l *lane) error {
	store, err := b.store.get(ctx)
	if err != nil {
		return err
	}
	value, found, err := store.Claim(ctx, l.stateKey)
	if err != nil {
		return fmt.Errorf("reading the state saved under %q: %w", l.stateKey, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !found:
		b.startFresh(l)
	default:
		if err := b.continueFrom(l, value); err != nil {
			return err
		}
	}
	l.restored.Store(true)
	b.expectHeld(l)
	b.updateGauges()
	return nil
}

// startFresh starts lane l with nothing saved: with start_time, every
// window ending at or before it is taken as published by the aggregator
// replaced (closing at or before the start plus the lag means ending at or
// before the start).
func (b *aggregateBuffer) startFresh(l *lane) {
	if b.config.startMs == 0 {
		b.log.Infof("No saved window state under %q: starting fresh", l.stateKey)
		return
	}
	l.engine.Restore(b.config.startMs + b.config.aggregation.engine.Lag.Milliseconds())
	b.log.Infof("No saved window state under %q: starting with the windows after %s", l.stateKey,
		time.UnixMilli(b.config.startMs).UTC().Format(time.RFC3339))
}

// continueFrom restores lane l from value, a checkpoint or, saved by a
// version that could save only that, a plain decimal close time: input
// for windows closing at or before it is skipped as already emitted.
func (b *aggregateBuffer) continueFrom(l *lane, value []byte) error {
	if through, err := strconv.ParseInt(string(value), 10, 64); err == nil {
		l.engine.Restore(through)
		l.flushes.delivered = through
		b.log.Infof("Restored the close time %s of %q: input for windows closed before it is skipped as already emitted",
			time.UnixMilli(through).UTC().Format(time.RFC3339), l.stateKey)
		return nil
	}
	positions, err := checkpoint.Restore(value, l.engine)
	if err != nil {
		return fmt.Errorf("the checkpoint saved under %q: %w", l.stateKey, err)
	}
	l.positions = positions
	l.flushes.delivered = l.engine.Frontier()
	b.log.Infof("Restored the checkpoint of %q (%d bytes, %d open series, %d partitions): input it holds is skipped",
		l.stateKey, len(value), l.engine.OpenSeries(), len(positions))
	return nil
}

// settle advances each lane's delivery over its fully acknowledged
// flushes, saves its checkpoint taken and not saved, and releases the
// input acknowledgements that are free.
func (b *aggregateBuffer) settle(ctx context.Context) {
	b.mu.Lock()
	lanes := slices.Clone(b.laneOrder)
	b.mu.Unlock()
	for _, l := range lanes {
		b.settleLane(ctx, l)
	}
	b.mu.Lock()
	b.updateGauges()
	b.mu.Unlock()
}

func (b *aggregateBuffer) settleLane(ctx context.Context, l *lane) {
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	b.mu.Lock()
	if l.flushes.settle() {
		// Until a checkpoint holds the delivered windows as closed, a
		// takeover emits them again.
		l.ckpt.dueNow()
	}
	pending, taken := l.ckpt.pending, l.ckpt.taken
	b.mu.Unlock()

	if pending != nil {
		if !b.save(ctx, l, pending) {
			return
		}
		b.mu.Lock()
		l.ckpt.pending, l.ckpt.saved = nil, taken
		l.lastSaved = savedCheckpoint{at: b.clock(), bytes: len(pending)}
		b.mu.Unlock()
	}

	b.mu.Lock()
	release := l.acks.release(l.ckpt.saved, l.flushes.deliveredSeq)
	b.mu.Unlock()
	for _, ack := range release {
		if err := ack(ctx, nil); err != nil {
			b.log.Debugf("Acknowledging input: %v", err)
		}
	}
}

// save stores checkpoint under lane l's key and reports whether it did. A
// failure holds the lane's input until a later save succeeds. A save
// fenced by a newer owner of the lane's partitions drops the lane unsaved:
// they were lost, and its input, never committed, is the new owner's to
// read. Called with l.saveMu held.
func (b *aggregateBuffer) save(ctx context.Context, l *lane, checkpoint []byte) bool {
	store, err := b.store.get(ctx)
	if err == nil {
		err = store.Save(ctx, l.stateKey, checkpoint)
	}
	switch {
	case err == nil:
		return true
	case isFenced(err):
		b.log.Warnf("The state %q has a newer owner: dropping it unsaved: %v", l.stateKey, err)
		b.mu.Lock()
		b.dropLane(l)
		b.mu.Unlock()
	default:
		b.saveFailures.Incr(1)
		b.log.Errorf("Saving the state %q failed, holding input until it succeeds: %v", l.stateKey, err)
	}
	return false
}
