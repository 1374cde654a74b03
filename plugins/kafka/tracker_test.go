package kafka

import "testing"

func TestTrackerCommitsAcknowledgedPrefix(t *testing.T) {
	var tr offsetTracker
	if _, ok := tr.committable(); ok {
		t.Fatal("committable before any acknowledgement")
	}
	b0 := tr.add(9, 10)  // offsets 0-9
	b1 := tr.add(19, 10) // 10-19
	b2 := tr.add(34, 5)  // 30-34: a gap, as after compaction
	if got := tr.inFlight(); got != 25 {
		t.Fatalf("in flight %d, want 25", got)
	}

	// Acknowledged out of order: the prefix waits for b0.
	if tr.ack(b1) {
		t.Fatal("acknowledging b1 before b0 moved the prefix")
	}
	if _, ok := tr.committable(); ok {
		t.Fatal("committable while b0 is unacknowledged")
	}
	if got := tr.inFlight(); got != 25 {
		t.Fatalf("in flight %d after b1, want 25: b1 is behind b0", got)
	}

	if !tr.ack(b0) {
		t.Fatal("acknowledging b0 did not move the prefix")
	}
	if next, ok := tr.committable(); !ok || next != 20 {
		t.Fatalf("committable %d %v, want 20: b0 and b1", next, ok)
	}
	if got := tr.inFlight(); got != 5 {
		t.Fatalf("in flight %d, want 5", got)
	}

	// Repeated and unknown acknowledgements change nothing.
	if tr.ack(b0) || tr.ack(b1) || tr.ack(99) {
		t.Fatal("a repeated or unknown acknowledgement moved the prefix")
	}
	if !tr.ack(b2) {
		t.Fatal("acknowledging b2 did not move the prefix")
	}
	if next, _ := tr.committable(); next != 35 {
		t.Fatalf("committable %d, want 35", next)
	}
	if got := tr.inFlight(); got != 0 {
		t.Fatalf("in flight %d, want 0", got)
	}
}

// The tracker keeps one span per batch in flight, not per batch ever
// handed on.
func TestTrackerMemoryFollowsBatchesInFlight(t *testing.T) {
	var tr offsetTracker
	held := tr.add(0, 1) // never acknowledged until the end
	for i := int64(1); i <= 100_000; i++ {
		tr.ack(tr.add(i, 1))
	}
	if len(tr.spans) != 100_001 {
		t.Fatalf("%d spans behind an unacknowledged batch, want 100001", len(tr.spans))
	}
	tr.ack(held)
	if len(tr.spans) != 0 {
		t.Fatalf("%d spans left after the prefix caught up", len(tr.spans))
	}
	for i := int64(100_001); i <= 200_000; i++ {
		tr.ack(tr.add(i, 1))
		if len(tr.spans) != 0 {
			t.Fatalf("%d spans with nothing in flight", len(tr.spans))
		}
	}
	if c := cap(tr.spans); c > 1024 {
		t.Fatalf("span capacity %d with nothing in flight", c)
	}
	if next, _ := tr.committable(); next != 200_001 {
		t.Fatalf("committable %d, want 200001", next)
	}
}
