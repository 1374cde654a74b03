package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// edgeStore starts a store from yaml (see edgeConfig).
func edgeStore(t *testing.T, c *kfake.Cluster, yaml string) *Store {
	t.Helper()
	s, err := newStore(edgeConfig(t, storeSpec(), c, yaml), service.MockResources().Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(edgeContext(t, 10*time.Second)); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return s
}

// edgeReadyStore starts a store of topic state and waits until it is ready.
func edgeReadyStore(t *testing.T, c *kfake.Cluster) *Store {
	t.Helper()
	s := edgeStore(t, c, "seed_brokers: BROKERS\ntopic: state\n")
	ctx := edgeContext(t, 10*time.Second)
	edgeEventually(t, 10*time.Second, "the store to be ready", func() bool { return s.Ready(ctx) == nil })
	return s
}

// edgeValue returns n bytes that compress somewhat, as checkpoints do.
func edgeValue(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = "0123456789abcdef{}\":,"[r.IntN(21)]
	}
	return b
}

func claim(t *testing.T, s *Store, key string) ([]byte, bool) {
	t.Helper()
	v, found, err := s.Claim(edgeContext(t, 20*time.Second), key)
	if err != nil {
		t.Fatalf("claiming %q: %v", key, err)
	}
	return v, found
}

func save(t *testing.T, s *Store, key string, value []byte) {
	t.Helper()
	if err := s.Save(edgeContext(t, 20*time.Second), key, value); err != nil {
		t.Fatalf("saving %q: %v", key, err)
	}
}

func isFenced(err error) bool {
	var f interface{ Fenced() bool }
	return errors.As(err, &f) && f.Fenced()
}

