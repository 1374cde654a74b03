// Package e2e tests the delivery guarantee of the monasca-aggregation
// pipeline end to end: the built monasca-connect binary runs
// pipelines/monasca-aggregation.yaml as a subprocess against an in-process
// Kafka broker (kfake) on loopback, and the aggregates it writes are compared
// with an independent reference model. TestTransformPipelineCaseE runs
// pipelines/monasca-transform.yaml the same way over the monasca-transform
// conformance dataset.
//
// The harness the tests share with tests/bench (the Kafka cluster, the
// processes, scraping, polling) is internal/harness; this file adapts it to
// the tests, which fail rather than return errors.
//
// Set MONASCA_CONNECT_BIN to test a prebuilt binary instead of building one.
package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

var (
	repoRoot  string // the module root: pipelines/ lives here
	binary    string // the monasca-connect binary under test
	specsFile string // testdata/aggregation-specifications.yaml, absolute
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	if repoRoot, err = harness.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if specsFile, err = filepath.Abs(filepath.Join("testdata", "aggregation-specifications.yaml")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binary = os.Getenv("MONASCA_CONNECT_BIN")
	if binary == "" {
		dir, err := os.MkdirTemp("", "monasca-connect-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "monasca-connect")
		if err := harness.Build(repoRoot, binary); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	return m.Run()
}

// pipelineConfig is what a test varies in the pipeline's environment.
type pipelineConfig struct {
	inputTopic, outputTopic string
	window, lag, idle       time.Duration

	// pipeline is the pipeline file under pipelines/ (or an absolute
	// path) that start runs; "" is monasca-aggregation.yaml.
	pipeline string
	// env, when not nil, is the pipeline's own environment instead of the
	// one start derives for monasca-aggregation.yaml from specsFile,
	// window, lag and idle (which are then unused). KAFKA_BROKERS,
	// METRICS_TOPIC, AGGREGATED_TOPIC, CONSUMER_GROUP and HTTP_ADDRESS
	// are set by start either way.
	env []string
	// outputBrokers, when not "", are the seed brokers of a separate
	// Kafka cluster, run by the test, that holds the output topic: the
	// pipeline writes there (start passes --set
	// output.kafka.seed_brokers, the shipped pipeline is unchanged),
	// and collect and drained read the output there. The test's cluster
	// then holds the input topic and the window-state topic only.
	outputBrokers string
	// partitions, when not nil, gives topics newEnv creates with the
	// given partition counts: further topics, or the input or output
	// topic with another count than four.
	partitions map[string]int32
}

// testEnv is one test's Kafka cluster, clients and pipeline processes.
type testEnv struct {
	*harness.Kafka
	t      *testing.T
	cfg    pipelineConfig
	group  string
	logDir string
	procs  []*process // every process started, in order

	// outBrokers and outAdmin are where the output topic is: the test's
	// cluster, or cfg.outputBrokers.
	outBrokers string
	outAdmin   *kadm.Client

	groupMu    sync.Mutex
	groupOrder []string            // the groups watched, in order
	groupLogs  map[string][]string // changes of each watched group, see watchGroup
}

// newEnv starts a one-broker kfake cluster on loopback with the input (and,
// without cfg.outputBrokers, output) topic of four partitions, and clients
// for it. Everything is torn down when the test ends; on failure the tail of
// every pipeline log is printed.
func newEnv(t *testing.T, cfg pipelineConfig) *testEnv {
	t.Helper()
	topics := map[string]int32{cfg.inputTopic: 4}
	if cfg.outputBrokers == "" {
		topics[cfg.outputTopic] = 4
	}
	maps.Copy(topics, cfg.partitions)
	k, err := harness.StartKafka(topics)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	e := &testEnv{
		Kafka:  k,
		t:      t,
		cfg:    cfg,
		group:  "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		logDir: t.TempDir(),
	}
	t.Cleanup(e.printLogsOnFailure)
	e.outBrokers, e.outAdmin = e.Brokers, e.Admin
	if cfg.outputBrokers != "" {
		out, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(cfg.outputBrokers, ",")...))
		if err != nil {
			t.Fatalf("kafka client for the output cluster: %v", err)
		}
		t.Cleanup(out.Close)
		e.outBrokers, e.outAdmin = cfg.outputBrokers, kadm.NewClient(out)
	}
	e.watchGroup(e.group)
	return e
}

// watchGroup records, with the time, every change of a consumer group
// (state, members and their partitions) until the test ends; a failing test
// prints them, as they tell which instance read which partitions when.
// newEnv watches the pipeline's group, e.group.
func (e *testEnv) watchGroup(group string) {
	e.groupMu.Lock()
	if e.groupLogs == nil {
		e.groupLogs = map[string][]string{}
	}
	e.groupOrder = append(e.groupOrder, group)
	e.groupMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := ""
		for {
			if d, err := e.Admin.DescribeGroups(ctx, group); err == nil {
				if s := describeGroup(d[group]); s != last {
					e.groupMu.Lock()
					e.groupLogs[group] = append(e.groupLogs[group], wallClock()+" "+s)
					e.groupMu.Unlock()
					last = s
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// assignedMembers returns the members of the pipeline's consumer group that
// hold partitions, none when it cannot be described.
func (e *testEnv) assignedMembers(ctx context.Context) []string {
	var ids []string
	if d, err := e.Admin.DescribeGroups(ctx, e.group); err == nil {
		for _, m := range d[e.group].Members {
			if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 {
				ids = append(ids, m.MemberID)
			}
		}
	}
	return ids
}

func describeGroup(g kadm.DescribedGroup) string {
	var b strings.Builder
	b.WriteString(g.State)
	for _, m := range g.Members {
		fmt.Fprintf(&b, "; member …%s from %s:", m.MemberID[max(0, len(m.MemberID)-6):], m.ClientHost)
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range a.Topics {
				fmt.Fprintf(&b, " %s%v", tp.Topic, tp.Partitions)
			}
		}
	}
	return b.String()
}

// wallClock is the time of day in UTC, to line up test events with the
// pipeline's logs.
func wallClock() string {
	return time.Now().UTC().Format("15:04:05.000")
}

// produce writes records to the input topic, each to the partition it
// names, and waits for every acknowledgement.
func (e *testEnv) produce(ctx context.Context, recs []*kgo.Record) {
	e.t.Helper()
	for _, r := range recs {
		r.Topic = e.cfg.inputTopic
	}
	if err := e.Client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("producing the backlog: %v", err)
	}
}

// process is one run of the pipeline binary.
type process struct {
	*harness.Process
	name     string // procSpec.name
	httpAddr string
	// instanceID is its static group membership (INSTANCE_ID).
	instanceID string
}

// start runs `monasca-connect run pipelines/<cfg.pipeline>` (by default
// monasca-aggregation.yaml) with the test's environment and a fresh HTTP
// port. The process is killed when the test ends.
func (e *testEnv) start() *process {
	e.t.Helper()
	return e.startProc(procSpec{})
}

// procSpec is what one process varies from the test's pipelineConfig, for
// tests that run different pipelines side by side (as the two stages of the
// scale-out pipelines).
type procSpec struct {
	// name tells the process apart in the test's log and names its log
	// file, e.g. "stage1"; "" for none.
	name string
	// pipeline, when not "", is the pipeline file under pipelines/ (or an
	// absolute path) to run instead of cfg.pipeline.
	pipeline string
	// group, when not "", is the consumer group (CONSUMER_GROUP) instead of
	// the test's e.group.
	group string
	// env, when not nil, is the pipeline's own environment instead of
	// cfg.env (see pipelineConfig.env).
	env []string
	// set overrides fields of the pipeline (`run --set path=value`).
	set []string
}

// startProc starts a process as start does, with the given variations.
func (e *testEnv) startProc(spec procSpec) *process {
	e.t.Helper()
	n := len(e.procs) + 1
	logName := fmt.Sprintf("monasca-connect-%d.log", n)
	if spec.name != "" {
		logName = fmt.Sprintf("monasca-connect-%d-%s.log", n, spec.name)
	}
	p := &process{name: spec.name, httpAddr: freeAddr(e.t)}
	pipeline, env, group := e.cfg.pipeline, e.cfg.env, e.group
	if spec.pipeline != "" {
		pipeline = spec.pipeline
	}
	if spec.env != nil {
		env = spec.env
	}
	if spec.group != "" {
		group = spec.group
	}
	if pipeline == "" {
		pipeline = "monasca-aggregation.yaml"
	}
	p.instanceID = e.freeInstanceID(group, spec.name)
	if env == nil {
		env = []string{
			"AGGREGATION_SPECS=" + specsFile,
			"WINDOW_SIZE=" + e.cfg.window.String(),
			"WINDOW_LAG=" + e.cfg.lag.String(),
			"IDLE_TIMEOUT=" + e.cfg.idle.String(),
		}
	}
	args := []string{"run"}
	for _, s := range spec.set {
		args = append(args, "--set", s)
	}
	if e.cfg.outputBrokers != "" {
		args = append(args, "--set", "output.kafka.seed_brokers="+e.cfg.outputBrokers)
	}
	if !filepath.IsAbs(pipeline) {
		pipeline = filepath.Join(repoRoot, "pipelines", pipeline)
	}
	pipelineEnv := harness.PipelineEnv{
		Brokers: e.Brokers, MetricsTopic: e.cfg.inputTopic, AggregatedTopic: e.cfg.outputTopic,
		Group: group, InstanceID: p.instanceID, HTTPAddress: p.httpAddr,
	}
	var err error
	p.Process, err = harness.Start(harness.Command{
		Path: binary,
		Args: append(args, pipeline),
		Dir:  e.logDir,
		Env:  append(pipelineEnv.List(), env...),
		Log:  filepath.Join(e.logDir, logName),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.procs = append(e.procs, p)
	e.t.Logf("%s started monasca-connect #%d%s (pid %d, http %s)", wallClock(), n, p.label(), p.Pid(), p.httpAddr)
	e.t.Cleanup(p.Kill)
	return p
}

// freeInstanceID returns the first instance ID of the role (group and
// name) that no running process has: a restart takes over a dead
// process's identity, as a restarted pod does, and processes running side
// by side have their own.
func (e *testEnv) freeInstanceID(group, name string) string {
	for k := 0; ; k++ {
		id := fmt.Sprintf("%s-%s-%d", group, cmp.Or(name, "main"), k)
		if !slices.ContainsFunc(e.procs, func(p *process) bool { return p.instanceID == id && p.Running() }) {
			return id
		}
	}
}

// label is " (name)" for a named process, "" otherwise.
func (p *process) label() string {
	if p.name == "" {
		return ""
	}
	return " (" + p.name + ")"
}

func (e *testEnv) printLogsOnFailure() {
	if !e.t.Failed() {
		return
	}
	e.groupMu.Lock()
	for _, g := range e.groupOrder {
		e.t.Logf("--- consumer group %s ---\n%s", g, strings.Join(e.groupLogs[g], "\n"))
	}
	e.groupMu.Unlock()
	for i, p := range e.procs {
		e.t.Logf("--- tail of monasca-connect #%d%s log (%s) ---\n%s", i+1, p.label(), p.Log, p.Tail(60))
	}
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// output is one aggregate read from the output topic.
type output struct {
	key       string
	partition int32
	offset    int64
	raw       []byte
	env       outEnvelope
	decodeErr error
}

// outEnvelope is the Monasca envelope of an aggregate. Pointers tell a
// missing or null field from a zero one.
type outEnvelope struct {
	Metric struct {
		Name       *string           `json:"name"`
		Dimensions map[string]string `json:"dimensions"`
		Timestamp  *int64            `json:"timestamp"`
		Value      *float64          `json:"value"`
		ValueMeta  struct {
			RecordCount *int64 `json:"record_count"`
			First       string `json:"firstrecord_timestamp_string"`
			Last        string `json:"lastrecord_timestamp_string"`
		} `json:"value_meta"`
	} `json:"metric"`
	Meta struct {
		TenantID string `json:"tenantId"`
		Region   string `json:"region"`
	} `json:"meta"`
	CreationTime *int64 `json:"creation_time"`
}

// collector reads the output topic from its start until the test ends (or
// it is closed) and keeps every record that is not one of the test's inputs.
type collector struct {
	client *kgo.Client
	close  func() // stops reading; idempotent

	mu   sync.Mutex
	outs []output
	next map[int32]int64 // per partition, the offset after the last record read
}

func (e *testEnv) collect(ctx context.Context) *collector {
	e.t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(e.outBrokers, ",")...),
		kgo.ConsumeTopics(e.cfg.outputTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		e.t.Fatalf("output consumer: %v", err)
	}
	c := &collector{client: cl, next: map[int32]int64{}}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fetches.EachRecord(c.add)
		}
	}()
	var once sync.Once
	c.close = func() {
		once.Do(func() {
			cancel()
			<-done
			cl.Close()
		})
	}
	e.t.Cleanup(c.close)
	return c
}

func (c *collector) add(r *kgo.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next[r.Partition] = r.Offset + 1
	for _, h := range r.Headers {
		if h.Key == inputHeader {
			return
		}
	}
	o := output{key: string(r.Key), partition: r.Partition, offset: r.Offset, raw: r.Value}
	o.decodeErr = json.Unmarshal(r.Value, &o.env)
	c.outs = append(c.outs, o)
}

func (c *collector) outputs() []output {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]output(nil), c.outs...)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.outs)
}

