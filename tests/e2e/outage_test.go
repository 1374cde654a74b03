package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// TestOutputOutage takes the Kafka cluster of the output away for 60 s while
// input keeps arriving, then brings it back at the same address.
//
// The input topic (and the window-state topic) is on the test's cluster, the
// output topic on a second cluster on a fixed port. The pipeline works
// through a backlog and a steady trickle of live metrics. Once aggregates
// have arrived and the pipeline has committed input on every partition, the
// output cluster fails every further produce request (closing the
// connection), and once the collector has read everything the cluster
// acknowledged, the cluster is closed. For 60 s
// of input the test checks every second that the process is alive, that its
// resident memory stays bounded (committed input is in a checkpoint, and
// only the final values can tell whether any was lost). Then a new cluster starts on
// the same port from the first one's data directory, as a restarted broker
// does, and after catch-up every expected aggregate must be in the output
// topic with exactly its reference value; identical repeats are allowed,
// nothing may be missing, partial or extra.
//
// The new cluster reloads the first one's data rather than starting empty,
// as a restarted broker does; a topic deleted and created again is
// TestOutputTopicRecreated.
func TestOutputOutage(t *testing.T) {
	const (
		outage = 60 * time.Second
		// maxRSS is far above what the process needs: the run's input is
		// about 40,000 metrics of 300 bytes, at most about 12,000 of them
		// held at once, and a process holding a 2,000,000-metric backlog
		// peaks at 1.05 GiB (README, Performance). Reaching it means memory
		// grows with something other than the held input.
		maxRSS = 1 << 30
		// maxGrowth bounds the peak of the resident memory over its value
		// when the outage began: a fixed allowance for the heap plus a
		// generous 16 KiB per input message held during the outage (a held
		// message is a Kafka record of about 300 bytes, its Connect message
		// and metadata, and its share of the engine's open series).
		maxGrowthBase   = 64 << 20
		maxGrowthPerMsg = 16 << 10
	)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	out := startOutputCluster(t, "aggregates")
	cfg := pipelineConfig{
		inputTopic: "metrics", outputTopic: "aggregates",
		window: 2 * time.Second, lag: time.Second, idle: 5 * time.Second,
		outputBrokers: out.addr(),
	}
	e := newEnv(t, cfg)
	rng := newRand(t)
	in := &inputLog{}

	// A backlog of the last eight minutes: about 6,700 aggregates, written
	// as one flush of several output batches.
	w := workload{window: cfg.window, lag: cfg.lag, windows: 240, perWindow: 100, partitions: 4}
	g := w.generate(rng, time.Now())
	e.produce(ctx, g.records)
	in.add(t, g.records)
	c1 := e.collect(ctx)
	t.Logf("backlog: %d metrics over %d windows; output cluster at %s", len(g.records), w.windows, out.addr())

	started := time.Now()
	p := e.start()
	// Two metrics per partition every 50 ms, each logged once acknowledged.
	tr := startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 1)), trickleSpec{
		tick: 50 * time.Millisecond, partitions: w.partitions, lag: cfg.lag, perTick: 2, produced: in.tryAdd,
	})

	// The outage begins once input is committed on every partition, so
	// that the committed offsets stand at the edge of what was written:
	// produce requests fail from then on, and once the collector has read
	// what the cluster acknowledged, the cluster closes.
	if !harness.WaitUntil(ctx, 60*time.Second, func() bool {
		if c1.count() == 0 {
			return false
		}
		committed, err := e.Admin.FetchOffsets(ctx, e.group)
		if err != nil {
			return false
		}
		for p := range w.partitions {
			if c, ok := committed.Lookup(cfg.inputTopic, p); !ok || c.Err != nil || c.At <= 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("no input committed on every partition within 60s (%d aggregates read)", c1.count())
	}
	out.arm()
	if !harness.WaitUntil(ctx, 20*time.Second, func() bool { return out.cutAt() != (time.Time{}) }) {
		t.Fatal("no produce request within 20s of arming the outage")
	}
	cut := out.cutAt()
	if !harness.WaitUntil(ctx, 20*time.Second, func() bool {
		ends, err := out.admin().ListEndOffsets(ctx, cfg.outputTopic)
		return err == nil && ends.Error() == nil && c1.caughtUp(ends)
	}) {
		t.Fatal("the collector did not read the output cluster's records within 20s")
	}
	c1.close()
	out.close()
	before := c1.outputs()
	outageStart := time.Now()
	t.Logf("%s output cut at %s, %v after start, with %d aggregates written; output cluster closed",
		wallClock(), cut.UTC().Format("15:04:05.000"), cut.Sub(started).Round(time.Millisecond), len(before))

	// During the outage.
	pid := p.Pid()
	rss0, _, err := harness.Memory(pid)
	if err != nil {
		t.Fatalf("reading the RSS: %v", err)
	}
	in0 := in.len()
	var peak int64
	var rssLog, commitLog []string
	lastCommitted := ""
	for tick := 0; ; tick++ {
		if !p.Running() {
			t.Fatalf("monasca-connect exited during the outage: %v", p.Err())
		}
		if err := tr.err(); err != nil {
			t.Fatalf("producing the trickle: %v", err)
		}
		rss, _, err := harness.Memory(pid)
		if err != nil {
			t.Fatalf("reading the RSS of pid %d: %v", pid, err)
		}
		peak = max(peak, rss)
		if rss >= maxRSS {
			t.Fatalf("RSS %d MiB during the outage, above the bound of %d MiB", rss>>20, maxRSS>>20)
		}
		committed, err := e.Admin.FetchOffsets(ctx, e.group)
		if err != nil {
			t.Fatalf("fetching the committed offsets: %v", err)
		}
		if tick%5 == 0 {
			rssLog = append(rssLog, fmt.Sprintf("%ds: %d MiB", int(time.Since(outageStart).Seconds()), rss>>20))
		}
		last := time.Since(outageStart) >= outage
		if c, s := in.describeCommitted(committed, cfg.inputTopic); c != lastCommitted || last {
			commitLog = append(commitLog, fmt.Sprintf("%.1fs: %s", time.Since(outageStart).Seconds(), s))
			lastCommitted = c
		}
		if last {
			break
		}
		harness.Sleep(ctx, time.Second)
		if ctx.Err() != nil {
			t.Fatal("test deadline reached during the outage")
		}
	}
	rss1, _, _ := harness.Memory(pid)
	heldMsgs := in.len() - in0
	t.Logf("RSS during the outage (VmRSS): %s; start %d MiB, end %d MiB, peak %d MiB; %d metrics produced during the outage",
		strings.Join(rssLog, ", "), rss0>>20, rss1>>20, peak>>20, heldMsgs)
	t.Logf("committed input offsets during the outage, when they changed and at its end (committed/produced per partition):\n  %s",
		strings.Join(commitLog, "\n  "))
	if growth, limit := peak-rss0, int64(maxGrowthBase+maxGrowthPerMsg*heldMsgs); growth > limit {
		t.Errorf("RSS peaked %d MiB above its start during the outage, more than %d MiB for %d input messages held",
			growth>>20, limit>>20, heldMsgs)
	}
	if samples, err := harness.Scrape(ctx, p.httpAddr); err == nil {
		t.Logf("at the end of the outage: output_retries_total=%v held_input_batches=%v open_series=%v",
			harness.Sum(samples, "monasca_output_retries_total", "")[""],
			harness.Sum(samples, "monasca_held_input_batches", "")[""],
			harness.Sum(samples, "monasca_open_series", "")[""])
	}

	// The output comes back at the same address.
	if err := out.restart(ctx); err != nil {
		t.Fatalf("restarting the output cluster on port %d: %v", out.port, err)
	}
	restarted := time.Now()
	c2 := e.collect(ctx)
	endsAtRestart, err := e.Admin.ListEndOffsets(ctx, cfg.inputTopic)
	if err != nil || endsAtRestart.Error() != nil {
		t.Fatalf("listing the input's end offsets: %v %v", err, endsAtRestart.Error())
	}
	t.Logf("%s output cluster up again at %s", wallClock(), out.addr())

	// Catch-up: everything produced up to the restart gets committed while
	// the trickle goes on; then the trickle stops and the last windows
	// close.
	if !harness.WaitUntil(ctx, 90*time.Second, func() bool {
		committed, err := e.Admin.FetchOffsets(ctx, e.group)
		if err != nil {
			return false
		}
		ok := true
		endsAtRestart.Each(func(o kadm.ListedOffset) {
			if got, found := committed.Lookup(o.Topic, o.Partition); !found || got.At < o.Offset {
				ok = false
			}
		})
		return ok
	}) {
		t.Errorf("the input produced before the output came back was not committed within 90s of its return (%d aggregates read since)", c2.count())
	} else {
		t.Logf("caught up %v after the output came back: every input produced until then committed, %d aggregates read since",
			time.Since(restarted).Round(time.Millisecond), c2.count())
	}
	tr.stop()
	if err := tr.err(); err != nil {
		t.Fatalf("producing the trickle: %v", err)
	}
	if !e.waitDrained(ctx, c2) {
		t.FailNow()
	}
	t.Logf("drained %v after the start, %v after the output came back; %d metrics produced in all",
		time.Since(started).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond), in.len())
	if rss, _, err := harness.Memory(pid); err == nil {
		t.Logf("RSS after catch-up: %d MiB", rss>>20)
	}

	// The output topic of the restarted cluster holds what the first one
	// acknowledged, then what was written after the outage.
	after := c2.outputs()
	kept := map[[2]int64]string{}
	for _, o := range after {
		kept[[2]int64{int64(o.partition), o.offset}] = string(o.raw)
	}
	for _, o := range before {
		if kept[[2]int64{int64(o.partition), o.offset}] != string(o.raw) {
			t.Fatalf("the restarted output cluster lost p%d@%d, written before the outage", o.partition, o.offset)
		}
	}
	expected := expectedAggregates(in.allMetrics(), cfg.window)
	checkOutputs(t, expected, after, started, true)
	samples, err := harness.Scrape(ctx, p.httpAddr)
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	logCounters(t, samples)
	if late := harness.Sum(samples, "monasca_metrics_late_total", "")[""]; late != 0 {
		t.Errorf("monasca_metrics_late_total = %v, want 0: the outage let windows close before their input was read", late)
	}
}

