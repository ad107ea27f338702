// The vocabulary of the Raft core: ids, entries, snapshots, messages, states.
//
// Everything here is plain data. Messages carry the id of the Raft group they
// belong to from the first day, because a node hosts many groups (multi-raft).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/codec.h"
#include "base/strong.h"

namespace synod::raft {

using base::Bytes;

struct NodeIdTag;
struct GroupIdTag;
struct TermTag;
struct LogIndexTag;

// A member of a group. 0 (`kNone`) means "nobody".
using NodeId = base::Id<NodeIdTag>;
// A Raft group. A node hosts many; every message names its group.
using GroupId = base::Id<GroupIdTag>;
using Term = base::Ordinal<TermTag>;
using LogIndex = base::Ordinal<LogIndexTag>;

inline constexpr NodeId kNone{};

enum class EntryType : uint8_t {
  kNormal = 0,
  // The data is an encoded ConfChange (see confchange.h).
  kConfChange = 1,
};

struct Entry {
  Term term;
  LogIndex index;
  EntryType type = EntryType::kNormal;
  Bytes data;

  // Bytes this entry counts for in size limits (payload plus a fixed header).
  size_t size_bytes() const { return data.size() + 24; }
  friend bool operator==(const Entry&, const Entry&) = default;
};

// The members of a group as of some log index. A voter in `voters` (and, while
// a joint configuration is in force, in `voters_outgoing`) votes and counts
// for commit; a learner receives the log but does neither.
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
  // Non-empty only in a joint configuration: the configuration being left.
  std::vector<NodeId> voters_outgoing;
  // Learners that become so when the joint configuration is left (they are
  // outgoing voters now).
  std::vector<NodeId> learners_next;
  bool auto_leave = false;

  friend bool operator==(const ConfState&, const ConfState&) = default;
};

struct SnapshotMeta {
  LogIndex index;
  Term term;
  ConfState conf_state;
  friend bool operator==(const SnapshotMeta&, const SnapshotMeta&) = default;
};

// State that must be on stable storage before a node answers any message.
struct HardState {
  Term term;
  NodeId vote;
  LogIndex commit;
  friend bool operator==(const HardState&, const HardState&) = default;
  bool is_empty() const { return *this == HardState{}; }
};

struct Snapshot {
  SnapshotMeta meta;
  Bytes data;
  bool is_empty() const { return meta.index == LogIndex{0}; }
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

enum class MessageType : uint8_t {
  // Local messages: never cross the network.
  kHup,             // start an election (the election timer fired)
  kBeat,            // the leader should broadcast heartbeats
  kPropose,         // append these entries
  kUnreachable,     // the host could not deliver to `from`
  kSnapStatus,      // the host reports a snapshot transfer finished or failed
  kCheckQuorum,     // the leader should check it still hears a quorum
  // Network messages.
  kApp,             // append entries
  kAppResp,
  kVote,
  kVoteResp,
  kPreVote,
  kPreVoteResp,
  kSnap,            // one chunk of a snapshot
  kHeartbeat,
  kHeartbeatResp,
  kTransferLeader,  // ask the leader to hand leadership to `from`
  kTimeoutNow,      // the leader tells the transferee to campaign at once
  kReadIndex,       // a linearizable read; forwarded to the leader
  kReadIndexResp,
};

std::string_view message_type_name(MessageType type);
bool is_local_message(MessageType type);
bool is_response_message(MessageType type);

// The reason a candidate campaigns. A transfer campaign may disturb a leader
// that followers still trust (they were told to expect it).
enum class CampaignKind : uint8_t { kNone, kPreElection, kElection, kTransfer };

// One chunk of a snapshot in flight. Chunks arrive in order; the receiver
// installs the snapshot only when the last one arrives, so a half-received
// snapshot is never visible.
struct SnapshotChunk {
  SnapshotMeta meta;
  uint64_t offset = 0;        // where `data` starts in the whole snapshot
  uint64_t total_bytes = 0;   // size of the whole snapshot's data
  Bytes data;
  // XXH3-64 of `data`, set by the sender; a chunk that fails it is dropped
  // and re-requested, so a damaged chunk never becomes part of a snapshot.
  uint64_t checksum = 0;
  bool last = false;
  friend bool operator==(const SnapshotChunk&, const SnapshotChunk&) = default;
};

struct Message {
  GroupId group;
  MessageType type = MessageType::kHup;
  NodeId from;
  NodeId to;
  Term term;
  // For kApp: the term and index of the entry just before `entries`. For an
  // accepting kAppResp: the index acknowledged and its term in our log.
  // For kAppResp: the index acknowledged (or, when rejecting, the index the
  // leader probed). For votes: the candidate's last log term and index.
  Term log_term;
  LogIndex index;
  std::vector<Entry> entries;
  LogIndex commit;
  bool reject = false;
  // Fast backtracking: on a rejected kApp, the follower's guess at the
  // highest index that may match (and `log_term` is its term there).
  LogIndex reject_hint;
  // Read-index request context, echoed back in heartbeats and read states.
  Bytes context;
  // kSnap only.
  std::optional<SnapshotChunk> snapshot;
  // kHeartbeat: the leader's tick count when it sent it; echoed by the
  // heartbeat response so the leader can time its lease from the send time.
  uint64_t lease_stamp = 0;
  CampaignKind campaign = CampaignKind::kNone;

  friend bool operator==(const Message&, const Message&) = default;
};

// A read whose linearization point is `index`: once the state machine has
// applied `index`, the host may serve the read identified by `context`.
struct ReadState {
  LogIndex index;
  Bytes context;
  friend bool operator==(const ReadState&, const ReadState&) = default;
};

enum class Role : uint8_t { kFollower, kCandidate, kLeader, kPreCandidate };
std::string_view role_name(Role role);

// Volatile state, reported so a host can route requests.
struct SoftState {
  NodeId leader;
  Role role = Role::kFollower;
  friend bool operator==(const SoftState&, const SoftState&) = default;
};

// ConfState on disk (WAL snapshot markers, state machine snapshots): four
// counted lists of node ids, then auto_leave as one byte. Decoding refuses
// lists longer than `kConfStateNodesMax` and node id 0.
inline constexpr uint64_t kConfStateNodesMax = 1024;
void encode_conf_state(base::Encoder& encoder, const ConfState& conf);
[[nodiscard]] bool decode_conf_state(base::Decoder& decoder, ConfState* conf);

}  // namespace synod::raft
