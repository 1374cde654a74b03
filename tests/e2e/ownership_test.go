package e2e

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// The tests of this file move partitions between instances of a pipeline
// while metrics flow live, and then expect every aggregate exact: nothing
// missing, nothing partial, a duplicate only when identical.

const (
	ownWindow     = 10 * time.Second // as scaleWindow: killMidWindow aims into it
	ownLag        = 2 * time.Second
	ownIdle       = 15 * time.Second
	ownParts      = 4
	ownTick       = 100 * time.Millisecond
	ownSettle     = 40 * time.Second // a dead member is evicted after the 10 s session timeout
	ownFinalLimit = 45 * time.Second // the last windows close after the idle timeout
)

var ownConfig = pipelineConfig{
	inputTopic: "metrics", outputTopic: "aggregates",
	window: ownWindow, lag: ownLag, idle: ownIdle,
}

// TestStandbyTakesOver runs two replicas of the single-instance pipeline in
// one consumer group, as an operator who scales its Deployment to two by
// mistake (or on purpose, for high availability) does: one holds every
// partition and the other waits. The active one is SIGKILLed mid-window;
// once the broker evicts it, the standby takes over from its checkpoint.
func TestStandbyTakesOver(t *testing.T) {
	runTakeover(t, false)
}

// TestReplacementWhileDeadMemberHolds kills the only instance mid-window
// and at once starts a replacement under another name (a new pod), while
// the dead member still holds every partition until its session times
// out: the replacement must publish nothing before it holds them all, and
// then every value complete.
func TestReplacementWhileDeadMemberHolds(t *testing.T) {
	runTakeover(t, true)
}

// runTakeover runs the single-instance pipeline ("a", and a standby "b"
// unless a replacement starts after the kill), kills the member that holds
// the partitions mid-window, lets the survivors take over and checks every
// aggregate.
func runTakeover(t *testing.T, replacement bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rng := newRand(t)
	e := newEnv(t, ownConfig)
	c := e.collect(ctx)
	procs := []*process{e.startProc(procSpec{name: "a"})}
	if !replacement {
		procs = append(procs, e.startProc(procSpec{name: "b"}))
	}
	g := groupWant{group: e.group, topic: ownConfig.inputTopic, members: len(procs), partitions: ownParts, oneOwner: true}
	if ok, desc := e.waitSettled(ctx, g, ownSettle, procs); !ok {
		t.Fatalf("the group did not settle within %v: %s", ownSettle, desc)
	}

	started := time.Now()
	live := startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 3)), trickleSpec{
		tick: ownTick, partitions: ownParts, lag: ownLag, perTick: 5, varyPerTick: true, hosts: 40, badOneIn: 200,
	})
	if !harness.WaitUntil(ctx, scaleFirstOutLimit, func() bool { return c.count() > 0 }) {
		t.Fatalf("no aggregate within %v of the first input", scaleFirstOutLimit)
	}
	active := e.owner(ctx, g, procs)
	if active == nil {
		t.Fatal("no process holds the partitions")
	}
	e.killMidWindow(ctx, rng, active, "active", c, []groupWant{g})
	alive := slices.DeleteFunc(slices.Clone(procs), func(p *process) bool { return p == active })
	if replacement {
		alive = append(alive, e.startProc(procSpec{name: "replacement"}))
	}
	g.members = len(alive)
	if ok, desc := e.waitSettled(ctx, g, ownSettle, alive); !ok {
		t.Fatalf("the survivors did not take over within %v: %s", ownSettle, desc)
	}
	t.Logf("%s the survivor holds every partition (%d outputs so far)", wallClock(), c.count())

	harness.Sleep(ctx, 12*time.Second)
	finish(ctx, t, e, c, live, started, alive)
}

