package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// The shipped monitoring: alert rules and a Grafana dashboard.
var (
	rulesFile     = filepath.Join("deploy", "prometheus", "monasca-connect-rules.yaml")
	dashboardFile = filepath.Join("deploy", "grafana", "monasca-connect.json")
)

// monitoringTools returns the paths of Debian's (or any) prometheus and
// promtool. Without them the test is skipped, unless CI is set: CI
// (.ci/run) installs them, and there a missing binary is a failure.
func monitoringTools(t *testing.T) (prometheus, promtool string) {
	t.Helper()
	var missing []string
	prometheus, err := exec.LookPath("prometheus")
	if err != nil {
		missing = append(missing, "prometheus")
	}
	promtool, err = exec.LookPath("promtool")
	if err != nil {
		missing = append(missing, "promtool")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s not found in PATH (Debian: apt-get install prometheus)", strings.Join(missing, " and "))
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("%s; CI=%s requires them", msg, ci)
		}
		t.Skip(msg + "; skipped outside CI")
	}
	return prometheus, promtool
}

// alertRule is one alerting rule of the shipped rules file.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// loadRules reads the shipped rules file: its alerting rules, and the file
// as a generic document that the tests rewrite into their copies.
func loadRules(t *testing.T) ([]alertRule, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var typed struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &typed); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []alertRule
	for _, g := range typed.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue // a recording rule
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: alert %s lacks a severity label or a summary or description annotation", rulesFile, r.Alert)
			}
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s holds no alerting rule", rulesFile)
	}
	return rules, doc
}

// writeRulesCopy writes the rules document to dir with every alerting
// rule changed by edit, and returns its path.
func writeRulesCopy(t *testing.T, doc map[string]any, dir string, edit func(rule map[string]any)) string {
	t.Helper()
	// A deep copy: the document is shared.
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var cp map[string]any
	if err := yaml.Unmarshal(b, &cp); err != nil {
		t.Fatal(err)
	}
	groups, _ := cp["groups"].([]any)
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if rule := r.(map[string]any); rule["alert"] != nil {
				edit(rule)
			}
		}
	}
	if b, err = yaml.Marshal(cp); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runTool runs a command and fails the test with its output when it fails.
func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules checks the shipped alert rules with promtool: `promtool
// check rules`, then `promtool test rules` with synthetic series that make
// every alert fire, and leave it quiet where it must be (an idle standby,
// a single retry, an instance whose saves succeed). The unit
// tests run on a copy without annotations, since promtool compares them
// verbatim; TestMonitoring checks that they render.
func TestAlertRules(t *testing.T) {
	_, promtool := monitoringTools(t)
	t.Log(strings.TrimSpace(runTool(t, repoRoot, promtool, "check", "rules", rulesFile)))

	rules, doc := loadRules(t)
	dir := t.TempDir()
	writeRulesCopy(t, doc, dir, func(rule map[string]any) { delete(rule, "annotations") })
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), []byte(alertRuleTests), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(runTool(t, dir, promtool, "test", "rules", "rules_test.yaml")))

	// Every alert has a unit test in which it fires.
	var unit struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal([]byte(alertRuleTests), &unit); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, ut := range unit.Tests {
		for _, at := range ut.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			}
		}
	}
	for _, r := range rules {
		if !fires[r.Alert] {
			t.Errorf("alert %s has no unit test in which it fires", r.Alert)
		}
	}
}

