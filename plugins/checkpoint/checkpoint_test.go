package checkpoint

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

func newEngine(t *testing.T) *windowagg.Engine {
	t.Helper()
	sum, _ := windowagg.LookupFunction("sum")
	e, err := windowagg.New(windowagg.Config{
		Window: 10 * time.Second, Lag: time.Second, IdleTimeout: time.Minute, MaxFuture: time.Hour,
		Clock: func() time.Time { return time.UnixMilli(1_000_000) },
	}, []windowagg.Rule{{Name: "sum", MetricName: "cpu", Function: sum, OutputName: "cpu.sum"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRoundTrip(t *testing.T) {
	e := newEngine(t)
	src := windowagg.Source{Stream: "metrics", Partition: 3}
	m := monasca.Metric{Name: "cpu", Value: 2, Timestamp: 995_000, TenantID: "t"}
	e.Add(src, &m)
	positions := map[windowagg.Source]int64{src: 41, {Stream: "other", Partition: 0}: -1}
	payload := Append(nil, positions, e)

	restored := newEngine(t)
	got, err := Restore(payload, restored)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, positions) {
		t.Fatalf("positions %v, want %v", got, positions)
	}
	if restored.OpenSeries() != 1 {
		t.Fatalf("restored %d open series, want 1", restored.OpenSeries())
	}
	if string(restored.AppendSnapshot(nil)) != string(e.AppendSnapshot(nil)) {
		t.Fatal("the restored engine's snapshot differs from the original's")
	}
}

func TestCorrupt(t *testing.T) {
	good := Append(nil, map[windowagg.Source]int64{{Stream: "metrics"}: 7}, newEngine(t))
	for name, payload := range map[string][]byte{
		"empty":           nil,
		"frontier":        []byte("1700000000000"),
		"truncated":       good[:7],
		"huge count":      append([]byte(magic), 0xff, 0xff, 0xff, 0x0f),
		"stream too long": append([]byte(magic), 1, 100, 'm'),
	} {
		if _, _, err := Decode(payload); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode error %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := Restore(good[:len(good)-1], newEngine(t)); err == nil {
		t.Error("a snapshot with a broken CRC restored")
	}
}
