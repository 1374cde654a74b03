package components

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	mabFieldStateCache    = "state_cache"
	mabFieldStateKey      = "state_key"
	mabFieldCheckInterval = "check_interval"
	mabFieldMaxBatchSize  = "max_batch_size"
)

func aggregateBufferSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Version("0.1.0").
		Summary("Aggregates Monasca metrics in event-time windows, a drop-in for monasca-aggregator, and acknowledges each input message only once every aggregate it contributed to has been delivered.").
		Description(`
Each input message is a Monasca metric envelope (`+"`{\"metric\":{...},\"meta\":{...},\"creation_time\":...}`"+`). Every specification of the
`+"`aggregation_specs`"+` file that matches the metric folds its value into one running state per window, tenant
(`+"`meta.tenantId`"+`) and group of dimension values. Windows are tumbling, of `+"`window_size`"+`, aligned to the UTC epoch.
With `+"`pre_transform_specs`"+` and `+"`transform_specs`"+` instead, metrics become monasca-transform records first, and each
transform spec aggregates them per `+"`aggregation_period`"+` across tenants, as monasca-transform's components did.

== Watermark and closing windows

A window closes when the watermark passes its end plus `+"`window_lag`"+`. The watermark is the minimum, over the input's
partitions (the `+"`kafka_topic`"+` and `+"`kafka_partition`"+` metadata), of the latest event time each partition has delivered, so a
replayed backlog aggregates exactly as live data would, and a partition that Kafka serves later than the others does not see its
data declared late. A partition silent for `+"`idle_timeout`"+` stops holding the watermark back; when every partition has been
silent that long, all open windows close. A metric for a closed window is late: counted and dropped, or, with
`+"`late_policy: correct`"+`, folded into the window's kept state and the window's complete aggregates emitted again. A metric stamped more than
`+"`max_future`"+` ahead of the clock is rejected, so it cannot close windows early.

Each closed window is written as one Monasca envelope per series: the name and dimensions of the specification, the window start
(epoch milliseconds) as `+"`timestamp`"+`, `+"`meta`"+` with the tenant and the region of the input, `+"`value_meta`"+` with
`+"`record_count`"+`, `+"`firstrecord_timestamp_string`"+` and `+"`lastrecord_timestamp_string`"+`, and `+"`creation_time`"+` in seconds.
Metadata: `+"`monasca_series_id`"+` (name, sorted dimensions and tenant: use it as the Kafka key), `+"`monasca_window_start`"+`, and
`+"`monasca_origin`"+`. Input carrying this buffer's own `+"`monasca_origin`"+` (write it as a Kafka header) is skipped, so the output
topic may be the input topic.

== Delivery guarantees

Windowed state must outlive the processors, which cannot hold acknowledgements, so the aggregation is a buffer. It holds the
acknowledgement of every input batch until every window the batch contributed to has been closed, written and acknowledged by the
output, and (with `+"`state_cache`"+`) until the closed-window frontier has been saved. A failed output write is retried by the buffer
with back-off, never dropped and never turned into an input nack. After a crash the input replays from its last committed offset:
windows that were open are recomputed in full, and replayed metrics of windows that had already been emitted are recognised from
the saved frontier and skipped, so no window is emitted with a partial value. Messages that are invalid, unmatched or late are
acknowledged at once.

Stopping closes no open window: their input stays unacknowledged and is replayed on the next start. The framework waits for those
acknowledgements until `+"`shutdown_timeout`"+`, so a stop takes that long while windows are open.

== Inputs

Because acknowledgements are held for a whole window, the input must allow many unacknowledged messages per partition:

- `+"`redpanda`"+` with `+"`unordered_processing.enabled: true`"+`, or `+"`kafka_franz`"+`. The default, ordered mode of the `+"`redpanda`"+` input
  releases the next batch of a partition only after the previous one is acknowledged, so behind this buffer it would stall: the
  watermark could never advance.
- `+"`checkpoint_limit`"+` at least the number of messages one partition delivers in a window plus its lag (it is per partition).
- `+"`auto_replay_nacks: false`"+`: this buffer never nacks, and replaying nacks from memory would keep every held message in memory.

== Metrics

`+"`monasca_metrics_received_total`"+`, `+"`monasca_metrics_invalid_total{reason}`"+`, `+"`monasca_metrics_aggregated_total`"+`,
`+"`monasca_metrics_unmatched_total`"+`, `+"`monasca_metrics_late_total`"+`, `+"`monasca_metrics_corrected_total`"+`, `+"`monasca_metrics_replayed_total`"+`,
`+"`monasca_metrics_own_output_skipped_total`"+`, `+"`monasca_aggregates_emitted_total`"+`, `+"`monasca_aggregates_invalid_total`"+`, `+"`monasca_output_retries_total`"+`,
`+"`monasca_open_series`"+`, `+"`monasca_held_input_batches`"+` and `+"`monasca_frontier_ms`"+`.
`).
		Fields(aggregationFields()...).
		LintRule(aggregationLintRule).
		Fields(
			service.NewStringField(mabFieldStateCache).
				Description("A cache resource in which the frontier of emitted windows is saved before input is acknowledged. On start the frontier is read back, and replayed input of windows emitted before is skipped instead of being emitted again as a partial value. Without it, a restart can re-emit such windows with partial values.").
				Optional(),
			service.NewStringField(mabFieldStateKey).
				Description("The key under which the frontier is saved. Instances that consume different inputs need different keys.").
				Default("monasca-aggregate"),
			service.NewDurationField(mabFieldCheckInterval).
				Description("How often the watermark is checked for windows to close.").
				Default("100ms").
				Advanced(),
			service.NewIntField(mabFieldMaxBatchSize).
				Description("The largest number of aggregates written as one output batch.").
				Default(1024).
				Advanced(),
		).
		Example("Drop-in for monasca-aggregator", "Reads metrics from Kafka, aggregates them in 10 second windows and writes the aggregates back to the same topic.", `
input:
  redpanda:
    seed_brokers: [ localhost:9092 ]
    topics: [ metrics ]
    consumer_group: monasca-aggregation
    auto_replay_nacks: false
    unordered_processing:
      enabled: true
      checkpoint_limit: 1000000
buffer:
  monasca_aggregate:
    aggregation_specs: /etc/monasca/aggregation-specifications.yaml
    window_size: 10s
    window_lag: 2s
    state_cache: frontier
output:
  redpanda:
    seed_brokers: [ localhost:9092 ]
    topic: metrics
    key: ${! @monasca_series_id }
    metadata:
      include_prefixes: [ monasca_origin ]
cache_resources:
  - label: frontier
    redpanda:
      seed_brokers: [ localhost:9092 ]
      topic: monasca-aggregation-state
`)
}

