package kafka

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// The state topic's records. For a key K:
//
//	K@<epoch>.<writer>              manifest of one claim: JSON, a fence or the chunk set holding the value
//	K@<epoch>.<writer>#<set>/<i>    chunk i of chunk set 0 or 1 of that claim, at most stateChunkSize bytes
//
// <epoch> is decimal, <writer> 16 hexadecimal digits. The claim, epoch and
// writer together, is in every record's key, so that compaction, which
// keeps the newest record of each key, can never let a record of one claim
// replace a record of another. All records of K go to one partition, K's
// murmur2 partition, so that they are read in the order they were written;
// records no longer needed are deleted with tombstones.

// stateChunkSize is the largest chunk: half the brokers' default
// message.max.bytes, so that a chunk always fits a record batch.
const stateChunkSize = 512 << 10

// manifestVersion is the version of the manifest's encoding.
const manifestVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// claimID names one claim of a key. A claim takes the next epoch; two
// stores claiming at the same moment take the same epoch, and their writer
// IDs (random per store) still order them.
type claimID struct {
	epoch  uint64
	writer uint64
}

// compare orders claims; the zero claimID is lower than any claim made.
func (c claimID) compare(o claimID) int {
	if r := cmp.Compare(c.epoch, o.epoch); r != 0 {
		return r
	}
	return cmp.Compare(c.writer, o.writer)
}

func (c claimID) String() string {
	return fmt.Sprintf("%d.%016x", c.epoch, c.writer)
}

// recordName is the parsed key of a record of the state topic.
type recordName struct {
	key   string
	claim claimID
	chunk bool // a chunk, else the manifest
	set   int
	index int
}

func (n recordName) String() string {
	if !n.chunk {
		return n.key + "@" + n.claim.String()
	}
	return fmt.Sprintf("%s@%s#%d/%d", n.key, n.claim, n.set, n.index)
}

// parseRecordName parses a record key written by a store; ok is false for
// any other key.
func parseRecordName(s string) (n recordName, ok bool) {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return n, false
	}
	n.key, s = s[:at], s[at+1:]
	claim, chunk, isChunk := strings.Cut(s, "#")
	epoch, writer, found := strings.Cut(claim, ".")
	if !found || len(writer) != 16 {
		return n, false
	}
	var err error
	if n.claim.epoch, err = strconv.ParseUint(epoch, 10, 64); err != nil || n.claim.epoch == 0 {
		return n, false
	}
	if n.claim.writer, err = strconv.ParseUint(writer, 16, 64); err != nil {
		return n, false
	}
	if !isChunk {
		return n, true
	}
	set, index, found := strings.Cut(chunk, "/")
	if !found || (set != "0" && set != "1") {
		return n, false
	}
	i, err := strconv.ParseUint(index, 10, 31)
	if err != nil {
		return n, false
	}
	n.chunk, n.set, n.index = true, int(set[0]-'0'), int(i)
	return n, true
}

// manifest is the value of a manifest record. A fence, the first manifest
// of a claim, keeps the value there is; any other manifest's value is
// chunks 0 to Chunks-1 of chunk set Set of its claim, Size bytes with
// checksum CRC32C (Castagnoli).
type manifest struct {
	Version int    `json:"version"`
	Fence   bool   `json:"fence,omitempty"`
	Set     int    `json:"set"`
	Chunks  int    `json:"chunks"`
	Size    int64  `json:"size"`
	CRC32C  uint32 `json:"crc32c"`
}

func (m manifest) encode() []byte {
	b, _ := json.Marshal(m) // cannot fail: plain numbers and a bool
	return b
}

func decodeManifest(b []byte) (manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.Version != manifestVersion || (m.Set != 0 && m.Set != 1) || m.Chunks < 0 || m.Size < 0 {
		return m, fmt.Errorf("manifest %s is not one this version writes", b)
	}
	return m, nil
}

// assemble returns the value m names from chunks, by index, checked
// against m's size and checksum.
func (m manifest) assemble(chunks map[int][]byte) ([][]byte, error) {
	parts := make([][]byte, m.Chunks)
	var size int64
	var sum uint32
	for i := range parts {
		c, ok := chunks[i]
		if !ok {
			return nil, fmt.Errorf("chunk %d of %d is missing", i, m.Chunks)
		}
		parts[i] = c
		size += int64(len(c))
		sum = crc32.Update(sum, castagnoli, c)
	}
	if size != m.Size || sum != m.CRC32C {
		return nil, fmt.Errorf("the chunks have %d bytes with CRC32C %08x, the manifest says %d bytes with %08x", size, sum, m.Size, m.CRC32C)
	}
	return parts, nil
}

// splitChunks cuts value into chunks of at most stateChunkSize bytes,
// without copying.
func splitChunks(value []byte) [][]byte {
	var chunks [][]byte
	for len(value) > 0 {
		n := min(len(value), stateChunkSize)
		chunks = append(chunks, value[:n])
		value = value[n:]
	}
	return chunks
}