// outputCluster is the output's Kafka cluster: one kfake broker on a fixed
// loopback port, so that a new cluster can take over its address.
type outputCluster struct {
	t       *testing.T
	topic   string
	port    int
	dataDir string // the cluster's state, kept across the restart

	mu      sync.Mutex
	cluster *kfake.Cluster
	client  *kgo.Client
	armed   atomic.Bool               // produce requests fail
	cut     atomic.Pointer[time.Time] // when the first produce request failed
}

// startOutputCluster starts the output cluster with the topic of four
// partitions; once armed, it fails every produce request by closing the
// connection. It is closed when the test ends.
//
// The port is below the kernel's ephemeral range: while nothing listens on
// it the pipeline keeps dialing it, and a port of that range could be given
// to an outgoing connection meanwhile (to the dialing one itself, which
// would then connect to itself), and the restart could not bind it.
func startOutputCluster(t *testing.T, topic string) *outputCluster {
	t.Helper()
	o := &outputCluster{t: t, topic: topic, dataDir: t.TempDir()}
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	var err error
	for range 50 {
		o.port = 10000 + rand.IntN(low-10000)
		if err = o.startCluster(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting the output cluster: %v", err)
	}
	o.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !o.armed.Load() {
			return nil, nil, false // written as usual
		}
		o.cluster.KeepControl()
		now := time.Now()
		o.cut.CompareAndSwap(nil, &now)
		return nil, errors.New("output outage"), true
	})
	t.Cleanup(o.close)
	return o
}