// alertRuleTests are promtool unit tests of the shipped rules (see
// TestAlertRules). time() is the evaluation time since the epoch.
const alertRuleTests = `
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # Output failing; not on a single retry.
  - interval: 1m
    input_series:
      - series: 'monasca_output_retries_total{job="m",instance="a:4195",path="root.buffer"}'
        values: '0+10x10'
      - series: 'monasca_output_retries_total{job="m",instance="b:4195",path="root.buffer"}'
        values: '0 1x10'
    alert_rule_test:
      - eval_time: 6m
        alertname: MonascaConnectOutputFailing
        exp_alerts:
          - exp_labels: {severity: critical, job: m, instance: "a:4195", path: root.buffer}
  # No aggregates while metrics are folded in; per-spec counters summed.
  - interval: 1m
    input_series:
      - series: 'monasca_aggregates_emitted_total{job="m",instance="a:4195"}'
        values: '100x20'
      - series: 'monasca_metrics_aggregated_total{job="m",instance="a:4195",spec="s1"}'
        values: '0+100x20'
      - series: 'monasca_metrics_aggregated_total{job="m",instance="a:4195",spec="s2"}'
        values: '0+100x20'
      - series: 'monasca_aggregates_emitted_total{job="m",instance="b:4195"}'
        values: '0+100x20'
      - series: 'monasca_metrics_aggregated_total{job="m",instance="b:4195"}'
        values: '0+100x20'
      - series: 'monasca_aggregates_emitted_total{job="m",instance="c:4195"}'
        values: '100x20'
      - series: 'monasca_metrics_aggregated_total{job="m",instance="c:4195"}'
        values: '100x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: MonascaConnectNoAggregates
        exp_alerts:
          - exp_labels: {severity: critical, job: m, instance: "a:4195"}
  # Frontier lagging on the instance holding partitions, not on a standby.
  - interval: 1m
    input_series:
      - series: 'monasca_frontier_ms{job="m",instance="a:4195"}'
        values: '100000x20'
      - series: 'kafka_partitions_held{job="m",instance="a:4195"}'
        values: '4x20'
      - series: 'monasca_frontier_ms{job="m",instance="b:4195"}'
        values: '100000x20'
      - series: 'kafka_partitions_held{job="m",instance="b:4195"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: MonascaConnectFrontierLagging
        exp_alerts:
          - exp_labels: {severity: critical, job: m, instance: "a:4195"}
  # One partition far behind the others; the instance as a whole keeps up.
  - interval: 1m
    input_series:
      - series: 'kafka_consumer_lag{job="m",instance="a:4195",topic="metrics",partition="0"}'
        values: '0+10000x20'
      - series: 'kafka_consumer_lag{job="m",instance="a:4195",topic="metrics",partition="1"}'
        values: '100x20'
      - series: 'kafka_consumer_lag{job="m",instance="a:4195",topic="metrics",partition="2"}'
        values: '200x20'
      - series: 'kafka_consumer_lag{job="m",instance="a:4195",topic="metrics",partition="3"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: MonascaConnectPartitionLagging
        exp_alerts:
          - exp_labels: {severity: warning, job: m, instance: "a:4195", topic: metrics, partition: "0"}
      - eval_time: 15m
        alertname: MonascaConnectNotKeepingUp
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'monasca_partitions_missing{job="m",instance="a:4195"}'
        values: '2x10'
      - series: 'monasca_lanes_restoring{job="m",instance="a:4195"}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: MonascaConnectPartitionsMissing
        exp_alerts:
          - exp_labels: {severity: critical, job: m, instance: "a:4195"}
      - eval_time: 5m
        alertname: MonascaConnectStateNotRestored
        exp_alerts:
          - exp_labels: {severity: critical, job: m, instance: "a:4195"}
  # Every partition's lag growing; a high but steady lag does not alert.
  - interval: 1m
    input_series:
      - series: 'kafka_consumer_lag{job="m",instance="a:4195",topic="metrics",partition="0"}'
        values: '0+1000x40'
      - series: 'kafka_consumer_lag{job="m",instance="a:4195",topic="metrics",partition="1"}'
        values: '0+1000x40'
      - series: 'kafka_consumer_lag{job="m",instance="b:4195",topic="metrics",partition="0"}'
        values: '50000x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: MonascaConnectNotKeepingUp
        exp_alerts:
          - exp_labels: {severity: warning, job: m, instance: "a:4195", topic: metrics}
  # Late metrics, summed over specifications; invalid input per reason.
  - interval: 1m
    input_series:
      - series: 'monasca_metrics_late_total{job="m",instance="a:4195",spec="s1"}'
        values: '0+5x20'
      - series: 'monasca_metrics_late_total{job="m",instance="a:4195",spec="s2"}'
        values: '0+1x20'
      - series: 'monasca_metrics_late_total{job="m",instance="b:4195"}'
        values: '0+1x20'
      - series: 'monasca_metrics_late_total{job="m",instance="c:4195"}'
        values: '0x20'
      - series: 'monasca_metrics_invalid_total{job="m",instance="a:4195",reason="malformed_json"}'
        values: '0+1x20'
      - series: 'monasca_metrics_invalid_total{job="m",instance="a:4195",reason="wrong_type"}'
        values: '3x20'
      - series: 'monasca_aggregates_invalid_total{job="m",instance="a:4195"}'
        values: '0+1x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: MonascaConnectLateMetrics
        exp_alerts:
          - exp_labels: {severity: warning, job: m, instance: "a:4195"}
          - exp_labels: {severity: warning, job: m, instance: "b:4195"}
      - eval_time: 15m
        alertname: MonascaConnectInvalidInput
        exp_alerts:
          - exp_labels: {severity: warning, job: m, instance: "a:4195", reason: malformed_json}
      - eval_time: 15m
        alertname: MonascaConnectInvalidAggregates
        exp_alerts:
          - exp_labels: {severity: warning, job: m, instance: "a:4195"}
  # A save failed: the instance whose counter grows, not the other.
  - interval: 1m
    input_series:
      - series: 'monasca_checkpoint_failures_total{job="m",instance="a:4195",path="root.buffer"}'
        values: '0+1x20'
      - series: 'monasca_checkpoint_failures_total{job="m",instance="b:4195",path="root.buffer"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: MonascaConnectCheckpointFailing
        exp_alerts:
          - exp_labels: {severity: critical, job: m, instance: "a:4195", path: root.buffer}
  # An instance that exported monasca-connect metrics is down; other
  # targets are not this rule's business.
  - interval: 1m
    input_series:
      - series: 'up{job="m",instance="a:4195"}'
        values: '1 1 1 0x10'
      - series: 'monasca_metrics_received_total{job="m",instance="a:4195"}'
        values: '0 10 20 _x10'
      - series: 'up{job="other",instance="x:9100"}'
        values: '1 1 1 0x10'
    alert_rule_test:
      - eval_time: 10m
        alertname: MonascaConnectDown
        exp_alerts:
          - exp_labels: {severity: critical, job: m, instance: "a:4195"}
`

