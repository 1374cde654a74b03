package kafka

import (
	"cmp"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// singleOwnerProtocol is the group protocol name of singleOwnerBalancer.
// Every member of a group must offer it.
const singleOwnerProtocol = "monasca-single-owner"

// singleOwnerBalancer is a group balancer that gives every partition of the
// group's topics to one member and nothing to the others, which stand by
// to take over when the owner leaves the group.
//
// The owner is sticky: a member that owns partitions keeps them and all the
// others, so a standby that joins moves nothing. Without an owner (the first
// balance, or the owner left), the first member in the order the group
// sorts members in gets everything: the lowest instance ID, else the lowest
// member ID.
//
// The balancer is cooperative. A partition that moves from one member to
// another (only when two members claim partitions, e.g. after a split of
// the group) is first taken from its old owner and given to the new one in
// the rebalance that follows its revocation, as kgo's cooperative-sticky
// balancer does, so that no partition has two owners at once.
type singleOwnerBalancer struct{}

func (singleOwnerBalancer) ProtocolName() string { return singleOwnerProtocol }

func (singleOwnerBalancer) IsCooperative() bool { return true }

// JoinGroupMetadata encodes the member's topics and, for the cooperative
// protocol, the partitions it owns now.
func (singleOwnerBalancer) JoinGroupMetadata(topics []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.Generation = generation
	for topic, partitions := range current {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = topic
		owned.Partitions = partitions
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	// Equal metadata for equal state: the broker compares it to decide
	// whether a rejoining static member changed.
	slices.SortFunc(meta.OwnedPartitions, func(a, b kmsg.ConsumerMemberMetadataOwnedPartition) int {
		return strings.Compare(a.Topic, b.Topic)
	})
	return meta.AppendTo(nil)
}

func (singleOwnerBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b singleOwnerBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	return cb, cb.MemberTopics(), err
}

// Balance gives each topic's partitions to the most preferred member that
// subscribes to the topic (see ownerRank); with equal subscriptions, that
// is one member for all of them.
func (singleOwnerBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	members := cb.Members()
	order := make([]int, len(members))
	ranks := make([]ownerRank, len(members))
	for i := range members {
		order[i] = i
		_, meta := cb.MemberAt(i)
		ranks[i] = ownerRankOf(meta)
	}
	// Members come sorted by instance ID, then member ID; a stable sort
	// keeps that order among equal ranks.
	slices.SortStableFunc(order, func(a, b int) int { return ranks[b].compare(ranks[a]) })

	plan := cb.NewPlan()
	for topic, count := range topics {
		for _, i := range order {
			member, meta := cb.MemberAt(i)
			if !slices.Contains(meta.Topics, topic) {
				continue
			}
			partitions := make([]int32, count)
			for p := range partitions {
				partitions[p] = int32(p)
			}
			plan.AddPartitions(member, topic, partitions)
			break
		}
	}
	// Partitions planned for a member while another still claims them
	// are held back until the claimant revoked them and rejoined.
	plan.AdjustCooperative(cb)
	return plan
}

// ownerRank orders members by how much of the group they own now: the
// newest generation a member claims partitions at first (an older claim is
// stale, KIP-792), then the number of partitions it claims.
type ownerRank struct {
	generation int32
	owned      int
}

func ownerRankOf(meta *kmsg.ConsumerMemberMetadata) ownerRank {
	r := ownerRank{generation: -1}
	for _, t := range meta.OwnedPartitions {
		r.owned += len(t.Partitions)
	}
	if r.owned > 0 {
		r.generation = meta.Generation
	}
	return r
}

func (r ownerRank) compare(o ownerRank) int {
	return cmp.Or(cmp.Compare(r.generation, o.generation), cmp.Compare(r.owned, o.owned))
}