func (o *outputCluster) startCluster() error {
	c, err := kfake.NewCluster(
		kfake.Ports(o.port),
		kfake.SeedTopics(4, o.topic),
		kfake.DataDir(o.dataDir),
	)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		c.Close()
		return err
	}
	o.mu.Lock()
	o.cluster, o.client = c, cl
	o.mu.Unlock()
	return nil
}

// arm makes every later produce request fail.
func (o *outputCluster) arm() { o.armed.Store(true) }

func (o *outputCluster) addr() string { return fmt.Sprintf("127.0.0.1:%d", o.port) }

// admin is a client of the running cluster.
func (o *outputCluster) admin() *kadm.Client {
	o.mu.Lock()
	defer o.mu.Unlock()
	return kadm.NewClient(o.client)
}

// cutAt returns when the outage began, zero before.
func (o *outputCluster) cutAt() time.Time {
	if p := o.cut.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

// close closes the cluster, with every connection to it.
func (o *outputCluster) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.client != nil {
		o.client.Close()
		o.cluster.Close()
		o.client, o.cluster = nil, nil
	}
}

// restart starts a new cluster on the same port from the closed one's data
// directory, with its topic, topic ID and records, retrying until the port
// can be bound or ctx ends.
func (o *outputCluster) restart(ctx context.Context) error {
	var err error
	if harness.WaitUntil(ctx, 30*time.Second, func() bool {
		err = o.startCluster()
		return err == nil
	}) {
		return nil // closed by the cleanup of startOutputCluster
	}
	return err
}

