package components

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
	"github.com/monasca-connect/monasca-connect/plugins/checkpoint"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

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

// Values of stage.
const (
	stageSingle   = "single"
	stagePartials = "partials"
	stageMerge    = "merge"
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

Windowed state must outlive the processors, which cannot hold acknowledgements, so the aggregation is a buffer. With
`+"`state_cache`"+`, every `+"`checkpoint_interval`"+` it saves a checkpoint there: the open (and correctable) windows' states, the watermark,
the emitted-window frontier and, per input partition, the offset up to which input is in it. An input batch is acknowledged once a
checkpoint holds it. After a crash the checkpoint is restored and the input replays from its last committed offset, which trails the
checkpoint by at most a commit period or so: replayed input the checkpoint holds is skipped, the rest is folded in, and every window
is emitted complete. A checkpoint is taken only while no output is pending, so a window emitted after it is in it still and may be
emitted again after a crash, with the same value. Without checkpoints (`+"`checkpoint_interval: 0s`"+`, or no cache) the buffer holds the
acknowledgement of every input batch until every window the batch contributed to has been written and acknowledged by the output
and (with a cache) the closed-window frontier saved; after a crash open windows are recomputed from their replayed input, and replayed
input of windows emitted before is recognised from the frontier and skipped. A failed output write is retried with back-off, never
dropped and never turned into an input nack. Messages that are invalid, unmatched or late are acknowledged at once.

Stopping closes no open window. With checkpoints, a last one is saved at once and releases the input; without, the open windows'
input stays unacknowledged and is replayed on the next start, and the framework waits for those acknowledgements until
`+"`shutdown_timeout`"+`.

== Inputs

Acknowledgements are held for up to a checkpoint interval (without checkpoints, a whole window), so the input must allow many
unacknowledged messages per partition, and commit only the acknowledged prefix of each partition. monasca-connect's `+"`kafka`"+` input
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
several specifications take counts once in the totals and once for each of them.

== Status page

The pipeline's HTTP server serves `+"`/status`"+`, a plain HTML page, and the same as JSON at `+"`/status.json`"+`: the specifications with
their open series and counts, every input partition's latest event time, its lag behind the newest and its input offset, the open
windows with the time each closes at, the last checkpoint, and in stage `+"`merge`"+` every stage-one partition's progress.

== Scale-out

One instance reads a consumer group's partitions and aggregates them together. To spread one aggregation over several
instances, run two stages over Kafka, each a consumer group of any number of instances (`+"`pipelines/scale-out/`"+`):

- `+"`stage: partials`"+` aggregates every input partition on its own: its own watermark, state and saved frontier (under
  `+"`<state_key>/<topic>/<partition>`"+`), so a partition can move to another instance and continue there. A closed window becomes
  one message per series holding its mergeable state (count, record count, sum, min, max, first and last samples: never an
  average of averages), written to the partials partition chosen by the series' final group key (the rule, tenant and the
  dimensions the output is grouped by, the rollup's when there is one), with the input partition and offset it reflects. Every
  `+"`progress_interval`"+`, each partials partition also gets, for every input partition, the frontier whose states are delivered.
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
				Description("A `kafka_state_stores` resource in which checkpoints (see `checkpoint_interval`), or only the frontier of emitted windows, are saved before input is acknowledged. On start, and when a partition is assigned, they are read back, and replayed input they hold is skipped instead of being counted twice or emitted as a partial value. The store fences: once a partition's new owner has read its state, a former owner's save fails and that owner drops the partition. Without a store, a restart can re-emit windows with partial values. In the scale-out stages every instance must use the same store topic, since partitions move between them.").
				Optional(),
			service.NewStringField(mabFieldStateCache).
				Description("Instead of `state_store`, a cache resource to save in (values are written in chunks of 512 KiB with a manifest). A cache cannot fence a former owner of a partition, so use it only where one instance runs (tests, a `file` cache on one host).").
				Optional().
				Advanced(),
			service.NewStringField(mabFieldStateKey).
				Description("The key under which the frontier is saved. Instances that consume different inputs need different keys.").
				Default("monasca-aggregate"),
			service.NewStringField(mabFieldStartTime).
				Description("For a cut-over from another aggregator (see docs/migrating.md): RFC 3339 time from which windows are computed when nothing is saved yet. Windows that end at or before it are taken as published by the aggregator replaced, and their metrics are skipped (counted as replayed): the input's `start_time` selects records by the time they were written, so a metric measured just before the cut but written after it would otherwise publish a partial value of the last window before it. Use the window boundary the input's `start_time` names. Empty: off.").
				Default(""),
			service.NewDurationField(mabFieldCheckpoint).
				Description("With a store, how often the whole aggregation state (open windows, watermark, emitted frontier and the input offsets it holds) is saved there. Input is acknowledged once a checkpoint holds it, so a restart replays at most this much input and skips what the checkpoint already holds, instead of replaying every open window's input; held input, and with it memory, stays within this much input. A checkpoint costs about 45 bytes per open series. `0s` saves only the frontier and holds input until its windows are delivered.").
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
			return newAggregateBufferFromConfig(conf, mgr, nil)
		})
}

