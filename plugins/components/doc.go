// Package components registers monasca-connect's Benthos plugins:
// the monasca_aggregate buffer, which runs the windowagg engine with
// at-least-once delivery behind a Kafka input; the monasca_aggregate
// processor, the same aggregation for `monasca-connect test` unit tests; and
// the monasca_record_store processor, which shows the records that
// monasca-transform specs see.
//
// The adapters here are thin: they decode Monasca envelopes (package
// monasca), convert them to records for transform specs (package
// recordstore), hand them to the engine (package windowagg), encode the
// closed windows' aggregates and manage acknowledgements. Import the package
// for its side effect of registering the plugins.
//
// # Words
//
// The engine's words (watermark, close time, frontier, replay, snapshot,
// checkpoint, lane, contribution, route) are defined in package windowagg.
// The buffer adds:
//
//   - Stage: the part a buffer plays (single, partials, merge), one type
//     each behind the stage interface: which lane takes an input partition,
//     when windows may close, what closed windows become.
//   - Position: the offset of the last input a lane folded from a
//     partition; a checkpoint records positions, and replayed input at or
//     before them is skipped.
//   - Held acknowledgement: an input batch's acknowledgement, kept until a
//     saved checkpoint holds the batch (and its dead letters are written).
//   - Flush: one closing of a lane's due windows; its output is delivered
//     once the output acknowledged every chunk of it.
//   - Settle: advancing a lane over its delivered flushes, saving its
//     pending checkpoint and releasing the acknowledgements that frees.
//   - Holding: the partitions the input holds, as its partition events
//     report them.
package components
