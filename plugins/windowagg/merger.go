package windowagg

import (
	"bytes"
	"fmt"
	"time"
)

// Merger is stage two of a two-stage aggregation (see contribution.go): it
// takes the series states of closed windows from stage-one engines
// (Contribute) and their progress (Progress) instead of metrics, keeps one
// contribution per stage-one source and series, and merges them when the
// window closes. Its watermark is the minimum of the sources' progress.
// Like Engine, it is not safe for concurrent use.
type Merger struct {
	store
	named map[string]*ruleState // by rule name
}

// NewMerger builds a Merger for rules, which must have unique names: a
// contribution names its rule.
func NewMerger(cfg Config, rules []Rule) (*Merger, error) {
	if err := CheckRuleNames(rules); err != nil {
		return nil, err
	}
	st, err := newStore(cfg, rules, true)
	if err != nil {
		return nil, err
	}
	m := &Merger{store: st, named: make(map[string]*ruleState, len(st.rules))}
	for _, r := range m.rules {
		m.named[r.Name] = r
	}
	return m, nil
}

// Contribute sets what stage-one source src contributes to one series of
// one window, as of position pos of src in the partials topic: s replaces
// the source's earlier contribution, unless that one was taken at a later
// position (a stale copy, such as one written by an instance that has
// since lost the partition).
// Like Add, it reports Matched for an open window, Corrected for a kept
// closed one that changed, and Late otherwise; Replayed among Late when the
// source had already reported the window delivered, or the state equals
// the one the closed window holds. It fails for a state that does not fit
// the Merger's rules. The outcome is counted for the rule (TakeRuleCounts).
func (m *Merger) Contribute(src Source, pos int64, s *SeriesState) (res AddResult, _ error) {
	r := m.named[s.Rule]
	if err := m.checkContribution(r, s); err != nil {
		return res, err
	}
	var acc Accumulator
	if r.acc != nil {
		var err error
		if acc, err = r.acc.DecodeAccumulator(s.Acc); err != nil {
			return res, fmt.Errorf("rule %q: %w", s.Rule, err)
		}
	}
	defer r.counts.add(&res)
	so := m.source(src, m.clock())
	closeAt := s.WindowStart + r.size + m.lag
	w := m.windowFor(r, s.WindowStart, closeAt, &res)
	if w == nil {
		if res.Replayed == 0 && closeAt <= so.maxTime {
			// The source reported this window delivered before: a
			// stage-one instance that took the partition over from a
			// checkpoint older than the window's close sends it again.
			res.Replayed++
		}
		return res, nil
	}
	tenant := s.TenantID
	if r.AcrossTenants {
		tenant = ""
	}
	m.keyBuf = appendContributionKey(m.keyBuf[:0], m.tenants.id(tenant), s.Values, src)
	idx, ok := w.index[string(m.keyBuf)]
	switch {
	case !ok && m.cfg.MaxSeries > 0 && int(w.n) >= m.cfg.MaxSeries:
		res.Rejected++
		return res, nil
	case !ok:
		idx = w.newSeries(m.regions.id(s.Region), acc)
		w.index[string(m.keyBuf)] = idx
		m.open++
	case pos < w.series(idx).position, closeAt <= m.frontier && m.holds(w, idx, s, acc):
		// Stale, or a replay of what the closed window already holds.
		res.Late++
		res.Replayed++
		return res, nil
	}
	ser := w.series(idx)
	ser.state, ser.position = s.State, pos
	if acc != nil {
		w.setAcc(idx, acc)
	}
	if closeAt <= m.frontier {
		w.dirty = true
		res.Corrected++
		return res, nil
	}
	res.Matched++
	res.CloseAt = closeAt
	return res, nil
}

// holds reports whether series idx of w is s already, with accumulator
// acc (decoded from s). Accumulators compare by their encodings, both of
// decoded accumulators, so that how a sketch happens to store its bins
// cannot tell equal ones apart.
func (m *Merger) holds(w *window, idx int32, s *SeriesState, acc Accumulator) bool {
	if w.series(idx).state != s.State {
		return false
	}
	held := w.acc(idx)
	return held == nil || bytes.Equal(held.AppendBinary(nil), acc.AppendBinary(nil))
}

// checkContribution reports a state that does not fit r, the rule it names
// (nil when none does).
func (m *Merger) checkContribution(r *ruleState, s *SeriesState) error {
	switch {
	case r == nil:
		return fmt.Errorf("no rule named %q", s.Rule)
	case s.WindowEnd-s.WindowStart != r.size || WindowStart(s.WindowStart, r.size) != s.WindowStart:
		return fmt.Errorf("rule %q: window [%d, %d) is not one of its windows of %d ms", s.Rule, s.WindowStart, s.WindowEnd, r.size)
	case len(s.Values) != len(r.GroupBy):
		return fmt.Errorf("rule %q groups by %d dimensions, the state has %d values", s.Rule, len(r.GroupBy), len(s.Values))
	case s.State.Count <= 0:
		return fmt.Errorf("rule %q: empty state", s.Rule)
	}
	return nil
}

// Progress records that stage-one source src has delivered the states of
// every window closing at or before through (its frontier, from
// FlushStates), as of position pos of src in the partials topic, and
// whether it is idle (see Idle): an idle source no longer holds the
// watermark back. Progress older than what the source reported before only
// shows that it is alive.
func (m *Merger) Progress(src Source, pos, through int64, idle bool) {
	s := m.source(src, m.clock())
	if pos < s.position {
		return
	}
	s.position, s.idle = pos, idle
	s.maxTime = max(s.maxTime, through)
}

// source returns the state of src as store.source does. A stage-one
// partition back from silence restarts the discovery hold: the others may
// be coming back too, and must not be left behind.
func (m *Merger) source(src Source, now time.Time) *source {
	if s := m.sources[src]; s != nil && now.Sub(s.lastSeen) >= m.cfg.IdleTimeout {
		m.discovered = now
	}
	return m.store.source(src, now)
}

// Flush closes every window whose close time the watermark, the minimum of
// the sources' progress, has reached, appends their aggregates to dst in
// close-time order, and returns dst and the new frontier. Only once every
// source has reported itself idle do all open windows close: one that
// merely went silent (stage one down, or cut off from the partials topic)
// may still deliver, so it is no longer waited for once others move on,
// but its silence alone closes nothing.
func (m *Merger) Flush(dst []Aggregate) ([]Aggregate, int64) {
	return m.flush(dst, m.closeTime(m.allIdle))
}

// allIdle reports whether every source reported itself idle.
func (m *Merger) allIdle() bool {
	for _, s := range m.sources {
		if !s.idle {
			return false
		}
	}
	return true
}
