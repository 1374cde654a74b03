package windowagg

import (
	"testing"
	"time"
)

// TestExpectedSourceHoldsTheWatermark: a partition assigned but not yet
// delivering holds the watermark until it delivers, or until it has been
// quiet for the idle timeout.
func TestExpectedSourceHoldsTheWatermark(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(t0 + 13_000)}
	e := newTestEngine(t, clock, Rule{Name: "r", MetricName: "m", OutputName: "o", Function: fn(t, "sum")})
	e.Expect(p1)
	e.Add(p0, metric("m", t0+1_000, 1, "t"))
	e.Add(p0, metric("m", t0+12_500, 1, "t"))
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("closed while an expected partition had not delivered: %+v", out)
	}
	e.Add(p1, metric("m", t0+2_000, 2, "t"))
	e.Add(p1, metric("m", t0+12_400, 1, "t"))
	if out, _ := e.Flush(nil); len(out) != 1 || out[0].Value != 3 {
		t.Fatalf("want the window over both partitions (1+2), got %+v", out)
	}

	e.Expect(Source{Stream: "metrics", Partition: 2})
	e.Add(p0, metric("m", t0+22_500, 1, "t"))
	e.Add(p1, metric("m", t0+22_500, 1, "t"))
	if out, _ := e.Flush(nil); len(out) != 0 {
		t.Fatalf("closed while an expected partition had not delivered: %+v", out)
	}
	clock.advance(time.Minute) // partition 2 stayed quiet: it holds nothing back
	e.Add(p0, metric("m", t0+83_000, 1, "t"))
	e.Add(p1, metric("m", t0+83_000, 1, "t"))
	if out, _ := e.Flush(nil); len(out) == 0 {
		t.Fatal("a quiet expected partition held the watermark beyond the idle timeout")
	}
}
