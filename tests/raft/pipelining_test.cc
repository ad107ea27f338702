// RawNode::take_messages: a leader's appends may leave while its Ready is
// being persisted, but never before its own term is durable.
#include <gtest/gtest.h>

#include "raft/memory_storage.h"
#include "raft/raw_node.h"
#include "raft/test_cluster.h"

namespace synod::raft::testing {
namespace {

std::unique_ptr<RawNode> start(MemoryStorage& storage, bool pre_vote = true) {
  Config c;
  c.pre_vote = pre_vote;
  c.id = nid(1);
  c.group = GroupId{1};
  c.storage = &storage;
  c.applied = idx(1);
  auto node = RawNode::create(c);
  EXPECT_TRUE(node.ok());
  return std::move(node).value();
}

bool carries(const std::vector<Message>& messages, std::string_view data) {
  for (const Message& m : messages) {
    for (const Entry& e : m.entries) {
      if (e.data.view() == data) return true;
    }
  }
  return false;
}

// Found in review: node 1, the only voter, with a learner, wins term 2 at
// once. Had W1's append left before the Ready holding term 2 was durable, a
// crash there and a second win of term 2 would put W2 at W1's index and term
// on the leader while the learner keeps W1: log matching broken.
TEST(Pipelining, ASingleVoterSendsNothingUntilItsNewTermIsDurable) {
  MemoryStorage storage;
  Snapshot snapshot;
  snapshot.meta.index = idx(1);
  snapshot.meta.term = term(1);
  snapshot.meta.conf_state.voters.push_back(nid(1));
  snapshot.meta.conf_state.learners.push_back(nid(2));
  ASSERT_TRUE(storage.apply_snapshot(snapshot).ok());
  storage.set_hard_state(HardState{term(1), kNone, idx(1)});

  auto node = start(storage);
  ASSERT_TRUE(node->campaign().ok());
  ASSERT_EQ(node->raft().role(), Role::kLeader);
  Ready first = node->ready();
  ASSERT_TRUE(first.hard_state.has_value());
  EXPECT_TRUE(first.messages.empty()) << "the election's Ready sent before its term was durable";
  ASSERT_TRUE(node->propose(base::Bytes(std::string("W1"))).ok());
  EXPECT_TRUE(node->take_messages().empty()) << "W1 left before term 2 was durable";

  // Once the Ready is durable, W1 goes out as usual.
  if (first.hard_state) storage.set_hard_state(*first.hard_state);
  ASSERT_TRUE(storage.append(first.entries).ok());
  node->advance();
  std::vector<Message> after = node->take_messages();
  if (!carries(after, "W1")) {
    ASSERT_TRUE(node->has_ready());
    Ready next = node->ready();
    after = next.messages;
  }
  EXPECT_TRUE(carries(after, "W1"));
}

// With several voters the term was durable before the votes were asked for,
// so a new leader's appends still leave with its first Ready.
TEST(Pipelining, AnElectedLeaderOfSeveralVotersStillSendsAtOnce) {
  MemoryStorage storage;
  Snapshot snapshot;
  snapshot.meta.index = idx(1);
  snapshot.meta.term = term(1);
  for (uint64_t id = 1; id <= 3; ++id) snapshot.meta.conf_state.voters.push_back(nid(id));
  ASSERT_TRUE(storage.apply_snapshot(snapshot).ok());
  storage.set_hard_state(HardState{term(1), kNone, idx(1)});
  auto node = start(storage, /*pre_vote=*/false);
  ASSERT_TRUE(node->campaign().ok());
  Ready campaign = node->ready();
  ASSERT_TRUE(campaign.hard_state.has_value());
  storage.set_hard_state(*campaign.hard_state);
  node->advance();
  for (uint64_t voter : {2, 3}) {
    Message vote;
    vote.type = MessageType::kVoteResp;
    vote.from = nid(voter);
    vote.to = nid(1);
    vote.term = node->raft().term();
    vote.group = GroupId{1};
    ASSERT_TRUE(node->step(vote).ok());
  }
  ASSERT_EQ(node->raft().role(), Role::kLeader);
  Ready won = node->ready();
  EXPECT_FALSE(won.messages.empty()) << "the new leader's appends should not wait for its fsync";
}

}  // namespace
}  // namespace synod::raft::testing
