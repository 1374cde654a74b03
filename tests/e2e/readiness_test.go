package e2e

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// TestStateTopicUnavailable starts the pipeline where its window-state
// topic cannot be created (a replication factor above the broker count):
// it must say why in its log, fail /ready and consume nothing, rather than
// hold input it can never checkpoint. Once an operator creates the topic,
// it becomes ready and aggregates the backlog exactly.
func TestStateTopicUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := pipelineConfig{
		inputTopic: "metrics", outputTopic: "aggregates",
		window: 2 * time.Second, lag: time.Second, idle: 5 * time.Second,
	}
	w := workload{window: cfg.window, lag: cfg.lag, windows: 10, perWindow: 100, partitions: 4}
	e, c, expected := backlog(ctx, t, cfg, w, newRand(t))
	started := time.Now()
	p := e.startProc(procSpec{set: []string{"kafka_state_stores.0.replication_factor=3"}})

	stateTopic := e.group + "-window-state"
	said := func() bool {
		log, _ := os.ReadFile(p.Log)
		return strings.Contains(string(log), stateTopic) && strings.Contains(strings.ToLower(string(log)), "replication")
	}
	if !harness.WaitUntil(ctx, 30*time.Second, said) {
		t.Fatalf("the log does not say why the state topic %s is unavailable", stateTopic)
	}
	harness.Sleep(ctx, 3*time.Second)
	if code := harness.ReadyStatus(ctx, p.httpAddr); code == http.StatusOK {
		t.Fatal("/ready answers 200 while the state topic is unavailable")
	}
	// The group may not even exist: the input has not joined it.
	committed, _ := e.Admin.FetchOffsets(ctx, e.group)
	committed.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			t.Errorf("%s/%d committed to %d without a state topic", o.Topic, o.Partition, o.At)
		}
	})
	if c.count() > 0 {
		t.Errorf("%d aggregates written without a state topic", c.count())
	}

	configs := map[string]*string{"cleanup.policy": new("compact")}
	if _, err := e.Admin.CreateTopic(ctx, 1, 1, configs, stateTopic); err != nil {
		t.Fatalf("creating %s: %v", stateTopic, err)
	}
	if !harness.WaitUntil(ctx, 30*time.Second, func() bool { return harness.ReadyStatus(ctx, p.httpAddr) == http.StatusOK }) {
		t.Fatal("/ready not 200 within 30s of the state topic's creation")
	}
	if e.waitDrained(ctx, c) {
		checkOutputs(t, expected, c.outputs(), started, false)
	}
}
