package components

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// statusReport is what the buffer's status page shows, and /status.json
// returns: the specifications with their counts, and per lane its input
// partitions, open windows and last checkpoint. Times are UTC; a time or
// offset that is not known yet is null.
type statusReport struct {
	Time           time.Time    `json:"time"`
	Stage          string       `json:"stage"`
	WindowSize     string       `json:"window_size"`
	WindowLag      string       `json:"window_lag"`
	Stopping       bool         `json:"stopping"`
	Specifications []specStatus `json:"specifications"`
	Lanes          []laneStatus `json:"lanes"`
}

// specStatus is one specification: the series it holds over all lanes, and
// the counts of monasca_spec_*_total since start.
type specStatus struct {
	Name       string `json:"name"`
	OpenSeries int    `json:"open_series"`
	Folded     int64  `json:"folded"`
	Corrected  int64  `json:"corrected"`
	Late       int64  `json:"late"`
	// SeriesLimit counts the metrics rejected as invalid because they
	// would have started a series beyond max_series_per_window: the
	// invalid metrics a specification can be told for.
	SeriesLimit int64 `json:"series_limit"`
}

// laneStatus is one lane: the whole input in stage single, one input
// partition in the scale-out stages.
type laneStatus struct {
	StateKey string `json:"state_key"`
	// Input is the lane's input partition, "" in stage single.
	Input string `json:"input,omitempty"`
	// Restored is false while what an earlier run saved is being read.
	Restored bool `json:"restored"`
	// Frontier: every window closing at or before it is closed.
	Frontier *time.Time `json:"frontier"`
	// Watermark is the least latest event time of the partitions that
	// hold it back.
	Watermark *time.Time `json:"watermark"`
	// CloseThrough is the close time up to which windows close now
	// (while the output is idle and, in stage single, every input
	// partition is held).
	CloseThrough *time.Time `json:"close_through"`
	// Checkpoint is the last checkpoint this run saved.
	Checkpoint *checkpointStatus `json:"checkpoint"`
	// Partitions are the input partitions the watermark follows; in stage
	// merge, the stage-one partitions, with their progress.
	Partitions []partitionStatus `json:"partitions"`
	// Windows are the open windows, and the closed ones kept for
	// corrections, by start.
	Windows []windowStatus `json:"windows"`
}

type checkpointStatus struct {
	Time  time.Time `json:"time"`
	Bytes int       `json:"bytes"`
}

// partitionStatus is one input partition of a lane.
type partitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// LatestEventTime is the partition's watermark: the latest event time
	// it delivered (stage merge: the frontier its progress reported).
	LatestEventTime *time.Time `json:"latest_event_time"`
	// LagMS is how far LatestEventTime trails the lane's newest.
	LagMS *int64 `json:"lag_ms"`
	// Offset is the last input offset folded (with checkpoints, the one
	// the next checkpoint holds); in stage merge, the stage-one offset
	// its last progress reflects.
	Offset   *int64    `json:"offset"`
	LastSeen time.Time `json:"last_seen"`
	// Quiet partitions no longer hold the watermark back.
	Quiet bool `json:"quiet"`
	// Idle is set when a stage-one partition reported itself idle.
	Idle bool `json:"idle"`
}

// windowStatus is one window of a specification. It closes once the lane's
// close time reaches CloseAt: its end plus the lag.
type windowStatus struct {
	Spec    string    `json:"spec"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	CloseAt time.Time `json:"close_at"`
	Series  int       `json:"series"`
	// Closed is set for a closed window kept for corrections.
	Closed bool `json:"closed"`
}

// savedCheckpoint is when a lane's last checkpoint was saved, and its size.
type savedCheckpoint struct {
	at    time.Time
	bytes int
}

// status takes a snapshot of the buffer under mu; the caller renders it
// after the lock is released.
func (b *aggregateBuffer) status() statusReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := statusReport{
		Time:       b.clock().UTC(),
		Stage:      b.stage.name(),
		WindowSize: b.config.aggregation.engine.Window.String(),
		WindowLag:  b.config.aggregation.engine.Lag.String(),
		Stopping:   b.stopping,
	}
	specs := b.folder.stats.specs
	r.Specifications = make([]specStatus, len(b.config.aggregation.rules))
	for i := range b.config.aggregation.rules {
		t := specs.totals[i]
		r.Specifications[i] = specStatus{Name: b.config.aggregation.rules[i].Name, Folded: t.Matched, Corrected: t.Corrected, Late: t.Late, SeriesLimit: t.Rejected}
	}
	for _, l := range b.laneOrder {
		st := l.engine.Status()
		for i, rs := range st.Rules {
			r.Specifications[i].OpenSeries += rs.OpenSeries
		}
		r.Lanes = append(r.Lanes, b.describeLane(l, &st))
	}
	return r
}

// describeLane describes lane l from its engine's status st. Called with mu
// held.
func (b *aggregateBuffer) describeLane(l *lane, st *windowagg.Status) laneStatus {
	ls := laneStatus{
		StateKey:     l.stateKey,
		Restored:     l.restored.Load(),
		Frontier:     msTime(st.Frontier),
		Watermark:    msTime(st.Watermark),
		CloseThrough: msTime(st.CloseThrough),
	}
	if l.src != (windowagg.Source{}) {
		ls.Input = fmt.Sprintf("%s/%d", l.src.Stream, l.src.Partition)
	}
	if !l.lastSaved.at.IsZero() {
		ls.Checkpoint = &checkpointStatus{Time: l.lastSaved.at.UTC(), Bytes: l.lastSaved.bytes}
	}
	newest := int64(math.MinInt64)
	for _, s := range st.Sources {
		newest = max(newest, s.LatestEventTime)
	}
	for _, s := range st.Sources {
		p := partitionStatus{
			Topic: s.Stream, Partition: s.Partition,
			LatestEventTime: msTime(s.LatestEventTime),
			LastSeen:        s.LastSeen.UTC(), Quiet: s.Quiet, Idle: s.Idle,
		}
		if s.LatestEventTime != math.MinInt64 {
			lag := newest - s.LatestEventTime
			p.LagMS = &lag
		}
		p.Offset = b.offsetOf(l, s)
		ls.Partitions = append(ls.Partitions, p)
	}
	for _, rs := range st.Rules {
		for _, w := range rs.Windows {
			ls.Windows = append(ls.Windows, windowStatus{
				Spec: rs.Name, Start: time.UnixMilli(w.Start).UTC(), End: time.UnixMilli(w.End).UTC(),
				CloseAt: time.UnixMilli(w.CloseAt).UTC(), Series: w.Series, Closed: w.Closed,
			})
		}
	}
	// In the order they close; specifications in file order.
	slices.SortStableFunc(ls.Windows, func(a, b windowStatus) int { return a.CloseAt.Compare(b.CloseAt) })
	return ls
}

// offsetOf returns the input offset known for source s of lane l: the last
// one folded or, in stage merge, where sources are stage-one partitions,
// the one their progress reflects. Called with mu held.
func (b *aggregateBuffer) offsetOf(l *lane, s windowagg.SourceStatus) *int64 {
	o := s.Position
	if pos, ok := l.positions[s.Source]; ok {
		o = max(o, pos)
	}
	if o == math.MinInt64 {
		return nil
	}
	return &o
}

// msTime returns epoch milliseconds ms as a UTC time, nil for
// math.MinInt64 or math.MaxInt64 (none).
func msTime(ms int64) *time.Time {
	if ms == math.MinInt64 || ms == math.MaxInt64 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}
