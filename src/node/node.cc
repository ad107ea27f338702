#include "node/node.h"

#include <algorithm>

#include "base/assert.h"
#include "raft/confchange.h"
#include "raft/raft.h"
#include "raft/storage.h"

namespace synod::node {

using base::Error;
using base::Errc;
using raft::NodeId;

std::string_view response_status_name(Response::Status status) {
  switch (status) {
    case Response::Status::kOk: return "ok";
    case Response::Status::kUnavailable: return "unavailable";
    case Response::Status::kTimeout: return "timeout";
  }
  return "?";
}

namespace {

// ReadIndex contexts carry the node's incarnation and the request's handle,
// 8 bytes little-endian each.
base::Bytes read_context(uint64_t incarnation, uint64_t handle) {
  std::string bytes(16, '\0');
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>(incarnation >> (8 * i));
    bytes[8 + i] = static_cast<char>(handle >> (8 * i));
  }
  return base::Bytes(std::move(bytes));
}

std::optional<uint64_t> read_handle(uint64_t incarnation, const base::Bytes& context) {
  if (context.size() != 16) return std::nullopt;
  uint64_t words[2] = {0, 0};
  for (int i = 0; i < 16; ++i) {
    words[i / 8] |= uint64_t{static_cast<uint8_t>(context.view()[i])} << (8 * (i % 8));
  }
  if (words[0] != incarnation) return std::nullopt;
  return words[1];
}

Response error_reply(std::string message) {
  Response response;
  response.reply.kind = CommandReply::Kind::kError;
  response.reply.error = std::move(message);
  return response;
}

}  // namespace

Response unavailable(std::string reason) {
  Response response;
  response.status = Response::Status::kUnavailable;
  response.reason = std::move(reason);
  return response;
}

Node::Node(NodeOptions options, KvEngine* engine)
    : options_(std::move(options)), engine_(engine) {}

base::Result<std::unique_ptr<Node>> Node::create(NodeOptions options, KvEngine* engine) {
  if (options.raft.storage == nullptr) return Error(Errc::kInvalidArgument, "node needs a log");
  if (options.request_timeout_ticks == 0) {
    return Error(Errc::kInvalidArgument, "request_timeout_ticks must be positive");
  }
  std::unique_ptr<Node> node(new Node(std::move(options), engine));
  base::Status started = node->start();
  if (!started.ok()) return started.error();
  return node;
}

base::Status Node::start() {
  machine_ = std::make_unique<KvStateMachine>(options_.raft.group, engine_);
  machine_->set_bugs(options_.bugs);
  base::Status loaded = machine_->load();
  if (!loaded.ok()) return loaded;
  // Raft starts with the configuration of the log's snapshot marker and
  // delivers every committed entry after it again: configuration changes
  // the engine already applied must reach Raft too (the engine may also be
  // ahead of the durable commit index, synced for a compaction while the
  // hard state that followed was lost). The machine skips what it has.
  auto initial = options_.raft.storage->initial_state();
  if (!initial) return initial.error();
  const raft::LogIndex first = options_.raft.storage->first_index();
  compacted_ = raft::LogIndex{first.value() - 1};
  options_.raft.applied = std::min(compacted_, initial->hard_state.commit);
  options_.raft.bugs = options_.bugs;
  if (machine_->applied().index < compacted_) {
    return Error(Errc::kCorruption,
                 "the state machine has applied up to " +
                     std::to_string(machine_->applied().index.value()) +
                     " but the log starts after " + std::to_string(compacted_.value()) +
                     ": entries in between are lost");
  }
  auto raw = raft::RawNode::create(options_.raft);
  if (!raw) return raw.error();
  raw_ = std::move(*raw);
  return {};
}

void Node::tick() {
  if (failed_) return;
  ++now_tick_;
  raw_->tick();
  expire();
  dispatch_waiting();
  pump();
}

