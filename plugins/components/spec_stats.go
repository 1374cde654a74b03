package components

import (
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// specStats are the per-specification metrics: which specification the
// metrics went to, were late for or hit the series limit of, and how many
// series each holds. Their one label, spec, is a rule's name: the rules
// are the validated specifications, so the label has as many values as
// there are specifications, whatever the input. Specifications that share
// a name share their series.
type specStats struct {
	matched     *service.MetricCounter
	corrected   *service.MetricCounter
	late        *service.MetricCounter
	seriesLimit *service.MetricCounter
	openSeries  *service.MetricGauge

	// labels holds each rule's label values, built once: an increment
	// then passes an existing slice instead of building one.
	labels [][]string
	// batch is the engine's counts of the last batch, reused.
	batch []windowagg.RuleCounts
	// totals are the counts since start, for the status page.
	totals []windowagg.RuleCounts
	// open is the last value set per rule on openSeries.
	open []int64
}

func newSpecStats(m *service.Metrics, rules []windowagg.Rule) *specStats {
	s := &specStats{
		matched:     m.NewCounter("monasca_spec_matched_total", "spec"),
		corrected:   m.NewCounter("monasca_spec_corrected_total", "spec"),
		late:        m.NewCounter("monasca_spec_late_total", "spec"),
		seriesLimit: m.NewCounter("monasca_spec_series_limit_total", "spec"),
		openSeries:  m.NewGauge("monasca_spec_open_series", "spec"),
		labels:      make([][]string, len(rules)),
		totals:      make([]windowagg.RuleCounts, len(rules)),
		open:        make([]int64, len(rules)),
	}
	for i := range rules {
		s.labels[i] = []string{rules[i].Name}
		s.open[i] = -1 // not set yet
		// Exported at zero from the start, so that a specification
		// that never matches shows as such instead of being absent.
		for _, c := range []*service.MetricCounter{s.matched, s.corrected, s.late, s.seriesLimit} {
			c.Incr(0, s.labels[i]...)
		}
	}
	return s
}

// record takes the per-rule counts of the batch engine has just folded and
// adds them to the counters, once per batch and rule that counted anything.
func (s *specStats) record(engine laneEngine) {
	s.batch = engine.TakeRuleCounts(s.batch)
	for i, c := range s.batch {
		if c == (windowagg.RuleCounts{}) {
			continue
		}
		t := &s.totals[i]
		t.Matched += c.Matched
		t.Corrected += c.Corrected
		t.Late += c.Late
		t.Rejected += c.Rejected
		incr(s.matched, c.Matched, s.labels[i])
		incr(s.corrected, c.Corrected, s.labels[i])
		incr(s.late, c.Late, s.labels[i])
		incr(s.seriesLimit, c.Rejected, s.labels[i])
	}
}

func incr(c *service.MetricCounter, n int64, labels []string) {
	if n > 0 {
		c.Incr(n, labels...)
	}
}

// setOpenSeries sets the open series of every rule, open[i] being rule i's,
// touching only the values that changed.
func (s *specStats) setOpenSeries(open []int64) {
	for i, n := range open {
		if n != s.open[i] {
			s.openSeries.Set(n, s.labels[i]...)
			s.open[i] = n
		}
	}
}

// setSpecGauges sets the open series of every specification, summed over
// lanes. Called with mu held, at most once per check interval rather than
// per batch: it visits every window of every rule of every lane.
func (b *aggregateBuffer) setSpecGauges() {
	open := b.specOpen[:0]
	for range b.config.aggregation.rules {
		open = append(open, 0)
	}
	for _, l := range b.laneOrder {
		l.engine.AddOpenSeries(open)
	}
	b.specOpen = open
	b.folder.stats.specs.setOpenSeries(open)
}
