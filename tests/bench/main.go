// Command bench measures monasca-connect end to end on this machine: it
// starts an in-process Kafka broker (kfake) on loopback, loads a backlog of
// Monasca metrics into an 8-partition topic, then runs the built binary with
// pipelines/monasca-aggregation.yaml over it, and the same input through a
// pass-through pipeline (same input and output, no aggregation) as the
// framework's ceiling. It prints both and their ratio; its last line is one
// JSON object.
//
//	go run ./tests/bench                 # 2,000,000 metrics
//	go run ./tests/bench -metrics 500000
//	go run ./tests/bench -stages         # also the two scale-out stages
//
// With -stages it then runs pipelines/scale-out/stage1.yaml over the same
// backlog, writing to an 8-partition partials topic, and stage2.yaml over
// what stage one wrote: one instance of each, for sizing a scale-out.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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

// passThrough is the ceiling: the aggregation pipeline's input and output,
// nothing between them.
const passThrough = `
http:
  address: ${HTTP_ADDRESS}
input:
  redpanda:
    seed_brokers: [ "${KAFKA_BROKERS}" ]
    topics: [ "${METRICS_TOPIC}" ]
    consumer_group: ${CONSUMER_GROUP}
    start_offset: earliest
    fetch_max_wait: 100ms
    auto_replay_nacks: false
    unordered_processing:
      enabled: true
      checkpoint_limit: 1000000
      batching: { count: 1024, period: 20ms }
output:
  redpanda:
    seed_brokers: [ "${KAFKA_BROKERS}" ]
    topic: ${AGGREGATED_TOPIC}
shutdown_timeout: 5s
`

// cpuProfile, when set, is where the aggregation run's CPU profile goes.
var cpuProfile string

