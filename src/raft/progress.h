// What a leader knows about one follower's log, and how it paces replication
// to it (etcd/raft's tracker.Progress).
//
//   kProbe:     the leader does not know where the logs match; it sends one
//               append per heartbeat interval and waits for the answer.
//   kReplicate: the logs match up to `match`; appends are pipelined up to the
//               in-flight window, `next` advances optimistically.
//   kSnapshot:  the follower needs entries the leader compacted away; the
//               leader streams a snapshot in chunks and sends no appends.
#pragma once

#include <cstdint>
#include <deque>

#include "raft/types.h"

namespace synod::raft {

// A bounded window of append messages in flight to one follower, identified
// by the last index each carried (and its payload bytes).
class Inflights {
 public:
  Inflights(size_t max_count, size_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}

  void add(LogIndex last_index, size_t bytes);
  // Everything up to and including `index` was acknowledged.
  void free_le(LogIndex index);
  // Frees the oldest slot (a heartbeat answer proves the follower is alive).
  void free_first_one();
  void reset();
  bool full() const;
  size_t count() const { return window_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  struct Flight {
    LogIndex last_index;
    size_t bytes;
  };
  size_t max_count_;
  size_t max_bytes_;  // 0: no byte cap
  size_t bytes_ = 0;
  std::deque<Flight> window_;
};

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };
const char* progress_state_name(ProgressState state);

struct Progress {
  Progress(LogIndex next_index, size_t max_inflight, size_t max_inflight_bytes)
      : next(next_index), inflights(max_inflight, max_inflight_bytes) {}

  LogIndex match;
  LogIndex next;
  ProgressState state = ProgressState::kProbe;
  // kSnapshot: the index of the snapshot being sent; `snapshot_offset` is how
  // many of its bytes the follower has acknowledged.
  LogIndex pending_snapshot;
  uint64_t snapshot_offset = 0;
  // Heard from since the last CheckQuorum.
  bool recent_active = false;
  // kProbe: an append was sent this heartbeat interval; wait for its answer.
  // (In kReplicate the in-flight window alone decides.)
  bool msg_app_flow_paused = false;
  bool is_learner = false;
  // Highest heartbeat lease stamp the follower has echoed back.
  uint64_t lease_stamp_acked = 0;
  Inflights inflights;

  void become_probe();
  void become_replicate();
  void become_snapshot(LogIndex snapshot_index);
  // An ack of `index` arrived; false if it is stale.
  bool maybe_update(LogIndex index);
  // An append carrying up to `last` was just sent (pipelining).
  void sent_entries(LogIndex last, size_t bytes);
  // A rejection of the append at `rejected` arrived with the follower's hint
  // `match_hint`; false if the rejection is stale.
  bool maybe_decr_to(LogIndex rejected, LogIndex match_hint);
  bool is_paused() const;
};

}  // namespace synod::raft
