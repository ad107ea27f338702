// Linearizable reads: ReadIndex (a heartbeat quorum round per batch) and
// lease-based reads (no round while the leader's lease holds).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "raft/test_cluster.h"

namespace synod::raft::testing {
namespace {

using base::Errc;

std::vector<std::string> contexts(const std::vector<ReadState>& states) {
  std::vector<std::string> out;
  for (const ReadState& rs : states) out.push_back(rs.context.str());
  return out;
}

bool in_flight_has(TestCluster& c, MessageType type) {
  for (const Message& m : c.in_flight()) {
    if (m.type == type) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// ReadIndex

TEST(RaftReadIndex, LeaderReadWaitsForAHeartbeatQuorumRound) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.propose(1, "x");
  c.node(1).read_index(Bytes("r1"));
  ASSERT_TRUE(c.process_ready(1));
  // Nothing yet: the leader must first confirm it still leads.
  EXPECT_TRUE(c.peer(1).read_states.empty());
  size_t rounds = 0;
  for (const Message& m : c.in_flight()) {
    if (m.type == MessageType::kHeartbeat && m.context.str() == "r1") ++rounds;
  }
  EXPECT_EQ(rounds, 2u) << "a heartbeat carrying the read's context to each follower";

  c.deliver_all();
  ASSERT_EQ(c.peer(1).read_states.size(), 1u);
  EXPECT_EQ(c.peer(1).read_states[0].context.str(), "r1");
  EXPECT_EQ(c.peer(1).read_states[0].index, c.raft(1).log().committed());
  EXPECT_EQ(c.peer(1).read_states[0].index, c.peer(1).applied.back().index);
}

TEST(RaftReadIndex, LeaderCutOffFromTheMajorityServesNoRead) {
  TestCluster c({1, 2, 3, 4, 5});
  c.elect(1);
  c.propose(1, "x");
  // One follower still answers: two of five is not a quorum.
  c.cut(1, 3);
  c.cut(1, 4);
  c.cut(1, 5);
  c.node(1).read_index(Bytes("r"));
  c.deliver_all();
  for (int i = 0; i < 3; ++i) {
    c.tick(1);
    c.deliver_all();
  }
  EXPECT_TRUE(c.peer(1).read_states.empty());

  // A third acknowledgement makes a quorum: the read completes.
  c.heal();
  c.cut(1, 4);
  c.cut(1, 5);
  c.tick(1);
  c.deliver_all();
  ASSERT_EQ(contexts(c.peer(1).read_states), std::vector<std::string>{"r"});
  EXPECT_EQ(c.peer(1).read_states[0].index, c.raft(1).log().committed());
}

TEST(RaftReadIndex, FollowerReadIsForwardedToTheLeader) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.propose(1, "x");
  c.delivered().clear();
  c.node(2).read_index(Bytes("f"));
  c.deliver_all();
  ASSERT_EQ(c.peer(2).read_states.size(), 1u);
  EXPECT_EQ(c.peer(2).read_states[0].context.str(), "f");
  EXPECT_EQ(c.peer(2).read_states[0].index, c.raft(1).log().committed());
  EXPECT_TRUE(c.peer(1).read_states.empty()) << "the leader answers the follower, not itself";
  bool forwarded = false;
  bool answered = false;
  for (const Message& m : c.delivered()) {
    if (m.type == MessageType::kReadIndex && m.from == nid(2) && m.to == nid(1)) forwarded = true;
    if (m.type == MessageType::kReadIndexResp && m.from == nid(1) && m.to == nid(2)) answered = true;
  }
  EXPECT_TRUE(forwarded);
  EXPECT_TRUE(answered);
}

TEST(RaftReadIndex, NewLeaderDefersReadsUntilItCommitsAnEntryOfItsTerm) {
  // Without CheckQuorum, node 2 may depose a live leader by campaigning.
  TestCluster c({1, 2, 3}, [](Config& config) { config.check_quorum = false; });
  c.elect(1);
  c.propose(1, "x");
  // Node 2 wins, but its first entry does not reach anyone.
  c.set_drop_filter([](const Message& m) {
    return m.from == nid(2) && m.type == MessageType::kApp;
  });
  ASSERT_TRUE(c.node(2).campaign().ok());
  c.deliver_all();
  ASSERT_EQ(c.raft(2).role(), Role::kLeader);
  const Term t = c.raft(2).term();
  ASSERT_NE(c.raft(2).log().term_or_zero(c.raft(2).log().committed()), t);

  c.node(2).read_index(Bytes("early"));
  c.deliver_all();
  c.tick(2);
  c.deliver_all();
  EXPECT_TRUE(c.peer(2).read_states.empty()) << "read served at a commit index that may be stale";

  c.heal();
  for (int i = 0; i < 3 && c.peer(2).read_states.empty(); ++i) {
    c.tick(2);
    c.deliver_all();
  }
  ASSERT_EQ(contexts(c.peer(2).read_states), std::vector<std::string>{"early"});
  const LogIndex index = c.peer(2).read_states[0].index;
  EXPECT_EQ(c.raft(2).log().term_or_zero(index), t);
  EXPECT_EQ(index, c.raft(2).log().committed());
}

TEST(RaftReadIndex, QueuedReadsAreReleasedTogether) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.propose(1, "x");
  c.set_drop_filter([](const Message& m) { return m.type == MessageType::kHeartbeatResp; });
  for (const char* context : {"a", "b", "c"}) {
    c.node(1).read_index(Bytes(context));
    c.deliver_all();
  }
  EXPECT_TRUE(c.peer(1).read_states.empty());

