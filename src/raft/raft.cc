#include "raft/raft.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "base/assert.h"
#include "base/frame.h"

namespace synod::raft {

using base::Errc;
using base::Error;

namespace {

MessageType vote_response_type(MessageType request) {
  return request == MessageType::kPreVote ? MessageType::kPreVoteResp : MessageType::kVoteResp;
}

size_t payload_bytes(const std::vector<Entry>& entries) {
  size_t bytes = 0;
  for (const Entry& e : entries) bytes += e.data.size();
  return bytes;
}

size_t entries_bytes(const std::vector<Entry>& entries) {
  size_t bytes = 0;
  for (const Entry& e : entries) bytes += e.size_bytes();
  return bytes;
}

Error dropped(const char* why) { return Error(Errc::kProposalDropped, why); }

}  // namespace

base::Result<std::unique_ptr<Raft>> Raft::create(const Config& config) {
  if (auto st = config.validate(); !st.ok()) return st.error();
  std::unique_ptr<Raft> raft(new Raft(config));
  if (auto st = raft->load(config); !st.ok()) return st.error();
  return raft;
}

Raft::Raft(const Config& config)
    : config_(config),
      id_(config.id),
      group_(config.group),
      log_(config.storage, config.max_committed_size_per_ready_bytes),
      tracker_(config.max_inflight_msgs, config.max_inflight_bytes),
      rng_(config.random_seed) {}

base::Status Raft::load(const Config& config) {
  auto initial = config.storage->initial_state();
  if (!initial.ok()) return initial.error();
  auto restored = Changer::restore(initial->conf_state, log_.last_index(), config.max_inflight_msgs,
                                   config.max_inflight_bytes);
  if (!restored.ok()) return restored.error();
  switch_to_config(std::move(restored->first), std::move(restored->second));

  const HardState& hs = initial->hard_state;
  if (!hs.is_empty()) {
    if (hs.commit < log_.committed() || hs.commit > log_.last_index()) {
      return Error(Errc::kCorruption,
                   "hard state commit " + std::to_string(hs.commit.value()) + " is outside the log [" +
                       std::to_string(log_.committed().value()) + ", " +
                       std::to_string(log_.last_index().value()) + "]");
    }
    load_state(hs);
  }
  if (config.applied > LogIndex{0}) {
    if (config.applied > log_.committed()) {
      return Error(Errc::kInvalidArgument, "applied index " + std::to_string(config.applied.value()) +
                                               " is beyond the commit index " +
                                               std::to_string(log_.committed().value()));
    }
    if (config.applied >= log_.applied()) log_.applied_to(config.applied);
  }
  become_follower(term_, kNone);
  if (config_.read_only_option == ReadOnlyOption::kLeaseBased) {
    vote_embargo_ticks_ = config_.election_tick;
  }
  return {};
}

void Raft::load_state(const HardState& state) {
  log_.commit_to(state.commit);
  term_ = state.term;
  vote_ = state.vote;
}

// ---------------------------------------------------------------------------
// Role transitions

void Raft::reset(Term term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNone;
    lease_waived_ = false;
  }
  leader_ = kNone;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_election_timeout();
  abort_leader_transfer();
  tracker_.reset_votes();
  const LogIndex last = log_.last_index();
  for (auto& [id, pr] : tracker_.progress) {
    const bool learner = pr.is_learner;
    pr = Progress(last + 1, tracker_.max_inflight(), tracker_.max_inflight_bytes());
    pr.is_learner = learner;
    if (id == id_) pr.match = log_.stable_last_index();
  }
  pending_conf_index_ = LogIndex{0};
  uncommitted_bytes_ = 0;
  read_only_.clear();
  pending_read_index_messages_.clear();
  incoming_snapshot_.reset();
}

void Raft::reset_randomized_election_timeout() {
  // Randomized timeouts make split votes rare (paper §5.2).
  randomized_election_timeout_ =
      config_.election_tick + static_cast<int>(rng_.uniform(static_cast<uint64_t>(config_.election_tick)));
}

void Raft::become_follower(Term term, NodeId leader) {
  step_fn_ = &Raft::step_follower;
  reset(term);
  leader_ = leader;
  role_ = Role::kFollower;
}