func init() {
	service.MustRegisterBatchBuffer("monasca_aggregate", aggregateBufferSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchBuffer, error) {
			return newAggregateBufferFromConfig(conf, mgr, nil)
		})
}

// aggregateBuffer runs the engine between the input and the output. Writes
// fold input into the engine and keep its acknowledgement; reads close the
// windows the watermark has passed and hand their aggregates to the output;
// the output's acknowledgements release the held input acknowledgements.
type aggregateBuffer struct {
	log        *service.Logger
	res        *service.Resources
	folder     *folder
	encoder    *encoder
	clock      func() time.Time
	checkEvery time.Duration
	maxBatch   int
	stateCache string
	stateKey   string
	restored   bool // the saved frontier has been read; only WriteBatch touches it

	retries       *service.MetricCounter
	heldGauge     *service.MetricGauge
	frontierGauge *service.MetricGauge

	// stopSignal receives SIGINT and SIGTERM. The framework stops the
	// input first and only tells the buffer once every held message is
	// acknowledged, which open windows never are; until then the input is
	// silent and the partitions that had not delivered yet never will, so
	// closing windows on the watermark of the others would publish partial
	// values. Once stopping, no window closes.
	stopSignal chan os.Signal
	stopping   bool

	mu           sync.Mutex
	endOfInput   bool
	wake         chan struct{}
	queue        []*outChunk          // aggregates ready for the output, retries first
	flushes      []*flushMark         // flushes not yet fully acknowledged, in order
	flushSeq     int64                // number of the last flush
	delivered    int64                // frontier of the last flush fully acknowledged
	deliveredSeq int64                // number of that flush
	held         heldAcks             // input acknowledgements waiting for delivery
	deadLetters  service.MessageBatch // for the next flush (dead_letter)

	settleMu sync.Mutex // serialises saving the frontier and releasing acks
	saved    int64      // frontier known to be saved (or delivered, without a cache)
}