void Node::receive(NodeId from, PeerMessage message) {
  if (failed_) return;
  if (auto* m = std::get_if<raft::Message>(&message)) {
    (void)raw_->step(*m);  // a stale or malformed message changes nothing
  } else if (auto* forward = std::get_if<ForwardRequest>(&message)) {
    if (raw_->raft().role() != raft::Role::kLeader) {
      send(from, ForwardReply{forward->incarnation, forward->id,
                              unavailable("node " + std::to_string(id().value()) +
                                          " is not the leader")});
    } else {
      admit(from, forward->incarnation, forward->id, std::move(forward->request),
            std::min(forward->ticks_left, timeout_ticks(forward->request)));
    }
  } else if (auto* reply = std::get_if<ForwardReply>(&message)) {
    auto it = pending_.find(reply->id);
    if (reply->incarnation == options_.incarnation && it != pending_.end() &&
        it->second.stage == Stage::kForwarded &&
        it->second.forwarded_to == from) {
      if (reply->response.status == Response::Status::kUnavailable) {
        it->second.stage = Stage::kWaiting;  // try again on the next tick
      } else {
        finish(reply->id, std::move(reply->response));
      }
    }
  }
  pump();
}

void Node::submit(uint64_t id, Request request) {
  if (failed_) return;
  const uint64_t ticks = timeout_ticks(request);
  admit(NodeId{}, 0, id, std::move(request), ticks);
  pump();
}

base::Status Node::propose_conf_change(const raft::ConfChange& change) {
  if (failed_) return *failed_;
  base::Status proposed = raw_->propose_conf_change(change);
  pump();
  return proposed;
}

void Node::transfer_leader(raft::NodeId to) {
  if (failed_) return;
  raw_->transfer_leader(to);
  pump();
}

void Node::persisted() {
  SYNOD_ASSERT(persist_outstanding_, "persisted() without a write in flight");
  persist_outstanding_ = false;
  if (in_flight_) finish_ready();
  pump();
}

NodeId Node::leader() const { return raw_->raft().leader(); }

NodeOutput Node::take_output() {
  if (!failed_ && !queued_.empty()) {
    propose_queued();
    pump();
  }
  return std::exchange(output_, NodeOutput{});
}

// ---- Requests --------------------------------------------------------------

uint64_t Node::timeout_ticks(const Request& request) const {
  if (request.kind != Request::Kind::kWrite) return options_.request_timeout_ticks;
  const uint64_t bytes = request.command.key.size() + request.command.value.size() +
                         request.command.expected.size();
  return options_.request_timeout_ticks + (bytes >> 20) * options_.request_timeout_ticks_per_mib;
}

void Node::admit(NodeId origin, uint64_t origin_incarnation, uint64_t origin_id,
                 Request request, uint64_t ticks) {
  auto reject = [&](Response response) {
    if (origin.is_none()) {
      output_.responses.emplace_back(origin_id, std::move(response));
    } else {
      send(origin, ForwardReply{origin_incarnation, origin_id, std::move(response)});
    }
  };
  const std::string& key =
      request.kind == Request::Kind::kRead ? request.key : request.command.key;
  if (key.size() > kMaxUserKeyBytes) {
    return reject(error_reply("ERR key is " + std::to_string(key.size()) +
                              " bytes; the limit is " + std::to_string(kMaxUserKeyBytes)));
  }
  if (request.kind == Request::Kind::kWrite && request.command.client_id == 0) {
    return reject(error_reply("ERR a write needs a client session (client id)"));
  }
  if (pending_.size() >= options_.pending_requests_max) {
    return reject(unavailable("node " + std::to_string(id().value()) + " has " +
                              std::to_string(pending_.size()) + " requests open"));
  }
  const uint64_t handle = next_handle_++;
  Pending& p = pending_[handle];
  p.origin = origin;
  p.origin_incarnation = origin_incarnation;
  p.origin_id = origin_id;
  p.request = std::move(request);
  p.deadline_tick = now_tick_ + std::max<uint64_t>(ticks, 1);
  dispatch(handle);
}