void Raft::become_candidate() {
  SYNOD_ASSERT(role_ != Role::kLeader, "a leader cannot become a candidate directly");
  step_fn_ = &Raft::step_candidate;
  reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Raft::become_pre_candidate() {
  SYNOD_ASSERT(role_ != Role::kLeader, "a leader cannot become a pre-candidate");
  // A pre-candidate keeps its term and vote: it only asks whether it could win.
  step_fn_ = &Raft::step_candidate;
  tracker_.reset_votes();
  leader_ = kNone;
  role_ = Role::kPreCandidate;
}

void Raft::become_leader() {
  SYNOD_ASSERT(role_ != Role::kFollower, "a follower must campaign before it leads");
  step_fn_ = &Raft::step_leader;
  reset(term_);
  leader_ = id_;
  role_ = Role::kLeader;
  if (auto it = tracker_.progress.find(id_); it != tracker_.progress.end()) {
    it->second.become_replicate();
    it->second.recent_active = true;
  }
  // Any conf change in the uncommitted tail may still be pending; be
  // conservative and refuse another until it is applied.
  pending_conf_index_ = log_.last_index();
  // An entry of the new term: committing it commits everything before it
  // (paper §5.4.2) and lets ReadIndex serve reads (thesis §6.4).
  std::vector<Entry> empty(1);
  const bool appended = append_entries(std::move(empty));
  SYNOD_ASSERT(appended, "the leader's first entry is never refused");
  // The empty entry does not count against the uncommitted budget.
  uncommitted_bytes_ = 0;
}

bool Raft::promotable() const {
  auto it = tracker_.progress.find(id_);
  return it != tracker_.progress.end() && !it->second.is_learner && !log_.has_pending_snapshot();
}

bool Raft::past_election_timeout() const {
  return election_elapsed_ >= randomized_election_timeout_;
}

bool Raft::in_lease() const {
  return config_.check_quorum && !leader_.is_none() && election_elapsed_ < config_.election_tick;
}

// ---------------------------------------------------------------------------
// Time

void Raft::tick() {
  ++now_ticks_;
  if (vote_embargo_ticks_ > 0) --vote_embargo_ticks_;
  if (role_ == Role::kLeader) {
    tick_heartbeat();
  } else {
    tick_election();
  }
}

void Raft::tick_election() {
  ++election_elapsed_;
  if (promotable() && past_election_timeout()) {
    election_elapsed_ = 0;
    Message m;
    m.type = MessageType::kHup;
    m.from = id_;
    (void)step(std::move(m));
  }
}

void Raft::tick_heartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_tick) {
    election_elapsed_ = 0;
    if (config_.check_quorum) {
      Message m;
      m.type = MessageType::kCheckQuorum;
      m.from = id_;
      (void)step(std::move(m));
    }
    // A transfer that did not finish within an election timeout is abandoned
    // so the group can take proposals again.
    if (role_ == Role::kLeader && !lead_transferee_.is_none()) abort_leader_transfer();
  }
  if (role_ != Role::kLeader) return;
  if (heartbeat_elapsed_ >= config_.heartbeat_tick) {
    heartbeat_elapsed_ = 0;
    Message m;
    m.type = MessageType::kBeat;
    m.from = id_;
    (void)step(std::move(m));
  }
}

// ---------------------------------------------------------------------------
// Step

base::Status Raft::step(Message m) {
  if (!is_local_message(m.type) && m.group != group_) {
    return Error(Errc::kInvalidArgument, "message for group " + std::to_string(m.group.value()) +
                                             " stepped into group " + std::to_string(group_.value()));
  }
  if (m.term == Term{0}) {
    // Local message, or a forwarded proposal / read (they carry no term).
  } else if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      const bool forced = m.campaign == CampaignKind::kTransfer;
      // Leader stickiness (thesis §4.2.3): while we hear from a leader, a
      // node that cannot hear it must not depose it.
      if (!forced && in_lease()) return {};
      if (!forced && vote_embargo_ticks_ > 0) return {};
    }
    if (m.type == MessageType::kPreVote) {
      // Answering a pre-vote never changes our term.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // We bump our term when the real election starts.
    } else if (m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnap) {
      become_follower(m.term, m.from);
    } else {
      become_follower(m.term, kNone);
    }
  } else if (m.term < term_) {
    if ((config_.check_quorum || config_.pre_vote) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A deposed leader that cannot hear the new one would otherwise keep
      // sending forever; our answer carries the newer term and stops it.
      Message resp;
      resp.to = m.from;
      resp.type = MessageType::kAppResp;
      send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      Message resp;
      resp.to = m.from;
      resp.type = MessageType::kPreVoteResp;
      resp.term = term_;
      resp.reject = true;
      send(std::move(resp));
    }
    return {};
  }

  switch (m.type) {
    case MessageType::kHup:
      hup(config_.pre_vote ? CampaignKind::kPreElection : CampaignKind::kElection);
      return {};
    case MessageType::kVote:
    case MessageType::kPreVote:
      handle_vote_request(m);
      return {};
    default:
      return (this->*step_fn_)(m);
  }
}

void Raft::hup(CampaignKind kind) {
  if (role_ == Role::kLeader) return;
  if (!promotable()) return;
  // A committed but unapplied conf change may remove us or change the
  // quorum; campaign only once the configuration we would lead is known.
  if (log_.committed() > log_.applied()) {
    auto pending = log_.slice(std::max(log_.applied() + 1, log_.first_index()),
                              log_.committed() + 1, std::numeric_limits<uint64_t>::max());
    if (!pending.ok()) return;
    for (const Entry& e : *pending) {
      if (e.type == EntryType::kConfChange) return;
    }
  }
  campaign(kind);
}