// flushMark is one Flush of the engine: its number, the frontier it reached
// and how many of its output chunks still await acknowledgement.
type flushMark struct {
	seq      int64
	frontier int64
	pending  int
}

// outChunk is one output batch of a flush.
type outChunk struct {
	flush    *flushMark
	batch    service.MessageBatch
	attempts int
	retryAt  time.Time
}

// heldAck is the acknowledgement of an input batch, released once the
// delivered frontier has reached closeAt (the windows it went into were
// emitted) and flush seq has been delivered (the corrections it caused were
// emitted).
type heldAck struct {
	closeAt int64
	seq     int64
	ack     service.AckFunc
}

// heldAcks is a min-heap by close time.
type heldAcks []heldAck

func (h heldAcks) Len() int           { return len(h) }
func (h heldAcks) Less(i, j int) bool { return h[i].closeAt < h[j].closeAt }
func (h heldAcks) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *heldAcks) Push(x any)        { *h = append(*h, x.(heldAck)) }
func (h *heldAcks) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newAggregateBufferFromConfig(conf *service.ParsedConfig, mgr *service.Resources, clock func() time.Time) (*aggregateBuffer, error) {
	ac, err := parseAggregationConfig(conf, mgr.Logger())
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = time.Now
	}
	engine, err := ac.newEngine(clock)
	if err != nil {
		return nil, err
	}
	b := &aggregateBuffer{
		log:           mgr.Logger(),
		res:           mgr,
		folder:        newFolder(engine, ac, newFoldStats(mgr.Metrics()), newInvalidLog(mgr.Logger())),
		encoder:       newEncoder(ac.output, mgr),
		clock:         clock,
		wake:          make(chan struct{}, 1),
		stopSignal:    make(chan os.Signal, 1),
		delivered:     math.MinInt64,
		saved:         math.MinInt64,
		retries:       mgr.Metrics().NewCounter("monasca_output_retries_total"),
		heldGauge:     mgr.Metrics().NewGauge("monasca_held_input_batches"),
		frontierGauge: mgr.Metrics().NewGauge("monasca_frontier_ms"),
	}
	if b.checkEvery, err = conf.FieldDuration(mabFieldCheckInterval); err != nil {
		return nil, err
	}
	if b.checkEvery <= 0 {
		return nil, fmt.Errorf("%s must be positive", mabFieldCheckInterval)
	}
	if b.maxBatch, err = conf.FieldInt(mabFieldMaxBatchSize); err != nil {
		return nil, err
	}
	if b.maxBatch < 1 {
		return nil, fmt.Errorf("%s must be at least 1", mabFieldMaxBatchSize)
	}
	if b.stateKey, err = conf.FieldString(mabFieldStateKey); err != nil {
		return nil, err
	}
	signal.Notify(b.stopSignal, syscall.SIGINT, syscall.SIGTERM)
	if conf.Contains(mabFieldStateCache) {
		if b.stateCache, err = conf.FieldString(mabFieldStateCache); err != nil {
			return nil, err
		}
	} else {
		b.restored = true
	}
	return b, nil
}

