#include "raft/types.h"

namespace synod::raft {

std::string_view message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kHup: return "Hup";
    case MessageType::kBeat: return "Beat";
    case MessageType::kPropose: return "Propose";
    case MessageType::kUnreachable: return "Unreachable";
    case MessageType::kSnapStatus: return "SnapStatus";
    case MessageType::kCheckQuorum: return "CheckQuorum";
    case MessageType::kApp: return "App";
    case MessageType::kAppResp: return "AppResp";
    case MessageType::kVote: return "Vote";
    case MessageType::kVoteResp: return "VoteResp";
    case MessageType::kPreVote: return "PreVote";
    case MessageType::kPreVoteResp: return "PreVoteResp";
    case MessageType::kSnap: return "Snap";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kHeartbeatResp: return "HeartbeatResp";
    case MessageType::kTransferLeader: return "TransferLeader";
    case MessageType::kTimeoutNow: return "TimeoutNow";
    case MessageType::kReadIndex: return "ReadIndex";
    case MessageType::kReadIndexResp: return "ReadIndexResp";
  }
  return "Unknown";
}

bool is_local_message(MessageType type) {
  switch (type) {
    case MessageType::kHup:
    case MessageType::kBeat:
    case MessageType::kUnreachable:
    case MessageType::kSnapStatus:
    case MessageType::kCheckQuorum:
      return true;
    default:
      return false;
  }
}

bool is_response_message(MessageType type) {
  switch (type) {
    case MessageType::kAppResp:
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp:
    case MessageType::kHeartbeatResp:
    case MessageType::kReadIndexResp:
    case MessageType::kUnreachable:
      return true;
    default:
      return false;
  }
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kFollower: return "follower";
    case Role::kCandidate: return "candidate";
    case Role::kLeader: return "leader";
    case Role::kPreCandidate: return "pre-candidate";
  }
  return "unknown";
}

}  // namespace synod::raft
