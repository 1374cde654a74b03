package kafka

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/plugins/assignment"
)

// Fields of the kafka input. Names and meanings are those of Connect's
// redpanda and kafka_franz inputs where they agree.
const (
	inFieldTopics                 = "topics"
	inFieldConsumerGroup          = "consumer_group"
	inFieldInstanceID             = "instance_id"
	inFieldStartOffset            = "start_offset"
	inFieldStartTime              = "start_time"
	inFieldFetchMaxBytes          = "fetch_max_bytes"
	inFieldFetchMinBytes          = "fetch_min_bytes"
	inFieldFetchMaxPartitionBytes = "fetch_max_partition_bytes"
	inFieldFetchMaxWait           = "fetch_max_wait"
	inFieldSessionTimeout         = "session_timeout"
	inFieldRebalanceTimeout       = "rebalance_timeout"
	inFieldHeartbeatInterval      = "heartbeat_interval"
	inFieldCommitPeriod           = "commit_period"
	inFieldBatchSize              = "batch_size"
	inFieldCheckpointLimit        = "checkpoint_limit"
	inFieldBalancer               = "balancer"
)

// Values of start_offset and balancer.
const (
	startEarliest = "earliest"
	startLatest   = "latest"

	balancerCooperativeSticky = "cooperative_sticky"
	balancerSingleOwner       = "single_owner"
)

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Reads records from Kafka topics as a consumer group, one partition per batch, and commits each partition's acknowledged prefix.").
		Description(`
Delivery is at least once. Each batch holds records of one partition in offset order. The input commits, per partition, the offset after the longest run of acknowledged batches from the last commit on (the acknowledged prefix): every `+"`commit_period`"+`, when partitions are revoked and when the input closes. A batch acknowledged after one that is not waits for it, so a restart or a new owner reads again from the oldest unacknowledged batch, and may deliver later, already acknowledged batches twice. A partition without a committed offset starts at `+"`start_time`"+` when it is set, else at `+"`start_offset`"+`; a partition with one resumes from it, whatever these say.

The input keeps no record after it hands a batch on: it keeps only the batch's offsets until the batch is acknowledged. A component that holds acknowledgements for a long time (a windowing buffer) therefore costs the input memory per batch, not per record. `+"`checkpoint_limit`"+` bounds the work in flight per partition: when that many records are handed on from the oldest unacknowledged one on, fetching of the partition pauses until acknowledgements bring it below the limit.

A batch that is rejected (nacked) is not acknowledged: it is read again from Kafka and delivered again, after any batches handed on since. Nothing else is kept for this.

When partitions are revoked in a rebalance, the input stops handing them on and drops what it fetched of them, tells the stream's components (a buffer that listens saves and acknowledges its state of them), commits their acknowledged prefix, and only then lets the rebalance go on. Acknowledgements that arrive later for a partition the member no longer holds are ignored, as are any for partitions lost without a rebalance (the session expired), which are never committed.

With `+"`instance_id`"+` set the member is static: a restart within `+"`session_timeout`"+` gets its partitions back at once, without a rebalance, while a dynamic member's restart makes the group rebalance when it leaves and again when it joins. Give each instance a stable, unique ID, such as its StatefulSet pod name; a static member that stops is evicted only after `+"`session_timeout`"+`.

== Metadata

Each message has:

- `+"`kafka_topic`"+` (string)
- `+"`kafka_partition`"+` (int32)
- `+"`kafka_offset`"+` (int64)
- `+"`kafka_key`"+` (string, only when the record has a key)
- `+"`kafka_timestamp_ms`"+` (int64, the record's timestamp in milliseconds since the epoch)
- every record header, under its name, as a string

== Metrics

- `+"`kafka_consumer_lag`"+` (gauge; labels `+"`topic`, `partition`"+`): records in the partition after the last one fetched, from each fetch.
- `+"`kafka_partitions_held`"+` (gauge): partitions the member holds.`).
		Fields(connectionFields()...).
		Fields(
			service.NewStringListField(inFieldTopics).
				Description("Topics to consume. An entry may hold several, separated by commas.").
				Example([]string{"metrics"}).
				Example([]string{"metrics,events"}),
			service.NewStringField(inFieldConsumerGroup).
				Description("The consumer group whose members share the topics' partitions and whose committed offsets the input resumes from."),
			service.NewStringField(inFieldInstanceID).
				Description("A static member ID (KIP-345), unique in the group and stable across restarts, such as a StatefulSet pod name. Empty: a dynamic member, which leaves the group when it closes.").
				Default(""),
			service.NewStringAnnotatedEnumField(inFieldStartOffset, map[string]string{
				startEarliest: "The oldest record the partition still has.",
				startLatest:   "The next record produced after the group starts.",
			}).
				Description("Where a partition without a committed offset starts, unless `start_time` is set, and where one whose committed offset is no longer in the log resumes.").
				Default(startEarliest),
			service.NewStringField(inFieldStartTime).
				Description("An RFC 3339 time: a partition without a committed offset starts at its first record whose Kafka timestamp is at or after it, or at its end when it has none (Kafka's offset lookup by time), instead of at `start_offset`. A partition with a committed offset resumes from the commit and ignores it, so it matters only to a new consumer group, such as one taking over from another consumer at a known time. Empty: off.").
				Example("2026-12-06T15:00:00Z").
				Default(""),
			service.NewStringAnnotatedEnumField(inFieldBalancer, map[string]string{
				balancerCooperativeSticky: "Spreads the partitions over the members, moving as few as possible when members come or go; a rebalance revokes only partitions that move.",
				balancerSingleOwner:       "Gives every partition to one member; the others are hot standbys, and one of them takes everything over when the owner leaves the group. A standby that joins moves nothing. Use it for an aggregation that must see all partitions of its topics in one instance.",
			}).
				Description("How the group shares partitions among its members. Every member of a group must use the same.").
				Default(balancerCooperativeSticky),
			service.NewIntField(inFieldBatchSize).
				Description("The most records in a batch. A batch holds records of one partition only.").
				Default(1024),
			service.NewIntField(inFieldCheckpointLimit).
				Description("The most records per partition handed on from the oldest unacknowledged one on (acknowledged or not). At the limit, fetching of the partition pauses until acknowledgements bring it below. The input keeps no record after handing it on, so this bounds the work in flight and what a restart reads again, not memory.").
				Default(1_000_000),
			service.NewDurationField(inFieldCommitPeriod).
				Description("How often the acknowledged prefix of each partition is committed.").
				Default("1s").
				Advanced(),
			service.NewStringField(inFieldFetchMaxBytes).
				Description("The most bytes a fetch from one broker returns, as `50MiB` or `1MB`.").
				Default("50MiB").
				Advanced(),
			service.NewStringField(inFieldFetchMinBytes).
				Description("The least bytes a broker waits for (up to `fetch_max_wait`) before it answers a fetch.").
				Default("1B").
				Advanced(),
			service.NewStringField(inFieldFetchMaxPartitionBytes).
				Description("The most bytes a fetch returns of one partition.").
				Default("1MiB").
				Advanced(),
			service.NewDurationField(inFieldFetchMaxWait).
				Description("The longest a broker waits for `fetch_min_bytes` before it answers a fetch. Long waits delay the last, partial fetch of a burst.").
				Default("100ms").
				Advanced(),
			service.NewDurationField(inFieldSessionTimeout).
				Description("How long the group waits for a member's heartbeat before it evicts the member and moves its partitions.").
				Default("10s").
				Advanced(),
			service.NewDurationField(inFieldRebalanceTimeout).
				Description("How long a rebalance waits for members to rejoin. A member must save and commit revoked partitions within it.").
				Default("10s").
				Advanced(),
			service.NewDurationField(inFieldHeartbeatInterval).
				Description("How often the member sends heartbeats; well below `session_timeout`.").
				Default("1s").
				Advanced(),
		).
		Example("Monasca metrics", "Consumes the metrics topic as a static member of a group.", `
input:
  kafka:
    seed_brokers: [ "kafka:9092" ]
    topics: [ metrics ]
    consumer_group: monasca-aggregation
    instance_id: "${HOSTNAME}"
`)
}

