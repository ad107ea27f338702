// Quorum arithmetic, kept pure: the committed index and a vote's outcome are
// functions of the members' acknowledged indexes and votes, nothing else.
#pragma once

#include <functional>
#include <optional>
#include <map>
#include <set>

#include "raft/types.h"

namespace synod::raft {

enum class VoteResult : uint8_t { kPending, kLost, kWon };

using AckedIndexFn = std::function<std::optional<LogIndex>(NodeId)>;

// A set of voters deciding by simple majority. An empty configuration agrees
// to everything (so that a joint config with an empty half behaves as the
// other half alone).
class MajorityConfig {
 public:
  MajorityConfig() = default;
  explicit MajorityConfig(std::set<NodeId> voters) : voters_(std::move(voters)) {}

  const std::set<NodeId>& voters() const { return voters_; }
  std::set<NodeId>& voters() { return voters_; }
  bool contains(NodeId id) const { return voters_.count(id) > 0; }
  size_t size() const { return voters_.size(); }
  bool empty() const { return voters_.empty(); }

  // The largest index acknowledged by a majority (members without an
  // acknowledgement count as 0). Empty config: the maximum index.
  LogIndex committed_index(const AckedIndexFn& acked) const;
  // `votes` maps voter → granted; voters missing from it have not answered.
  VoteResult vote_result(const std::map<NodeId, bool>& votes) const;

  friend bool operator==(const MajorityConfig&, const MajorityConfig&) = default;

 private:
  std::set<NodeId> voters_;
};

// Two majority configs that must both agree (joint consensus). When not in
// a joint configuration, `outgoing` is empty.
class JointConfig {
 public:
  MajorityConfig incoming;
  MajorityConfig outgoing;

  std::set<NodeId> ids() const;
  bool contains(NodeId id) const { return incoming.contains(id) || outgoing.contains(id); }
  bool is_joint() const { return !outgoing.empty(); }
  LogIndex committed_index(const AckedIndexFn& acked) const;
  VoteResult vote_result(const std::map<NodeId, bool>& votes) const;

  friend bool operator==(const JointConfig&, const JointConfig&) = default;
};

}  // namespace synod::raft
