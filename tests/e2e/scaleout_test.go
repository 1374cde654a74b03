package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// The scale-out failover test's setup: the topics and their partition
// counts, the window configuration shared by both stages, and the live
// trickle of input.
const (
	scaleInputTopic   = "metrics"
	scalePartials     = "partials"
	scaleOutputTopic  = "aggregates"
	scaleInputParts   = 8
	scalePartialParts = 4
	scaleOutputParts  = 4
	scaleStage1       = 3 // stage-1 instances started
	scaleStage2       = 2 // stage-2 instances started

	scaleWindow = 10 * time.Second
	scaleLag    = 2 * time.Second
	// scaleStage1Idle closes the last windows of each stage-1 partition
	// soon after the input stops. It stays above the pauses of a
	// surviving stage-1 instance's partitions during the rebalance after
	// the kill (a second or two with the pipelines' 1s heartbeat).
	scaleStage1Idle = 5 * time.Second
	// Stage 2 runs with its shipped IDLE_TIMEOUT, far above the time a
	// killed stage-1 instance's partitions are silent (its 10s session
	// timeout, the rebalance and the new owner's catch-up). It closes the
	// last windows once stage 1 reports its partitions idle, so every
	// aggregate arrives within scaleFinalLimit of the input stopping.
	scaleFinalLimit = scaleStage1Idle + scaleLag + scaleWindow + 20*time.Second

	scaleTick          = 150 * time.Millisecond // one batch per input partition per tick
	scaleMaxPerTick    = 2                      // 1..scaleMaxPerTick metrics per partition per tick
	scaleHosts         = 20
	scaleSettleLimit   = 45 * time.Second // for a group to settle after a start or a kill
	scaleFirstOutLimit = 60 * time.Second // for the first aggregates after the input starts
	scaleAfterFailover = 12 * time.Second // input fed after the last failover settled
)