func init() {
	service.MustRegisterBatchInput("kafka", inputSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
		return newInput(conf, mgr)
	})
}

// input is the kafka batch input. See inputSpec for what it does; the
// group's callbacks, the poll and commit loops are in input_group.go.
type input struct {
	opts             []kgo.Opt // connection options, for re-reading nacked batches too
	groupOpts        []kgo.Opt
	topics           []string
	batchSize        int
	checkpointLimit  int
	commitPeriod     time.Duration
	rebalanceTimeout time.Duration

	log  *service.Logger
	hub  *assignment.Hub
	lag  *service.MetricGauge
	held *service.MetricGauge

	mu       sync.Mutex
	cl       *kgo.Client
	closed   bool
	parts    map[assignment.Partition]*inputPartition
	ready    []*inputPartition // partitions with records to hand on, in turn
	replays  []nackedBatch     // nacked batches to deliver again
	stopOnce sync.Once

	// readable wakes ReadBatch, drained the poll loop; both hold at most
	// one signal and the waiter checks the state itself.
	readable chan struct{}
	drained  chan struct{}

	// commitMu orders commits: a commit computed before a revocation
	// must not land after the revocation's commit.
	commitMu  sync.Mutex
	stopLoops context.CancelFunc
	loops     sync.WaitGroup
}

