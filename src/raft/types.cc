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

namespace {

void encode_nodes(base::Encoder& encoder, const std::vector<NodeId>& nodes) {
  encoder.varint(nodes.size());
  for (NodeId node : nodes) encoder.varint(node.value());
}

bool decode_nodes(base::Decoder& decoder, std::vector<NodeId>* nodes) {
  uint64_t count = 0;
  if (!decoder.varint(&count) || count > kConfStateNodesMax) return false;
  nodes->clear();
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t node = 0;
    if (!decoder.varint(&node) || node == 0) return false;
    nodes->push_back(NodeId{node});
  }
  return true;
}

}  // namespace

void encode_conf_state(base::Encoder& encoder, const ConfState& conf) {
  encode_nodes(encoder, conf.voters);
  encode_nodes(encoder, conf.learners);
  encode_nodes(encoder, conf.voters_outgoing);
  encode_nodes(encoder, conf.learners_next);
  encoder.byte(conf.auto_leave ? 1 : 0);
}

bool decode_conf_state(base::Decoder& decoder, ConfState* conf) {
  uint8_t auto_leave = 0;
  if (!decode_nodes(decoder, &conf->voters) || !decode_nodes(decoder, &conf->learners) ||
      !decode_nodes(decoder, &conf->voters_outgoing) ||
      !decode_nodes(decoder, &conf->learners_next) || !decoder.byte(&auto_leave) ||
      auto_leave > 1) {
    return false;
  }
  conf->auto_leave = auto_leave == 1;
  return true;
}

}  // namespace synod::raft
