// Membership: adding and removing voters, joint consensus (automatic and
// explicit leave), learners, one pending change at a time, the conf change
// codec, and leadership transfer.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "raft/test_cluster.h"

namespace synod::raft::testing {
namespace {

using base::Errc;

ConfChange single(ConfChangeType type, uint64_t id) {
  ConfChange change;
  change.changes.push_back({type, nid(id)});
  return change;
}
ConfChange add_voter(uint64_t id) { return single(ConfChangeType::kAddNode, id); }
ConfChange remove_voter(uint64_t id) { return single(ConfChangeType::kRemoveNode, id); }
ConfChange add_learner(uint64_t id) { return single(ConfChangeType::kAddLearnerNode, id); }

void propose_change(TestCluster& c, uint64_t at, const ConfChange& change) {
  auto st = c.node(at).propose_conf_change(change);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  c.deliver_all();
}

std::set<NodeId> ids_of(std::initializer_list<uint64_t> ids) {
  std::set<NodeId> out;
  for (uint64_t id : ids) out.insert(nid(id));
  return out;
}

const std::set<NodeId>& incoming(TestCluster& c, uint64_t id) {
  return c.raft(id).tracker().config.voters.incoming.voters();
}
const std::set<NodeId>& outgoing(TestCluster& c, uint64_t id) {
  return c.raft(id).tracker().config.voters.outgoing.voters();
}
bool is_joint(TestCluster& c, uint64_t id) { return c.raft(id).tracker().config.voters.is_joint(); }

bool applied_contains(TestCluster& c, uint64_t id, const std::string& data) {
  for (const Entry& e : c.peer(id).applied) {
    if (e.data.str() == data) return true;
  }
  return false;
}

// Ticks only `id` (with delivery) `ticks` times.
void tick_and_deliver(TestCluster& c, uint64_t id, int ticks) {
  for (int i = 0; i < ticks; ++i) {
    c.tick(id);
    c.deliver_all();
  }
}

bool is_vote_traffic(MessageType type) {
  return type == MessageType::kVote || type == MessageType::kPreVote ||
         type == MessageType::kVoteResp || type == MessageType::kPreVoteResp;
}

// ---------------------------------------------------------------------------
// Voters

TEST(RaftMembership, AddedVoterCatchesUpAndCountsForQuorum) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.propose(1, "before");
  propose_change(c, 1, add_voter(4));
  ASSERT_EQ(incoming(c, 1), ids_of({1, 2, 3, 4}));

  // The bootstrap snapshot does not name node 4, so the leader's host takes
  // a snapshot that does, as it would when a member joins.
  const ConfState conf = c.node(1).status().conf_state;
  const LogIndex applied = c.peer(1).applied_index;
  ASSERT_TRUE(c.storage(1).create_snapshot(applied, &conf, Bytes("state")).ok());
  ASSERT_TRUE(c.storage(1).compact(applied).ok());

  c.add_empty_node(4);  // empty log, empty configuration
  tick_and_deliver(c, 1, 5);
  EXPECT_EQ(c.raft(4).log().committed(), c.raft(1).log().committed());
  EXPECT_EQ(incoming(c, 4), ids_of({1, 2, 3, 4}));
  EXPECT_EQ(c.raft(4).leader(), nid(1));

  c.propose(1, "after");
  EXPECT_TRUE(applied_contains(c, 4, "after"));

