// Package windowagg is the aggregation engine of monasca-connect: it folds
// Monasca metrics into epoch-aligned, event-time tumbling windows, one running
// State per (rule, window, tenant, group), and closes windows when the
// watermark passes their end plus a lag.
//
// The engine is plain Go with an injected clock and no framework types, so
// the Connect adapters (package components) only translate messages, acks and
// configuration. Reading order for a newcomer: Rule (what to aggregate),
// Engine.Add (one metric in), Engine.Flush (closed windows out), State and
// Function (how a value is computed). Merger is stage two of a two-stage
// aggregation; it shares the Engine's window store (store.go) and takes
// contributions instead of metrics.
//
// # Words
//
// These words have one meaning each, here and in the adapters.
//
//   - Rule: one compiled aggregation of either spec language: which samples
//     it takes, how it groups them, its function and its output naming.
//   - Series: what one rule aggregates in one window for one tenant and one
//     set of group values; it becomes one aggregate (before any rollup).
//   - Source: one ordered input stream, a Kafka topic partition; the engine
//     tracks event time per source.
//   - Watermark: the least latest event time over the sources that are not
//     quiet. A window closes when the watermark reaches its close time.
//   - Close time: a window's end plus the lag, epoch ms. Closing a window
//     emits its aggregates; it takes no more samples unless kept for
//     corrections.
//   - Frontier: the close time through which windows have been emitted
//     (Engine.Frontier). It only moves forward, and it is what a checkpoint
//     records and Restore takes back.
//   - Replay: input read again after a restart or a rebalance. A sample of a
//     window closing at or before the restored frontier is a replay: counted
//     (AddResult.Replayed), not aggregated twice.
//   - Snapshot: the engine's complete state in bytes (AppendSnapshot,
//     RestoreSnapshot), from which another engine continues exactly.
//   - Checkpoint: a snapshot saved durably, with the input positions
//     (offsets) it reflects, by the buffer (packages components and
//     checkpoint); input is acknowledged once a saved checkpoint holds it.
//   - Lane: the buffer's unit of state: an engine with its held
//     acknowledgements and checkpoints; one for the whole input in stage
//     single, one per input partition in the scale-out stages, so that a
//     partition can move to another instance with its state.
//   - Contribution: the series state a stage-one lane hands to stage two for
//     one closed window (SeriesState); a later one from the same source
//     replaces it (Merger.Contribute).
//   - Position: where a contribution or a progress report stands in its
//     stage-one source's stream (the partials topic offset), by which the
//     Merger tells a stale copy or a replay from news.
//   - Route: the final group key of a series (SeriesState.Route): series of
//     different routes never meet in one output row, so stage two may be
//     partitioned by it.
package windowagg
