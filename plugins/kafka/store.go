package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// StoreResourceType is the name of the top-level YAML list of state stores
// and the type name to pass to service.Resources.AccessCustomResource.
const StoreResourceType = "kafka_state_stores"

// Store tuning that users have no reason to change.
const (
	// storeWriteTimeout bounds each write of the store, through the
	// records' context, and each attempt to set the store up.
	storeWriteTimeout = 30 * time.Second
	// storeRetryMin and storeRetryMax bound the wait between attempts to
	// set the store up.
	storeRetryMin = 500 * time.Millisecond
	storeRetryMax = 10 * time.Second
)

// stateTopicConfigs are the configs of a state topic the store creates:
// compacted, with segments rolled and cleaned often enough that superseded
// values do not pile up.
var stateTopicConfigs = map[string]*string{
	"cleanup.policy":            kadm.StringPtr("compact"),
	"segment.ms":                kadm.StringPtr("3600000"),
	"min.cleanable.dirty.ratio": kadm.StringPtr("0.1"),
}

func storeSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Summary("A store of checkpoints on a compacted Kafka topic, with fencing of former owners.").
		Description(`
Components find a store by its label. A store reads its topic once at start-up and then follows it,
keeping the newest value of every key in memory. Values of any size are cut into 512 KiB records.

A component claims a key before it saves under it: the claim returns the newest value saved by
anyone, and from then on saves under the key by stores that claimed it before fail. The topic is
created at start-up when it is missing; while it cannot be created or read, the store says why in
the log and keeps trying.`).
		Fields(connectionFields()...).
		Fields(
			service.NewStringField(fieldWriteTopic).
				Description("The topic of the store. Keep it for the store alone, and do not add partitions to it."),
			service.NewIntField(fieldTopicPartitions).
				Description("The partition count of the topic when the store creates it; a key's records all go to one partition.").
				Default(1).
				Advanced(),
			service.NewIntField(fieldTopicReplicationFactor).
				Description("The replication factor of the topic when the store creates it; -1 takes the brokers' default.").
				Default(-1).
				Advanced(),
		)
}

func init() {
	err := service.GlobalEnvironment().RegisterCustomResource(StoreResourceType, storeSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (any, error) {
			return newStore(conf, res.Logger())
		})
	if err != nil {
		panic(err)
	}
}

// Store keeps values under string keys on a compacted topic, for
// checkpoints: store_layout.go describes the records, Claim and Save the
// fencing, store_run.go how the topic is read, store_tail.go how its records are applied.
type Store struct {
	topic  string
	create topicSpec
	log    *service.Logger
	cl     *kgo.Client
	writer uint64 // this store's writer ID in its claims

	stop context.CancelFunc
	done chan struct{} // closed when run returns

	mu sync.Mutex
	// ready is set once the topic is there and has been read up to its
	// end offsets at start-up; until then setupErr says why not.
	ready      bool
	setupErr   error
	partitions int32
	// next is the offset after the newest record read, by partition.
	next map[int32]int64
	keys map[string]*keyState
	own  map[string]*ownClaim
	// changed is closed and replaced whenever the tail has read more.
	changed chan struct{}
}

func newStore(conf *service.ParsedConfig, log *service.Logger) (*Store, error) {
	topic, err := conf.FieldString(fieldWriteTopic)
	if err != nil {
		return nil, err
	}
	if topic == "" {
		return nil, fmt.Errorf("%s: must not be empty", fieldWriteTopic)
	}
	partitions, err := conf.FieldInt(fieldTopicPartitions)
	if err != nil {
		return nil, err
	}
	replication, err := conf.FieldInt(fieldTopicReplicationFactor)
	if err != nil {
		return nil, err
	}
	opts, err := clientOptions(conf)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	s := &Store{
		topic: topic,
		create: topicSpec{
			name:              topic,
			partitions:        int32(partitions),
			replicationFactor: int16(replication),
			configs:           stateTopicConfigs,
		},
		log:     log,
		writer:  binary.BigEndian.Uint64(id[:]),
		done:    make(chan struct{}),
		next:    map[int32]int64{},
		keys:    map[string]*keyState{},
		own:     map[string]*ownClaim{},
		changed: make(chan struct{}),
	}
	opts = append(opts,
		// A direct consumer of every partition, from the start: the
		// store reads the whole topic once, then follows it.
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(8<<20),
		// A claim waits for the tail to read the claim's own records:
		// do not let an idle fetch hold it up.
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Checkpoints compress well, and only stores read them.
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
	)
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.run(ctx)
	return s, nil
}

// Ready reports nil when the topic exists and the store has read it up to
// the end offsets it had at start-up; otherwise an error says why not.
func (s *Store) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ready:
		return nil
	case s.setupErr != nil:
		return s.setupErr
	}
	return fmt.Errorf("state topic %q: still reading it", s.topic)
}

// Claim returns the newest value saved under key and claims key for this
// store: from now on a Save under key by any store that claimed it earlier
// fails with an error whose Fenced() method returns true. It waits until
// the store is ready, or ctx ends.
//
// A claim takes an epoch above every one seen for key and writes a fence,
// a manifest that keeps the value there is. Once the store has read the
// fence back, no save of a former owner can change the value any more:
// the value then is the one returned, and the claim copies it under its
// own name, so that nothing a former owner writes later can touch it. If
// another claim's fence came before this one's, Claim fails Fenced. Claim
// and Save must not run at the same time for one key.
func (s *Store) Claim(ctx context.Context, key string) ([]byte, bool, error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, false, err
	}
	value, found, err := s.claim(ctx, key)
	if err != nil {
		s.mu.Lock()
		delete(s.own, key)
		s.mu.Unlock()
		return nil, false, err
	}
	return value, found, nil
}

