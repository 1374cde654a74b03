package components

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// The monasca_aggregate buffer, read top-down: aggregateBufferSpec and
// parseBufferConfig (buffer_config.go) take the configuration; WriteBatch
// splits input by lane (lane.go) and folds it; ReadBatch closes windows
// (stage*.go says what they become) and hands the output on
// (buffer_output.go); settle saves checkpoints and releases the input they
// hold (buffer_state.go); partition events from the input create, restore
// and drop lanes (buffer_partitions.go).

const (
	mabFieldStateCache         = "state_cache"
	mabFieldStateStore         = "state_store"
	mabFieldStateKey           = "state_key"
	mabFieldCheckInterval      = "check_interval"
	mabFieldMaxBatchSize       = "max_batch_size"
	mabFieldStage              = "stage"
	mabFieldPartialsPartitions = "partials_partitions"
	mabFieldProgressInterval   = "progress_interval"
	mabFieldCheckpoint         = "checkpoint_interval"
	mabFieldStartTime          = "start_time"
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
`+"`max_future`"+` ahead of the clock is rejected, so it cannot close windows early, and one more than `+"`max_past`"+` behind it (a clock error) too.

Each closed window is written as one Monasca envelope per series: the name and dimensions of the specification, the window start
(epoch milliseconds) as `+"`timestamp`"+`, `+"`meta`"+` with the tenant and the region of the input, `+"`value_meta`"+` with
`+"`record_count`"+`, `+"`firstrecord_timestamp_string`"+` and `+"`lastrecord_timestamp_string`"+`, and `+"`creation_time`"+` in seconds.
Metadata: `+"`monasca_series_id`"+` (name, sorted dimensions and tenant: use it as the Kafka key), `+"`monasca_window_start`"+`, and
`+"`monasca_origin`"+`. Input carrying this buffer's own `+"`monasca_origin`"+` (write it as a Kafka header) is skipped, so the output
topic may be the input topic.

== Delivery guarantees

Windowed state must outlive the processors, which cannot hold acknowledgements, so the aggregation is a buffer. Every
`+"`checkpoint_interval`"+` it saves a checkpoint in its state store: the open (and correctable) windows' states, the watermark, the
close time through which windows are emitted and, per input partition, the offset up to which input is in it. An input batch is
acknowledged once a checkpoint holds it. After a crash the checkpoint is restored and the input replays from its last committed
offset, which trails the checkpoint by at most a commit period or so: replayed input the checkpoint holds is skipped, the rest is
folded in, and every window is emitted complete. A checkpoint is taken only while no output is pending, so a window emitted after it
is in it still and may be emitted again after a crash, with the same value. A failed output write is retried with back-off, never
dropped and never turned into an input nack. Messages that are invalid, unmatched or late are acknowledged at once; invalid ones
with `+"`dead_letter`"+` once their dead letter is written.

Stopping closes no open window: a last checkpoint is saved at once and releases the input.

== Inputs

Acknowledgements are held for up to a checkpoint interval, so the input must allow many unacknowledged messages per partition, and commit only the acknowledged prefix of each partition. monasca-connect's `+"`kafka`"+` input
does, and keeps no message after handing it on. It also tells this buffer which partitions it holds: a partition's state is restored
when the partition is assigned, saved and dropped before a rebalance moves it, and dropped unsaved when it is lost; when the stream
stops, every lane is saved and its input released for the input's last commit. In stage `+"`single`"+` no window closes while the
instance holds only part of its topics' partitions (`+"`monasca_partitions_missing`"+`): use the input's `+"`balancer: single_owner`"+`,
which gives every partition to one member and keeps the others as standbys. Partitions assigned but not yet delivering hold the
watermark until they deliver or stay quiet for `+"`idle_timeout`"+`.

== Metrics

`+"`monasca_metrics_received_total`"+`, `+"`monasca_metrics_invalid_total{reason}`"+`, `+"`monasca_metrics_aggregated_total`"+`,
`+"`monasca_metrics_unmatched_total`"+`, `+"`monasca_metrics_late_total`"+`, `+"`monasca_metrics_corrected_total`"+`, `+"`monasca_metrics_replayed_total`"+`,
`+"`monasca_metrics_own_output_skipped_total`"+`, `+"`monasca_aggregates_emitted_total`"+`, `+"`monasca_aggregates_invalid_total`"+`, `+"`monasca_output_retries_total`"+`, `+"`monasca_checkpoint_failures_total`"+`,
`+"`monasca_open_series`"+`, `+"`monasca_held_input_batches`"+`, `+"`monasca_output_pending_batches`"+`, `+"`monasca_lanes_restoring`"+`,
`+"`monasca_partitions_missing`"+` (stage single: partitions of the input's topics another member holds) and
`+"`monasca_frontier_ms`"+` (the least advanced input partition's, in the scale-out stages). Per specification, labelled `+"`spec`"+` with its name:
`+"`monasca_spec_matched_total`"+` (metrics folded into its open windows), `+"`monasca_spec_corrected_total`"+`, `+"`monasca_spec_late_total`"+`,
`+"`monasca_spec_series_limit_total`"+` (metrics it rejected for `+"`max_series_per_window`"+`) and `+"`monasca_spec_open_series`"+`. A metric that
several specifications take counts once in the totals and once for each of them. Derived specifications (`+"`inputs`"+` and `+"`formula`"+`)
count the groups and windows they give no value for in `+"`monasca_derived_skipped_total{spec,reason}`"+`, reasons `+"`missing_input`"+`,
`+"`division_by_zero`"+`, `+"`not_a_number`"+` and `+"`formula_error`"+`.

== Status page

The pipeline's HTTP server serves `+"`/status`"+`, a plain HTML page, and the same as JSON at `+"`/status.json`"+`: the specifications with
their open series and counts, every input partition's latest event time, its lag behind the newest and its input offset, the open
windows with the time each closes at, the last checkpoint, and in stage `+"`merge`"+` every stage-one partition's progress.

== Scale-out

One instance reads a consumer group's partitions and aggregates them together. To spread one aggregation over several
instances, run two stages over Kafka, each a consumer group of any number of instances (`+"`pipelines/scale-out/`"+`):

- `+"`stage: partials`"+` aggregates every input partition on its own: its own watermark, state and checkpoints (under
  `+"`<state_key>/<topic>/<partition>`"+`), so a partition can move to another instance and continue there. A closed window becomes
  one message per series holding its mergeable state (count, record count, sum, min, max, first and last samples: never an
  average of averages), written to the partials partition chosen by the series' final group key (the rule, tenant and the
  dimensions the output is grouped by, the rollup's when there is one), with the input partition and offset it reflects. Every
  `+"`progress_interval`"+`, each partials partition also gets, for every input partition, the close time through which its states are delivered.
- `+"`stage: merge`"+` keeps, per partials partition, one contribution per input partition for each series and window. A
  contribution replaces that partition's earlier one unless it reflects an earlier input offset, so a replay (a crash, or a
  partition moving between instances) never counts anything twice. A window closes when every input partition's progress has
  passed it; partitions reported idle are not waited for, nor, once the others move on, any that has reported nothing for
  `+"`idle_timeout`"+` (silence alone closes nothing: stage one may be down). Its contributions are merged and the final metrics
  written, with the values a single instance computes. A contribution for a closed window is late and
  follows `+"`late_policy`"+`.

Both stages must use the same specifications, `+"`window_size`"+` and `+"`window_lag`"+`; states and progress that do not fit are
counted as invalid (`+"`state_mismatch`"+`). Both hold input acknowledgements like a single instance, so either stage's instances can
be killed at any moment.
`).
		Fields(aggregationFields()...).
		LintRule(aggregationLintRule).
		Fields(
			service.NewStringField(mabFieldStateStore).
				Description("A `kafka_state_stores` resource in which checkpoints (see `checkpoint_interval`) are saved before input is acknowledged. On start, and when a partition is assigned, they are read back, and replayed input they hold is skipped instead of being counted twice or emitted as a partial value. The store fences: once a partition's new owner has read its state, a former owner's save fails and that owner drops the partition. In the scale-out stages every instance must use the same store topic, since partitions move between them. Set this or `state_cache`.").
				Optional(),
			service.NewStringField(mabFieldStateCache).
				Description("Instead of `state_store`, a cache resource to save in (values are written in chunks of 512 KiB with a manifest). A cache cannot fence a former owner of a partition, so use it only where one instance runs: a `file` cache on one host, or a `memory` cache for demos and tests, which loses the open windows on a restart.").
				Optional().
				Advanced(),
			service.NewStringField(mabFieldStateKey).
				Description("The key under which checkpoints are saved (in the scale-out stages, followed by `/<topic>/<partition>`). Instances that consume different inputs need different keys.").
				Default("monasca-aggregate"),
			service.NewStringField(mabFieldStartTime).
				Description("For a cut-over from another aggregator (see docs/migrating.md): RFC 3339 time from which windows are computed when nothing is saved yet. Windows that end at or before it are taken as published by the aggregator replaced, and their metrics are skipped (counted as replayed): the input's `start_time` selects records by the time they were written, so a metric measured just before the cut but written after it would otherwise publish a partial value of the last window before it. Use the window boundary the input's `start_time` names. Empty: off.").
				Default(""),
			service.NewDurationField(mabFieldCheckpoint).
				Description("How often the whole aggregation state (open windows, watermark, the close time through which windows are emitted and the input offsets it holds) is saved in the store. Input is acknowledged once a checkpoint holds it, so a restart replays at most this much input and skips what the checkpoint already holds; held input, and with it memory, stays within this much input. A checkpoint costs about 45 bytes per open series.").
				Default("5s"),
			service.NewDurationField(mabFieldCheckInterval).
				Description("How often the watermark is checked for windows to close.").
				Default("100ms").
				Advanced(),
			service.NewIntField(mabFieldMaxBatchSize).
				Description("The largest number of aggregates written as one output batch.").
				Default(1024).
				Advanced(),
			service.NewStringAnnotatedEnumField(mabFieldStage, map[string]string{
				stageSingle:   "One instance aggregates the whole input and writes Monasca metrics.",
				stagePartials: "Stage one of a scale-out: each input partition is aggregated on its own, and closed windows are written as mergeable series states, with progress, to the partials topic (see Scale-out). Write them with a `manual` partitioner on `${! @monasca_partition }`.",
				stageMerge:    "Stage two of a scale-out: reads the partials topic, merges the states of every input partition per series and window, and writes Monasca metrics.",
			}).
				Description("The part this buffer plays.").
				Default(stageSingle),
			service.NewIntField(mabFieldPartialsPartitions).
				Description("With `stage: partials`, the number of partitions of the partials topic: states are spread over them by their final group key, and progress goes to each. `0` asks the `kafka` output for the topic's partition count as the brokers report it, and follows changes.").
				Default(0),
			service.NewDurationField(mabFieldProgressInterval).
				Description("With `stage: partials`, how often the progress of each input partition is written to every partials partition.").
				Default("1s").
				Advanced(),
		).
		Example("Drop-in for monasca-aggregator", "Reads metrics from Kafka, aggregates them in 10 second windows and writes the aggregates back to the same topic.", `
input:
  kafka:
    seed_brokers: [ localhost:9092 ]
    topics: [ metrics ]
    consumer_group: monasca-aggregation
    instance_id: aggregation-0
    balancer: single_owner
buffer:
  monasca_aggregate:
    aggregation_specs: /etc/monasca/aggregation-specifications.yaml
    window_size: 10s
    window_lag: 2s
    state_store: window_state
    state_key: monasca-aggregation
output:
  kafka:
    seed_brokers: [ localhost:9092 ]
    topic: metrics
    key: ${! @monasca_series_id }
    metadata:
      include_prefixes: [ monasca_origin ]
kafka_state_stores:
  - label: window_state
    seed_brokers: [ localhost:9092 ]
    topic: monasca-aggregation-window-state
`)
}

func init() {
	service.MustRegisterBatchBuffer("monasca_aggregate", aggregateBufferSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchBuffer, error) {
			c, err := parseBufferConfig(conf, mgr.Logger())
			if err != nil {
				return nil, err
			}
			return newAggregateBuffer(c, mgr, time.Now)
		})
}

// aggregateBuffer runs the engine between the input and the output. Writes
// fold input into the engines of its lanes and hold its acknowledgement
// until a checkpoint holds it; reads close the windows the watermark has
// passed and hand their output to the output.
type aggregateBuffer struct {
	log     *service.Logger
	res     *service.Resources
	config  *bufferConfig
	stage   stage
	folder  *folder
	derived *derivedStats
	encoder *encoder
	clock   func() time.Time
	store   lazyStore

	retries       *service.MetricCounter
	saveFailures  *service.MetricCounter
	heldGauge     *service.MetricGauge
	frontierGauge *service.MetricGauge
	missingGauge  *service.MetricGauge
	restoreGauge  *service.MetricGauge
	pendingGauge  *service.MetricGauge

	// hub tells which partitions the input holds; holding mirrors it under
	// mu.
	hub     *assignment.Hub
	ctx     context.Context // of background restores, ended by Close
	cancel  context.CancelFunc
	holding holding

	mu sync.Mutex
	// stopping: the input reported that the stream stops. No window
	// closes then: partitions that had not delivered yet never will, so
	// closing windows on the watermark of the others would publish
	// partial values.
	stopping   bool
	endOfInput bool
	wake       chan struct{}
	queue      []*outChunk // output ready to be read, retries first
	lanes      map[windowagg.Source]*lane
	laneOrder  []*lane // in the order they appeared
	specOpen   []int64 // scratch of setSpecGauges
	// nextSpecGauges is when setSpecGauges runs next.
	nextSpecGauges time.Time
}

// newAggregateBuffer builds the buffer of configuration c on the resources
// of mgr, reading time from clock.
func newAggregateBuffer(c *bufferConfig, mgr *service.Resources, clock func() time.Time) (*aggregateBuffer, error) {
	m := mgr.Metrics()
	b := &aggregateBuffer{
		log:           mgr.Logger(),
		res:           mgr,
		config:        c,
		stage:         c.stage,
		encoder:       newEncoder(c.aggregation.output, mgr),
		derived:       newDerivedStats(m, mgr.Logger(), c.aggregation.rules),
		clock:         clock,
		store:         lazyStore{res: mgr, store: c.stateStore, cache: c.stateCache, clock: clock},
		wake:          make(chan struct{}, 1),
		lanes:         map[windowagg.Source]*lane{},
		retries:       m.NewCounter("monasca_output_retries_total"),
		saveFailures:  m.NewCounter("monasca_checkpoint_failures_total"),
		heldGauge:     m.NewGauge("monasca_held_input_batches"),
		frontierGauge: m.NewGauge("monasca_frontier_ms"),
		missingGauge:  m.NewGauge("monasca_partitions_missing"),
		restoreGauge:  m.NewGauge("monasca_lanes_restoring"),
		pendingGauge:  m.NewGauge("monasca_output_pending_batches"),
		hub:           assignment.Of(mgr),
		holding:       holding{held: map[windowagg.Source]bool{}},
	}
	exportAtZero(b.retries, b.saveFailures)
	// Fail at start-up, not at the first message, on rules the engine refuses.
	engine, err := b.stage.newEngine(clock, false)
	if err != nil {
		return nil, err
	}
	b.folder = newFolder(engine, c.aggregation, newFoldStats(m, c.aggregation.rules), newInvalidLog(mgr.Logger()))
	b.hub.Require(b.store.ready)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.hub.Listen(b.ctx, partitionEvents{b})
	registerStatusPage(mgr, b)
	return b, nil
}

// laneOf returns the lane of source src (see stage.laneSource), creating
// it. Called with mu held.
func (b *aggregateBuffer) laneOf(src windowagg.Source) (*lane, error) {
	if l := b.lanes[src]; l != nil {
		return l, nil
	}
	engine, err := b.stage.newEngine(b.clock, b.hub.Published())
	if err != nil {
		return nil, err
	}
	key := b.config.stateKey
	if src != (windowagg.Source{}) {
		key = fmt.Sprintf("%s/%s/%d", key, src.Stream, src.Partition)
	}
	l := newLane(src, key, engine, b.config.checkpointEvery)
	b.lanes[src] = l
	b.laneOrder = append(b.laneOrder, l)
	b.updateGauges()
	return l, nil
}

// lanePart is the part of an input batch that goes to one lane.
type lanePart struct {
	lane  *lane
	batch service.MessageBatch
}

// split divides batch by lane, keeping the order of each lane's messages.
// Kafka inputs batch per partition, so there is usually one part, the
// batch itself. Messages of partitions the input no longer holds, or whose
// lane is leaving, are left out unacknowledged: their new owner reads them
// again.
func (b *aggregateBuffer) split(batch service.MessageBatch) ([]lanePart, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := laneRouter{b: b}
	first, err := r.route(batch[0])
	if err != nil {
		return nil, err
	}
	one := first != nil
	for _, msg := range batch[1:] {
		if !one {
			break
		}
		l, err := r.route(msg)
		if err != nil {
			return nil, err
		}
		one = l == first
	}
	if one {
		return []lanePart{{lane: first, batch: batch}}, nil
	}
	var parts []lanePart
	for _, msg := range batch {
		l, err := r.route(msg)
		if err != nil {
			return nil, err
		}
		if l == nil {
			continue
		}
		if i := slices.IndexFunc(parts, func(p lanePart) bool { return p.lane == l }); i >= 0 {
			parts[i].batch = append(parts[i].batch, msg)
			continue
		}
		parts = append(parts, lanePart{lane: l, batch: service.MessageBatch{msg}})
	}
	return parts, nil
}

// laneRouter finds the lanes of a batch's messages, looking up a partition
// once per run of its messages. Used with the buffer's mu held.
type laneRouter struct {
	b    *aggregateBuffer
	src  windowagg.Source
	lane *lane // of src; nil: left out
	used bool
}

// route returns the lane of msg, nil when msg is left out.
func (r *laneRouter) route(msg *service.Message) (*lane, error) {
	src := messageSource(msg)
	if r.used && src == r.src {
		return r.lane, nil
	}
	r.src, r.lane, r.used = src, nil, true
	if !r.b.holding.holds(r.b.hub, src) {
		return nil, nil
	}
	l, err := r.b.laneOf(r.b.stage.laneSource(src))
	if err != nil || l.leaving {
		return nil, err
	}
	r.lane = l
	return l, nil
}

// WriteBatch folds the batch into the engines of its lanes and holds its
// acknowledgement until a checkpoint holds it. It never fails on input:
// bad messages are counted and skipped, since a nack could commit the
// batch unprocessed.
func (b *aggregateBuffer) WriteBatch(ctx context.Context, batch service.MessageBatch, ack service.AckFunc) error {
	if len(batch) == 0 {
		return ack(ctx, nil)
	}
	parts, err := b.split(batch)
	if err != nil || len(parts) == 0 {
		return err
	}
	acks := splitAck(ack, len(parts))
	for i, p := range parts {
		if !b.restore(ctx, p.lane) {
			// Stopping before the state could be read: leave the batch
			// unacknowledged so that it is replayed, since a nack could
			// commit it.
			return nil
		}
		b.mu.Lock()
		held := p.lane.fold(b.folder, p.batch, acks[i])
		b.updateGauges()
		b.mu.Unlock()
		if held {
			continue
		}
		if err := acks[i](ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// splitAck returns n acknowledgements that acknowledge the batch once all
// of them have been called. This buffer never nacks.
func splitAck(ack service.AckFunc, n int) []service.AckFunc {
	if n == 1 {
		return []service.AckFunc{ack}
	}
	var remaining atomic.Int32
	remaining.Store(int32(n))
	part := func(ctx context.Context, err error) error {
		if remaining.Add(-1) == 0 {
			return ack(ctx, nil)
		}
		return nil
	}
	acks := make([]service.AckFunc, n)
	for i := range acks {
		acks[i] = part
	}
	return acks
}

// ReadBatch returns the next output batch: a retry whose back-off has
// passed, output of windows the watermark has closed since the last call,
// or the stage's other output.
func (b *aggregateBuffer) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		if err := b.stage.prepare(ctx, b); err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			b.log.Errorf("Preparing to close windows: %v", err)
			if !sleep(ctx, time.Second) {
				return nil, nil, ctx.Err()
			}
			continue
		}
		b.mu.Lock()
		now := b.clock()
		if !now.Before(b.nextSpecGauges) {
			// They walk every window: not on every pass of a flush's chunks.
			b.setSpecGauges()
			b.nextSpecGauges = now.Add(b.config.checkEvery)
		}
		if b.outputIdle() {
			b.closeWindows(now)
		}
		if c := b.nextReady(now); c != nil {
			b.mu.Unlock()
			return c.batch, b.chunkAck(c), nil
		}
		done := b.endOfInput && b.outputIdle()
		wait := b.config.checkEvery
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

// closeWindows takes the checkpoints that are due and, unless the stream
// stops or the stage may not close windows now, closes the windows the
// watermark has passed and queues their output. Called with the output
// idle and mu held.
func (b *aggregateBuffer) closeWindows(now time.Time) {
	closing := !b.stopping && b.stage.mayClose(b)
	for _, l := range b.laneOrder {
		if l.leaving || !l.restored.Load() {
			continue
		}
		// Before the flush: the windows it closes stay in the checkpoint
		// until the next one, which is taken only once they are
		// delivered.
		l.takeCheckpoint(now, false)
		if closing {
			b.flush(l, now)
		}
	}
	if !b.stopping {
		if out := b.stage.extraOutput(b, now); len(out) > 0 {
			b.queue = append(b.queue, &outChunk{batch: out})
		}
	}
}

// flush closes lane l's due windows and queues their output in chunks. An
// empty flush that moved the close time is recorded too: its delivery
// makes the next checkpoint due. Called with mu held.
func (b *aggregateBuffer) flush(l *lane, now time.Time) {
	before := l.engine.Frontier()
	out, through := b.stage.flush(b, l, now)
	b.derived.record()
	if through == before && len(out) == 0 && len(l.deadLetters) == 0 {
		return
	}
	mark := l.flushes.add(through)
	out = append(out, l.deadLetters...)
	l.deadLetters = nil
	for batch := range slices.Chunk(out, b.config.maxBatch) {
		b.queue = append(b.queue, &outChunk{flush: mark, batch: batch})
		mark.chunks++
		mark.pending++
	}
	b.updateGauges()
}

// outputIdle reports whether every queued output has been delivered.
// Windows are closed only then: during an output outage the input backs up
// and goes quiet, and the idle rule must not mistake that for the end of
// the data and close windows whose input has not been read yet.
func (b *aggregateBuffer) outputIdle() bool {
	return len(b.queue) == 0 && !slices.ContainsFunc(b.laneOrder, func(l *lane) bool { return l.flushes.busy() })
}

// updateGauges sets the gauges summed over lanes. Called with mu held.
func (b *aggregateBuffer) updateGauges() {
	var held, open, restoring, pending int
	through := int64(math.MaxInt64)
	for _, l := range b.laneOrder {
		if !l.restored.Load() {
			restoring++
		}
		pending += l.flushes.pending()
		held += l.acks.len()
		open += l.engine.OpenSeries()
		through = min(through, l.engine.Frontier())
	}
	b.heldGauge.Set(int64(held))
	b.restoreGauge.Set(int64(restoring))
	b.pendingGauge.Set(int64(pending))
	b.folder.stats.openSeries.Set(int64(open))
	if len(b.laneOrder) > 0 && through != math.MinInt64 {
		b.frontierGauge.Set(through)
	}
}

// EndOfInput lets ReadBatch finish once the output already queued is
// delivered. Open windows are not closed: their input is replayed, or held
// by a checkpoint, so emitting them now would publish partial values.
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
	b.cancel()
	return nil
}
