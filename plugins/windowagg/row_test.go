package windowagg

import (
	"regexp"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

func TestFiltersOptionalGroupsAndAcrossTenants(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum"),
		Filters: []Filter{
			{Dimension: "app", Pattern: regexp.MustCompile("word")},
			{Dimension: "ns", Pattern: regexp.MustCompile("^kube"), Exclude: true},
		},
		GroupBy: []string{"pod"}, OptionalGroupBy: true, AcrossTenants: true})
	e.Add(p0, metric("m", t0, 1, "a", "app", "wordpress", "ns", "web", "pod", "p1"))
	e.Add(p0, metric("m", t0, 2, "b", "app", "wordpress", "ns", "web", "pod", "p1"))
	e.Add(p0, metric("m", t0, 4, "a", "app", "wordpress", "ns", "web")) // no pod: groups as ""
	for _, dims := range [][]string{
		{"app", "junk", "ns", "web", "pod", "p1"},              // include filter misses
		{"app", "wordpress", "ns", "kube-system", "pod", "p1"}, // exclude filter hits
		{"ns", "web", "pod", "p1"},                             // filtered dimension absent
	} {
		if r := e.Add(p0, metric("m", t0, 100, "a", dims...)); r.Matched != 0 {
			t.Fatalf("%v matched", dims)
		}
	}
	out := e.FlushAll(nil)
	if len(out) != 2 {
		t.Fatalf("%+v", out)
	}
	if out[0].Value != 4 || dimsOf(out[0])["pod"] != "" || out[1].Value != 3 || dimsOf(out[1])["pod"] != "p1" || out[1].TenantID != "" {
		t.Fatalf("%+v", out)
	}
}

// utilCombiner joins a total and an idle row per host, as
// monasca-transform's fetch_quantity_util does.
type utilCombiner struct{}

func (utilCombiner) Combine(_ *Rule, rows []Row) []Row {
	idle := map[string]float64{}
	for _, r := range rows {
		if t, _ := r.Get("type"); t == "idle" {
			h, _ := r.Get("host")
			idle[h] = r.Value
		}
	}
	var out []Row
	for _, r := range rows {
		if t, _ := r.Get("type"); t == "total" {
			h, _ := r.Get("host")
			r.Value = (100 - idle[h]) * r.Value / 100
			out = append(out, r)
		}
	}
	return out
}

type prefixNamer struct{}

func (prefixNamer) Name(rule *Rule, row *Row, rolledUp bool) (string, []monasca.Dimension, bool) {
	if !rolledUp {
		return "", nil, false
	}
	v, _ := row.Get("zone")
	return "util." + rule.OutputName, []monasca.Dimension{{Key: "zone", Value: v}}, true
}

func TestCombinerRollupWithUngroupedKeyAndNamer(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "util", MetricName: "cpu", OutputName: "cores", Function: fn(t, "avg"),
		GroupBy: []string{"type", "host"}, Combine: utilCombiner{},
		Rollup: &Rollup{Function: fn(t, "sum"), GroupBy: []string{"zone"}, Ungrouped: "NA"},
		Namer:  prefixNamer{}})
	add := func(typ, host string, v float64) {
		e.Add(p0, metric("cpu", t0+1_000, v, "t", "type", typ, "host", host))
	}
	add("total", "a", 8)
	add("idle", "a", 50)
	add("total", "b", 10)
	add("idle", "b", 80)
	add("idle", "b", 60)
	out := e.FlushAll(nil)
	if len(out) != 1 {
		t.Fatalf("%+v", out)
	}
	a := out[0]
	if a.Name != "util.cores" || a.Value != 4+3 || dimsOf(a)["zone"] != "NA" || a.Count != 2 {
		t.Fatalf("%+v", a)
	}
}

func TestAddPartialCountsRecordsAndValuesApart(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "avg")})
	e.AddPartial(p0, sampleOf(metric("m", t0, 10, "t")), Partial{Records: 4, FirstTime: t0 + 5_000, FirstValue: 10, LastTime: t0 + 6_000, LastValue: 10})
	e.AddPartial(p0, sampleOf(metric("m", t0, 20, "t")), Partial{Records: 7, FirstTime: t0 + 1_000, FirstValue: 20, LastTime: t0 + 3_000, LastValue: 20})
	out := e.FlushAll(nil)
	if len(out) != 1 || out[0].Value != 15 || out[0].Count != 11 || out[0].FirstTime != t0+1_000 || out[0].LastTime != t0+6_000 {
		t.Fatalf("%+v", out)
	}
}

func TestLatestAndOldestUseEventTimeWithArrivalTieBreak(t *testing.T) {
	for name, want := range map[string]float64{"latest": 4, "oldest": 2} {
		clock := &fakeClock{now: time.UnixMilli(t0)}
		e := newTestEngine(t, clock, Rule{Name: name, MetricName: "m", OutputName: "o", Function: fn(t, name)})
		e.Add(p0, metric("m", t0+5_000, 3, "t"))
		e.Add(p0, metric("m", t0+1_000, 2, "t"))
		e.Add(p0, metric("m", t0+1_000, 9, "t")) // same time as the oldest: arrived later
		e.Add(p0, metric("m", t0+5_000, 4, "t")) // same time as the latest: arrived later
		if out := e.FlushAll(nil); len(out) != 1 || out[0].Value != want {
			t.Fatalf("%s: %+v", name, out)
		}
	}
}
