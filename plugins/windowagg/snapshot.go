package windowagg

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Checkpointing. AppendSnapshot writes the complete state of an engine, and
// RestoreSnapshot rebuilds it in a new engine with the same configuration,
// which then continues as if the first had never stopped.
//
// Format, version 1 (varint is zig-zag encoding/binary.AppendVarint, uvarint
// is AppendUvarint, string is a uvarint length and the bytes, float is
// math.Float64bits as 8 bytes little-endian):
//
//	snapshot "wagg", version byte (1), flags byte (1: a Merger's),
//	         varint frontier, varint restored,
//	         uvarint n, n × string     tenants, in interning order (id = position),
//	         uvarint n, n × string     regions, likewise,
//	         uvarint n, n × source     sorted by stream, partition,
//	         uvarint n, n × rule       in the engine's order,
//	         trailer
//	source   string stream, varint partition, varint maxTime, byte idle, varint position
//	rule     string name, uvarint window size (ms), uvarint g, g × string GroupBy,
//	         windows (open), windows (closed, kept for corrections)
//	windows  uvarint n, n × window     sorted by start
//	window   varint start, byte flags (1: dirty), uvarint n,
//	         n × string key (as in window.index), n × series, both in series order
//	series   byte shape, uvarint region, varint Count, [varint Records], float Sum,
//	         [float Min, Max, FirstValue, LastValue], varint FirstTime-start,
//	         [varint LastTime-start], [varint FirstRecords, LastRecords], varint position
//	trailer  CRC-32 (Castagnoli) of everything before it, 4 bytes little-endian
//
// Version 2, written when some rule's function keeps an Accumulator, adds
// to each rule, after GroupBy, the string name of that function ("" for
// none), and to each series of such a rule, after its position, the
// accumulator's encoding as a string. Version 1 snapshots still restore;
// they hold no accumulators, so the windows of a rule whose function now
// keeps one are dropped, as for a rule whose window size changed.
//
// A series' shape leaves out what a plain sample implies: seriesSingle when
// Min, Max, FirstValue and LastValue are Sum (bit for bit), seriesOneTime
// when LastTime is FirstTime, seriesPlain when Records is Count and
// FirstRecords and LastRecords are 1. Times are stored relative to the
// window start, with wrapping arithmetic, so that they round-trip exactly
// whatever they are (such as the extremes of an empty State).
//
// Wall-clock times are not stored: a restored source counts as seen when
// the restore happens, and so does the discovery of sources, so that the
// discovery hold applies after a restart.

const (
	snapshotMagic   = "wagg"
	snapshotVersion = 2                      // the newest read and written
	snapshotHeader  = len(snapshotMagic) + 2 // magic, version, flags
	snapshotTrailer = 4                      // CRC-32

	snapshotBySource = 1 // header flag: a Merger's (Config.Contributions before it had a type)

	windowDirty = 1 // window flag

	seriesSingle  = 1 // series shape flags
	seriesOneTime = 2
	seriesPlain   = 4
	seriesShapes  = seriesSingle | seriesOneTime | seriesPlain

	// Lower bounds of encoded sizes, which bound the counts a snapshot may
	// declare by its length before anything is allocated for them.
	minSourceBytes = 5
	minRuleBytes   = 5
	minWindowBytes = 3
	minSeriesBytes = 2 + 13 // key (length, tenant), shape..position
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendSnapshot appends the engine's state to dst: the frontier and the
// Restore frontier, every source's progress, the interned tenants and
// regions, and every open and kept closed window of every rule with all its
// series. It returns the extended slice; RestoreSnapshot reads it back. The
// snapshot is deterministic: equal states give equal bytes.
func (e *store) AppendSnapshot(dst []byte) []byte {
	begin := len(dst)
	dst = slices.Grow(dst, 256+64*e.open)
	dst = append(dst, snapshotMagic...)
	var flags byte
	if e.bySource {
		flags |= snapshotBySource
	}
	version := byte(1)
	if slices.ContainsFunc(e.rules, func(r *ruleState) bool { return r.acc != nil }) {
		version = snapshotVersion
	}
	dst = append(dst, version, flags)
	dst = binary.AppendVarint(dst, e.frontier)
	dst = binary.AppendVarint(dst, e.restored)
	dst = appendStrings(dst, e.tenants.list)
	dst = appendStrings(dst, e.regions.list)

	srcs := make([]Source, 0, len(e.sources))
	for src := range e.sources {
		srcs = append(srcs, src)
	}
	slices.SortFunc(srcs, compareSources)
	dst = binary.AppendUvarint(dst, uint64(len(srcs)))
	for _, src := range srcs {
		so := e.sources[src]
		dst = AppendKeyPart(dst, src.Stream)
		dst = binary.AppendVarint(dst, int64(src.Partition))
		dst = binary.AppendVarint(dst, so.maxTime)
		dst = append(dst, boolByte(so.idle))
		dst = binary.AppendVarint(dst, so.position)
	}

	dst = binary.AppendUvarint(dst, uint64(len(e.rules)))
	var keys []string
	for _, r := range e.rules {
		dst = AppendKeyPart(dst, r.Name)
		dst = binary.AppendUvarint(dst, uint64(r.size))
		dst = appendStrings(dst, r.GroupBy)
		if version >= 2 {
			dst = AppendKeyPart(dst, accName(r.acc))
		}
		dst, keys = appendWindows(dst, r.windows, keys)
		dst, keys = appendWindows(dst, r.closed, keys)
		if r.series != nil {
			dst = appendCarried(dst, r)
		}
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[begin:], castagnoli))
}

