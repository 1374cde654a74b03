package components

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// badInput is one input message the aggregation must reject, and the reason
// it must count it under (the label of monasca_metrics_invalid_total and
// the dead letter's monasca_invalid_reason).
type badInput struct {
	name, body, reason string
}

// cpuEnvelope is an envelope of the metric the test specs aggregate, with
// the given members inside "metric" and the given top-level members after it.
func cpuEnvelope(metric, rest string) string {
	return `{"metric":{"name":"cpu",` + metric + `}` + rest + `}`
}

const goodMeta = `,"meta":{"tenantId":"t1","region":"r1"},"creation_time":1`

// badInputs are every kind of invalid input the suite knows, each stamped
// in the window of the good metrics so that, accepted, it would change an
// aggregate.
func badInputs() []badInput {
	ts := fmt.Sprint(t0 + 3_000)
	dims := `"dimensions":{"hostname":"h1"}`
	at := func(ts int64) string { return fmt.Sprintf(`%s,"timestamp":%d,"value":1`, dims, ts) }
	var many strings.Builder
	for i := range 51 {
		fmt.Fprintf(&many, `,"k%d":"v"`, i)
	}
	const day = 24 * 3_600_000
	return []badInput{
		{"truncated", `{"metric":{"name":"cpu","timestamp":` + ts, "malformed_json"},
		{"not JSON", `high load on h1`, "malformed_json"},
		{"empty", ``, "malformed_json"},
		{"trailing garbage", cpuEnvelope(at(t0+3_000), goodMeta) + `x`, "malformed_json"},
		{"no value", cpuEnvelope(dims+`,"timestamp":`+ts, goodMeta), "missing_field"},
		{"timestamp null", cpuEnvelope(dims+`,"timestamp":null,"value":1`, goodMeta), "missing_field"},
		{"no metric", `{"meta":{"tenantId":"t1"}}`, "missing_field"},
		{"value a word", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":"high"`, goodMeta), "wrong_type"},
		{"value a string holding a number", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":"99999999.5"`, goodMeta), "wrong_type"},
		{"timestamp a string holding a number", cpuEnvelope(dims+`,"timestamp":"`+ts+`","value":1`, goodMeta), "wrong_type"},
		{"dimension value a number", cpuEnvelope(`"dimensions":{"hostname":1},"timestamp":`+ts+`,"value":1`, goodMeta), "wrong_type"},
		{"tenantId a number", cpuEnvelope(at(t0+3_000), `,"meta":{"tenantId":7}`), "wrong_type"},
		{"NaN", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":NaN`, goodMeta), "non_finite_value"},
		{"-Infinity", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":-Infinity`, goodMeta), "non_finite_value"},
		{"overflow", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":1e400`, goodMeta), "non_finite_value"},
		{"invalid UTF-8", cpuEnvelope("\"dimensions\":{\"hostname\":\"h\xff\"},\"timestamp\":"+ts+",\"value\":1", goodMeta), "invalid_utf8"},
		{"lone surrogate", cpuEnvelope(`"dimensions":{"hostname":"h\ud800"},"timestamp":`+ts+`,"value":1`, goodMeta), "invalid_utf8"},
		{"name too long", `{"metric":{"name":"` + strings.Repeat("c", 256) + `",` + at(t0+3_000) + `}` + goodMeta + `}`, "name_too_long"},
		{"too many dimensions", cpuEnvelope(`"dimensions":{"hostname":"h1"`+many.String()+`},"timestamp":`+ts+`,"value":1`, goodMeta), "too_many_dimensions"},
		{"dimension too long", cpuEnvelope(`"dimensions":{"hostname":"`+strings.Repeat("h", 256)+`"},"timestamp":`+ts+`,"value":1`, goodMeta), "dimension_too_long"},
		{"timestamp in seconds", cpuEnvelope(at((t0+3_000)/1000), goodMeta), "timestamp_out_of_range"},
		{"timestamp negative", cpuEnvelope(at(-(t0 + 3_000)), goodMeta), "timestamp_out_of_range"},
		{"no tenantId", cpuEnvelope(at(t0+3_000), `,"meta":{"region":"r1"},"creation_time":1`), "missing_tenant"},
		{"tenantId empty", cpuEnvelope(at(t0+3_000), `,"meta":{"tenantId":"","region":"r1"}`), "missing_tenant"},
		{"tenantId null", cpuEnvelope(at(t0+3_000), `,"meta":{"tenantId":null}`), "missing_tenant"},
		{"no meta", cpuEnvelope(at(t0+3_000), `,"creation_time":1`), "missing_tenant"},
		{"meta null", cpuEnvelope(at(t0+3_000), `,"meta":null`), "missing_tenant"},
		{"a day ahead", cpuEnvelope(at(t0+day), goodMeta), "timestamp_in_future"},
		{"a year old", cpuEnvelope(at(t0-365*day), goodMeta), "timestamp_too_old"},
		{"eight days old", cpuEnvelope(at(t0-8*day), goodMeta), "timestamp_too_old"},
		{"a third host", cpuEnvelope(`"dimensions":{"hostname":"h3"},"timestamp":`+ts+`,"value":1`, goodMeta), "series_limit"},
	}
}

// TestBadInputChangesNoAggregate mixes every kind of bad input with good
// metrics in the aggregator specs' buffer: the aggregates must be those of
// the good metrics alone, and every bad message must come out as a dead
// letter with its reason, and be acknowledged.
func TestBadInputChangesNoAggregate(t *testing.T) {
	good := []*service.Message{
		envelope("cpu", "h1", t0+1_000, 1), envelope("cpu", "h2", t0+2_000, 2),
		envelope("cpu", "h1", t0+12_000, 4), envelope("cpu", "h2", t0+15_000, 8),
	}
	conf := "aggregation_specs: " + writeSpecs(t) + "\nmax_series_per_window: 2"
	want, letters := runBadInput(t, conf, good)
	if len(want) != 2 || len(letters) != 0 {
		t.Fatalf("good metrics alone: %q, dead letters %v", want, letters)
	}

	bad := badInputs()
	var mixed []*service.Message
	for i, msg := range good {
		mixed = append(mixed, msg)
		for _, b := range bad[i*len(bad)/len(good) : (i+1)*len(bad)/len(good)] {
			mixed = append(mixed, onPartition(service.NewMessage([]byte(b.body)), "metrics", 0, len(mixed)))
		}
	}
	got, letters := runBadInput(t, conf, mixed)
	if !slices.Equal(got, want) {
		t.Errorf("aggregates with bad input mixed in:\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(want, "\n "))
	}
	checkLetters(t, bad, letters)
}

// TestBadInputTransformSpecs checks the rules of metric envelopes with
// transform specs: numbers must be JSON numbers and timestamps within
// max_past as for aggregator specs, but the tenant comes from the
// dimensions, as monasca-transform took it, so a metric without meta is
// aggregated.
func TestBadInputTransformSpecs(t *testing.T) {
	dir := t.TempDir()
	pre := filepath.Join(dir, "pre.json")
	transform := filepath.Join(dir, "transform.json")
	for path, content := range map[string]string{
		pre:       `{"event_type":"cpu","metric_id_list":["cpu_sum"],"required_raw_fields_list":["creation_time"],"event_processing_params":{}}`,
		transform: `{"aggregation_params_map":{"aggregation_pipeline":{"source":"streaming","usage":"fetch_quantity","setters":["set_aggregated_metric_name","set_aggregated_period"],"insert":["insert_data"]},"aggregated_metric_name":"cpu_agg","aggregation_period":"hourly","aggregation_group_by_list":["host"],"usage_fetch_operation":"sum","dimension_list":["aggregation_period","host"]},"metric_group":"cpu_sum","metric_id":"cpu_sum"}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf("pre_transform_specs: %s\ntransform_specs: %s", pre, transform)
	ts := fmt.Sprint(t0 + 3_000)
	dims := `"dimensions":{"hostname":"h1"}`
	var meta strings.Builder
	for i := range 257 {
		fmt.Fprintf(&meta, `"k%d":"v",`, i)
	}
	noMeta := onPartition(service.NewMessage([]byte(cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":2`, `,"creation_time":1`))), "metrics", 0, 0)
	bad := []badInput{
		{"value a string holding a number", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":"99999999.5"`, goodMeta), "wrong_type"},
		{"timestamp a string holding a number", cpuEnvelope(dims+`,"timestamp":"`+ts+`","value":1`, goodMeta), "wrong_type"},
		{"a year old", cpuEnvelope(dims+fmt.Sprintf(`,"timestamp":%d,"value":1`, t0-365*24*3_600_000), goodMeta), "timestamp_too_old"},
		{"no creation_time", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":1`, `,"meta":{"tenantId":"t1"}`), "missing_required_field"},
		{"too many meta entries", cpuEnvelope(dims+`,"timestamp":`+ts+`,"value":1`, `,"meta":{`+strings.TrimSuffix(meta.String(), ",")+`},"creation_time":1`), "too_many_map_entries"},
	}

	good := []*service.Message{envelope("cpu", "h1", t0+1_000, 1), noMeta}
	want, letters := runBadInput(t, conf, good)
	if len(want) != 1 || !strings.Contains(want[0], `"value":3`) || len(letters) != 0 {
		t.Fatalf("good metrics alone (one without meta): %q, dead letters %v", want, letters)
	}
	mixed := slices.Clone(good)
	for _, b := range bad {
		mixed = append(mixed, onPartition(service.NewMessage([]byte(b.body)), "metrics", 0, len(mixed)))
	}
	got, letters := runBadInput(t, conf, mixed)
	if !slices.Equal(got, want) {
		t.Errorf("aggregates with bad input mixed in: %q, want %q", got, want)
	}
	checkLetters(t, bad, letters)
}

// runBadInput writes msgs as one batch to a buffer with dead letters on,
// configured by specs (the specs' fields and any other), lets every window
// close, and returns the aggregates (without their creation_time, which is
// the wall clock) and the dead letters' bodies by reason. The input must be
// acknowledged.
func runBadInput(t *testing.T, specs string, msgs []*service.Message) ([]string, map[string][]string) {
	t.Helper()
	clock := newTestClock(t0 + 20_000)
	conf, err := aggregateBufferSpec().ParseYAML(specs+"\nidle_timeout: 1m\npartition_discovery: 0s\ncheck_interval: 5ms\ndead_letter: true\nstate_cache: state", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBuffer(conf, service.MockResources(service.MockResourcesOptAddCache("state")), clock)
	if err != nil {
		t.Fatal(err)
	}
	in := write(t, b, msgs...)
	clock.Set(t0 + 2*3_600_000) // every partition idle: every window closes
	var aggregates []string
	letters := map[string][]string{}
	for _, msg := range drain(t, b, clock) {
		raw, _ := msg.AsBytes()
		if reason, ok := msg.MetaGet(invalidReasonMetaKey); ok {
			letters[reason] = append(letters[reason], string(raw))
			continue
		}
		var env map[string]any
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("aggregate %s: %v", raw, err)
		}
		delete(env, "creation_time")
		canonical, _ := json.Marshal(env)
		aggregates = append(aggregates, string(canonical))
	}
	if !in.acked() || in.err != nil {
		t.Errorf("input not acknowledged after its windows and dead letters were written: %+v", in)
	}
	return aggregates, letters
}

// checkLetters compares the dead letters with the bad inputs, by reason.
func checkLetters(t *testing.T, bad []badInput, letters map[string][]string) {
	t.Helper()
	want := map[string][]string{}
	for _, b := range bad {
		want[b.reason] = append(want[b.reason], b.body)
	}
	for _, reason := range slices.Sorted(maps.Keys(want)) {
		got := letters[reason]
		slices.Sort(got)
		slices.Sort(want[reason])
		if !slices.Equal(got, want[reason]) {
			t.Errorf("dead letters %s:\n %q\nwant\n %q", reason, got, want[reason])
		}
	}
	for reason, got := range letters {
		if _, ok := want[reason]; !ok {
			t.Errorf("unexpected dead letters %s: %q", reason, got)
		}
	}
}