  // Four voters: a quorum is three. With 3 cut off, 4's ack is needed...
  c.cut(1, 3);
  c.propose(1, "with-4");
  EXPECT_TRUE(applied_contains(c, 1, "with-4"));
  // ...and without 4 as well, {1, 2} is not enough (it was for {1, 2, 3}).
  c.cut(1, 4);
  const LogIndex commit = c.raft(1).log().committed();
  ASSERT_TRUE(c.node(1).propose(Bytes("without-4")).ok());
  c.deliver_all();
  EXPECT_EQ(c.raft(1).log().committed(), commit);
  EXPECT_FALSE(applied_contains(c, 1, "without-4"));
}

TEST(RaftMembership, RemovedVoterShrinksTheQuorum) {
  TestCluster c({1, 2, 3, 4});
  c.elect(1);
  propose_change(c, 1, remove_voter(4));
  EXPECT_EQ(incoming(c, 1), ids_of({1, 2, 3}));
  EXPECT_FALSE(c.raft(1).tracker().is_member(nid(4)));
  EXPECT_EQ(incoming(c, 2), ids_of({1, 2, 3}));

  // {1, 2} is a majority of three voters, though not of the old four.
  c.crash(3);
  c.crash(4);
  c.propose(1, "x");
  EXPECT_TRUE(applied_contains(c, 1, "x"));
  EXPECT_TRUE(applied_contains(c, 2, "x"));
}

TEST(RaftMembership, RemovedLeaderStepsDownAndTheRestElectALeader) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.propose(1, "x");
  propose_change(c, 1, remove_voter(1));
  EXPECT_NE(c.raft(1).role(), Role::kLeader);
  EXPECT_FALSE(c.raft(1).tracker().is_member(nid(1)));
  auto dropped = c.node(1).propose(Bytes("from-removed"));
  EXPECT_FALSE(dropped.ok());

  uint64_t lead = 0;
  for (int i = 0; i < 100 && lead == 0; ++i) {
    c.tick_all();
    c.deliver_all();
    lead = c.leader();
  }
  ASSERT_TRUE(lead == 2 || lead == 3) << "leader " << lead;
  c.propose(lead, "after");
  EXPECT_TRUE(applied_contains(c, 2, "after"));
  EXPECT_TRUE(applied_contains(c, 3, "after"));
  EXPECT_EQ(incoming(c, lead), ids_of({2, 3}));
  // The removed node never leads again.
  for (int i = 0; i < 50; ++i) {
    c.tick_all();
    c.deliver_all();
    ASSERT_NE(c.raft(1).role(), Role::kLeader);
  }
}

// ---------------------------------------------------------------------------
// Joint consensus

// Replaces voter 3 by learner 4 in one change, cutting the leader off from
// `cut_a` and `cut_b` as soon as it is in the joint configuration.
void enter_joint_then_cut(TestCluster& c, uint64_t cut_a, uint64_t cut_b) {
  c.elect(1);
  c.propose(1, "a");
  c.set_drop_filter([&c, cut_a, cut_b](const Message& m) {
    if (!c.raft(1).tracker().config.voters.is_joint()) return false;
    auto between = [&](uint64_t other) {
      return (m.from == nid(1) && m.to == nid(other)) || (m.from == nid(other) && m.to == nid(1));
    };
    return between(cut_a) || between(cut_b);
  });
  ConfChange replace;
  replace.changes = {{ConfChangeType::kAddNode, nid(4)}, {ConfChangeType::kRemoveNode, nid(3)}};
  propose_change(c, 1, replace);
}

TEST(RaftMembership, JointConsensusNeedsTheNewMajority) {
  TestCluster c({1, 2, 3}, {}, {4});
  enter_joint_then_cut(c, 2, 4);  // {1, 3} is a majority of the old set only
  ASSERT_TRUE(is_joint(c, 1));
  EXPECT_EQ(incoming(c, 1), ids_of({1, 2, 4}));
  EXPECT_EQ(outgoing(c, 1), ids_of({1, 2, 3}));
  EXPECT_TRUE(c.raft(1).tracker().config.auto_leave);
  // The automatic leave was proposed but cannot commit.
  EXPECT_LT(c.raft(1).log().committed(), c.raft(1).log().last_index());

  const LogIndex commit = c.raft(1).log().committed();
  ASSERT_TRUE(c.node(1).propose(Bytes("during")).ok());
  c.deliver_all();
  EXPECT_EQ(c.raft(1).log().committed(), commit);
  EXPECT_FALSE(applied_contains(c, 1, "during"));
  EXPECT_TRUE(is_joint(c, 1));

  c.heal();
  tick_and_deliver(c, 1, 3);
  EXPECT_TRUE(applied_contains(c, 1, "during"));
  EXPECT_TRUE(applied_contains(c, 4, "during"));
  EXPECT_FALSE(is_joint(c, 1));
  EXPECT_EQ(incoming(c, 1), ids_of({1, 2, 4}));
  EXPECT_FALSE(c.raft(1).tracker().is_member(nid(3)));
  EXPECT_FALSE(is_joint(c, 2));
  EXPECT_EQ(incoming(c, 2), ids_of({1, 2, 4}));
}

