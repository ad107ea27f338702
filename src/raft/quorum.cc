#include "raft/quorum.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace synod::raft {

LogIndex MajorityConfig::committed_index(const AckedIndexFn& acked) const {
  if (voters_.empty()) {
    // An empty half of a joint config must not hold the other half back.
    return LogIndex{std::numeric_limits<uint64_t>::max()};
  }
  // Small configs are the norm: a stack-sized vector would do, but clarity wins.
  std::vector<LogIndex> indexes;
  indexes.reserve(voters_.size());
  for (NodeId id : voters_) indexes.push_back(acked(id).value_or(LogIndex{0}));
  std::sort(indexes.begin(), indexes.end(), std::greater<>());
  // The (n/2+1)-th largest index is held by a majority.
  return indexes[voters_.size() / 2];
}

VoteResult MajorityConfig::vote_result(const std::map<NodeId, bool>& votes) const {
  if (voters_.empty()) return VoteResult::kWon;
  size_t granted = 0;
  size_t missing = 0;
  for (NodeId id : voters_) {
    auto it = votes.find(id);
    if (it == votes.end()) {
      ++missing;
    } else if (it->second) {
      ++granted;
    }
  }
  const size_t quorum = voters_.size() / 2 + 1;
  if (granted >= quorum) return VoteResult::kWon;
  if (granted + missing >= quorum) return VoteResult::kPending;
  return VoteResult::kLost;
}

std::set<NodeId> JointConfig::ids() const {
  std::set<NodeId> out = incoming.voters();
  out.insert(outgoing.voters().begin(), outgoing.voters().end());
  return out;
}

LogIndex JointConfig::committed_index(const AckedIndexFn& acked) const {
  return std::min(incoming.committed_index(acked), outgoing.committed_index(acked));
}

VoteResult JointConfig::vote_result(const std::map<NodeId, bool>& votes) const {
  const VoteResult in = incoming.vote_result(votes);
  const VoteResult out = outgoing.vote_result(votes);
  if (in == out) return in;
  // Lost in either half means lost; otherwise one half is still pending.
  if (in == VoteResult::kLost || out == VoteResult::kLost) return VoteResult::kLost;
  return VoteResult::kPending;
}

}  // namespace synod::raft