// TestMonitoring runs the shipped alert rules and dashboard in a real
// Prometheus that scrapes a running monasca-aggregation pipeline.
//
// The pipeline reads a live trickle with malformed messages, and late
// metrics (stamped a minute back, in windows long closed), and writes to
// an output cluster of its own. Prometheus scrapes its /metrics and
// evaluates the rules every second. The test checks that Prometheus loads
// and evaluates every rule without error, that every panel query of the
// dashboard (and every variable query) succeeds with data, that the
// late-metrics and invalid-input alerts fire and the output, frontier and
// partition alerts do not, then, with every write to the output cluster
// failing, that the output-failing alert fires, and finally that every
// metric a rule reads has data (but monasca_aggregates_invalid_total, see
// notProvoked).
//
// Prometheus evaluates a copy of the shipped rules in which every `for:`
// is 1s instead of minutes, so that the alerts fire within the test; the
// expressions, labels and annotations are the shipped ones.
func TestMonitoring(t *testing.T) {
	promBin, promtool := monitoringTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()

	rules, doc := loadRules(t)
	promDir := t.TempDir()
	rulesPath := writeRulesCopy(t, doc, promDir, func(rule map[string]any) {
		if rule["for"] != nil {
			rule["for"] = "1s"
		}
	})

	out := startOutputCluster(t, "aggregates")
	cfg := pipelineConfig{
		inputTopic: "metrics", outputTopic: "aggregates",
		window: 2 * time.Second, lag: time.Second, idle: 5 * time.Second,
		outputBrokers: out.addr(),
	}
	e := newEnv(t, cfg)
	rng := newRand(t)
	p := e.start()
	// Two metrics per partition every 100 ms, and a malformed message in
	// about one tick of four per partition.
	startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 1)), trickleSpec{
		tick: 100 * time.Millisecond, partitions: 4, lag: cfg.lag, perTick: 2, badOneIn: 4,
	})

	// Prometheus, scraping the pipeline and evaluating the rules every
	// second.
	promAddr := freeAddr(t)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [ %q ]
scrape_configs:
  - job_name: monasca-connect
    static_configs:
      - targets: [ %q ]