// edgeProduce writes records to the state topic as a store would, for
// saves torn or corrupted on purpose.
func edgeProduce(t *testing.T, c *kfake.Cluster, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("state"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(edgeContext(t, 10*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestStoreCreatesCompactedTopic(t *testing.T) {
	c := edgeCluster(t)
	edgeReadyStore(t, c)
	ctx := edgeContext(t, 10*time.Second)
	configs, err := edgeAdmin(t, c).DescribeTopicConfigs(ctx, "state")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := configs.On("state", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describing: %v %v", err, rc.Err)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	for k, v := range stateTopicConfigs {
		if got[k] != *v {
			t.Errorf("%s = %q, want %q", k, got[k], *v)
		}
	}
	topics, err := edgeAdmin(t, c).ListTopics(ctx, "state")
	if err != nil || len(topics["state"].Partitions) != 1 {
		t.Errorf("partitions: %v, %v; want 1", topics["state"].Partitions, err)
	}
}

// TestStoreRoundTripsChunkedValue saves a 3 MB value and reads it back with
// another store, started afterwards.
func TestStoreRoundTripsChunkedValue(t *testing.T) {
	c := edgeCluster(t)
	a := edgeReadyStore(t, c)
	if v, found := claim(t, a, "lane/metrics/0"); found || v != nil {
		t.Fatalf("a new key had a value: %d bytes", len(v))
	}
	value := edgeValue(3<<20, 1)
	save(t, a, "lane/metrics/0", value)

	b := edgeReadyStore(t, c)
	v, found := claim(t, b, "lane/metrics/0")
	if !found || !bytes.Equal(v, value) {
		t.Fatalf("claimed %d bytes (found %v), want the 3 MiB saved", len(v), found)
	}
	b.mu.Lock()
	n := len(b.keys["lane/metrics/0"].value)
	b.mu.Unlock()
	if n != 6 {
		t.Errorf("the value is held in %d chunks, want 6 of 512 KiB", n)
	}
}

// TestStoreTailsSavesAfterStart checks that a store reads saves made after
// it started, and that a claim sees the newest save.
func TestStoreTailsSavesAfterStart(t *testing.T) {
	c := edgeCluster(t)
	a := edgeReadyStore(t, c)
	claim(t, a, "k")
	save(t, a, "k", []byte("v1"))
	b := edgeReadyStore(t, c)
	save(t, a, "k", []byte("v2"))
	save(t, a, "k", []byte("v3"))
	if v, _ := claim(t, b, "k"); string(v) != "v3" {
		t.Fatalf("claimed %q, want v3", v)
	}
}

// TestStoreFencesFormerOwner checks that a claim fences the stores that
// claimed the key before, and that their writes are never read.
func TestStoreFencesFormerOwner(t *testing.T) {
	c := edgeCluster(t)
	a := edgeReadyStore(t, c)
	b := edgeReadyStore(t, c)
	claim(t, a, "k")
	save(t, a, "k", []byte("from a"))

	if v, found := claim(t, b, "k"); !found || string(v) != "from a" {
		t.Fatalf("b claimed %q (found %v), want a's value", v, found)
	}
	err := a.Save(edgeContext(t, 10*time.Second), "k", []byte("late from a"))
	if !isFenced(err) {
		t.Fatalf("a saved after b's claim: %v", err)
	}
	t.Logf("a's save: %v", err)
	save(t, b, "k", []byte("from b"))
	if err := a.Save(edgeContext(t, 10*time.Second), "k", []byte("later from a")); !isFenced(err) {
		t.Fatalf("a saved after b's save: %v", err)
	}

	d := edgeReadyStore(t, c)
	if v, _ := claim(t, d, "k"); string(v) != "from b" {
		t.Fatalf("a later store claimed %q, want b's value", v)
	}
}

// TestStoreClaimCarriesOverEveryReportedSave claims a key while its owner
// keeps saving: the claim returns the owner's last save that returned nil,
// and the owner's saves fail Fenced from then on.
func TestStoreClaimCarriesOverEveryReportedSave(t *testing.T) {
	c := edgeCluster(t)
	stores := []*Store{edgeReadyStore(t, c), edgeReadyStore(t, c)}
	claim(t, stores[0], "k")
	current := []byte("v0")
	save(t, stores[0], "k", current)
	for round := range 6 {
		owner, claimer := stores[round%2], stores[1-round%2]
		saved := current
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				v := fmt.Appendf(nil, "round %d save %d", round, i)
				if err := owner.Save(edgeContext(t, 20*time.Second), "k", v); err != nil {
					if !isFenced(err) {
						t.Errorf("round %d: %v", round, err)
					}
					return
				}
				saved = v
			}
		}()
		time.Sleep(time.Duration(round*7) * time.Millisecond)
		v, _ := claim(t, claimer, "k")
		<-done
		if !bytes.Equal(v, saved) {
			t.Fatalf("round %d: claimed %q, the owner's last save was %q", round, v, saved)
		}
		current = v
	}
}

// TestStoreConcurrentClaims claims a key from two stores at once; each
// then saves. Whatever succeeds, a later claim reads a value whose save
// succeeded.
func TestStoreConcurrentClaims(t *testing.T) {
	c := edgeCluster(t)
	stores := []*Store{edgeReadyStore(t, c), edgeReadyStore(t, c), edgeReadyStore(t, c)}
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range stores[:2] {
			wg.Go(func() {
				ctx := edgeContext(t, 20*time.Second)
				if _, _, errs[i] = s.Claim(ctx, "k"); errs[i] == nil {
					errs[i] = s.Save(ctx, "k", fmt.Appendf(nil, "round %d store %d", round, i))
				}
			})
		}
		wg.Wait()
		saved := map[string]bool{}
		for i, err := range errs {
			switch {
			case err == nil:
				saved[fmt.Sprintf("round %d store %d", round, i)] = true
			case !isFenced(err):
				t.Fatalf("round %d store %d: %v", round, i, err)
			}
		}
		if len(saved) == 0 {
			t.Fatalf("round %d: no store could save (%v)", round, errs)
		}
		if v, _ := claim(t, stores[2], "k"); !saved[string(v)] {
			t.Fatalf("round %d: claimed %q, saved were %v", round, v, saved)
		}
	}
}

// TestStoreTornSaveLeavesPreviousValue writes the chunks of a save without
// its manifest, as a crash would: the previous value stays the value.
func TestStoreTornSaveLeavesPreviousValue(t *testing.T) {
	c := edgeCluster(t)
	a := edgeReadyStore(t, c)
	claim(t, a, "k")
	value := edgeValue(1<<20+1, 2)
	save(t, a, "k", value)

	a.mu.Lock()
	own := *a.own["k"]
	a.mu.Unlock()
	torn := recordName{key: "k", claim: own.id, chunk: true, set: 1 - own.set}
	edgeProduce(t, c, &kgo.Record{Key: []byte(torn.String()), Value: []byte("torn")})

	b := edgeReadyStore(t, c)
	if v, _ := claim(t, b, "k"); !bytes.Equal(v, value) {
		t.Fatalf("claimed %d bytes after a torn save, want the %d bytes saved before", len(v), len(value))
	}
}

// TestStoreCorruptValueIsAnError writes a manifest whose checksum does not
// match its chunks: a claim fails instead of returning them.
func TestStoreCorruptValueIsAnError(t *testing.T) {
	c := edgeCluster(t)
	a := edgeReadyStore(t, c)
	claim(t, a, "k")
	save(t, a, "k", []byte("good"))

	a.mu.Lock()
	own := *a.own["k"]
	a.mu.Unlock()
	chunk := recordName{key: "k", claim: own.id, chunk: true, set: 1 - own.set}
	m := manifest{Version: manifestVersion, Set: 1 - own.set, Chunks: 1, Size: 4, CRC32C: 1}
	edgeProduce(t, c,
		&kgo.Record{Key: []byte(chunk.String()), Value: []byte("evil")},
		&kgo.Record{Key: []byte(recordName{key: "k", claim: own.id}.String()), Value: m.encode()},
	)

	b := edgeReadyStore(t, c)
	_, _, err := b.Claim(edgeContext(t, 10*time.Second), "k")
	if err == nil || !strings.Contains(err.Error(), "CRC32C") {
		t.Fatalf("claimed a corrupt value: %v", err)
	}
}

// TestStoreValueSurvivesCompaction compacts the topic after saves of two
// owners: a store started afterwards reads the newest value.
func TestStoreValueSurvivesCompaction(t *testing.T) {
	c := edgeCluster(t)
	a := edgeReadyStore(t, c)
	b := edgeReadyStore(t, c)
	claim(t, a, "k")
	for i := range 3 {
		save(t, a, "k", edgeValue(700<<10, uint64(i)))
	}
	claim(t, b, "k")
	want := edgeValue(300<<10, 9)
	save(t, b, "k", want)
	c.Compact()

	d := edgeReadyStore(t, c)
	if v, _ := claim(t, d, "k"); !bytes.Equal(v, want) {
		t.Fatalf("claimed %d bytes after compaction, want b's %d", len(v), len(want))
	}
	// Left: d's manifest and chunk; d deleted all of a's and b's.
	edgeEventually(t, 10*time.Second, "the superseded records to be deleted", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.keys["k"].live) == 2
	})
}

