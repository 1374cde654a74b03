package components

import (
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// derivedStats counts, per derived specification and reason, the groups
// and windows whose formula gave no value
// (monasca_derived_skipped_total{spec,reason}), and logs them at a limited
// rate. The engine counts them when windows close; record collects them
// after each flush.
type derivedStats struct {
	skipped *service.MetricCounter
	rules   []derivedRule
	log     *invalidLog
}

type derivedRule struct {
	name       string
	derivation *windowagg.Derivation
}

func newDerivedStats(m *service.Metrics, log *service.Logger, rules []windowagg.Rule) *derivedStats {
	s := &derivedStats{
		skipped: m.NewCounter("monasca_derived_skipped_total", "spec", "reason"),
		log:     &invalidLog{log: log, every: 10 * time.Second, what: "derived value"},
	}
	for _, r := range rules {
		if d, ok := r.Combine.(*windowagg.Derivation); ok {
			s.rules = append(s.rules, derivedRule{r.Name, d})
			// Exported at zero, so that a rate over them works from
			// the start.
			for _, reason := range windowagg.SkipReasons {
				s.skipped.Incr(0, r.Name, reason)
			}
		}
	}
	return s
}

// record adds what the derivations skipped since the last call.
func (s *derivedStats) record() {
	for _, r := range s.rules {
		for _, sk := range r.derivation.TakeSkipped() {
			s.skipped.Incr(sk.Count, r.name, sk.Reason)
			err := sk.Err
			if err == nil {
				err = fmt.Errorf("an input had no value for the group and window")
			}
			s.log.report(r.name+"/"+sk.Reason, fmt.Errorf("specification %q: %d skipped: %w", r.name, sk.Count, err))
		}
	}
}