// TestStageOneHandOff runs the scale-out stages with one stage-1 instance,
// then starts a second: the rebalance revokes half of the first one's
// partitions, which saves and hands them over before the second one reads
// them. The second is then stopped with SIGTERM (it saves everything and
// commits) and its partitions return to the first once the broker evicts
// it.
func TestStageOneHandOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rng := newRand(t)
	const partials = "partials"
	cfg := ownConfig
	cfg.partitions = map[string]int32{cfg.inputTopic: 8}
	e := newEnv(t, cfg)
	group1, group2 := e.group+"-stage1", e.group+"-stage2"
	e.watchGroup(group1)
	e.watchGroup(group2)
	c := e.collect(ctx)
	env := []string{
		"AGGREGATION_SPECS=" + specsFile,
		"WINDOW_SIZE=" + ownWindow.String(),
		"WINDOW_LAG=" + ownLag.String(),
		"PARTIALS_TOPIC=" + partials,
		"PARTIALS_CREATE_PARTITIONS=4",
	}
	dir := filepath.Join(repoRoot, "pipelines", "scale-out")
	stage1 := procSpec{name: "stage1", pipeline: filepath.Join(dir, "stage1.yaml"), group: group1,
		env: append(slices.Clone(env), "IDLE_TIMEOUT=5s")}
	stage2 := procSpec{name: "stage2", pipeline: filepath.Join(dir, "stage2.yaml"), group: group2, env: env}
	first, merger := e.startProc(stage1), e.startProc(stage2)
	g1 := groupWant{group: group1, topic: cfg.inputTopic, members: 1, partitions: 8}
	g2 := groupWant{group: group2, topic: partials, members: 1, partitions: 4}
	for _, g := range []groupWant{g1, g2} {
		if ok, desc := e.waitSettled(ctx, g, ownSettle, []*process{first, merger}); !ok {
			t.Fatalf("the group %s did not settle within %v: %s", g.group, ownSettle, desc)
		}
	}

	started := time.Now()
	live := startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 4)), trickleSpec{
		tick: ownTick, partitions: 8, lag: ownLag, perTick: 3, varyPerTick: true, hosts: 40, badOneIn: 200,
	})
	if !harness.WaitUntil(ctx, scaleFirstOutLimit, func() bool { return c.count() > 0 }) {
		t.Fatalf("no aggregate within %v of the first input", scaleFirstOutLimit)
	}
	second := e.startProc(stage1)
	g1.members = 2
	if ok, desc := e.waitSettled(ctx, g1, ownSettle, []*process{first, second, merger}); !ok {
		t.Fatalf("stage 1 did not settle on two instances within %v: %s", ownSettle, desc)
	}
	t.Logf("%s partitions handed over to the second stage-1 instance (%d outputs so far)", wallClock(), c.count())
	harness.Sleep(ctx, 2*ownWindow)

	if err := second.Stop(ctx); err != nil {
		t.Fatalf("stopping the second stage-1 instance: %v", err)
	}
	g1.members = 1
	if ok, desc := e.waitSettled(ctx, g1, ownSettle, []*process{first, merger}); !ok {
		t.Fatalf("stage 1 did not settle back on one instance within %v: %s", ownSettle, desc)
	}
	t.Logf("%s the first stage-1 instance holds every partition again (%d outputs so far)", wallClock(), c.count())
	harness.Sleep(ctx, ownWindow)
	finish(ctx, t, e, c, live, started, []*process{first, merger})
}