TEST(RaftMembership, JointConsensusNeedsTheOldMajority) {
  TestCluster c({1, 2, 3}, {}, {4});
  enter_joint_then_cut(c, 2, 3);  // {1, 4} is a majority of the new set only
  ASSERT_TRUE(is_joint(c, 1));
  const LogIndex commit = c.raft(1).log().committed();
  ASSERT_TRUE(c.node(1).propose(Bytes("during")).ok());
  c.deliver_all();
  // Node 4 holds the entry, yet nothing commits.
  EXPECT_EQ(c.raft(4).log().last_index(), c.raft(1).log().last_index());
  EXPECT_EQ(c.raft(1).log().committed(), commit);
  EXPECT_FALSE(applied_contains(c, 1, "during"));
  EXPECT_TRUE(is_joint(c, 1));

  c.heal();
  tick_and_deliver(c, 1, 3);
  EXPECT_TRUE(applied_contains(c, 1, "during"));
  EXPECT_FALSE(is_joint(c, 1));
  EXPECT_EQ(incoming(c, 1), ids_of({1, 2, 4}));
}

TEST(RaftMembership, JointConsensusLeavesAutomatically) {
  TestCluster c({1, 2, 3}, {}, {4, 5});
  c.elect(1);
  ConfChange change;
  change.changes = {{ConfChangeType::kAddNode, nid(4)},
                    {ConfChangeType::kAddNode, nid(5)},
                    {ConfChangeType::kRemoveNode, nid(2)}};
  propose_change(c, 1, change);
  for (uint64_t id : {1, 3, 4, 5}) {
    EXPECT_FALSE(is_joint(c, id)) << "node " << id;
    EXPECT_EQ(incoming(c, id), ids_of({1, 3, 4, 5})) << "node " << id;
    EXPECT_FALSE(c.raft(id).tracker().config.auto_leave);
  }
  // Entering and leaving are two conf change entries in the log.
  size_t conf_entries = 0;
  for (const Entry& e : c.raft(1).log().all_entries()) {
    if (e.type == EntryType::kConfChange) ++conf_entries;
  }
  EXPECT_EQ(conf_entries, 2u);
}

TEST(RaftMembership, ExplicitJointConfigurationIsLeftByAnEmptyChange) {
  TestCluster c({1, 2, 3}, {}, {4});
  c.elect(1);
  ConfChange enter;
  enter.transition = ConfChangeTransition::kJointExplicit;
  enter.changes = {{ConfChangeType::kAddNode, nid(4)}};
  propose_change(c, 1, enter);
  tick_and_deliver(c, 1, 5);
  // It stays joint: nobody leaves on its own.
  ASSERT_TRUE(is_joint(c, 1));
  EXPECT_FALSE(c.raft(1).tracker().config.auto_leave);
  EXPECT_EQ(incoming(c, 1), ids_of({1, 2, 3, 4}));
  EXPECT_EQ(outgoing(c, 1), ids_of({1, 2, 3}));
  EXPECT_TRUE(is_joint(c, 4));

  // Another change is refused until the joint configuration is left.
  EXPECT_EQ(c.node(1).propose_conf_change(add_learner(5)).code(), Errc::kProposalDropped);

  propose_change(c, 1, ConfChange{});
  for (uint64_t id : {1, 2, 3, 4}) {
    EXPECT_FALSE(is_joint(c, id)) << "node " << id;
    EXPECT_EQ(incoming(c, id), ids_of({1, 2, 3, 4})) << "node " << id;
  }
  // Leaving when not joint is refused.
  EXPECT_EQ(c.node(1).propose_conf_change(ConfChange{}).code(), Errc::kProposalDropped);
}

