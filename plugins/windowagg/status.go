package windowagg

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Status is a copy of what an engine holds, for monitoring. Times are epoch
// milliseconds; math.MinInt64 means none.
type Status struct {
	// Frontier is the close time up to which every window is closed.
	Frontier int64
	// Watermark is the least latest event time of the sources that hold
	// it back (not quiet); math.MinInt64 when none does.
	Watermark int64
	// CloseThrough is the close time up to which Flush would close windows
	// now: the watermark, or less within the discovery hold, or the last
	// open window's close time once every source is quiet.
	CloseThrough int64
	// Sources are the input sources, by stream and partition.
	Sources []SourceStatus
	// Rules are the rules in the order given to New.
	Rules []RuleStatus
}

// SourceStatus is one input source as the watermark sees it.
type SourceStatus struct {
	Source
	// LatestEventTime is the latest event time the source delivered; in a
	// Merger, the frontier its progress reported.
	LatestEventTime int64
	// LastSeen is the wall-clock time the source last delivered or was
	// expected.
	LastSeen time.Time
	// Quiet is set when the source no longer holds the watermark back: it
	// has been silent for the idle timeout, or reported itself idle.
	Quiet bool
	// Idle is set when, in a Merger, the source reported itself idle.
	Idle bool
	// Position is, in a Merger, the source's position in the partials
	// topic as of its last progress taken; math.MinInt64 otherwise.
	Position int64
}

// RuleStatus is what one rule holds.
type RuleStatus struct {
	Name string
	// OpenSeries counts the series of its open windows and of its closed
	// windows kept for corrections.
	OpenSeries int
	// Windows are those windows, by start.
	Windows []WindowStatus
}

// WindowStatus is one window of a rule.
type WindowStatus struct {
	Start, End int64
	// CloseAt is when it closes (or closed): end plus lag. It closes
	// once Status.CloseThrough reaches it.
	CloseAt int64
	Series  int
	// Closed is set for a closed window kept for corrections.
	Closed bool
}

// Status returns a copy of the engine's state for monitoring. It changes
// nothing; like every method it must not run concurrently with the others.
func (e *Engine) Status() Status { return e.status(e.closeTime(allQuiet)) }

// Status returns a copy of the Merger's state for monitoring, as
// Engine.Status does.
func (m *Merger) Status() Status { return m.status(m.closeTime(m.allIdle)) }

// status returns the store's Status, closeThrough being its owner's close
// time.
func (e *store) status(closeThrough int64) Status {
	now := e.clock()
	st := Status{Frontier: e.frontier, Watermark: math.MinInt64, CloseThrough: closeThrough}
	if wm, ok := e.watermark(now); ok {
		st.Watermark = wm
	}
	for src, s := range e.sources {
		st.Sources = append(st.Sources, SourceStatus{
			Source: src, LatestEventTime: s.maxTime, LastSeen: s.lastSeen,
			Quiet: s.idle || now.Sub(s.lastSeen) >= e.cfg.IdleTimeout, Idle: s.idle, Position: s.position,
		})
	}
	slices.SortFunc(st.Sources, func(a, b SourceStatus) int {
		return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Partition, b.Partition))
	})
	for _, r := range e.rules {
		rs := RuleStatus{Name: r.Name}
		add := func(windows map[int64]*window, closed bool) {
			for start, w := range windows {
				rs.OpenSeries += int(w.n)
				rs.Windows = append(rs.Windows, WindowStatus{
					Start: start, End: start + r.size, CloseAt: start + r.size + e.lag, Series: int(w.n), Closed: closed,
				})
			}
		}
		add(r.windows, false)
		add(r.closed, true)
		slices.SortFunc(rs.Windows, func(a, b WindowStatus) int { return cmp.Compare(a.Start, b.Start) })
		st.Rules = append(st.Rules, rs)
	}
	return st
}

// AddOpenSeries adds the series each rule holds (RuleStatus.OpenSeries) to
// open[i], i being the rule's place in the rules given to New, so that a
// caller can sum them over engines without the copies Status makes.
func (e *store) AddOpenSeries(open []int64) {
	for i, r := range e.rules {
		for _, w := range r.windows {
			open[i] += int64(w.n)
		}
		for _, w := range r.closed {
			open[i] += int64(w.n)
		}
	}
}
