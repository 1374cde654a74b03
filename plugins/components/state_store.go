package components

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// stateStore keeps what each lane saves (a checkpoint or a frontier) under
// the lane's key.
type stateStore interface {
	// Claim returns the newest value saved under key and claims key: from
	// then on a Save under key by a store that claimed it earlier fails
	// with an error that has a Fenced method returning true.
	Claim(ctx context.Context, key string) (value []byte, found bool, err error)
	// Save stores value under key.
	Save(ctx context.Context, key string, value []byte) error
}

// stateStoreResource is the custom resource type of fenced stores (the
// kafka package's kafka_state_stores).
const stateStoreResource = "kafka_state_stores"

// isFenced reports whether err says that a newer owner claimed the key.
func isFenced(err error) bool {
	var f interface{ Fenced() bool }
	return errors.As(err, &f) && f.Fenced()
}

// readyChecker is implemented by stores that can tell whether they work.
type readyChecker interface {
	Ready(ctx context.Context) error
}

// cacheStore keeps lanes' values in a generic cache resource, which takes
// values of about 1 MB at most (when backed by a Kafka topic): chunk i of
// generation g under "<key>#<writer>/<g mod 2>/<i>", then a manifest under
// "<key>" naming the writer and the generation. Writing the manifest last,
// and alternating two chunk sets, means a crash during a save leaves the
// previous value whole; the writer, a random name per process, keeps two
// instances that briefly both hold a partition during a rebalance from
// mixing their chunks. A cache cannot fence a former owner: use a
// kafka_state_stores resource for that. A manifest that is a plain number
// is a frontier saved by an earlier version.
type cacheStore struct {
	res    *service.Resources
	cache  string
	writer string
	clock  func() time.Time

	mu   sync.Mutex
	keys map[string]*cacheKey
}

// cacheKey is what a cacheStore knows of one key: its generation, and the
// manifest of another writer's value it claimed, whose chunks are deleted
// by the first save a minute after the claim, when a former owner of the
// partition has long stopped writing them.
type cacheKey struct {
	generation int64
	earlier    *cacheManifest
	claimedAt  time.Time
}

// cacheChunk is the largest value written to the cache.
const cacheChunk = 512 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cacheManifest is the value under a key.
type cacheManifest struct {
	Checkpoint int    `json:"checkpoint"` // format version, 1
	Writer     string `json:"writer"`
	Generation int64  `json:"generation"`
	Chunks     int    `json:"chunks"`
	Bytes      int    `json:"bytes"`
	CRC32C     uint32 `json:"crc32c"`
}

func newCacheStore(res *service.Resources, cache string, clock func() time.Time) *cacheStore {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &cacheStore{res: res, cache: cache, writer: hex.EncodeToString(b[:]), clock: clock, keys: map[string]*cacheKey{}}
}

func (s *cacheStore) key(key string) *cacheKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	if k == nil {
		k = &cacheKey{}
		s.keys[key] = k
	}
	return k
}

// Claim reads the value under key.
func (s *cacheStore) Claim(ctx context.Context, key string) ([]byte, bool, error) {
	var value []byte
	var m cacheManifest
	var getErr error
	found := false
	if err := s.res.AccessCache(ctx, s.cache, func(c service.Cache) {
		var raw []byte
		if raw, getErr = c.Get(ctx, key); getErr != nil {
			return
		}
		found = true
		if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			value = raw
			return
		}
		if getErr = json.Unmarshal(raw, &m); getErr != nil || m.Checkpoint != 1 || m.Chunks < 1 || m.Writer == "" {
			getErr = fmt.Errorf("the value saved under %q is not a manifest: %.80q", key, raw)
			return
		}
		value = make([]byte, 0, m.Bytes)
		for i := range m.Chunks {
			var chunk []byte
			if chunk, getErr = c.Get(ctx, chunkKey(key, m.Writer, m.Generation, i)); getErr != nil {
				getErr = fmt.Errorf("%q generation %d chunk %d: %w", key, m.Generation, i, getErr)
				return
			}
			value = append(value, chunk...)
		}
		if len(value) != m.Bytes || crc32.Checksum(value, castagnoli) != m.CRC32C {
			getErr = fmt.Errorf("%q generation %d does not match its manifest (size or CRC)", key, m.Generation)
		}
	}); err != nil {
		return nil, false, err
	}
	if errors.Is(getErr, service.ErrKeyNotFound) && !found {
		return nil, false, nil
	}
	if getErr != nil {
		return nil, false, getErr
	}
	k := s.key(key)
	s.mu.Lock()
	if m.Writer != "" {
		k.generation = m.Generation
		if m.Writer != s.writer {
			k.earlier, k.claimedAt = &m, s.clock()
		}
	}
	s.mu.Unlock()
	return value, found, nil
}

// Save writes value as the next generation under key.
func (s *cacheStore) Save(ctx context.Context, key string, value []byte) error {
	k := s.key(key)
	s.mu.Lock()
	gen := k.generation + 1
	s.mu.Unlock()
	m := cacheManifest{Checkpoint: 1, Writer: s.writer, Generation: gen, Bytes: len(value), CRC32C: crc32.Checksum(value, castagnoli)}
	var setErr error
	err := s.res.AccessCache(ctx, s.cache, func(c service.Cache) {
		for off := 0; off < len(value) || m.Chunks == 0; off += cacheChunk {
			chunk := value[off:min(off+cacheChunk, len(value))]
			if setErr = c.Set(ctx, chunkKey(key, s.writer, gen, m.Chunks), chunk, nil); setErr != nil {
				return
			}
			m.Chunks++
		}
		manifest, _ := json.Marshal(m)
		setErr = c.Set(ctx, key, manifest, nil)
	})
	if err == nil {
		err = setErr
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	k.generation = gen
	var earlier *cacheManifest
	if k.earlier != nil && s.clock().Sub(k.claimedAt) >= time.Minute {
		earlier, k.earlier = k.earlier, nil
	}
	s.mu.Unlock()
	if earlier != nil {
		s.deleteChunks(ctx, key, *earlier)
	}
	return nil
}

// deleteChunks removes the chunks an earlier writer left under key, as far
// as its manifest tells: both of its chunk sets, assuming the other was no
// larger than a few chunks more. Leftovers only take space.
func (s *cacheStore) deleteChunks(ctx context.Context, key string, m cacheManifest) {
	_ = s.res.AccessCache(ctx, s.cache, func(c service.Cache) {
		for gen := m.Generation; gen <= m.Generation+1; gen++ {
			for i := range m.Chunks + 2 {
				_ = c.Delete(ctx, chunkKey(key, m.Writer, gen, i))
			}
		}
	})
}

func chunkKey(key, writer string, gen int64, i int) string {
	return fmt.Sprintf("%s#%s/%d/%d", key, writer, gen%2, i)
}