TEST(RaftMembership, OnlyOneConfChangeMayBePendingAtATime) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  ASSERT_TRUE(c.node(1).propose_conf_change(add_learner(4)).ok());
  const LogIndex pending = c.raft(1).pending_conf_index();
  EXPECT_EQ(pending, c.raft(1).log().last_index());
  EXPECT_GT(pending, c.raft(1).log().applied());

  // A second change before the first is applied is dropped, not appended.
  EXPECT_EQ(c.node(1).propose_conf_change(add_learner(5)).code(), Errc::kProposalDropped);
  EXPECT_EQ(c.raft(1).log().last_index(), pending);
  // Normal proposals are unaffected.
  ASSERT_TRUE(c.node(1).propose(Bytes("normal")).ok());

  c.deliver_all();
  EXPECT_EQ(c.raft(1).tracker().config.learners, ids_of({4}));
  EXPECT_TRUE(applied_contains(c, 1, "normal"));
  // Once applied, the next change is accepted.
  propose_change(c, 1, add_learner(5));
  EXPECT_EQ(c.raft(1).tracker().config.learners, ids_of({4, 5}));
}

// ---------------------------------------------------------------------------
// Learners

TEST(RaftLearner, LearnerReceivesEntriesButNeverVotes) {
  TestCluster c({1, 2, 3}, {}, {4});
  c.elect(1);
  c.propose(1, "x");
  EXPECT_TRUE(applied_contains(c, 4, "x"));
  EXPECT_TRUE(c.raft(1).tracker().is_learner(nid(4)));

  // A learner does not campaign even when told to.
  const Term before = c.raft(4).term();
  (void)c.node(4).campaign();
  c.deliver_all();
  EXPECT_EQ(c.raft(4).role(), Role::kFollower);
  EXPECT_EQ(c.raft(4).term(), before);
  EXPECT_EQ(c.leader(), 1u);

  // Nor is it asked for a vote, or answers one, when the leader fails.
  c.crash(1);
  uint64_t lead = 0;
  for (int i = 0; i < 100 && lead == 0; ++i) {
    c.tick_all();
    c.deliver_all();
    lead = c.leader();
  }
  ASSERT_TRUE(lead == 2 || lead == 3);
  for (const Message& m : c.delivered()) {
    if (!is_vote_traffic(m.type)) continue;
    EXPECT_NE(m.to, nid(4)) << message_type_name(m.type) << " sent to the learner";
    EXPECT_NE(m.from, nid(4)) << message_type_name(m.type) << " sent by the learner";
  }
  c.propose(lead, "y");
  EXPECT_TRUE(applied_contains(c, 4, "y"));
}

TEST(RaftLearner, LearnersDoNotCountForCommit) {
  // If learners counted, {1, 4, 5} would be three of five.
  TestCluster c({1, 2, 3}, {}, {4, 5});
  c.elect(1);
  c.cut(1, 2);
  c.cut(1, 3);
  const LogIndex commit = c.raft(1).log().committed();
  ASSERT_TRUE(c.node(1).propose(Bytes("x")).ok());
  c.deliver_all();
  // The learners hold and acknowledge the entry...
  EXPECT_EQ(c.raft(4).log().last_index(), c.raft(1).log().last_index());
  EXPECT_EQ(c.raft(5).log().last_index(), c.raft(1).log().last_index());
  // ...but it does not commit.
  EXPECT_EQ(c.raft(1).log().committed(), commit);
  EXPECT_FALSE(applied_contains(c, 1, "x"));
}

TEST(RaftLearner, PromotedLearnerVotesAndCountsForCommit) {
  TestCluster c({1, 2}, {}, {3});
  c.elect(1);
  // As a learner, 3 does not make {1, 3} a quorum of {1, 2}.
  c.cut(1, 2);
  const LogIndex commit = c.raft(1).log().committed();
  ASSERT_TRUE(c.node(1).propose(Bytes("before")).ok());
  c.deliver_all();
  EXPECT_EQ(c.raft(1).log().committed(), commit);
  c.heal();
  tick_and_deliver(c, 1, 3);
  ASSERT_TRUE(applied_contains(c, 1, "before"));

  propose_change(c, 1, add_voter(3));
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(incoming(c, id), ids_of({1, 2, 3})) << "node " << id;
    EXPECT_TRUE(c.raft(id).tracker().config.learners.empty()) << "node " << id;
  }
  // Now {1, 3} is a quorum of three voters.
  c.cut(1, 2);
  c.propose(1, "after");
  EXPECT_TRUE(applied_contains(c, 1, "after"));
  EXPECT_TRUE(applied_contains(c, 3, "after"));
}

// ---------------------------------------------------------------------------
// The conf change codec