// TestStoreReadyFailsWhileTopicCannotBeCreated asks for a replication
// factor the cluster cannot give: Ready says why, and the store becomes
// ready once the topic exists.
func TestStoreReadyFailsWhileTopicCannotBeCreated(t *testing.T) {
	c := edgeCluster(t)
	s := edgeStore(t, c, "seed_brokers: BROKERS\ntopic: state\nreplication_factor: 3\n")
	ctx := edgeContext(t, 20*time.Second)
	var err error
	edgeEventually(t, 10*time.Second, "Ready to give the reason", func() bool {
		err = s.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "INVALID_REPLICATION_FACTOR")
	})
	if !strings.Contains(err.Error(), `"state"`) {
		t.Errorf("%v does not name the topic", err)
	}
	_, _, err = s.Claim(edgeContext(t, 500*time.Millisecond), "k")
	if err == nil || !strings.Contains(err.Error(), "INVALID_REPLICATION_FACTOR") {
		t.Errorf("a claim before the store is ready: %v", err)
	}

	edgeCreate(t, edgeAdmin(t, c), "state", 1)
	edgeEventually(t, 15*time.Second, "the store to be ready", func() bool { return s.Ready(ctx) == nil })
}

// TestStoreWaitsForBrokers starts a store before its broker.
func TestStoreWaitsForBrokers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s, err := newStore(edgeConfigFor(t, storeSpec(), fmt.Sprintf("seed_brokers: [ 127.0.0.1:%d ]\ntopic: state\n", port)), service.MockResources().Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := edgeContext(t, 30*time.Second)
	edgeEventually(t, 10*time.Second, "Ready to give the reason", func() bool {
		err = s.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "reaching the brokers")
	})

	edgeCluster(t, kfake.Ports(port))
	edgeEventually(t, 20*time.Second, "the store to be ready", func() bool { return s.Ready(ctx) == nil })
	claim(t, s, "k")
	save(t, s, "k", []byte("v"))
}

