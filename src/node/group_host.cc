#include "node/group_host.h"

#include <algorithm>

#include "raft/raft.h"

namespace synod::node {

using base::Errc;
using base::Error;

namespace {

constexpr uint64_t kMetaGroup = kMetaGroupId;
constexpr uint64_t kFirstPartitionGroup = 2;
// Learners a node catches up at once, across the groups it leads: a bound
// on the snapshot traffic rebalancing adds.
constexpr size_t kCatchUpsMax = 2;
// A learner whose match index has not moved for this long is taken out.
constexpr uint64_t kLearnerStallMs = 30'000;

Response unknown_outcome(std::string reason) {
  Response response;
  response.status = Response::Status::kTimeout;
  response.reason = std::move(reason);
  return response;
}

// Whether a configuration names `id` in any role (voter, learner, either
// side of a joint configuration).
bool names_member(const raft::ConfState& conf, raft::NodeId id) {
  for (const auto* ids : {&conf.voters, &conf.learners, &conf.voters_outgoing, &conf.learners_next}) {
    if (std::find(ids->begin(), ids->end(), id) != ids->end()) return true;
  }
  return false;
}

const std::string& key_of(const Request& request) {
  return request.kind == Request::Kind::kRead ? request.key : request.command.key;
}

// A new replica starts from a snapshot at index 1 whose configuration is
// `voters`, the same on every replica, so they agree on the members without
// an election. The engine may already hold that state (a crash came before
// the log record was durable); then only the record is written again.
base::Status add_bootstrap(KvEngine* engine, uint64_t group, const std::vector<uint64_t>& voters,
                           std::vector<std::pair<raft::GroupId, PersistRequest>>& requests) {
  raft::ConfState conf;
  for (uint64_t id : voters) conf.voters.push_back(raft::NodeId{id});
  KvStateMachine machine(raft::GroupId{group}, engine);
  if (auto s = machine.load(); !s) return s;
  if (machine.applied().index == raft::LogIndex{0}) {
    if (auto s = machine.bootstrap(AppliedState{raft::LogIndex{1}, raft::Term{1}, conf}); !s) {
      return s;
    }
  }
  PersistRequest request;
  request.snapshot = raft::SnapshotMeta{raft::LogIndex{1}, raft::Term{1}, conf};
  request.hard_state = raft::HardState{raft::Term{1}, raft::NodeId{}, raft::LogIndex{1}};
  request.sync = true;
  requests.emplace_back(raft::GroupId{group}, std::move(request));
  return {};
}

}  // namespace

base::Status GroupHost::bootstrap(const GroupHostOptions& options, KvEngine* engine,
                                  GroupLogs* logs) {
  std::vector<std::pair<raft::GroupId, PersistRequest>> requests;
  for (uint64_t g = kMetaGroup; g < kFirstPartitionGroup + options.default_partitions; ++g) {
    if (auto s = add_bootstrap(engine, g, options.members, requests); !s) return s;
  }
  return logs->persist_now(requests);
}

GroupHost::GroupHost(GroupHostOptions options, KvEngine* engine, GroupLogs* logs)
    : options_(std::move(options)), engine_(engine), logs_(logs) {
  incarnation_ = options_.random();
}

GroupHost::~GroupHost() = default;

base::Result<std::unique_ptr<GroupHost>> GroupHost::open(GroupHostOptions options,
                                                         KvEngine* engine, GroupLogs* logs,
                                                         uint64_t now_ms) {
  if (!options.random) return Error(Errc::kInvalidArgument, "GroupHost needs a random source");
  std::unique_ptr<GroupHost> host(new GroupHost(std::move(options), engine, logs));
  host->now_ms_ = now_ms;
  placement::Keyspace default_keyspace;
  default_keyspace.name = std::string(placement::kDefaultKeyspace);
  default_keyspace.partitions = host->options_.default_partitions;
  default_keyspace.replicas = static_cast<uint32_t>(host->options_.members.size());
  default_keyspace.first_group = kFirstPartitionGroup;
  placement::Placement everywhere;
  everywhere.replicas.assign(host->options_.default_partitions, host->options_.members);
  RouterOptions router = host->options_.router;
  router.bugs = host->options_.node.bugs;
  host->router_ = std::make_unique<CatalogRouter>(default_keyspace, std::move(everywhere), router);
  for (uint64_t g = kMetaGroup; g < kFirstPartitionGroup + host->options_.default_partitions; ++g) {
    if (auto s = host->start_group(g); !s) return s.error();
  }
  // The created keyspaces' replicas, as far as the meta group's applied
  // state knows them; the rest follow as it replays its log.
  if (auto s = host->refresh_catalog(now_ms); !s) return s.error();
  return host;
}

base::Status GroupHost::start_group(uint64_t id) {
  NodeOptions node_options = options_.node;
  node_options.raft.id = raft::NodeId{options_.node_id};
  node_options.raft.group = raft::GroupId{id};
  node_options.raft.storage = &logs_->storage(raft::GroupId{id});
  node_options.raft.random_seed = options_.random();
  node_options.incarnation = options_.random();
  auto made = Node::create(std::move(node_options), engine_);
  if (!made) return made.error();
  Group& group = groups_[id];
  group.node = std::move(*made);
  group.name = group_name(id);
  Node* process = group.node.get();
  logs_->set_snapshot_source(raft::GroupId{id},
                             [process] { return process->machine().snapshot(); });
  dirty_.insert(id);
  return {};
}

// ---- The catalog --------------------------------------------------------

base::Status GroupHost::refresh_catalog(uint64_t now_ms) {
  const KvStateMachine& meta = groups_.at(kMetaGroup).node->machine();
  catalog_version_seen_ = meta.catalog_version();
  auto read = read_catalog(meta);
  if (!read) return read.error();
  router_->update(std::move(*read), now_ms);
  wanted_ = router_->groups_of(options_.node_id);
  const std::map<uint64_t, std::vector<uint64_t>>& wanted = wanted_;
  std::vector<std::pair<raft::GroupId, PersistRequest>> created;
  std::vector<uint64_t> fresh;
  for (const auto& [g, voters] : wanted) {
    if (groups_.contains(g)) continue;
    if (logs_->has(raft::GroupId{g}) && retired_log(g)) {
      // A replica this node had and removed. Coming back needs its log
      // reset with its term and vote kept (not built yet): skipped.
      say(group_name(g) + ": this node held a replica before; not taking it again");
      continue;
    }
    if (!logs_->has(raft::GroupId{g})) {
      // A keyspace being created starts on its first placement, every
      // replica from the same configuration. A replica added later (a move)
      // starts empty: the group's leader adds it as a learner and sends it a
      // snapshot.
      const placement::Keyspace* keyspace = keyspace_of_group(g);
      if (keyspace != nullptr && keyspace->state == placement::KeyspaceState::kCreating) {
        if (auto s = add_bootstrap(engine_, g, voters, created); !s) return s;
      }
    }
    fresh.push_back(g);
  }
  // Replicas this node still holds a log of, of keyspaces that still exist,
  // start too even when the placement no longer names this node: until the
  // group's configuration no longer names it, it may be a voter holding
  // entries a quorum needs (mark_moved_away removes it when it may).
  for (raft::GroupId id : logs_->groups()) {
    const uint64_t g = id.value();
    if (g < kFirstKeyspaceGroup || groups_.contains(g) || wanted.contains(g)) continue;
    if (keyspace_of_group(g) == nullptr || retired_log(g)) continue;
    fresh.push_back(g);
  }
  if (!created.empty()) {
    if (auto s = logs_->persist_now(created); !s) return s;
  }
  for (uint64_t g : fresh) {
    if (auto s = start_group(g); !s) return s;
    say(group_name(g) + ": replica started");
  }
  mark_moved_away();
  retire_groups();
  return {};
}

const placement::Keyspace* GroupHost::keyspace_of_group(uint64_t group) const {
  return router_->catalog().keyspace_of_group(group);
}

// Replicas this node holds that the catalog no longer gives it: gone with
// their keyspace, or moved away. A moved replica stays until its group's
// configuration (as this replica has applied it) no longer names this node:
// until then it may be needed for a quorum, or to hand the data on.
void GroupHost::mark_moved_away() {
  const std::map<uint64_t, std::vector<uint64_t>>& wanted = wanted_;
  const raft::NodeId self{options_.node_id};
  for (auto& [g, group] : groups_) {
    if (g < kFirstKeyspaceGroup || wanted.contains(g) || group.retiring) continue;
    if (keyspace_of_group(g) != nullptr) {
      if (names_member(group.node->raw().raft().tracker().config.to_conf_state(), self)) continue;
      group.retiring = true;
      say(group.name + ": moved to other nodes; removing this replica");
      continue;
    }
    group.retiring = true;
    say(group.name + ": its keyspace is gone; removing this replica");
  }
}

// A forgotten keyspace's replica goes once no write of its is in flight.
void GroupHost::retire_groups() {
  for (auto it = groups_.begin(); it != groups_.end() && !failed_;) {
    Group& group = it->second;
    const uint64_t g = it->first;
    if (!group.retiring || group.persisting) {
      ++it;
      continue;
    }
    removed_.emplace_back(g, group.node->machine().applied());
    if (auto s = retire(g); !s) return fail(s.error());
    for (auto r = submitted_to_.begin(); r != submitted_to_.end();) {
      if (r->second != g) {
        ++r;
        continue;
      }
      if (r->first < kHostIdsEnd) {
        answers_.emplace_back(r->first,
                              unknown_outcome("the keyspace was dropped while the request was open"));
      }
      r = submitted_to_.erase(r);
    }
    dirty_.erase(g);
    say(group.name + ": replica removed");
    it = groups_.erase(it);
  }
}

// A log cut back past its start with no configuration: the replica was
// removed. (A replica added by a move has no configuration either until its
// snapshot arrives, but its log still starts at 1.)
bool GroupHost::retired_log(uint64_t group) {
  raft::Storage& storage = logs_->storage(raft::GroupId{group});
  auto initial = storage.initial_state();
  return initial && storage.first_index() > raft::LogIndex{1} &&
         initial->conf_state.voters.empty() && initial->conf_state.learners.empty();
}

// The engine is synced first, so the catalog change that made the replica
// go is durable before its log says it went (a power cut cannot bring back
// a catalog that wants a replica whose log is gone). The log is cut back to
// nothing, so it pins no WAL segment; then the data goes.
base::Status GroupHost::retire(uint64_t group) {
  const raft::GroupId id{group};
  if (auto s = engine_->sync(); !s) return s;
  raft::Storage& storage = logs_->storage(id);
  const raft::LogIndex last = storage.last_index();
  auto term = storage.term(last);
  PersistRequest cut;
  cut.snapshot = raft::SnapshotMeta{last, term ? *term : raft::Term{0}, {}};
  cut.sync = true;
  if (auto s = logs_->persist_now({{id, cut}}); !s) return s;
  logs_->set_snapshot_source(id, nullptr);
  KvStateMachine machine(id, engine_);
  return machine.remove_all();
}

// Once the catalog is first confirmed: replicas of forgotten keyspaces
// that a crash kept from being removed. A group in the logs whose keyspace
// the confirmed catalog does not have was forgotten (it was started only
// after its creation was applied here, and group ids are never reused);
// one already cut back may still have data if the crash came between the
// two steps. (A replica of a keyspace that still exists is started instead,
// and goes only once its group's configuration lets it.)
void GroupHost::retire_leftovers() {
  if (leftovers_checked_) return;
  leftovers_checked_ = true;
  const std::map<uint64_t, std::vector<uint64_t>>& wanted = wanted_;
  for (raft::GroupId id : logs_->groups()) {
    const uint64_t g = id.value();
    if (g < kFirstKeyspaceGroup || groups_.contains(g) || wanted.contains(g)) continue;
    if (keyspace_of_group(g) != nullptr) continue;
    base::Status done = retired_log(g) ? KvStateMachine(id, engine_).remove_all() : retire(g);
    if (!done) return fail(done.error());
  }
}

// On every keyspace group this node leads, one step at a time toward the
// catalog's target placement: a missing replica joins as a learner; once it
// has caught up it becomes a voter in the same joint change that removes a
// voter the target drops (so no moment has fewer voters, or a quorum that
// does not overlap the old one); voters left over go once every target is
// a voter, this node handing leadership on first if it is to go; learners
// the target does not want go. Raft refuses a change while the last one is
// not applied, and this waits for that too.
void GroupHost::drive_moves() {
  // Only by a confirmed catalog: a restarted leader whose meta replica lags
  // would otherwise drive its groups back toward an older placement.
  if (!router_->confirmed(now_ms_)) return;
  const raft::NodeId self{options_.node_id};
  // Learners this node is catching up now, across the groups it leads:
  // those that progressed within the stall limit (a learner on a dead node
  // does not hold the others up, and is taken out below).
  size_t catching_up = 0;
  for (auto& [g, group] : groups_) {
    if (g < kFirstKeyspaceGroup || group.retiring) continue;
    const raft::Raft& raft = group.node->raw().raft();
    if (raft.role() != raft::Role::kLeader) {
      group.learners.clear();
      continue;
    }
    for (raft::NodeId learner : raft.tracker().config.learners) {
      auto progress = raft.tracker().progress.find(learner);
      if (progress == raft.tracker().progress.end()) continue;
      LearnerWatch& watch = group.learners[learner.value()];
      if (watch.seen_ms == 0 || progress->second.match.value() > watch.match) {
        watch.match = progress->second.match.value();
        watch.progress_ms = now_ms_;
      }
      if (watch.seen_ms == 0) watch.seen_ms = now_ms_;
      // Caught up once it reaches what was committed when it first
      // replicated normally: a fixed goal, so a busy group's learner does
      // not chase a commit index that keeps moving.
      if (watch.goal == 0 && progress->second.state == raft::ProgressState::kReplicate) {
        watch.goal = std::max<uint64_t>(raft.log().committed().value(), 1);
      }
      if (now_ms_ - watch.progress_ms < kLearnerStallMs) ++catching_up;
    }
    std::erase_if(group.learners, [&](const auto& entry) {
      return !raft.tracker().config.learners.contains(raft::NodeId{entry.first});
    });
  }
  for (auto& [g, group] : groups_) {
    if (g < kFirstKeyspaceGroup || group.retiring) continue;
    Node& node = *group.node;
    const raft::Raft& raft = node.raw().raft();
    if (raft.role() != raft::Role::kLeader || !raft.lead_transferee().is_none()) continue;
    const placement::Keyspace* keyspace = keyspace_of_group(g);
    if (keyspace == nullptr || keyspace->state != placement::KeyspaceState::kActive) continue;
    const std::vector<uint64_t> target = router_->replicas_of(g);
    if (target.empty()) continue;
    if (raft.pending_conf_index() > raft.log().applied()) continue;
    const raft::ConfState conf = raft.tracker().config.to_conf_state();
    if (!conf.voters_outgoing.empty()) continue;  // leaving a joint configuration
    auto listed = [](const std::vector<raft::NodeId>& ids, raft::NodeId id) {
      return std::find(ids.begin(), ids.end(), id) != ids.end();
    };
    auto targeted = [&](raft::NodeId id) {
      return std::find(target.begin(), target.end(), id.value()) != target.end();
    };
    // A voter is caught up (for a leadership transfer) at the commit index;
    // a learner at its goal.
    auto caught_up = [&](raft::NodeId id) {
      auto it = raft.tracker().progress.find(id);
      if (it == raft.tracker().progress.end() ||
          it->second.state != raft::ProgressState::kReplicate) {
        return false;
      }
      auto watch = group.learners.find(id.value());
      if (watch != group.learners.end()) {
        return watch->second.goal != 0 && it->second.match.value() >= watch->second.goal;
      }
      return it->second.match >= raft.log().committed();
    };
    raft::ConfChange change;
    std::string what;
    for (uint64_t t : target) {
      const raft::NodeId id{t};
      if (listed(conf.voters, id) || listed(conf.learners, id)) continue;
      if (catching_up >= kCatchUpsMax) break;
      change.changes.push_back({raft::ConfChangeType::kAddLearnerNode, id});
      what = "adding node " + std::to_string(t) + " as a learner";
      ++catching_up;
      break;
    }
    for (raft::NodeId learner : conf.learners) {
      if (!change.changes.empty() || !targeted(learner)) continue;
      if (!caught_up(learner)) {
        const LearnerWatch& watch = group.learners[learner.value()];
        if (now_ms_ - watch.progress_ms >= kLearnerStallMs) {
          // No progress for a long while (its node is down, or refuses the
          // replica): out, so the group is not left with a dead member;
          // it is added again later.
          change.changes.push_back({raft::ConfChangeType::kRemoveNode, learner});
          what = "learner " + std::to_string(learner.value()) + " made no progress for " +
                 std::to_string(kLearnerStallMs / 1000) + " s; it leaves for now";
        }
        continue;
      }
      change.changes.push_back({raft::ConfChangeType::kAddNode, learner});
      what = "node " + std::to_string(learner.value()) + " caught up: it votes now";
      for (raft::NodeId voter : conf.voters) {
        if (!targeted(voter) && voter != self) {
          change.changes.push_back({raft::ConfChangeType::kRemoveNode, voter});
          what += ", and node " + std::to_string(voter.value()) + " leaves";
          break;
        }
      }
    }
    const bool all_targets_vote = std::all_of(target.begin(), target.end(), [&](uint64_t t) {
      return listed(conf.voters, raft::NodeId{t});
    });
    if (change.changes.empty() && all_targets_vote) {
      for (raft::NodeId voter : conf.voters) {
        if (targeted(voter)) continue;
        if (voter == self) {
          // To each caught-up target in turn: a transfer that does not
          // finish is abandoned after an election timeout, and the next
          // attempt tries another node.
          std::vector<uint64_t> ready;
          for (uint64_t t : target) {
            if (caught_up(raft::NodeId{t})) ready.push_back(t);
          }
          if (!ready.empty()) {
            const uint64_t to = ready[group.transfers++ % ready.size()];
            node.transfer_leader(raft::NodeId{to});
            dirty_.insert(g);
            say(group.name + ": handing leadership to node " + std::to_string(to) +
                " before leaving the group");
          }
          break;
        }
        change.changes.push_back({raft::ConfChangeType::kRemoveNode, voter});
        what = "node " + std::to_string(voter.value()) + " leaves";
        break;
      }
    }
    for (raft::NodeId learner : conf.learners) {
      if (!change.changes.empty() || targeted(learner)) continue;
      change.changes.push_back({raft::ConfChangeType::kRemoveNode, learner});
      what = "learner " + std::to_string(learner.value()) + " leaves";
    }
    if (change.changes.empty()) continue;
    change.transition = raft::ConfChangeTransition::kAuto;  // two changes: joint, left at once
    if (node.propose_conf_change(change).ok()) {
      dirty_.insert(g);
      say(group.name + ": " + what);
    }
  }
}

// Replicas that are no longer in the placement and that still count
// themselves members (they missed the entry removing them, and nobody sends
// them anything any more) ask the placement's replicas, every second,
// whether they are; the group's leader answers.
void GroupHost::check_memberships(uint64_t now_ms) {
  const std::map<uint64_t, std::vector<uint64_t>>& wanted = wanted_;
  for (auto& [g, group] : groups_) {
    if (g < kFirstKeyspaceGroup || group.retiring || wanted.contains(g)) continue;
    if (keyspace_of_group(g) == nullptr || now_ms < group.next_membership_check_ms) continue;
    group.next_membership_check_ms = now_ms + 1000;
    for (uint64_t replica : router_->replicas_of(g)) {
      if (replica == options_.node_id) continue;
      sends_.push_back(Envelope{raft::NodeId{replica}, MembershipCheck{g, false, true}});
    }
  }
}

void GroupHost::membership(uint64_t from, const MembershipCheck& check) {
  auto it = groups_.find(check.group);
  if (it == groups_.end() || it->second.retiring) return;
  Group& group = it->second;
  if (!check.answer) {
    // Only a leader with no configuration change pending knows the
    // group's configuration for certain.
    const raft::Raft& raft = group.node->raw().raft();
    // And only while a quorum has answered it lately (check-quorum's
    // window). "No" is final because the meta group never lets a
    // placement name a node again for a partition it held.
    if (raft.role() != raft::Role::kLeader || !raft.tracker().quorum_active() ||
        raft.pending_conf_index() > raft.log().applied()) {
      return;
    }
    const raft::NodeId asker{from};
    const bool member = names_member(raft.tracker().config.to_conf_state(), asker);
    sends_.push_back(Envelope{asker, MembershipCheck{check.group, true, member}});
    return;
  }
  if (check.member) return;
  // Removed for certain (configurations only shrink away from a node the
  // placement no longer names): the replica goes, if the placement still
  // does not give it to this node.
  const std::map<uint64_t, std::vector<uint64_t>>& wanted = wanted_;
  if (wanted.contains(check.group) || keyspace_of_group(check.group) == nullptr) return;
  group.retiring = true;
  say(group.name + ": the group's leader (node " + std::to_string(from) +
      ") says this node was removed; removing this replica");
}

// The catalog lease: a ReadIndex on the meta group. Its answer means the
// meta group's state here is at least as new as it was when it was asked.
void GroupHost::renew_catalog(uint64_t now_ms) {
  if (confirm_at_ && now_ms >= renewal_started_ms_ + options_.router.lease_ms) {
    // The local meta replica did not catch up in time: give this one up.
    confirm_at_.reset();
    router_->renewal_finished(false);
  }
  if (!router_->renewal_due(now_ms)) return;
  router_->renewal_started(now_ms);
  renewal_started_ms_ = now_ms;
  Request read;
  read.kind = Request::Kind::kRead;
  read.key = "";  // any key: the ReadIndex is what counts
  const uint64_t id = next_internal_++;
  internal_[id] = Own{Internal::kRenewal, "", CommandOp::kActivateKeyspace};
  submitted_to_[id] = kMetaGroup;
  groups_.at(kMetaGroup).node->submit(id, std::move(read));
  dirty_.insert(kMetaGroup);
}

void GroupHost::maybe_confirm(uint64_t now_ms) {
  if (!confirm_at_ || failed_) return;
  const KvStateMachine& meta = groups_.at(kMetaGroup).node->machine();
  if (meta.applied().index.value() < *confirm_at_ ||
      meta.catalog_version() != catalog_version_seen_) {
    return;
  }
  confirm_at_.reset();
  router_->renewal_finished(true);
  if (!router_->confirmed(now_ms)) return;
  retire_leftovers();
  for (Held& h : std::exchange(held_, {})) route(h.id, std::move(h.request), h.deadline_ms, now_ms);
}

// On the meta leader: activate or forget keyspaces whose wait is over.
void GroupHost::take_catalog_steps(uint64_t now_ms) {
  const Node& meta = *groups_.at(kMetaGroup).node;
  if (meta.raw().raft().role() != raft::Role::kLeader) return;
  for (const CatalogStep& step : router_->due_steps(now_ms)) {
    if (!steps_in_flight_.insert(step.keyspace).second) continue;
    Command command;
    command.op = step.op;
    command.key = step.keyspace;
    // Only this keyspace: a retry must not step one created again under
    // the same name (with new groups) without its own wait.
    const placement::Keyspace* keyspace = router_->catalog().find(step.keyspace);
    if (keyspace != nullptr) command.expected = std::to_string(keyspace->first_group);
    const uint64_t id = next_internal_++;
    internal_[id] = Own{Internal::kStep, step.keyspace, step.op};
    submit_meta(id, std::move(command));
  }
}

void GroupHost::submit_meta(uint64_t id, Command command) {
  // A dedupe id of its own: an internal retry applies once, and no other
  // request's sequence is ever mistaken for it.
  command.client_id = options_.random() | 1;
  command.sequence = 1;
  Request request;
  request.kind = Request::Kind::kWrite;
  request.command = std::move(command);
  submitted_to_[id] = kMetaGroup;
  groups_.at(kMetaGroup).node->submit(id, std::move(request));
  dirty_.insert(kMetaGroup);
}

void GroupHost::internal_reply(uint64_t id, Response response, uint64_t now_ms) {
  auto it = internal_.find(id);
  if (it == internal_.end()) return;
  const Own own = it->second;
  internal_.erase(it);
  if (own.kind == Internal::kRenewal) {
    // The answer may come from the meta leader (a follower forwards reads):
    // the catalog here is confirmed only once this replica has applied as
    // far as the leader had when it answered.
    if (response.status != Response::Status::kOk || response.reply.integer < 0) {
      router_->renewal_finished(false);
      return;
    }
    confirm_at_ = static_cast<uint64_t>(response.reply.integer);
    maybe_confirm(now_ms);
    return;
  }
  steps_in_flight_.erase(own.keyspace);
  if (response.status == Response::Status::kOk &&
      response.reply.kind != CommandReply::Kind::kError) {
    say("keyspace '" + own.keyspace + "' " +
        (own.op == CommandOp::kActivateKeyspace ? "activated" : "forgotten"));
  }
}

// ---- Requests ---------------------------------------------------------

uint64_t GroupHost::deadline_for(const Request& request, uint64_t now_ms) const {
  const uint64_t bytes = key_of(request).size() + request.command.value.size();
  return now_ms + options_.request_timeout_ms + 100 * (bytes >> 20);
}

void GroupHost::tick(uint64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  if (failed_) return;
  for (auto& [id, group] : groups_) {
    if (group.retiring) continue;
    group.node->tick();
    dirty_.insert(id);
  }
  renew_catalog(now_ms_);
  take_catalog_steps(now_ms_);
  expire(now_ms_);
  drive_moves();
  mark_moved_away();
  check_memberships(now_ms_);
  retire_groups();
}

void GroupHost::submit(uint64_t id, Request request, uint64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  if (failed_) {
    answers_.emplace_back(id, unavailable("the node stopped: " + failed_->to_string()));
    return;
  }
  const uint64_t deadline = deadline_for(request, now_ms_);
  route(id, std::move(request), deadline, now_ms_);
}

void GroupHost::route(uint64_t id, Request request, uint64_t deadline_ms, uint64_t now_ms) {
  const Route where = router_->route(key_of(request), now_ms);
  switch (where.kind) {
    case Route::Kind::kHold:
      held_.push_back(Held{id, std::move(request), deadline_ms});
      return;
    case Route::Kind::kRefuse:
      answer(id, unavailable(where.why));
      return;
    case Route::Kind::kGroup:
      break;
  }
  auto it = groups_.find(where.group);
  if (it != groups_.end() && !it->second.retiring) {
    submitted_to_[id] = where.group;
    it->second.node->submit(id, std::move(request));
    dirty_.insert(where.group);
    return;
  }
  proxied_.emplace(id, Proxied{where.group, std::move(request), deadline_ms});
  proxy_send(id, now_ms);
}

// Sends a forwarded request to a replica of its group: the one that last
// answered, then the others in turn.
void GroupHost::proxy_send(uint64_t id, uint64_t now_ms) {
  Proxied& p = proxied_.at(id);
  std::vector<uint64_t> replicas = router_->replicas_of(p.group);
  std::erase(replicas, options_.node_id);
  if (replicas.empty()) {
    proxied_.erase(id);
    answer(id, unavailable("no node is known to hold group " + std::to_string(p.group)));
    return;
  }
  uint64_t target = replicas[p.attempts % replicas.size()];
  if (auto hint = leader_hint_.find(p.group); p.attempts == 0 && hint != leader_hint_.end() &&
                                              std::ranges::count(replicas, hint->second) > 0) {
    target = hint->second;
  }
  ++p.attempts;
  p.sent_to = target;
  ForwardRequest forward;
  forward.incarnation = incarnation_;
  forward.id = id;
  forward.request = p.request;
  forward.ticks_left =
      p.deadline_ms > now_ms ? (p.deadline_ms - now_ms) / std::max<uint64_t>(options_.tick_ms, 1) : 0;
  forward.group = p.group;
  sends_.push_back(Envelope{raft::NodeId{target}, std::move(forward)});
}

void GroupHost::proxy_reply(uint64_t from, ForwardReply reply, uint64_t now_ms) {
  if (reply.incarnation != incarnation_) return;  // meant for an earlier life
  auto it = proxied_.find(reply.id);
  if (it == proxied_.end() || it->second.sent_to != from) return;
  Proxied& p = it->second;
  if (reply.response.status == Response::Status::kUnavailable) {
    // Not the leader, or no replica there: try the next one; after a full
    // round wait for the tick (a leader may be being elected).
    p.sent_to = 0;
    p.last_refusal = reply.response.reason;
    const size_t replicas = std::max<size_t>(1, router_->replicas_of(p.group).size());
    if (p.attempts % replicas != 0) proxy_send(reply.id, now_ms);
    return;
  }
  leader_hint_[p.group] = from;
  proxied_.erase(it);
  answer(reply.id, std::move(reply.response));
}

// Held and forwarded requests past their deadline; forwarded ones refused
// by every replica are sent round again.
void GroupHost::expire(uint64_t now_ms) {
  std::vector<Held> still;
  for (Held& h : std::exchange(held_, {})) {
    if (now_ms < h.deadline_ms) {
      still.push_back(std::move(h));
    } else {
      answer(h.id, unavailable("this node could not confirm its keyspace catalog with the meta "
                               "group in time (is a majority of the cluster reachable?)"));
    }
  }
  held_ = std::move(still);
  std::vector<uint64_t> resend;
  for (auto it = proxied_.begin(); it != proxied_.end();) {
    Proxied& p = it->second;
    if (now_ms < p.deadline_ms) {
      if (p.sent_to == 0) resend.push_back(it->first);
      ++it;
      continue;
    }
    // A write that reached a replica may still be applied.
    const bool unknown = p.sent_to != 0 && p.request.kind == Request::Kind::kWrite;
    answer(it->first, unknown ? unknown_outcome("no answer from node " + std::to_string(p.sent_to) +
                                                " in time")
                              : unavailable(p.last_refusal.empty() ? "no replica answered in time"
                                                                   : p.last_refusal));
    it = proxied_.erase(it);
  }
  for (uint64_t id : resend) {
    if (proxied_.contains(id)) proxy_send(id, now_ms);
  }
}

void GroupHost::answer(uint64_t id, Response response) {
  answers_.emplace_back(id, std::move(response));
}

void GroupHost::receive(uint64_t from, PeerMessage message, uint64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  if (failed_) return;
  if (const auto* check = std::get_if<MembershipCheck>(&message)) return membership(from, *check);
  const uint64_t group_id = group_of(message);
  auto it = groups_.find(group_id);
  if (it != groups_.end() && !it->second.retiring) {
    it->second.node->receive(raft::NodeId{from}, std::move(message));
    dirty_.insert(group_id);
    return;
  }
  if (auto* reply = std::get_if<ForwardReply>(&message)) {
    proxy_reply(from, std::move(*reply), now_ms_);
  } else if (auto* forward = std::get_if<ForwardRequest>(&message)) {
    // Sent here by a node whose catalog says this one holds the group: not
    // (yet, or any more). Saying so lets it try another replica.
    ForwardReply refusal{forward->incarnation, forward->id,
                         unavailable("node " + std::to_string(options_.node_id) +
                                     " holds no replica of group " + std::to_string(group_id)),
                         group_id};
    sends_.push_back(Envelope{raft::NodeId{from}, std::move(refusal)});
  }
  // Raft messages for a group not started here yet are dropped; Raft sends
  // again.
}

void GroupHost::persisted(uint64_t group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  it->second.persisting = false;
  // A retiring replica is not told: it would only start its next write.
  if (it->second.retiring) return;
  it->second.node->persisted();
  dirty_.insert(group);
}

GroupHostOutput GroupHost::take_output() {
  GroupHostOutput out;
  while (!dirty_.empty() && !failed_) {
    for (uint64_t g : std::exchange(dirty_, {})) drain(g, out);
    // A changed catalog is reread before this output's replies go out, so
    // a caller told "created" finds it described.
    if (!failed_ && groups_.at(kMetaGroup).node->machine().catalog_version() != catalog_version_seen_) {
      if (auto s = refresh_catalog(now_ms_); !s) fail(s.error());
    }
    maybe_confirm(now_ms_);
  }
  for (Envelope& e : sends_) out.messages.push_back(std::move(e));
  sends_.clear();
  for (auto& answer : answers_) out.responses.push_back(std::move(answer));
  answers_.clear();
  out.log = std::move(log_);
  log_.clear();
  out.removed = std::move(removed_);
  removed_.clear();
  return out;
}

void GroupHost::drain(uint64_t group_id, GroupHostOutput& out) {
  auto found = groups_.find(group_id);
  if (found == groups_.end() || found->second.retiring) return;
  Group& group = found->second;
  NodeOutput taken = group.node->take_output();
  for (Envelope& envelope : taken.messages) {
    if (const auto* m = std::get_if<raft::Message>(&envelope.message);
        m != nullptr && m->snapshot && m->snapshot->offset == 0) {
      say(group.name + ": sending a snapshot at index " +
          std::to_string(m->snapshot->meta.index.value()) + " (" +
          std::to_string(m->snapshot->total_bytes) + " bytes) to node " +
          std::to_string(envelope.to.value()));
    }
    out.messages.push_back(std::move(envelope));
  }
  for (auto& [id, response] : taken.responses) {
    submitted_to_.erase(id);
    if (id >= kHostIdsEnd) {
      internal_reply(id, std::move(response), now_ms_);
    } else {
      out.responses.emplace_back(id, std::move(response));
    }
  }
  if (taken.persist) {
    if (taken.persist->snapshot) {
      say(group.name + ": installed a snapshot at index " +
          std::to_string(taken.persist->snapshot->index.value()) + " (term " +
          std::to_string(taken.persist->snapshot->term.value()) + ") from the leader");
    }
    group.persisting = true;
    out.persists.emplace_back(group_id, std::move(*taken.persist));
  }
  if (!taken.applied.empty()) out.applied.emplace_back(group_id, std::move(taken.applied));
  if (group.node->failed()) {
    fail(Error(group.node->failed()->code(),
               group.name + ": " + group.node->failed()->message()));
    return;
  }
  note_role(group_id, group, out);
}

void GroupHost::note_role(uint64_t group_id, Group& group, GroupHostOutput&) {
  const raft::Raft& raft = group.node->raw().raft();
  if (raft.role() == group.last_role && raft.leader().value() == group.last_leader) return;
  if (raft.leader().value() != group.last_leader) ++leader_changes_;
  if (raft.role() == raft::Role::kLeader) {
    ++elections_won_;
    say(group.name + ": node " + std::to_string(options_.node_id) + " leads term " +
        std::to_string(raft.term().value()));
  } else if (group.last_role == raft::Role::kLeader) {
    say(group.name + ": node " + std::to_string(options_.node_id) + " lost leadership in term " +
        std::to_string(raft.term().value()));
  }
  group.last_role = raft.role();
  group.last_leader = raft.leader().value();
  (void)group_id;
}

void GroupHost::fail(base::Error error) {
  if (failed_) return;
  failed_ = std::move(error);
}

void GroupHost::fail_all(const std::string& reason) {
  for (const auto& [id, group] : submitted_to_) {
    // It may already be in a log: its outcome is unknown, not "never proposed".
    if (id < kHostIdsEnd) answers_.emplace_back(id, unknown_outcome(reason));
  }
  submitted_to_.clear();
  for (Held& h : held_) answers_.emplace_back(h.id, unavailable(reason));
  held_.clear();
  for (auto& [id, p] : proxied_) answers_.emplace_back(id, unknown_outcome(reason));
  proxied_.clear();
  internal_.clear();
  steps_in_flight_.clear();
}

// ---- Introspection ----------------------------------------------------

const Node* GroupHost::group(uint64_t id) const {
  auto it = groups_.find(id);
  return it == groups_.end() || it->second.retiring ? nullptr : it->second.node.get();
}

std::vector<uint64_t> GroupHost::groups() const {
  std::vector<uint64_t> out;
  for (const auto& [id, group] : groups_) {
    if (!group.retiring) out.push_back(id);
  }
  return out;
}

uint64_t GroupHost::leader_of(uint64_t group) const {
  if (const Node* node = this->group(group)) return node->leader().value();
  auto hint = leader_hint_.find(group);
  return hint == leader_hint_.end() ? 0 : hint->second;
}

std::string GroupHost::group_name(uint64_t group_id) const {
  if (auto it = groups_.find(group_id); it != groups_.end() && !it->second.name.empty()) {
    return it->second.name;
  }
  if (group_id == kMetaGroup) return "meta group";
  if (group_id < kFirstKeyspaceGroup) {
    return "partition " + std::to_string(group_id - kFirstPartitionGroup);
  }
  if (const placement::Keyspace* keyspace = keyspace_of_group(group_id)) {
    return "keyspace " + keyspace->name + " partition " +
           std::to_string(group_id - keyspace->first_group);
  }
  return "group " + std::to_string(group_id);
}

std::vector<MoveStatus> GroupHost::moves() const {
  std::vector<MoveStatus> out;
  for (const auto& [g, group] : groups_) {
    if (g < kFirstKeyspaceGroup || group.retiring) continue;
    const raft::Raft& raft = group.node->raw().raft();
    if (raft.role() != raft::Role::kLeader) continue;
    MoveStatus move;
    move.group = g;
    move.name = group.name;
    move.target = router_->replicas_of(g);
    std::sort(move.target.begin(), move.target.end());
    const raft::ConfState conf = raft.tracker().config.to_conf_state();
    for (raft::NodeId id : conf.voters) move.voters.push_back(id.value());
    for (raft::NodeId id : conf.learners) move.learners.push_back(id.value());
    std::sort(move.voters.begin(), move.voters.end());
    move.joint = !conf.voters_outgoing.empty();
    if (move.target.empty() || (move.voters == move.target && move.learners.empty() && !move.joint)) {
      continue;
    }
    move.last_index = raft.log().last_index().value();
    for (uint64_t learner : move.learners) {
      auto it = raft.tracker().progress.find(raft::NodeId{learner});
      if (it == raft.tracker().progress.end()) continue;
      move.learner = learner;
      move.learner_match = it->second.match.value();
      break;
    }
    out.push_back(std::move(move));
  }
  return out;
}

size_t GroupHost::open_requests() const {
  size_t own = 0;
  for (const auto& [id, group] : submitted_to_) own += id < kHostIdsEnd ? 1 : 0;
  return own + held_.size() + proxied_.size();
}

}  // namespace synod::node