// aggregateBuffer runs the engine between the input and the output. Writes
// fold input into the engine and keep its acknowledgement; reads close the
// windows the watermark has passed and hand their aggregates to the output;
// the output's acknowledgements release the held input acknowledgements.
//
// In the scale-out stages each input partition has a lane of its own: its
// engine, held acknowledgements and saved frontier, so that a partition can
// move to another instance and continue there from its own saved state.
type aggregateBuffer struct {
	log        *service.Logger
	res        *service.Resources
	config     *aggregationConfig
	folder     *folder
	encoder    *encoder
	clock      func() time.Time
	checkEvery time.Duration
	maxBatch   int
	stateCache string // a cache resource, or
	stateStore string // a kafka_state_stores resource
	stateKey   string
	stage      string
	partitions int // of the partials topic (stage partials); 0: ask the output
	// outPartitions is the partials topic's partition count used by the
	// next flush, under mu.
	outPartitions int

	progressEvery   time.Duration
	nextProgress    time.Time
	checkpointEvery time.Duration // zero: frontier only
	startMs         int64         // windows ending at or before it are not computed; 0: off

	retries       *service.MetricCounter
	saveFailures  *service.MetricCounter // saves of checkpoints or frontiers
	heldGauge     *service.MetricGauge
	frontierGauge *service.MetricGauge
	missingGauge  *service.MetricGauge
	restoreGauge  *service.MetricGauge
	pendingGauge  *service.MetricGauge

	storeOnce sync.Once
	store     stateStore
	storeErr  error

	// hub tells which partitions the input holds. With a publishing input,
	// stage single closes windows only while it holds every partition of
	// its topics, since a value over part of them would be published as
	// if complete; held and topics mirror the hub under mu.
	hub     *assignment.Hub
	ctx     context.Context // of background restores, ended by Close
	cancel  context.CancelFunc
	held    map[windowagg.Source]bool
	topics  map[string]int32
	partial bool // logged: holding part of the partitions

	// Once the input reports that the stream stops, no window closes: the
	// partitions that had not delivered yet never will, so closing windows
	// on the watermark of the others would publish partial values.
	stopping bool

	mu         sync.Mutex
	endOfInput bool
	wake       chan struct{}
	queue      []*outChunk // messages ready for the output, retries first
	lanes      map[windowagg.Source]*lane
	laneOrder  []*lane // lanes in the order they appeared
	specOpen   []int64 // scratch of setSpecGauges
	// nextSpecGauges is when setSpecGauges runs next.
	nextSpecGauges time.Time

	settleMu  sync.Mutex // serialises saving frontiers and releasing acks
	restoreMu sync.Mutex // serialises restores
}

// lane is the aggregation of the whole input (stage single) or of one input
// partition (the scale-out stages).
type lane struct {
	src      windowagg.Source // the input partition; zero in stage single
	stateKey string           // where its frontier is saved
	engine   *windowagg.Engine
	restored atomic.Bool // what an earlier run saved has been read (see restore)
	offset   int64       // the highest input offset folded

	deadLetters  service.MessageBatch // for the next flush (dead_letter)
	flushes      []*flushMark         // flushes not yet fully acknowledged, in order
	flushSeq     int64                // number of the last flush
	delivered    int64                // frontier of the last flush fully acknowledged
	deliveredSeq int64                // number of that flush
	held         heldAcks             // input acknowledgements waiting for delivery
	saved        int64                // frontier known to be saved (or delivered, without a cache); under settleMu

	// With checkpoints: the input offsets in the engine, by partition; the
	// acknowledgements waiting for a checkpoint, in input order; the
	// checkpoint taken and not yet saved, its number, the number of the last
	// saved one and its generation.
	applied        map[windowagg.Source]int64
	waiting        []heldAck
	changed        bool // folded or flushed since the last checkpoint
	nextCheckpoint time.Time
	pending        []byte
	taken          int64
	savedCkpt      int64
	lastSaved      savedCheckpoint // for the status page

	// leaving is set once the lane's partitions are revoked: it folds and
	// closes nothing more while its last state is saved.
	leaving bool
}