void Node::dispatch(uint64_t handle) {
  Pending& p = pending_.at(handle);
  const raft::Raft& raft = raw_->raft();
  if (raft.role() == raft::Role::kLeader) {
    if (p.request.kind == Request::Kind::kWrite) {
      p.stage = Stage::kQueued;
      queued_.push_back(handle);
      return;
    }
    if (SYNOD_BUG(options_.bugs, base::Bug::kStaleLeaderRead)) {
      auto value = machine_->get(p.request.key, p.request.now_ms);
      if (!value) return fail(value.error());
      Response response;
      response.value = std::move(*value);
      return finish(handle, std::move(response));
    }
    p.stage = Stage::kReading;
    p.left_node = true;
    raw_->read_index(read_context(options_.incarnation, handle));
    return;
  }
  const NodeId leader = raft.leader();
  if (!leader.is_none() && leader != id()) {
    p.stage = Stage::kForwarded;
    p.forwarded_to = leader;
    p.left_node = true;
    send(leader, ForwardRequest{options_.incarnation, handle, p.request,
                                p.deadline_tick - now_tick_});
    return;
  }
  p.stage = Stage::kWaiting;
}

void Node::dispatch_waiting() {
  const raft::Raft& raft = raw_->raft();
  const bool leading = raft.role() == raft::Role::kLeader;
  std::vector<uint64_t> again;
  for (auto& [handle, p] : pending_) {
    const bool stranded =
        // Proposed or asked for a read as leader, and no longer leading: the
        // new leader is asked (a write's dedupe id makes that safe).
        ((p.stage == Stage::kProposed || p.stage == Stage::kReading ||
          p.stage == Stage::kQueued) && !leading) ||
        // Sent to a node that is no longer the leader we know.
        (p.stage == Stage::kForwarded && p.forwarded_to != raft.leader() &&
         !raft.leader().is_none());
    if (p.stage == Stage::kWaiting || stranded) again.push_back(handle);
  }
  for (uint64_t handle : again) {
    Pending& p = pending_.at(handle);
    if (p.origin != NodeId{} && !leading) {
      // A forwarded request is served only by a leader; the forwarder
      // retries. One already proposed here may still commit: its outcome is
      // unknown, not "never proposed".
      if (p.left_node) {
        Response response;
        response.status = Response::Status::kTimeout;
        response.reason = "node " + std::to_string(id().value()) +
                          " lost leadership after proposing the request";
        finish(handle, std::move(response));
      } else {
        finish(handle, unavailable("node " + std::to_string(id().value()) + " lost leadership"));
      }
      continue;
    }
    if (p.stage == Stage::kProposed) forget_write(handle, p.request);
    dispatch(handle);
  }
}

void Node::propose_queued() {
  std::vector<uint64_t> handles;
  std::vector<base::Bytes> batch;
  for (uint64_t handle : std::exchange(queued_, {})) {
    auto it = pending_.find(handle);
    if (it == pending_.end() || it->second.stage != Stage::kQueued) continue;
    it->second.stage = Stage::kWaiting;  // until proposed (and so queued once)
    handles.push_back(handle);
    batch.emplace_back(encode_command(it->second.request.command));
  }
  if (handles.empty()) return;
  const bool leading = raw_->raft().role() == raft::Role::kLeader;
  if (!leading || !raw_->propose(std::move(batch)).ok()) {
    // Leadership went, or the proposal was dropped (a transfer, the
    // uncommitted cap): they never left this node; the next tick retries.
    return;
  }
  for (uint64_t handle : handles) {
    Pending& p = pending_.at(handle);
    p.stage = Stage::kProposed;
    p.left_node = true;
    writes_[{p.request.command.client_id, p.request.command.sequence}].push_back(handle);
  }
}

void Node::finish(uint64_t handle, Response response) {
  auto it = pending_.find(handle);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.request.kind == Request::Kind::kWrite) forget_write(handle, p.request);
  if (p.origin.is_none()) {
    output_.responses.emplace_back(p.origin_id, std::move(response));
  } else {
    send(p.origin, ForwardReply{p.origin_incarnation, p.origin_id, std::move(response)});
  }
}