void Raft::campaign(CampaignKind kind) {
  if (!promotable()) return;
  MessageType request;
  Term term;
  if (kind == CampaignKind::kPreElection) {
    become_pre_candidate();
    request = MessageType::kPreVote;
    // A pre-vote asks about the term we would campaign in.
    term = term_ + 1;
  } else {
    become_candidate();
    request = MessageType::kVote;
    term = term_;
  }
  if (poll(id_, true) == VoteResult::kWon) {
    // A single voter wins at once.
    if (kind == CampaignKind::kPreElection) {
      campaign(CampaignKind::kElection);
    } else {
      become_leader();
    }
    return;
  }
  for (NodeId id : tracker_.voter_ids()) {
    if (id == id_) continue;
    Message m;
    m.to = id;
    m.type = request;
    m.term = term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    m.campaign = kind;
    send(std::move(m));
  }
}

VoteResult Raft::poll(NodeId from, bool granted) {
  tracker_.record_vote(from, granted);
  return tracker_.vote_result();
}

void Raft::handle_vote_request(const Message& m) {
  // We can vote for `m.from` if we already did (a retry), if we have not
  // voted and know no leader this term, or if this is a pre-vote for a
  // later term (a pre-vote promises nothing).
  const bool can_vote = vote_ == m.from || (vote_.is_none() && leader_.is_none()) ||
                        (m.type == MessageType::kPreVote && m.term > term_) ||
                        (SYNOD_BUG(config_.bugs, base::Bug::kDoubleVote) && m.type == MessageType::kVote &&
                         role_ == Role::kFollower);
  Message resp;
  resp.to = m.from;
  resp.type = vote_response_type(m.type);
  if (can_vote && log_.is_up_to_date(m.index, m.log_term)) {
    // Answer in the candidate's term: a pre-candidate counts only answers
    // for the term it asked about.
    resp.term = m.term;
    resp.reject = false;
    send(std::move(resp));
    if (m.type == MessageType::kVote) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.term = term_;
    resp.reject = true;
    send(std::move(resp));
  }
}

// ---------------------------------------------------------------------------
// Leader

base::Status Raft::step_leader(const Message& m) {
  switch (m.type) {
    case MessageType::kBeat:
      bcast_heartbeat(read_only_.last_pending_context());
      return {};
    case MessageType::kCheckQuorum:
      if (!tracker_.quorum_active()) {
        // We cannot hear a majority: another leader may exist. Stop serving.
        become_follower(term_, kNone);
      }
      for (auto& [id, pr] : tracker_.progress) {
        if (id != id_) pr.recent_active = false;
      }
      return {};
    case MessageType::kPropose: {
      if (m.entries.empty()) return Error(Errc::kInvalidArgument, "proposal without entries");
      if (!tracker_.is_member(id_)) return dropped("this leader was removed from the group");
      if (!lead_transferee_.is_none()) return dropped("leadership transfer in progress");
      std::vector<Entry> entries = m.entries;
      for (size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].type != EntryType::kConfChange) continue;
        auto change = decode_conf_change(entries[i].data.view());
        if (!change.ok()) return Error(Errc::kInvalidArgument, change.error().to_string());
        const bool pending = pending_conf_index_ > log_.applied();
        const bool joint = tracker_.config.voters.is_joint();
        const bool leaving = change->leaves_joint();
        if (pending) return dropped("another configuration change is not yet applied");
        if (joint && !leaving) return dropped("must leave the joint configuration first");
        if (!joint && leaving) return dropped("not in a joint configuration");
        pending_conf_index_ = log_.last_index() + (i + 1);
      }
      if (!append_entries(std::move(entries))) return dropped("too many uncommitted bytes");
      bcast_append();
      return {};
    }
    case MessageType::kReadIndex:
      handle_read_index(m);
      return {};
    case MessageType::kTransferLeader:
      handle_transfer_leader(m);
      return {};
    default:
      break;
  }

  auto it = tracker_.progress.find(m.from);
  if (it == tracker_.progress.end()) return {};
  Progress& pr = it->second;
  switch (m.type) {
    case MessageType::kAppResp:
      handle_append_response(m, pr);
      break;
    case MessageType::kHeartbeatResp: {
      pr.recent_active = true;
      pr.msg_app_flow_paused = false;
      // Appends in a full window may all have been lost: free one slot so a
      // heartbeat answer always lets one append through (etcd does the same).
      if (pr.state == ProgressState::kReplicate && pr.inflights.full()) pr.inflights.free_first_one();
      pr.lease_stamp_acked = std::max(pr.lease_stamp_acked, m.lease_stamp);
      if (pr.state == ProgressState::kSnapshot) {
        // The chunk or its ack may have been lost: offer it again.
        send_snapshot_chunk(m.from, pr);
      } else if (pr.match < log_.last_index() || pr.state == ProgressState::kProbe) {
        maybe_send_append(m.from, true);
      }
      // A heartbeat that carried a read's context confirms our leadership
      // as of that read once a quorum has echoed it.
      if (m.context.empty()) break;
      const std::map<NodeId, bool>* acks = read_only_.recv_ack(m.from, m.context);
      if (acks == nullptr) break;
      if (tracker_.config.voters.vote_result(*acks) != VoteResult::kWon) break;
      for (ReadOnly::Pending& ready : read_only_.advance(m.context)) {
        send_read_response(ready.request, ready.index);
      }
      break;
    }
    case MessageType::kSnapStatus:
      if (pr.state != ProgressState::kSnapshot) break;
      if (m.reject) pr.pending_snapshot = LogIndex{0};
      pr.become_probe();
      // Wait for the next heartbeat response before probing again.
      pr.msg_app_flow_paused = true;
      break;
    case MessageType::kUnreachable:
      if (pr.state == ProgressState::kReplicate) pr.become_probe();
      break;
    default:
      break;
  }
  return {};
}