// inputLog is every input record produced, per partition in offset order.
type inputLog struct {
	mu      sync.Mutex
	metrics []inputMetric
	parts   map[int32][]loggedRecord
}

type loggedRecord struct {
	offset int64
}

// add logs produced records (their offsets are set).
func (l *inputLog) add(t *testing.T, recs []*kgo.Record) {
	t.Helper()
	if err := l.tryAdd(recs); err != nil {
		t.Fatal(err)
	}
}

func (l *inputLog) tryAdd(recs []*kgo.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts == nil {
		l.parts = map[int32][]loggedRecord{}
	}
	for _, r := range recs {
		m, err := parseInputMetric(r.Value)
		if err != nil {
			return fmt.Errorf("input record p%d@%d: %w", r.Partition, r.Offset, err)
		}
		l.metrics = append(l.metrics, m)
		l.parts[r.Partition] = append(l.parts[r.Partition], loggedRecord{r.Offset})
	}
	return nil
}

func (l *inputLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.metrics)
}

func (l *inputLog) allMetrics() []inputMetric {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]inputMetric(nil), l.metrics...)
}

// describeCommitted renders the committed offsets, and them with the
// produced ends.
func (l *inputLog) describeCommitted(committed kadm.OffsetResponses, topic string) (offsets, withEnds string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var o, b strings.Builder
	for p := range int32(len(l.parts)) {
		at := "-"
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil {
			at = strconv.FormatInt(c.At, 10)
		}
		end := int64(0)
		if recs := l.parts[p]; len(recs) > 0 {
			end = recs[len(recs)-1].offset + 1
		}
		fmt.Fprintf(&o, " p%d %s", p, at)
		fmt.Fprintf(&b, " p%d %s/%d", p, at, end)
	}
	return o.String(), strings.TrimSpace(b.String())
}

// parseInputMetric reads back a metric the tests produced.
func parseInputMetric(b []byte) (inputMetric, error) {
	var env struct {
		Metric struct {
			Name       string            `json:"name"`
			Dimensions map[string]string `json:"dimensions"`
			Timestamp  int64             `json:"timestamp"`
			Value      int64             `json:"value"`
		} `json:"metric"`
		Meta struct {
			TenantID string `json:"tenantId"`
			Region   string `json:"region"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return inputMetric{}, err
	}
	m := env.Metric
	return inputMetric{name: m.Name, dims: m.Dimensions, ts: m.Timestamp, value: m.Value,
		tenant: tenant{env.Meta.TenantID, env.Meta.Region}}, nil
}