// appendCarried appends, for a rule over input series, what its kept
// closed windows carried in (uvarint n, n × (varint start, carries), by
// start) and what it carries into its next window (carries).
func appendCarried(dst []byte, r *ruleState) []byte {
	var starts []int64
	for start, w := range r.closed {
		if w.carried != nil {
			starts = append(starts, start)
		}
	}
	slices.Sort(starts)
	dst = binary.AppendUvarint(dst, uint64(len(starts)))
	for _, start := range starts {
		dst = binary.AppendVarint(dst, start)
		dst = appendCarries(dst, r.closed[start].carried)
	}
	return appendCarries(dst, r.carries)
}

// accName is the name an accumulating function is recorded under.
func accName(f AccumulatingFunction) string {
	if f == nil {
		return ""
	}
	return strings.ToLower(f.Name())
}

// appendAcc appends a's encoding as a length-prefixed string.
func appendAcc(dst []byte, a Accumulator) []byte {
	enc := a.AppendBinary(nil)
	dst = binary.AppendUvarint(dst, uint64(len(enc)))
	return append(dst, enc...)
}

func appendStrings(dst []byte, list []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(list)))
	for _, s := range list {
		dst = AppendKeyPart(dst, s)
	}
	return dst
}

func compareSources(a, b Source) int {
	if c := strings.Compare(a.Stream, b.Stream); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// appendWindows appends the windows of one map in start order. keys is
// scratch space, returned for reuse.
func appendWindows(dst []byte, ws map[int64]*window, keys []string) ([]byte, []string) {
	starts := slices.Sorted(maps.Keys(ws))
	dst = binary.AppendUvarint(dst, uint64(len(starts)))
	for _, start := range starts {
		w := ws[start]
		var flags byte
		if w.dirty {
			flags |= windowDirty
		}
		dst = binary.AppendVarint(dst, start)
		dst = append(dst, flags)
		dst = binary.AppendUvarint(dst, uint64(w.n))
		// Keys in series order, so that the restored window numbers its
		// series as this one does.
		keys = slices.Grow(keys[:0], int(w.n))[:w.n]
		for key, i := range w.index {
			keys[i] = key
		}
		for _, key := range keys {
			dst = AppendKeyPart(dst, key)
		}
		for c, chunk := range w.chunks {
			for i := range chunk {
				dst = appendSeries(dst, &chunk[i], start)
				if w.accs != nil {
					dst = appendAcc(dst, w.accs[c][i])
				}
			}
		}
	}
	return dst, keys
}

func appendSeries(dst []byte, s *series, start int64) []byte {
	st := &s.state
	sum := math.Float64bits(st.Sum)
	var shape byte
	if math.Float64bits(st.Min) == sum && math.Float64bits(st.Max) == sum &&
		math.Float64bits(st.FirstValue) == sum && math.Float64bits(st.LastValue) == sum {
		shape |= seriesSingle
	}
	if st.LastTime == st.FirstTime {
		shape |= seriesOneTime
	}
	if st.Records == st.Count && st.FirstRecords == 1 && st.LastRecords == 1 {
		shape |= seriesPlain
	}
	dst = append(dst, shape)
	dst = binary.AppendUvarint(dst, uint64(s.region))
	dst = binary.AppendVarint(dst, st.Count)
	if shape&seriesPlain == 0 {
		dst = binary.AppendVarint(dst, st.Records)
	}
	dst = binary.LittleEndian.AppendUint64(dst, sum)
	if shape&seriesSingle == 0 {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.Min))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.Max))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.FirstValue))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(st.LastValue))
	}
	dst = binary.AppendVarint(dst, st.FirstTime-start)
	if shape&seriesOneTime == 0 {
		dst = binary.AppendVarint(dst, st.LastTime-start)
	}
	if shape&seriesPlain == 0 {
		dst = binary.AppendVarint(dst, st.FirstRecords)
		dst = binary.AppendVarint(dst, st.LastRecords)
	}
	return binary.AppendVarint(dst, s.position)
}

