package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/monasca-connect/monasca-connect/internal/harness"
)

// TestFaultInjection interrupts the pipeline 25 times while it works through
// a backlog and a live trickle of input: 20 SIGKILLs and 5 SIGTERMs, each
// at a random moment of one of these kinds, restarting it after each:
//
//   - mid-window: a random moment in the first 2.5s after the instance
//     starts consuming, with windows open and their input held;
//   - during a flush: the moment the first aggregates of the flush after
//     partition discovery (many windows at once) reach the output topic;
//   - right after an output write: the moment a live window's aggregates
//     reach the output topic, after the catch-up flush;
//   - after the frontier is saved: the moment the window-state topic grows,
//     before the input offsets it releases are committed;
//   - around a commit: a random sub-second delay after the group's
//     committed offsets were seen to advance (they are committed every
//     second).
//
// Then the trickle stops, a last instance drains the input, and every
// (metric, dimensions, tenant, window) must have been published with the
// value computed over each input metric exactly once: nothing missing,
// nothing unexpected, a duplicate only when identical.
//
// As in TestCrashAndRestartExactlyOnceValues, every interruption lands while
// the instance is the only member of the consumer group and consumes, never
// while it joins: the pinned kfake can corrupt the group when a member dies
// during a rebalance.
//
// It takes several minutes, bounded at 9 (a restart takes over the killed
// instance's static membership at once; an instance killed in the middle of
// a rebalance costs the 10s session timeout), so it runs only with
// E2E_FAULTS=1, as .ci/run does. E2E_SEED repeats a run's data,
// order of interruptions and delays.
func TestFaultInjection(t *testing.T) {
	if os.Getenv("E2E_FAULTS") != "1" {
		t.Skip("fault injection takes about 7 minutes; run it with E2E_FAULTS=1 (.ci/run does)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 9*time.Minute)
	defer cancel()
	cfg := restartConfig
	w := workload{
		window: cfg.window, lag: cfg.lag, windows: 60, perWindow: 500, partitions: 4,
		bad: map[string]int{"malformed_json": 10, "wrong_type": 10, "non_finite_value": 10, "missing_field": 10},
	}
	rng := newRand(t)
	e, c, expected := backlog(ctx, t, cfg, w, rng)
	f := &faultRun{ctx: ctx, e: e, rng: rng}
	steps := faultSchedule(rng)

	started := time.Now()
	live := startTrickle(ctx, e, rand.New(rand.NewPCG(rng.Uint64(), 1)), trickleSpec{
		tick: faultTrickleTick, partitions: w.partitions, lag: w.lag,
		perTick: faultTricklePerTick, hosts: faultTrickleHosts, badOneIn: 100,
	})
	t.Logf("%s live trickle started: %d metrics a second over %d partitions and %d hosts, event time = now minus up to %v",
		wallClock(), faultTricklePerTick*int(w.partitions)*int(time.Second/faultTrickleTick), w.partitions, faultTrickleHosts, cfg.lag/2)

	var missed []string
	for i, s := range steps {
		p := e.start()
		m := f.await(p, s.kind)
		if !m.ok {
			missed = append(missed, fmt.Sprintf("#%d %s %s: %s", i+1, s.signal(), s.kind, m.desc))
		}
		at, elapsed := wallClock(), time.Since(started).Seconds()
		if !s.term {
			p.Kill()
			t.Logf("%s (+%.1fs) interruption %d/%d: SIGKILL %s: %s", at, elapsed, i+1, len(steps), s.kind, m.desc)
		} else {
			stopCtx, stopCancel := context.WithTimeout(ctx, 40*time.Second)
			err := p.Stop(stopCtx)
			stopCancel()
			t.Logf("%s (+%.1fs) interruption %d/%d: SIGTERM %s: %s; exited at %s with %v",
				at, elapsed, i+1, len(steps), s.kind, m.desc, wallClock(), err)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("interruption %d: the pipeline did not exit within 40s of SIGTERM", i+1)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("test deadline reached after %d of %d interruptions", i+1, len(steps))
		}
	}
	t.Logf("%d interruptions in %v", len(steps), time.Since(started).Round(time.Second))

	trickled := live.stop()
	if err := live.err(); err != nil {
		t.Fatalf("producing the live trickle: %v", err)
	}
	liveExpected := expectedAggregates(trickled, cfg.window)
	for id, a := range liveExpected {
		if _, ok := expected[id]; ok {
			t.Fatalf("live window %v overlaps the backlog", id)
		}
		expected[id] = a
	}
	t.Logf("%s live trickle stopped after %d metrics: %d aggregates expected in all",
		wallClock(), len(trickled), len(expected))

	p := e.start()
	if e.waitDrained(ctx, c) {
		t.Logf("drained %v after the first start", time.Since(started).Round(time.Millisecond))
	}
	checkOutputs(t, expected, c.outputs(), started, true)
	if samples, err := harness.Scrape(ctx, p.httpAddr); err == nil {
		logCounters(t, samples)
		if late := harness.Sum(samples, "monasca_metrics_late_total", "")[""]; late != 0 {
			t.Errorf("monasca_metrics_late_total = %v in the last run, want 0", late)
		}
	}
	if len(missed) > 0 {
		t.Errorf("%d interruptions did not find their moment (the pipeline did not get there within the limit):\n  %s",
			len(missed), strings.Join(missed, "\n  "))
	}
}

// faultKind is the kind of moment an interruption waits for.
type faultKind int

const (
	faultMidWindow faultKind = iota
	faultFlush
	faultWrite
	faultFrontier
	faultCommit
)

func (k faultKind) String() string {
	return [...]string{"mid-window", "during a flush", "right after an output write", "right after the frontier save", "around a commit"}[k]
}

// faultStep is one interruption: SIGTERM or SIGKILL, at a moment of a kind.
type faultStep struct {
	term bool
	kind faultKind
}

func (s faultStep) signal() string {
	if s.term {
		return "SIGTERM"
	}
	return "SIGKILL"
}

// faultSchedule returns the interruptions in a random order: 20 SIGKILLs
// and 5 SIGTERMs.
func faultSchedule(rng *rand.Rand) []faultStep {
	plan := []struct {
		step faultStep
		n    int
	}{
		{faultStep{false, faultMidWindow}, 12},
		{faultStep{false, faultFlush}, 2},
		{faultStep{false, faultWrite}, 2},
		{faultStep{false, faultFrontier}, 2},
		{faultStep{false, faultCommit}, 2},
		{faultStep{true, faultMidWindow}, 3},
		{faultStep{true, faultFlush}, 1},
		{faultStep{true, faultCommit}, 1},
	}
	var steps []faultStep
	for _, p := range plan {
		for range p.n {
			steps = append(steps, p.step)
		}
	}
	rng.Shuffle(len(steps), func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
	return steps
}

// faultRun finds the moments to interrupt at.
type faultRun struct {
	ctx context.Context
	e   *testEnv
	rng *rand.Rand
}

// faultMoment is the outcome of waiting for a moment: what happened, and
// whether the awaited condition was met before its limit.
type faultMoment struct {
	desc string
	ok   bool
}

// faultLimit bounds each wait for a condition: an instance gets its
// partitions within the 10s session timeout of the one killed before it,
// and closes its first windows once every partition has delivered or been
// quiet for the idle timeout (15s).
const faultLimit = 45 * time.Second

// await waits for a moment of the given kind in the life of p and returns
// at it, for the caller to interrupt p at once.
func (f *faultRun) await(p *process, kind faultKind) faultMoment {
	startOut := f.endSum(f.e.cfg.outputTopic)
	wrote := func() string {
		return fmt.Sprintf("this instance wrote %d aggregates", f.endSum(f.e.cfg.outputTopic)-startOut)
	}
	if !harness.Poll(f.ctx, faultLimit, 50*time.Millisecond, func() bool { return received(f.ctx, p) > 0 && f.soleMember() }) {
		return faultMoment{fmt.Sprintf("it consumed nothing within %v (%s)", faultLimit, wrote()), false}
	}
	consuming := time.Now()
	limit := faultLimit - time.Since(consuming)
	switch kind {
	case faultMidWindow:
		d := time.Duration(f.rng.Int64N(int64(2500 * time.Millisecond)))
		harness.Sleep(f.ctx, d)
		return faultMoment{fmt.Sprintf("%v after it started consuming (%s)", d.Round(time.Millisecond), wrote()), true}

	case faultFlush:
		if !f.grows(f.e.cfg.outputTopic, startOut, limit) {
			return faultMoment{fmt.Sprintf("no aggregates within %v of consuming", limit.Round(time.Second)), false}
		}
		return faultMoment{fmt.Sprintf("as its first flush reached the output topic, %v after it started consuming (%s)",
			time.Since(consuming).Round(time.Millisecond), wrote()), true}

	case faultWrite:
		if !f.grows(f.e.cfg.outputTopic, startOut, limit) {
			return faultMoment{fmt.Sprintf("no aggregates within %v of consuming", limit.Round(time.Second)), false}
		}
		// Let the catch-up flush finish: wait for a lull in the writes,
		// then for the next write, a live window's aggregates.
		lullLimit := time.Now().Add(limit)
		for {
			last := f.endSum(f.e.cfg.outputTopic)
			if !harness.Poll(f.ctx, 300*time.Millisecond, 5*time.Millisecond, func() bool { return f.endSum(f.e.cfg.outputTopic) != last }) {
				break
			}
			if time.Now().After(lullLimit) {
				return faultMoment{"the output was never quiet for 300ms", false}
			}
		}
		before := f.endSum(f.e.cfg.outputTopic)
		if !f.grows(f.e.cfg.outputTopic, before, 5*time.Second) {
			return faultMoment{"no live window written within 5s of the catch-up flush", false}
		}
		return faultMoment{fmt.Sprintf("as a live window's %d aggregates reached the output topic, %v after it started consuming (%s)",
			f.endSum(f.e.cfg.outputTopic)-before, time.Since(consuming).Round(time.Millisecond), wrote()), true}

	case faultFrontier:
		state := f.e.group + "-window-state"
		before := f.endSum(state)
		if !f.grows(state, before, limit) {
			return faultMoment{fmt.Sprintf("no frontier saved within %v of consuming", limit.Round(time.Second)), false}
		}
		return faultMoment{fmt.Sprintf("as it saved the window frontier, %v after it started consuming (%s)",
			time.Since(consuming).Round(time.Millisecond), wrote()), true}

	case faultCommit:
		before := f.committed()
		if !harness.Poll(f.ctx, limit, 5*time.Millisecond, func() bool { return f.committed() > before }) {
			return faultMoment{fmt.Sprintf("no commit within %v of consuming", limit.Round(time.Second)), false}
		}
		at, advanced := wallClock(), f.committed()-before
		d := time.Duration(f.rng.Int64N(int64(time.Second)))
		harness.Sleep(f.ctx, d)
		return faultMoment{fmt.Sprintf("%v after its committed offsets advanced by %d at %s (%s)",
			d.Round(time.Millisecond), advanced, at, wrote()), true}
	}
	panic("unknown moment")
}

// grows polls until the end offsets of topic add up to more than from.
func (f *faultRun) grows(topic string, from int64, limit time.Duration) bool {
	return harness.Poll(f.ctx, limit, 5*time.Millisecond, func() bool { return f.endSum(topic) > from })
}

// endSum adds up the end offsets of a topic's partitions, 0 while the topic
// does not exist.
func (f *faultRun) endSum(topic string) int64 {
	ends, err := f.e.Admin.ListEndOffsets(f.ctx, topic)
	if err != nil {
		return 0
	}
	return harness.SumOffsets(ends)
}

// committed adds up the consumer group's committed offsets of the input
// topic.
func (f *faultRun) committed() int64 {
	offs, err := f.e.Admin.FetchOffsets(f.ctx, f.e.group)
	if err != nil {
		return 0
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == f.e.cfg.inputTopic && o.Err == nil && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// soleMember reports whether the consumer group is stable with a single
// member holding every partition: whatever instance ran before has left it
// or been evicted, and no rebalance is under way.
func (f *faultRun) soleMember() bool {
	d, err := f.e.Admin.DescribeGroups(f.ctx, f.e.group)
	if err != nil {
		return false
	}
	g := d[f.e.group]
	if g.State != "Stable" || len(g.Members) != 1 {
		return false
	}
	a, ok := g.Members[0].Assigned.AsConsumer()
	if !ok {
		return false
	}
	n := 0
	for _, tp := range a.Topics {
		n += len(tp.Partitions)
	}
	return n == 4
}

// The live trickle: every tick, faultTricklePerTick metrics per partition
// (see trickleSpec), and now and then an invalid message. Its hosts are more
// than the backlog's, for about a hundred aggregates a window: the flush
// after a restart then holds several output batches of 1024.
const (
	faultTrickleTick    = 50 * time.Millisecond
	faultTricklePerTick = 3
	faultTrickleHosts   = 40
)