// flushMark is one Flush of a lane's engine: its number, the frontier it
// reached and how many of its output chunks still await acknowledgement.
type flushMark struct {
	seq      int64
	frontier int64
	chunks   int // written
	pending  int // not yet acknowledged
}

// outChunk is one output batch of a flush, or progress (flush nil).
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
	closeAt    int64
	seq        int64
	checkpoint int64 // with checkpoints: the checkpoint that holds the input
	ack        service.AckFunc
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
	b := &aggregateBuffer{
		log:           mgr.Logger(),
		res:           mgr,
		config:        ac,
		encoder:       newEncoder(ac.output, mgr),
		clock:         clock,
		wake:          make(chan struct{}, 1),
		lanes:         map[windowagg.Source]*lane{},
		retries:       mgr.Metrics().NewCounter("monasca_output_retries_total"),
		saveFailures:  mgr.Metrics().NewCounter("monasca_checkpoint_failures_total"),
		heldGauge:     mgr.Metrics().NewGauge("monasca_held_input_batches"),
		frontierGauge: mgr.Metrics().NewGauge("monasca_frontier_ms"),
		missingGauge:  mgr.Metrics().NewGauge("monasca_partitions_missing"),
		restoreGauge:  mgr.Metrics().NewGauge("monasca_lanes_restoring"),
		pendingGauge:  mgr.Metrics().NewGauge("monasca_output_pending_batches"),
		hub:           assignment.Of(mgr),
		held:          map[windowagg.Source]bool{},
	}
	exportAtZero(b.retries, b.saveFailures)
	if b.stage, err = conf.FieldString(mabFieldStage); err != nil {
		return nil, err
	}
	switch b.stage {
	case stagePartials:
		// One source per lane: nothing to discover.
		ac.engine.Discovery = 0
		if err := windowagg.CheckRuleNames(ac.rules); err != nil {
			return nil, err
		}
		if b.partitions, err = conf.FieldInt(mabFieldPartialsPartitions); err != nil {
			return nil, err
		}
		if b.partitions < 0 {
			return nil, fmt.Errorf("%s must not be negative", mabFieldPartialsPartitions)
		}
		if b.progressEvery, err = conf.FieldDuration(mabFieldProgressInterval); err != nil {
			return nil, err
		}
		if b.progressEvery <= 0 {
			return nil, fmt.Errorf("%s must be positive", mabFieldProgressInterval)
		}
	case stageMerge:
		ac.engine.Contributions = true
		ac.input, ac.converter = inputStates, nil
	}
	// Fail at start-up, not at the first message, on rules the engine refuses.
	engine, err := ac.newEngine(clock, false)
	if err != nil {
		return nil, err
	}
	b.folder = newFolder(engine, ac, newFoldStats(mgr.Metrics(), ac.rules), newInvalidLog(mgr.Logger()))
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
	if conf.Contains(mabFieldStateCache) {
		if b.stateCache, err = conf.FieldString(mabFieldStateCache); err != nil {
			return nil, err
		}
	}
	if conf.Contains(mabFieldStateStore) {
		if b.stateStore, err = conf.FieldString(mabFieldStateStore); err != nil {
			return nil, err
		}
	}
	if b.startMs, err = startTime(conf); err != nil {
		return nil, err
	}
	if b.stateCache != "" && b.stateStore != "" {
		return nil, fmt.Errorf("set %s or %s, not both", mabFieldStateStore, mabFieldStateCache)
	}
	if b.persistent() {
		if b.checkpointEvery, err = conf.FieldDuration(mabFieldCheckpoint); err != nil {
			return nil, err
		}
		if b.checkpointEvery < 0 {
			return nil, fmt.Errorf("%s must not be negative", mabFieldCheckpoint)
		}
		b.hub.Require(b.storeReady)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.hub.Listen(b.ctx, partitionEvents{b})
	registerStatusPage(mgr, b)
	return b, nil
}