type result struct {
	Metrics                   int     `json:"metrics"`
	Seconds                   float64 `json:"seconds"`
	MetricsPerSec             float64 `json:"metrics_per_sec"`
	CPUSecPerMillion          float64 `json:"cpu_s_per_million"`
	PeakRSSBytes              int64   `json:"peak_rss_bytes"`
	Aggregates                int64   `json:"aggregates"`
	PassthroughSeconds        float64 `json:"passthrough_seconds"`
	PassthroughMetricsPerSec  float64 `json:"passthrough_metrics_per_sec"`
	PassthroughCPUSecPerMilli float64 `json:"passthrough_cpu_s_per_million"`
	PassthroughPeakRSSBytes   int64   `json:"passthrough_peak_rss_bytes"`
	Ratio                     float64 `json:"ratio"`
	StartupToReadyMs          float64 `json:"startup_to_ready_ms"`

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
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the aggregation run's first seconds to this file")
	stages := flag.Bool("stages", false, "also run the two scale-out stages, one instance each")
	flag.Parse()
	if err := run(*n, *window, *bin, *stages); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n int, window time.Duration, bin string, stages bool) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "monasca-connect-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if bin == "" {
		bin = filepath.Join(work, "monasca-connect")
		fmt.Fprintln(os.Stderr, "building monasca-connect ...")
		build := exec.Command("go", "build", "-o", bin, "./cmd/monasca-connect")
		build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	specsPath := filepath.Join(work, "specs.yaml")
	ptPath := filepath.Join(work, "passthrough.yaml")
	if err := os.WriteFile(specsPath, []byte(specs), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(ptPath, []byte(passThrough), 0o600); err != nil {
		return err
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(partitions, inputTopic, "aggregated", "passthrough", "partials", "aggregated-stage2"))
	if err != nil {
		return err
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	fmt.Fprintf(os.Stderr, "loading %d metrics into %d partitions ...\n", n, partitions)
	if err := load(ctx, brokers, n, window); err != nil {
		return err
	}

	var res result
	res.Metrics = n
	fmt.Fprintln(os.Stderr, "aggregation run ...")
	agg, err := measure(ctx, bin, filepath.Join(root, "pipelines", "monasca-aggregation.yaml"), root, brokers, "aggregation", inputTopic, "aggregated", 0,
		"AGGREGATION_SPECS="+specsPath, "WINDOW_SIZE="+window.String(), "WINDOW_LAG=2s", "IDLE_TIMEOUT=30s")
	if err != nil {
		return fmt.Errorf("aggregation run: %w", err)
	}
	fmt.Fprintln(os.Stderr, "pass-through run ...")
	pt, err := measure(ctx, bin, ptPath, root, brokers, "passthrough", inputTopic, "passthrough", 0)
	if err != nil {
		return fmt.Errorf("pass-through run: %w", err)
	}
	res.Seconds, res.CPUSecPerMillion, res.PeakRSSBytes, res.Aggregates = agg.seconds, agg.cpu/float64(n)*1e6, agg.peakRSS, agg.produced
	res.MetricsPerSec = float64(n) / agg.seconds
	res.PassthroughSeconds, res.PassthroughCPUSecPerMilli, res.PassthroughPeakRSSBytes = pt.seconds, pt.cpu/float64(n)*1e6, pt.peakRSS
	res.PassthroughMetricsPerSec = float64(n) / pt.seconds
	res.Ratio = res.MetricsPerSec / res.PassthroughMetricsPerSec
	res.StartupToReadyMs = float64(agg.ready.Microseconds()) / 1000

	fmt.Printf("aggregation:  %d metrics in %.2f s = %.0f metrics/s, %.2f CPU-s per million, peak RSS %.0f MiB, %d aggregates, ready in %.0f ms\n",
		n, res.Seconds, res.MetricsPerSec, res.CPUSecPerMillion, float64(res.PeakRSSBytes)/(1<<20), res.Aggregates, res.StartupToReadyMs)
	fmt.Printf("pass-through: %d metrics in %.2f s = %.0f metrics/s, %.2f CPU-s per million, peak RSS %.0f MiB\n",
		n, res.PassthroughSeconds, res.PassthroughMetricsPerSec, res.PassthroughCPUSecPerMilli, float64(res.PassthroughPeakRSSBytes)/(1<<20))
	fmt.Printf("ratio (aggregation / pass-through): %.2f\n", res.Ratio)
	if stages {
		if err := runStages(ctx, &res, bin, root, brokers, specsPath, window); err != nil {
			return err
		}
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	return nil
}

// runStages runs stage one over the backlog, then stage two over the
// partials stage one wrote.
func runStages(ctx context.Context, res *result, bin, root, brokers, specsPath string, window time.Duration) error {
	specEnv := []string{"AGGREGATION_SPECS=" + specsPath, "WINDOW_SIZE=" + window.String(), "WINDOW_LAG=2s"}
	fmt.Fprintln(os.Stderr, "scale-out stage one ...")
	// Stage one reports progress once a second: give it time to report the
	// last windows after its input is committed.
	one, err := measure(ctx, bin, filepath.Join(root, "pipelines", "scale-out", "stage1.yaml"), root, brokers, "stage1", inputTopic, "partials", 3*time.Second,
		append(specEnv, "PARTIALS_TOPIC=partials", fmt.Sprintf("PARTIALS_PARTITIONS=%d", partitions), "IDLE_TIMEOUT=30s")...)
	if err != nil {
		return fmt.Errorf("stage one: %w", err)
	}
	fmt.Fprintln(os.Stderr, "scale-out stage two ...")
	two, err := measure(ctx, bin, filepath.Join(root, "pipelines", "scale-out", "stage2.yaml"), root, brokers, "stage2", "partials", "aggregated-stage2", 0,
		append(specEnv, "PARTIALS_TOPIC=partials", "IDLE_TIMEOUT=60s")...)
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
		host := i / len(names) % hosts
		ts := start + int64(i/perSecond)*1000
		buf = fmt.Appendf(buf[:0],
			`{"metric":{"name":%q,"dimensions":{"hostname":"compute-%03d","service":"compute","component":"monasca-agent","cluster":"cluster-%d"},"timestamp":%d,"value":%d.5,"value_meta":{}},"meta":{"tenantId":"%032x","region":"useast"},"creation_time":%d}`,
			names[i%len(names)], host, host%4, ts, i%100, host%tenants, ts/1000)
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

type measurement struct {
	seconds  float64       // from the first message consumed to all input committed
	ready    time.Duration // from process start to /ready answering 200
	cpu      float64       // user+system CPU seconds of the process
	peakRSS  int64
	produced int64
}

// measure runs one pipeline over the backlog until its consumer group has
// committed every input offset, which both pipelines do only after the
// output acknowledged what the input produced.
func measure(ctx context.Context, bin, config, dir, brokers, group, inTopic, outTopic string, linger time.Duration, env ...string) (measurement, error) {
	var m measurement
	addr, err := freeAddr()
	if err != nil {
		return m, err
	}
	profile := cpuProfile != "" && outTopic == "aggregated"
	args := []string{"run"}
	if outTopic != "passthrough" {
		// The pipelines hold their first windows for seconds after start so
		// that a restarted instance has all its partitions; that is
		// start-up latency, not throughput.
		args = append(args, "--set", "buffer.monasca_aggregate.partition_discovery=1s")
	}
	if profile {
		args = append(args, "--set", "http.debug_endpoints=true")
	}
	args = append(args, config)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env,
		"KAFKA_BROKERS="+brokers, "METRICS_TOPIC="+inTopic, "AGGREGATED_TOPIC="+outTopic,
		"CONSUMER_GROUP="+group, "HTTP_ADDRESS="+addr)...)
	logs, err := os.CreateTemp("", "monasca-connect-bench-*.log")
	if err != nil {
		return m, err
	}
	defer os.Remove(logs.Name())
	cmd.Stdout, cmd.Stderr = logs, logs
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return m, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	failed := func(err error) (measurement, error) {
		tail, _ := os.ReadFile(logs.Name())
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return m, fmt.Errorf("%w\n--- log tail ---\n%s", err, tail)
	}

	for m.ready == 0 {
		if ctx.Err() != nil {
			return failed(ctx.Err())
		}
		if resp, err := http.Get("http://" + addr + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				m.ready = time.Since(started)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	var first time.Time
	for first.IsZero() {
		if ctx.Err() != nil {
			return failed(ctx.Err())
		}
		if n, _ := scrape(addr, "input_received"); n > 0 {
			first = time.Now()
		}
		time.Sleep(2 * time.Millisecond)
	}

	if profile {
		go func() {
			if err := fetchProfile(addr, cpuProfile); err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
			}
		}()
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return m, err
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)
	ends, err := admin.ListEndOffsets(ctx, inTopic)
	if err != nil {
		return m, err
	}
	// The run ends with the last output write; it is over once the group
	// has committed all input, which happens only after the output
	// acknowledged everything derived from it (within a commit period).
	lastWrite := first
	for {
		if ctx.Err() != nil {
			return failed(ctx.Err())
		}
		if produced := outputCount(ctx, admin, outTopic); produced != m.produced {
			m.produced, lastWrite = produced, time.Now()
		}
		committed, err := admin.FetchOffsets(ctx, group)
		if err == nil && allCommitted(ends, committed) {
			break
		}
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return failed(errors.New("the process exited"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	m.seconds = lastWrite.Sub(first).Seconds()
	m.cpu, m.peakRSS, err = processStats(cmd.Process.Pid)
	if linger > 0 {
		time.Sleep(linger)
		m.produced = outputCount(ctx, admin, outTopic)
	}
	return m, err
}

// fetchProfile saves five seconds of the process's CPU profile.
func fetchProfile(addr, path string) error {
	resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=5")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadFrom(resp.Body)
	return err
}

func outputCount(ctx context.Context, admin *kadm.Client, topic string) int64 {
	var n int64
	ends, err := admin.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0
	}
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func allCommitted(ends kadm.ListedOffsets, committed kadm.OffsetResponses) bool {
	ok := true
	ends.Each(func(e kadm.ListedOffset) {
		c, found := committed.Lookup(e.Topic, e.Partition)
		if !found || c.At < e.Offset {
			ok = false
		}
	})
	return ok
}

// scrape returns the sum of the samples of one metric on /metrics.
func scrape(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			total += v
		}
	}
	return total, sc.Err()
}

// processStats reads the CPU seconds and the peak resident set of a process
// from /proc.
func processStats(pid int) (cpu float64, peakRSS int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	cpu = (utime + stime) / 100 // clock ticks; USER_HZ is 100 on Linux
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			peakRSS = kb << 10
		}
	}
	return cpu, peakRSS, sc.Err()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the monasca-connect module")
	}
	return filepath.Dir(gomod), nil
}
