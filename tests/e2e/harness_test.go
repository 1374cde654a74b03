// Package e2e tests the delivery guarantee of the monasca-aggregation
// pipeline end to end: the built monasca-connect binary runs
// pipelines/monasca-aggregation.yaml as a subprocess against an in-process
// Kafka broker (kfake) on loopback, and the aggregates it writes are compared
// with an independent reference model. TestTransformPipelineCaseE runs
// pipelines/monasca-transform.yaml the same way over the monasca-transform
// conformance dataset.
//
// Set MONASCA_CONNECT_BIN to test a prebuilt binary instead of building one.
package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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
	if repoRoot, err = findRepoRoot(); err != nil {
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
		build := exec.Command("go", "build", "-o", binary, "./cmd/monasca-connect")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building monasca-connect: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// findRepoRoot returns the directory of the go.mod that holds this package.
func findRepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
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
	t       *testing.T
	cfg     pipelineConfig
	group   string
	brokers string
	client  *kgo.Client
	admin   *kadm.Client
	logDir  string
	procs   []*process // every process started, in order

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
	topics := []string{cfg.inputTopic}
	if cfg.outputTopic != cfg.inputTopic && cfg.outputBrokers == "" {
		topics = append(topics, cfg.outputTopic)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(4, topics...),
		// No automatic topic creation, as in production: the
		// pipelines create their own window-state (and partials) topics.
	}
	// A later SeedTopics of a topic overrides an earlier one.
	for _, topic := range slices.Sorted(maps.Keys(cfg.partitions)) {
		opts = append(opts, kfake.SeedTopics(cfg.partitions[topic], topic))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	e := &testEnv{
		t:       t,
		cfg:     cfg,
		group:   "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		brokers: strings.Join(cluster.ListenAddrs(), ","),
		logDir:  t.TempDir(),
	}
	for _, a := range cluster.ListenAddrs() {
		if host, _, _ := net.SplitHostPort(a); !net.ParseIP(host).IsLoopback() {
			t.Fatalf("kfake listens on %s, not loopback", a)
		}
	}
	t.Cleanup(e.printLogsOnFailure)
	e.client, err = kgo.NewClient(
		kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(e.client.Close)
	e.admin = kadm.NewClient(e.client)
	e.outBrokers, e.outAdmin = e.brokers, e.admin
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
			if d, err := e.admin.DescribeGroups(ctx, group); err == nil {
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
	if d, err := e.admin.DescribeGroups(ctx, e.group); err == nil {
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
	if err := e.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("producing the backlog: %v", err)
	}
}

// process is one run of the pipeline binary.
type process struct {
	name     string // procSpec.name
	cmd      *exec.Cmd
	httpAddr string
	logPath  string
	// instanceID is its static group membership (INSTANCE_ID).
	instanceID string
	exited     chan struct{}
	waitErr    error // set before exited is closed
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
	p := &process{
		name:     spec.name,
		httpAddr: freeAddr(e.t),
		logPath:  filepath.Join(e.logDir, logName),
		exited:   make(chan struct{}),
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		e.t.Fatal(err)
	}
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
	args = append(args, pipeline)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = e.logDir
	p.cmd.Env = append(os.Environ(),
		"KAFKA_BROKERS="+e.brokers,
		"METRICS_TOPIC="+e.cfg.inputTopic,
		"AGGREGATED_TOPIC="+e.cfg.outputTopic,
		"CONSUMER_GROUP="+group,
		"HTTP_ADDRESS="+p.httpAddr,
		"INSTANCE_ID="+p.instanceID,
	)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		e.t.Fatalf("starting monasca-connect: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	e.procs = append(e.procs, p)
	e.t.Logf("%s started monasca-connect #%d%s (pid %d, http %s)", wallClock(), n, p.label(), p.cmd.Process.Pid, p.httpAddr)
	e.t.Cleanup(func() { p.kill() })
	return p
}

// freeInstanceID returns the first instance ID of the role (group and
// name) that no running process has: a restart takes over a dead
// process's identity, as a restarted pod does, and processes running side
// by side have their own.
func (e *testEnv) freeInstanceID(group, name string) string {
	for k := 0; ; k++ {
		id := fmt.Sprintf("%s-%s-%d", group, cmp.Or(name, "main"), k)
		if !slices.ContainsFunc(e.procs, func(p *process) bool { return p.instanceID == id && p.running() }) {
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

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop sends SIGTERM and waits until the process exits or ctx ends, in which
// case it is killed.
func (p *process) stop(ctx context.Context) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.waitErr
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("did not exit after SIGTERM: %w", ctx.Err())
	}
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
		e.t.Logf("--- tail of monasca-connect #%d%s log (%s) ---\n%s", i+1, p.label(), p.logPath, tail(p.logPath, 60))
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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
// of the output topic written up to then. Holding the partitions and having restored come first: before that
// the gauges read zero whatever the saved state holds.
func (e *testEnv) drained(ctx context.Context, c *collector) (bool, error) {
	committed, err := e.admin.FetchOffsets(ctx, e.group)
	if err != nil {
		return false, err
	}
	inEnds, err := e.admin.ListEndOffsets(ctx, e.cfg.inputTopic)
	if err != nil {
		return false, err
	}
	done, partitions := true, 0
	inEnds.Each(func(o kadm.ListedOffset) {
		partitions++
		got, ok := committed.Lookup(o.Topic, o.Partition)
		if o.Err != nil || !ok || got.Err != nil || got.At < o.Offset {
			done = false
		}
	})
	if !done {
		return false, nil
	}
	// With checkpoints, input is committed once a checkpoint holds it,
	// before its windows close: the running pipelines must also hold no
	// open window and no input.
	held := 0.0
	for _, p := range e.procs {
		if !p.running() {
			continue
		}
		samples, err := scrape(ctx, p.httpAddr)
		if err != nil {
			return false, err
		}
		gauge := func(name string) float64 { return sumSamples(samples, name, "")[""] }
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

// waitUntil polls cond every 10ms until it holds, for at most limit or
// until ctx ends; it reports whether cond held.
func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) bool {
	return poll(ctx, limit, 10*time.Millisecond, cond)
}

// poll checks cond every interval until it holds, for at most limit or
// until ctx ends; it reports whether cond held.
func poll(ctx context.Context, limit, every time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(every):
		}
	}
	return true
}

// promSample is one sample of the Prometheus text exposition format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

var promLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape reads http://addr/metrics.
func scrape(ctx context.Context, addr string) ([]promSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var out []promSample
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s := promSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("bad metrics line %q", line)
			}
			s.name = line[:i]
			for _, m := range promLabel.FindAllStringSubmatch(line[i+1:j], -1) {
				s.labels[m[1]] = m[2]
			}
			rest = line[j+1:]
		} else if i >= 0 {
			s.name, rest = line[:i], line[i:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("bad metrics line %q", line)
		}
		if s.value, err = strconv.ParseFloat(fields[0], 64); err != nil {
			return nil, fmt.Errorf("bad metrics line %q: %w", line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// sumSamples adds up the samples of a metric, grouped by the value of one
// label ("" groups everything under "").
func sumSamples(samples []promSample, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		if s.name == name {
			out[s.labels[label]] += s.value
		}
	}
	return out
}