TEST(RaftConfChangeCodec, EncodeDecodeRoundTrips) {
  std::vector<ConfChange> cases;
  cases.push_back(ConfChange{});
  cases.push_back(add_voter(1));
  cases.push_back(remove_voter(uint64_t{1} << 62));
  ConfChange big;
  big.transition = ConfChangeTransition::kJointExplicit;
  big.changes = {{ConfChangeType::kAddNode, nid(4)},
                 {ConfChangeType::kAddLearnerNode, nid(300)},
                 {ConfChangeType::kRemoveNode, nid(2)}};
  big.context = Bytes(std::string("ctx\0with\xffnul", 12));
  cases.push_back(big);
  ConfChange implicit = add_learner(7);
  implicit.transition = ConfChangeTransition::kJointImplicit;
  cases.push_back(implicit);
  for (const ConfChange& change : cases) {
    const std::string encoded = encode_conf_change(change);
    auto decoded = decode_conf_change(encoded);
    ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
    EXPECT_EQ(*decoded, change);
  }
}

TEST(RaftConfChangeCodec, TruncatedInputIsRejected) {
  ConfChange change;
  change.transition = ConfChangeTransition::kJointImplicit;
  change.changes = {{ConfChangeType::kAddNode, nid(1000)}, {ConfChangeType::kRemoveNode, nid(3)}};
  change.context = Bytes("context");
  const std::string encoded = encode_conf_change(change);
  for (size_t len = 0; len < encoded.size(); ++len) {
    auto decoded = decode_conf_change(std::string_view(encoded).substr(0, len));
    ASSERT_FALSE(decoded.ok()) << "prefix of " << len << " bytes decoded";
    EXPECT_FALSE(decoded.error().to_string().empty());
  }
  // No context: the context length byte is the last one.
  const std::string plain = encode_conf_change(add_voter(2));
  EXPECT_FALSE(decode_conf_change(std::string_view(plain).substr(0, plain.size() - 1)).ok());
}

TEST(RaftConfChangeCodec, GarbageIsRejectedWithAClearError) {
  const std::string valid = encode_conf_change(add_voter(2));
  std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {std::string("\x07", 1) + valid.substr(1), "unknown version"},
      {valid + "x", "trailing byte"},
      // version 1, transition 9
      {std::string("\x01\x09\x00\x00", 4), "unknown transition"},
      // version 1, transition 0, 1 change of type 5
      {std::string("\x01\x00\x01\x05\x02\x00", 6), "unknown change type"},
      // version 1, transition 0, 1 change naming node 0
      {std::string("\x01\x00\x01\x00\x00\x00", 6), "node 0"},
      // version 1, transition 0, a change count of 2^35
      {std::string("\x01\x00\x80\x80\x80\x80\x80\x01", 8), "huge count"},
      // version 1, transition 0, no changes, a context length of 2^35
      {std::string("\x01\x00\x00\x80\x80\x80\x80\x80\x01", 9), "huge context"},
      // a varint that never ends
      {std::string("\x01") + std::string(12, '\xff'), "endless varint"},
  };
  for (const auto& [bytes, why] : cases) {
    auto decoded = decode_conf_change(bytes);
    ASSERT_FALSE(decoded.ok()) << why;
    EXPECT_EQ(decoded.code(), Errc::kCorruption) << why;
    EXPECT_FALSE(decoded.error().message().empty()) << why;
  }
}

// ---------------------------------------------------------------------------
// Leadership transfer

bool delivered_timeout_now(TestCluster& c, uint64_t to) {
  for (const Message& m : c.delivered()) {
    if (m.type == MessageType::kTimeoutNow && m.to == nid(to)) return true;
  }
  return false;
}

TEST(RaftLeaderTransfer, UpToDateFollowerBecomesLeaderInTheNextTerm) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.propose(1, "x");
  const Term before = c.raft(1).term();
  c.delivered().clear();
  c.node(1).transfer_leader(nid(2));
  c.deliver_all();  // no ticks: it happens at once
  EXPECT_TRUE(delivered_timeout_now(c, 2));
  EXPECT_EQ(c.leader(), 2u);
  EXPECT_EQ(c.raft(2).term(), before + 1);
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).leader(), nid(2));
  c.propose(2, "y");
  EXPECT_TRUE(applied_contains(c, 1, "y"));
}