// TestScaleOutFailover runs the two-stage scale-out pipelines
// (pipelines/scale-out/stage1.yaml and stage2.yaml) with three stage-1 and
// two stage-2 instances of the built binary, each stage in its own consumer
// group, over a live trickle of metrics on eight input partitions (event
// time = now, within half the lag), through a partials topic of four
// partitions (PARTIALS_CREATE_PARTITIONS=4) into an output topic of four
// partitions. Windows are 10 s with a 2 s lag; stage 1's IDLE_TIMEOUT is
// 5 s, stage 2 runs with its shipped IDLE_TIMEOUT.
//
// Once both groups are stable and aggregates arrive, one stage-1 instance
// is killed with SIGKILL 3-7 s into a window, with windows open and their
// input held; once the stage-1 group has settled on the two survivors
// (after the 10 s session timeout), one stage-2 instance is killed the same
// way, and the survivor must take over its partials partitions. Neither is
// restarted. The input goes on for a while after the last takeover, then
// stops; stage 1's idle timeout closes the last windows.
//
// Then every (metric, dimensions, tenant, window) of the reference model
// must have been published with exactly its value, record count, record
// time range, region and Kafka key (the series id), as the single-instance
// pipeline publishes it: nothing missing, nothing unexpected, a duplicate
// only when identical. Both groups must have committed their input.
//
// As in the other tests, every kill lands while both consumer groups are
// stable (the pinned kfake can corrupt a group whose member dies during a
// rebalance). It takes about a minute; its steps are bounded by a 3-minute
// context, and a watchdog ends a hung run at 3.5 minutes with every
// goroutine's stack. E2E_SEED repeats a run's data and kill moments;
// E2E_SCALEOUT_PIPELINES names another directory holding a stage1.yaml and
// stage2.yaml to test.
func TestScaleOutFailover(t *testing.T) {
	dir := filepath.Join(repoRoot, "pipelines", "scale-out")
	if d := os.Getenv("E2E_SCALEOUT_PIPELINES"); d != "" {
		dir = d
	}
	for _, f := range []string{"stage1.yaml", "stage2.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("the scale-out pipeline: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	rng := newRand(t)

	cfg := pipelineConfig{
		inputTopic: scaleInputTopic, outputTopic: scaleOutputTopic,
		window: scaleWindow, lag: scaleLag,
		partitions: map[string]int32{
			scaleInputTopic: scaleInputParts, scalePartials: scalePartialParts, scaleOutputTopic: scaleOutputParts,
		},
	}
	e := newEnv(t, cfg)
	group1, group2 := e.group+"-stage1", e.group+"-stage2"
	e.watchGroup(group1)
	e.watchGroup(group2)
	c := e.collect(ctx)

	stage1 := procSpec{
		name: "stage1", pipeline: filepath.Join(dir, "stage1.yaml"), group: group1,
		env: []string{
			"AGGREGATION_SPECS=" + specsFile,
			"WINDOW_SIZE=" + scaleWindow.String(),
			"WINDOW_LAG=" + scaleLag.String(),
			"IDLE_TIMEOUT=" + scaleStage1Idle.String(),
			"PARTIALS_TOPIC=" + scalePartials,
			fmt.Sprintf("PARTIALS_CREATE_PARTITIONS=%d", scalePartialParts),
		},
	}
	stage2 := procSpec{
		name: "stage2", pipeline: filepath.Join(dir, "stage2.yaml"), group: group2,
		env: []string{
			"AGGREGATION_SPECS=" + specsFile,
			"WINDOW_SIZE=" + scaleWindow.String(),
			"WINDOW_LAG=" + scaleLag.String(),
			"PARTIALS_TOPIC=" + scalePartials,
		},
	}
	var s1, s2 []*process
	for range scaleStage1 {
		s1 = append(s1, e.startProc(stage1))
	}
	for range scaleStage2 {
		s2 = append(s2, e.startProc(stage2))
	}
	alive := append(slices.Clone(s1), s2...) // the processes not killed
	watchdog := e.hangWatchdog(3*time.Minute+30*time.Second, slices.Clone(alive))
	t.Cleanup(func() { watchdog.Stop() }) // after the trickle stops
	g1 := groupWant{group: group1, topic: scaleInputTopic, members: scaleStage1, partitions: scaleInputParts}
	g2 := groupWant{group: group2, topic: scalePartials, members: scaleStage2, partitions: scalePartialParts}
	for _, g := range []groupWant{g1, g2} {
		if ok, desc := e.waitSettled(ctx, g, scaleSettleLimit, alive); !ok {
			t.Fatalf("the group %s did not settle on %d members within %v: %s", g.group, g.members, scaleSettleLimit, desc)
		}
	}
	t.Logf("%s both groups stable: %d stage-1 and %d stage-2 instances", wallClock(), scaleStage1, scaleStage2)

	started := time.Now()
	live := startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 2)), trickleSpec{
		tick: scaleTick, partitions: scaleInputParts, lag: scaleLag,
		perTick: scaleMaxPerTick, varyPerTick: true, hosts: scaleHosts, badOneIn: 200,
	})
	t.Logf("%s live trickle started: about %d metrics a second over %d partitions",
		wallClock(), int(float64(scaleInputParts)*float64(1+scaleMaxPerTick)/2*float64(time.Second)/float64(scaleTick)), scaleInputParts)

	// Data flows through both stages.
	if !harness.WaitUntil(ctx, scaleFirstOutLimit, func() bool { return c.count() > 0 }) {
		t.Fatalf("no aggregate within %v of the first input", scaleFirstOutLimit)
	}
	t.Logf("%s first aggregates after %v", wallClock(), time.Since(started).Round(time.Millisecond))

	// SIGKILL one stage-1 instance mid-window, then one stage-2 instance.
	v1 := rng.IntN(len(s1))
	if !consuming(ctx, s1[v1]) {
		t.Logf("stage-1 instance #%d reports no monasca_metrics_received_total", v1+1)
	}
	e.killMidWindow(ctx, rng, s1[v1], "stage-1", c, []groupWant{g1, g2})
	alive = slices.DeleteFunc(alive, func(p *process) bool { return p == s1[v1] })
	g1.members--
	if ok, desc := e.waitSettled(ctx, g1, scaleSettleLimit, alive); !ok {
		t.Fatalf("the stage-1 group did not settle on the survivors within %v: %s", scaleSettleLimit, desc)
	}
	t.Logf("%s the stage-1 survivors hold every input partition (%d outputs so far)", wallClock(), c.count())

	v2 := rng.IntN(len(s2))
	e.killMidWindow(ctx, rng, s2[v2], "stage-2", c, []groupWant{g1, g2})
	alive = slices.DeleteFunc(alive, func(p *process) bool { return p == s2[v2] })
	g2.members--
	if ok, desc := e.waitSettled(ctx, g2, scaleSettleLimit, alive); !ok {
		t.Fatalf("the stage-2 group did not settle on the survivor within %v: %s", scaleSettleLimit, desc)
	}
	t.Logf("%s the stage-2 survivor holds every partials partition (%d outputs so far)", wallClock(), c.count())

	harness.Sleep(ctx, scaleAfterFailover)
	trickled := live.stop()
	if err := live.err(); err != nil {
		t.Fatalf("producing the live trickle: %v", err)
	}
	stopped := time.Now()
	expected := expectedAggregates(trickled, scaleWindow)
	t.Logf("%s live trickle stopped after %v and %d metrics: %d aggregates expected in %d windows",
		wallClock(), stopped.Sub(started).Round(time.Second), len(trickled), len(expected), countWindows(expected))

	// Every expected aggregate arrives: the last windows close in stage 1
	// after its idle timeout, which it reports to stage 2 with the
	// partials, and stage 2 emits them.
	if harness.WaitUntil(ctx, scaleFinalLimit, func() bool { return allSeen(expected, c.outputs()) }) {
		t.Logf("%s every expected aggregate arrived %v after the input stopped", wallClock(), time.Since(stopped).Round(time.Millisecond))
	} else {
		t.Errorf("not every expected aggregate arrived within %v of the input stopping", scaleFinalLimit)
	}

	// Both groups commit what they read; by then the outputs are final.
	if !harness.WaitUntil(ctx, 15*time.Second, func() bool { ok, _ := e.committedAll(ctx, group1, scaleInputTopic, nil); return ok }) {
		_, lag := e.committedAll(ctx, group1, scaleInputTopic, nil)
		t.Errorf("stage 1 did not commit all of its input within 15s: %s", lag)
	}
	partialEnds, err := e.Admin.ListEndOffsets(ctx, scalePartials)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", scalePartials, err)
	}
	if !harness.WaitUntil(ctx, 15*time.Second, func() bool { ok, _ := e.committedAll(ctx, group2, scalePartials, partialEnds); return ok }) {
		_, lag := e.committedAll(ctx, group2, scalePartials, partialEnds)
		t.Errorf("stage 2 did not commit the partials written before stage 1 had committed all input, within 15s: %s", lag)
	}
	outEnds, err := e.Admin.ListEndOffsets(ctx, scaleOutputTopic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", scaleOutputTopic, err)
	}
	if !harness.WaitUntil(ctx, 10*time.Second, func() bool { return c.caughtUp(outEnds) }) {
		t.Errorf("the collector did not read the output topic up to its end within 10s")
	}
	checkOutputs(t, expected, c.outputs(), started, true)

	for i, p := range append(slices.Clone(s1), s2...) {
		if !p.Running() {
			continue
		}
		samples, err := harness.Scrape(ctx, p.httpAddr)
		if err != nil {
			t.Errorf("scraping monasca-connect #%d%s: %v", i+1, p.label(), err)
			continue
		}
		t.Logf("counters of monasca-connect #%d%s:%s", i+1, p.label(), monascaCounters(samples))
		// No input is late (see trickleSpec). Input replayed after a
		// takeover, and partials a new stage-1 owner writes again for
		// windows already published, are replays, not late data: on
		// stage 2, late data means a window published without some of
		// its input, and alerts say so (docs/scale-out.md, Monitoring).
		if late := harness.Sum(samples, "monasca_metrics_late_total", "")[""]; late != 0 {
			t.Errorf("monasca_metrics_late_total = %v on monasca-connect #%d%s, want 0: nothing in this test is late", late, i+1, p.label())
		}
	}
	t.Logf("took %v", time.Since(began).Round(time.Second))
}