// RestoreSnapshot replaces the state of a new engine (nothing added yet)
// with a snapshot taken by AppendSnapshot of the same kind of engine
// (Engine or Merger). Everything is replaced: frontier, Restore frontier,
// sources, interned strings and windows (call Restore afterwards to raise
// the Restore frontier further). Sources count as seen, and as discovered,
// at the restore.
//
// Rules are matched by name and occurrence: the k-th rule named N in the
// snapshot restores into the k-th rule named N of the engine (names are
// unique in a Merger, and where they are not, reordering rules
// of different names still matches). The windows of a snapshot rule without
// a match are dropped, and so are those of a rule whose window size or
// GroupBy changed, since their series no longer fit it; a rule absent from
// the snapshot starts empty.
//
// A snapshot that is truncated, corrupted (CRC-32 mismatch) or inconsistent,
// or of an unknown version, returns an error and leaves the engine as it was.
func (e *store) RestoreSnapshot(snap []byte) error {
	payload, err := e.checkSnapshot(snap)
	if err != nil {
		return err
	}
	r := &snapReader{b: payload, off: snapshotHeader, version: snap[len(snapshotMagic)]}
	frontier := r.varint()
	restored := r.varint()
	tenants := r.interner("tenant")
	regions := r.interner("region")
	sources := r.sources()
	shape := seriesKeyShape{tenants: len(tenants.list), regions: len(regions.list), contribution: e.bySource}
	rules := make([]restoredRule, len(e.rules))
	open := r.rules(e.rules, rules, shape)
	if r.err == nil && r.off != len(payload) {
		r.fail("%d bytes left over after the last rule", len(payload)-r.off)
	}
	if r.err != nil {
		return r.err
	}

	// Everything is read and checked: swap it in.
	now := e.clock()
	for _, s := range sources {
		s.lastSeen = now
	}
	e.frontier, e.restored = frontier, restored
	e.tenants, e.regions = tenants, regions
	e.sources, e.discovered = sources, now
	for i, rs := range e.rules {
		rr := rules[i]
		if rr.windows == nil {
			rr = restoredRule{windows: map[int64]*window{}, closed: map[int64]*window{}}
		}
		rs.windows, rs.closed, rs.carries = rr.windows, rr.closed, rr.carries
	}
	e.open = open
	return nil
}