bool Raft::append_entries(std::vector<Entry> entries) {
  const LogIndex last = log_.last_index();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].term = term_;
    entries[i].index = last + (i + 1);
  }
  if (!increase_uncommitted(entries)) return false;
  log_.append(entries);
  // The leader counts itself for commit only once these entries are
  // persisted (on_persisted): its disk write runs beside replication.
  return true;
}

bool Raft::increase_uncommitted(const std::vector<Entry>& entries) {
  const size_t bytes = payload_bytes(entries);
  const size_t cap = config_.max_uncommitted_entries_bytes;
  if (cap != 0 && uncommitted_bytes_ > 0 && bytes > 0 && uncommitted_bytes_ + bytes > cap) {
    return false;
  }
  uncommitted_bytes_ += bytes;
  return true;
}

void Raft::reduce_uncommitted(size_t bytes) {
  if (role_ != Role::kLeader) return;
  uncommitted_bytes_ = bytes > uncommitted_bytes_ ? 0 : uncommitted_bytes_ - bytes;
}

void Raft::bcast_append() {
  for (auto& [id, pr] : tracker_.progress) {
    if (id == id_) continue;
    // Pipelining: keep sending while the window has room and entries remain.
    if (maybe_send_append(id, true)) {
      while (maybe_send_append(id, false)) {
      }
    }
  }
}

void Raft::bcast_heartbeat(const Bytes& context) {
  for (auto& [id, pr] : tracker_.progress) {
    if (id == id_) continue;
    send_heartbeat(id, context);
  }
}

void Raft::send_heartbeat(NodeId to, const Bytes& context) {
  const Progress& pr = tracker_.progress.at(to);
  Message m;
  m.to = to;
  m.type = MessageType::kHeartbeat;
  // Never tell a follower to commit past what it is known to hold: its log
  // beyond `match` may still diverge from ours.
  m.commit = std::min(pr.match, log_.committed());
  m.context = context;
  // Stamps start at 1 so that 0 means "never acknowledged".
  m.lease_stamp = now_ticks_ + 1;
  send(std::move(m));
}

bool Raft::maybe_send_append(NodeId to, bool send_if_empty) {
  Progress& pr = tracker_.progress.at(to);
  if (pr.is_paused()) return false;
  const LogIndex prev_index = pr.next - 1;
  auto prev_term = log_.term(prev_index);
  auto entries = log_.entries(pr.next, config_.max_size_per_msg_bytes);
  if (!prev_term.ok() || !entries.ok()) {
    // The entries the follower needs are compacted away.
    return maybe_send_snapshot(to, pr);
  }
  if (entries->empty() && !send_if_empty) return false;
  Message m;
  m.to = to;
  m.type = MessageType::kApp;
  m.index = prev_index;
  m.log_term = *prev_term;
  m.commit = log_.committed();
  if (!entries->empty()) {
    const LogIndex last = entries->back().index;
    pr.sent_entries(last, entries_bytes(*entries));
  } else if (pr.state == ProgressState::kProbe) {
    pr.msg_app_flow_paused = true;
  }
  m.entries = std::move(entries).value();
  send(std::move(m));
  return true;
}

bool Raft::maybe_send_snapshot(NodeId to, Progress& pr) {
  // An inactive follower may be gone for good; do not stream a snapshot at it.
  if (!pr.recent_active) return false;
  auto snapshot = log_.snapshot();
  if (!snapshot.ok()) return false;  // being made: try again on the next heartbeat
  SYNOD_ASSERT(!snapshot->is_empty(), "entries were compacted but there is no snapshot");
  pr.become_snapshot(snapshot->meta.index);
  send_snapshot_chunk(to, pr);
  return true;
}

void Raft::send_snapshot_chunk(NodeId to, Progress& pr) {
  auto snapshot = log_.snapshot();
  if (!snapshot.ok()) return;
  if (snapshot->meta.index != pr.pending_snapshot) {
    // A newer snapshot replaced the one being sent: start over with it.
    if (snapshot->meta.index < pr.pending_snapshot) return;
    pr.become_snapshot(snapshot->meta.index);
  }
  const uint64_t total = snapshot->data.size();
  const uint64_t offset = std::min(pr.snapshot_offset, total);
  const uint64_t length = std::min<uint64_t>(config_.snapshot_chunk_bytes, total - offset);
  SnapshotChunk chunk;
  chunk.meta = snapshot->meta;
  chunk.offset = offset;
  chunk.total_bytes = total;
  chunk.data = Bytes(snapshot->data.view().substr(offset, length));
  chunk.checksum = base::checksum64(chunk.data.view());
  chunk.last = offset + length == total;
  Message m;
  m.to = to;
  m.type = MessageType::kSnap;
  m.snapshot = std::move(chunk);
  send(std::move(m));
}

