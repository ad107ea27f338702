#include "runtime/node_host.h"

#include <asio.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "placement/partition.h"
#include "raft/raft.h"
#include "runtime/metrics.h"
#include "storage/group_log.h"
#include "storage/posix_file_system.h"
#include "storage/rocks_kv_engine.h"

namespace synod::runtime {

using base::Errc;
using base::Error;

namespace {

// Group 1 is the meta group (cluster metadata; it carries nothing yet but
// elects like any other); groups 2.. are the default keyspace's partitions.
constexpr raft::GroupId kMetaGroup{1};
constexpr uint64_t kFirstPartitionGroup = 2;

// cluster.json: who this node is and who its members are, written once when
// the node bootstraps (before the WAL says the group exists).
struct ClusterFile {
  std::string cluster_id;
  uint64_t node_id = 0;
  std::map<uint64_t, std::string> members;
  uint64_t partitions = 0;  // of the default keyspace
};

base::Status write_cluster_file(storage::FileSystem& files, const std::string& dir,
                                const ClusterFile& cluster) {
  nlohmann::json json;
  json["cluster_id"] = cluster.cluster_id;
  json["node_id"] = cluster.node_id;
  json["partitions"] = cluster.partitions;
  for (const auto& [id, address] : cluster.members) json["members"][std::to_string(id)] = address;
  const std::string path = dir + "/cluster.json";
  (void)files.remove(path);
  auto file = files.open_writable(path, /*create=*/true);
  if (!file) return file.error();
  if (auto s = (*file)->append(json.dump(2) + "\n"); !s) return s;
  if (auto s = (*file)->sync(); !s) return s;
  return files.sync_dir(dir);
}

base::Result<ClusterFile> read_cluster_file(storage::FileSystem& files, const std::string& dir) {
  const std::string path = dir + "/cluster.json";
  auto file = files.open_readable(path);
  if (!file) return file.error();
  auto size = (*file)->size();
  if (!size) return size.error();
  if (*size > (1u << 20)) return Error(Errc::kCorruption, path + " is over 1 MiB");
  std::string text;
  if (auto s = (*file)->read_at(0, static_cast<size_t>(*size), &text); !s) return s.error();
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    ClusterFile cluster;
    cluster.cluster_id = json.at("cluster_id").get<std::string>();
    cluster.node_id = json.at("node_id").get<uint64_t>();
    cluster.partitions = json.at("partitions").get<uint64_t>();
    if (cluster.partitions == 0 || cluster.partitions > 4096) {
      return Error(Errc::kCorruption, path + ": partitions must be 1..4096");
    }
    for (const auto& [id, address] : json.at("members").items()) {
      cluster.members[std::stoull(id)] = address.get<std::string>();
    }
    return cluster;
  } catch (const std::exception& e) {
    return Error(Errc::kCorruption, path + " does not parse: " + e.what());
  }
}

uint64_t random_u64() {
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device();
}

}  // namespace

struct NodeHost::Impl {
  Impl(asio::io_context& l, NodeHostOptions o) : loop(l), options(std::move(o)), ticker(l) {}

  asio::io_context& loop;
  NodeHostOptions options;
  storage::PosixFileSystem files;
  std::unique_ptr<storage::DurableLog> log;
  std::unique_ptr<storage::RocksKvEngine> engine;
  struct Group {
    std::unique_ptr<node::Node> node;
    raft::Role last_role = raft::Role::kFollower;
    uint64_t last_leader = 0;
  };
  std::map<uint64_t, Group> groups;
  std::unique_ptr<PeerTransport> transport;
  // Messages for each peer from this turn of the loop, sent as one frame.
  std::map<uint64_t, std::vector<node::PeerMessage>> outbox;
  bool flush_posted = false;
  std::set<uint64_t> dirty;  // groups to drain at the end of this turn
  bool drain_posted = false;
  ClusterFile cluster;
  asio::steady_timer ticker;
  std::map<uint64_t, Done> waiting;  // request id -> caller
  uint64_t next_request = 1;
  bool stopped = false;
  std::string failure;
  uint64_t elections_won = 0;
  uint64_t proposals = 0;
  uint64_t leader_changes = 0;
  std::vector<double> wal_write_seconds;  // since the last export
  // Keeps the object alive for completions that arrive from the writer
  // thread after stop (they find `stopped` and do nothing).
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  void say(const std::string& line) {
    if (options.log) options.log(line);
  }

