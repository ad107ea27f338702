#include "raft/tracker.h"

#include <algorithm>
#include <string>

namespace synod::raft {

using base::Errc;
using base::Error;

namespace {
std::vector<NodeId> sorted(const std::set<NodeId>& ids) { return {ids.begin(), ids.end()}; }

Error invalid(const std::string& why) { return Error(Errc::kFailedPrecondition, "conf change: " + why); }
}  // namespace

ConfState TrackerConfig::to_conf_state() const {
  ConfState state;
  state.voters = sorted(voters.incoming.voters());
  state.voters_outgoing = sorted(voters.outgoing.voters());
  state.learners = sorted(learners);
  state.learners_next = sorted(learners_next);
  state.auto_leave = auto_leave;
  return state;
}

LogIndex ProgressTracker::committed() const {
  return config.voters.committed_index([this](NodeId id) -> std::optional<LogIndex> {
    auto it = progress.find(id);
    if (it == progress.end()) return std::nullopt;
    return it->second.match;
  });
}

bool ProgressTracker::is_singleton() const {
  return config.voters.incoming.size() == 1 && !config.voters.is_joint();
}

std::vector<NodeId> ProgressTracker::voter_ids() const { return sorted(config.voters.ids()); }

bool ProgressTracker::quorum_active() const {
  std::map<NodeId, bool> active;
  for (const auto& [id, pr] : progress) {
    if (!pr.is_learner) active[id] = pr.recent_active;
  }
  return config.voters.vote_result(active) == VoteResult::kWon;
}

uint64_t ProgressTracker::quorum_lease_stamp(NodeId self, uint64_t self_stamp) const {
  // The same arithmetic as the commit index: the largest stamp that a
  // majority of every voter half has echoed.
  const LogIndex stamp = config.voters.committed_index([&](NodeId id) -> std::optional<LogIndex> {
    if (id == self) return LogIndex{self_stamp};
    auto it = progress.find(id);
    if (it == progress.end()) return std::nullopt;
    return LogIndex{it->second.lease_stamp_acked};
  });
  return stamp.value();
}

void ProgressTracker::record_vote(NodeId id, bool granted) { votes_.emplace(id, granted); }

// ---------------------------------------------------------------------------
// Changer

base::Result<std::pair<TrackerConfig, ProgressMap>> Changer::enter_joint(
    bool auto_leave, const std::vector<ConfChangeSingle>& changes) const {
  TrackerConfig config = tracker_.config;
  ProgressMap progress = tracker_.progress;
  if (config.voters.is_joint()) return invalid("the configuration is already joint");
  if (config.voters.incoming.empty()) {
    // An empty config means "no decisions possible"; joint with it is nonsense.
    return invalid("cannot make a zero-voter configuration joint");
  }
  config.voters.outgoing = config.voters.incoming;
  if (auto st = apply(config, progress, changes); !st.ok()) return st.error();
  config.auto_leave = auto_leave;
  if (auto st = check_invariants(config, progress); !st.ok()) return st.error();
  return std::make_pair(std::move(config), std::move(progress));
}

base::Result<std::pair<TrackerConfig, ProgressMap>> Changer::leave_joint() const {
  TrackerConfig config = tracker_.config;
  ProgressMap progress = tracker_.progress;
  if (!config.voters.is_joint()) return invalid("cannot leave a non-joint configuration");
  for (NodeId id : config.learners_next) {
    config.learners.insert(id);
    progress.at(id).is_learner = true;
  }
  config.learners_next.clear();
  for (NodeId id : config.voters.outgoing.voters()) {
    const bool still_member = config.voters.incoming.contains(id) || config.learners.count(id);
    if (!still_member) progress.erase(id);
  }
  config.voters.outgoing = MajorityConfig();
  config.auto_leave = false;
  if (auto st = check_invariants(config, progress); !st.ok()) return st.error();
  return std::make_pair(std::move(config), std::move(progress));
}

base::Result<std::pair<TrackerConfig, ProgressMap>> Changer::simple(
    const std::vector<ConfChangeSingle>& changes) const {
  TrackerConfig config = tracker_.config;
  ProgressMap progress = tracker_.progress;
  if (config.voters.is_joint()) {
    return invalid("cannot apply a simple change to a joint configuration");
  }
  if (auto st = apply(config, progress, changes); !st.ok()) return st.error();
  // One voter at a time is safe without joint consensus: any majority of the
  // old set and any majority of the new set intersect.
  const auto& before = tracker_.config.voters.incoming.voters();
  const auto& after = config.voters.incoming.voters();
  size_t changed = 0;
  for (NodeId id : before) changed += after.count(id) == 0;
  for (NodeId id : after) changed += before.count(id) == 0;
  if (changed > 1) return invalid("more than one voter changed without joint consensus");
  if (auto st = check_invariants(config, progress); !st.ok()) return st.error();
  return std::make_pair(std::move(config), std::move(progress));
}

base::Status Changer::apply(TrackerConfig& config, ProgressMap& progress,
                            const std::vector<ConfChangeSingle>& changes) const {
  for (const ConfChangeSingle& change : changes) {
    if (change.node.is_none()) continue;
    switch (change.type) {
      case ConfChangeType::kAddNode: make_voter(config, progress, change.node); break;
      case ConfChangeType::kAddLearnerNode: make_learner(config, progress, change.node); break;
      case ConfChangeType::kRemoveNode: remove(config, progress, change.node); break;
    }
  }
  if (config.voters.incoming.empty()) return invalid("the change removes every voter");
  return {};
}

void Changer::make_voter(TrackerConfig& config, ProgressMap& progress, NodeId id) const {
  auto it = progress.find(id);
  if (it == progress.end()) {
    init_progress(progress, id, false);
    config.voters.incoming.voters().insert(id);
    return;
  }
  it->second.is_learner = false;
  config.learners.erase(id);
  config.learners_next.erase(id);
  config.voters.incoming.voters().insert(id);
}

void Changer::make_learner(TrackerConfig& config, ProgressMap& progress, NodeId id) const {
  auto it = progress.find(id);
  if (it == progress.end()) {
    init_progress(progress, id, true);
    config.learners.insert(id);
    return;
  }
  if (it->second.is_learner) return;
  Progress kept = it->second;
  remove(config, progress, id);
  auto [placed, _] = progress.insert_or_assign(id, kept);
  // A voter of the outgoing config cannot be a learner yet: it becomes one
  // when the joint config is left.
  if (config.voters.outgoing.contains(id)) {
    config.learners_next.insert(id);
  } else {
    placed->second.is_learner = true;
    config.learners.insert(id);
  }
}

void Changer::remove(TrackerConfig& config, ProgressMap& progress, NodeId id) const {
  if (!progress.count(id)) return;
  config.voters.incoming.voters().erase(id);
  config.learners.erase(id);
  config.learners_next.erase(id);
  // An outgoing voter keeps its progress until the joint config is left.
  if (!config.voters.outgoing.contains(id)) progress.erase(id);
}

void Changer::init_progress(ProgressMap& progress, NodeId id, bool learner) const {
  // Start probing at the last index: the follower either has it or rejects,
  // and fast backtracking finds the match.
  Progress pr(std::max(last_index_, LogIndex{1}), tracker_.max_inflight(),
              tracker_.max_inflight_bytes());
  pr.is_learner = learner;
  // A new member counts as active so CheckQuorum does not depose the leader
  // before the member had a chance to answer.
  pr.recent_active = true;
  progress.insert_or_assign(id, std::move(pr));
}

base::Status Changer::check_invariants(const TrackerConfig& config, const ProgressMap& progress) {
  for (NodeId id : config.voters.ids()) {
    if (!progress.count(id)) return invalid("voter " + std::to_string(id.value()) + " has no progress");
  }
  for (NodeId id : config.learners) {
    auto it = progress.find(id);
    if (it == progress.end()) return invalid("learner has no progress");
    if (!it->second.is_learner) return invalid("learner's progress is not marked learner");
    if (config.voters.contains(id)) return invalid("a node is both voter and learner");
  }
  for (NodeId id : config.learners_next) {
    auto it = progress.find(id);
    if (it == progress.end()) return invalid("next learner has no progress");
    if (it->second.is_learner) return invalid("next learner is already marked learner");
    if (!config.voters.outgoing.contains(id)) return invalid("next learner is not an outgoing voter");
  }
  if (!config.voters.is_joint()) {
    if (!config.learners_next.empty()) return invalid("next learners outside a joint config");
    if (config.auto_leave) return invalid("auto-leave outside a joint config");
  }
  return {};
}

base::Result<std::pair<TrackerConfig, ProgressMap>> Changer::restore(
    const ConfState& state, LogIndex last_index, size_t max_inflight, size_t max_inflight_bytes) {
  ProgressTracker tracker(max_inflight, max_inflight_bytes);
  auto step = [&](auto&& make) -> base::Status {
    auto result = make(Changer(tracker, last_index));
    if (!result.ok()) return result.error();
    tracker.config = std::move(result->first);
    tracker.progress = std::move(result->second);
    return {};
  };
  // Build the outgoing config one voter at a time, then enter the joint
  // config with the incoming side, exactly as the log did.
  std::vector<ConfChangeSingle> incoming;
  for (NodeId id : state.voters_outgoing) incoming.push_back({ConfChangeType::kRemoveNode, id});
  for (NodeId id : state.voters) incoming.push_back({ConfChangeType::kAddNode, id});
  for (NodeId id : state.learners) incoming.push_back({ConfChangeType::kAddLearnerNode, id});
  for (NodeId id : state.learners_next) incoming.push_back({ConfChangeType::kAddLearnerNode, id});

  if (state.voters_outgoing.empty()) {
    for (const ConfChangeSingle& change : incoming) {
      if (change.type == ConfChangeType::kRemoveNode) continue;
      if (auto st = step([&](const Changer& c) { return c.simple({change}); }); !st.ok()) return st.error();
    }
  } else {
    for (NodeId id : state.voters_outgoing) {
      ConfChangeSingle add{ConfChangeType::kAddNode, id};
      if (auto st = step([&](const Changer& c) { return c.simple({add}); }); !st.ok()) return st.error();
    }
    if (auto st = step([&](const Changer& c) { return c.enter_joint(state.auto_leave, incoming); });
        !st.ok()) {
      return st.error();
    }
  }
  return std::make_pair(std::move(tracker.config), std::move(tracker.progress));
}

}  // namespace synod::raft