// checkSnapshot checks the header and the checksum of a snapshot for this
// engine, and returns the payload without the trailer.
func (e *store) checkSnapshot(snap []byte) ([]byte, error) {
	switch {
	case len(snap) < snapshotHeader+snapshotTrailer:
		return nil, fmt.Errorf("windowagg: snapshot of %d bytes is too short", len(snap))
	case string(snap[:len(snapshotMagic)]) != snapshotMagic:
		return nil, errors.New("windowagg: not an engine snapshot (bad magic)")
	case snap[len(snapshotMagic)] == 0 || snap[len(snapshotMagic)] > snapshotVersion:
		return nil, fmt.Errorf("windowagg: snapshot format version %d is not supported (this build reads versions 1 to %d)", snap[len(snapshotMagic)], snapshotVersion)
	}
	payload := snap[:len(snap)-snapshotTrailer]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(snap[len(payload):]) {
		return nil, errors.New("windowagg: snapshot checksum mismatch: truncated or corrupted")
	}
	flags := snap[len(snapshotMagic)+1]
	switch bySource := flags&snapshotBySource != 0; {
	case flags&^snapshotBySource != 0:
		return nil, fmt.Errorf("windowagg: snapshot has unknown flags %#x", flags)
	case bySource && !e.bySource:
		return nil, errors.New("windowagg: the snapshot of a Merger cannot restore into an Engine")
	case !bySource && e.bySource:
		return nil, errors.New("windowagg: the snapshot of an Engine cannot restore into a Merger")
	}
	return payload, nil
}

// restoredRule is what a snapshot holds for one rule of the engine.
type restoredRule struct {
	windows, closed map[int64]*window
	carries         map[string]carry
}

// carried reads what appendCarried wrote into the closed windows and
// returns the rule's carries.
func (r *snapReader) carried(closed map[int64]*window) map[string]carry {
	n := r.count("carried windows", 2)
	for range n {
		start := r.varint()
		c := r.carries()
		if w := closed[start]; w != nil && r.err == nil {
			w.carried = c
		} else if r.err == nil {
			r.fail("carried window %d is not closed", start)
		}
	}
	return r.carries()
}

// rules reads the snapshot's rules into restored, by position in engine:
// the windows each rule of the engine restores. It returns their number of
// series.
// The k-th occurrence of a name in the snapshot goes to the k-th rule of
// that name in the engine; a snapshot rule without a match, or whose window
// size or GroupBy differ, is read and dropped.
func (r *snapReader) rules(engine []*ruleState, restored []restoredRule, shape seriesKeyShape) (open int) {
	byName := map[string][]int{}
	for i, rs := range engine {
		byName[rs.Name] = append(byName[rs.Name], i)
	}
	seen := map[string]int{}
	n := r.count("rules", minRuleBytes)
	for range n {
		name := r.str()
		size := r.uvarint()
		groupBy := r.strings("GroupBy")
		var acc string
		if r.version >= 2 {
			acc = r.str()
		}
		if r.err != nil {
			break
		}
		shape.acc = nil
		if acc != "" {
			f, _ := LookupFunction(acc) // decoding needs no parameter of it
			if shape.acc = accumulating(f); shape.acc == nil {
				r.fail("rule %q: %q keeps no accumulator in this build", name, acc)
				break
			}
		}
		if size == 0 || size > math.MaxInt64 {
			r.fail("rule %q: window size %d ms", name, size)
			break
		}
		shape.size, shape.values = int64(size), len(groupBy)
		windows, ws := r.windows(shape)
		closed, cs := r.windows(shape)
		var carries map[string]carry
		if _, ok := shape.acc.(seriesFunc); ok {
			carries = r.carried(closed)
		}
		if r.err != nil {
			break
		}
		k := seen[name]
		seen[name]++
		if k < len(byName[name]) {
			i := byName[name][k]
			if rs := engine[i]; rs.size == int64(size) && slices.Equal(rs.GroupBy, groupBy) && accName(rs.acc) == acc {
				restored[i] = restoredRule{windows, closed, carries}
				open += ws + cs
			}
		}
	}
	return open
}

// snapReader decodes a snapshot payload. The first problem is kept in err;
// from then on every read returns zero, and counts are zero, so that loops
// end at once.
type snapReader struct {
	b       []byte
	off     int
	err     error
	version byte
}

