#include "raft/raw_node.h"

#include "base/assert.h"
#include "raft/raft.h"

namespace synod::raft {

using base::Errc;
using base::Error;

base::Result<std::unique_ptr<RawNode>> RawNode::create(const Config& config) {
  auto raft = Raft::create(config);
  if (!raft.ok()) return raft.error();
  return std::unique_ptr<RawNode>(new RawNode(std::move(raft).value()));
}

RawNode::RawNode(std::unique_ptr<Raft> raft) : raft_(std::move(raft)) {
  prev_soft_state_ = raft_->soft_state();
  prev_hard_state_ = raft_->hard_state();
  persisted_term_ = prev_hard_state_.term;
}

RawNode::~RawNode() = default;

void RawNode::tick() { raft_->tick(); }

base::Status RawNode::campaign() {
  Message m;
  m.type = MessageType::kHup;
  m.from = raft_->id();
  m.group = raft_->group();
  return raft_->step(std::move(m));
}

base::Status RawNode::step(const Message& message) {
  if (is_local_message(message.type)) {
    return Error(Errc::kInvalidArgument, std::string("local message type ") +
                                             std::string(message_type_name(message.type)) +
                                             " cannot arrive from the network");
  }
  if (is_response_message(message.type) && !raft_->tracker().is_member(message.from)) {
    return Error(Errc::kStepPeerNotFound, "response from node " +
                                              std::to_string(message.from.value()) +
                                              ", which is not a member");
  }
  return raft_->step(message);
}

std::vector<Message> RawNode::take_messages() {
  if (raft_->term() != persisted_term_) return {};
  std::vector<Message> out = std::move(raft_->messages_);
  raft_->messages_.clear();
  return out;
}

base::Status RawNode::propose(Bytes data) {
  std::vector<Bytes> one;
  one.push_back(std::move(data));
  return propose(std::move(one));
}

base::Status RawNode::propose(std::vector<Bytes> batch) {
  Message m;
  m.type = MessageType::kPropose;
  m.from = raft_->id();
  m.group = raft_->group();
  m.entries.reserve(batch.size());
  for (Bytes& data : batch) {
    Entry e;
    e.data = std::move(data);
    m.entries.push_back(std::move(e));
  }
  return raft_->step(std::move(m));
}

base::Status RawNode::propose_conf_change(const ConfChange& change) {
  Message m;
  m.type = MessageType::kPropose;
  m.from = raft_->id();
  m.group = raft_->group();
  Entry e;
  e.type = EntryType::kConfChange;
  e.data = Bytes(encode_conf_change(change));
  m.entries.push_back(std::move(e));
  return raft_->step(std::move(m));
}

ConfState RawNode::apply_conf_change(const ConfChange& change) {
  return raft_->apply_conf_change(change);
}

void RawNode::read_index(Bytes context) {
  Message m;
  m.type = MessageType::kReadIndex;
  m.from = raft_->id();
  m.group = raft_->group();
  m.context = std::move(context);
  (void)raft_->step(std::move(m));
}

void RawNode::transfer_leader(NodeId transferee) {
  Message m;
  m.type = MessageType::kTransferLeader;
  m.group = raft_->group();
  // By convention the transferee is the sender: it is who asks to lead.
  m.from = transferee;
  (void)raft_->step(std::move(m));
}

void RawNode::report_unreachable(NodeId id) {
  Message m;
  m.type = MessageType::kUnreachable;
  m.from = id;
  (void)raft_->step(std::move(m));
}

void RawNode::report_snapshot(NodeId id, bool failed) {
  Message m;
  m.type = MessageType::kSnapStatus;
  m.from = id;
  m.reject = failed;
  (void)raft_->step(std::move(m));
}

bool RawNode::has_ready() const {
  if (in_progress_) return false;  // the host must advance() first
  const Raft& r = *raft_;
  if (r.soft_state() != prev_soft_state_) return true;
  const HardState hs = r.hard_state();
  if (!hs.is_empty() && hs != prev_hard_state_) return true;
  if (r.log().has_pending_snapshot()) return true;
  if (!r.log().unstable_entries().empty()) return true;
  if (r.log().has_next_committed_entries()) return true;
  return !r.messages_.empty() || !r.messages_after_persist_.empty() || !r.read_states_.empty();
}

Ready RawNode::ready() {
  SYNOD_ASSERT(!in_progress_, "ready() called again before advance()");
  Raft& r = *raft_;
  Ready rd;
  rd.entries = r.log().unstable_entries();
  rd.committed_entries = r.log().next_committed_entries();
  const SoftState soft = r.soft_state();
  if (soft != prev_soft_state_) rd.soft_state = soft;
  const HardState hard = r.hard_state();
  if (hard != prev_hard_state_) rd.hard_state = hard;
  if (r.log().unstable_snapshot()) rd.snapshot = *r.log().unstable_snapshot();
  rd.messages = std::move(r.messages_);
  r.messages_.clear();
  rd.messages_after_persist = std::move(r.messages_after_persist_);
  r.messages_after_persist_.clear();
  rd.read_states = std::move(r.read_states_);
  r.read_states_.clear();
  if (hard.term != persisted_term_) {
    // This Ready makes the term durable: until it has, nothing may leave
    // that a restart could contradict (see persisted_term_).
    rd.messages.insert(rd.messages.end(), std::make_move_iterator(rd.messages_after_persist.begin()),
                       std::make_move_iterator(rd.messages_after_persist.end()));
    rd.messages_after_persist = std::move(rd.messages);
    rd.messages.clear();
  }
  // A changed commit index alone need not be synced: it can be recomputed.
  rd.must_sync = !rd.entries.empty() || rd.snapshot.has_value() ||
                 hard.term != prev_hard_state_.term || hard.vote != prev_hard_state_.vote;

  prev_soft_state_ = soft;
  prev_hard_state_ = hard;
  InProgress accepted;
  if (!rd.entries.empty()) {
    accepted.last_entry_index = rd.entries.back().index;
    accepted.last_entry_term = rd.entries.back().term;
  }
  if (rd.snapshot) accepted.snapshot_index = rd.snapshot->meta.index;
  if (rd.hard_state) accepted.hard_state_term = rd.hard_state->term;
  if (!rd.committed_entries.empty()) {
    accepted.last_committed_index = rd.committed_entries.back().index;
    for (const Entry& e : rd.committed_entries) accepted.committed_payload_bytes += e.data.size();
  }
  in_progress_ = std::move(accepted);
  return rd;
}

void RawNode::advance() {
  SYNOD_ASSERT(in_progress_.has_value(), "advance() without a ready()");
  InProgress done = std::move(*in_progress_);
  in_progress_.reset();
  Raft& r = *raft_;
  if (done.hard_state_term != Term{0}) persisted_term_ = done.hard_state_term;
  r.on_persisted(done.last_entry_index, done.last_entry_term, done.snapshot_index);
  if (done.snapshot_index > LogIndex{0}) r.on_applied(done.snapshot_index);
  if (done.last_committed_index > LogIndex{0}) {
    r.reduce_uncommitted(done.committed_payload_bytes);
    r.on_applied(done.last_committed_index);
  }
}

Status RawNode::status() const {
  const Raft& r = *raft_;
  Status s;
  s.id = r.id();
  s.group = r.group();
  s.hard_state = r.hard_state();
  s.soft_state = r.soft_state();
  s.applied = r.log().applied();
  s.last_index = r.log().last_index();
  s.lead_transferee = r.lead_transferee();
  s.conf_state = r.tracker().config.to_conf_state();
  if (r.role() == Role::kLeader) {
    for (const auto& [id, pr] : r.tracker().progress) {
      s.progress.push_back({id, pr.match, pr.next, progress_state_name(pr.state), pr.is_learner});
    }
  }
  return s;
}

}  // namespace synod::raft
