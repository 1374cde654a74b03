// Command bench measures monasca-connect end to end on this machine: it
// starts an in-process Kafka broker (kfake) on loopback, loads a backlog of
// Monasca metrics into an 8-partition topic, then runs the built binary with
// pipelines/monasca-aggregation.yaml over it, and the same input into a drop
// output as the read ceiling (an aggregation writes few messages, so reading
// is what bounds it). It prints both and their ratio; its last line is one
// JSON object. The processes' logs are kept in a directory it names.
//
//	go run ./tests/bench                 # 2,000,000 metrics
//	go run ./tests/bench -metrics 500000
//	go run ./tests/bench -stages         # also the two scale-out stages
//	go run ./tests/bench -cpuprofile cpu.out -heapprofile heap.out
//
// With -stages it then runs pipelines/scale-out/stage1.yaml over the same
// backlog, writing to an 8-partition partials topic, and stage2.yaml over
// what stage one wrote: one instance of each, for sizing a scale-out.
//
//	go run ./tests/bench -recovery                 # 60 s of live input per run
//	go run ./tests/bench -recovery -duration 20s -rate 50000
//
// With -recovery it measures instead how long a restart takes to recover a
// 1-hour window: see runRecovery.
//
// The broker has no automatic topic creation, as in production: the bench
// creates the input, output and partials topics as an operator would, and
// the pipelines create their window-state topics themselves.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/monasca-connect/monasca-connect/internal/harness"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

const (
	inputTopic = "metrics"
	partitions = 8
	hosts      = 500
	tenants    = 10
)

var names = []string{"cpu.idle_perc", "cpu.user_perc", "mem.used_mb", "disk.used_space_mb", "net.in_bytes_sec", "load.avg_1_min"}

// specs: 5 specifications over 3 of the 6 names; a metric of those names
// matches 2 of them (net.in_bytes_sec 1).
const specs = `aggregationSpecifications:
  - name: cpu per host
    aggregatedMetricName: cpu.idle_perc.avg
    filteredMetricName: cpu.idle_perc
    groupedDimensions: [ hostname ]
    function: avg
  - name: cpu per cluster
    aggregatedMetricName: cpu.idle_perc.cluster
    filteredMetricName: cpu.idle_perc
    groupedDimensions: [ cluster, hostname ]
    function: avg
    rollup: { function: sum, groupedDimensions: [ cluster ] }
  - name: mem total
    aggregatedMetricName: mem.used_mb.total
    filteredMetricName: mem.used_mb
    function: sum
  - name: mem max per cluster
    aggregatedMetricName: mem.used_mb.max
    filteredMetricName: mem.used_mb
    groupedDimensions: [ cluster ]
    function: max
  - name: net per host
    aggregatedMetricName: net.in.avg
    filteredMetricName: net.in_bytes_sec
    groupedDimensions: [ hostname, service ]
    function: avg
`

// ceiling is the read ceiling: the aggregation pipeline's kafka input, with
// the same fields, into a drop output, which acknowledges every batch at
// once.
const ceiling = `
http:
  address: ${HTTP_ADDRESS}
input:
  kafka:
    seed_brokers: [ "${KAFKA_BROKERS}" ]
    topics: [ "${METRICS_TOPIC}" ]
    consumer_group: ${CONSUMER_GROUP}
    instance_id: ${INSTANCE_ID}
    balancer: single_owner
output:
  drop: {}
shutdown_timeout: 5s
`

// Profiles of the aggregation run, when set: where they go.
var cpuProfile, heapProfile string

type result struct {
	Metrics               int     `json:"metrics"`
	Seconds               float64 `json:"seconds"`
	MetricsPerSec         float64 `json:"metrics_per_sec"`
	CPUSecPerMillion      float64 `json:"cpu_s_per_million"`
	PeakRSSBytes          int64   `json:"peak_rss_bytes"`
	Aggregates            int64   `json:"aggregates"`
	CeilingSeconds        float64 `json:"ceiling_seconds"`
	CeilingMetricsPerSec  float64 `json:"ceiling_metrics_per_sec"`
	CeilingCPUSecPerMilli float64 `json:"ceiling_cpu_s_per_million"`
	CeilingPeakRSSBytes   int64   `json:"ceiling_peak_rss_bytes"`
	Ratio                 float64 `json:"ratio"`
	StartupToReadyMs      float64 `json:"startup_to_ready_ms"`

	// With -stages.
	Stage1MetricsPerSec    float64 `json:"stage1_metrics_per_sec,omitempty"`
	Stage1CPUSecPerMillion float64 `json:"stage1_cpu_s_per_million,omitempty"`
	Stage1PeakRSSBytes     int64   `json:"stage1_peak_rss_bytes,omitempty"`
	PartialsMessages       int64   `json:"partials_messages,omitempty"`
	Stage2MessagesPerSec   float64 `json:"stage2_messages_per_sec,omitempty"`
	Stage2Seconds          float64 `json:"stage2_seconds,omitempty"`
	Stage2CPUSeconds       float64 `json:"stage2_cpu_s,omitempty"`
	Stage2PeakRSSBytes     int64   `json:"stage2_peak_rss_bytes,omitempty"`
	Stage2Aggregates       int64   `json:"stage2_aggregates,omitempty"`
}

