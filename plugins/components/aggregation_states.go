package components

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// The partials topic between the two stages of a scale-out carries two kinds
// of JSON messages. A state message is the windowagg.SeriesState of one
// series of one window closed by stage one, with the input partition and
// offset it reflects:
//
//	{"state":{"source":{"topic":"metrics","partition":3,"offset":41873},
//	  "rule":"cpu_sum","window_start":1704067200000,"window_end":1704067210000,
//	  "tenant_id":"abc","region":"useast","values":["host1"],
//	  "count":12,"records":12,"sum":53.5,"min":1,"max":9.5,
//	  "first_time":1704067200105,"first_value":1,"first_records":1,
//	  "last_time":1704067209870,"last_value":2,"last_records":1}}
//
// A progress message tells every stage-two partition, for each input
// partition a stage-one instance holds, the frontier it has delivered
// ("through": every window closing at or before it, in epoch ms of window end
// plus lag; absent before the first), and whether the partition is idle:
//
//	{"progress":[{"source":{"topic":"metrics","partition":3,"offset":41990},
//	  "through":1704067212000,"idle":false,"lag_ms":2000}]}

// partitionMetaKey is the metadata key of the partials-topic partition a
// stage-one message must be written to (output partitioner: manual).
const partitionMetaKey = "monasca_partition"

type wireMessage struct {
	State    *wireState     `json:"state,omitempty"`
	Progress []wireProgress `json:"progress,omitempty"`
}

type wireSource struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type wireState struct {
	Source       wireSource `json:"source"`
	Rule         string     `json:"rule"`
	WindowStart  int64      `json:"window_start"`
	WindowEnd    int64      `json:"window_end"`
	TenantID     string     `json:"tenant_id"`
	Region       string     `json:"region"`
	Values       []string   `json:"values"`
	Count        int64      `json:"count"`
	Records      int64      `json:"records"`
	Sum          wireFloat  `json:"sum"`
	Min          wireFloat  `json:"min"`
	Max          wireFloat  `json:"max"`
	FirstTime    int64      `json:"first_time"`
	FirstValue   wireFloat  `json:"first_value"`
	FirstRecords int64      `json:"first_records"`
	LastTime     int64      `json:"last_time"`
	LastValue    wireFloat  `json:"last_value"`
	LastRecords  int64      `json:"last_records"`
	// Acc is the accumulator of a function that keeps one (stddev,
	// percentiles), base64 in JSON.
	Acc []byte `json:"acc,omitempty"`
}

type wireProgress struct {
	Source  wireSource `json:"source"`
	Through *int64     `json:"through,omitempty"`
	Idle    bool       `json:"idle"`
	LagMS   int64      `json:"lag_ms"`
}

// wireFloat is a float64 that survives JSON exactly, infinities included (a
// sum can overflow), which encoding/json refuses.
type wireFloat float64

func (f wireFloat) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(f), 0) {
		return strconv.AppendQuote(nil, strconv.FormatFloat(float64(f), 'g', -1, 64)), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

func (f *wireFloat) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		var err error
		if s, err = strconv.Unquote(s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = wireFloat(v)
	return nil
}

func sourceOf(src windowagg.Source, offset int64) wireSource {
	return wireSource{Topic: src.Stream, Partition: src.Partition, Offset: offset}
}

// stateMessage renders s, closed by the stage-one lane of input partition src
// at input offset offset, addressed to its partials partition.
func stateMessage(s *windowagg.SeriesState, src windowagg.Source, offset int64, partitions int) (*service.Message, error) {
	st := &s.State
	b, err := json.Marshal(wireMessage{State: &wireState{
		Source: sourceOf(src, offset), Rule: s.Rule, WindowStart: s.WindowStart, WindowEnd: s.WindowEnd,
		TenantID: s.TenantID, Region: s.Region, Values: s.Values,
		Count: st.Count, Records: st.Records, Sum: wireFloat(st.Sum), Min: wireFloat(st.Min), Max: wireFloat(st.Max),
		FirstTime: st.FirstTime, FirstValue: wireFloat(st.FirstValue), FirstRecords: st.FirstRecords,
		LastTime: st.LastTime, LastValue: wireFloat(st.LastValue), LastRecords: st.LastRecords,
		Acc: s.Acc,
	}})
	if err != nil {
		return nil, err
	}
	msg := service.NewMessage(b)
	msg.MetaSetMut(partitionMetaKey, strconv.Itoa(routePartition(s.Route, partitions)))
	return msg, nil
}

// routePartition spreads routes over the partials partitions; every state of
// one route, from any instance, goes to the same one.
func routePartition(route string, partitions int) int {
	h := fnv.New32a()
	h.Write([]byte(route))
	return int(h.Sum32() % uint32(partitions))
}

// progressMessages renders the progress of an instance's lanes once per
// partials partition, since every stage-two partition waits for every input
// partition.
func progressMessages(progress []wireProgress, partitions int) (service.MessageBatch, error) {
	b, err := json.Marshal(wireMessage{Progress: progress})
	if err != nil {
		return nil, err
	}
	batch := make(service.MessageBatch, partitions)
	for p := range batch {
		batch[p] = service.NewMessage(b)
		batch[p].MetaSetMut(partitionMetaKey, strconv.Itoa(p))
	}
	return batch, nil
}

// errStateMismatch is the cause of a state or progress message that does not
// fit this stage's configuration: the stages must share specs, window size
// and lag.
var errStateMismatch = errors.New("the stages' specifications, window size or lag differ")

// foldStates applies one partials-topic message to a Merger. A source's
// Kafka offset in the partials topic is its position for the Merger.
func foldStates(raw []byte, engine *windowagg.Merger, lag int64) (windowagg.AddResult, error) {
	var res windowagg.AddResult
	var m wireMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return res, err
	}
	for _, p := range m.Progress {
		if p.LagMS != lag {
			return res, fmt.Errorf("%w: partition %d of %s reports a window lag of %d ms, this stage has %d ms", errStateMismatch, p.Source.Partition, p.Source.Topic, p.LagMS, lag)
		}
		through := int64(math.MinInt64)
		if p.Through != nil {
			through = *p.Through
		}
		engine.Progress(windowagg.Source{Stream: p.Source.Topic, Partition: p.Source.Partition}, p.Source.Offset, through, p.Idle)
	}
	if m.State == nil {
		if m.Progress == nil {
			return res, errors.New("neither a state nor progress")
		}
		return res, nil
	}
	w := m.State
	s := windowagg.SeriesState{
		Rule: w.Rule, WindowStart: w.WindowStart, WindowEnd: w.WindowEnd, TenantID: w.TenantID, Region: w.Region, Values: w.Values,
		State: windowagg.State{
			Count: w.Count, Records: w.Records, Sum: float64(w.Sum), Min: float64(w.Min), Max: float64(w.Max),
			FirstTime: w.FirstTime, FirstValue: float64(w.FirstValue), FirstRecords: w.FirstRecords,
			LastTime: w.LastTime, LastValue: float64(w.LastValue), LastRecords: w.LastRecords,
		},
		Acc: w.Acc,
	}
	res, err := engine.Contribute(windowagg.Source{Stream: w.Source.Topic, Partition: w.Source.Partition}, w.Source.Offset, &s)
	if err != nil {
		return res, fmt.Errorf("%w: %v", errStateMismatch, err)
	}
	return res, nil
}