  base::Status open() {
    const std::string& dir = options.data_dir;
    if (auto s = files.create_dirs(dir); !s) return s;
    storage::WalOptions wal;
    wal.dir = dir + "/wal";
    wal.writer_thread = true;
    wal.log = [this](const std::string& line) { say("wal: " + line); };
    auto opened = storage::DurableLog::open(files, wal);
    if (!opened) return opened.error();
    log = std::move(*opened);
    auto rocks = storage::RocksKvEngine::open(dir + "/kv");
    if (!rocks) return rocks.error();
    engine = std::move(*rocks);

    if (!log->has_group(kMetaGroup)) {
      if (auto s = bootstrap(); !s) return s;
    } else {
      auto read = read_cluster_file(files, dir);
      if (!read) {
        return Error(Errc::kCorruption, "the WAL holds data but the member list cannot be read: " +
                                            read.error().message());
      }
      cluster = std::move(*read);
      if (cluster.node_id != options.node_id) {
        return Error(Errc::kInvalidArgument,
                     dir + " belongs to node " + std::to_string(cluster.node_id) +
                         ", not node " + std::to_string(options.node_id));
      }
      if (!options.initial_cluster.empty() && options.initial_cluster != cluster.members) {
        say("data directory exists: ignoring --initial-cluster, using the members in " + dir +
            "/cluster.json");
      }
    }

    const uint64_t partitions = cluster.partitions;
    for (uint64_t g = kMetaGroup.value(); g < kFirstPartitionGroup + partitions; ++g) {
      if (auto s = start_group(raft::GroupId{g}); !s) return s;
    }

    PeerTransportOptions peer;
    peer.node_id = options.node_id;
    peer.cluster_id = cluster.cluster_id;
    peer.members = cluster.members;
    peer.phi_threshold = options.phi_threshold;
    peer.listen_address = options.peer_listen.empty() ? cluster.members[options.node_id]
                                                      : options.peer_listen;
    transport = std::make_unique<PeerTransport>(
        loop, peer,
        [this](uint64_t from, node::PeerMessage message) {
          if (stopped || !failure.empty()) return;
          auto it = groups.find(node::group_of(message));
          if (it == groups.end()) return;  // a group this node does not host
          it->second.node->receive(raft::NodeId{from}, std::move(message));
          touch(it->first);
        },
        [this](const std::string& line) { say(line); });
    return {};
  }

  base::Status start_group(raft::GroupId id) {
    node::NodeOptions node_options;
    node_options.raft.id = raft::NodeId{options.node_id};
    node_options.raft.group = id;
    node_options.raft.storage = &log->group(id);
    node_options.raft.election_tick = options.election_ticks;
    node_options.raft.heartbeat_tick = options.heartbeat_ticks;
    node_options.raft.random_seed = random_u64();
    node_options.raft.max_size_per_msg_bytes = 1u << 20;
    node_options.raft.max_inflight_msgs = 256;
    node_options.request_timeout_ticks =
        std::max<uint64_t>(1, options.request_timeout_ms / std::max<uint32_t>(options.tick_ms, 1));
    node_options.compact_every_entries = options.compact_every_entries;
    // 100 ms more per MiB of a write: 6.4 s more for a 64 MiB value.
    node_options.request_timeout_ticks_per_mib =
        std::max<uint64_t>(1, 100 / std::max<uint32_t>(options.tick_ms, 1));
    node_options.incarnation = random_u64();
    auto made = node::Node::create(std::move(node_options), engine.get());
    if (!made) return made.error();
    Group& group = groups[id.value()];
    group.node = std::move(*made);
    node::Node* process = group.node.get();
    log->group(id).set_snapshot_source([process] { return process->machine().snapshot(); });
    return {};
  }

  uint64_t group_for(const node::Request& request) const {
    const std::string& key =
        request.kind == node::Request::Kind::kRead ? request.key : request.command.key;
    return kFirstPartitionGroup + placement::partition_of(key, static_cast<uint32_t>(cluster.partitions));
  }

