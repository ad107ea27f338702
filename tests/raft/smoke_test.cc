// End-to-end checks of the basic loop: elect, replicate, apply, restart.
#include <gtest/gtest.h>

#include "raft/test_cluster.h"

namespace synod::raft::testing {
namespace {

TEST(RaftSmoke, ThreeNodesElectReplicateAndApply) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  ASSERT_EQ(c.leader(), 1u);
  c.propose(1, "a");
  c.propose(2, "b");  // forwarded by a follower
  for (uint64_t id : c.ids()) {
    ASSERT_EQ(c.peer(id).applied.size(), 2u) << "node " << id;
    EXPECT_EQ(c.peer(id).applied[0].data.str(), "a");
    EXPECT_EQ(c.peer(id).applied[1].data.str(), "b");
  }
}

TEST(RaftSmoke, SingleNodeCommitsAfterItsOwnWrite) {
  TestCluster c({1});
  c.elect(1);
  ASSERT_EQ(c.leader(), 1u);
  c.propose(1, "x");
  ASSERT_EQ(c.peer(1).applied.size(), 1u);
}

TEST(RaftSmoke, ElectionByTicksAndRestartKeepsApplied) {
  TestCluster c({1, 2, 3});
  for (int i = 0; i < 40 && c.leader() == 0; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  const uint64_t lead = c.leader();
  ASSERT_NE(lead, 0u);
  c.propose(lead, "v1");
  const uint64_t follower = lead == 1 ? 2 : 1;
  c.crash(follower);
  c.restart(follower);
  c.deliver_all();
  c.propose(lead, "v2");
  for (int i = 0; i < 5; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  ASSERT_EQ(c.peer(follower).applied.size(), 2u);
}

}  // namespace
}  // namespace synod::raft::testing