void Raft::handle_append_response(const Message& m, Progress& pr) {
  pr.recent_active = true;
  if (m.snapshot) {
    handle_snapshot_response(m, pr);
    return;
  }
  if (m.reject) {
    // Fast backtracking (thesis §5.3 / etcd): jump to the follower's hint,
    // then to the last index of ours whose term is ≤ the follower's there.
    LogIndex next_probe = m.reject_hint;
    if (m.log_term > Term{0}) {
      next_probe = log_.find_conflict_by_term(m.reject_hint, m.log_term).first;
    }
    if (pr.maybe_decr_to(m.index, next_probe)) {
      if (pr.state == ProgressState::kReplicate) pr.become_probe();
      maybe_send_append(m.from, true);
    }
    return;
  }
  const bool was_paused = pr.is_paused();
  const bool updated = pr.maybe_update(m.index);
  const bool probe_confirmed = pr.match == m.index && pr.state == ProgressState::kProbe;
  // A follower that already holds everything the pending snapshot covers
  // (it caught up another way) must leave snapshot state even if `match`
  // did not move, or it would be offered the snapshot forever.
  const bool snapshot_covered =
      pr.state == ProgressState::kSnapshot && pr.match >= pr.pending_snapshot;
  if (!updated && !probe_confirmed && !snapshot_covered) return;
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.become_replicate();
      break;
    case ProgressState::kSnapshot:
      // The follower caught up by other means (or the snapshot landed).
      if (pr.match + 1 >= log_.first_index()) {
        pr.become_probe();
        pr.become_replicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.inflights.free_le(m.index);
      break;
  }
  if (maybe_commit()) {
    on_commit_advanced();
    bcast_append();
  } else if (was_paused || pr.state == ProgressState::kReplicate) {
    while (maybe_send_append(m.from, false)) {
    }
  }
  if (m.from == lead_transferee_ && pr.match == log_.last_index()) send_timeout_now(m.from);
}

void Raft::handle_snapshot_response(const Message& m, Progress& pr) {
  const SnapshotChunk& ack = *m.snapshot;
  if (pr.state != ProgressState::kSnapshot || ack.meta.index != pr.pending_snapshot) return;
  if (m.reject) {
    // The follower refused the snapshot (too large, or it failed to take
    // it): fall back to probing; the next heartbeat retries.
    pr.become_probe();
    pr.msg_app_flow_paused = true;
    return;
  }
  if (ack.last) {
    // Installed: the follower's log now ends at the snapshot.
    pr.become_probe();
    pr.maybe_update(ack.meta.index);
    pr.become_replicate();
    while (maybe_send_append(m.from, false)) {
    }
    return;
  }
  pr.snapshot_offset = ack.offset;
  send_snapshot_chunk(m.from, pr);
}

bool Raft::maybe_commit() {
  const LogIndex before = log_.committed();
  const LogIndex quorum_index = tracker_.committed();
  // The injected bug skips Raft's rule that only an entry of the leader's own
  // term is committed by counting replicas.
  const Term required = SYNOD_BUG(config_.bugs, base::Bug::kCommitPriorTermByCount)
                            ? log_.term_or_zero(quorum_index)
                            : term_;
  const bool advanced = log_.maybe_commit(quorum_index, required);
  SYNOD_ASSERT(log_.committed() >= before, "commit index went backwards");
  return advanced;
}

void Raft::on_commit_advanced() {
  // The first commit of this term makes the commit index current: reads
  // held back until then can be served now.
  if (!pending_read_index_messages_.empty() && committed_entry_in_current_term()) {
    std::vector<Message> held = std::move(pending_read_index_messages_);
    pending_read_index_messages_.clear();
    for (const Message& m : held) handle_read_index(m);
  }
}

bool Raft::committed_entry_in_current_term() const {
  return log_.term_or_zero(log_.committed()) == term_;
}

void Raft::on_persisted(LogIndex index, Term term, LogIndex snapshot_index) {
  if (snapshot_index > LogIndex{0}) log_.stable_snapshot_to(snapshot_index);
  if (index == LogIndex{0}) return;
  log_.stable_to(index, term);
  if (role_ != Role::kLeader) return;
  // The leader's own acknowledgement, now that its disk holds the entries.
  auto it = tracker_.progress.find(id_);
  if (it == tracker_.progress.end()) return;
  if (!log_.match_term(index, term)) return;
  if (it->second.maybe_update(index) && maybe_commit()) {
    on_commit_advanced();
    bcast_append();
  }
}

void Raft::on_applied(LogIndex index) {
  log_.applied_to(index);
  // Leave a joint configuration automatically once entering it is applied.
  if (role_ == Role::kLeader && tracker_.config.auto_leave && index >= pending_conf_index_) {
    Entry leave;
    leave.type = EntryType::kConfChange;
    leave.data = Bytes(encode_conf_change(ConfChange{}));
    Message m;
    m.type = MessageType::kPropose;
    m.from = id_;
    m.group = group_;
    m.entries.push_back(std::move(leave));
    (void)step(std::move(m));
  }
}

// ---------------------------------------------------------------------------
// Candidate and follower