void Node::forget_write(uint64_t handle, const Request& request) {
  auto it = writes_.find({request.command.client_id, request.command.sequence});
  if (it == writes_.end()) return;
  std::erase(it->second, handle);
  if (it->second.empty()) writes_.erase(it);
}

void Node::expire() {
  std::vector<uint64_t> expired;
  for (const auto& [handle, p] : pending_) {
    if (p.deadline_tick <= now_tick_) expired.push_back(handle);
  }
  for (uint64_t handle : expired) {
    const Pending& p = pending_.at(handle);
    Response response;
    if (p.left_node) {
      response.status = Response::Status::kTimeout;
      response.reason = "no answer within the request deadline; the request may still take effect";
    } else {
      response = unavailable("no leader known within the request deadline");
    }
    finish(handle, std::move(response));
  }
}

void Node::serve_reads() {
  const raft::LogIndex applied = machine_->applied().index;
  std::vector<uint64_t> ready;
  for (const auto& [handle, p] : pending_) {
    if (p.stage == Stage::kReadReady && p.read_index <= applied) ready.push_back(handle);
  }
  for (uint64_t handle : ready) {
    const Pending& p = pending_.at(handle);
    auto value = machine_->get(p.request.key, p.request.now_ms);
    if (!value) return fail(value.error());
    Response response;
    response.value = std::move(*value);
    response.reply.integer = static_cast<int64_t>(p.read_index.value());
    finish(handle, std::move(response));
  }
}

// ---- Raft ------------------------------------------------------------------

void Node::pump() {
  if (!failed_ && persist_outstanding_) {
    // Pipelining: a leader's appends of entries proposed since the Ready in
    // flight go out now, not after its fsync.
    for (raft::Message& m : raw_->take_messages()) send(m.to, std::move(m));
  }
  while (!failed_ && !persist_outstanding_) {
    if (raw_->has_ready()) {
      take_ready();
      continue;  // a Ready with nothing to persist is finished at once
    }
    if (compact_wanted_) {
      PersistRequest request;
      request.compact = std::exchange(compact_wanted_, std::nullopt);
      output_.persist = std::move(request);
      persist_outstanding_ = true;
    }
    break;
  }
}

void Node::take_ready() {
  raft::Ready rd = raw_->ready();
  for (raft::Message& m : rd.messages) send(m.to, std::move(m));
  rd.messages.clear();
  if (rd.snapshot) {
    // The engine holds the snapshot durably before the log says it starts
    // after it; a crash in between replays entries the engine skips.
    base::Status installed = machine_->install(*rd.snapshot, {.sync = true});
    if (!installed.ok()) return fail(installed.error());
    compacted_ = std::max(compacted_, rd.snapshot->meta.index);
  }
  if (SYNOD_BUG(options_.bugs, base::Bug::kAckBeforeFsync)) {
    for (raft::Message& m : rd.messages_after_persist) send(m.to, std::move(m));
    rd.messages_after_persist.clear();
  }
  for (const raft::ReadState& state : rd.read_states) {
    const std::optional<uint64_t> handle = read_handle(options_.incarnation, state.context);
    if (!handle) continue;
    auto it = pending_.find(*handle);
    if (it != pending_.end() && it->second.stage == Stage::kReading) {
      it->second.stage = Stage::kReadReady;
      it->second.read_index = state.index;
    }
  }
  // Committed entries below this Ready's first new one are durable here: the
  // previous Ready was persisted before this one was taken. (Committed alone
  // would not do: a leader can commit on its followers' acknowledgements
  // before its own disk has the entry.) Applying them now, beside this
  // Ready's own write, saves a client one fsync of waiting.
  const bool apply_now =
      !rd.committed_entries.empty() &&
      (rd.entries.empty() || rd.committed_entries.back().index < rd.entries.front().index);
  if (apply_now) {
    apply(rd.committed_entries);
    if (failed_) return;
    rd.committed_entries.clear();
    serve_reads();
  }
  PersistRequest request;
  request.hard_state = rd.hard_state;
  request.entries = rd.entries;
  if (rd.snapshot) request.snapshot = rd.snapshot->meta;
  request.compact = std::exchange(compact_wanted_, std::nullopt);
  request.sync = rd.must_sync || rd.snapshot.has_value();
  in_flight_ = std::move(rd);
  if (!request.hard_state && request.entries.empty() && !request.snapshot && !request.compact) {
    finish_ready();
    return;
  }
  output_.persist = std::move(request);
  persist_outstanding_ = true;
}

