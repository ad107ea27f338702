// Membership changes: what a change is, how it is encoded in a log entry, and
// how it turns one tracker configuration into the next.
//
// Changes follow joint consensus (Raft thesis §4.3, as etcd/raft does it): a
// change of more than one voter first enters a joint configuration in which
// decisions need a majority of both the old and the new voter sets, then
// leaves it. A single voter change may take the one-step path, which is safe
// because any two majorities of configurations differing by one voter
// intersect. Learners never vote and never count for commit.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "raft/types.h"

namespace synod::raft {

enum class ConfChangeType : uint8_t {
  kAddNode = 0,
  kRemoveNode = 1,
  kAddLearnerNode = 2,
};

struct ConfChangeSingle {
  ConfChangeType type = ConfChangeType::kAddNode;
  NodeId node;
  friend bool operator==(const ConfChangeSingle&, const ConfChangeSingle&) = default;
};

enum class ConfChangeTransition : uint8_t {
  // One change: apply directly. Several: enter joint and leave automatically.
  kAuto = 0,
  // Enter joint and leave automatically, even for one change.
  kJointImplicit = 1,
  // Enter joint; the host leaves with an empty ConfChange.
  kJointExplicit = 2,
};

struct ConfChange {
  ConfChangeTransition transition = ConfChangeTransition::kAuto;
  std::vector<ConfChangeSingle> changes;
  // Opaque to Raft: the host's own bookkeeping (addresses, request ids).
  Bytes context;

  // An empty change means "leave the joint configuration".
  bool leaves_joint() const { return changes.empty(); }
  // Whether it enters a joint configuration, and whether that is left
  // automatically.
  bool enters_joint(bool* auto_leave) const;
  friend bool operator==(const ConfChange&, const ConfChange&) = default;
};

// Entry payload format: a version byte, then varints. Decoding bounds every
// count before allocating and rejects trailing bytes.
std::string encode_conf_change(const ConfChange& change);
base::Result<ConfChange> decode_conf_change(std::string_view data);

}  // namespace synod::raft
