// Test fixtures for the Raft core: the simulator's deterministic cluster,
// with invariant violations turned into test failures, and short names for
// ids and indexes.
#pragma once

#include <gtest/gtest.h>

#include "sim/raft_cluster.h"

namespace synod::raft::testing {

inline NodeId nid(uint64_t id) { return NodeId{id}; }
inline LogIndex idx(uint64_t index) { return LogIndex{index}; }
inline Term term(uint64_t t) { return Term{t}; }

using sim::Peer;

// A RaftCluster whose violations fail the running test instead of aborting.
class TestCluster : public sim::RaftCluster {
 public:
  explicit TestCluster(std::vector<uint64_t> ids, ConfigTweak tweak = {},
                       std::vector<uint64_t> learner_ids = {})
      : sim::RaftCluster(std::move(ids), std::move(tweak), std::move(learner_ids)) {
    on_violation = [](const std::string& what) { ADD_FAILURE() << what; };
  }
};

}  // namespace synod::raft::testing