  base::Status bootstrap() {
    if (options.initial_cluster.empty() || !options.initial_cluster.contains(options.node_id)) {
      return Error(Errc::kInvalidArgument,
                   "a new node needs --initial-cluster naming every member, itself (node " +
                       std::to_string(options.node_id) + ") included");
    }
    cluster.cluster_id = options.cluster_id;
    cluster.node_id = options.node_id;
    cluster.members = options.initial_cluster;
    cluster.partitions = options.partitions;
    if (auto s = write_cluster_file(files, options.data_dir, cluster); !s) return s;
    raft::ConfState conf;
    for (const auto& [id, address] : cluster.members) conf.voters.push_back(raft::NodeId{id});
    // Every group starts from the same configuration, as a snapshot at
    // index 1 on every member. The engine may already hold a group's
    // bootstrap state (a crash came before the WAL record below).
    storage::WalBatch batch;
    for (uint64_t g = kMetaGroup.value(); g < kFirstPartitionGroup + cluster.partitions; ++g) {
      const raft::GroupId group{g};
      node::KvStateMachine machine(group, engine.get());
      if (auto s = machine.load(); !s) return s;
      if (machine.applied().index == raft::LogIndex{0}) {
        if (auto s = machine.bootstrap(node::AppliedState{raft::LogIndex{1}, raft::Term{1}, conf}); !s) {
          return s;
        }
      }
      batch.add_snapshot(group, raft::SnapshotMeta{raft::LogIndex{1}, raft::Term{1}, conf},
                         storage::SnapshotMode::kInstall);
      batch.add_hard_state(group, raft::HardState{raft::Term{1}, raft::NodeId{}, raft::LogIndex{1}});
    }
    if (auto s = log->write(batch); !s) return s;
    say("bootstrapped cluster \"" + cluster.cluster_id + "\" with " +
        std::to_string(cluster.members.size()) + " members, a meta group and " +
        std::to_string(cluster.partitions) + " partitions");
    return {};
  }

  base::Status start() {
    if (auto s = transport->start(); !s) return s;
    schedule_tick();
    return {};
  }

  void schedule_tick() {
    ticker.expires_after(std::chrono::milliseconds(options.tick_ms));
    ticker.async_wait([this](const asio::error_code& error) {
      if (error || stopped) return;
      if (failure.empty()) {
        for (auto& [id, group] : groups) {
          group.node->tick();
          drain(id);
          if (!failure.empty()) break;
        }
      }
      schedule_tick();
    });
  }

  void submit(node::Request request, Done done) {
    if (stopped || !failure.empty()) {
      node::Response response;
      response.status = node::Response::Status::kUnavailable;
      response.reason = stopped ? "the node is stopping" : "the node stopped: " + failure;
      asio::post(loop, [done = std::move(done), response = std::move(response)]() mutable {
        done(std::move(response));
      });
      return;
    }
    const uint64_t id = next_request++;
    waiting.emplace(id, std::move(done));
    if (request.kind == node::Request::Kind::kWrite) ++proposals;
    // The time every replica will judge this request's expiries against.
    const uint64_t now_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    request.now_ms = now_ms;
    request.command.now_ms = now_ms;
    const uint64_t group = group_for(request);
    groups.at(group).node->submit(id, std::move(request));
    touch(group);
  }

  // Output is taken once per turn of the loop for each group something
  // happened to: every write that arrived in the turn (from clients, or
  // forwarded in one frame from a peer) goes into one Raft proposal.
  void touch(uint64_t group_id) {
    dirty.insert(group_id);
    at_end_of_turn(drain_posted, &Impl::drain_dirty);
  }

  void drain_dirty() {
    for (uint64_t group : std::exchange(dirty, {})) drain(group);
  }

  // Runs `work` once, after what is already queued on the loop, however
  // often this is called before then; `posted` remembers that it is queued.
  void at_end_of_turn(bool& posted, void (Impl::*work)()) {
    if (posted) return;
    posted = true;
    asio::post(loop, [this, &posted, work, alive_check = std::weak_ptr<bool>(alive)] {
      if (alive_check.expired()) return;
      posted = false;
      (this->*work)();
    });
  }