func (r *snapReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("windowagg: invalid snapshot at byte %d: %s", r.off, fmt.Sprintf(format, args...))
	}
}

func (r *snapReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("truncated or malformed varint")
		return 0
	}
	r.off += n
	return v
}

func (r *snapReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("truncated or malformed varint")
		return 0
	}
	r.off += n
	return v
}

func (r *snapReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *snapReader) float() float64 { return math.Float64frombits(r.uint64()) }

// uint64 reads 8 bytes little-endian.
func (r *snapReader) uint64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 8 {
		r.fail("truncated")
		return 0
	}
	r.off += 8
	return binary.LittleEndian.Uint64(r.b[r.off-8:])
}

// bytes returns a length-prefixed byte string, aliasing the snapshot.
func (r *snapReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("string of %d bytes runs past the end", n)
		return nil
	}
	r.off += int(n)
	return r.b[r.off-int(n) : r.off]
}

func (r *snapReader) str() string { return string(r.bytes()) }

// count reads the number of items of a list whose items take at least
// minBytes each, and fails if the rest of the snapshot cannot hold them.
func (r *snapReader) count(what string, minBytes int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64((len(r.b)-r.off)/minBytes) {
		r.fail("%d %s do not fit in the %d bytes left", n, what, len(r.b)-r.off)
		return 0
	}
	return int(n)
}

func (r *snapReader) strings(what string) []string {
	n := r.count(what, 1)
	list := make([]string, 0, n)
	for range n {
		s := r.str()
		if r.err != nil {
			return nil
		}
		list = append(list, s)
	}
	return list
}

// interner reads an interner's list and rebuilds its index, so that ids
// stay those of the snapshot.
func (r *snapReader) interner(what string) interner {
	list := r.strings(what + "s")
	if len(list) > math.MaxUint32 {
		r.fail("%d %ss", len(list), what)
	}
	ids := make(map[string]uint32, len(list))
	for i, s := range list {
		if _, dup := ids[s]; dup {
			r.fail("%s %q is interned twice", what, s)
			break
		}
		ids[s] = uint32(i)
	}
	return interner{ids: ids, list: list}
}

func (r *snapReader) sources() map[Source]*source {
	n := r.count("sources", minSourceBytes)
	sources := make(map[Source]*source, n)
	for range n {
		stream := r.str()
		partition := r.varint()
		s := &source{maxTime: r.varint()}
		idle := r.byte()
		s.position = r.varint()
		if r.err != nil {
			return nil
		}
		src := Source{Stream: stream, Partition: int32(partition)}
		switch {
		case partition != int64(src.Partition):
			r.fail("partition %d out of range", partition)
		case idle > 1:
			r.fail("source idle flag %d", idle)
		case sources[src] != nil:
			r.fail("source %s/%d given twice", stream, partition)
		}
		if r.err != nil {
			return nil
		}
		s.idle = idle == 1
		sources[src] = s
	}
	return sources
}

// seriesKeyShape is what the series keys and series of one rule's windows
// must fit.
type seriesKeyShape struct {
	size         int64                // window size, ms
	values       int                  // group values per key
	contribution bool                 // keys end with the contributing source
	tenants      int                  // interned tenants
	regions      int                  // interned regions
	acc          AccumulatingFunction // decodes the series' accumulators; nil: none
}

// windows reads one window map of a rule and returns it with its number
// of series.
func (r *snapReader) windows(shape seriesKeyShape) (map[int64]*window, int) {
	n := r.count("windows", minWindowBytes)
	ws := make(map[int64]*window, n)
	total := 0
	for range n {
		start := r.varint()
		flags := r.byte()
		w := r.window(start, shape)
		switch {
		case r.err != nil:
		case WindowStart(start, shape.size) != start:
			r.fail("window start %d is not a multiple of %d ms", start, shape.size)
		case flags&^windowDirty != 0:
			r.fail("unknown window flags %#x", flags)
		case ws[start] != nil:
			r.fail("window %d given twice", start)
		}
		if r.err != nil {
			return nil, 0
		}
		w.dirty = flags&windowDirty != 0
		ws[start] = w
		total += int(w.n)
	}
	return ws, total
}

