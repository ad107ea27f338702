#include "runtime/node_host.h"

#include <asio.hpp>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <charconv>
#include <random>
#include <set>

#include "node/group_host.h"
#include "placement/placement.h"
#include "raft/raft.h"
#include "runtime/metrics.h"
#include "storage/group_log.h"
#include "storage/posix_file_system.h"
#include "storage/rocks_kv_engine.h"

namespace synod::runtime {

using base::Errc;
using base::Error;

namespace {

constexpr raft::GroupId kMetaGroup{node::kMetaGroupId};
// The catalog lease (node/catalog_router.h): confirmed every 500 ms, good
// for 2 s; a keyspace's next step waits 4 s.
constexpr node::RouterOptions kRouterOptions{.lease_ms = 2000, .renew_ms = 500};

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

uint64_t monotonic_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}


}  // namespace

struct NodeHost::Impl {
  Impl(asio::io_context& l, NodeHostOptions o) : loop(l), options(std::move(o)), ticker(l) {}

  asio::io_context& loop;
  NodeHostOptions options;
  storage::PosixFileSystem files;
  std::unique_ptr<storage::DurableLog> log;
  std::unique_ptr<storage::WalGroupLogs> logs;
  std::unique_ptr<storage::RocksKvEngine> engine;
  std::unique_ptr<node::GroupHost> host;
  std::unique_ptr<PeerTransport> transport;
  // Messages for each peer from this turn of the loop, sent as one frame.
  std::map<uint64_t, std::vector<node::PeerMessage>> outbox;
  bool flush_posted = false;
  bool drain_posted = false;
  ClusterFile cluster;
  asio::steady_timer ticker;
  std::map<uint64_t, Done> waiting;  // request id -> caller
  uint64_t next_request = 1;
  bool stopped = false;
  std::string failure;
  uint64_t proposals = 0;
  std::vector<double> wal_write_seconds;  // since the last export
  // Keeps the object alive for completions that arrive from the writer
  // thread after stop (they find `stopped` and do nothing).
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  void say(const std::string& line) {
    if (options.log) options.log(line);
  }

