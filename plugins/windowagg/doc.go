// Package windowagg is the aggregation engine of monasca-connect: it folds
// Monasca metrics into epoch-aligned, event-time tumbling windows, one running
// State per (rule, window, tenant, group), and closes windows when the
// watermark passes their end plus a lag.
//
// The engine is plain Go with an injected clock and no framework types, so
// the Connect adapters (package components) only translate messages, acks and
// configuration. Reading order for a newcomer: Rule (what to aggregate),
// Engine.Add (one metric in), Engine.Flush (closed windows out), State and
// Function (how a value is computed).
package windowagg
