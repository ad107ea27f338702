// Everything a Raft group may be tuned by, with the bound on every flow.
// `validate()` is called once when a node is made; a bad config is refused
// with a message, never half-applied.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/bugs.h"
#include "base/result.h"
#include "raft/types.h"

namespace synod::raft {

class Storage;

enum class ReadOnlyOption : uint8_t {
  // ReadIndex: confirm leadership with a quorum round before each read batch.
  kSafe,
  // Leader lease: serve reads without a round while the lease holds. Its
  // safety rests on `max_clock_drift_ratio` being a true bound on how much
  // faster one node's ticks may run than another's; it never assumes
  // synchronized clocks. Requires `check_quorum`.
  kLeaseBased,
};

struct Config {
  NodeId id;
  GroupId group;
  // Ticks without hearing from a leader before a follower campaigns. The
  // actual timeout is drawn at random in [election_tick, 2 * election_tick).
  int election_tick = 10;
  // Ticks between leader heartbeats.
  int heartbeat_tick = 1;
  // Seed of the generator that randomizes election timeouts.
  uint64_t random_seed = 1;
  Storage* storage = nullptr;
  // The last applied index, when restarting.
  LogIndex applied;

  // Cap on the payload bytes of one append message (batching).
  size_t max_size_per_msg_bytes = 1 << 20;
  // Cap on append messages in flight to one follower (pipelining).
  size_t max_inflight_msgs = 256;
  // Cap on bytes of entries in flight to one follower; 0 means no cap.
  size_t max_inflight_bytes = 0;
  // Cap on the bytes of proposed-but-uncommitted entries at the leader;
  // beyond it proposals are dropped. 0 means no cap.
  size_t max_uncommitted_entries_bytes = 0;
  // Cap on committed entry bytes handed out in one Ready; 0 means no cap.
  size_t max_committed_size_per_ready_bytes = 0;
  // Cap on the data bytes of one snapshot chunk.
  size_t snapshot_chunk_bytes = 1 << 20;
  // A snapshot announcing more bytes than this is refused.
  uint64_t max_snapshot_bytes = uint64_t{1} << 34;

  // A candidate first asks whether it could win (PreVote, thesis §9.6), so a
  // node that was cut off does not disturb the group with term bumps.
  bool pre_vote = true;
  // A leader that has not heard from a quorum in an election timeout steps
  // down; a follower that heard from a leader within one refuses to vote.
  bool check_quorum = true;
  ReadOnlyOption read_only_option = ReadOnlyOption::kSafe;
  // Bound on relative clock rate error between any two nodes (0.05 = 5%),
  // used only to shorten the lease for kLeaseBased reads.
  double max_clock_drift_ratio = 0.05;
  // Drop proposals while leadership is being transferred.
  bool disable_proposal_forwarding = false;
  // Do not step down when a leader of a newer term is seen only in a vote.
  bool step_down_on_removal = true;
  // Injected protocol bugs; only the simulator sets any (base/bugs.h).
  base::BugSet bugs;

  base::Status validate() const;
};

}  // namespace synod::raft
