package components

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// twoSpecs has two specifications over the same metric, so that the
// per-specification counts differ from the totals.
const twoSpecs = `
aggregationSpecifications:
  - name: cpu total
    aggregatedMetricName: cpu.total
    filteredMetricName: cpu
    function: sum
  - name: cpu per host
    aggregatedMetricName: cpu.host
    filteredMetricName: cpu
    groupedDimensions: [ hostname ]
    function: sum
`

// newTwoSpecBuffer is newTestBufferOn with twoSpecs.
func newTwoSpecBuffer(t *testing.T, clock *testClock, res *service.Resources, extra string) *aggregateBuffer {
	t.Helper()
	b := newTestBufferWithSpecs(t, clock, res, writeSpecsText(t, twoSpecs), extra)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// TestSpecCountsPerSpecification: with a series limit of one, a second
// host is folded by the total but rejected by the per-host specification,
// and a late metric is late for both; each specification's counts, and
// the labels its counters get, say so.
func TestSpecCountsPerSpecification(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	b := newTwoSpecBuffer(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), "max_series_per_window: 1")
	write(t, b, envelope("cpu", "h1", t0+1_000, 1), envelope("cpu", "h2", t0+2_000, 2))
	write(t, b, envelope("cpu", "h1", t0+12_500, 1))
	_, ack := read(t, b) // closes the first window
	_ = ack(context.Background(), nil)
	write(t, b, envelope("cpu", "h1", t0+3_000, 1), envelope("mem", "h1", t0+3_000, 1))

	specs := b.folder.stats.specs
	if specs.labels[0][0] != "cpu total" || specs.labels[1][0] != "cpu per host" {
		t.Fatalf("labels %v", specs.labels)
	}
	report := b.status()
	want := []specStatus{
		{Name: "cpu total", OpenSeries: 1, Folded: 3, Late: 1},
		{Name: "cpu per host", OpenSeries: 1, Folded: 2, Late: 1, SeriesLimit: 1},
	}
	if len(report.Specifications) != len(want) {
		t.Fatalf("specifications %+v", report.Specifications)
	}
	for i := range want {
		if report.Specifications[i] != want[i] {
			t.Errorf("specification %d: %+v, want %+v", i, report.Specifications[i], want[i])
		}
	}
}

