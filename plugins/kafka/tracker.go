package kafka

// offsetTracker follows the batches of one partition that the input handed
// on and whose offsets are not committable yet, and finds the partition's
// acknowledged prefix. It keeps offsets and counts only, never records: its
// memory grows with the batches in flight, not with their size.
//
// Batches are added in offset order and acknowledged in any order. The
// prefix ends before the oldest batch not acknowledged: a batch acknowledged
// after it waits, so that a commit never skips a batch that may still be
// redone. The zero value is ready to use; it is not safe for concurrent use.
type offsetTracker struct {
	spans   []trackedSpan // from the oldest unacknowledged batch on
	headSeq uint64        // the sequence number of spans[0]
	next    int64         // the offset after the prefix, once started
	started bool          // whether a batch was acknowledged
	pending int           // records in spans
}

// trackedSpan is one batch: its last offset and record count.
type trackedSpan struct {
	last  int64
	n     int32
	acked bool
}

// add tracks a batch of n records ending at offset last and returns the
// sequence number that acknowledges it.
func (t *offsetTracker) add(last int64, n int) uint64 {
	seq := t.headSeq + uint64(len(t.spans))
	t.spans = append(t.spans, trackedSpan{last: last, n: int32(n)})
	t.pending += n
	return seq
}

// ack marks batch seq as acknowledged. It reports whether the prefix moved;
// a batch acknowledged twice, or one behind the prefix, changes nothing.
func (t *offsetTracker) ack(seq uint64) bool {
	if seq < t.headSeq || seq >= t.headSeq+uint64(len(t.spans)) {
		return false
	}
	t.spans[seq-t.headSeq].acked = true
	moved := false
	for len(t.spans) > 0 && t.spans[0].acked {
		s := t.spans[0]
		t.next, t.started = s.last+1, true
		t.pending -= int(s.n)
		// Reslicing drops the span; append reallocates once the slice's
		// capacity is used up, which frees what lies before it.
		t.spans = t.spans[1:]
		t.headSeq++
		moved = true
	}
	return moved
}

// committable returns the offset to commit, the one after the acknowledged
// prefix, and whether there is one yet.
func (t *offsetTracker) committable() (int64, bool) {
	return t.next, t.started
}

// inFlight returns the number of records from the oldest unacknowledged
// batch through the newest batch added: the records a restart would read
// again, acknowledged or not.
func (t *offsetTracker) inFlight() int {
	return t.pending
}
