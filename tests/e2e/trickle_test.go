package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// trickleSpec is a live input: every tick, metrics on each input partition,
// stamped with the current time less a jitter below half the lag, so that
// none is late (the watermark never passes the latest timestamp a
// partition has delivered).
type trickleSpec struct {
	tick       time.Duration
	partitions int32
	lag        time.Duration
	// perTick metrics per partition and tick; with varyPerTick,
	// 1..perTick at random.
	perTick     int
	varyPerTick bool
	// hosts, when not zero, spreads the hostname dimension over this many
	// hosts instead of the backlog's.
	hosts int
	// badOneIn, when not zero, adds a malformed message to a partition's
	// tick with a chance of one in badOneIn.
	badOneIn int
	// produced, when set, is told every batch of records the broker
	// acknowledged; an error stops the trickle.
	produced func([]*kgo.Record) error
}

// trickle produces a trickleSpec's input until stopped, or until the test
// ends.
type trickle struct {
	done    chan struct{}
	quit    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	metrics []inputMetric // every valid metric produced and acknowledged
	failed  error         // the first error; the trickle stops at it
}

func startTrickle(ctx context.Context, e *testEnv, rng *rand.Rand, spec trickleSpec) *trickle {
	tr := &trickle{done: make(chan struct{}), quit: make(chan struct{})}
	total := 0
	for _, n := range metricNames {
		total += n.weight
	}
	jitter := max(spec.lag.Milliseconds()/2, 1)
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(spec.tick)
		defer tick.Stop()
		for {
			select {
			case <-tr.quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now().UnixMilli()
			var recs []*kgo.Record
			var ms []inputMetric
			for p := range spec.partitions {
				n := spec.perTick
				if spec.varyPerTick {
					n = 1 + rng.IntN(spec.perTick)
				}
				for range n {
					m := inputMetric{
						name:   pickName(rng.IntN(total)),
						dims:   pickDims(rng),
						ts:     now - rng.Int64N(jitter),
						value:  rng.Int64N(1000),
						tenant: tenants[rng.IntN(len(tenants))],
					}
					if m.name == "net.in_bytes" {
						m.value *= 1000
					}
					if _, ok := m.dims["hostname"]; ok && spec.hosts > 0 {
						m.dims["hostname"] = fmt.Sprintf("host-%d", rng.IntN(spec.hosts))
					}
					ms = append(ms, m)
					recs = append(recs, inputRecord(p, m.envelope()))
				}
				if spec.badOneIn > 0 && rng.IntN(spec.badOneIn) == 0 {
					recs = append(recs, inputRecord(p, []byte(badMessages["malformed_json"])))
				}
			}
			for _, r := range recs {
				r.Topic = e.cfg.inputTopic
			}
			// Not cancelled with ctx: a produce cut short would leave
			// unknown which records were written. A minute without a
			// produce acknowledgement fails the test.
			pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			err := e.Client.ProduceSync(pctx, recs...).FirstErr()
			pcancel()
			if err == nil && spec.produced != nil {
				err = spec.produced(recs)
			}
			tr.mu.Lock()
			if err != nil {
				tr.failed = err
			} else {
				tr.metrics = append(tr.metrics, ms...)
			}
			tr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// Registered after newEnv's: runs before the cluster closes.
	e.t.Cleanup(func() { tr.stop() })
	return tr
}

// stop ends the trickle, waits for its last produce and returns every
// valid metric it produced.
func (tr *trickle) stop() []inputMetric {
	tr.once.Do(func() { close(tr.quit) })
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.metrics)
}

// err returns the error that stopped the trickle, if any.
func (tr *trickle) err() error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.failed
}