func main() {
	n := flag.Int("metrics", 2_000_000, "number of metrics in the backlog")
	window := flag.Duration("window", 10*time.Second, "WINDOW_SIZE of the aggregation")
	bin := flag.String("bin", "", "a prebuilt monasca-connect binary (default: build one)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the aggregation run's first 5 seconds to this file")
	flag.StringVar(&heapProfile, "heapprofile", "", "write a heap profile of the aggregation run, taken near its peak RSS, to this file")
	flag.StringVar(&goMemLimit, "gomemlimit", "", "GOMEMLIMIT of the monasca-connect processes (e.g. 230MiB, as in a container limited to 256 MiB); default: none")
	stages := flag.Bool("stages", false, "also run the two scale-out stages, one instance each")
	recovery := flag.Bool("recovery", false, "measure the recovery of a 1h window after a SIGKILL instead (see runRecovery)")
	var ro recoveryOpts
	flag.DurationVar(&ro.duration, "duration", 60*time.Second, "with -recovery: how long live input runs before the kill")
	flag.IntVar(&ro.rate, "rate", 100_000, "with -recovery: metrics per second produced")
	flag.DurationVar(&ro.catchUp, "catchup-timeout", 90*time.Second, "with -recovery: how long a restarted process may take to catch up")
	flag.Int64Var(&ro.maxRSSMiB, "max-rss", 8192, "with -recovery: MiB of resident memory of a monasca-connect process at which a run phase ends")
	flag.IntVar(&ro.checkpointLimit, "checkpoint-limit", 0, "with -recovery: input.kafka.checkpoint_limit; 0: the pipeline's")
	flag.Parse()
	var err error
	if *recovery {
		err = runRecovery(*bin, ro)
	} else {
		err = run(*n, *window, *bin, *stages)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// bench is what the runs share.
type bench struct {
	bin, root, specsPath string
	logs                 string         // the directory of the processes' logs, kept
	kafka                *harness.Kafka // the run's cluster
}

// setUp builds the binary into a work directory (unless bin names one),
// writes the specifications there and makes a directory for the processes'
// logs, which is kept. cleanUp deletes the work directory.
func setUp(bin string) (b bench, cleanUp func(), err error) {
	if b.root, err = harness.RepoRoot(); err != nil {
		return b, nil, err
	}
	work, err := os.MkdirTemp("", "monasca-connect-bench-")
	if err != nil {
		return b, nil, err
	}
	cleanUp = func() { os.RemoveAll(work) }
	b.specsPath = filepath.Join(work, "specs.yaml")
	if err = os.WriteFile(b.specsPath, []byte(specs), 0o600); err == nil {
		if b.bin, err = buildBinary(b.root, work, bin); err == nil {
			b.logs, err = os.MkdirTemp("", "monasca-connect-bench-logs-")
		}
	}
	if err != nil {
		cleanUp()
		return b, nil, err
	}
	fmt.Fprintln(os.Stderr, "process logs in", b.logs)
	return b, cleanUp, nil
}

func run(n int, window time.Duration, bin string, stages bool) error {
	b, cleanUp, err := setUp(bin)
	if err != nil {
		return err
	}
	defer cleanUp()
	ceilingPath := filepath.Join(filepath.Dir(b.specsPath), "ceiling.yaml")
	if err := os.WriteFile(ceilingPath, []byte(ceiling), 0o600); err != nil {
		return err
	}

	b.kafka, err = harness.StartKafka(map[string]int32{inputTopic: partitions, "aggregated": partitions, "partials": partitions, "aggregated-stage2": partitions})
	if err != nil {
		return err
	}
	defer b.kafka.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	fmt.Fprintf(os.Stderr, "loading %d metrics into %d partitions ...\n", n, partitions)
	if err := load(ctx, b.kafka.Brokers, n, window); err != nil {
		return err
	}

	var res result
	res.Metrics = n
	fmt.Fprintln(os.Stderr, "aggregation run ...")
	agg, err := b.measure(ctx, runSpec{group: "aggregation", config: filepath.Join(b.root, "pipelines", "monasca-aggregation.yaml"),
		in: inputTopic, out: "aggregated", profile: true,
		env: []string{"AGGREGATION_SPECS=" + b.specsPath, "WINDOW_SIZE=" + window.String(), "WINDOW_LAG=2s", "IDLE_TIMEOUT=30s"}})
	if err != nil {
		return fmt.Errorf("aggregation run: %w", err)
	}
	fmt.Fprintln(os.Stderr, "read ceiling run (drop output) ...")
	top, err := b.measure(ctx, runSpec{group: "ceiling", config: ceilingPath, in: inputTopic})
	if err != nil {
		return fmt.Errorf("ceiling run: %w", err)
	}
	res.Seconds, res.CPUSecPerMillion, res.PeakRSSBytes, res.Aggregates = agg.seconds, agg.cpu/float64(n)*1e6, agg.peakRSS, agg.produced
	res.MetricsPerSec = float64(n) / agg.seconds
	res.CeilingSeconds, res.CeilingCPUSecPerMilli, res.CeilingPeakRSSBytes = top.seconds, top.cpu/float64(n)*1e6, top.peakRSS
	res.CeilingMetricsPerSec = float64(n) / top.seconds
	res.Ratio = res.MetricsPerSec / res.CeilingMetricsPerSec
	res.StartupToReadyMs = float64(agg.ready.Microseconds()) / 1000

	fmt.Printf("aggregation:  %d metrics in %.2f s = %.0f metrics/s, %.2f CPU-s per million, peak RSS %.0f MiB, %d aggregates, %.0f late, ready in %.0f ms\n",
		n, res.Seconds, res.MetricsPerSec, res.CPUSecPerMillion, float64(res.PeakRSSBytes)/(1<<20), res.Aggregates, agg.late, res.StartupToReadyMs)
	fmt.Printf("read ceiling: %d metrics in %.2f s = %.0f metrics/s, %.2f CPU-s per million, peak RSS %.0f MiB (kafka input, drop output)\n",
		n, res.CeilingSeconds, res.CeilingMetricsPerSec, res.CeilingCPUSecPerMilli, float64(res.CeilingPeakRSSBytes)/(1<<20))
	fmt.Printf("ratio (aggregation / read ceiling): %.2f\n", res.Ratio)
	if stages {
		if err := b.runStages(ctx, &res, window); err != nil {
			return err
		}
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	return nil
}

// buildBinary builds monasca-connect into work unless bin names one.
func buildBinary(root, work, bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(work, "monasca-connect")
	fmt.Fprintln(os.Stderr, "building monasca-connect ...")
	return bin, harness.Build(root, bin)
}

// runStages runs stage one over the backlog, then stage two over the
// partials stage one wrote.
func (b bench) runStages(ctx context.Context, res *result, window time.Duration) error {
	specEnv := []string{"AGGREGATION_SPECS=" + b.specsPath, "WINDOW_SIZE=" + window.String(), "WINDOW_LAG=2s", "PARTIALS_TOPIC=partials"}
	fmt.Fprintln(os.Stderr, "scale-out stage one ...")
	// Stage one reports progress once a second: give it time to report the
	// last windows after its input is committed.
	one, err := b.measure(ctx, runSpec{group: "stage1", config: filepath.Join(b.root, "pipelines", "scale-out", "stage1.yaml"),
		in: inputTopic, out: "partials", linger: 3 * time.Second, env: append(specEnv, "IDLE_TIMEOUT=30s")})
	if err != nil {
		return fmt.Errorf("stage one: %w", err)
	}
	fmt.Fprintln(os.Stderr, "scale-out stage two ...")
	// Stage two closes no window until 5 s after it first hears of a stage
	// one partition (partition_discovery), a start-up delay, not a rate:
	// shortened, as stage one reported all of them at once.
	two, err := b.measure(ctx, runSpec{group: "stage2", config: filepath.Join(b.root, "pipelines", "scale-out", "stage2.yaml"),
		in: "partials", out: "aggregated-stage2", args: []string{"--set", "buffer.monasca_aggregate.partition_discovery=1s"},
		env: append(specEnv, "IDLE_TIMEOUT=60s")})
	if err != nil {
		return fmt.Errorf("stage two: %w", err)
	}
	res.Stage1MetricsPerSec = float64(res.Metrics) / one.seconds
	res.Stage1CPUSecPerMillion = one.cpu / float64(res.Metrics) * 1e6
	res.Stage1PeakRSSBytes, res.PartialsMessages = one.peakRSS, one.produced
	res.Stage2Seconds, res.Stage2CPUSeconds, res.Stage2PeakRSSBytes, res.Stage2Aggregates = two.seconds, two.cpu, two.peakRSS, two.produced
	res.Stage2MessagesPerSec = float64(one.produced) / two.seconds
	fmt.Printf("stage one:    %d metrics = %.0f metrics/s, %.2f CPU-s per million, peak RSS %.0f MiB, %d partials messages\n",
		res.Metrics, res.Stage1MetricsPerSec, res.Stage1CPUSecPerMillion, float64(one.peakRSS)/(1<<20), one.produced)
	fmt.Printf("stage two:    %d partials messages in %.2f s = %.0f messages/s, %.2f CPU-s, peak RSS %.0f MiB, %d aggregates (single instance: %d)\n",
		one.produced, two.seconds, res.Stage2MessagesPerSec, two.cpu, float64(two.peakRSS)/(1<<20), two.produced, res.Aggregates)
	return nil
}

// load produces the backlog: for each second of event time one metric per
// name and host, hosts spread over tenants and clusters, the whole set ending
// a minute ago. A last metric per partition, stamped a window and lag past
// the backlog and matching no spec, moves every partition's watermark past
// the last window, as live traffic would, so the run ends without waiting
// for the idle timeout.
func load(ctx context.Context, brokers string, n int, window time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000),
		// The Monasca API's producer does not compress.
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer cl.Close()
	perSecond := len(names) * hosts
	seconds := (n + perSecond - 1) / perSecond
	start := time.Now().Add(-time.Minute - time.Duration(seconds)*time.Second).Truncate(time.Second).UnixMilli()
	var produceErr error
	done := func(_ *kgo.Record, err error) {
		if err != nil && produceErr == nil {
			produceErr = err
		}
	}
	buf := make([]byte, 0, 512)
	for i := 0; i < n; i++ {
		buf = appendMetric(buf[:0], i, start+int64(i/perSecond)*1000)
		cl.Produce(ctx, &kgo.Record{Topic: inputTopic, Value: append([]byte(nil), buf...)}, done)
	}
	end := start + int64(seconds)*1000 + window.Milliseconds() + 3000
	for p := int32(0); p < partitions; p++ {
		v := fmt.Appendf(nil, `{"metric":{"name":"bench.watermark","dimensions":{},"timestamp":%d,"value":0},"meta":{"tenantId":"bench","region":"useast"},"creation_time":%d}`, end, end/1000)
		cl.Produce(ctx, &kgo.Record{Topic: inputTopic, Partition: p, Value: v}, done)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return produceErr
}

// appendMetric appends the i-th metric of the generator, stamped ts (epoch
// milliseconds): the names in turn, then the hosts, each host of one
// tenant and one of 4 clusters.
func appendMetric(buf []byte, i int, ts int64) []byte {
	host := i / len(names) % hosts
	return fmt.Appendf(buf,
		`{"metric":{"name":%q,"dimensions":{"hostname":"compute-%03d","service":"compute","component":"monasca-agent","cluster":"cluster-%d"},"timestamp":%d,"value":%d.5,"value_meta":{}},"meta":{"tenantId":"%032x","region":"useast"},"creation_time":%d}`,
		names[i%len(names)], host, host%4, ts, i%100, host%tenants, ts/1000)
}

type measurement struct {
	seconds  float64       // from the first message consumed to the last output written (drop: the last input read)
	ready    time.Duration // from process start to /ready answering 200
	cpu      float64       // user+system CPU seconds of the process
	peakRSS  int64
	produced int64
	late     float64 // monasca_metrics_late_total: a backlog has none
}

// runSpec is one measured run.
type runSpec struct {
	group   string // the consumer group, the instance ID and the log's name
	config  string
	in, out string        // the input topic, the output topic ("": a drop output)
	linger  time.Duration // how long after the end the output is counted again
	profile bool          // the run of -cpuprofile and -heapprofile
	args    []string      // more arguments of run, before the config
	env     []string
}

// pipelineEnv is what the shipped pipelines read from the environment,
// besides their specifications: the group is also the instance ID.
func (b bench) pipelineEnv(in, out, group, addr string) []string {
	return harness.PipelineEnv{Brokers: b.kafka.Brokers, MetricsTopic: in, AggregatedTopic: out,
		Group: group, InstanceID: group, HTTPAddress: addr}.List()
}

// start starts monasca-connect with args and env, its log named name in
// the log directory.
func (b bench) start(name string, args, env []string) (*harness.Process, error) {
	if goMemLimit != "" {
		env = append(env, "GOMEMLIMIT="+goMemLimit)
	}
	return harness.Start(harness.Command{Path: b.bin, Args: args, Dir: b.root, Env: env, Log: filepath.Join(b.logs, name)})
}

// waitReady waits until the process serving on addr answers /ready with
// 200 and returns how long after its start that was.
func waitReady(ctx context.Context, p *harness.Process, addr string) (time.Duration, error) {
	for harness.ReadyStatus(ctx, addr) != http.StatusOK {
		if err := p.Sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return time.Since(p.Started), nil
}

// rss is the resident set size of a process, 0 if unknown.
func rss(pid int) int64 {
	n, _, _ := harness.Memory(pid)
	return n
}

// processStats returns the CPU seconds and the peak resident set of a
// process.
func processStats(pid int) (cpu float64, peakRSS int64, err error) {
	if cpu, err = harness.CPUSeconds(pid); err != nil {
		return 0, 0, err
	}
	_, peakRSS, err = harness.Memory(pid)
	return cpu, peakRSS, err
}

// measure runs one pipeline over the backlog until its consumer group has
// committed every input offset and, with an aggregation, it has closed
// every window and its output holds all it emitted: input is acknowledged
// once a checkpoint holds it, so it can be committed before the last
// windows are written. The time measured ends with the run's last effect:
// its last output write, or with a drop output the last input read
// (acknowledged at once), which the 1 s commit period would otherwise round
// up.
func (b bench) measure(ctx context.Context, r runSpec) (measurement, error) {
	var m measurement
	addr, err := harness.FreeAddr()
	if err != nil {
		return m, err
	}
	profile := r.profile && (cpuProfile != "" || heapProfile != "")
	args := append([]string{"run"}, r.args...)
	if profile {
		args = append(args, "--set", "http.debug_endpoints=true")
	}
	p, err := b.start(r.group+".log", append(args, r.config), append(b.pipelineEnv(r.in, r.out, r.group, addr), r.env...))
	if err != nil {
		return m, err
	}
	defer p.Kill()
	if m.ready, err = waitReady(ctx, p, addr); err != nil {
		return m, err
	}
	admin := b.kafka.Admin
	ends, err := admin.ListEndOffsets(ctx, r.in)
	if err != nil {
		return m, err
	}
	var first time.Time
	for first.IsZero() {
		if err := p.Sleep(ctx, 2*time.Millisecond); err != nil {
			return m, err
		}
		if n, _ := harness.ScrapeSum(ctx, addr, "input_received"); n > 0 {
			first = time.Now()
		}
	}
	if profile && cpuProfile != "" {
		// The process runs until the profile is complete.
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			if err := fetchProfile(addr, "profile?seconds=5", cpuProfile); err != nil {
				fmt.Fprintln(os.Stderr, "CPU profile:", err)
			}
		}()
	}

	total, last := float64(harness.SumOffsets(ends)), first
	var read float64
	var heapAt int64 // the RSS at the last heap profile
	for {
		if err := p.Sleep(ctx, 5*time.Millisecond); err != nil {
			return m, err
		}
		if r.out != "" {
			if produced := outputCount(ctx, admin, r.out); produced != m.produced {
				m.produced, last = produced, time.Now()
			}
		} else if read < total {
			if read, _ = harness.ScrapeSum(ctx, addr, "input_received"); read >= total {
				last = time.Now()
			}
		}
		// A heap profile near the peak: taken again each time the RSS
		// has grown by a quarter since the last.
		if profile && heapProfile != "" {
			if now := rss(p.Pid()); now > heapAt+heapAt/4 {
				heapAt = now
				if err := fetchProfile(addr, "heap", heapProfile); err != nil {
					fmt.Fprintln(os.Stderr, "heap profile:", err)
				}
			}
		}
		committed, err := admin.FetchOffsets(ctx, r.group)
		if err == nil && len(harness.Uncommitted(ends, committed)) == 0 && (r.out == "" || flushed(ctx, addr, m.produced)) {
			break
		}
	}
	m.seconds = last.Sub(first).Seconds()
	if r.out != "" {
		m.late, _ = harness.ScrapeSum(ctx, addr, "monasca_metrics_late_total")
	}
	m.cpu, m.peakRSS, err = processStats(p.Pid())
	if r.linger > 0 {
		time.Sleep(r.linger)
		m.produced = outputCount(ctx, admin, r.out)
	}
	return m, err
}

// fetchProfile saves a profile of the process's /debug/pprof/ (which
// http.debug_endpoints serves).
func fetchProfile(addr, profile, path string) error {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + profile)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/debug/pprof/%s: %s", profile, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err = f.ReadFrom(resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func outputCount(ctx context.Context, admin *kadm.Client, topic string) int64 {
	ends, err := admin.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0
	}
	return harness.SumOffsets(ends)
}

// flushed reports whether an aggregation has no open window and its output
// topic holds (produced) every aggregate it emitted.
func flushed(ctx context.Context, addr string, produced int64) bool {
	samples, err := harness.Scrape(ctx, addr)
	if err != nil || harness.Sum(samples, "monasca_open_series", "")[""] > 0 {
		return false
	}
	return float64(produced) >= harness.Sum(samples, "monasca_aggregates_emitted_total", "")[""]
}

// recoveryWindow is the window whose recovery -recovery measures.
const recoveryWindow = time.Hour

type recoveryOpts struct {
	duration        time.Duration // live input before the kill
	rate            int           // metrics per second produced
	catchUp         time.Duration // the longest a restart may take to catch up
	checkpointLimit int           // 0: the pipeline's
	maxRSSMiB       int64         // a phase ends when the process is this large
}

// recoveryResult is one -recovery run: one CHECKPOINT_INTERVAL.
type recoveryResult struct {
	CheckpointInterval string `json:"checkpoint_interval"`
	CheckpointLimit    int    `json:"checkpoint_limit,omitempty"` // when not the pipeline's

	// Before the kill. The input rate is what the broker acknowledged.
	InputSeconds       float64 `json:"input_seconds"`
	ProducedBeforeKill int64   `json:"produced_before_kill"`
	InputPerSec        float64 `json:"input_metrics_per_sec"`
	SteadyLag          int64   `json:"steady_lag"` // largest consumer lag (records) in the 10 s before the kill
	OpenSeries         int64   `json:"open_series_at_kill"`
	PeakRSSBytes       int64   `json:"peak_rss_bytes"`
	CrossedWindow      bool    `json:"crossed_window_boundary,omitempty"`
	InputCutAtMaxRSS   bool    `json:"input_cut_at_max_rss,omitempty"` // killed before -duration: -max-rss reached

	// The restart, all times from the restarted process's start.
	BehindAtRestart      int64   `json:"behind_at_restart"` // input before the kill not committed: read again
	ReadyMs              float64 `json:"restart_ready_ms"`
	FirstInputMs         float64 `json:"restart_first_input_ms"`
	CaughtUpMs           float64 `json:"restart_caught_up_ms"`            // -1: not within -catchup-timeout or -max-rss
	KillPointCommittedMs float64 `json:"restart_kill_point_committed_ms"` // -1: not within it
	CaughtUpThreshold    int64   `json:"caught_up_threshold"`
	LagAtEnd             int64   `json:"lag_at_end"`
	ReadToCatchUp        int64   `json:"input_read_to_catch_up"`
	Received             int64   `json:"restart_metrics_received"` // monasca_metrics_received_total
	Replayed             int64   `json:"restart_metrics_replayed"` // monasca_metrics_replayed_total
	RestartCPUSeconds    float64 `json:"restart_cpu_s"`
	RestartPeakRSSBytes  int64   `json:"restart_peak_rss_bytes"`
	CheckpointBytes      int64   `json:"checkpoint_bytes"`
	CheckpointSeries     int64   `json:"checkpoint_open_series"`
	Restored             string  `json:"restored"` // the restarted process's log line about the saved state
	InputPerSecAfter     float64 `json:"input_metrics_per_sec_after_restart"`
	RestartWatchedSec    float64 `json:"restart_watched_s"`
	RestartCutAtMaxRSS   bool    `json:"restart_cut_at_max_rss,omitempty"` // watching ended at -max-rss

	// From the window-state topic as it was at the kill: the manifest's
	// size, and the input the checkpoint holds beyond the committed offsets,
	// which the restart should skip (monasca_metrics_replayed_total), and
	// the input before the kill after the checkpoint, which it folds again.
	ManifestBytes     int64 `json:"manifest_bytes,omitempty"`
	ExpectSkipped     int64 `json:"expected_skipped"`
	ExpectRefolded    int64 `json:"expected_refolded"`
	CheckpointsBefore int   `json:"checkpoints_before_kill,omitempty"`
}

// runRecovery measures what a SIGKILL costs a 1-hour window at a steady
// input rate, once with CHECKPOINT_INTERVAL=5s (the pipelines' default) and
// once with 1s. Each run has its own broker, topics and group:
// monasca-aggregation.yaml with WINDOW_SIZE=1h and IDLE_TIMEOUT=10m (no
// window closes) reads live input stamped now for -duration, is killed,
// restarted with the same environment while the input goes on, and watched
// until it has caught up. Nothing is extrapolated: the figures are those of
// a window open for -duration.
func runRecovery(bin string, o recoveryOpts) error {
	if o.rate <= 0 || o.duration <= 0 || o.catchUp <= 0 || o.maxRSSMiB <= 0 {
		return errors.New("-rate, -duration, -catchup-timeout and -max-rss must be positive")
	}
	b, cleanUp, err := setUp(bin)
	if err != nil {
		return err
	}
	defer cleanUp()
	// Two runs of input, catch-up and start-up each.
	ctx, cancel := context.WithTimeout(context.Background(), 2*(o.duration+o.catchUp+time.Minute))
	defer cancel()

	began := time.Now()
	defer func() { fmt.Fprintf(os.Stderr, "recovery runs took %.0f s\n", time.Since(began).Seconds()) }()
	var results []recoveryResult
	for _, interval := range []time.Duration{5 * time.Second, time.Second} {
		fmt.Fprintf(os.Stderr, "recovery run, CHECKPOINT_INTERVAL=%s ...\n", interval)
		r, err := b.recoveryRun(ctx, o, interval)
		if err != nil {
			return fmt.Errorf("recovery run, CHECKPOINT_INTERVAL=%s: %w", interval, err)
		}
		results = append(results, r)
	}
	for _, r := range results {
		printRecovery(r, o)
	}
	line, _ := json.Marshal(struct {
		Window      string           `json:"window"`
		TargetRate  int              `json:"target_metrics_per_sec"`
		DurationSec float64          `json:"duration_s"`
		Runs        []recoveryResult `json:"recovery"`
	}{recoveryWindow.String(), o.rate, o.duration.Seconds(), results})
	fmt.Println(string(line))
	return nil
}

func printRecovery(r recoveryResult, o recoveryOpts) {
	ms := func(v float64) string {
		if v < 0 {
			return fmt.Sprintf("not within %s", o.catchUp)
		}
		return fmt.Sprintf("%.1f s", v/1000)
	}
	limit := "the pipeline's checkpoint_limit"
	if r.CheckpointLimit > 0 {
		limit = fmt.Sprintf("checkpoint_limit %d", r.CheckpointLimit)
	}
	fmt.Printf("CHECKPOINT_INTERVAL=%s (%s): %.0f s of input at %.0f metrics/s (target %d): %d metrics, %d open series, steady lag <= %d, peak RSS %.0f MiB\n",
		r.CheckpointInterval, limit, r.InputSeconds, r.InputPerSec, o.rate, r.ProducedBeforeKill, r.OpenSeries, r.SteadyLag, float64(r.PeakRSSBytes)/(1<<20))
	if r.CrossedWindow {
		fmt.Printf("  note: the input crossed a 1h window boundary, so a window closed during the run\n")
	}
	if r.InputCutAtMaxRSS {
		fmt.Printf("  note: killed before -duration: the process reached -max-rss %d MiB\n", o.maxRSSMiB)
	}
	if r.RestartCutAtMaxRSS {
		ms = func(v float64) string {
			if v < 0 {
				return fmt.Sprintf("not before -max-rss %d MiB (%.0f s)", o.maxRSSMiB, r.RestartWatchedSec)
			}
			return fmt.Sprintf("%.1f s", v/1000)
		}
	}
	fmt.Printf("  SIGKILL, restart: %d metrics behind the committed offsets; ready %s, first input %s, caught up (lag <= %d) %s, input of the kill committed %s\n",
		r.BehindAtRestart, ms(r.ReadyMs), ms(r.FirstInputMs), r.CaughtUpThreshold, ms(r.CaughtUpMs), ms(r.KillPointCommittedMs))
	read := "-"
	if r.CaughtUpMs >= 0 {
		read = strconv.FormatInt(r.ReadToCatchUp, 10)
	}
	fmt.Printf("  restarted process after %.0f s: read %s to catch up, monasca_metrics_received_total %d, monasca_metrics_replayed_total %d, %.1f CPU-s, peak RSS %.0f MiB, lag at end %d, input %.0f metrics/s meanwhile\n",
		r.RestartWatchedSec, read, r.Received, r.Replayed, r.RestartCPUSeconds, float64(r.RestartPeakRSSBytes)/(1<<20), r.LagAtEnd, r.InputPerSecAfter)
	fmt.Printf("  restored: %s\n", r.Restored)
	if r.ManifestBytes > 0 {
		fmt.Printf("  window-state topic at the kill: %d checkpoints, the last %d bytes; it holds %d metrics past the committed offsets (to skip: monasca_metrics_replayed_total %d), %d metrics before the kill came after it (folded again)\n",
			r.CheckpointsBefore, r.ManifestBytes, r.ExpectSkipped, r.Replayed, r.ExpectRefolded)
	} else {
		fmt.Printf("  no checkpoint: all %d metrics before the kill from the committed offsets on are folded again\n", r.ExpectRefolded)
	}
}

// restoredLine matches the buffer's log lines about the state it restored.
var (
	restoredLine    = regexp.MustCompile(`(Restored the checkpoint|No saved window state)(\\"|[^"\n])*`)
	restoredNumbers = regexp.MustCompile(`\((\d+) bytes, (\d+) open series, (\d+) partitions\)`)
)

func (b bench) recoveryRun(ctx context.Context, o recoveryOpts, interval time.Duration) (recoveryResult, error) {
	r := recoveryResult{CheckpointInterval: interval.String(), CaughtUpMs: -1, KillPointCommittedMs: -1, ReadyMs: -1, FirstInputMs: -1}
	// A broker of its own: the input is dropped with it.
	topic, group := "metrics-"+r.CheckpointInterval, "recovery-"+r.CheckpointInterval
	var err error
	b.kafka, err = harness.StartKafka(map[string]int32{topic: partitions, "aggregated": partitions})
	if err != nil {
		return r, err
	}
	defer b.kafka.Close()
	admin := b.kafka.Admin

	addr, err := harness.FreeAddr()
	if err != nil {
		return r, err
	}
	// The restart has the same environment, so the same static member ID.
	env := append(b.pipelineEnv(topic, "aggregated", group, addr), "AGGREGATION_SPECS="+b.specsPath,
		"WINDOW_SIZE="+recoveryWindow.String(), "WINDOW_LAG=2s", "IDLE_TIMEOUT=10m", "CHECKPOINT_INTERVAL="+r.CheckpointInterval)
	args := []string{"run"}
	if limit := o.checkpointLimit; limit > 0 {
		r.CheckpointLimit = limit
		args = append(args, "--set", fmt.Sprintf("input.kafka.checkpoint_limit=%d", limit))
	}
	args = append(args, filepath.Join(b.root, "pipelines", "monasca-aggregation.yaml"))

	first, err := b.start(group+"-1.log", args, env)
	if err != nil {
		return r, err
	}
	defer first.Kill()
	if _, err := waitReady(ctx, first, addr); err != nil {
		return r, err
	}

	prod, err := startProducer(ctx, b.kafka.Cluster.ListenAddrs(), topic, o.rate)
	if err != nil {
		return r, err
	}
	defer prod.stop()

	// Live input for o.duration. The first process starts from offset 0 of a
	// fresh topic, so input_received is its position in the topic.
	type sample struct {
		at  time.Time
		lag int64
	}
	var recent []sample
	killAt := prod.started.Add(o.duration)
	nextReport := prod.started.Add(10 * time.Second)
	for time.Now().Before(killAt) {
		if err := first.Sleep(ctx, 200*time.Millisecond); err != nil {
			return r, err
		}
		if rss(first.Pid()) > o.maxRSSMiB<<20 {
			r.InputCutAtMaxRSS = true
			break
		}
		received, err := harness.ScrapeSum(ctx, addr, "input_received")
		if err != nil {
			continue
		}
		ends, err := admin.ListEndOffsets(ctx, topic)
		if err != nil {
			continue
		}
		now := time.Now()
		recent = append(recent, sample{now, harness.SumOffsets(ends) - int64(received)})
		for len(recent) > 0 && now.Sub(recent[0].at) > 10*time.Second {
			recent = recent[1:]
		}
		if now.After(nextReport) {
			nextReport = nextReport.Add(10 * time.Second)
			produced := harness.SumOffsets(ends)
			fmt.Fprintf(os.Stderr, "  %3.0f s: %d produced (%.0f/s), lag %d, RSS %.0f MiB\n", now.Sub(prod.started).Seconds(),
				produced, float64(produced)/now.Sub(prod.started).Seconds(), produced-int64(received), float64(rss(first.Pid()))/(1<<20))
		}
	}
	for _, s := range recent {
		r.SteadyLag = max(r.SteadyLag, s.lag)
	}
	if n, err := harness.ScrapeSum(ctx, addr, "monasca_open_series"); err == nil {
		r.OpenSeries = int64(n)
	}
	_, r.PeakRSSBytes, _ = harness.Memory(first.Pid())
	killEnds, err := admin.ListEndOffsets(ctx, topic)
	if err != nil {
		return r, err
	}

	// The kill, and a restart with the same environment at once.
	killed := time.Now()
	first.Kill()
	r.InputSeconds = killed.Sub(prod.started).Seconds()
	r.ProducedBeforeKill = harness.SumOffsets(killEnds)
	r.InputPerSec = float64(r.ProducedBeforeKill) / r.InputSeconds
	r.CrossedWindow = prod.started.Truncate(recoveryWindow) != killed.Truncate(recoveryWindow)
	// Nothing commits for the group while no process runs: the restarted
	// process resumes from these offsets (or offset 0 where none is).
	committed, err := admin.FetchOffsets(ctx, group)
	if err != nil {
		return r, err
	}
	var resumeAt int64
	committed.Each(func(c kadm.OffsetResponse) {
		if c.Topic == topic && c.At > 0 {
			resumeAt += c.At
		}
	})
	r.BehindAtRestart = r.ProducedBeforeKill - resumeAt
	producedAtRestart := prod.acked()
	stateTopic := group + "-window-state"
	stateEnds, stateErr := admin.ListEndOffsets(ctx, stateTopic)

	second, err := b.start(group+"-2.log", args, env)
	if err != nil {
		return r, err
	}
	defer second.Kill()

	// Caught up: the restarted consumer resumes at the committed offsets
	// (resumeAt in all) and input_received counts every record it has read
	// since, so resumeAt + input_received is its position in the topic, and
	// the end offsets minus that is its lag. The committed offsets alone
	// cannot tell: they trail by a checkpoint interval and a commit period.
	// The lag is back to normal once it is within one second of input or
	// the largest lag of the 10 s before the kill, whichever is larger.
	// Separately, the time until the committed
	// offsets reach the end offsets of the kill: until a checkpoint of the
	// restarted process holds everything the killed one had been sent.
	r.CaughtUpThreshold = max(int64(o.rate), r.SteadyLag)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	deadline := second.Started.Add(o.catchUp)
	var lastCommitCheck time.Time
	nextReport = second.Started.Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := second.Sleep(ctx, 20*time.Millisecond); err != nil {
			return r, err
		}
		if rss(second.Pid()) > o.maxRSSMiB<<20 {
			r.RestartCutAtMaxRSS = true
			break
		}
		if r.ReadyMs < 0 && harness.ReadyStatus(ctx, addr) == http.StatusOK {
			r.ReadyMs = ms(time.Since(second.Started))
		}
		received, err := harness.ScrapeSum(ctx, addr, "input_received")
		if err != nil {
			continue
		}
		if received > 0 && r.FirstInputMs < 0 {
			r.FirstInputMs = ms(time.Since(second.Started))
		}
		ends, err := admin.ListEndOffsets(ctx, topic)
		if err != nil {
			continue
		}
		r.LagAtEnd = harness.SumOffsets(ends) - resumeAt - int64(received)
		if time.Now().After(nextReport) {
			nextReport = nextReport.Add(10 * time.Second)
			fmt.Fprintf(os.Stderr, "  restart + %2.0f s: read %d, lag %d, RSS %.0f MiB\n", time.Since(second.Started).Seconds(),
				int64(received), r.LagAtEnd, float64(rss(second.Pid()))/(1<<20))
		}
		if r.CaughtUpMs < 0 && received > 0 && r.LagAtEnd <= r.CaughtUpThreshold {
			r.CaughtUpMs = ms(time.Since(second.Started))
			r.ReadToCatchUp = int64(received)
		}
		if r.KillPointCommittedMs < 0 && time.Since(lastCommitCheck) > 200*time.Millisecond {
			lastCommitCheck = time.Now()
			if c, err := admin.FetchOffsets(ctx, group); err == nil && len(harness.Uncommitted(killEnds, c)) == 0 {
				r.KillPointCommittedMs = ms(time.Since(second.Started))
			}
		}
		if r.CaughtUpMs >= 0 && r.KillPointCommittedMs >= 0 {
			break
		}
	}
	if n, err := harness.ScrapeSum(ctx, addr, "monasca_metrics_received_total"); err == nil {
		r.Received = int64(n)
	}
	if n, err := harness.ScrapeSum(ctx, addr, "monasca_metrics_replayed_total"); err == nil {
		r.Replayed = int64(n)
	}
	r.RestartCPUSeconds, r.RestartPeakRSSBytes, _ = processStats(second.Pid())
	r.RestartWatchedSec = time.Since(second.Started).Seconds()
	r.InputPerSecAfter = float64(prod.acked()-producedAtRestart) / r.RestartWatchedSec
	second.Kill()
	if err := prod.stop(); err != nil {
		return r, fmt.Errorf("producing: %w", err)
	}

	// The checkpoint the restart found: read after the measurement, up to
	// where the topic ended at the kill.
	if stateErr != nil {
		return r, fmt.Errorf("listing %s: %w", stateTopic, stateErr)
	}
	saved, _, err := b.kafka.ReadCheckpoint(ctx, stateTopic, group, stateEnds)
	if err != nil {
		return r, fmt.Errorf("reading the checkpoint: %w", err)
	}
	r.CheckpointsBefore, r.ManifestBytes = saved.Manifests, int64(saved.Bytes)
	killEnds.Each(func(e kadm.ListedOffset) {
		var from int64
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.At > 0 {
			from = c.At
		}
		held := from // the first offset the checkpoint does not hold
		if a, ok := saved.Positions[windowagg.Source{Stream: e.Topic, Partition: e.Partition}]; ok {
			held = max(held, a+1)
		}
		r.ExpectSkipped += held - from
		r.ExpectRefolded += e.Offset - held
	})

	log, _ := os.ReadFile(second.Log)
	if m := restoredLine.Find(log); m != nil {
		r.Restored = strings.TrimRight(strings.ReplaceAll(string(m), `\`, ""), " ")
		if n := restoredNumbers.FindStringSubmatch(r.Restored); n != nil {
			r.CheckpointBytes, _ = strconv.ParseInt(n[1], 10, 64)
			r.CheckpointSeries, _ = strconv.ParseInt(n[2], 10, 64)
		}
	}
	return r, nil
}

// goMemLimit is the -gomemlimit flag.
var goMemLimit string

// producer produces the generator's metrics, stamped now, at a steady rate
// until its context ends. It keeps nothing it produced.
type producer struct {
	cl      *kgo.Client
	cancel  context.CancelFunc
	started time.Time
	done    chan struct{}
	closed  sync.Once
	ok      atomic.Int64
	err     atomic.Pointer[error]
}

func startProducer(ctx context.Context, brokers []string, topic string, rate int) (*producer, error) {
	ctx, cancel := context.WithCancel(ctx)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(rate/5+1),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		cancel()
		return nil, err
	}
	p := &producer{cl: cl, cancel: cancel, started: time.Now(), done: make(chan struct{})}
	record := func(_ *kgo.Record, err error) {
		if err == nil {
			p.ok.Add(1)
		} else if ctx.Err() == nil {
			p.err.CompareAndSwap(nil, &err)
		}
	}
	go func() {
		defer close(p.done)
		buf := make([]byte, 0, 512)
		// due is what the rate asks for so far; a producer more than 100 ms
		// behind gives up the rest (skipped), so the rate stays steady rather
		// than bursting, and the achieved rate is what the broker took.
		var sent, skipped int64
		for ctx.Err() == nil {
			due := int64(time.Since(p.started).Seconds() * float64(rate))
			if behind := due - sent - skipped; behind > int64(rate/10) {
				skipped += behind - int64(rate/10)
			}
			ts := time.Now().UnixMilli()
			for ; sent+skipped < due && ctx.Err() == nil; sent++ {
				// Partitioned by host, so every partition has every name.
				// (Round robin, as for the backlog, puts the 6 names on 8
				// partitions by parity: the odd partitions get only names no
				// specification matches, acknowledged at once.)
				i := int(sent)
				buf = appendMetric(buf[:0], i, ts)
				cl.Produce(ctx, &kgo.Record{Partition: int32(i / len(names) % hosts % partitions), Value: append([]byte(nil), buf...)}, record)
			}
			_ = harness.Sleep(ctx, time.Millisecond)
		}
	}()
	return p, nil
}

// acked is the number of records the broker has acknowledged.
func (p *producer) acked() int64 { return p.ok.Load() }

// stop ends producing and returns the first produce error.
func (p *producer) stop() error {
	p.cancel()
	<-p.done
	p.closed.Do(p.cl.Close)
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}