base::Status Raft::step_candidate(const Message& m) {
  const MessageType my_response =
      role_ == Role::kPreCandidate ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  switch (m.type) {
    case MessageType::kPropose:
      return dropped("no leader (election in progress)");
    case MessageType::kApp:
      become_follower(m.term, m.from);
      handle_append_entries(m);
      return {};
    case MessageType::kHeartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      return {};
    case MessageType::kSnap:
      become_follower(m.term, m.from);
      handle_snapshot_chunk(m);
      return {};
    case MessageType::kTimeoutNow:
      return {};
    default:
      break;
  }
  if (m.type == my_response) {
    switch (poll(m.from, !m.reject)) {
      case VoteResult::kWon:
        if (role_ == Role::kPreCandidate) {
          campaign(CampaignKind::kElection);
        } else {
          become_leader();
          bcast_append();
        }
        break;
      case VoteResult::kLost:
        // A pre-candidate keeps its term; a candidate stays in the new one.
        become_follower(term_, kNone);
        break;
      case VoteResult::kPending:
        break;
    }
  }
  return {};
}

base::Status Raft::step_follower(const Message& m) {
  switch (m.type) {
    case MessageType::kPropose: {
      if (leader_.is_none()) return dropped("no leader");
      if (config_.disable_proposal_forwarding) return dropped("proposal forwarding is disabled");
      forward_to_leader(m);
      return {};
    }
    case MessageType::kApp:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_append_entries(m);
      return {};
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_heartbeat(m);
      return {};
    case MessageType::kSnap:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_snapshot_chunk(m);
      return {};
    case MessageType::kTransferLeader:
      forward_to_leader(m);
      return {};
    case MessageType::kTimeoutNow:
      // The leader chose us: campaign at once, past everyone's lease.
      hup(CampaignKind::kTransfer);
      return {};
    case MessageType::kReadIndex:
      forward_to_leader(m);
      return {};
    case MessageType::kReadIndexResp:
      read_states_.push_back(ReadState{m.index, m.context});
      return {};
    default:
      return {};
  }
}

void Raft::forward_to_leader(const Message& m) {
  // Without a leader there is no one to ask; the host's deadline answers.
  if (leader_.is_none()) return;
  Message forward = m;
  forward.to = leader_;
  forward.term = Term{0};
  send(std::move(forward));
}

void Raft::handle_append_entries(const Message& m) {
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kAppResp;
  // An acceptance also names the term of the entry it acknowledges, so a
  // checker (the simulator) can hold it to what the disk holds.
  if (m.index < log_.committed()) {
    // Everything up to our commit index already matches: say where we are.
    resp.index = log_.committed();
    resp.log_term = log_.term_or_zero(resp.index);
    send(std::move(resp));
    return;
  }
  if (auto last_new = log_.maybe_append(m.index, m.log_term, m.commit, m.entries)) {
    resp.index = *last_new;
    resp.log_term = log_.term_or_zero(resp.index);
    send(std::move(resp));
    return;
  }
  // Reject with a hint: the largest index ≤ the probed one whose term is at
  // most the leader's term there. The leader can skip every index between.
  const LogIndex hint_index = std::min(m.index, log_.last_index());
  const auto [index, term] = log_.find_conflict_by_term(hint_index, m.log_term);
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = index;
  resp.log_term = term;
  send(std::move(resp));
}

void Raft::handle_heartbeat(const Message& m) {
  log_.commit_to(std::min(m.commit, log_.last_index()));
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kHeartbeatResp;
  resp.context = m.context;
  resp.lease_stamp = m.lease_stamp;
  send(std::move(resp));
}

void Raft::handle_snapshot_chunk(const Message& m) {
  if (!m.snapshot) return;
  const SnapshotChunk& chunk = *m.snapshot;
  auto ack = [&](uint64_t offset, bool last, bool reject) {
    Message resp;
    resp.to = m.from;
    resp.type = MessageType::kAppResp;
    resp.reject = reject;
    SnapshotChunk header;
    header.meta.index = chunk.meta.index;
    header.meta.term = chunk.meta.term;
    header.offset = offset;
    header.total_bytes = chunk.total_bytes;
    header.last = last;
    resp.snapshot = std::move(header);
    send(std::move(resp));
  };
  if (chunk.meta.index <= log_.committed()) {
    // We already have everything it covers: tell the leader where we are.
    incoming_snapshot_.reset();
    Message resp;
    resp.to = m.from;
    resp.type = MessageType::kAppResp;
    resp.index = log_.committed();
    send(std::move(resp));
    return;
  }
  if (chunk.total_bytes > config_.max_snapshot_bytes) {
    incoming_snapshot_.reset();
    ack(0, false, true);
    return;
  }
  const bool continues = incoming_snapshot_ && incoming_snapshot_->meta == chunk.meta &&
                         incoming_snapshot_->from == m.from && incoming_snapshot_->term == term_ &&
                         incoming_snapshot_->total_bytes == chunk.total_bytes;
  if (chunk.offset == 0 && !continues) {
    incoming_snapshot_ = Incoming{chunk.meta, m.from, term_, chunk.total_bytes, {}};
  } else if (!continues) {
    ack(0, false, false);  // we hold nothing of it: start over
    return;
  }
  Incoming& in = *incoming_snapshot_;
  if (base::checksum64(chunk.data.view()) != chunk.checksum) {
    ack(in.data.size(), false, false);  // damaged in transit: ask for it again
    return;
  }
  if (chunk.offset != in.data.size()) {
    ack(in.data.size(), false, false);  // duplicate or gap: say where we are
    return;
  }
  if (chunk.data.size() > in.total_bytes - in.data.size()) {
    incoming_snapshot_.reset();  // overruns the announced size: corrupt
    ack(0, false, false);
    return;
  }
  in.data.append(chunk.data.view());
  if (!chunk.last) {
    ack(in.data.size(), false, false);
    return;
  }
  if (in.data.size() != in.total_bytes) {
    incoming_snapshot_.reset();
    ack(0, false, false);
    return;
  }
  Snapshot snapshot{in.meta, Bytes(std::move(in.data))};
  incoming_snapshot_.reset();
  if (restore(snapshot)) {
    ack(snapshot.data.size(), true, false);
  } else {
    Message resp;
    resp.to = m.from;
    resp.type = MessageType::kAppResp;
    resp.index = log_.committed();
    send(std::move(resp));
  }
}

