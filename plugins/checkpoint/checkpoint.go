// Package checkpoint encodes what a lane of the monasca_aggregate buffer
// saves in its state store: the engine's snapshot and, per input partition,
// the position (offset) of the last input the snapshot holds. A restarted
// lane restores the snapshot and skips replayed input at or before those
// positions, so nothing is counted twice.
//
// Payload:
//
//	"MCK1" | uvarint n | n × (uvarint len, stream, varint partition, varint position) | snapshot
//
// The snapshot carries its own format version and CRC (windowagg's
// AppendSnapshot); the store's manifest checks the payload as a whole.
package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

const magic = "MCK1"

// ErrCorrupt is returned for a payload that is not a checkpoint.
var ErrCorrupt = errors.New("corrupt checkpoint")

// Snapshotter is what a checkpoint holds the state of.
type Snapshotter interface {
	AppendSnapshot(dst []byte) []byte
	RestoreSnapshot(snapshot []byte) error
}

// Append appends the checkpoint of positions and s to dst.
func Append(dst []byte, positions map[windowagg.Source]int64, s Snapshotter) []byte {
	dst = append(dst, magic...)
	dst = binary.AppendUvarint(dst, uint64(len(positions)))
	for src, pos := range positions {
		dst = binary.AppendUvarint(dst, uint64(len(src.Stream)))
		dst = append(dst, src.Stream...)
		dst = binary.AppendVarint(dst, int64(src.Partition))
		dst = binary.AppendVarint(dst, pos)
	}
	return s.AppendSnapshot(dst)
}

// Restore restores s from payload and returns its positions.
func Restore(payload []byte, s Snapshotter) (map[windowagg.Source]int64, error) {
	positions, snapshot, err := Decode(payload)
	if err != nil {
		return nil, err
	}
	if err := s.RestoreSnapshot(snapshot); err != nil {
		return nil, err
	}
	return positions, nil
}

// Decode splits payload into its positions and the snapshot, which it does
// not read.
func Decode(payload []byte) (positions map[windowagg.Source]int64, snapshot []byte, err error) {
	b, ok := bytes.CutPrefix(payload, []byte(magic))
	if !ok {
		return nil, nil, fmt.Errorf("%w: unknown format", ErrCorrupt)
	}
	next := func(signed bool) (int64, bool) {
		var v int64
		var n int
		if signed {
			v, n = binary.Varint(b)
		} else {
			var u uint64
			u, n = binary.Uvarint(b)
			v = int64(u)
		}
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	count, ok := next(false)
	if !ok || count < 0 || count > int64(len(b)) {
		return nil, nil, ErrCorrupt
	}
	positions = make(map[windowagg.Source]int64, count)
	for range count {
		l, ok := next(false)
		if !ok || l < 0 || l > int64(len(b)) {
			return nil, nil, ErrCorrupt
		}
		stream := string(b[:l])
		b = b[l:]
		p, ok1 := next(true)
		pos, ok2 := next(true)
		if !ok1 || !ok2 {
			return nil, nil, ErrCorrupt
		}
		positions[windowagg.Source{Stream: stream, Partition: int32(p)}] = pos
	}
	return positions, b, nil
}