// nackedBatch is a nacked batch waiting to be delivered again.
type nackedBatch struct {
	p           *inputPartition
	seq         uint64
	first, last int64
}

func newInput(conf *service.ParsedConfig, mgr *service.Resources) (*input, error) {
	opts, err := clientOptions(conf)
	if err != nil {
		return nil, err
	}
	in := &input{
		opts:     opts,
		log:      mgr.Logger(),
		hub:      assignment.Of(mgr),
		lag:      mgr.Metrics().NewGauge("kafka_consumer_lag", "topic", "partition"),
		held:     mgr.Metrics().NewGauge("kafka_partitions_held"),
		parts:    map[assignment.Partition]*inputPartition{},
		readable: make(chan struct{}, 1),
		drained:  make(chan struct{}, 1),
	}
	if in.topics, err = inputTopics(conf); err != nil {
		return nil, err
	}
	group, err := conf.FieldString(inFieldConsumerGroup)
	if err != nil {
		return nil, err
	}
	if group == "" {
		return nil, fmt.Errorf("%s: must not be empty", inFieldConsumerGroup)
	}
	if in.batchSize, err = positiveInt(conf, inFieldBatchSize); err != nil {
		return nil, err
	}
	if in.checkpointLimit, err = positiveInt(conf, inFieldCheckpointLimit); err != nil {
		return nil, err
	}
	if in.commitPeriod, err = positiveDuration(conf, inFieldCommitPeriod); err != nil {
		return nil, err
	}
	if in.rebalanceTimeout, err = positiveDuration(conf, inFieldRebalanceTimeout); err != nil {
		return nil, err
	}
	sessionTimeout, err := positiveDuration(conf, inFieldSessionTimeout)
	if err != nil {
		return nil, err
	}
	heartbeat, err := positiveDuration(conf, inFieldHeartbeatInterval)
	if err != nil {
		return nil, err
	}
	if heartbeat >= sessionTimeout {
		return nil, fmt.Errorf("%s (%v) must be shorter than %s (%v)", inFieldHeartbeatInterval, heartbeat, inFieldSessionTimeout, sessionTimeout)
	}
	maxWait, err := positiveDuration(conf, inFieldFetchMaxWait)
	if err != nil {
		return nil, err
	}
	var fetchBytes [3]int32
	for i, f := range []string{inFieldFetchMaxBytes, inFieldFetchMinBytes, inFieldFetchMaxPartitionBytes} {
		if fetchBytes[i], err = byteSize(conf, f); err != nil {
			return nil, err
		}
	}
	// Enum values are checked by lint only; a config parsed without lint
	// reaches here unchecked.
	var start kgo.Offset
	switch s, err := conf.FieldString(inFieldStartOffset); {
	case err != nil:
		return nil, err
	case s == startEarliest:
		start = kgo.NewOffset().AtStart()
	case s == startLatest:
		start = kgo.NewOffset().AtEnd()
	default:
		return nil, fmt.Errorf("%s: %q is neither %s nor %s", inFieldStartOffset, s, startEarliest, startLatest)
	}
	// start_time moves only where a partition without a commit starts: a
	// committed offset that is no longer in the log still resets to
	// start_offset.
	first := start
	switch s, err := conf.FieldString(inFieldStartTime); {
	case err != nil:
		return nil, err
	case s != "":
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-12-06T15:00:00Z: %w", inFieldStartTime, s, err)
		}
		// Negative milliseconds are the special offsets of the
		// protocol's lookup (-1 the end, -2 the start).
		if t.UnixMilli() < 0 {
			return nil, fmt.Errorf("%s: %s is before 1970, where Kafka timestamps begin", inFieldStartTime, s)
		}
		first = kgo.NewOffset().AfterMilli(t.UnixMilli())
	}
	var balancer kgo.GroupBalancer
	switch b, err := conf.FieldString(inFieldBalancer); {
	case err != nil:
		return nil, err
	case b == balancerCooperativeSticky:
		balancer = kgo.CooperativeStickyBalancer()
	case b == balancerSingleOwner:
		balancer = singleOwnerBalancer{}
	default:
		return nil, fmt.Errorf("%s: %q is neither %s nor %s", inFieldBalancer, b, balancerCooperativeSticky, balancerSingleOwner)
	}

	in.groupOpts = []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in.topics...),
		kgo.Balancers(balancer),
		kgo.ConsumeStartOffset(first),
		kgo.ConsumeResetOffset(start),
		// The input commits what is acknowledged; franz-go would commit
		// what was polled.
		kgo.DisableAutoCommit(),
		kgo.FetchMaxBytes(fetchBytes[0]),
		kgo.FetchMinBytes(fetchBytes[1]),
		kgo.FetchMaxPartitionBytes(fetchBytes[2]),
		kgo.FetchMaxWait(maxWait),
		kgo.SessionTimeout(sessionTimeout),
		kgo.RebalanceTimeout(in.rebalanceTimeout),
		kgo.HeartbeatInterval(heartbeat),
		kgo.OnPartitionsAssigned(in.onAssigned),
		kgo.OnPartitionsRevoked(in.onRevoked),
		kgo.OnPartitionsLost(in.onLost),
	}
	instanceID, err := conf.FieldString(inFieldInstanceID)
	if err != nil {
		return nil, err
	}
	if instanceID != "" {
		in.groupOpts = append(in.groupOpts, kgo.InstanceID(instanceID))
	}
	if err := kgo.ValidateOpts(in.clientOpts()...); err != nil {
		return nil, err
	}
	// The stream's buffer learns from here on that partitions are
	// reported: until some are assigned, it holds none.
	in.hub.Publish()
	return in, nil
}

