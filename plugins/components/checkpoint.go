package components

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// A checkpoint is what a lane needs to continue after a restart without
// replaying its open windows' input: the engine's snapshot (open windows,
// watermark, emitted frontier) and, per input partition, the offset up to
// which input is in it. Its payload, saved in the lane's state store, is
//
//	"MCK1" | uvarint n | n × (uvarint len, topic, varint partition, varint offset) | engine snapshot
//
// A saved value that is a plain decimal number is a frontier saved without
// checkpoints.

const checkpointMagic = "MCK1"

// appendCheckpoint encodes the applied offsets and engine's snapshot.
func appendCheckpoint(dst []byte, applied map[windowagg.Source]int64, engine *windowagg.Engine) []byte {
	dst = append(dst, checkpointMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(applied)))
	for src, offset := range applied {
		dst = binary.AppendUvarint(dst, uint64(len(src.Stream)))
		dst = append(dst, src.Stream...)
		dst = binary.AppendVarint(dst, int64(src.Partition))
		dst = binary.AppendVarint(dst, offset)
	}
	return engine.AppendSnapshot(dst)
}

// readCheckpoint decodes a payload made by appendCheckpoint into applied
// and engine.
func readCheckpoint(payload []byte, engine *windowagg.Engine) (map[windowagg.Source]int64, error) {
	corrupt := errors.New("corrupt checkpoint")
	if len(payload) < len(checkpointMagic) || string(payload[:len(checkpointMagic)]) != checkpointMagic {
		return nil, fmt.Errorf("%w: unknown format", corrupt)
	}
	b := payload[len(checkpointMagic):]
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	varint := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	n, ok := uvarint()
	if !ok || n > uint64(len(b)) {
		return nil, corrupt
	}
	applied := make(map[windowagg.Source]int64, n)
	for range n {
		l, ok := uvarint()
		if !ok || l > uint64(len(b)) {
			return nil, corrupt
		}
		topic := string(b[:l])
		b = b[l:]
		p, ok1 := varint()
		o, ok2 := varint()
		if !ok1 || !ok2 {
			return nil, corrupt
		}
		applied[windowagg.Source{Stream: topic, Partition: int32(p)}] = o
	}
	if err := engine.RestoreSnapshot(b); err != nil {
		return nil, err
	}
	return applied, nil
}
