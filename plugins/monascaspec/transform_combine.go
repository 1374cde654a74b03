package monascaspec

import (
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// ungrouped is the value of a field that the rows were not grouped by,
// where a rollup or calculate_rate groups by it: monasca-transform's fetch
// step wrote "NA" into every field outside its group.
const ungrouped = "NA"

// appendKey encodes values as key parts (windowagg.AppendKeyPart), leaving
// out the one at skip (-1 for none).
func appendKey(dst []byte, values []string, skip int) []byte {
	for i, v := range values {
		if i != skip {
			dst = windowagg.AppendKeyPart(dst, v)
		}
	}
	return dst
}

// utilCombiner is fetch_quantity_util's join: each group row of the
// quantity event type (a total, such as cpu.total_logical_cores) is joined
// with the idle-percentage row that has the same keys apart from
// event_type, and becomes the utilised quantity
//
//	(100 − idle) · total / 100
//
// An idle percentage of exactly 0 leaves the total as it is (the original
// tested for it). Rows of other event types are dropped. The joined row
// keeps the quantity row's state, so only the quantity records count, and
// loses the event_type key, as the original dropped it from the row.
type utilCombiner struct {
	// eventType is the position of event_type in the rule's GroupBy, and
	// so in the Values of every group row.
	eventType              int
	keys                   []string // GroupBy without event_type
	quantityType, idleType string
	// missingIdleIsBusy keeps a quantity row that has no idle row as if
	// idle were 0, as the original's left join did; otherwise the
	// utilisation is unknown and the row is dropped.
	missingIdleIsBusy bool
}

func (c *utilCombiner) Combine(_ *windowagg.Rule, rows []windowagg.Row) []windowagg.Row {
	idle := map[string]float64{}
	var key []byte
	for i := range rows {
		if rows[i].Values[c.eventType] == c.idleType {
			key = appendKey(key[:0], rows[i].Values, c.eventType)
			idle[string(key)] = rows[i].Value
		}
	}
	var out []windowagg.Row
	for _, row := range rows {
		if row.Values[c.eventType] != c.quantityType {
			continue
		}
		key = appendKey(key[:0], row.Values, c.eventType)
		idlePerc, found := idle[string(key)]
		switch {
		case !found && !c.missingIdleIsBusy:
			continue
		case found && idlePerc != 0:
			row.Value = (100 - idlePerc) * row.Value / 100
		}
		values := make([]string, 0, len(c.keys))
		values = append(values, row.Values[:c.eventType]...)
		row.Keys, row.Values = c.keys, append(values, row.Values[c.eventType+1:]...)
		out = append(out, row)
	}
	return out
}

// rateCombiner is calculate_rate: the group rows are rolled up by groupBy
// (setter_rollup_group_by_list; a key the rows lack reads "NA"), summing the
// latest and the oldest value of every group into L and O, and each rollup
// group becomes the percentage decrease
//
//	(O − L) / O · 100
//
// with the merged state of its groups (first record the earliest, last the
// latest). A rollup group whose O is 0 has no rate and gives no row.
type rateCombiner struct {
	groupBy []string
	// latestIsAverage takes each group's average as its latest value, as
	// the original did.
	latestIsAverage bool
	// doubleRecords counts every record twice, as the original added the
	// record counts of its oldest and its latest pass over the same records.
	doubleRecords bool
}

func (c *rateCombiner) Combine(_ *windowagg.Rule, rows []windowagg.Row) []windowagg.Row {
	type group struct {
		row            windowagg.Row
		latest, oldest float64
	}
	index := map[string]int{}
	var groups []group
	var key []byte
	for i := range rows {
		values := make([]string, len(c.groupBy))
		for j, k := range c.groupBy {
			v, ok := rows[i].Get(k)
			if !ok {
				v = ungrouped
			}
			values[j] = v
		}
		key = appendKey(key[:0], []string{rows[i].TenantID}, -1)
		key = appendKey(key, values, -1)
		at, seen := index[string(key)]
		if !seen {
			at = len(groups)
			index[string(key)] = at
			groups = append(groups, group{row: windowagg.Row{Keys: c.groupBy, Values: values, TenantID: rows[i].TenantID, Region: rows[i].Region}})
		}
		g, s := &groups[at], &rows[i].State
		latest := s.LastValue
		if c.latestIsAverage {
			latest = s.Sum / float64(s.Count)
		}
		g.latest += latest
		g.oldest += s.FirstValue
		g.row.State.Merge(s)
	}
	out := make([]windowagg.Row, 0, len(groups))
	for _, g := range groups {
		if g.oldest == 0 {
			continue // the original's division by zero, which it swallowed
		}
		g.row.Value = (g.oldest - g.latest) / g.oldest * 100
		if c.doubleRecords {
			g.row.State.Records *= 2
		}
		out = append(out, g.row)
	}
	return out
}

// preHourlyRate is the pre-hourly processor's rate over instance-usage rows
// of calculate_rate: the rows are fed as partials whose first value is the
// row's oldest quantity and whose last value is its latest quantity, so the
// state's first value is the oldest quantity of the window and its last
// value the latest, and the rate is 100 · (oldest − latest) / oldest. An
// oldest quantity of 0 gives no value.
type preHourlyRate struct{}

func (preHourlyRate) Name() string { return "pre_hourly_rate" }
func (preHourlyRate) Result(s *windowagg.State) (float64, bool) {
	if s.Count == 0 || s.FirstValue == 0 {
		return 0, false
	}
	return 100 * ((s.FirstValue - s.LastValue) / s.FirstValue), true
}

// edgeRecordCount makes a row's record count that of its oldest and its
// latest partial only, as the original's pre-hourly rate added
// oldest.record_count and latest.record_count (a compatibility option: the
// other partials' records went into the rate as well).
type edgeRecordCount struct{}

func (edgeRecordCount) Combine(_ *windowagg.Rule, rows []windowagg.Row) []windowagg.Row {
	for i := range rows {
		rows[i].State.Records = rows[i].State.FirstRecords + rows[i].State.LastRecords
	}
	return rows
}
