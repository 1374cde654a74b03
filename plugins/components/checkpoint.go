package components

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// A checkpoint is what a lane needs to continue after a restart without
// replaying its open windows' input: the engine's snapshot (open windows,
// watermark, emitted frontier) and, per input partition, the offset up to
// which input is in it. Its payload is
//
//	"MCK1" | uvarint n | n × (uvarint len, topic, varint partition, varint offset) | engine snapshot
//
// stored in a cache in chunks, because caches backed by Kafka topics take
// values of about 1 MB at most: chunk i of generation g under
// "<key>#<writer>/<g mod 2>/<i>", then a manifest under "<key>" naming the
// writer and the generation. Writing the manifest last, and alternating two
// chunk sets, means a crash during a save leaves the previous checkpoint
// whole; the writer, a random name per process, keeps two instances that
// briefly both hold a partition during a rebalance from mixing their chunks.
// A manifest that is a plain number is a frontier saved without checkpoints.

const checkpointMagic = "MCK1"

// checkpointChunk is the largest value written to the cache.
const checkpointChunk = 512 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkpointManifest is the value under a lane's key.
type checkpointManifest struct {
	Checkpoint int    `json:"checkpoint"` // format version, 1
	Writer     string `json:"writer"`
	Generation int64  `json:"generation"`
	Chunks     int    `json:"chunks"`
	Bytes      int    `json:"bytes"`
	CRC32C     uint32 `json:"crc32c"`
}

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

// newWriterName returns a random name for this process's checkpoints.
func newWriterName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// saveCheckpoint writes payload as writer's generation gen under key.
func saveCheckpoint(ctx context.Context, res *service.Resources, cache, key, writer string, gen int64, payload []byte) error {
	m := checkpointManifest{Checkpoint: 1, Writer: writer, Generation: gen, Bytes: len(payload), CRC32C: crc32.Checksum(payload, castagnoli)}
	var setErr error
	err := res.AccessCache(ctx, cache, func(c service.Cache) {
		for off := 0; off < len(payload) || m.Chunks == 0; off += checkpointChunk {
			chunk := payload[off:min(off+checkpointChunk, len(payload))]
			if setErr = c.Set(ctx, chunkKey(key, writer, gen, m.Chunks), chunk, nil); setErr != nil {
				return
			}
			m.Chunks++
		}
		manifest, _ := json.Marshal(m)
		setErr = c.Set(ctx, key, manifest, nil)
	})
	if err != nil {
		return err
	}
	return setErr
}

// loadCheckpoint reads what is saved under key: a checkpoint's payload and
// manifest, or a plain frontier (payload nil). found is false when nothing
// is saved.
func loadCheckpoint(ctx context.Context, res *service.Resources, cache, key string) (payload []byte, m checkpointManifest, frontier int64, found bool, err error) {
	var getErr error
	if err := res.AccessCache(ctx, cache, func(c service.Cache) {
		var raw []byte
		if raw, getErr = c.Get(ctx, key); getErr != nil {
			return
		}
		found = true
		if frontier, getErr = strconv.ParseInt(string(raw), 10, 64); getErr == nil {
			return
		}
		if getErr = json.Unmarshal(raw, &m); getErr != nil || m.Checkpoint != 1 || m.Chunks < 1 || m.Writer == "" {
			getErr = fmt.Errorf("the value saved under %q is neither a frontier nor a checkpoint manifest: %.80q", key, raw)
			return
		}
		payload = make([]byte, 0, m.Bytes)
		for i := range m.Chunks {
			var chunk []byte
			if chunk, getErr = c.Get(ctx, chunkKey(key, m.Writer, m.Generation, i)); getErr != nil {
				getErr = fmt.Errorf("checkpoint %q generation %d chunk %d: %w", key, m.Generation, i, getErr)
				return
			}
			payload = append(payload, chunk...)
		}
		if len(payload) != m.Bytes || crc32.Checksum(payload, castagnoli) != m.CRC32C {
			getErr = fmt.Errorf("checkpoint %q generation %d does not match its manifest (size or CRC)", key, m.Generation)
		}
	}); err != nil {
		return nil, m, 0, false, err
	}
	if errors.Is(getErr, service.ErrKeyNotFound) && !found {
		return nil, m, 0, false, nil
	}
	return payload, m, frontier, found, getErr
}

// deleteCheckpointChunks removes the chunks an earlier writer left under
// key, as far as its manifest tells: both of its chunk sets, assuming the
// other was no larger than a few chunks more. It is best effort: leftovers
// only take space.
func deleteCheckpointChunks(ctx context.Context, res *service.Resources, cache, key string, m checkpointManifest) error {
	var delErr error
	err := res.AccessCache(ctx, cache, func(c service.Cache) {
		for gen := m.Generation; gen <= m.Generation+1; gen++ {
			for i := range m.Chunks + 2 {
				if err := c.Delete(ctx, chunkKey(key, m.Writer, gen, i)); err != nil && delErr == nil {
					delErr = err
				}
			}
		}
	})
	if err != nil {
		return err
	}
	return delErr
}

func chunkKey(key, writer string, gen int64, i int) string {
	return fmt.Sprintf("%s#%s/%d/%d", key, writer, gen%2, i)
}
