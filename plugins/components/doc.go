// Package components registers monasca-connect's Redpanda Connect plugins:
// the monasca_aggregate buffer, which runs the windowagg engine with
// at-least-once delivery behind a Kafka input, and the monasca_aggregate
// processor, the same aggregation for `monasca-connect test` unit tests.
//
// The adapters here are thin: they decode Monasca envelopes (package
// monasca), hand them to the engine (package windowagg), encode the closed
// windows' aggregates and manage acknowledgements. Import the package for its
// side effect of registering the plugins.
package components