  void drain(uint64_t group_id) {
    if (stopped) return;
    Group& group = groups.at(group_id);
    node::NodeOutput out = group.node->take_output();
    for (node::Envelope& envelope : out.messages) {
      if (const auto* m = std::get_if<raft::Message>(&envelope.message);
          m != nullptr && m->snapshot && m->snapshot->offset == 0) {
        say(group_name(group_id) + ": sending a snapshot at index " +
            std::to_string(m->snapshot->meta.index.value()) + " (" +
            std::to_string(m->snapshot->total_bytes) + " bytes) to node " +
            std::to_string(envelope.to.value()));
      }
      outbox[envelope.to.value()].push_back(std::move(envelope.message));
    }
    if (!outbox.empty()) at_end_of_turn(flush_posted, &Impl::flush);
    for (auto& [id, response] : out.responses) {
      auto it = waiting.find(id);
      if (it == waiting.end()) continue;
      // Answered from a later turn of the loop, never from inside submit()
      // or drain(): a caller that submits again from its callback (MGET's
      // next key) must not recurse once per key.
      asio::post(loop, [done = std::move(it->second), response = std::move(response)]() mutable {
        done(std::move(response));
      });
      waiting.erase(it);
    }
    if (out.persist) persist(group_id, std::move(*out.persist));
    if (group.node->failed()) fail("group " + std::to_string(group_id) + ": " +
                                   group.node->failed()->to_string());
    note_role(group_id, group);
  }

  // Sends what this turn of the loop produced: one frame per peer.
  void flush() {
    if (stopped) return;
    std::map<uint64_t, std::vector<node::PeerMessage>> sending = std::move(outbox);
    outbox.clear();
    for (auto& [to, messages] : sending) transport->send(to, messages);
  }

  std::string group_name(uint64_t group_id) const {
    return group_id == kMetaGroup.value()
               ? "meta group"
               : "partition " + std::to_string(group_id - kFirstPartitionGroup);
  }

  void persist(uint64_t group_id, node::PersistRequest request) {
    const raft::GroupId id{group_id};
    if (request.snapshot) {
      say(group_name(group_id) + ": installed a snapshot at index " +
          std::to_string(request.snapshot->index.value()) + " (term " +
          std::to_string(request.snapshot->term.value()) + ") from the leader");
    }
    storage::WalBatch batch = storage::to_wal_batch(id, request, log->group(id));
    if (batch.empty()) {
      groups.at(group_id).node->persisted();
      drain(group_id);
      return;
    }
    std::weak_ptr<bool> alive_check = alive;
    const auto submitted = std::chrono::steady_clock::now();
    log->submit(batch, [this, alive_check, submitted, group_id](storage::WalBatch records,
                                                                storage::WalWriteResult result) {
      // On the WAL's writer thread: hand the result to the loop.
      asio::post(loop, [this, alive_check, submitted, group_id, records = std::move(records),
                        result = std::move(result)]() mutable {
        if (alive_check.expired() || stopped) return;
        if (wal_write_seconds.size() < 100000) {
          wal_write_seconds.push_back(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - submitted).count());
        }
        base::Status applied = log->apply(records, result);
        if (!applied) {
          fail("write-ahead log: " + applied.error().to_string());
          return;
        }
        groups.at(group_id).node->persisted();
        drain(group_id);
      });
    });
  }

  // A storage failure stops the node (as etcd does): nothing more is
  // promised, every open request is told, and the process should restart
  // and recover from what is on disk.
  void fail(const std::string& why) {
    if (!failure.empty()) return;
    failure = why;
    say("node " + std::to_string(options.node_id) + " stops serving: " + why +
        " (restart it to recover from disk)");
    fail_waiting("the node stopped: " + why);
  }

  void fail_waiting(const std::string& reason) {
    std::map<uint64_t, Done> open = std::move(waiting);
    waiting.clear();
    for (auto& [id, done] : open) {
      // It may already be in a log: its outcome is unknown, not "never proposed".
      node::Response response;
      response.status = node::Response::Status::kTimeout;
      response.reason = reason;
      done(std::move(response));
    }
  }

  void note_role(uint64_t group_id, Group& group) {
    const raft::Raft& raft = group.node->raw().raft();
    if (raft.role() == group.last_role && raft.leader().value() == group.last_leader) return;
    const std::string name = group_name(group_id);
    if (raft.leader().value() != group.last_leader) ++leader_changes;
    if (raft.role() == raft::Role::kLeader) {
      ++elections_won;
      say(name + ": node " + std::to_string(options.node_id) + " leads term " +
          std::to_string(raft.term().value()));
    } else if (group.last_role == raft::Role::kLeader) {
      say(name + ": node " + std::to_string(options.node_id) + " lost leadership in term " +
          std::to_string(raft.term().value()));
    }
    group.last_role = raft.role();
    group.last_leader = raft.leader().value();
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    ticker.cancel();
    if (transport) transport->stop();
    fail_waiting("the node is stopping");
  }
};