`, rulesPath, p.httpAddr)
	configPath := filepath.Join(promDir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, promDir, promtool, "check", "config", configPath)
	startPrometheus(t, promBin, promDir, configPath, promAddr)
	api := promAPI{base: "http://" + promAddr}
	if !harness.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() bool { return api.ready(ctx) }) {
		t.Fatalf("Prometheus not ready at %s within 30s", promAddr)
	}
	t.Logf("%s Prometheus %s up at %s, scraping %s", wallClock(), promBin, promAddr, p.httpAddr)

	// The pipeline emits aggregates and Prometheus has scraped it.
	if !harness.Poll(ctx, 60*time.Second, 200*time.Millisecond, func() bool {
		samples, err := harness.Scrape(ctx, p.httpAddr)
		if err != nil {
			return false
		}
		return harness.Sum(samples, "monasca_aggregates_emitted_total", "")[""] > 0 &&
			harness.Sum(samples, "monasca_frontier_ms", "")[""] > 0
	}) {
		t.Fatal("the pipeline emitted no aggregate within 60s")
	}
	t.Logf("%s the pipeline emits aggregates", wallClock())

	// Late metrics: every 500 ms one per partition, stamped a minute
	// back, into windows closed long ago (and well within max_past).
	lateDone := make(chan struct{})
	lateCtx, lateStop := context.WithCancel(ctx)
	go func() {
		defer close(lateDone)
		for lateCtx.Err() == nil {
			var recs []*kgo.Record
			for part := range int32(4) {
				m := inputMetric{
					name:   "cpu.percent",
					dims:   map[string]string{"hostname": "host-1", "service": "svc-a", "cluster": "prod"},
					ts:     time.Now().Add(-time.Minute).UnixMilli(),
					value:  1,
					tenant: tenants[0],
				}
				r := inputRecord(part, m.envelope())
				r.Topic = cfg.inputTopic
				recs = append(recs, r)
			}
			pctx, pcancel := context.WithTimeout(lateCtx, 10*time.Second)
			_ = e.Client.ProduceSync(pctx, recs...).FirstErr() // counted by the pipeline, or not at all
			pcancel()
			harness.Sleep(lateCtx, 500*time.Millisecond)
		}
	}()
	t.Cleanup(func() { lateStop(); <-lateDone })

	// Ten seconds of scrapes, so that rate() has samples to work on.
	if !harness.Poll(ctx, 30*time.Second, 500*time.Millisecond, func() bool {
		res, err := api.query(ctx, `count_over_time(monasca_metrics_received_total[1m])`)
		return err == nil && len(res.values()) > 0 && res.values()[0] >= 10
	}) {
		t.Fatalf("Prometheus did not scrape the pipeline 10 times within 30s; its targets: %s", api.describeTargets(ctx))
	}

	// Every rule is loaded and evaluated without error.
	checkLoadedRules(ctx, t, api, rules)
	// Every panel and variable query of the dashboard succeeds with data.
	checkDashboard(ctx, t, api)

	// The provoked alerts fire, with their annotations rendered; the ones
	// not provoked stay quiet.
	quiet := []string{"MonascaConnectOutputFailing", "MonascaConnectFrontierLagging", "MonascaConnectPartitionsMissing",
		"MonascaConnectStateNotRestored", "MonascaConnectDown", "MonascaConnectInvalidAggregates", "MonascaConnectPartitionLagging"}
	waitFiring(ctx, t, api, 30*time.Second, "MonascaConnectLateMetrics", "MonascaConnectInvalidInput")
	alerts, err := api.alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if slices.Contains(quiet, a.Labels["alertname"]) {
			t.Errorf("alert %s is %s in a healthy run: %v", a.Labels["alertname"], a.State, a.Annotations["description"])
		}
	}
	logAlerts(t, "before the output outage", alerts)

	// Every write to the output cluster fails from now on.
	out.arm()
	armed := time.Now()
	t.Logf("%s every write to the output cluster fails from now on", wallClock())
	waitFiring(ctx, t, api, 60*time.Second, "MonascaConnectOutputFailing")
	t.Logf("MonascaConnectOutputFailing fired %v after the output began failing", time.Since(armed).Round(time.Second))
	if alerts, err = api.alerts(ctx); err == nil {
		logAlerts(t, "during the output outage", alerts)
		// An output outage holds input too, but is not a failing
		// checkpoint.
		for _, a := range alerts {
			if a.Labels["alertname"] == "MonascaConnectCheckpointFailing" && a.State == "firing" {
				t.Errorf("MonascaConnectCheckpointFailing fires during the output outage")
			}
		}
	}

	// Every metric a rule reads has data, now that the output has failed:
	// a counter is exported from its first increment on.
	checked := 0
	for _, r := range rules {
		for _, name := range selectedMetrics(r.Expr) {
			if why, ok := notProvoked[name]; ok {
				t.Logf("alert %s reads %s, not checked: %s", r.Alert, name, why)
				continue
			}
			res, err := api.query(ctx, fmt.Sprintf(`count({__name__=%q})`, name))
			if err != nil {
				t.Errorf("alert %s: querying %s: %v", r.Alert, name, err)
			} else if len(res.values()) == 0 {
				t.Errorf("alert %s reads %s, which Prometheus has no data of", r.Alert, name)
			}
			checked++
		}
	}
	t.Logf("the %d metric selectors of the %d alerts have data", checked, len(rules))
	if samples, err := harness.Scrape(ctx, p.httpAddr); err == nil {
		logCounters(t, samples)
	}
}

// notProvoked are the counters the rules read that TestMonitoring does not
// make the pipeline export: a counter is exported from its first increment.
var notProvoked = map[string]string{
	"monasca_aggregates_invalid_total": "exported from the first aggregate that fails Monasca validation; the test's specifications make none",
}

// startPrometheus starts the test's Prometheus. It is killed when the test
// ends, and a failed test prints the tail of its log.
func startPrometheus(t *testing.T, bin, dir, configPath, addr string) {
	t.Helper()
	p, err := harness.Start(harness.Command{
		Path: bin,
		Args: []string{
			"--config.file=" + configPath,
			"--web.listen-address=" + addr,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--storage.tsdb.retention.time=1h",
		},
		Dir: dir,
		Log: filepath.Join(dir, "prometheus.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- tail of the Prometheus log (%s) ---\n%s", p.Log, p.Tail(40))
		}
	})
}

// promAPI is a client of Prometheus' HTTP API.
type promAPI struct{ base string }

func (a promAPI) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/-/ready", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// get calls an API endpoint and decodes its data into out.
func (a promAPI) get(ctx context.Context, path string, params url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := a.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s: %s", path, resp.Status, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// queryResult is the data of an instant query.
type queryResult struct {
	ResultType string            `json:"resultType"`
	Result     json.RawMessage   `json:"result"`
	series     []json.RawMessage // vector and matrix results
}

// values returns the values of a vector result, or of a scalar.
func (r queryResult) values() []float64 {
	var out []float64
	parse := func(pair []any) {
		if len(pair) == 2 {
			if s, ok := pair[1].(string); ok {
				var v float64
				if _, err := fmt.Sscan(s, &v); err == nil {
					out = append(out, v)
				}
			}
		}
	}
	switch r.ResultType {
	case "vector":
		for _, raw := range r.series {
			var s struct {
				Value []any `json:"value"`
			}
			if json.Unmarshal(raw, &s) == nil {
				parse(s.Value)
			}
		}
	case "scalar":
		var pair []any
		if json.Unmarshal(r.Result, &pair) == nil {
			parse(pair)
		}
	}
	return out
}

// empty reports whether the result holds no data.
func (r queryResult) empty() bool {
	switch r.ResultType {
	case "vector", "matrix":
		return len(r.series) == 0
	default: // scalar, string
		return false
	}
}

func (a promAPI) query(ctx context.Context, expr string) (queryResult, error) {
	var r queryResult
	if err := a.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &r); err != nil {
		return r, err
	}
	if r.ResultType == "vector" || r.ResultType == "matrix" {
		if err := json.Unmarshal(r.Result, &r.series); err != nil {
			return r, err
		}
	}
	return r, nil
}

// promAlert is an alert of /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Value       string            `json:"value"`
}

func (a promAPI) alerts(ctx context.Context) ([]promAlert, error) {
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	err := a.get(ctx, "/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// describeTargets renders the scrape targets' health, for a failure.
func (a promAPI) describeTargets(ctx context.Context) string {
	var data struct {
		ActiveTargets []struct {
			ScrapeURL string `json:"scrapeUrl"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := a.get(ctx, "/api/v1/targets", nil, &data); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, tg := range data.ActiveTargets {
		fmt.Fprintf(&b, "%s %s %s; ", tg.ScrapeURL, tg.Health, tg.LastError)
	}
	return b.String()
}

