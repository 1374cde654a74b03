// Package kafka holds monasca-connect's own Kafka components, built on
// franz-go: the kafka input, with the single_owner group balancer; the
// Kafka output; the state store. They share the connection fields of
// client.go, whose names and meanings are those of Connect's redpanda
// components, so that users' YAML carries over.
//
// The input reads a consumer group's partitions and hands each partition's
// records on in batches of that partition, in offset order. It keeps no
// record after handing a batch on, only the batch's first and last offset,
// so that a buffer may hold acknowledgements for a long time without the
// input holding the data. It tells the stream's buffer which partitions it
// holds through package assignment's Hub.
//
// Glossary:
//   - acknowledged prefix: of one partition, the batches from the last
//     commit on up to, not including, the oldest batch not acknowledged.
//     The input commits the offset after it; acknowledged batches behind an
//     unacknowledged one wait.
//   - in flight: records handed on from the oldest unacknowledged batch
//     on, acknowledged or not; what a restart reads again.
//     checkpoint_limit bounds it per partition by pausing the partition's
//     fetching.
//   - nack: an acknowledgement with an error. The batch is read again from
//     Kafka and delivered again; the prefix does not pass it until then.
//   - assignment (of a partition): the time from the partition's
//     assignment to the member to its revocation or loss. Acknowledgements
//     of an earlier assignment's batches are ignored.
//   - revoked, lost, stopping: see package assignment.
//   - owner, standby: with the single_owner balancer, the one member that
//     holds every partition, and the members that hold none and take over
//     when the owner leaves the group.
//   - static member: a member with an instance_id; a restart within the
//     session timeout takes its place back without a rebalance.
//   - claim, fence (state store): a store's claim of a key takes a higher
//     epoch and writes a fence; saves of stores that claimed the key
//     earlier then fail Fenced, and what they write is never read.
package kafka