bool Raft::restore(const Snapshot& snapshot) {
  if (snapshot.meta.index <= log_.committed()) return false;
  if (role_ != Role::kFollower) {
    // Only a leader of this term sends snapshots; whoever receives one must
    // follow it. Defensive: never restore as leader.
    become_follower(term_ + 1, kNone);
    return false;
  }
  const ConfState& cs = snapshot.meta.conf_state;
  const auto contains = [&](const std::vector<NodeId>& ids) {
    return std::find(ids.begin(), ids.end(), id_) != ids.end();
  };
  // A snapshot whose configuration does not name us is refused (we were
  // removed, or it is not for us) — unless we have no configuration at all:
  // a node joining by a conf change starts empty, and the snapshot brings it
  // the log up to the entry that adds it. Until then it cannot campaign.
  const bool named = contains(cs.voters) || contains(cs.learners) || contains(cs.voters_outgoing);
  if (!named && !tracker_.config.voters.incoming.empty()) return false;
  if (log_.match_term(snapshot.meta.index, snapshot.meta.term)) {
    // We already hold the log up to the snapshot: just commit to it.
    log_.commit_to(snapshot.meta.index);
    return false;
  }
  log_.restore(snapshot);
  auto restored = Changer::restore(cs, log_.last_index(), tracker_.max_inflight(),
                                   tracker_.max_inflight_bytes());
  SYNOD_ASSERT(restored.ok(), "a snapshot carries an invalid configuration");
  switch_to_config(std::move(restored->first), std::move(restored->second));
  return true;
}

// ---------------------------------------------------------------------------
// Reads

void Raft::handle_read_index(const Message& m) {
  if (m.context.empty()) return;  // contexts identify reads; an empty one cannot
  if (tracker_.is_singleton()) {
    if (!committed_entry_in_current_term()) {
      pending_read_index_messages_.push_back(m);
      return;
    }
    send_read_response(m, log_.committed());
    return;
  }
  // Until an entry of this term commits, our commit index may lag what an
  // earlier leader committed (thesis §6.4): hold reads until then.
  if (!committed_entry_in_current_term()) {
    pending_read_index_messages_.push_back(m);
    return;
  }
  if (config_.read_only_option == ReadOnlyOption::kLeaseBased && lease_valid()) {
    send_read_response(m, log_.committed());
    return;
  }
  read_only_.add_request(log_.committed(), m);
  read_only_.recv_ack(id_, m.context);
  bcast_heartbeat(m.context);
}

void Raft::send_read_response(const Message& request, LogIndex index) {
  if (request.from.is_none() || request.from == id_) {
    read_states_.push_back(ReadState{index, request.context});
    return;
  }
  Message resp;
  resp.to = request.from;
  resp.type = MessageType::kReadIndexResp;
  resp.index = index;
  resp.context = request.context;
  send(std::move(resp));
}

bool Raft::lease_valid() const {
  if (role_ != Role::kLeader) return false;
  if (config_.read_only_option != ReadOnlyOption::kLeaseBased || !config_.check_quorum) return false;
  if (!lead_transferee_.is_none() || lease_waived_) return false;
  // A follower that acknowledged a heartbeat sent at leader tick s refuses
  // votes for election_tick of its own ticks after receiving it, which is at
  // least election_tick * (1 - drift) of ours. One tick is taken off each
  // side for the granularity of ticks.
  const auto lease_ticks = static_cast<uint64_t>(
      std::floor(config_.election_tick * (1.0 - config_.max_clock_drift_ratio)));
  if (lease_ticks < 2) return false;
  const uint64_t stamp = tracker_.quorum_lease_stamp(id_, now_ticks_ + 1);
  if (stamp == 0) return false;
  const uint64_t elapsed = now_ticks_ + 1 - stamp;
  return elapsed + 1 < lease_ticks - 1;
}