// checkLoadedRules waits until Prometheus has evaluated every rule, and
// checks that it holds exactly the shipped alerts, each evaluated without
// error.
func checkLoadedRules(ctx context.Context, t *testing.T, api promAPI, rules []alertRule) {
	t.Helper()
	type loaded struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	}
	var got map[string]loaded
	var lastErr error
	if !harness.Poll(ctx, 20*time.Second, 500*time.Millisecond, func() bool {
		var data struct {
			Groups []struct {
				Rules []loaded `json:"rules"`
			} `json:"groups"`
		}
		if lastErr = api.get(ctx, "/api/v1/rules", nil, &data); lastErr != nil {
			return false
		}
		got = map[string]loaded{}
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				got[r.Name] = r
				if r.Health == "unknown" {
					return false // not evaluated yet
				}
			}
		}
		return len(got) > 0
	}) {
		t.Fatalf("Prometheus did not evaluate every rule within 20s (last error: %v): %v", lastErr, got)
	}
	for _, r := range rules {
		l, ok := got[r.Alert]
		switch {
		case !ok:
			t.Errorf("Prometheus did not load alert %s", r.Alert)
		case l.Type != "alerting":
			t.Errorf("rule %s loaded as a %s rule", r.Alert, l.Type)
		case l.Health != "ok" || l.LastError != "":
			t.Errorf("alert %s: health %s: %s", r.Alert, l.Health, l.LastError)
		}
		delete(got, r.Alert)
	}
	for name := range got {
		t.Errorf("Prometheus loaded a rule %s the test does not know", name)
	}
	t.Logf("Prometheus evaluates all %d alerts without error", len(rules))
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promLabelSet = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// selectedMetrics returns the metric names a PromQL expression selects: its
// identifiers that are neither functions, keywords, label names nor inside
// strings, matchers or durations.
func selectedMetrics(expr string) []string {
	s := promString.ReplaceAllString(expr, " ")
	s = promLabelSet.ReplaceAllString(s, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || slices.Contains(promKeywords, strings.ToLower(name)) {
			continue // a function, an aggregation or a keyword
		}
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // a number's exponent or a duration's unit
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// grafanaVars are the values of Grafana's built-in variables in the panel
// queries: a rate interval of a few scrapes at the test's 1s interval.
var grafanaVars = map[string]string{
	"__rate_interval": "10s",
	"__interval":      "1s",
	"__range":         "1m",
}

var grafanaVar = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)(?::[a-z]+)?\}|\$([a-zA-Z0-9_]+)|\[\[([a-zA-Z0-9_]+)\]\]`)

// checkDashboard runs every query of the shipped dashboard's panels and
// variables against Prometheus, with the variables at their defaults
// ("All" as their allValue). Each must succeed and return data; queries
// that are empty are tried again for up to 20 seconds, as some series
// appear only with the first malformed or late message.
func checkDashboard(ctx context.Context, t *testing.T, api promAPI) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		SchemaVersion int   `json:"schemaVersion"`
		Panels        []any `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Query      any    `json:"query"`
				AllValue   string `json:"allValue"`
				IncludeAll bool   `json:"includeAll"`
				Current    struct {
					Value any `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.SchemaVersion < 36 {
		t.Errorf("%s: schemaVersion %d, want a current one (39)", dashboardFile, dash.SchemaVersion)
	}

	vars := map[string]string{}
	for k, v := range grafanaVars {
		vars[k] = v
	}
	var datasourceVar string
	var varQueries []string
	for _, v := range dash.Templating.List {
		switch v.Type {
		case "datasource":
			if q, _ := v.Query.(string); q == "prometheus" {
				datasourceVar = v.Name
			}
			continue
		case "query":
			q, _ := v.Query.(string)
			if m, ok := v.Query.(map[string]any); ok {
				q, _ = m["query"].(string)
			}
			varQueries = append(varQueries, q)
		}
		value := fmt.Sprint(v.Current.Value)
		if vs, ok := v.Current.Value.([]any); ok && len(vs) > 0 {
			value = fmt.Sprint(vs[0])
		}
		if value == "$__all" {
			value = cmp.Or(v.AllValue, ".*")
		}
		vars[v.Name] = value
	}
	if datasourceVar == "" {
		t.Errorf("%s: no Prometheus datasource variable", dashboardFile)
	}
	expand := func(q string) (string, error) {
		var missing []string
		out := grafanaVar.ReplaceAllStringFunc(q, func(m string) string {
			sm := grafanaVar.FindStringSubmatch(m)
			name := sm[1] + sm[2] + sm[3]
			v, ok := vars[name]
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			return "", fmt.Errorf("unknown variables %v", missing)
		}
		return out, nil
	}

	// Panels, rows' nested panels included.
	type query struct{ panel, expr string }
	var queries []query
	var walk func(ps []any)
	walk = func(ps []any) {
		for _, raw := range ps {
			p, _ := raw.(map[string]any)
			title, _ := p["title"].(string)
			if nested, ok := p["panels"].([]any); ok {
				walk(nested)
			}
			targets, _ := p["targets"].([]any)
			if len(targets) > 0 {
				ds, _ := p["datasource"].(map[string]any)
				if uid, _ := ds["uid"].(string); datasourceVar != "" && uid != "${"+datasourceVar+"}" && uid != "$"+datasourceVar {
					t.Errorf("panel %q: datasource %v, want the $%s variable", title, p["datasource"], datasourceVar)
				}
			}
			for _, tr := range targets {
				tm, _ := tr.(map[string]any)
				if expr, _ := tm["expr"].(string); expr != "" {
					queries = append(queries, query{title, expr})
				}
			}
		}
	}
	walk(dash.Panels)
	if len(queries) == 0 {
		t.Fatalf("%s: no panel query", dashboardFile)
	}

	pending := map[int]string{} // query index: why it failed
	for i := range queries {
		pending[i] = "not run"
	}
	harness.Poll(ctx, 20*time.Second, time.Second, func() bool {
		for i := range pending {
			expr, err := expand(queries[i].expr)
			if err != nil {
				pending[i] = err.Error()
				continue
			}
			res, err := api.query(ctx, expr)
			switch {
			case err != nil:
				pending[i] = err.Error()
			case res.empty():
				pending[i] = "no data"
			default:
				delete(pending, i)
			}
		}
		return len(pending) == 0
	})
	for i, q := range queries {
		if why, ok := pending[i]; ok {
			t.Errorf("panel %q: query %s: %s", q.panel, q.expr, why)
		}
	}
	panels := map[string]bool{}
	for _, q := range queries {
		panels[q.panel] = true
	}
	t.Logf("%d of the %d queries of %d panels return data", len(queries)-len(pending), len(queries), len(panels))

	// Variable queries: Grafana's label_values(selector, label).
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, q := range varQueries {
		m := labelValues.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			t.Errorf("variable query %q: not label_values(selector, label)", q)
			continue
		}
		sel, err := expand(m[1])
		if err != nil {
			t.Errorf("variable query %q: %v", q, err)
			continue
		}
		var values []string
		if err := api.get(ctx, "/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {sel}}, &values); err != nil {
			t.Errorf("variable query %q: %v", q, err)
		} else if len(values) == 0 {
			t.Errorf("variable query %q: no values", q)
		}
	}
}

// waitFiring waits until every named alert is firing, with its annotations
// rendered.
func waitFiring(ctx context.Context, t *testing.T, api promAPI, limit time.Duration, names ...string) {
	t.Helper()
	var last []promAlert
	var lastErr error
	ok := harness.Poll(ctx, limit, 500*time.Millisecond, func() bool {
		last, lastErr = api.alerts(ctx)
		if lastErr != nil {
			return false
		}
		for _, n := range names {
			if !slices.ContainsFunc(last, func(a promAlert) bool { return a.Labels["alertname"] == n && a.State == "firing" }) {
				return false
			}
		}
		return true
	})
	if !ok {
		logAlerts(t, "when giving up", last)
		t.Fatalf("alerts %v not all firing within %v (last error: %v)", names, limit, lastErr)
	}
	for _, a := range last {
		if !slices.Contains(names, a.Labels["alertname"]) {
			continue
		}
		for _, k := range []string{"summary", "description"} {
			v := a.Annotations[k]
			if v == "" || strings.Contains(v, "error expanding") || strings.Contains(v, "<no value>") {
				t.Errorf("alert %s: annotation %s not rendered: %q", a.Labels["alertname"], k, v)
			}
		}
	}
}

func logAlerts(t *testing.T, when string, alerts []promAlert) {
	t.Helper()
	var lines []string
	for _, a := range alerts {
		lines = append(lines, fmt.Sprintf("%s %s (value %s): %s", a.Labels["alertname"], a.State, a.Value, a.Annotations["summary"]))
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		lines = []string{"none"}
	}
	t.Logf("alerts %s:\n  %s", when, strings.Join(lines, "\n  "))
}
