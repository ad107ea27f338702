// ProgressTracker: the group's configuration (who votes, who learns) and the
// leader's Progress for every member, plus the votes of the current election.
#pragma once

#include <map>
#include <set>
#include <vector>

#include "base/result.h"
#include "raft/confchange.h"
#include "raft/progress.h"
#include "raft/quorum.h"
#include "raft/types.h"

namespace synod::raft {

struct TrackerConfig {
  JointConfig voters;
  // Learners: receive the log, never vote. Disjoint from both voter sets.
  std::set<NodeId> learners;
  // Voters of the outgoing config that become learners when the joint config
  // is left (a node cannot be a voter and a learner at once).
  std::set<NodeId> learners_next;
  // Leave the joint configuration as soon as it is committed.
  bool auto_leave = false;

  ConfState to_conf_state() const;
  friend bool operator==(const TrackerConfig&, const TrackerConfig&) = default;
};

using ProgressMap = std::map<NodeId, Progress>;

class ProgressTracker {
 public:
  ProgressTracker(size_t max_inflight, size_t max_inflight_bytes)
      : max_inflight_(max_inflight), max_inflight_bytes_(max_inflight_bytes) {}

  TrackerConfig config;
  ProgressMap progress;

  LogIndex committed() const;
  bool is_voter(NodeId id) const { return config.voters.contains(id); }
  bool is_learner(NodeId id) const { return config.learners.count(id) > 0; }
  bool is_member(NodeId id) const { return progress.count(id) > 0; }
  // The configuration is one node voting alone.
  bool is_singleton() const;
  std::vector<NodeId> voter_ids() const;
  // True if a quorum of voters was recently active (CheckQuorum).
  bool quorum_active() const;
  // The largest lease stamp echoed by a quorum of voters (`self_stamp` for
  // the leader itself).
  uint64_t quorum_lease_stamp(NodeId self, uint64_t self_stamp) const;

  void reset_votes() { votes_.clear(); }
  void record_vote(NodeId id, bool granted);
  // The outcome of the election so far.
  VoteResult vote_result() const { return config.voters.vote_result(votes_); }

  size_t max_inflight() const { return max_inflight_; }
  size_t max_inflight_bytes() const { return max_inflight_bytes_; }

 private:
  size_t max_inflight_;
  size_t max_inflight_bytes_;
  std::map<NodeId, bool> votes_;
};

// Turns a configuration into the next one, checking that the step is legal.
// Works on copies; the caller swaps them in on success.
class Changer {
 public:
  Changer(const ProgressTracker& tracker, LogIndex last_index)
      : tracker_(tracker), last_index_(last_index) {}

  base::Result<std::pair<TrackerConfig, ProgressMap>> enter_joint(
      bool auto_leave, const std::vector<ConfChangeSingle>& changes) const;
  base::Result<std::pair<TrackerConfig, ProgressMap>> leave_joint() const;
  // A change of at most one voter, applied directly.
  base::Result<std::pair<TrackerConfig, ProgressMap>> simple(
      const std::vector<ConfChangeSingle>& changes) const;

  // Rebuilds a configuration from a ConfState (restart, snapshot).
  static base::Result<std::pair<TrackerConfig, ProgressMap>> restore(
      const ConfState& state, LogIndex last_index, size_t max_inflight,
      size_t max_inflight_bytes);

 private:
  base::Status apply(TrackerConfig& config, ProgressMap& progress,
                     const std::vector<ConfChangeSingle>& changes) const;
  void make_voter(TrackerConfig& config, ProgressMap& progress, NodeId id) const;
  void make_learner(TrackerConfig& config, ProgressMap& progress, NodeId id) const;
  void remove(TrackerConfig& config, ProgressMap& progress, NodeId id) const;
  void init_progress(ProgressMap& progress, NodeId id, bool learner) const;
  static base::Status check_invariants(const TrackerConfig& config, const ProgressMap& progress);

  const ProgressTracker& tracker_;
  LogIndex last_index_;
};

}  // namespace synod::raft
