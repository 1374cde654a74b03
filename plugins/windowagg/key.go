package windowagg

import (
	"encoding/binary"

	"github.com/monasca-connect/monasca-connect/plugins/monasca"
)

// AppendKeyPart appends s to a composite key, prefixed with its length so
// that no part can run into the next: ("a", "bc") and ("ab", "c") differ.
// Every composite key of the engine and of the spec compilers is made of
// such parts.
func AppendKeyPart(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// WindowStart returns the start of the epoch-aligned window of size ms that
// holds t (epoch ms): t rounded toward negative infinity to a multiple of
// size, so that times before 1970 fall into their own windows too.
func WindowStart(t, size int64) int64 {
	q := t / size
	if t%size != 0 && (t < 0) != (size < 0) {
		q--
	}
	return q * size
}

// appendSeriesKey encodes a series key: the tenant's number, then the values
// of the grouped dimensions as key parts (absent ones as empty).
func appendSeriesKey(dst []byte, tenant uint32, m *monasca.Metric, groupBy []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(tenant))
	for _, k := range groupBy {
		v, _ := m.Dimension(k)
		dst = AppendKeyPart(dst, v)
	}
	return dst
}

// appendContributionKey is appendSeriesKey for a contribution: the tenant,
// the group values and, last, the contributing source, so that emit can
// merge the contributions of a series, whose keys sort next to each other.
func appendContributionKey(dst []byte, tenant uint32, values []string, src Source) []byte {
	dst = binary.AppendUvarint(dst, uint64(tenant))
	for _, v := range values {
		dst = AppendKeyPart(dst, v)
	}
	// The source part is stream '/' partition (4 bytes big-endian), which
	// validKey recognises by the '/' five bytes from its end.
	dst = binary.AppendUvarint(dst, uint64(len(src.Stream)+5))
	dst = append(dst, src.Stream...)
	dst = append(dst, '/')
	return binary.BigEndian.AppendUint32(dst, uint32(src.Partition))
}

// decodeSeriesKey splits a key made by appendSeriesKey (or
// appendContributionKey), appending the key parts to values.
func decodeSeriesKey(key string, values []string) (tenant uint32, _ []string) {
	uvarint := func() uint64 {
		n, w := binary.Uvarint([]byte(key[:min(len(key), binary.MaxVarintLen64)]))
		key = key[w:]
		return n
	}
	tenant = uint32(uvarint())
	for len(key) > 0 {
		n := uvarint()
		values = append(values, key[:n])
		key = key[n:]
	}
	return tenant, values
}