func (in *input) clientOpts() []kgo.Opt {
	return slices.Concat(in.opts, in.groupOpts)
}

func inputTopics(conf *service.ParsedConfig) ([]string, error) {
	list, err := conf.FieldStringList(inFieldTopics)
	if err != nil {
		return nil, err
	}
	var topics []string
	for _, entry := range list {
		for _, t := range strings.Split(entry, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("%s: at least one topic is needed", inFieldTopics)
	}
	return topics, nil
}

func positiveInt(conf *service.ParsedConfig, field string) (int, error) {
	n, err := conf.FieldInt(field)
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("%s: must be at least 1, not %d", field, n)
	}
	return n, nil
}

func positiveDuration(conf *service.ParsedConfig, field string) (time.Duration, error) {
	d, err := conf.FieldDuration(field)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: must be positive, not %v", field, d)
	}
	return d, nil
}

func byteSize(conf *service.ParsedConfig, field string) (int32, error) {
	s, err := conf.FieldString(field)
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	if n < 1 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%s: %s is not between 1B and 2GiB", field, s)
	}
	return int32(n), nil
}

// Connect starts the client, which joins the group, and checks that the
// brokers answer.
func (in *input) Connect(ctx context.Context) error {
	in.mu.Lock()
	closed, connected := in.closed, in.cl != nil
	in.mu.Unlock()
	if closed {
		return service.ErrEndOfInput
	}
	if connected {
		return nil
	}
	// No lock is held from here on while the client runs: the group's
	// callbacks take in.mu, and closing the client waits for them.
	// Consume only once the stream's other components can keep what is
	// consumed (the aggregation's state store is reachable): input they
	// cannot acknowledge would be held in vain, and /ready says why.
	if err := in.awaitComponents(ctx); err != nil {
		return fmt.Errorf("waiting for the stream's components: %w", err)
	}
	cl, err := kgo.NewClient(in.clientOpts()...)
	if err != nil {
		return err
	}
	if err := ping(ctx, cl); err != nil {
		cl.Close()
		return err
	}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		cl.Close()
		return service.ErrEndOfInput
	}
	loopCtx, stop := context.WithCancel(context.Background())
	in.cl, in.stopLoops = cl, stop
	in.loops.Add(2)
	go in.pollLoop(loopCtx, cl)
	go in.commitLoop(loopCtx, cl)
	in.mu.Unlock()
	return nil
}

