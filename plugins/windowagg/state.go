package windowagg

import "math"

// State is the running summary of the samples of one series in one window.
// Every Function reads its result from a State, and two States merge into the
// State of the union of their samples, which is what makes partial aggregates
// (per partition, per instance) combinable.
type State struct {
	Count      int64 // number of values folded in
	Records    int64 // number of input records behind them (see AddPartial)
	Sum        float64
	Min        float64
	Max        float64
	FirstTime  int64 // epoch ms of the earliest sample
	FirstValue float64
	LastTime   int64 // epoch ms of the latest sample
	LastValue  float64
	// FirstRecords and LastRecords are the record counts of the partials
	// that supplied the first and the last sample (1 for plain samples):
	// monasca-transform's pre-hourly rate counts only those two rows.
	FirstRecords int64
	LastRecords  int64
}

// Add folds one sample into s. Ties on time keep the first-arrived sample as
// the first and the last-arrived as the last, so results do not depend on
// which of two equal timestamps a sort put first.
func (s *State) Add(ts int64, v float64) {
	s.AddPartial(v, single(ts, v))
}

// Partial describes a value that already summarises several records, such
// as a row of monasca-transform's instance-usage topic: how many records, and
// the earliest and latest of them.
type Partial struct {
	Records    int64
	FirstTime  int64
	FirstValue float64
	LastTime   int64
	LastValue  float64
}

// AddPartial folds one value summarising p.Records records into s: the value
// counts once for sum, count, avg, min and max, while p's records and times
// feed the record count and the first and last samples.
func (s *State) AddPartial(v float64, p Partial) {
	if s.Count == 0 {
		*s = State{Count: 1, Records: p.Records, Sum: v, Min: v, Max: v,
			FirstTime: p.FirstTime, FirstValue: p.FirstValue, LastTime: p.LastTime, LastValue: p.LastValue,
			FirstRecords: p.Records, LastRecords: p.Records}
		return
	}
	s.Count++
	s.Records += p.Records
	s.Sum += v
	if v < s.Min {
		s.Min = v
	}
	if v > s.Max {
		s.Max = v
	}
	if p.FirstTime < s.FirstTime {
		s.FirstTime, s.FirstValue, s.FirstRecords = p.FirstTime, p.FirstValue, p.Records
	}
	if p.LastTime >= s.LastTime {
		s.LastTime, s.LastValue, s.LastRecords = p.LastTime, p.LastValue, p.Records
	}
}

// Merge folds the samples summarised by o into s. o is treated as having
// arrived after s for the tie rules of Add.
func (s *State) Merge(o *State) {
	if o.Count == 0 {
		return
	}
	if s.Count == 0 {
		*s = *o
		return
	}
	s.Count += o.Count
	s.Records += o.Records
	s.Sum += o.Sum
	s.Min = math.Min(s.Min, o.Min)
	s.Max = math.Max(s.Max, o.Max)
	if o.FirstTime < s.FirstTime {
		s.FirstTime, s.FirstValue, s.FirstRecords = o.FirstTime, o.FirstValue, o.FirstRecords
	}
	if o.LastTime >= s.LastTime {
		s.LastTime, s.LastValue, s.LastRecords = o.LastTime, o.LastValue, o.LastRecords
	}
}
