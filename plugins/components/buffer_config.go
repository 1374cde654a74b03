package components

import (
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// bufferConfig is the monasca_aggregate buffer's configuration, checked
// once when the buffer is built; nothing changes it afterwards.
type bufferConfig struct {
	aggregation *aggregationConfig
	stage       stage
	// stateStore names a kafka_state_stores resource, stateCache a cache
	// resource: exactly one is set.
	stateStore, stateCache string
	stateKey               string
	checkpointEvery        time.Duration
	checkEvery             time.Duration
	maxBatch               int
	// startMs: windows ending at or before it are not computed on a first
	// start; 0: off.
	startMs int64
}

// parseBufferConfig checks every field of conf.
func parseBufferConfig(conf *service.ParsedConfig, log *service.Logger) (*bufferConfig, error) {
	ac, err := parseAggregationConfig(conf, log)
	if err != nil {
		return nil, err
	}
	c := &bufferConfig{aggregation: ac}
	if c.stage, err = parseStage(conf, ac); err != nil {
		return nil, err
	}
	if c.checkEvery, err = conf.FieldDuration(mabFieldCheckInterval); err != nil {
		return nil, err
	}
	if c.checkEvery <= 0 {
		return nil, fmt.Errorf("%s must be positive", mabFieldCheckInterval)
	}
	if c.maxBatch, err = conf.FieldInt(mabFieldMaxBatchSize); err != nil {
		return nil, err
	}
	if c.maxBatch < 1 {
		return nil, fmt.Errorf("%s must be at least 1", mabFieldMaxBatchSize)
	}
	if c.stateKey, err = conf.FieldString(mabFieldStateKey); err != nil {
		return nil, err
	}
	for field, dst := range map[string]*string{mabFieldStateStore: &c.stateStore, mabFieldStateCache: &c.stateCache} {
		if conf.Contains(field) {
			if *dst, err = conf.FieldString(field); err != nil {
				return nil, err
			}
		}
	}
	if (c.stateStore == "") == (c.stateCache == "") {
		return nil, fmt.Errorf("set %s (or %s for a single instance without fencing), not both", mabFieldStateStore, mabFieldStateCache)
	}
	if c.checkpointEvery, err = conf.FieldDuration(mabFieldCheckpoint); err != nil {
		return nil, err
	}
	if c.checkpointEvery <= 0 {
		return nil, fmt.Errorf("%s must be positive", mabFieldCheckpoint)
	}
	if c.startMs, err = startTime(conf); err != nil {
		return nil, err
	}
	return c, nil
}

// startTime parses start_time into epoch milliseconds, 0 when empty.
func startTime(conf *service.ParsedConfig) (int64, error) {
	raw, err := conf.FieldString(mabFieldStartTime)
	if err != nil || raw == "" {
		return 0, err
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil || t.UnixMilli() <= 0 {
		return 0, fmt.Errorf("%s: %q is not an RFC 3339 time after 1970 (e.g. 2026-12-06T15:00:00Z)", mabFieldStartTime, raw)
	}
	return t.UnixMilli(), nil
}

// parseStage builds the stage the buffer plays, adjusting the aggregation
// to it.
func parseStage(conf *service.ParsedConfig, ac *aggregationConfig) (stage, error) {
	name, err := conf.FieldString(mabFieldStage)
	if err != nil {
		return nil, err
	}
	switch name {
	case stagePartials:
		return parsePartialsStage(conf, ac)
	case stageMerge:
		ac.input, ac.converter = inputStates, nil
		return mergeStage{config: ac}, nil
	default:
		return singleStage{config: ac}, nil
	}
}