// awaitComponents waits up to componentWait for the stream's components to
// be ready: a state store reads its topic at start-up, and failing at once
// would cost a connect back-off and an error line on every normal start.
func (in *input) awaitComponents(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, componentWait)
	defer cancel()
	for {
		err := in.hub.Check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// componentWait bounds awaitComponents.
const componentWait = 10 * time.Second

// ReadBatch returns the next batch: a nacked batch read again first, else
// records of the partitions in turn, so that one partition's backlog does
// not hold back the others.
//
// Benthos cancels ctx only when the stream stops consuming. The input then
// tells the stream's components it is stopping and commits what they
// acknowledge in response at once: benthos closes an input only after
// every batch it handed on is acknowledged or the stream's shutdown
// timeout passed, and acknowledgements made after that never reach it.
func (in *input) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		in.mu.Lock()
		if in.closed {
			in.mu.Unlock()
			return nil, nil, service.ErrEndOfInput
		}
		cl := in.cl
		if cl == nil {
			in.mu.Unlock()
			return nil, nil, service.ErrNotConnected
		}
		if r, ok := in.nextReplay(); ok {
			in.mu.Unlock()
			batch, err := in.replay(ctx, r)
			if err != nil {
				if ctx.Err() != nil {
					in.stop(context.WithoutCancel(ctx), cl)
				}
				return nil, nil, err
			}
			if batch == nil {
				continue
			}
			return batch, in.ackFunc(r.p, r.seq, r.first, r.last), nil
		}
		if p, records, seq := in.nextRecords(); p != nil {
			in.mu.Unlock()
			first, last := records[0].Offset, records[len(records)-1].Offset
			return p.messages(records), in.ackFunc(p, seq, first, last), nil
		}
		in.mu.Unlock()

		select {
		case <-in.readable:
		case <-ctx.Done():
			in.stop(context.WithoutCancel(ctx), cl)
			return nil, nil, ctx.Err()
		}
	}
}

