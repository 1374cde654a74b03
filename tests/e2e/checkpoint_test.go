package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/monasca-connect/monasca-connect/internal/harness"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// TestSavedCheckpointHoldsCommittedInput checks what the benchmark's
// recovery figures rest on (tests/bench, -recovery): reading the
// window-state topic through the harness finds the checkpoint a running
// pipeline saved, and it holds every committed input offset. The pipeline
// reads a backlog into a window that does not close, so its state is a
// checkpoint rather than a frontier, commits all of it once a checkpoint
// holds it, and is stopped; the checkpoint's position on each partition
// must then be the committed offset minus one, the last record.
func TestSavedCheckpointHoldsCommittedInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	t.Setenv("CHECKPOINT_INTERVAL", "1s")
	cfg := pipelineConfig{
		inputTopic: "metrics", outputTopic: "aggregates",
		// The backlog is stamped in the last two seconds: an hour's
		// window holding it stays open, even across an hour's boundary,
		// as the lag keeps the watermark from passing its end.
		window: time.Hour, lag: time.Minute, idle: 10 * time.Minute,
	}
	e := newEnv(t, cfg)
	// generate places the backlog's windows from ten minutes before the
	// time it is given: here, from two seconds ago.
	w := workload{window: 100 * time.Millisecond, lag: 100 * time.Millisecond, windows: 15, perWindow: 100, partitions: 4}
	e.produce(ctx, w.generate(newRand(t), time.Now().Add(10*time.Minute-2*time.Second)).records)
	ends, err := e.Admin.ListEndOffsets(ctx, cfg.inputTopic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("listing the input's end offsets: %v %v", err, ends.Error())
	}

	p := e.start()
	var short []string
	if !harness.Poll(ctx, time.Minute, 200*time.Millisecond, func() bool {
		committed, err := e.Admin.FetchOffsets(ctx, e.group)
		if err != nil {
			return false
		}
		short = harness.Uncommitted(ends, committed)
		return len(short) == 0
	}) {
		t.Fatalf("the input was not committed within a minute: %v", short)
	}
	stopCtx, stopCancel := context.WithTimeout(ctx, 40*time.Second)
	err = p.Stop(stopCtx)
	stopCancel()
	t.Logf("%s exited with %v", wallClock(), err)

	committed, err := e.Admin.FetchOffsets(ctx, e.group)
	if err != nil {
		t.Fatalf("fetching the committed offsets: %v", err)
	}
	saved, found, err := e.ReadCheckpoint(ctx, e.group+"-window-state", e.group, nil)
	if err != nil || !found {
		t.Fatalf("reading the checkpoint under %q: found %v, %v", e.group, found, err)
	}
	t.Logf("checkpoint: %d bytes, %d manifests, positions %v", saved.Bytes, saved.Manifests, saved.Positions)
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(o.Topic, o.Partition)
		pos, held := saved.Positions[windowagg.Source{Stream: o.Topic, Partition: o.Partition}]
		if !ok || c.At != o.Offset || !held || pos != c.At-1 {
			t.Errorf("partition %d: %d records, committed %d (%v), the checkpoint's position %d (%v); want the committed offset minus one",
				o.Partition, o.Offset, c.At, ok, pos, held)
		}
	})
	if len(saved.Positions) != len(ends[cfg.inputTopic]) {
		t.Errorf("the checkpoint holds %d positions, want one per input partition: %v", len(saved.Positions), saved.Positions)
	}
}