// hangWatchdog bounds a test whose every step is bounded by a context, in
// case one blocks anyway: after limit it prints the stack of every
// goroutine of the test binary (the in-process broker's among them) and the
// watched groups' changes, kills the given processes and panics, instead of
// leaving go test's -timeout (10 minutes by default) to end the run with
// the processes orphaned and nothing to tell why. Stop it when the test
// ends.
func (e *testEnv) hangWatchdog(limit time.Duration, procs []*process) *time.Timer {
	name := e.t.Name()
	return time.AfterFunc(limit, func() {
		dumpGoroutines(fmt.Sprintf("%s still runs after %v", name, limit))
		e.groupMu.Lock()
		for _, g := range e.groupOrder {
			fmt.Fprintf(os.Stderr, "--- consumer group %s ---\n%s\n", g, strings.Join(e.groupLogs[g], "\n"))
		}
		e.groupMu.Unlock()
		for _, p := range procs {
			_ = p.Cmd.Process.Kill()
			fmt.Fprintf(os.Stderr, "--- monasca-connect%s (pid %d) log: %s\n", p.label(), p.Pid(), p.Log)
		}
		panic(name + " hung")
	})
}

// dumpGoroutines prints the stack of every goroutine of the test binary to
// stderr, for a broker that stopped answering.
func dumpGoroutines(why string) {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	fmt.Fprintf(os.Stderr, "%s %s; the stacks of every goroutine:\n%s\n", wallClock(), why, buf)
}