void Node::finish_ready() {
  raft::Ready rd = std::move(*in_flight_);
  in_flight_.reset();
  for (raft::Message& m : rd.messages_after_persist) send(m.to, std::move(m));
  if (!rd.committed_entries.empty()) {
    apply(rd.committed_entries);
    if (failed_) return;
  }
  raw_->advance();
  serve_reads();
  maybe_compact();
}

void Node::apply(const std::vector<raft::Entry>& entries) {
  // Raft learns every configuration change it delivers, even one the
  // engine already holds from before a restart (Raft's configuration came
  // back from the last snapshot marker, which may predate it); the machine
  // skips the entries it has.
  std::optional<raft::ConfState> conf;
  for (const raft::Entry& entry : entries) {
    if (entry.type != raft::EntryType::kConfChange) continue;
    auto change = raft::decode_conf_change(entry.data.view());
    if (!change) continue;  // every replica skips the same bytes
    conf = raw_->apply_conf_change(*change);
  }
  auto results = machine_->apply(entries, conf ? &*conf : nullptr);
  if (!results) return fail(results.error());
  for (const AppliedEntry& applied : *results) {
    if (!applied.reply || applied.client_id == 0) continue;
    auto it = writes_.find({applied.client_id, applied.sequence});
    if (it == writes_.end()) continue;
    const std::vector<uint64_t> handles = it->second;
    for (uint64_t handle : handles) {
      Response response;
      response.reply = *applied.reply;
      finish(handle, std::move(response));
    }
  }
  if (options_.report_applied) {
    output_.applied.insert(output_.applied.end(), entries.begin(), entries.end());
  }
}

void Node::maybe_compact() {
  const AppliedState& applied = machine_->applied();
  if (options_.compact_every_entries == 0 ||
      applied.index.value() < compacted_.value() + options_.compact_every_entries) {
    return;
  }
  // After a crash the engine may be ahead of Raft (a snapshot installed in
  // the engine whose WAL marker was lost): Raft re-delivers those entries
  // and the machine skips them. Until Raft has applied up to the engine,
  // compacting to the engine's index would drop entries Raft still needs.
  if (applied.index > raw_->raft().log().applied()) return;
  // The log may drop only what the engine holds durably.
  base::Status synced = engine_->sync();
  if (!synced.ok()) return fail(synced.error());
  compact_wanted_ = raft::SnapshotMeta{applied.index, applied.term, applied.conf_state};
  compacted_ = applied.index;
}

void Node::fail(const Error& error) {
  if (!failed_) failed_ = error;
}

void Node::send(NodeId to, PeerMessage message) {
  if (auto* f = std::get_if<ForwardRequest>(&message)) f->group = options_.raft.group.value();
  if (auto* r = std::get_if<ForwardReply>(&message)) r->group = options_.raft.group.value();
  output_.messages.push_back(Envelope{to, std::move(message)});
}

uint64_t group_of(const PeerMessage& message) {
  if (const auto* m = std::get_if<raft::Message>(&message)) return m->group.value();
  if (const auto* f = std::get_if<ForwardRequest>(&message)) return f->group;
  if (const auto* c = std::get_if<MembershipCheck>(&message)) return c->group;
  return std::get<ForwardReply>(message).group;
}

}  // namespace synod::node