// startAfterCut makes a fresh engine take every window ending at or before
// start_time as published (closing at or before the start plus the lag
// means ending at or before the start), and reports whether it did.
func (b *aggregateBuffer) startAfterCut(e *windowagg.Engine) bool {
	if b.startMs == 0 {
		return false
	}
	e.Restore(b.startMs + b.config.engine.Lag.Milliseconds())
	return true
}

// startTime parses start_time into epoch milliseconds, 0 when empty.
func startTime(conf *service.ParsedConfig) (int64, error) {
	raw, err := conf.FieldString(mabFieldStartTime)
	if err != nil || raw == "" {
		return 0, err
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil || t.UnixMilli() <= 0 {
		return 0, fmt.Errorf("%s: %q is not an RFC 3339 time after 1970 (e.g. 2026-12-06T15:00:00Z)", mabFieldStartTime, raw)
	}
	return t.UnixMilli(), nil
}

// persistent reports whether the buffer saves its state.
func (b *aggregateBuffer) persistent() bool {
	return b.stateCache != "" || b.stateStore != ""
}

// stateStoreOf returns the store lanes save to, resolved at first use:
// resources may be built after the buffer.
func (b *aggregateBuffer) stateStoreOf(ctx context.Context) (stateStore, error) {
	b.storeOnce.Do(func() {
		if b.stateCache != "" {
			b.store = newCacheStore(b.res, b.stateCache, b.clock)
			return
		}
		b.storeErr = b.res.AccessCustomResource(ctx, stateStoreResource, b.stateStore, func(v any) {
			s, ok := v.(stateStore)
			if !ok {
				b.storeErr = fmt.Errorf("%s resource %q is not a state store", stateStoreResource, b.stateStore)
				return
			}
			b.store = s
		})
		if b.storeErr != nil {
			b.storeErr = fmt.Errorf("%s %q: %w", mabFieldStateStore, b.stateStore, b.storeErr)
		}
	})
	return b.store, b.storeErr
}

// storeReady fails while the state store cannot be used, so that the input
// does not consume what could never be acknowledged.
func (b *aggregateBuffer) storeReady(ctx context.Context) error {
	s, err := b.stateStoreOf(ctx)
	if err != nil {
		return err
	}
	if rc, ok := s.(readyChecker); ok {
		return rc.Ready(ctx)
	}
	return nil
}

// laneOf returns the lane of input partition src, creating it. In stage
// single every message goes to one lane.
func (b *aggregateBuffer) laneOf(src windowagg.Source) (*lane, error) {
	if b.stage == stageSingle {
		src = windowagg.Source{}
	}
	if l := b.lanes[src]; l != nil {
		return l, nil
	}
	engine, err := b.config.newEngine(b.clock, b.stage == stageSingle && b.hub.Published())
	if err != nil {
		return nil, err
	}
	l := &lane{
		src: src, stateKey: b.stateKey, engine: engine,
		offset: math.MinInt64, delivered: math.MinInt64, saved: math.MinInt64,
		applied: map[windowagg.Source]int64{},
	}
	l.restored.Store(!b.persistent())
	if !b.persistent() {
		b.startAfterCut(engine)
	}
	if b.stage != stageSingle {
		l.stateKey = fmt.Sprintf("%s/%s/%d", b.stateKey, src.Stream, src.Partition)
	}
	b.lanes[src] = l
	b.laneOrder = append(b.laneOrder, l)
	b.updateGauges()
	return l, nil
}

// restore reads what an earlier run (or a former owner of its partitions)
// saved for lane l before its first input is folded, retrying until it
// succeeds: aggregating without it could count input twice or emit partial
// values. It runs after start-up, so that a store that is slow to come up
// delays data, not start-up: when the input reports partitions, at their
// assignment; otherwise in stage single at the first read (a checkpoint may
// hold open windows whose input is all committed, so no input may ever come
// to trigger it), and in the scale-out stages at a partition's first write.
func (b *aggregateBuffer) restore(ctx context.Context, l *lane) bool {
	b.restoreMu.Lock()
	defer b.restoreMu.Unlock()
	for attempt := 1; !l.restored.Load(); attempt++ {
		err := b.restoreLane(ctx, l)
		if err == nil {
			l.restored.Store(true)
			b.mu.Lock()
			b.updateGauges()
			b.mu.Unlock()
			break
		}
		b.log.Warnf("Reading the saved window state %q failed (attempt %d), input waits: %v", l.stateKey, attempt, err)
		if !sleep(ctx, retryBackoff(attempt)) {
			return false
		}
	}
	return true
}

// restoreLane claims lane l's key in the store and continues from what is
// saved there: a checkpoint, or a frontier.
func (b *aggregateBuffer) restoreLane(ctx context.Context, l *lane) error {
	store, err := b.stateStoreOf(ctx)
	if err != nil {
		return err
	}
	value, found, err := store.Claim(ctx, l.stateKey)
	if err != nil {
		return fmt.Errorf("reading the state saved under %q: %w", l.stateKey, err)
	}
	b.settleMu.Lock()
	defer b.settleMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.expectHeld(l)
	if !found {
		if b.startAfterCut(l.engine) {
			b.log.Infof("No saved window state under %q: starting with the windows after %s", l.stateKey,
				time.UnixMilli(b.startMs).UTC().Format(time.RFC3339))
			return nil
		}
		b.log.Infof("No saved window state under %q: starting fresh", l.stateKey)
		return nil
	}
	if frontier, err := strconv.ParseInt(string(value), 10, 64); err == nil {
		l.engine.Restore(frontier)
		l.delivered, l.saved = frontier, frontier
		b.log.Infof("Restored window frontier %s of %q: input for windows closed before it is skipped as already emitted",
			time.UnixMilli(frontier).UTC().Format(time.RFC3339), l.stateKey)
		return nil
	}
	applied, err := checkpoint.Restore(value, l.engine)
	if err != nil {
		return fmt.Errorf("the checkpoint saved under %q: %w", l.stateKey, err)
	}
	l.applied = applied
	l.delivered, l.saved = l.engine.Frontier(), l.engine.Frontier()
	if o, ok := applied[l.src]; ok && b.stage == stagePartials {
		l.offset = o
	}
	b.log.Infof("Restored the checkpoint of %q (%d bytes, %d open series, %d partitions): input it holds is skipped",
		l.stateKey, len(value), l.engine.OpenSeries(), len(applied))
	return nil
}

// lanePart is the part of an input batch that goes to one lane.
type lanePart struct {
	lane  *lane
	batch service.MessageBatch
}

// split divides batch by lane, keeping the order of each lane's messages.
// Kafka inputs batch per partition, so there is usually one part. Messages
// of partitions the input no longer holds, or whose lane is leaving, are
// left out unacknowledged: their new owner reads them again.
func (b *aggregateBuffer) split(batch service.MessageBatch) ([]lanePart, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stage == stageSingle {
		if !b.holds(messageSource(batch[0])) {
			return nil, nil
		}
		l, err := b.laneOf(windowagg.Source{})
		if err != nil || l.leaving {
			return nil, err
		}
		return []lanePart{{lane: l, batch: batch}}, nil
	}
	var parts []lanePart
	for _, msg := range batch {
		src := messageSource(msg)
		if !b.holds(src) {
			continue
		}
		l, err := b.laneOf(src)
		if err != nil {
			return nil, err
		}
		if l.leaving {
			continue
		}
		if n := len(parts); n > 0 && parts[n-1].lane == l {
			parts[n-1].batch = append(parts[n-1].batch, msg)
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

// WriteBatch folds the batch into the engines of its lanes and keeps its
// acknowledgement until the windows it went into are delivered. It never
// fails on input: bad messages are counted and skipped, since a nack could
// commit the batch unprocessed.
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
		if !p.lane.restored.Load() && !b.restore(ctx, p.lane) {
			// Stopping before the state could be read: leave the batch
			// unacknowledged so that it is replayed, since a nack could
			// commit it.
			return nil
		}
		if b.fold(p.lane, p.batch, acks[i]) {
			continue
		}
		if err := acks[i](ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// fold folds one lane's part of a batch and holds its acknowledgement when
// it must wait for output; it returns whether it did.
func (b *aggregateBuffer) fold(l *lane, batch service.MessageBatch, ack service.AckFunc) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.updateGauges()
	if b.checkpointEvery > 0 {
		batch = b.skipApplied(l, batch)
		if len(batch) == 0 {
			return false
		}
		l.changed = true
	}
	if b.stage == stagePartials {
		for _, msg := range batch {
			l.offset = max(l.offset, messageOffset(msg))
		}
	}
	b.folder.engine = l.engine
	closeAt, corrected := b.folder.foldBatch(batch)
	dead := len(b.folder.deadLetters) > 0
	if dead {
		l.deadLetters = append(l.deadLetters, b.folder.deadLetters...)
		b.folder.deadLetters = nil
	}
	if closeAt == 0 && !corrected && !dead {
		return false
	}
	if b.checkpointEvery > 0 {
		// The next checkpoint holds it; dead letters must be delivered.
		h := heldAck{checkpoint: l.taken + 1, ack: ack}
		if dead {
			h.seq = l.flushSeq + 1
		}
		l.waiting = append(l.waiting, h)
		return true
	}
	h := heldAck{closeAt: closeAt, ack: ack}
	if closeAt == 0 {
		h.closeAt = math.MinInt64 // waits for no window
	}
	if corrected || dead {
		// The next flush emits the corrections and dead letters.
		h.seq = l.flushSeq + 1
	}
	heap.Push(&l.held, h)
	return true
}

// skipApplied drops the messages a restored checkpoint already holds (a
// replay from the committed offset, which trails the checkpoint), counting
// them as replayed, and records the offsets of the others as applied. Each
// partition's messages arrive in offset order.
func (b *aggregateBuffer) skipApplied(l *lane, batch service.MessageBatch) service.MessageBatch {
	kept, skipped := batch[:0:0], 0
	for i, msg := range batch {
		if _, ok := msg.MetaGetMut("kafka_offset"); !ok {
			if skipped > 0 {
				kept = append(kept, msg)
			}
			continue
		}
		src, off := messageSource(msg), messageOffset(msg)
		if applied, ok := l.applied[src]; ok && off <= applied {
			if skipped == 0 {
				kept = append(kept, batch[:i]...)
			}
			skipped++
			continue
		}
		l.applied[src] = off
		if skipped > 0 {
			kept = append(kept, msg)
		}
	}
	if skipped == 0 {
		return batch
	}
	b.folder.stats.replayed.Incr(int64(skipped))
	return kept
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

// updateGauges sets the gauges summed over lanes.
func (b *aggregateBuffer) updateGauges() {
	var held, open, restoring, pending int
	frontier := int64(math.MaxInt64)
	for _, l := range b.laneOrder {
		if !l.restored.Load() {
			restoring++
		}
		for _, f := range l.flushes {
			pending += f.pending
		}
		held += len(l.held) + len(l.waiting)
		open += l.engine.OpenSeries()
		frontier = min(frontier, l.engine.Frontier())
	}
	b.heldGauge.Set(int64(held))
	b.restoreGauge.Set(int64(restoring))
	b.pendingGauge.Set(int64(pending))
	b.folder.stats.openSeries.Set(int64(open))
	if len(b.laneOrder) > 0 && frontier != math.MinInt64 {
		b.frontierGauge.Set(frontier)
	}
}

// ReadBatch returns the next output batch: a retry whose back-off has passed,
// aggregates of windows the watermark has closed since the last call, or
// progress.
func (b *aggregateBuffer) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	if b.stage == stageSingle && !b.hub.Published() {
		b.mu.Lock()
		l, err := b.laneOf(windowagg.Source{})
		b.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		if !l.restored.Load() && !b.restore(ctx, l) {
			return nil, nil, ctx.Err()
		}
	}
	for {
		if err := b.countOutputPartitions(ctx); err != nil {
			b.log.Errorf("Reading the partition count of the partials topic: %v", err)
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
			b.nextSpecGauges = now.Add(b.checkEvery)
		}
		if b.outputIdle() {
			closing := !b.stopping && b.complete()
			for _, l := range b.laneOrder {
				if l.leaving || !l.restored.Load() {
					continue
				}
				// Before the flush: the windows it closes stay in the
				// checkpoint until the next one, which is taken only
				// once they are delivered.
				b.takeCheckpoint(l, now, false)
				if closing {
					b.flush(l, now)
				}
			}
			if !b.stopping {
				b.queueProgress(now)
			}
		}
		if c := b.nextReady(now); c != nil {
			b.mu.Unlock()
			return c.batch, b.chunkAck(c), nil
		}
		done := b.endOfInput && len(b.queue) == 0 && !b.pendingFlushes()
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

// countOutputPartitions sets, in stage partials, the partition count of
// the partials topic for the next flush: the configured one, or the one the
// output reports, which follows the topic's changes. States route by it,
// so states of one series go to one partition as long as it does not
// change.
func (b *aggregateBuffer) countOutputPartitions(ctx context.Context) error {
	if b.stage != stagePartials {
		return nil
	}
	n := b.partitions
	if n == 0 {
		out, ok := assignment.Output(b.res)
		if !ok {
			return fmt.Errorf("%s is 0 but the output does not report partition counts: use the kafka output or set %s", mabFieldPartialsPartitions, mabFieldPartialsPartitions)
		}
		count, err := out.Partitions(ctx)
		if err != nil {
			return err
		}
		n = int(count)
	}
	b.mu.Lock()
	if b.outPartitions != 0 && b.outPartitions != n {
		b.log.Infof("The partials topic has %d partitions now (was %d)", n, b.outPartitions)
	}
	b.outPartitions = n
	b.mu.Unlock()
	return nil
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

// flush closes lane l's due windows and queues their output in chunks. An
// empty flush that moved the frontier is recorded too: input held for
// windows that produced no aggregate must be released as well.
func (b *aggregateBuffer) flush(l *lane, now time.Time) {
	before := l.engine.Frontier()
	var out service.MessageBatch
	var frontier int64
	if b.stage == stagePartials {
		var states []windowagg.SeriesState
		states, frontier = l.engine.FlushStates(nil)
		out = b.encodeStates(l, states)
	} else {
		var aggs []windowagg.Aggregate
		aggs, frontier = l.engine.Flush(nil)
		out = b.encoder.encode(aggs, now)
	}
	if frontier == before && len(out) == 0 && len(l.deadLetters) == 0 {
		return
	}
	l.flushSeq++
	mark := &flushMark{seq: l.flushSeq, frontier: frontier}
	l.flushes = append(l.flushes, mark)
	out = append(out, l.deadLetters...)
	l.deadLetters = nil
	for batch := range slices.Chunk(out, b.maxBatch) {
		b.queue = append(b.queue, &outChunk{flush: mark, batch: batch})
		mark.chunks++
		mark.pending++
	}
	b.updateGauges()
}

// takeCheckpoint snapshots lane l when a checkpoint is due (or forced) and
// the last one is saved: once per interval while input comes in, at once
// after a flush's output is delivered (settleLane), and when the lane's
// partitions leave or the stream stops, so that nothing is left to replay.
// Called with the output idle, so every window the snapshot lacks has been
// delivered. A former owner of a moved partition cannot overwrite the new
// owner's checkpoints: the store fences its saves and the lane is dropped.
func (b *aggregateBuffer) takeCheckpoint(l *lane, now time.Time, force bool) {
	if b.checkpointEvery == 0 || !l.restored.Load() || l.pending != nil || !l.changed ||
		(now.Before(l.nextCheckpoint) && !force) {
		return
	}
	l.pending = checkpoint.Append(nil, l.applied, l.engine)
	l.taken++
	l.changed = false
	l.nextCheckpoint = now.Add(b.checkpointEvery)
}

// encodeStates renders the series states of a stage-one flush.
func (b *aggregateBuffer) encodeStates(l *lane, states []windowagg.SeriesState) service.MessageBatch {
	out := make(service.MessageBatch, 0, len(states))
	for i := range states {
		msg, err := stateMessage(&states[i], l.src, l.offset, b.outPartitions)
		if err != nil {
			// Only a value JSON cannot carry gets here, and the
			// encoding keeps even infinities: this is a bug.
			b.log.Errorf("Encoding the state of rule %q: %v", states[i].Rule, err)
			continue
		}
		out = append(out, msg)
	}
	return out
}

// queueProgress queues, in stage partials, the progress of every lane once
// per progress interval, addressed to every partials partition. It goes out
// only when the output is idle, so it never reports a frontier whose states
// are still on their way, and an outage does not pile it up.
func (b *aggregateBuffer) queueProgress(now time.Time) {
	if b.stage != stagePartials || now.Before(b.nextProgress) || len(b.laneOrder) == 0 {
		return
	}
	b.nextProgress = now.Add(b.progressEvery)
	progress := make([]wireProgress, 0, len(b.laneOrder))
	for _, l := range b.laneOrder {
		if !l.restored.Load() {
			continue
		}
		p := wireProgress{Source: sourceOf(l.src, l.offset), LagMS: b.config.engine.Lag.Milliseconds()}
		if l.delivered != math.MinInt64 {
			through := l.delivered
			p.Through = &through
		}
		// Idle only once everything it closed is delivered.
		p.Idle = len(l.flushes) == 0 && l.engine.Idle()
		progress = append(progress, p)
	}
	if len(progress) == 0 {
		return
	}
	batch, err := progressMessages(progress, b.outPartitions)
	if err != nil {
		b.log.Errorf("Encoding progress: %v", err)
		return
	}
	b.queue = append(b.queue, &outChunk{batch: batch})
}

// outputIdle reports whether every flushed message has been delivered.
// Windows are closed only then: during an output outage the input backs up
// and goes quiet, and the idle rule must not mistake that for the end of the
// data and close windows whose input has not been read yet.
func (b *aggregateBuffer) outputIdle() bool {
	return len(b.queue) == 0 && !b.pendingFlushes()
}

func (b *aggregateBuffer) pendingFlushes() bool {
	return slices.ContainsFunc(b.laneOrder, (*lane).busy)
}

// busy reports whether some output of the lane's flushes awaits
// acknowledgement.
func (l *lane) busy() bool {
	return slices.ContainsFunc(l.flushes, func(f *flushMark) bool { return f.pending > 0 })
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

// settle advances each lane's delivered frontier over its fully
// acknowledged flushes, saves it when input is waiting on it, and then
// releases that input.
func (b *aggregateBuffer) settle(ctx context.Context) {
	b.settleMu.Lock()
	defer b.settleMu.Unlock()
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
	b.mu.Lock()
	for len(l.flushes) > 0 && l.flushes[0].pending == 0 {
		l.delivered, l.deliveredSeq = l.flushes[0].frontier, l.flushes[0].seq
		emitted := l.flushes[0].chunks > 0
		l.flushes = l.flushes[1:]
		if emitted && b.checkpointEvery > 0 {
			// The next checkpoint is due at once: until one holds
			// the delivered windows as closed, a takeover emits
			// them again.
			l.changed, l.nextCheckpoint = true, time.Time{}
		}
	}
	target, deliveredSeq := l.delivered, l.deliveredSeq
	waiting := len(l.held) > 0 && l.held[0].closeAt <= target
	pending, taken := l.pending, l.taken
	b.mu.Unlock()

	if pending != nil {
		if !b.save(ctx, l, pending) {
			return
		}
		b.mu.Lock()
		l.pending, l.savedCkpt = nil, taken
		l.lastSaved = savedCheckpoint{at: b.clock(), bytes: len(pending)}
		b.mu.Unlock()
	}

	if target > l.saved && waiting {
		if b.persistent() && !b.save(ctx, l, strconv.AppendInt(nil, target, 10)) {
			return
		}
		l.saved = target
	}

	var release []service.AckFunc
	b.mu.Lock()
	for len(l.held) > 0 && l.held[0].closeAt <= l.saved && l.held[0].seq <= deliveredSeq {
		release = append(release, heap.Pop(&l.held).(heldAck).ack)
	}
	n := 0
	for n < len(l.waiting) && l.waiting[n].checkpoint <= l.savedCkpt && l.waiting[n].seq <= deliveredSeq {
		release = append(release, l.waiting[n].ack)
		n++
	}
	l.waiting = l.waiting[n:]
	b.mu.Unlock()
	for _, ack := range release {
		if err := ack(ctx, nil); err != nil {
			b.log.Debugf("Acknowledging input: %v", err)
		}
	}
}

// save stores value (a checkpoint or a frontier) under lane l's key and
// reports whether it did. A failure holds the lane's input until a later
// save succeeds. A save fenced by a newer owner of the lane's partitions
// drops the lane unsaved: they were lost, and its input, never committed,
// is the new owner's to read.
func (b *aggregateBuffer) save(ctx context.Context, l *lane, value []byte) bool {
	store, err := b.stateStoreOf(ctx)
	if err == nil {
		err = store.Save(ctx, l.stateKey, value)
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
	b.cancel()
	return nil
}