func TestStoreRecordNames(t *testing.T) {
	claim := claimID{epoch: 7, writer: 0xfedcba9876543210}
	for _, n := range []recordName{
		{key: "lane", claim: claim},
		{key: "state/metrics@x#1/3", claim: claim, chunk: true, set: 1, index: 12},
		{key: "", claim: claim, chunk: true},
	} {
		got, ok := parseRecordName(n.String())
		if !ok || got != n {
			t.Errorf("%q parsed as %+v, %v", n.String(), got, ok)
		}
	}
	for _, s := range []string{"plain", "k@7", "k@0.fedcba9876543210", "k@7.fedcba98", "k@7.fedcba9876543210#2/0", "k@7.fedcba9876543210#0/x"} {
		if n, ok := parseRecordName(s); ok {
			t.Errorf("%q parsed as %+v", s, n)
		}
	}
}

// storeProbe claims key "k" of a store and saves each message under it.
type storeProbe struct {
	store interface {
		Claim(ctx context.Context, key string) ([]byte, bool, error)
		Save(ctx context.Context, key string, value []byte) error
		Ready(ctx context.Context) error
	}
}

func (p *storeProbe) Process(ctx context.Context, msg *service.Message) (service.MessageBatch, error) {
	for p.store.Ready(ctx) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := p.store.Claim(ctx, "k"); err != nil {
		return nil, err
	}
	b, _ := msg.AsBytes()
	return service.MessageBatch{msg}, p.store.Save(ctx, "k", b)
}

func (p *storeProbe) Close(context.Context) error { return nil }

// TestStoreIsACustomResource runs a stream whose YAML has a top-level
// kafka_state_stores list, with the global environment's schema, and whose
// processor finds the store by its label.
func TestStoreIsACustomResource(t *testing.T) {
	c := edgeCluster(t)
	env := service.GlobalEnvironment().Clone()
	err := env.RegisterProcessor("state_probe", service.NewConfigSpec(),
		func(_ *service.ParsedConfig, res *service.Resources) (service.Processor, error) {
			p := &storeProbe{}
			err := res.AccessCustomResource(context.Background(), StoreResourceType, "window_state", func(v any) {
				p.store, _ = v.(*Store)
			})
			if err == nil && p.store == nil {
				err = errors.New("the resource is not a store")
			}
			return p, err
		})
	if err != nil {
		t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	b.SetSchema(env.FullConfigSchema("", ""))
	brokers := fmt.Sprintf("[ %q ]", c.ListenAddrs()[0])
	err = b.SetYAML(`
kafka_state_stores:
  - label: window_state
    seed_brokers: ` + brokers + `
    topic: state
input:
  generate:
    count: 1
    interval: ""
    mapping: 'root = "hello"'
pipeline:
  processors:
    - state_probe: {}
output:
  kafka:
    seed_brokers: ` + brokers + `
    topic: out
    create_topic: { enabled: true }
logger:
  level: none
`)
	if err != nil {
		t.Fatal(err)
	}
	strm, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := strm.Run(edgeContext(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if v, _ := claim(t, edgeReadyStore(t, c), "k"); string(v) != "hello" {
		t.Errorf("the stream's store saved %q", v)
	}
	if r := edgeConsume(t, c, "out", 1)[0]; string(r.Value) != "hello" {
		t.Errorf("the stream wrote %q", r.Value)
	}
}

// TestStoreReadyFailsWithoutCreateRights runs the store as a user who may
// use the topic but not create it, as in many clusters.
func TestStoreReadyFailsWithoutCreateRights(t *testing.T) {
	var acls []kfake.ACL
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationDescribe, kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDescribeConfigs} {
		acls = append(acls, kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "state", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true})
	}
	acls = append(acls, kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationIdempotentWrite, Allow: true})
	c := edgeCluster(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"), kfake.User("PLAIN", "app", "app", acls...))
	s := edgeStore(t, c, `
seed_brokers: BROKERS
topic: state
sasl:
  - { mechanism: PLAIN, username: app, password: app }
`)
	ctx := edgeContext(t, 30*time.Second)
	var err error
	edgeEventually(t, 10*time.Second, "Ready to give the reason", func() bool {
		err = s.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "TOPIC_AUTHORIZATION_FAILED")
	})
	t.Logf("Ready: %v", err)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(plain.Auth{User: "admin", Pass: "admin"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, stateTopicConfigs, "state"); err != nil {
		t.Fatal(err)
	}
	edgeEventually(t, 15*time.Second, "the store to be ready", func() bool { return s.Ready(ctx) == nil })
	claim(t, s, "k")
	save(t, s, "k", []byte("v"))
}