// restore reads the frontier saved by an earlier run before the first input
// is folded, retrying until it succeeds: aggregating without it could emit
// partial values for windows an earlier run already emitted. It runs at the
// first write rather than at construction so that a cache that is slow to
// come up (a Kafka topic being created) delays data, not start-up.
func (b *aggregateBuffer) restore(ctx context.Context) bool {
	for attempt := 1; ; attempt++ {
		err := b.restoreFrontier(ctx)
		if err == nil {
			b.restored = true
			return true
		}
		b.log.Warnf("Reading the saved window frontier failed (attempt %d), input waits: %v", attempt, err)
		t := time.NewTimer(retryBackoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// restoreFrontier reads the frontier saved by an earlier run.
func (b *aggregateBuffer) restoreFrontier(ctx context.Context) error {
	var raw []byte
	var getErr error
	if err := b.res.AccessCache(ctx, b.stateCache, func(c service.Cache) {
		raw, getErr = c.Get(ctx, b.stateKey)
	}); err != nil {
		return fmt.Errorf("%s %q: %w", mabFieldStateCache, b.stateCache, err)
	}
	if errors.Is(getErr, service.ErrKeyNotFound) {
		b.log.Infof("No saved window frontier under %q: starting fresh", b.stateKey)
		return nil
	}
	if getErr != nil {
		return fmt.Errorf("reading the window frontier from %s %q: %w", mabFieldStateCache, b.stateCache, getErr)
	}
	frontier, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return fmt.Errorf("the window frontier saved under %q is not a number: %q", b.stateKey, raw)
	}
	b.settleMu.Lock()
	b.mu.Lock()
	b.folder.engine.Restore(frontier)
	b.delivered, b.saved = frontier, frontier
	b.mu.Unlock()
	b.settleMu.Unlock()
	b.log.Infof("Restored window frontier %s: input for windows closed before it is skipped as already emitted",
		time.UnixMilli(frontier).UTC().Format(time.RFC3339))
	return nil
}

// WriteBatch folds the batch into the engine and keeps its acknowledgement
// until the windows it went into are delivered. It never fails: bad messages
// are counted and skipped, since a nack could commit the batch unprocessed.
func (b *aggregateBuffer) WriteBatch(ctx context.Context, batch service.MessageBatch, ack service.AckFunc) error {
	if !b.restored && !b.restore(ctx) {
		// Stopping before the state could be read: leave the batch
		// unacknowledged so that it is replayed, since a nack could commit it.
		return nil
	}
	b.mu.Lock()
	closeAt, corrected := b.folder.foldBatch(batch)
	dead := len(b.folder.deadLetters) > 0
	if dead {
		b.deadLetters = append(b.deadLetters, b.folder.deadLetters...)
		b.folder.deadLetters = nil
	}
	hold := closeAt != 0 || corrected || dead
	if hold {
		h := heldAck{closeAt: closeAt, ack: ack}
		if closeAt == 0 {
			h.closeAt = math.MinInt64 // waits for no window
		}
		if corrected || dead {
			// The next flush emits the corrections and dead letters.
			h.seq = b.flushSeq + 1
		}
		heap.Push(&b.held, h)
		b.heldGauge.Set(int64(len(b.held)))
	}
	b.mu.Unlock()
	if !hold {
		return ack(ctx, nil)
	}
	return nil
}

// ReadBatch returns the next output batch: a retry whose back-off has passed,
// or aggregates of windows the watermark has closed since the last call.
func (b *aggregateBuffer) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		b.mu.Lock()
		now := b.clock()
		select {
		case <-b.stopSignal:
			b.stopping = true
			b.log.Infof("Stopping: no more windows close; the input of open windows is left unacknowledged and will be replayed")
		default:
		}
		if b.outputIdle() && !b.stopping {
			b.flush(now)
		}
		if c := b.nextReady(now); c != nil {
			b.mu.Unlock()
			return c.batch, b.chunkAck(c), nil
		}
		done := b.endOfInput && len(b.queue) == 0 && len(b.flushes) == 0
		wait := b.checkEvery
		if len(b.queue) > 0 {
			wait = min(wait, b.queue[0].retryAt.Sub(now))
		}
		b.mu.Unlock()
		if done {
			return nil, nil, service.ErrEndOfBuffer
		}
		b.settle(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-b.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// flush closes due windows and queues their aggregates in chunks. An empty
// flush that moved the frontier is recorded too: input held for windows
// that produced no aggregate must be released as well.
func (b *aggregateBuffer) flush(now time.Time) {
	before := b.folder.engine.Frontier()
	aggs, frontier := b.folder.engine.Flush(nil)
	if frontier == before && len(aggs) == 0 && len(b.deadLetters) == 0 {
		return
	}
	b.frontierGauge.Set(frontier)
	b.folder.stats.openSeries.Set(int64(b.folder.engine.OpenSeries()))
	b.flushSeq++
	mark := &flushMark{seq: b.flushSeq, frontier: frontier}
	b.flushes = append(b.flushes, mark)
	out := append(b.encoder.encode(aggs, now), b.deadLetters...)
	b.deadLetters = nil
	for batch := range slices.Chunk(out, b.maxBatch) {
		b.queue = append(b.queue, &outChunk{flush: mark, batch: batch})
		mark.pending++
	}
}

// outputIdle reports whether every flushed aggregate has been delivered.
// Windows are closed only then: during an output outage the input backs up
// and goes quiet, and the idle rule must not mistake that for the end of the
// data and close windows whose input has not been read yet.
func (b *aggregateBuffer) outputIdle() bool {
	if len(b.queue) > 0 {
		return false
	}
	for _, f := range b.flushes {
		if f.pending > 0 {
			return false
		}
	}
	return true
}

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
			b.log.Warnf("Writing %d aggregates failed (attempt %d), retrying: %v", len(c.batch), c.attempts, err)
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

// settle advances the delivered frontier over fully acknowledged flushes,
// saves it when input is waiting on it, and then releases that input.
func (b *aggregateBuffer) settle(ctx context.Context) {
	b.settleMu.Lock()
	defer b.settleMu.Unlock()

	b.mu.Lock()
	for len(b.flushes) > 0 && b.flushes[0].pending == 0 {
		b.delivered, b.deliveredSeq = b.flushes[0].frontier, b.flushes[0].seq
		b.flushes = b.flushes[1:]
	}
	target, deliveredSeq := b.delivered, b.deliveredSeq
	waiting := len(b.held) > 0 && b.held[0].closeAt <= target
	b.mu.Unlock()

	if target > b.saved && waiting {
		if b.stateCache != "" {
			if err := b.saveFrontier(ctx, target); err != nil {
				b.log.Errorf("Saving the window frontier failed, holding input until it succeeds: %v", err)
				return
			}
		}
		b.saved = target
	}

	var release []service.AckFunc
	b.mu.Lock()
	for len(b.held) > 0 && b.held[0].closeAt <= b.saved && b.held[0].seq <= deliveredSeq {
		release = append(release, heap.Pop(&b.held).(heldAck).ack)
	}
	b.heldGauge.Set(int64(len(b.held)))
	b.mu.Unlock()
	for _, ack := range release {
		if err := ack(ctx, nil); err != nil {
			b.log.Debugf("Acknowledging input: %v", err)
		}
	}
}

func (b *aggregateBuffer) saveFrontier(ctx context.Context, frontier int64) error {
	var setErr error
	if err := b.res.AccessCache(ctx, b.stateCache, func(c service.Cache) {
		setErr = c.Set(ctx, b.stateKey, strconv.AppendInt(nil, frontier, 10), nil)
	}); err != nil {
		return err
	}
	return setErr
}

// EndOfInput lets ReadBatch finish once the aggregates already flushed are
// delivered. Open windows are not flushed: their input was not acknowledged
// and will be replayed, so emitting them now would publish partial values.
func (b *aggregateBuffer) EndOfInput() {
	b.mu.Lock()
	b.endOfInput = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Close releases nothing: held input stays unacknowledged on purpose.
func (b *aggregateBuffer) Close(context.Context) error {
	signal.Stop(b.stopSignal)
	return nil
}