func (s *Store) claim(ctx context.Context, key string) ([]byte, bool, error) {
	if err := s.catchUp(ctx); err != nil {
		return nil, false, fmt.Errorf("claiming state key %q: %w", key, err)
	}
	s.mu.Lock()
	ks := s.keyState(key)
	own := &ownClaim{id: claimID{epoch: ks.maxEpoch + 1, writer: s.writer}, fencedAt: nowhere}
	s.own[key] = own
	err := ks.err
	s.mu.Unlock()
	if err != nil {
		return nil, false, err
	}

	fence := manifest{Version: manifestVersion, Fence: true}
	if err := s.writeRead(ctx, key, own, nil, fence); err != nil {
		return nil, false, fmt.Errorf("claiming state key %q: %w", key, err)
	}
	s.mu.Lock()
	var value []byte
	found, err := ks.found, ks.err
	if found {
		value = bytes.Join(ks.value, nil)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, false, err
	}

	// The first save of the claim will use set 0 if there is no copy.
	set, chunks := 1, 0
	if found {
		set, chunks = 0, len(splitChunks(value))
		if err := s.writeRead(ctx, key, own, value, s.valueManifest(set, value)); err != nil {
			return nil, false, fmt.Errorf("claiming state key %q: %w", key, err)
		}
	}
	s.mu.Lock()
	own.set = set
	garbage := ks.garbage(own.id, set, chunks)
	s.mu.Unlock()
	s.tombstone(ctx, garbage)
	return value, found, nil
}

// Save stores value under key, which this store must have claimed; it
// fails (Fenced) if another store claimed key after this one did.
//
// The chunks go to the chunk set the newest value does not use, and the
// manifest naming them last, so that a save torn anywhere leaves the
// newest value whole. Save returns once the store has read its manifest
// back: nil if no other claim's fence came before it (the value is then
// the one every store reads, and a later claim carries it over), Fenced
// otherwise (the value is never read).
func (s *Store) Save(ctx context.Context, key string, value []byte) error {
	s.mu.Lock()
	own := s.own[key]
	if own == nil {
		s.mu.Unlock()
		return fmt.Errorf("saving state key %q: this store has not claimed it", key)
	}
	ks := s.keys[key]
	if own.fencedAt != nowhere {
		s.mu.Unlock()
		return fmt.Errorf("saving state key %q: %w", key, &FencedError{claim: own.id, by: ks.top})
	}
	set := 1 - own.set
	s.mu.Unlock()

	if err := s.writeRead(ctx, key, own, value, s.valueManifest(set, value)); err != nil {
		return fmt.Errorf("saving state key %q: %w", key, err)
	}
	s.mu.Lock()
	own.set = set
	garbage := ks.garbage(own.id, set, len(splitChunks(value)))
	s.mu.Unlock()
	s.tombstone(ctx, garbage)
	return nil
}

// Close stops the store's client.
func (s *Store) Close(ctx context.Context) error {
	s.stop()
	s.cl.Close()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// valueManifest returns the manifest of value in chunk set set.
func (s *Store) valueManifest(set int, value []byte) manifest {
	return manifest{
		Version: manifestVersion,
		Set:     set,
		Chunks:  len(splitChunks(value)),
		Size:    int64(len(value)),
		CRC32C:  crc32.Checksum(value, castagnoli),
	}
}

// writeRead writes the chunks of value under key and claim own to m's
// chunk set, then, once they are stored, m; and waits until the tail has
// read m. It fails Fenced if m came after another claim's fence, and with
// the tail's error if m is unusable.
func (s *Store) writeRead(ctx context.Context, key string, own *ownClaim, value []byte, m manifest) error {
	id := own.id
	wctx, cancel := context.WithTimeout(ctx, storeWriteTimeout)
	defer cancel()
	partition := s.partitionOf(key)
	chunks := splitChunks(value)
	recs := make([]*kgo.Record, len(chunks))
	for i, c := range chunks {
		name := recordName{key: key, claim: id, chunk: true, set: m.Set, index: i}
		recs[i] = &kgo.Record{Key: []byte(name.String()), Value: c, Partition: partition}
	}
	if err := s.cl.ProduceSync(wctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("writing %d chunks to topic %q: %w", len(recs), s.topic, err)
	}
	mr := &kgo.Record{Key: []byte(recordName{key: key, claim: id}.String()), Value: m.encode(), Partition: partition}
	if err := s.cl.ProduceSync(wctx, mr).FirstErr(); err != nil {
		return fmt.Errorf("writing a manifest to topic %q: %w", s.topic, err)
	}
	at := position{mr.Partition, mr.Offset}
	if err := s.waitFor(ctx, func() bool { return s.next[at.partition] > at.offset }); err != nil {
		return fmt.Errorf("reading back what was written: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keys[key]
	switch {
	case !own.holds(at):
		return &FencedError{claim: id, by: ks.top}
	case own.fencedAt == nowhere:
		return ks.err // m is the newest manifest: is it usable?
	}
	return nil
}

// tombstone deletes records no longer needed. A failure only delays the
// deletion: the records stay live and the next save deletes them.
func (s *Store) tombstone(ctx context.Context, recs []*kgo.Record) {
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, storeWriteTimeout)
	defer cancel()
	if err := s.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		s.log.Warnf("State topic %q: deleting %d superseded records: %v", s.topic, len(recs), err)
	}
}

// partitionOf returns the partition of all records of key: Kafka's murmur2
// partition of key itself, so that they are in one order.
func (s *Store) partitionOf(key string) int32 {
	s.mu.Lock()
	n := int(s.partitions)
	s.mu.Unlock()
	p := kgo.StickyKeyPartitioner(nil).ForTopic(s.topic).Partition(&kgo.Record{Key: []byte(key)}, n)
	return int32(p)
}