// nextRecords takes the next records to hand on from the ready list and
// tracks them as batch seq. The caller holds in.mu.
func (in *input) nextRecords() (*inputPartition, []*kgo.Record, uint64) {
	for len(in.ready) > 0 {
		p := in.ready[0]
		in.ready = in.ready[1:]
		p.ready = false
		room := in.checkpointLimit - p.tracker.inFlight()
		if p.state != partitionHeld || len(p.queue) == 0 || room <= 0 {
			continue
		}
		n := min(in.batchSize, room, len(p.queue))
		records := slices.Clone(p.queue[:n])
		// Clear the handed-on pointers, so that the queue's array does
		// not keep their records alive.
		clear(p.queue[:n])
		if p.queue = p.queue[n:]; len(p.queue) == 0 {
			p.queue = nil
		}
		seq := p.tracker.add(records[n-1].Offset, n)
		in.markReady(p)
		if len(in.ready) == 0 {
			signal(in.drained)
		} else {
			signal(in.readable)
		}
		return p, records, seq
	}
	signal(in.drained)
	return nil, nil, 0
}

// markReady puts p in the ready list if it has records it may hand on.
// The caller holds in.mu.
func (in *input) markReady(p *inputPartition) {
	if p.ready || p.state != partitionHeld || len(p.queue) == 0 || p.tracker.inFlight() >= in.checkpointLimit {
		return
	}
	p.ready = true
	in.ready = append(in.ready, p)
	signal(in.readable)
}

// ackFunc returns the acknowledgement of batch seq of p, offsets first
// through last.
func (in *input) ackFunc(p *inputPartition, seq uint64, first, last int64) service.AckFunc {
	return func(_ context.Context, err error) error {
		in.mu.Lock()
		defer in.mu.Unlock()
		if p.state == partitionGone {
			return nil
		}
		if err != nil {
			in.log.Warnf("Batch of %s/%d, offsets %d-%d, was rejected and is read again: %v", p.topic, p.partition, first, last, err)
			in.replays = append(in.replays, nackedBatch{p: p, seq: seq, first: first, last: last})
			signal(in.readable)
			return nil
		}
		if !p.tracker.ack(seq) {
			return nil
		}
		if p.paused && p.tracker.inFlight()+len(p.queue) < in.checkpointLimit {
			p.paused = false
			in.cl.ResumeFetchPartitions(map[string][]int32{p.topic: {p.partition}})
		}
		in.markReady(p)
		return nil
	}
}

// nextReplay takes the next nacked batch of a partition still held. The
// caller holds in.mu.
func (in *input) nextReplay() (nackedBatch, bool) {
	for len(in.replays) > 0 {
		r := in.replays[0]
		in.replays = in.replays[1:]
		if r.p.state == partitionHeld {
			return r, true
		}
	}
	return nackedBatch{}, false
}

// stop tells the stream's components that it stops and commits what they
// acknowledged. It runs once, bounded by ctx and the rebalance timeout:
// the time a revocation gets to save and commit.
func (in *input) stop(ctx context.Context, cl *kgo.Client) {
	in.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, in.rebalanceTimeout)
		defer cancel()
		in.hub.Stop(ctx)
		in.commit(ctx, cl, nil)
	})
}

// Close tells the stream's components that it stops (if ReadBatch did not
// yet), commits the acknowledged prefix of every partition and closes the
// client. A dynamic member leaves the group, which revokes its partitions;
// a static one stays until its session times out.
func (in *input) Close(ctx context.Context) error {
	in.mu.Lock()
	cl, stopLoops, closed := in.cl, in.stopLoops, in.closed
	in.closed = true
	in.mu.Unlock()
	signal(in.readable)
	if cl == nil || closed {
		return nil
	}
	stopLoops()
	in.loops.Wait()
	in.stop(ctx, cl)
	in.commit(ctx, cl, nil)

	// Closing runs the revocation callback, which takes in.mu and
	// commits: nothing here holds a lock while it waits.
	done := make(chan struct{})
	go func() {
		cl.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing the kafka client: %w", ctx.Err())
	}
}

// signal wakes the waiter on c, if it does not have a signal already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
