// RawNode: the thread-unsafe, I/O-free door into one Raft group.
//
// The host drives it: `tick()` from a timer, `step()` for every message that
// arrives, `propose()` for writes, `read_index()` for linearizable reads. It
// then asks `has_ready()`, takes `ready()`, carries it out (see ready.h) and
// calls `advance()`. Nothing here reads a clock, touches a file or socket,
// starts a thread or draws randomness it was not seeded with, so the same
// inputs always give the same outputs (the simulator depends on it).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "base/result.h"
#include "raft/config.h"
#include "raft/confchange.h"
#include "raft/ready.h"
#include "raft/types.h"

namespace synod::raft {

class Raft;

// A snapshot of a group's state for status pages and tests.
struct Status {
  NodeId id;
  GroupId group;
  HardState hard_state;
  SoftState soft_state;
  LogIndex applied;
  LogIndex last_index;
  NodeId lead_transferee;
  // Leader only: per member, the index known to match and the replication
  // state ("probe", "replicate", "snapshot").
  struct PeerProgress {
    NodeId id;
    LogIndex match;
    LogIndex next;
    const char* state;
    bool learner;
  };
  std::vector<PeerProgress> progress;
  ConfState conf_state;
};

class RawNode {
 public:
  // Fails when the config is invalid or storage cannot be read.
  static base::Result<std::unique_ptr<RawNode>> create(const Config& config);
  ~RawNode();
  RawNode(const RawNode&) = delete;
  RawNode& operator=(const RawNode&) = delete;

  // Advances the logical clock by one tick.
  void tick();
  // Starts an election now (a test and bootstrap convenience).
  base::Status campaign();
  // Feeds a message from a peer. Local message types are refused.
  base::Status step(const Message& message);
  base::Status propose(Bytes data);
  // A leader's messages (appends, heartbeats) produced since the last
  // Ready, taken while that Ready is still being persisted: they promise
  // nothing about this node's disk, so new proposals reach the followers
  // without waiting for the leader's fsync. Empty on a non-leader, whose
  // messages all wait for persistence, and while the leader's own term is
  // not yet durable.
  std::vector<Message> take_messages();
  // Several entries in one proposal: appended together, replicated in one
  // message per follower. All or none are accepted.
  base::Status propose(std::vector<Bytes> batch);
  base::Status propose_conf_change(const ConfChange& change);
  // Applies a committed conf change entry's change; returns the new config.
  ConfState apply_conf_change(const ConfChange& change);
  // Asks for a linearizable read; a ReadState with `context` appears in a
  // later Ready (or never, if leadership is lost: the host times out).
  void read_index(Bytes context);
  // Asks the leader to hand leadership to `transferee`.
  void transfer_leader(NodeId transferee);
  // The host could not reach `id` (so replication to it falls back to probing).
  void report_unreachable(NodeId id);
  // The host reports the outcome of sending a whole snapshot to `id`.
  void report_snapshot(NodeId id, bool failed);

  bool has_ready() const;
  Ready ready();
  void advance();

  Status status() const;
  // The underlying state machine, for invariant checkers in tests.
  const Raft& raft() const { return *raft_; }

 private:
  explicit RawNode(std::unique_ptr<Raft> raft);

  // What the last Ready handed out, to acknowledge in advance().
  struct InProgress {
    LogIndex last_entry_index;
    Term last_entry_term;
    LogIndex snapshot_index;
    LogIndex last_committed_index;
    size_t committed_payload_bytes = 0;  // released from the uncommitted budget
    Term hard_state_term;  // the term this Ready persists (0: no hard state)
  };

  std::unique_ptr<Raft> raft_;
  SoftState prev_soft_state_;
  HardState prev_hard_state_;
  // The term the host has made durable. A leader whose own term is not yet
  // durable (a single voter wins without asking anyone) sends nothing until
  // it is: if it crashed first it could win the same term again and send a
  // different entry at the same index.
  Term persisted_term_;
  std::optional<InProgress> in_progress_;
};

}  // namespace synod::raft