  node::GroupHostOptions host_options() const {
    node::GroupHostOptions o;
    o.node_id = options.node_id;
    for (const auto& [id, address] : cluster.members) o.members.push_back(id);
    o.default_partitions = static_cast<uint32_t>(cluster.partitions);
    o.node.raft.election_tick = options.election_ticks;
    o.node.raft.heartbeat_tick = options.heartbeat_ticks;
    o.node.raft.max_size_per_msg_bytes = 1u << 20;
    o.node.raft.max_inflight_msgs = 256;
    const uint64_t tick_ms = std::max<uint32_t>(options.tick_ms, 1);
    o.node.request_timeout_ticks = std::max<uint64_t>(1, options.request_timeout_ms / tick_ms);
    // 100 ms more per MiB of a write: 6.4 s more for a 64 MiB value.
    o.node.request_timeout_ticks_per_mib = std::max<uint64_t>(1, 100 / tick_ms);
    o.node.compact_every_entries = options.compact_every_entries;
    o.tick_ms = tick_ms;
    o.request_timeout_ms = options.request_timeout_ms;
    o.router = kRouterOptions;
    o.random = random_u64;
    return o;
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
    logs = std::make_unique<storage::WalGroupLogs>(log.get());
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
    auto made = node::GroupHost::open(host_options(), engine.get(), logs.get(), monotonic_ms());
    if (!made) return made.error();
    host = std::move(*made);

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
          host->receive(from, std::move(message), monotonic_ms());
          touch();
        },
        [this](const std::string& line) { say(line); });
    return {};
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
    if (auto s = node::GroupHost::bootstrap(host_options(), engine.get(), logs.get()); !s) return s;
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
        host->tick(monotonic_ms());
        drain();
      }
      schedule_tick();
    });
  }

  void submit(node::Request request, Done done) {
    if (stopped || !failure.empty()) {
      post_reply(std::move(done), node::unavailable(stopped ? "the node is stopping"
                                                      : "the node stopped: " + failure));
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
    host->submit(id, std::move(request), monotonic_ms());
    touch();
  }

  // Answered from a later turn of the loop, never from inside submit() or
  // drain(): a caller that submits again from its callback (MGET's next
  // key) must not recurse once per key.
  void post_reply(Done done, node::Response response) {
    asio::post(loop, [done = std::move(done), response = std::move(response)]() mutable {
      done(std::move(response));
    });
  }

  // Output is taken once per turn of the loop: every write that arrived in
  // the turn (from clients, or forwarded in one frame from a peer) goes into
  // one Raft proposal per group.
  void touch() { at_end_of_turn(drain_posted, &Impl::drain); }

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

  void drain() {
    if (stopped || !failure.empty()) return;
    node::GroupHostOutput out = host->take_output();
    for (const std::string& line : out.log) say(line);
    for (node::Envelope& envelope : out.messages) {
      outbox[envelope.to.value()].push_back(std::move(envelope.message));
    }
    if (!outbox.empty()) at_end_of_turn(flush_posted, &Impl::flush);
    for (auto& [id, response] : out.responses) {
      auto it = waiting.find(id);
      if (it == waiting.end()) continue;
      post_reply(std::move(it->second), std::move(response));
      waiting.erase(it);
    }
    for (auto& [group, request] : out.persists) persist(group, std::move(request));
    if (host->failed()) fail(host->failed()->to_string());
  }

  // Sends what this turn of the loop produced: one frame per peer.
  void flush() {
    if (stopped) return;
    std::map<uint64_t, std::vector<node::PeerMessage>> sending = std::move(outbox);
    outbox.clear();
    for (auto& [to, messages] : sending) transport->send(to, messages);
  }

  void persist(uint64_t group_id, node::PersistRequest request) {
    const raft::GroupId id{group_id};
    storage::WalBatch batch = storage::to_wal_batch(id, request, log->group(id));
    if (batch.empty()) {
      host->persisted(group_id);
      touch();
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
        host->persisted(group_id);
        drain();
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
    if (host) host->fail_all(reason);
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

  // ---- Keyspace administration -----------------------------------------

  static nlohmann::json keyspace_json_without_placement(const placement::Keyspace& k) {
    return {{"name", k.name},
            {"mode", std::string(placement::mode_name(k.mode))},
            {"replicas", k.replicas},
            {"partitions", k.partitions},
            {"zone_policy", k.zone_policy},
            {"state", std::string(placement::state_name(k.state))},
            {"first_group", k.first_group}};
  }

  nlohmann::json keyspace_json(const placement::Keyspace& k, bool with_placement) const {
    nlohmann::json json = keyspace_json_without_placement(k);
    if (!with_placement) return json;
    json["placement"] = nlohmann::json::array();
    const placement::Placement* where = host->router().placement_of(k.name);
    for (uint32_t p = 0; where != nullptr && p < where->replicas.size(); ++p) {
      const uint64_t g = k.group_of_partition(p);
      nlohmann::json entry = {{"partition", p},
                              {"group", g},
                              {"replicas", where->replicas[p]},
                              {"leader", host->leader_of(g)}};
      // The group's configuration as this node's replica knows it (a move
      // in progress shows here before it shows in "replicas"' being met).
      if (const node::Node* replica = host->group(g)) {
        const raft::ConfState conf = replica->raw().raft().tracker().config.to_conf_state();
        std::vector<uint64_t> voters, learners;
        for (raft::NodeId id : conf.voters) voters.push_back(id.value());
        for (raft::NodeId id : conf.learners) learners.push_back(id.value());
        entry["voters"] = voters;
        entry["learners"] = learners;
        entry["joint"] = !conf.voters_outgoing.empty();
      }
      json["placement"].push_back(std::move(entry));
    }
    return json;
  }

  // The keyspace's placement with one replica of one partition moved
  // (KEYSPACE MOVE name partition from to).
  base::Result<placement::Placement> moved_placement(const placement::KeyspaceCall& call) const {
    const placement::Keyspace* keyspace = host->router().catalog().find(call.name);
    if (keyspace == nullptr || call.name == placement::kDefaultKeyspace) {
      return Error(Errc::kNotFound, "no keyspace named '" + call.name + "' to move replicas of");
    }
    std::map<std::string, uint64_t> numbers;
    for (const auto& [option, value] : call.options) {
      uint64_t n = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (error != std::errc() || end != value.data() + value.size()) {
        return Error(Errc::kInvalidArgument, option + " must be a number, not \"" + value + "\"");
      }
      numbers[option] = n;
    }
    if (!numbers.contains("partition") || !numbers.contains("from") || !numbers.contains("to")) {
      return Error(Errc::kInvalidArgument, "a move needs partition, from and to");
    }
    placement::Placement where = *host->router().placement_of(call.name);
    const uint64_t p = numbers["partition"], from = numbers["from"], to = numbers["to"];
    if (p >= where.replicas.size()) {
      return Error(Errc::kInvalidArgument, "keyspace '" + call.name + "' has " +
                                               std::to_string(where.replicas.size()) + " partitions");
    }
    std::vector<uint64_t>& replicas = where.replicas[p];
    auto it = std::find(replicas.begin(), replicas.end(), from);
    if (it == replicas.end()) {
      return Error(Errc::kInvalidArgument, "node " + std::to_string(from) +
                                               " holds no replica of partition " + std::to_string(p));
    }
    if (!cluster.members.contains(to)) {
      return Error(Errc::kInvalidArgument, "node " + std::to_string(to) + " is not a member");
    }
    if (std::find(replicas.begin(), replicas.end(), to) != replicas.end()) {
      return Error(Errc::kInvalidArgument, "node " + std::to_string(to) +
                                               " already holds a replica of partition " +
                                               std::to_string(p));
    }
    *it = to;
    return where;
  }

  void keyspace_call(placement::KeyspaceCall call,
                     std::function<void(base::Result<std::string>)> done) {
    using Op = placement::KeyspaceCall::Op;
    const placement::Catalog& catalog = host->router().catalog();
    if (call.op == Op::kList) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& [name, keyspace] : catalog.all()) list.push_back(keyspace_json(keyspace, false));
      done(list.dump(2) + "\n");
      return;
    }
    if (call.op == Op::kDescribe) {
      const placement::Keyspace* keyspace = catalog.find(call.name);
      if (keyspace == nullptr) {
        done(Error(Errc::kNotFound, "no keyspace named '" + call.name + "'"));
        return;
      }
      done(keyspace_json(*keyspace, true).dump(2) + "\n");
      return;
    }
    node::Command command;
    command.key = call.name;
    if (call.op == Op::kMove) {
      auto moved = moved_placement(call);
      if (!moved) {
        done(moved.error());
        return;
      }
      command.op = node::CommandOp::kSetPlacement;
      command.value = placement::encode_placement(*moved);
      // Compare-and-set against the placement the move was made from.
      command.expected = std::to_string(catalog.find(call.name)->first_group) + "/" +
                         placement::placement_version(*host->router().placement_of(call.name));
    } else if (call.op == Op::kCreate) {
      auto keyspace = placement::keyspace_from_options(call.name, call.options);
      if (!keyspace) {
        done(keyspace.error());
        return;
      }
      if (keyspace->mode == placement::Mode::kEventual) {
        done(Error(Errc::kInvalidArgument,
                   "eventual keyspaces are not served yet; create it with --mode strong"));
        return;
      }
      if (keyspace->replicas > cluster.members.size()) {
        done(Error(Errc::kInvalidArgument,
                   "replicas " + std::to_string(keyspace->replicas) + " is more than the " +
                       std::to_string(cluster.members.size()) + " members of this cluster"));
        return;
      }
      std::vector<placement::Member> members;
      for (const auto& [id, address] : cluster.members) members.push_back({id, ""});
      auto where = placement::place(members, keyspace->partitions, keyspace->replicas, {});
      if (!where) {
        done(where.error());
        return;
      }
      command.op = node::CommandOp::kCreateKeyspace;
      command.value = placement::encode_keyspace(*keyspace);
      command.expected = placement::encode_placement(*where);
    } else if (call.op == Op::kDrop) {
      command.op = node::CommandOp::kDropKeyspace;
    }
    const std::string name = call.name;
    const bool create = call.op == Op::kCreate;
    // What the reply describes if this node has not applied the change yet.
    std::optional<placement::Keyspace> created;
    std::optional<placement::Placement> placed;
    if (create) {
      created = *placement::decode_keyspace(command.value);
      placed = *placement::decode_placement(command.expected, placement::kPartitionsMax);
    }
    const uint64_t id = next_request++;
    const Op op = call.op;
    waiting.emplace(id, [this, name, create, op, created, placed,
                         done = std::move(done)](node::Response response) {
      if (response.status == node::Response::Status::kTimeout) {
        done(Error(Errc::kUnavailable, "no answer in time; the change may still take effect "
                                       "(see keyspace describe): " + response.reason));
        return;
      }
      if (response.status != node::Response::Status::kOk) {
        done(Error(Errc::kUnavailable, "the meta group did not take it: " + response.reason));
        return;
      }
      if (response.reply.kind == node::CommandReply::Kind::kError) {
        std::string why = response.reply.error;
        if (why.starts_with("ERR ")) why = why.substr(4);
        done(Error(why.starts_with("no keyspace") ? Errc::kNotFound : Errc::kInvalidArgument, why));
        return;
      }
      say("keyspace '" + name + "' " +
          (create ? "created (it activates in about 4 s)"
                  : op == Op::kMove ? "has a new placement; its replicas move" : "dropped"));
      const placement::Keyspace* known = stopped ? nullptr : host->router().catalog().find(name);
      if (known != nullptr && (!create || known->first_group == static_cast<uint64_t>(response.reply.integer))) {
        done(keyspace_json(*known, true).dump(2) + "\n");
      } else if (create) {
        // Committed, not yet applied here: described from the request.
        placement::Keyspace k = *created;
        k.first_group = static_cast<uint64_t>(response.reply.integer);
        k.state = placement::KeyspaceState::kCreating;
        nlohmann::json json = keyspace_json_without_placement(k);
        json["placement"] = nlohmann::json::array();
        for (uint32_t p = 0; p < placed->replicas.size(); ++p) {
          json["placement"].push_back({{"partition", p},
                                       {"group", k.group_of_partition(p)},
                                       {"replicas", placed->replicas[p]},
                                       {"leader", 0}});
        }
        done(json.dump(2) + "\n");
      } else if (op == Op::kMove && known != nullptr) {
        done(keyspace_json(*known, true).dump(2) + "\n");
      } else {
        done(nlohmann::json{{"name", name}, {"state", "dropping"}}.dump() + "\n");
      }
    });
    host->submit_meta(id, std::move(command));
    touch();
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
  impl_->host.reset();
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
                              {"keyspace", g.keyspace},
                              {"partition", g.partition},
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
  // The placement as this node's catalog has it: replicas per node for
  // every keyspace.
  json["placement"] = nlohmann::json::array();
  std::vector<placement::Member> members;
  for (const auto& [id, address] : impl_->cluster.members) members.push_back({id, ""});
  for (const auto& [name, keyspace] : impl_->host->router().catalog().all()) {
    const placement::Placement* where = impl_->host->router().placement_of(name);
    if (where == nullptr) continue;
    nlohmann::json loads = nlohmann::json::object();
    for (const auto& [node, count] : placement::loads(*where, members)) {
      loads[std::to_string(node)] = count;
    }
    json["placement"].push_back({{"keyspace", name},
                                 {"state", std::string(placement::state_name(keyspace.state))},
                                 {"partitions", keyspace.partitions},
                                 {"replicas_per_node", loads}});
  }
  json["moves"] = nlohmann::json::array();
  for (const node::MoveStatus& m : impl_->host->moves()) {
    json["moves"].push_back({{"group", m.group},
                             {"name", m.name},
                             {"target", m.target},
                             {"voters", m.voters},
                             {"learners", m.learners},
                             {"joint", m.joint},
                             {"learner", m.learner},
                             {"learner_match", m.learner_match},
                             {"last_index", m.last_index}});
  }
  return json.dump(2) + "\n";
}

std::string NodeHost::locate_json(const std::string& key) const {
  const node::Route where = impl_->host->router().route(key, monotonic_ms());
  nlohmann::json json;
  json["key"] = key;
  json["keyspace"] = where.keyspace;
  json["partition"] = where.partition;
  json["group"] = where.group;
  json["replicas"] = impl_->host->router().replicas_of(where.group);
  json["leader"] = impl_->host->leader_of(where.group);
  if (where.kind != node::Route::Kind::kGroup) json["not_served"] = where.why;
  return json.dump() + "\n";
}

void NodeHost::keyspace_call(placement::KeyspaceCall call,
                             std::function<void(base::Result<std::string>)> done) {
  if (impl_->stopped || !impl_->failure.empty()) {
    done(Error(Errc::kUnavailable, "the node is not serving"));
    return;
  }
  impl_->keyspace_call(std::move(call), std::move(done));
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
  set_counter("synod_raft_leader_changes_total", "", impl_->host->leader_changes());
  set_counter("synod_proposals_total", "", s.proposals);
  set_counter("synod_wal_syncs_total", "", s.wal_syncs);
  set_counter("synod_wal_bytes_total", "", s.wal_bytes);
  for (double seconds : impl_->wal_write_seconds) {
    metrics.observe("synod_wal_write_duration_seconds", "", seconds);
  }
  impl_->wal_write_seconds.clear();
  metrics.set_gauge("synod_requests_open", "", static_cast<double>(s.requests_open));
  metrics.describe("synod_moves_in_flight", "gauge",
                   "Replica moves this node drives (groups it leads not yet at their placement)");
  metrics.set_gauge("synod_moves_in_flight", "", static_cast<double>(impl_->host->moves().size()));
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
  for (uint64_t id : i.host->groups()) {
    const node::Node& node = *i.host->group(id);
    const raft::Raft& raft = node.raw().raft();
    GroupStatus group;
    group.group = id;
    if (const placement::Keyspace* keyspace = i.host->router().catalog().keyspace_of_group(id)) {
      group.keyspace = keyspace->name;
      group.partition = static_cast<uint32_t>(id - keyspace->first_group);
    }
    group.role = std::string(raft::role_name(raft.role()));
    group.term = raft.term().value();
    group.leader = raft.leader().value();
    group.commit = raft.log().committed().value();
    group.applied = node.machine().applied().index.value();
    group.last_index = raft.log().last_index().value();
    status.groups.push_back(group);
  }
  status.peers = i.transport->peers();
  status.requests_open = i.waiting.size();
  status.elections_won = i.host->elections_won();
  status.proposals = i.proposals;
  const storage::WalStats wal = i.log->wal().stats();
  status.wal_syncs = wal.syncs;
  status.wal_batches = wal.batches;
  status.wal_bytes = wal.bytes;
  status.failure = i.failure;
  return status;
}

}  // namespace synod::runtime
