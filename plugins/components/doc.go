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
package components