// groupWant is the settled state a consumer group should reach: members
// members, each holding some of the partitions 0..partitions-1 of topic,
// every one of them held exactly once.
type groupWant struct {
	group, topic string
	members      int
	partitions   int32
	// oneOwner: one member holds every partition and the others none (the
	// single_owner balancer); otherwise every member holds some.
	oneOwner bool
}

// settled reports whether the group is in the wanted state and stable,
// and describes it; err is the broker's failure to describe it.
func (e *testEnv) settled(ctx context.Context, g groupWant) (ok bool, desc string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := e.Admin.DescribeGroups(ctx, g.group)
	if err != nil {
		return false, "", err
	}
	dg := d[g.group]
	desc = describeGroup(dg)
	if dg.State != "Stable" || len(dg.Members) != g.members {
		return false, desc, nil
	}
	held := map[int32]int{}
	owners := 0
	for _, m := range dg.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return false, desc, nil
		}
		n := 0
		for _, tp := range a.Topics {
			if tp.Topic != g.topic {
				return false, desc, nil
			}
			for _, p := range tp.Partitions {
				held[p]++
				n++
			}
		}
		if n > 0 {
			owners++
		} else if !g.oneOwner {
			return false, desc, nil
		}
	}
	if g.oneOwner && owners != 1 {
		return false, desc, nil
	}
	if len(held) != int(g.partitions) {
		return false, desc, nil
	}
	for p, n := range held {
		if p < 0 || p >= g.partitions || n != 1 {
			return false, desc, nil
		}
	}
	return true, desc, nil
}