// TestOutputTopicRecreated deletes the output topic while the pipeline
// writes to it and creates it again: the writes fail meanwhile (the broker
// creates no topic on demand) and are retried, and once the topic is back
// every window that closes from then on is written to it, exactly.
func TestOutputTopicRecreated(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rng := newRand(t)
	e := newEnv(t, ownConfig)
	old := e.collect(ctx)
	p := e.startProc(procSpec{})
	live := startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 5)), trickleSpec{
		tick: ownTick, partitions: ownParts, lag: ownLag, perTick: 5, varyPerTick: true, hosts: 40,
	})
	if !harness.WaitUntil(ctx, scaleFirstOutLimit, func() bool { return old.count() > 0 }) {
		t.Fatalf("no aggregate within %v of the first input", scaleFirstOutLimit)
	}
	old.close()
	if _, err := e.Admin.DeleteTopics(ctx, ownConfig.outputTopic); err != nil {
		t.Fatalf("deleting the output topic: %v", err)
	}
	harness.Sleep(ctx, 3*time.Second) // writes fail meanwhile
	if _, err := e.Admin.CreateTopic(ctx, ownParts, 1, nil, ownConfig.outputTopic); err != nil {
		t.Fatalf("creating the output topic again: %v", err)
	}
	recreated := time.Now()
	t.Logf("%s output topic deleted and created again", wallClock())
	c := e.collect(ctx)
	harness.Sleep(ctx, 3*ownWindow)
	trickled := live.stop()
	if err := live.err(); err != nil {
		t.Fatalf("producing the live trickle: %v", err)
	}
	// The windows that close once the topic is back, with a window of
	// margin for the retries' back-off.
	from := recreated.Add(ownWindow).UnixMilli()
	expected := map[aggID]expectedAgg{}
	for id, a := range expectedAggregates(trickled, ownWindow) {
		if id.window >= from {
			expected[id] = a
		}
	}
	if len(expected) == 0 {
		t.Fatal("no window closes after the topic came back: the test is too short")
	}
	if !harness.WaitUntil(ctx, ownFinalLimit, func() bool { return allSeen(expected, c.outputs()) }) {
		t.Errorf("not every aggregate of the windows after the recreation arrived within %v", ownFinalLimit)
	}
	outs := slices.DeleteFunc(c.outputs(), func(o output) bool {
		id, ok := o.id()
		return ok && id.window < from
	})
	checkOutputs(t, expected, outs, recreated, true)
	if !p.Running() {
		t.Fatal("the pipeline exited")
	}
}

// finish stops the trickle, waits until every expected aggregate arrived
// and the input is committed, and checks the outputs and that nothing was
// late on the survivors.
func finish(ctx context.Context, t *testing.T, e *testEnv, c *collector, live *trickle, started time.Time, alive []*process) {
	t.Helper()
	trickled := live.stop()
	if err := live.err(); err != nil {
		t.Fatalf("producing the live trickle: %v", err)
	}
	stopped := time.Now()
	expected := expectedAggregates(trickled, ownWindow)
	t.Logf("%s live trickle stopped after %d metrics: %d aggregates expected in %d windows",
		wallClock(), len(trickled), len(expected), countWindows(expected))
	if harness.WaitUntil(ctx, ownFinalLimit, func() bool { return allSeen(expected, c.outputs()) }) {
		t.Logf("%s every expected aggregate arrived %v after the input stopped", wallClock(), time.Since(stopped).Round(time.Millisecond))
	} else {
		t.Errorf("not every expected aggregate arrived within %v of the input stopping", ownFinalLimit)
	}
	outEnds, err := e.outAdmin.ListEndOffsets(ctx, e.cfg.outputTopic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", e.cfg.outputTopic, err)
	}
	if !harness.WaitUntil(ctx, 10*time.Second, func() bool { return c.caughtUp(outEnds) }) {
		t.Errorf("the collector did not read the output topic up to its end within 10s")
	}
	checkOutputs(t, expected, c.outputs(), started, true)
	for _, p := range alive {
		samples, err := harness.Scrape(ctx, p.httpAddr)
		if err != nil {
			t.Errorf("scraping monasca-connect%s: %v", p.label(), err)
			continue
		}
		t.Logf("counters of monasca-connect%s:%s", p.label(), monascaCounters(samples))
		if late := harness.Sum(samples, "monasca_metrics_late_total", "")[""]; late != 0 {
			t.Errorf("monasca_metrics_late_total = %v on monasca-connect%s, want 0", late, p.label())
		}
	}
}

// owner returns the process whose instance holds the group's partitions.
func (e *testEnv) owner(ctx context.Context, g groupWant, procs []*process) *process {
	d, err := e.Admin.DescribeGroups(ctx, g.group)
	if err != nil {
		e.t.Fatalf("describing %s: %v", g.group, err)
	}
	for _, m := range d[g.group].Members {
		if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 || m.InstanceID == nil {
			continue
		}
		for _, p := range procs {
			if p.instanceID == *m.InstanceID {
				return p
			}
		}
	}
	return nil
}