// window reads the series of one window: their keys, then their states.
func (r *snapReader) window(start int64, shape seriesKeyShape) *window {
	n := r.count("series", minSeriesBytes)
	if r.err != nil {
		return nil
	}
	if n > math.MaxInt32 {
		r.fail("%d series in one window", n)
		return nil
	}
	keysAt := r.off
	for range n {
		if key := r.bytes(); r.err == nil && !shape.validKey(key) {
			r.fail("malformed series key %q", key)
		}
		if r.err != nil {
			return nil
		}
	}
	// One string holds every key of the window, so restoring costs one
	// allocation for all of them; the keys die with the window together.
	block := string(r.b[keysAt:r.off])
	w := &window{start: start, index: make(map[string]int32, n)}
	for i, at := 0, 0; i < n; i++ {
		l, m := binary.Uvarint(r.b[keysAt+at:])
		key := block[at+m : at+m+int(l)]
		at += m + int(l)
		if _, dup := w.index[key]; dup {
			r.fail("series key %q given twice", key)
			return nil
		}
		w.index[key] = int32(i)
	}
	for range n {
		var s series
		acc := r.series(&s, start, shape)
		if r.err != nil {
			return nil
		}
		*w.series(w.newSeries(s.region, acc)) = s
	}
	return w
}

// series reads one series into s, and returns its accumulator (nil when
// the rule keeps none).
func (r *snapReader) series(s *series, start int64, shape seriesKeyShape) Accumulator {
	form := r.byte()
	region := r.uvarint()
	if form&^seriesShapes != 0 {
		r.fail("unknown series shape %#x", form)
	}
	if r.err == nil && region >= uint64(shape.regions) {
		r.fail("region %d of %d", region, shape.regions)
	}
	s.region = uint32(region)
	st := &s.state
	st.Count = r.varint()
	if form&seriesPlain == 0 {
		st.Records = r.varint()
	} else {
		st.Records = st.Count
	}
	st.Sum = r.float()
	if form&seriesSingle == 0 {
		st.Min, st.Max = r.float(), r.float()
		st.FirstValue, st.LastValue = r.float(), r.float()
	} else {
		st.Min, st.Max, st.FirstValue, st.LastValue = st.Sum, st.Sum, st.Sum, st.Sum
	}
	st.FirstTime = start + r.varint()
	if form&seriesOneTime == 0 {
		st.LastTime = start + r.varint()
	} else {
		st.LastTime = st.FirstTime
	}
	if form&seriesPlain == 0 {
		st.FirstRecords, st.LastRecords = r.varint(), r.varint()
	} else {
		st.FirstRecords, st.LastRecords = 1, 1
	}
	s.position = r.varint()
	if shape.acc == nil || r.err != nil {
		return nil
	}
	acc, err := shape.acc.DecodeAccumulator(r.bytes())
	if err != nil && r.err == nil {
		r.fail("%v", err)
	}
	return acc
}

// validKey reports whether key is a series key as appendSeriesKey (or
// appendContributionKey) makes them for the shape: a known tenant, then
// exactly the group values (and the source), every varint canonical, so
// that decodeSeriesKey and emit can trust it and no two keys spell one
// series.
func (sh *seriesKeyShape) validKey(key []byte) bool {
	tenant, n := binary.Uvarint(key)
	if n <= 0 || n != uvarintLen(tenant) || tenant >= uint64(sh.tenants) {
		return false
	}
	key = key[n:]
	values := sh.values
	if sh.contribution {
		values++
	}
	for i := range values {
		l, n := binary.Uvarint(key)
		if n <= 0 || n != uvarintLen(l) || l > uint64(len(key)-n) {
			return false
		}
		v := key[n : n+int(l)]
		if sh.contribution && i == values-1 && (len(v) < 5 || v[len(v)-5] != '/') {
			return false // not a source: stream, '/', partition
		}
		key = key[n+int(l):]
	}
	return len(key) == 0
}

// uvarintLen is the length of the canonical uvarint encoding of v.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
