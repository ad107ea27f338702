// Raft: the consensus state machine of one group (Raft paper, Ongaro's thesis,
// and etcd/raft's structure).
//
// One step function per role decides what a message means; everything the
// host must do is queued (messages, entries to persist, entries to apply) and
// handed out through RawNode's Ready. No I/O, no clock (time is `tick()`),
// no threads, no unseeded randomness.
//
// Safety rules kept here, each with the place it lives:
//  - Election Safety: one vote per term, persisted (HardState) before it is
//    sent (Ready.messages_after_persist).
//  - Leader Append-Only: a leader never truncates its own log.
//  - Log Matching: followers append only after matching (index, term).
//  - Leader Completeness: votes only for candidates at least as up to date.
//  - Commit rule: only entries of the leader's current term are committed by
//    counting replicas (paper §5.4.2, Figure 8); earlier ones follow.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "base/result.h"
#include "base/rng.h"
#include "raft/config.h"
#include "raft/confchange.h"
#include "raft/raft_log.h"
#include "raft/read_only.h"
#include "raft/tracker.h"
#include "raft/types.h"

namespace synod::raft {

class Raft {
 public:
  static base::Result<std::unique_ptr<Raft>> create(const Config& config);

  // Events.
  void tick();
  base::Status step(Message message);

  // Host acknowledgements (called by RawNode::advance).
  void on_persisted(LogIndex index, Term term, LogIndex snapshot_index);
  void on_applied(LogIndex index);
  ConfState apply_conf_change(const ConfChange& change);

  // Accessors for RawNode, status pages and invariant checkers.
  NodeId id() const { return id_; }
  GroupId group() const { return group_; }
  Term term() const { return term_; }
  NodeId vote() const { return vote_; }
  NodeId leader() const { return leader_; }
  Role role() const { return role_; }
  NodeId lead_transferee() const { return lead_transferee_; }
  LogIndex pending_conf_index() const { return pending_conf_index_; }
  const RaftLog& log() const { return log_; }
  RaftLog& mutable_log() { return log_; }
  const ProgressTracker& tracker() const { return tracker_; }
  const Config& config() const { return config_; }
  HardState hard_state() const { return {term_, vote_, log_.committed()}; }
  SoftState soft_state() const { return {leader_, role_}; }
  int randomized_election_timeout() const { return randomized_election_timeout_; }
  int election_elapsed() const { return election_elapsed_; }
  uint64_t now_ticks() const { return now_ticks_; }
  size_t uncommitted_bytes() const { return uncommitted_bytes_; }
  // Whether a lease read is allowed right now (kLeaseBased).
  bool lease_valid() const;
  // Checks what must hold between any two steps (LogCabin's idea: run it
  // after every step in tests and simulation). Returns the first violation.
  base::Status check_invariants() const;

  // Outputs, drained by RawNode.
  std::vector<Message>& messages() { return messages_; }
  std::vector<Message>& messages_after_persist() { return messages_after_persist_; }
  std::vector<ReadState>& read_states() { return read_states_; }

 private:
  friend class RawNode;
  explicit Raft(const Config& config);
  base::Status load(const Config& config);

  using StepFn = base::Status (Raft::*)(const Message&);

  // Role transitions.
  void become_follower(Term term, NodeId leader);
  void become_candidate();
  void become_pre_candidate();
  void become_leader();
  void reset(Term term);
  void reset_randomized_election_timeout();

  // Per-role behaviour.
  base::Status step_leader(const Message& m);
  base::Status step_candidate(const Message& m);
  base::Status step_follower(const Message& m);
  void forward_to_leader(const Message& m);
  void tick_election();
  void tick_heartbeat();

  // Elections.
  void hup(CampaignKind kind);
  void campaign(CampaignKind kind);
  VoteResult poll(NodeId from, bool granted);
  bool promotable() const;
  bool past_election_timeout() const;
  bool in_lease() const;
  base::Status handle_term(const Message& m, bool* stop);
  void handle_vote_request(const Message& m);

  // Replication.
  bool append_entries(std::vector<Entry> entries);
  void bcast_append();
  void bcast_heartbeat(const Bytes& context);
  bool maybe_send_append(NodeId to, bool send_if_empty);
  void send_heartbeat(NodeId to, const Bytes& context);
  bool maybe_send_snapshot(NodeId to, Progress& pr);
  void send_snapshot_chunk(NodeId to, Progress& pr);
  bool maybe_commit();
  void handle_append_entries(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot_chunk(const Message& m);
  void handle_append_response(const Message& m, Progress& pr);
  void handle_snapshot_response(const Message& m, Progress& pr);
  bool restore(const Snapshot& snapshot);
  void on_commit_advanced();

  // Reads.
  void handle_read_index(const Message& m);
  void release_pending_reads();
  void send_read_response(const Message& request, LogIndex index);
  bool committed_entry_in_current_term() const;

  // Leadership transfer.
  void handle_transfer_leader(const Message& m);
  void send_timeout_now(NodeId to);
  void abort_leader_transfer() { lead_transferee_ = kNone; }

  // Membership.
  ConfState switch_to_config(TrackerConfig config, ProgressMap progress);
  bool increase_uncommitted(const std::vector<Entry>& entries);
  void reduce_uncommitted(size_t payload_bytes);

  void send(Message m);
  void load_state(const HardState& state);

  Config config_;
  NodeId id_;
  GroupId group_;
  Term term_;
  NodeId vote_;
  NodeId leader_;
  Role role_ = Role::kFollower;
  StepFn step_fn_ = nullptr;
  RaftLog log_;
  ProgressTracker tracker_;
  base::Rng rng_;
  ReadOnly read_only_;
  std::vector<Message> pending_read_index_messages_;

  NodeId lead_transferee_;
  // An uncommitted conf change may be in the log at most once: proposals of
  // another are refused until the applied index passes this one.
  LogIndex pending_conf_index_;
  size_t uncommitted_bytes_ = 0;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  // Monotonic tick count since creation: timestamps heartbeats for leases.
  uint64_t now_ticks_ = 0;

  // Follower: a snapshot being received, chunk by chunk.
  struct Incoming {
    SnapshotMeta meta;
    NodeId from;
    Term term;
    uint64_t total_bytes = 0;
    std::string data;
  };
  std::optional<Incoming> incoming_snapshot_;
  // Once a TimeoutNow went out, the transferee may win an election at any
  // later moment (followers waive their lease for it), so this leader serves
  // no lease reads for the rest of its term.
  bool lease_waived_ = false;
  // kLeaseBased: a node that just started does not know whom it promised not
  // to vote against, so it grants no votes for one election timeout.
  int vote_embargo_ticks_ = 0;

  std::vector<Message> messages_;
  std::vector<Message> messages_after_persist_;
  std::vector<ReadState> read_states_;
};

}  // namespace synod::raft
