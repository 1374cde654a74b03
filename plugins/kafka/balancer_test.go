package kafka

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinMember is a member as the group leader sees it in a JoinGroup
// response.
type joinMember struct {
	id, instance string
	topics       []string
	owned        map[string][]int32
	generation   int32
}

// balanceSingleOwner balances members, given in the order the group sorts
// them, and returns each member's assignment.
func balanceSingleOwner(t *testing.T, topics map[string]int32, members ...joinMember) map[string]map[string][]int32 {
	t.Helper()
	var b singleOwnerBalancer
	var join []kmsg.JoinGroupResponseMember
	for _, m := range members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		if m.instance != "" {
			jm.InstanceID = kmsg.StringPtr(m.instance)
		}
		jm.ProtocolMetadata = b.JoinGroupMetadata(m.topics, m.owned, m.generation)
		join = append(join, jm)
	}
	mb, interests, err := b.MemberBalancer(join)
	if err != nil {
		t.Fatal(err)
	}
	for topic := range topics {
		if _, ok := interests[topic]; !ok {
			t.Fatalf("topic %s missing from the members' interests %v", topic, interests)
		}
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(topics)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string][]int32{}
	for _, a := range into.IntoSyncAssignment() {
		parsed, err := b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatal(err)
		}
		for topic, ps := range parsed {
			if len(ps) == 0 {
				delete(parsed, topic)
			}
		}
		got[a.MemberID] = parsed
	}
	if len(got) != len(members) {
		t.Fatalf("%d assignments for %d members", len(got), len(members))
	}
	return got
}

func all(n int32) []int32 {
	ps := make([]int32, n)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

func sameAssignment(a, b map[string][]int32) bool {
	return maps.EqualFunc(a, b, func(x, y []int32) bool { return slices.Equal(x, y) })
}

func TestBalancerSingleOwner(t *testing.T) {
	topics := map[string]int32{"metrics": 4, "events": 2}
	sub := []string{"events", "metrics"}
	everything := map[string][]int32{"metrics": all(4), "events": all(2)}
	none := map[string][]int32{}

	for _, tc := range []struct {
		name    string
		members []joinMember
		want    map[string]map[string][]int32
	}{{
		name: "no owner: the first member gets all",
		members: []joinMember{
			{id: "a", topics: sub, generation: -1},
			{id: "b", topics: sub, generation: -1},
			{id: "c", topics: sub, generation: -1},
		},
		want: map[string]map[string][]int32{"a": everything, "b": none, "c": none},
	}, {
		name: "no owner, static members: the lowest instance ID gets all",
		members: []joinMember{
			{id: "z", instance: "pod-0", topics: sub, generation: -1},
			{id: "a", instance: "pod-1", topics: sub, generation: -1},
		},
		want: map[string]map[string][]int32{"z": everything, "a": none},
	}, {
		name: "the owner keeps all, a standby joining gets nothing",
		members: []joinMember{
			{id: "a", topics: sub, generation: -1},
			{id: "b", topics: sub, owned: everything, generation: 7},
			{id: "c", topics: sub, generation: 7},
		},
		want: map[string]map[string][]int32{"a": none, "b": everything, "c": none},
	}, {
		name: "the owner gone: one standby gets all",
		members: []joinMember{
			{id: "b", topics: sub, generation: 7},
			{id: "c", topics: sub, generation: 7},
		},
		want: map[string]map[string][]int32{"b": everything, "c": none},
	}, {
		name: "a stale claim loses to a newer one",
		members: []joinMember{
			{id: "a", topics: sub, owned: everything, generation: 3},
			{id: "b", topics: sub, owned: everything, generation: 9},
		},
		want: map[string]map[string][]int32{"a": none, "b": everything},
	}, {
		// Two owners of the same generation (after a split): the one with
		// more keeps its own now and gets the other's once they are
		// revoked, so that no partition has two owners at once.
		name: "two claimants: partitions still claimed move in a second rebalance",
		members: []joinMember{
			{id: "a", topics: sub, owned: map[string][]int32{"metrics": {0, 1}}, generation: 5},
			{id: "b", topics: sub, owned: map[string][]int32{"metrics": {2, 3}, "events": {0, 1}}, generation: 5},
		},
		want: map[string]map[string][]int32{
			"a": none,
			"b": {"metrics": {2, 3}, "events": {0, 1}},
		},
	}, {
		name: "two claimants, second rebalance: the owner gets all",
		members: []joinMember{
			{id: "a", topics: sub, generation: 6},
			{id: "b", topics: sub, owned: map[string][]int32{"metrics": {2, 3}, "events": {0, 1}}, generation: 6},
		},
		want: map[string]map[string][]int32{"a": none, "b": everything},
	}, {
		name: "a topic the owner does not consume goes to a member that does",
		members: []joinMember{
			{id: "a", topics: []string{"metrics"}, owned: map[string][]int32{"metrics": all(4)}, generation: 2},
			{id: "b", topics: sub, generation: 2},
		},
		want: map[string]map[string][]int32{
			"a": {"metrics": all(4)},
			"b": {"events": all(2)},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := balanceSingleOwner(t, topics, tc.members...)
			for id, want := range tc.want {
				if !sameAssignment(got[id], want) {
					t.Errorf("member %s: got %v, want %v (all: %v)", id, got[id], want, got)
				}
			}
		})
	}
}

func TestBalancerSingleOwnerMetadataIsDeterministic(t *testing.T) {
	var b singleOwnerBalancer
	owned := map[string][]int32{"b": {0, 1}, "a": {2}, "c": {3}}
	first := b.JoinGroupMetadata([]string{"a", "b", "c"}, owned, 4)
	for range 20 {
		if got := b.JoinGroupMetadata([]string{"a", "b", "c"}, maps.Clone(owned), 4); !slices.Equal(got, first) {
			t.Fatal("join metadata differs for the same state")
		}
	}
	if !b.IsCooperative() || b.ProtocolName() != singleOwnerProtocol {
		t.Fatal("unexpected protocol")
	}
}

// Two inputs in one group with single_owner: the first holds every
// partition and keeps them when the second joins; when the first leaves,
// the second takes everything over.
func TestBalancerSingleOwnerGroup(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(4, "metrics"), kfake.SeedTopics(2, "events"))
	const conf = "topics: [ \"metrics,events\" ]\nconsumer_group: g\nbalancer: single_owner\n"

	owner, hubOwner := newTestInput(t, ctx, addr, conf)
	probeOwner := newProbe(t, hubOwner)
	waitFor(t, "the first member to hold all 6 partitions", func() bool { return probeOwner.holds() == 6 })

	standby, hubStandby := newTestInput(t, ctx, addr, conf)
	probeStandby := newProbe(t, hubStandby)
	// The standby has joined once the group's generation moved past the
	// owner's first one.
	_, gen := owner.cl.GroupMetadata()
	waitFor(t, "the second member to join", func() bool {
		_, g := standby.cl.GroupMetadata()
		return g > gen
	})
	time.Sleep(500 * time.Millisecond)
	if probeOwner.holds() != 6 || probeStandby.holds() != 0 {
		t.Fatalf("after the standby joined: owner holds %d, standby %d; want 6 and 0 (owner events %v)",
			probeOwner.holds(), probeStandby.holds(), probeOwner.log())
	}
	if events := probeOwner.log(); len(events) != 1 {
		t.Fatalf("owner events %v, want only its first assignment", events)
	}

	if err := owner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the standby to take all 6 partitions", func() bool { return probeStandby.holds() == 6 })
	if probeStandby.topics["metrics"] != 4 || probeStandby.topics["events"] != 2 {
		t.Fatalf("partition counts %v", probeStandby.topics)
	}
}