// ---------------------------------------------------------------------------
// Leadership transfer

void Raft::handle_transfer_leader(const Message& m) {
  const NodeId transferee = m.from;
  auto it = tracker_.progress.find(transferee);
  if (it == tracker_.progress.end() || it->second.is_learner) return;
  if (!lead_transferee_.is_none()) {
    if (lead_transferee_ == transferee) return;  // already under way
    abort_leader_transfer();
  }
  if (transferee == id_) return;
  // The transfer must finish within an election timeout or is abandoned.
  election_elapsed_ = 0;
  lead_transferee_ = transferee;
  if (it->second.match == log_.last_index()) {
    send_timeout_now(transferee);
  } else {
    maybe_send_append(transferee, true);
  }
}

void Raft::send_timeout_now(NodeId to) {
  lease_waived_ = true;
  Message m;
  m.to = to;
  m.type = MessageType::kTimeoutNow;
  send(std::move(m));
}

// ---------------------------------------------------------------------------
// Membership

ConfState Raft::apply_conf_change(const ConfChange& change) {
  Changer changer(tracker_, log_.last_index());
  base::Result<std::pair<TrackerConfig, ProgressMap>> next = Error(Errc::kOk);
  bool auto_leave = false;
  if (change.leaves_joint()) {
    next = changer.leave_joint();
  } else if (change.enters_joint(&auto_leave)) {
    next = changer.enter_joint(auto_leave, change.changes);
  } else {
    next = changer.simple(change.changes);
  }
  if (!next.ok()) {
    // Every replica applies the same entries and reaches the same verdict,
    // so skipping an invalid change keeps them consistent.
    return tracker_.config.to_conf_state();
  }
  return switch_to_config(std::move(next->first), std::move(next->second));
}

ConfState Raft::switch_to_config(TrackerConfig config, ProgressMap progress) {
  tracker_.config = std::move(config);
  tracker_.progress = std::move(progress);
  const ConfState state = tracker_.config.to_conf_state();
  auto self = tracker_.progress.find(id_);
  const bool voter = self != tracker_.progress.end() && !self->second.is_learner;
  if (!voter && role_ == Role::kLeader) {
    // Removed or demoted: a leader that is not a voter must not lead.
    if (config_.step_down_on_removal) become_follower(term_, kNone);
    return state;
  }
  if (role_ != Role::kLeader || state.voters.empty()) return state;
  if (maybe_commit()) {
    // The quorum shrank and more entries are now committed.
    on_commit_advanced();
    bcast_append();
  } else {
    for (auto& [id, pr] : tracker_.progress) {
      if (id == id_) continue;
      maybe_send_append(id, false);
    }
  }
  if (!lead_transferee_.is_none() && !tracker_.is_voter(lead_transferee_)) abort_leader_transfer();
  return state;
}

// ---------------------------------------------------------------------------

base::Status Raft::check_invariants() const {
  auto broken = [](const std::string& why) { return base::Status(Error(Errc::kCorruption, why)); };
  if (log_.applied() > log_.committed()) return broken("applied index is past the commit index");
  if (log_.committed() > log_.last_index()) return broken("commit index is past the last index");
  if (log_.first_index() > log_.last_index() + 1) return broken("first index is past last index + 1");
  if (role_ == Role::kLeader) {
    if (leader_ != id_) return broken("a leader must name itself leader");
    if (vote_ != id_) return broken("a leader must have voted for itself in its term");
    if (!tracker_.is_member(id_)) return broken("a leader must be a member");
    if (log_.last_term() != term_) {
      return broken("a leader's last entry must be of its term (it appends one on election)");
    }
    for (const auto& [id, pr] : tracker_.progress) {
      if (pr.match > log_.last_index()) return broken("a follower matches past the leader's log");
      if (pr.state == ProgressState::kReplicate && pr.next <= pr.match) {
        return broken("replicating with next at or below match");
      }
    }
  }
  if (role_ == Role::kCandidate && vote_ != id_) return broken("a candidate votes for itself");
  if (log_.term_or_zero(log_.last_index()) > term_ && role_ == Role::kLeader) {
    return broken("log holds an entry from a future term");
  }
  return {};
}

void Raft::send(Message m) {
  m.group = group_;
  if (m.from.is_none()) m.from = id_;
  const bool vote_traffic = m.type == MessageType::kVote || m.type == MessageType::kVoteResp ||
                            m.type == MessageType::kPreVote ||
                            m.type == MessageType::kPreVoteResp;
  if (vote_traffic) {
    SYNOD_ASSERT(m.term != Term{0}, "vote traffic must name its term");
  } else if (m.type != MessageType::kPropose && m.type != MessageType::kReadIndex) {
    m.term = term_;
  }
  // A leader's messages do not promise anything about its own disk, so they
  // may go at once; the rest acknowledge state that must be durable first.
  // (A leader's term is durable before it could win, except for a single
  // voter: RawNode holds its messages until its term is durable.)
  if (role_ == Role::kLeader) {
    messages_.push_back(std::move(m));
  } else {
    messages_after_persist_.push_back(std::move(m));
  }
}

}  // namespace synod::raft