  c.heal();
  c.delivered().clear();
  c.tick(1);  // one heartbeat round, carrying the newest pending read
  c.deliver_all();
  for (const Message& m : c.delivered()) {
    if (m.type == MessageType::kHeartbeat) {
      EXPECT_EQ(m.context.str(), "c");
    }
  }
  ASSERT_EQ(contexts(c.peer(1).read_states), (std::vector<std::string>{"a", "b", "c"}));
  for (const ReadState& rs : c.peer(1).read_states) {
    EXPECT_EQ(rs.index, c.raft(1).log().committed());
  }
}

// ---------------------------------------------------------------------------
// Lease reads

TestCluster::ConfigTweak lease_based() {
  return [](Config& config) {
    config.read_only_option = ReadOnlyOption::kLeaseBased;
    config.check_quorum = true;
  };
}

// Ticks everyone until a leader emerges (nodes using leases grant no votes
// for their first election timeout, so `elect` cannot be used right away).
uint64_t elect_by_ticks(TestCluster& c) {
  for (int i = 0; i < 200; ++i) {
    c.tick_all();
    c.deliver_all();
    if (uint64_t lead = c.leader()) return lead;
  }
  return 0;
}

// The lease length in leader ticks the config promises.
int lease_ticks(const Config& config) {
  return static_cast<int>(
      std::floor(config.election_tick * (1.0 - config.max_clock_drift_ratio)));
}

TEST(RaftLeaseRead, LeaderWithAFreshQuorumAnswersWithoutAHeartbeatRound) {
  TestCluster c({1, 2, 3}, lease_based());
  const uint64_t lead = elect_by_ticks(c);
  ASSERT_NE(lead, 0u);
  c.propose(lead, "x");
  c.tick(lead);
  c.deliver_all();
  ASSERT_TRUE(c.raft(lead).lease_valid());

  c.node(lead).read_index(Bytes("L"));
  ASSERT_TRUE(c.process_ready(lead));
  ASSERT_EQ(contexts(c.peer(lead).read_states), std::vector<std::string>{"L"});
  EXPECT_EQ(c.peer(lead).read_states[0].index, c.raft(lead).log().committed());
  EXPECT_FALSE(in_flight_has(c, MessageType::kHeartbeat)) << "a lease read needs no round";
}

TEST(RaftLeaseRead, ExpiredLeaseIsNotUsed) {
  TestCluster c({1, 2, 3}, lease_based());
  const uint64_t lead = elect_by_ticks(c);
  ASSERT_NE(lead, 0u);
  c.tick(lead);
  c.deliver_all();
  ASSERT_TRUE(c.raft(lead).lease_valid());

  c.isolate(lead);
  const int lease = lease_ticks(c.raft(lead).config());
  for (int i = 0; i < lease; ++i) {
    c.tick(lead);
    c.deliver_all();
  }
  // Still leader (CheckQuorum has not yet had a full timeout to notice), but
  // the lease is over.
  ASSERT_EQ(c.raft(lead).role(), Role::kLeader);
  EXPECT_FALSE(c.raft(lead).lease_valid());
  c.node(lead).read_index(Bytes("late"));
  c.deliver_all();
  EXPECT_TRUE(c.peer(lead).read_states.empty());
}

TEST(RaftLeaseRead, LeaseIsMeasuredFromHeartbeatSendTime) {
  TestCluster c({1, 2, 3}, lease_based());
  const uint64_t lead = elect_by_ticks(c);
  ASSERT_NE(lead, 0u);
  // Hold every heartbeat acknowledgement back.
  std::vector<Message> held;
  c.set_drop_filter([&held, lead](const Message& m) {
    if (m.type != MessageType::kHeartbeatResp || m.to != nid(lead)) return false;
    held.push_back(m);
    return true;
  });
  c.tick(lead);
  c.deliver_all();
  const std::vector<Message> old_acks = held;
  ASSERT_EQ(old_acks.size(), 2u);
  const int lease = lease_ticks(c.raft(lead).config());
  for (int i = 0; i < lease - 1; ++i) {
    c.tick(lead);
    c.deliver_all();
  }
  ASSERT_EQ(c.raft(lead).role(), Role::kLeader);
  // Acknowledgements arriving now for a heartbeat sent a lease ago give no
  // lease, though they were received just now.
  for (const Message& m : old_acks) ASSERT_TRUE(c.node(lead).step(m).ok());
  EXPECT_FALSE(c.raft(lead).lease_valid());
  // Acknowledgements of the latest heartbeat do.
  for (size_t i = held.size() - 2; i < held.size(); ++i) {
    ASSERT_TRUE(c.node(lead).step(held[i]).ok());
  }
  EXPECT_TRUE(c.raft(lead).lease_valid());
}

TEST(RaftLeaseRead, LeaseEndsBeforeFasterClockedFollowersCanElectAnotherLeader) {
  constexpr double kDrift = 0.05;
  TestCluster c({1, 2, 3}, [](Config& config) {
    config.read_only_option = ReadOnlyOption::kLeaseBased;
    config.check_quorum = true;
    config.election_tick = 100;
    config.heartbeat_tick = 10;
    config.max_clock_drift_ratio = kDrift;
  });
  uint64_t lead = 0;
  for (int i = 0; i < 1000 && lead == 0; ++i) {
    c.tick_all();
    c.deliver_all();
    lead = c.leader();
  }
  ASSERT_NE(lead, 0u);
  std::vector<uint64_t> followers;
  for (uint64_t id : c.ids()) {
    if (id != lead) followers.push_back(id);
  }
  for (int i = 0; i < 10; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  ASSERT_TRUE(c.raft(lead).lease_valid());

  // The old leader is cut off; the followers' clocks run as fast as the
  // drift bound allows, and one of them campaigns at every chance.
  c.isolate(lead);
  double follower_ticks = 0;
  uint64_t successor = 0;
  for (int t = 1; t <= 400 && successor == 0; ++t) {
    c.tick(lead);
    follower_ticks += 1.0 + kDrift;
    while (follower_ticks >= 1.0) {
      for (uint64_t id : followers) c.tick(id);
      follower_ticks -= 1.0;
    }
    const Role role = c.raft(followers[0]).role();
    if (role == Role::kFollower || role == Role::kPreCandidate) {
      (void)c.node(followers[0]).campaign();
    }
    c.deliver_all();
    for (uint64_t id : followers) {
      if (c.raft(id).role() == Role::kLeader) successor = id;
    }
    // Whenever another leader exists, the old one must not trust its lease.
    if (successor != 0) {
      ASSERT_EQ(c.raft(lead).role(), Role::kLeader) << "old leader stepped down first: vacuous";
      EXPECT_FALSE(c.raft(lead).lease_valid()) << "two leaders may both serve reads at leader tick " << t;
    }
  }
  ASSERT_NE(successor, 0u);
}

TEST(RaftLeaseRead, NoLeaseReadsDuringALeadershipTransfer) {
  TestCluster c({1, 2, 3}, lease_based());
  const uint64_t lead = elect_by_ticks(c);
  ASSERT_NE(lead, 0u);
  c.tick(lead);
  c.deliver_all();
  ASSERT_TRUE(c.raft(lead).lease_valid());
  const uint64_t target = lead == 1 ? 2 : 1;
  c.node(lead).transfer_leader(nid(target));
  ASSERT_EQ(c.raft(lead).role(), Role::kLeader);
  EXPECT_FALSE(c.raft(lead).lease_valid());
  c.node(lead).read_index(Bytes("t"));
  ASSERT_TRUE(c.process_ready(lead));
  EXPECT_TRUE(c.peer(lead).read_states.empty()) << "lease read served during a transfer";
}

TEST(RaftLeaseRead, ConfigValidationRejectsLeaseWithoutCheckQuorum) {
  MemoryStorage storage;
  Config config;
  config.id = nid(1);
  config.group = GroupId{1};
  config.storage = &storage;
  config.read_only_option = ReadOnlyOption::kLeaseBased;
  config.check_quorum = false;
  base::Status st = config.validate();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::kInvalidArgument);
  EXPECT_NE(st.error().message().find("check_quorum"), std::string::npos) << st.error().message();
  EXPECT_FALSE(RawNode::create(config).ok());

  config.check_quorum = true;
  EXPECT_TRUE(config.validate().ok());
  config.read_only_option = ReadOnlyOption::kSafe;
  config.check_quorum = false;
  EXPECT_TRUE(config.validate().ok());
}

}  // namespace
}  // namespace synod::raft::testing