// Static members with single_owner, as the shipped pipelines run: the
// owner's close does not leave the group, so the standby takes nothing
// until the session times out, and the owner restarted in time takes its
// place back; an owner that does not come back is evicted and the standby
// takes everything over.
func TestBalancerSingleOwnerStaticMembers(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(4, "metrics"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	conf := func(id string) string {
		return "topics: [ metrics ]\nconsumer_group: g\nbalancer: single_owner\nsession_timeout: 2s\ninstance_id: " + id + "\n"
	}

	owner, hubOwner := newTestInput(t, ctx, addr, conf("pod-0"))
	probeOwner := newProbe(t, hubOwner)
	waitFor(t, "the owner to hold all partitions", func() bool { return probeOwner.holds() == 4 })
	_, hubStandby := newTestInput(t, ctx, addr, conf("pod-1"))
	probeStandby := newProbe(t, hubStandby)

	// Closed, the static owner stays in the group for the session timeout.
	time.Sleep(500 * time.Millisecond)
	if err := owner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if probeStandby.holds() != 0 {
		t.Fatalf("the standby took %d partitions before the owner's session timed out", probeStandby.holds())
	}

	// Restarted within the session timeout, the owner gets all back.
	_, hubRestarted := newTestInput(t, ctx, addr, conf("pod-0"))
	probeRestarted := newProbe(t, hubRestarted)
	waitFor(t, "the restarted owner to hold all partitions", func() bool { return probeRestarted.holds() == 4 })
	if probeStandby.holds() != 0 {
		t.Fatalf("the standby holds %d partitions", probeStandby.holds())
	}
}

func TestBalancerSingleOwnerStaticEviction(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t, kfake.SeedTopics(4, "metrics"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	conf := func(id string) string {
		return "topics: [ metrics ]\nconsumer_group: g\nbalancer: single_owner\nsession_timeout: 2s\ninstance_id: " + id + "\n"
	}
	owner, hubOwner := newTestInput(t, ctx, addr, conf("pod-0"))
	probeOwner := newProbe(t, hubOwner)
	waitFor(t, "the owner to hold all partitions", func() bool { return probeOwner.holds() == 4 })
	_, hubStandby := newTestInput(t, ctx, addr, conf("pod-1"))
	probeStandby := newProbe(t, hubStandby)
	time.Sleep(500 * time.Millisecond)

	closed := time.Now()
	if err := owner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the standby to take all partitions", func() bool { return probeStandby.holds() == 4 })
	if d := time.Since(closed); d < time.Second {
		t.Fatalf("the standby took over %v after the owner closed, before its session could time out", d)
	}
}