// TestStatusReportOfOneLane: the report of a stage-single buffer with
// checkpoints shows each input partition's latest event time, lag and
// applied offset, the open windows with their close times, and the last
// checkpoint; the page and the JSON show the same.
func TestStatusReportOfOneLane(t *testing.T) {
	clock := newTestClock(t0 + 5_000)
	res := service.MockResources(service.MockResourcesOptAddCache("state"))
	b := newTwoSpecBuffer(t, clock, res, "state_cache: state\ncheckpoint_interval: 1s")
	write(t, b, onPartition(envelope("cpu", "h1", t0+1_000, 1), "metrics", 0, 41))
	write(t, b, onPartition(envelope("cpu", "h2", t0+4_000, 1), "metrics", 1, 7))
	readNothing(t, b) // takes and saves a checkpoint

	r := b.status()
	if r.Stage != stageSingle || r.WindowSize != "10s" || r.WindowLag != "2s" || len(r.Lanes) != 1 {
		t.Fatalf("report %+v", r)
	}
	l := r.Lanes[0]
	if l.Input != "" || !l.Restored || l.Checkpoint == nil || l.Checkpoint.Bytes == 0 || !l.Checkpoint.Time.Equal(time.UnixMilli(t0+5_000)) {
		t.Fatalf("lane %+v, checkpoint %+v", l, l.Checkpoint)
	}
	if l.Watermark == nil || !l.Watermark.Equal(time.UnixMilli(t0+1_000)) {
		t.Fatalf("watermark %v, want the least advanced partition's", l.Watermark)
	}
	if len(l.Partitions) != 2 {
		t.Fatalf("partitions %+v", l.Partitions)
	}
	for i, want := range []struct {
		partition   int32
		latest, lag int64
		offset      int64
	}{{0, t0 + 1_000, 3_000, 41}, {1, t0 + 4_000, 0, 7}} {
		p := l.Partitions[i]
		if p.Topic != "metrics" || p.Partition != want.partition || p.LatestEventTime == nil || p.LatestEventTime.UnixMilli() != want.latest ||
			p.LagMS == nil || *p.LagMS != want.lag || p.Offset == nil || *p.Offset != want.offset || p.Quiet {
			t.Errorf("partition %d: %+v", i, p)
		}
	}
	if len(l.Windows) != 2 {
		t.Fatalf("windows %+v", l.Windows)
	}
	for i, spec := range []string{"cpu total", "cpu per host"} {
		w := l.Windows[i]
		if w.Spec != spec || w.Start.UnixMilli() != t0 || w.CloseAt.UnixMilli() != t0+12_000 || w.Closed {
			t.Errorf("window %d: %+v", i, w)
		}
	}
	if l.Windows[0].Series != 1 || l.Windows[1].Series != 2 {
		t.Errorf("series %d and %d, want 1 and 2", l.Windows[0].Series, l.Windows[1].Series)
	}

	page := httptest.NewRecorder()
	b.serveStatusPage(page, httptest.NewRequest("GET", "/status", nil))
	html := page.Body.String()
	for _, want := range []string{
		"<td>cpu per host</td>", "<td>metrics/0</td>", "<td>metrics/1</td>", "<td class=\"n\">41</td>", "3s",
		"2024-01-01 00:00:12.000", "2024-01-01 00:00:05.000, ",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q:\n%s", want, html)
		}
	}
	if ct := page.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("content type %q", ct)
	}
	rec := httptest.NewRecorder()
	b.serveStatusJSON(rec, httptest.NewRequest("GET", "/status.json", nil))
	var decoded statusReport
	if err := json.Unmarshal(rec.Body.Bytes(), &decoded); err != nil {
		t.Fatalf("status.json: %v\n%s", err, rec.Body)
	}
	if len(decoded.Lanes) != 1 || len(decoded.Lanes[0].Partitions) != 2 || decoded.Specifications[1].Name != "cpu per host" {
		t.Fatalf("status.json %s", rec.Body)
	}
}

// TestStatusReportOfMergeStage: in stage merge, each lane is a partials
// partition, and its partitions are the stage-one partitions with the
// progress they reported.
func TestStatusReportOfMergeStage(t *testing.T) {
	clock := newTestClock(t0 + 13_000)
	b := newTwoSpecBuffer(t, clock, service.MockResources(service.MockResourcesOptAddCache("state")), "stage: merge")
	progress := fmt.Sprintf(`{"progress":[{"source":{"topic":"metrics","partition":3,"offset":99},"through":%d,"idle":true,"lag_ms":2000}]}`, t0+12_000)
	write(t, b, onPartition(service.NewMessage([]byte(progress)), "partials", 1, 5))

	r := b.status()
	if r.Stage != stageMerge || len(r.Lanes) != 1 {
		t.Fatalf("report %+v", r)
	}
	l := r.Lanes[0]
	if l.Input != "partials/1" || len(l.Partitions) != 1 {
		t.Fatalf("lane %+v", l)
	}
	p := l.Partitions[0]
	if p.Topic != "metrics" || p.Partition != 3 || p.Offset == nil || *p.Offset != 99 || !p.Idle ||
		p.LatestEventTime == nil || p.LatestEventTime.UnixMilli() != t0+12_000 {
		t.Fatalf("stage-one partition %+v", p)
	}
}

// TestStatusPageIsRegistered: the internal manager is reachable, so the
// page is served; a change in benthos that breaks this fails here.
func TestStatusPageIsRegistered(t *testing.T) {
	if _, ok := endpointRegistrarOf(service.MockResources()); !ok {
		t.Fatal("benthos' manager offers no RegisterEndpoint any more: the status page is not served")
	}
}