TEST(RaftLeaderTransfer, LaggingTransfereeIsCaughtUpFirst) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.cut(1, 3);
  for (int i = 0; i < 3; ++i) c.propose(1, "e" + std::to_string(i));
  const LogIndex last = c.raft(1).log().last_index();
  ASSERT_LT(c.raft(3).log().last_index(), last);
  c.heal();
  c.delivered().clear();
  c.node(1).transfer_leader(nid(3));
  EXPECT_EQ(c.raft(1).lead_transferee(), nid(3));
  c.deliver_all();

  EXPECT_EQ(c.leader(), 3u);
  // The TimeoutNow went out only after 3 acknowledged the leader's last entry.
  LogIndex acked;
  bool timeout_sent = false;
  for (const Message& m : c.delivered()) {
    if (m.type == MessageType::kAppResp && m.from == nid(3) && !m.reject && !timeout_sent) {
      acked = std::max(acked, m.index);
    }
    if (m.type == MessageType::kTimeoutNow && m.to == nid(3)) {
      timeout_sent = true;
      EXPECT_GE(acked, last) << "transfer before the transferee caught up";
    }
  }
  EXPECT_TRUE(timeout_sent);
  c.propose(3, "after");
  for (const char* data : {"e0", "e1", "e2", "after"}) EXPECT_TRUE(applied_contains(c, 3, data));
}

TEST(RaftLeaderTransfer, TransferToSelfNonMemberOrLearnerIsIgnored) {
  TestCluster c({1, 2, 3}, {}, {4});
  c.elect(1);
  const Term before = c.raft(1).term();
  c.delivered().clear();
  for (uint64_t target : {1, 9, 4}) {
    c.node(1).transfer_leader(nid(target));
    EXPECT_EQ(c.raft(1).lead_transferee(), kNone) << "target " << target;
    c.deliver_all();
    EXPECT_EQ(c.leader(), 1u) << "target " << target;
    EXPECT_EQ(c.raft(1).term(), before);
  }
  for (const Message& m : c.delivered()) EXPECT_NE(m.type, MessageType::kTimeoutNow);
  c.propose(1, "still-leading");
  EXPECT_TRUE(applied_contains(c, 2, "still-leading"));
}

TEST(RaftLeaderTransfer, TransferAbortsAfterAnElectionTimeoutIfTransfereeIsUnreachable) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.propose(1, "x");
  c.isolate(3);
  c.node(1).transfer_leader(nid(3));
  ASSERT_EQ(c.raft(1).lead_transferee(), nid(3));
  tick_and_deliver(c, 1, 1);
  EXPECT_EQ(c.raft(1).lead_transferee(), nid(3)) << "aborted before the timeout";
  const int timeout = c.raft(1).config().election_tick;
  tick_and_deliver(c, 1, timeout);
  EXPECT_EQ(c.raft(1).lead_transferee(), kNone);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  c.propose(1, "after-abort");
  EXPECT_TRUE(applied_contains(c, 1, "after-abort"));
  EXPECT_TRUE(applied_contains(c, 2, "after-abort"));
}

TEST(RaftLeaderTransfer, ProposalsAreDroppedDuringATransfer) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  c.cut(1, 3);
  c.propose(1, "x");
  c.node(1).transfer_leader(nid(3));  // 3 lags and is cut off: it stays pending
  ASSERT_EQ(c.raft(1).lead_transferee(), nid(3));
  const LogIndex last = c.raft(1).log().last_index();
  EXPECT_EQ(c.node(1).propose(Bytes("during")).code(), Errc::kProposalDropped);
  EXPECT_EQ(c.node(1).propose_conf_change(add_learner(5)).code(), Errc::kProposalDropped);
  EXPECT_EQ(c.raft(1).log().last_index(), last);

  c.heal();
  tick_and_deliver(c, 1, 1);
  EXPECT_EQ(c.leader(), 3u);
  c.propose(3, "after");
  EXPECT_TRUE(applied_contains(c, 1, "after"));
  EXPECT_FALSE(applied_contains(c, 1, "during"));
}

}  // namespace
}  // namespace synod::raft::testing