// caughtUp reports whether every record before the given end offsets has
// been read.
func (c *collector) caughtUp(ends kadm.ListedOffsets) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || c.next[o.Partition] < o.Offset {
			ok = false
		}
	})
	return ok
}

// id returns the aggregate an output claims to be, from its body.
func (o *output) id() (aggID, bool) {
	m := o.env.Metric
	if o.decodeErr != nil || m.Name == nil || m.Timestamp == nil {
		return aggID{}, false
	}
	return aggID{seriesID(*m.Name, m.Dimensions, o.env.Meta.TenantID), *m.Timestamp}, true
}

// drained reports whether the pipeline has finished: the consumer group has
// committed every input record (with checkpoints: a checkpoint holds it, so
// it was folded), the running pipelines hold every input partition between
// them, have restored their saved state and hold no open window and no
// input (so every window holding input was emitted and acknowledged), and
// no output waiting to be written, and the collector has read every record
// of the output topic written up to then. Holding the partitions and having
// restored come first: before that the gauges read zero whatever the saved
// state holds.
func (e *testEnv) drained(ctx context.Context, c *collector) (bool, error) {
	committed, err := e.Admin.FetchOffsets(ctx, e.group)
	if err != nil {
		return false, err
	}
	inEnds, err := e.Admin.ListEndOffsets(ctx, e.cfg.inputTopic)
	if err != nil {
		return false, err
	}
	if len(harness.Uncommitted(inEnds, committed)) > 0 {
		return false, nil
	}
	partitions := len(inEnds[e.cfg.inputTopic])
	// With checkpoints, input is committed once a checkpoint holds it,
	// before its windows close: the running pipelines must also hold no
	// open window and no input.
	held := 0.0
	for _, p := range e.procs {
		if !p.Running() {
			continue
		}
		samples, err := harness.Scrape(ctx, p.httpAddr)
		if err != nil {
			return false, err
		}
		gauge := func(name string) float64 { return harness.Sum(samples, name, "")[""] }
		if gauge("monasca_lanes_restoring") > 0 || gauge("monasca_open_series") > 0 ||
			gauge("monasca_held_input_batches") > 0 || gauge("monasca_output_pending_batches") > 0 {
			return false, nil
		}
		held += gauge("kafka_partitions_held")
	}
	if held < float64(partitions) {
		return false, nil
	}
	outEnds, err := e.outAdmin.ListEndOffsets(ctx, e.cfg.outputTopic)
	if err != nil {
		return false, err
	}
	return c.caughtUp(outEnds), nil
}

// waitDrained polls until the pipeline has drained (see drained), or ctx
// ends; it reports which. Once drained, every window holding input has been
// emitted and read, so the outputs are final: missing aggregates will not
// come later.
func (e *testEnv) waitDrained(ctx context.Context, c *collector) bool {
	e.t.Helper()
	var lastErr error
	for {
		ok, err := e.drained(ctx, c)
		if ok {
			return true
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			e.t.Errorf("timed out waiting for the pipeline to commit its input (%d outputs read, last error: %v)", c.count(), lastErr)
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}