NodeHost::NodeHost(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NodeHost::~NodeHost() {
  impl_->stop();
  // The WAL's writer finishes what it has (its destructor joins it) before
  // the engine and the node go.
  impl_->alive.reset();
  impl_->transport.reset();
  impl_->groups.clear();
  impl_->log.reset();
  if (impl_->engine) (void)impl_->engine->sync();
  impl_->engine.reset();
}

base::Result<std::unique_ptr<NodeHost>> NodeHost::open(asio::io_context& loop,
                                                       NodeHostOptions options) {
  if (options.node_id == 0) return Error(Errc::kInvalidArgument, "node id must be at least 1");
  if (options.data_dir.empty()) return Error(Errc::kInvalidArgument, "a data directory is needed");
  if (options.partitions == 0 || options.partitions > 4096) {
    return Error(Errc::kInvalidArgument, "partitions must be 1..4096");
  }
  if (options.tick_ms == 0 || options.election_ticks <= options.heartbeat_ticks) {
    return Error(Errc::kInvalidArgument, "ticks must be positive and elections slower than heartbeats");
  }
  auto impl = std::make_unique<Impl>(loop, std::move(options));
  if (auto s = impl->open(); !s) return s.error();
  return std::unique_ptr<NodeHost>(new NodeHost(std::move(impl)));
}

base::Status NodeHost::start() { return impl_->start(); }
void NodeHost::stop() { impl_->stop(); }
void NodeHost::submit(node::Request request, Done done) {
  impl_->submit(std::move(request), std::move(done));
}
uint64_t NodeHost::node_id() const { return impl_->options.node_id; }

std::string NodeHost::status_json() const {
  const NodeHostStatus s = status();
  nlohmann::json json;
  json["node_id"] = s.node_id;
  json["cluster_id"] = s.cluster_id;
  json["requests_open"] = s.requests_open;
  json["failure"] = s.failure;
  json["groups"] = nlohmann::json::array();
  for (const GroupStatus& g : s.groups) {
    json["groups"].push_back({{"group", g.group},
                              {"role", g.role},
                              {"term", g.term},
                              {"leader", g.leader},
                              {"commit", g.commit},
                              {"applied", g.applied},
                              {"last_index", g.last_index}});
  }
  json["peers"] = nlohmann::json::array();
  for (const PeerState& p : s.peers) {
    json["peers"].push_back({{"id", p.id},
                             {"address", p.address},
                             {"connected", p.connected},
                             {"connects", p.connects},
                             {"frames_sent", p.frames_sent},
                             {"frames_received", p.frames_received},
                             {"dropped", p.dropped},
                             {"last_contact_ms_ago", p.last_contact_ms_ago},
                             {"phi", p.phi},
                             {"suspected", p.suspected},
                             {"last_error", p.last_error}});
  }
  json["wal"] = {{"syncs", s.wal_syncs}, {"batches", s.wal_batches}, {"bytes", s.wal_bytes}};
  return json.dump(2) + "\n";
}

std::string NodeHost::locate_json(const std::string& key) const {
  node::Request request;
  request.kind = node::Request::Kind::kRead;
  request.key = key;
  const uint64_t group = impl_->group_for(request);
  nlohmann::json json;
  json["key"] = key;
  json["partition"] = group - kFirstPartitionGroup;
  json["group"] = group;
  json["leader"] = impl_->groups.at(group).node->leader().value();
  return json.dump() + "\n";
}

void NodeHost::export_metrics(Metrics& metrics) const {
  const NodeHostStatus s = status();
  metrics.describe("synod_raft_term", "gauge", "Current Raft term of the group");
  metrics.describe("synod_raft_is_leader", "gauge", "1 if this node leads the group");
  metrics.describe("synod_raft_commit_index", "gauge", "Commit index of the group");
  metrics.describe("synod_raft_applied_index", "gauge", "Applied index of the group");
  metrics.describe("synod_raft_elections_won_total", "counter", "Elections this node won");
  metrics.describe("synod_raft_leader_changes_total", "counter", "Leader changes this node saw");
  metrics.describe("synod_proposals_total", "counter", "Writes submitted through this node");
  metrics.describe("synod_wal_syncs_total", "counter", "fdatasync calls of the WAL");
  metrics.describe("synod_wal_bytes_total", "counter", "Bytes written to the WAL");
  metrics.describe("synod_wal_write_duration_seconds", "histogram",
                   "From handing a write to the WAL to its being durable (group commit included)");
  metrics.describe("synod_peer_connected", "gauge", "1 while the connection to the peer is up");
  metrics.describe("synod_peer_sent_bytes_total", "counter", "Bytes sent to the peer");
  metrics.describe("synod_peer_received_bytes_total", "counter", "Bytes received from the peer");
  metrics.describe("synod_peer_dropped_messages_total", "counter",
                   "Messages dropped for the peer (not connected, or its queue full)");
  metrics.describe("synod_requests_open", "gauge", "Requests waiting for the cluster");
  metrics.describe("synod_peer_phi", "gauge",
                   "Phi-accrual suspicion of the peer (suspected at --phi-threshold, 8)");
  for (const GroupStatus& g : s.groups) {
    const std::string labels = "group=\"" + std::to_string(g.group) + "\"";
    metrics.set_gauge("synod_raft_term", labels, static_cast<double>(g.term));
    metrics.set_gauge("synod_raft_is_leader", labels, g.role == "leader" ? 1 : 0);
    metrics.set_gauge("synod_raft_commit_index", labels, static_cast<double>(g.commit));
    metrics.set_gauge("synod_raft_applied_index", labels, static_cast<double>(g.applied));
  }
  auto set_counter = [&](const std::string& name, const std::string& labels, uint64_t value) {
    const uint64_t now = metrics.counter(name, labels);
    metrics.add(name, labels, value > now ? value - now : 0);  // present even at zero
  };
  set_counter("synod_raft_elections_won_total", "", s.elections_won);
  set_counter("synod_raft_leader_changes_total", "", impl_->leader_changes);
  set_counter("synod_proposals_total", "", s.proposals);
  set_counter("synod_wal_syncs_total", "", s.wal_syncs);
  set_counter("synod_wal_bytes_total", "", s.wal_bytes);
  for (double seconds : impl_->wal_write_seconds) {
    metrics.observe("synod_wal_write_duration_seconds", "", seconds);
  }
  impl_->wal_write_seconds.clear();
  metrics.set_gauge("synod_requests_open", "", static_cast<double>(s.requests_open));
  for (const PeerState& p : s.peers) {
    const std::string labels = "peer=\"" + std::to_string(p.id) + "\"";
    metrics.set_gauge("synod_peer_connected", labels, p.connected ? 1 : 0);
    metrics.set_gauge("synod_peer_phi", labels, p.phi);
    set_counter("synod_peer_sent_bytes_total", labels, p.bytes_sent);
    set_counter("synod_peer_received_bytes_total", labels, p.bytes_received);
    set_counter("synod_peer_dropped_messages_total", labels, p.dropped);
  }
}

NodeHostStatus NodeHost::status() const {
  NodeHostStatus status;
  const Impl& i = *impl_;
  status.node_id = i.options.node_id;
  status.cluster_id = i.cluster.cluster_id;
  for (const auto& [id, g] : i.groups) {
    const raft::Raft& raft = g.node->raw().raft();
    GroupStatus group;
    group.group = id;
    group.role = std::string(raft::role_name(raft.role()));
    group.term = raft.term().value();
    group.leader = raft.leader().value();
    group.commit = raft.log().committed().value();
    group.applied = g.node->machine().applied().index.value();
    group.last_index = raft.log().last_index().value();
    status.groups.push_back(group);
  }
  status.peers = i.transport->peers();
  status.requests_open = i.waiting.size();
  status.elections_won = i.elections_won;
  status.proposals = i.proposals;
  const storage::WalStats wal = i.log->wal().stats();
  status.wal_syncs = wal.syncs;
  status.wal_batches = wal.batches;
  status.wal_bytes = wal.bytes;
  status.failure = i.failure;
  return status;
}

}  // namespace synod::runtime