// waitSettled waits until the group has been in the wanted state for a
// second, for at most limit or until one of the alive processes exits; it
// returns the group's last description.
// When the broker did not answer the last DescribeGroups, the stacks of
// every goroutine are printed too.
func (e *testEnv) waitSettled(ctx context.Context, g groupWant, limit time.Duration, alive []*process) (bool, string) {
	var desc string
	var err error
	var since time.Time
	var gone *process
	ok := harness.Poll(ctx, limit, 200*time.Millisecond, func() bool {
		for _, p := range alive {
			if !p.Running() {
				gone = p
				return true
			}
		}
		var ok bool
		ok, desc, err = e.settled(ctx, g)
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		}
		return ok && time.Since(since) >= time.Second
	})
	if gone != nil {
		return false, fmt.Sprintf("monasca-connect%s (pid %d) exited: %v", gone.label(), gone.Pid(), gone.Err())
	}
	if err != nil {
		desc = "DescribeGroups: " + err.Error()
		dumpGoroutines(fmt.Sprintf("%s: the broker did not describe the group %s", e.t.Name(), g.group))
	}
	return ok, desc
}

// killMidWindow sends SIGKILL to p at a random moment 3-7 s into a window
// (the previous window closed in stage 1 at 2 s, the lag, so the current
// one is open and holds input) at which every group of gs is settled as
// wanted, and waits for it to be gone.
func (e *testEnv) killMidWindow(ctx context.Context, rng *rand.Rand, p *process, what string, c *collector, gs []groupWant) {
	e.t.Helper()
	deadline := time.Now().Add(scaleSettleLimit)
	for {
		phase := 3*time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))
		size := scaleWindow.Milliseconds()
		now := time.Now().UnixMilli()
		at := now/size*size + phase.Milliseconds()
		if at <= now {
			at += size
		}
		harness.Sleep(ctx, time.Until(time.UnixMilli(at)))
		if ctx.Err() != nil {
			e.t.Fatalf("test deadline reached before the %s kill", what)
		}
		stable := true
		for _, g := range gs {
			if ok, desc, err := e.settled(ctx, g); !ok {
				if err != nil {
					desc = "not described: " + err.Error()
				}
				e.t.Logf("%s not killing the %s instance yet: group %s is %s", wallClock(), what, g.group, desc)
				stable = false
				break
			}
		}
		if stable {
			p.Kill()
			e.t.Logf("%s SIGKILL to the %s instance%s (pid %d) %v into its window (%d outputs so far)",
				wallClock(), what, p.label(), p.Pid(), phase.Round(time.Millisecond), c.count())
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the groups were not stable at any mid-window moment within %v", scaleSettleLimit)
		}
	}
}

// committedAll reports whether the group has committed, on every partition
// of topic, at least the given offsets (nil: the end offsets now), and
// describes the shortfall when it has not.
func (e *testEnv) committedAll(ctx context.Context, group, topic string, ends kadm.ListedOffsets) (bool, string) {
	if ends == nil {
		var err error
		if ends, err = e.Admin.ListEndOffsets(ctx, topic); err != nil {
			return false, err.Error()
		}
	}
	committed, err := e.Admin.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	short := harness.Uncommitted(ends, committed)
	return len(short) == 0, strings.Join(short, ", ")
}

// allSeen reports whether every expected aggregate is among the outputs.
func allSeen(expected map[aggID]expectedAgg, outs []output) bool {
	seen := map[aggID]bool{}
	for i := range outs {
		if id, ok := outs[i].id(); ok {
			seen[id] = true
		}
	}
	for id := range expected {
		if !seen[id] {
			return false
		}
	}
	return true
}

func countWindows(expected map[aggID]expectedAgg) int {
	ws := map[int64]bool{}
	for id := range expected {
		ws[id.window] = true
	}
	return len(ws)
}

// consuming waits up to 10s for an instance to report input received.
func consuming(ctx context.Context, p *process) bool {
	return harness.WaitUntil(ctx, 10*time.Second, func() bool { return received(ctx, p) > 0 })
}

// monascaCounters renders every monasca_* metric of a scrape, summed over
// its labels, for diagnosis.
func monascaCounters(samples []harness.Sample) string {
	sums := map[string]float64{}
	for _, s := range samples {
		if strings.HasPrefix(s.Name, "monasca_") {
			sums[s.Name] += s.Value
		}
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		fmt.Fprintf(&b, " %s=%v", strings.TrimPrefix(name, "monasca_"), sums[name])
	}
	return b.String()
}
