#include "runtime/node_host.h"

#include <asio.hpp>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <random>
#include <set>

#include "node/catalog_router.h"
#include "placement/partition.h"
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

// Group 1 is the meta group (the keyspace catalog); groups 2.. are the
// default keyspace's partitions; created keyspaces' groups start at
// node::kFirstKeyspaceGroup.
constexpr raft::GroupId kMetaGroup{1};
constexpr uint64_t kFirstPartitionGroup = 2;
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

node::Response unavailable(std::string reason) {
  node::Response response;
  response.status = node::Response::Status::kUnavailable;
  response.reason = std::move(reason);
  return response;
}

const std::string& key_of(const node::Request& request) {
  return request.kind == node::Request::Kind::kRead ? request.key : request.command.key;
}

// Every group starts from the same configuration, as a snapshot at index 1
// on every member, so they agree without an election on who the members
// are. The engine may already hold the group's bootstrap state (a crash
// came before the WAL record was durable); then only the record is added.
base::Status add_bootstrap(node::KvEngine* engine, raft::GroupId group,
                           const std::vector<uint64_t>& voters, storage::WalBatch& batch) {
  raft::ConfState conf;
  for (uint64_t id : voters) conf.voters.push_back(raft::NodeId{id});
  node::KvStateMachine machine(group, engine);
  if (auto s = machine.load(); !s) return s;
  if (machine.applied().index == raft::LogIndex{0}) {
    if (auto s = machine.bootstrap(node::AppliedState{raft::LogIndex{1}, raft::Term{1}, conf}); !s) {
      return s;
    }
  }
  batch.add_snapshot(group, raft::SnapshotMeta{raft::LogIndex{1}, raft::Term{1}, conf},
                     storage::SnapshotMode::kInstall);
  batch.add_hard_state(group, raft::HardState{raft::Term{1}, raft::NodeId{}, raft::LogIndex{1}});
  return {};
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
    bool retiring = false;  // its keyspace is gone: removed once no write is in flight
    std::string name;       // for the log ("keyspace app partition 3")
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
  struct Waiting {
    Done done;
    uint64_t group = 0;  // where it was submitted (0: held or forwarded by the host)
  };
  std::map<uint64_t, Waiting> waiting;  // request id -> caller
  uint64_t next_request = 1;
  bool stopped = false;
  std::string failure;
  uint64_t elections_won = 0;
  uint64_t proposals = 0;
  uint64_t leader_changes = 0;
  std::vector<double> wal_write_seconds;  // since the last export

  // The catalog: routing, its lease, the next steps of keyspaces.
  std::unique_ptr<node::CatalogRouter> router;
  uint64_t catalog_version_seen = 0;
  bool refresh_posted = false;
  std::set<std::string> steps_in_flight;  // keyspaces whose next step is proposed
  // Requests for keys with a ':' that wait for the catalog to be confirmed.
  struct Held {
    uint64_t id = 0;
    node::Request request;
    uint64_t deadline_ms = 0;
  };
  std::vector<Held> held;
  // Requests for groups this node holds no replica of, sent to one that does.
  struct Proxied {
    uint64_t group = 0;
    node::Request request;
    uint64_t deadline_ms = 0;
    uint64_t sent_to = 0;  // 0: not in flight
    bool left = false;     // sent at least once: its outcome may be unknown
    size_t attempts = 0;
    std::string last_refusal;
  };
  std::map<uint64_t, Proxied> proxied;  // by request id
  std::map<uint64_t, uint64_t> leader_hint;  // group -> the node that last answered for it
  const uint64_t incarnation = random_u64();

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

    placement::Keyspace default_keyspace;
    default_keyspace.name = std::string(placement::kDefaultKeyspace);
    default_keyspace.partitions = static_cast<uint32_t>(cluster.partitions);
    default_keyspace.replicas = static_cast<uint32_t>(cluster.members.size());
    default_keyspace.first_group = kFirstPartitionGroup;
    placement::Placement everywhere;
    std::vector<uint64_t> members;
    for (const auto& [id, address] : cluster.members) members.push_back(id);
    everywhere.replicas.assign(cluster.partitions, members);
    router = std::make_unique<node::CatalogRouter>(default_keyspace, everywhere, kRouterOptions);

    for (uint64_t g = kMetaGroup.value(); g < kFirstPartitionGroup + cluster.partitions; ++g) {
      if (auto s = start_group(raft::GroupId{g}); !s) return s;
    }
    // The created keyspaces' replicas, as far as the meta group's applied
    // state knows them; the rest follow as it replays its log.
    if (auto s = refresh_catalog(); !s) return s;

    PeerTransportOptions peer;
    peer.node_id = options.node_id;
    peer.cluster_id = cluster.cluster_id;
    peer.members = cluster.members;
    peer.phi_threshold = options.phi_threshold;
    peer.listen_address = options.peer_listen.empty() ? cluster.members[options.node_id]
                                                      : options.peer_listen;
    transport = std::make_unique<PeerTransport>(
        loop, peer,
        [this](uint64_t from, node::PeerMessage message) { receive(from, std::move(message)); },
        [this](const std::string& line) { say(line); });
    return {};
  }

  void receive(uint64_t from, node::PeerMessage message) {
    if (stopped || !failure.empty()) return;
    const uint64_t group_id = node::group_of(message);
    auto it = groups.find(group_id);
    if (it != groups.end() && !it->second.retiring) {
      it->second.node->receive(raft::NodeId{from}, std::move(message));
      touch(group_id);
      return;
    }
    if (auto* reply = std::get_if<node::ForwardReply>(&message)) {
      proxy_reply(from, std::move(*reply));
    } else if (auto* forward = std::get_if<node::ForwardRequest>(&message)) {
      // Sent here by a node whose catalog says this one holds the group:
      // not (yet, or any more). Saying so lets it try another replica.
      node::ForwardReply refusal{forward->incarnation, forward->id,
                                 unavailable("node " + std::to_string(options.node_id) +
                                             " holds no replica of group " +
                                             std::to_string(group_id)),
                                 group_id};
      outbox[from].push_back(std::move(refusal));
      at_end_of_turn(flush_posted, &Impl::flush);
    }
    // Raft messages for a group not started here yet are dropped; Raft
    // sends again.
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
    group.name = group_name(id.value());
    node::Node* process = group.node.get();
    log->group(id).set_snapshot_source([process] { return process->machine().snapshot(); });
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
    std::vector<uint64_t> voters;
    for (const auto& [id, address] : cluster.members) voters.push_back(id);
    storage::WalBatch batch;
    for (uint64_t g = kMetaGroup.value(); g < kFirstPartitionGroup + cluster.partitions; ++g) {
      if (auto s = add_bootstrap(engine.get(), raft::GroupId{g}, voters, batch); !s) return s;
    }
    if (auto s = log->write(batch); !s) return s;
    say("bootstrapped cluster \"" + cluster.cluster_id + "\" with " +
        std::to_string(cluster.members.size()) + " members, a meta group and " +
        std::to_string(cluster.partitions) + " partitions");
    return {};
  }

  // ---- The catalog ----------------------------------------------------

  const node::KvStateMachine& meta_machine() const {
    return groups.at(kMetaGroup.value()).node->machine();
  }

  // Rereads the catalog from the meta group's state and brings the replicas
  // this node holds in line with it.
  base::Status refresh_catalog() {
    catalog_version_seen = meta_machine().catalog_version();
    auto read = node::read_catalog(meta_machine());
    if (!read) return read.error();
    router->update(std::move(*read), monotonic_ms());
    const std::map<uint64_t, std::vector<uint64_t>> wanted = router->groups_of(options.node_id);
    storage::WalBatch batch;
    std::vector<uint64_t> fresh;
    for (const auto& [g, voters] : wanted) {
      if (groups.contains(g)) continue;
      const raft::GroupId id{g};
      if (!log->has_group(id)) {
        if (auto s = add_bootstrap(engine.get(), id, voters, batch); !s) return s;
      }
      fresh.push_back(g);
    }
    if (!batch.empty()) {
      if (auto s = log->write(batch); !s) return s;
    }
    for (uint64_t g : fresh) {
      if (auto s = start_group(raft::GroupId{g}); !s) return s;
      say(group_name(g) + ": replica started");
    }
    for (auto& [g, group] : groups) {
      if (g >= node::kFirstKeyspaceGroup && !wanted.contains(g) && !group.retiring) {
        group.retiring = true;
        say(group_name(g) + ": its keyspace is gone; removing this replica");
      }
    }
    retire_groups();
    return {};
  }

  void refresh_catalog_now() {
    if (stopped || !failure.empty()) return;
    if (auto s = refresh_catalog(); !s) fail("the keyspace catalog: " + s.error().to_string());
  }

  // Removes the replicas of forgotten keyspaces once no write of theirs is
  // in flight: the log is cut back to nothing (so it holds no WAL segment),
  // then the data goes.
  void retire_groups() {
    for (auto it = groups.begin(); it != groups.end();) {
      Group& group = it->second;
      const uint64_t g = it->first;
      if (!group.retiring || group.node->persist_in_flight()) {
        ++it;
        continue;
      }
      const raft::GroupId id{g};
      storage::GroupLog& group_log = log->group(id);
      const raft::LogIndex last = group_log.last_index();
      auto term = group_log.term(last);
      storage::WalBatch batch;
      batch.add_snapshot(id, raft::SnapshotMeta{last, term ? *term : raft::Term{0}, {}},
                         storage::SnapshotMode::kInstall);
      if (auto s = log->write(batch); !s) {
        fail("removing " + group_name(g) + ": " + s.error().to_string());
        return;
      }
      group_log.set_snapshot_source([] {
        return base::Result<raft::Snapshot>(Error(Errc::kUnavailable, "the replica was removed"));
      });
      node::KvStateMachine machine(id, engine.get());
      if (auto s = machine.remove_all(); !s) {
        fail("removing " + group_name(g) + ": " + s.error().to_string());
        return;
      }
      for (auto& [request, entry] : waiting) {
        if (entry.group != g) continue;
        node::Response response;
        response.status = node::Response::Status::kTimeout;
        response.reason = "the keyspace was dropped while the request was open";
        post_reply(std::move(entry.done), std::move(response));
      }
      std::erase_if(waiting, [g](const auto& entry) { return entry.second.group == g; });
      say(group_name(g) + ": replica removed");
      it = groups.erase(it);
    }
  }

  // The catalog lease: a ReadIndex on the meta group. Its answer means the
  // meta group's state here is at least as new as it was when it was asked.
  void renew_catalog() {
    const uint64_t now = monotonic_ms();
    if (!router->renewal_due(now)) return;
    router->renewal_started(now);
    node::Request read;
    read.kind = node::Request::Kind::kRead;
    read.key = "";  // any key: the ReadIndex is what counts
    const uint64_t id = next_request++;
    std::weak_ptr<bool> alive_check = alive;
    waiting.emplace(id, Waiting{[this, alive_check](node::Response response) {
                                  if (alive_check.expired()) return;
                                  router->renewal_finished(response.status ==
                                                           node::Response::Status::kOk);
                                  if (router->confirmed(monotonic_ms())) release_held();
                                },
                                kMetaGroup.value()});
    groups.at(kMetaGroup.value()).node->submit(id, std::move(read));
    touch(kMetaGroup.value());
  }

  void release_held() {
    for (Held& h : std::exchange(held, {})) route(h.id, std::move(h.request), h.deadline_ms);
  }

  // On the meta leader: activate or forget keyspaces whose wait is over.
  void take_catalog_steps() {
    const node::Node& meta = *groups.at(kMetaGroup.value()).node;
    if (meta.raw().raft().role() != raft::Role::kLeader) return;
    for (const node::CatalogStep& step : router->due_steps(monotonic_ms())) {
      if (!steps_in_flight.insert(step.keyspace).second) continue;
      node::Command command;
      command.op = step.op;
      command.key = step.keyspace;
      const std::string name = step.keyspace;
      const std::string what = step.op == node::CommandOp::kActivateKeyspace ? "activated" : "forgotten";
      submit_meta(std::move(command), [this, name, what](node::Response response) {
        steps_in_flight.erase(name);
        if (response.status == node::Response::Status::kOk &&
            response.reply.kind != node::CommandReply::Kind::kError) {
          say("keyspace '" + name + "' " + what);
        }
      });
    }
  }

  // A write to the meta group, with a dedupe id of its own (so an internal
  // retry applies once and an older one is never mistaken for it).
  void submit_meta(node::Command command, Done done) {
    command.client_id = random_u64() | 1;
    command.sequence = 1;
    node::Request request;
    request.kind = node::Request::Kind::kWrite;
    request.command = std::move(command);
    const uint64_t id = next_request++;
    std::weak_ptr<bool> alive_check = alive;
    waiting.emplace(id, Waiting{[alive_check, done = std::move(done)](node::Response response) {
                                  if (!alive_check.expired()) done(std::move(response));
                                },
                                kMetaGroup.value()});
    groups.at(kMetaGroup.value()).node->submit(id, std::move(request));
    touch(kMetaGroup.value());
  }

  // ---- Requests -------------------------------------------------------

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
          if (group.retiring) continue;
          group.node->tick();
          drain(id);
          if (!failure.empty()) break;
        }
      }
      if (failure.empty()) {
        renew_catalog();
        take_catalog_steps();
        expire_host_requests();
        retire_groups();
      }
      schedule_tick();
    });
  }

  uint64_t deadline_for(const node::Request& request) const {
    const uint64_t bytes = key_of(request).size() + request.command.value.size();
    return monotonic_ms() + options.request_timeout_ms + 100 * (bytes >> 20);
  }

  void submit(node::Request request, Done done) {
    if (stopped || !failure.empty()) {
      post_reply(std::move(done), unavailable(stopped ? "the node is stopping"
                                                      : "the node stopped: " + failure));
      return;
    }
    const uint64_t id = next_request++;
    waiting.emplace(id, Waiting{std::move(done), 0});
    if (request.kind == node::Request::Kind::kWrite) ++proposals;
    // The time every replica will judge this request's expiries against.
    const uint64_t now_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    request.now_ms = now_ms;
    request.command.now_ms = now_ms;
    const uint64_t deadline = deadline_for(request);
    route(id, std::move(request), deadline);
  }

  void route(uint64_t id, node::Request request, uint64_t deadline_ms) {
    const node::Route where = router->route(key_of(request), monotonic_ms());
    switch (where.kind) {
      case node::Route::Kind::kHold:
        held.push_back(Held{id, std::move(request), deadline_ms});
        return;
      case node::Route::Kind::kRefuse:
        answer(id, unavailable(where.why));
        return;
      case node::Route::Kind::kGroup:
        break;
    }
    auto it = groups.find(where.group);
    if (it != groups.end() && !it->second.retiring) {
      waiting.at(id).group = where.group;
      it->second.node->submit(id, std::move(request));
      touch(where.group);
      return;
    }
    proxied.emplace(id, Proxied{where.group, std::move(request), deadline_ms});
    proxy_send(id);
  }

  // Sends a proxied request to a replica of its group: the one that last
  // answered, then the others in turn.
  void proxy_send(uint64_t id) {
    Proxied& p = proxied.at(id);
    std::vector<uint64_t> replicas = router->replicas_of(p.group);
    std::erase(replicas, options.node_id);
    if (replicas.empty()) {
      finish_proxied(id, unavailable("no node is known to hold group " + std::to_string(p.group)));
      return;
    }
    uint64_t target = replicas[p.attempts % replicas.size()];
    if (auto hint = leader_hint.find(p.group); p.attempts == 0 && hint != leader_hint.end() &&
                                               std::ranges::count(replicas, hint->second) > 0) {
      target = hint->second;
    }
    ++p.attempts;
    p.sent_to = target;
    p.left = true;
    const uint64_t now = monotonic_ms();
    node::ForwardRequest forward;
    forward.incarnation = incarnation;
    forward.id = id;
    forward.request = p.request;
    forward.ticks_left = p.deadline_ms > now ? (p.deadline_ms - now) / options.tick_ms : 0;
    forward.group = p.group;
    outbox[target].push_back(std::move(forward));
    at_end_of_turn(flush_posted, &Impl::flush);
  }

  void proxy_reply(uint64_t from, node::ForwardReply reply) {
    if (reply.incarnation != incarnation) return;  // meant for an earlier life
    auto it = proxied.find(reply.id);
    if (it == proxied.end() || it->second.sent_to != from) return;
    Proxied& p = it->second;
    if (reply.response.status == node::Response::Status::kUnavailable) {
      // Not the leader, or no replica there: try the next one, and after a
      // full round wait for the tick (a leader may be being elected).
      p.sent_to = 0;
      p.last_refusal = reply.response.reason;
      const size_t replicas = std::max<size_t>(1, router->replicas_of(p.group).size());
      if (p.attempts % replicas != 0) proxy_send(reply.id);
      return;
    }
    leader_hint[p.group] = from;
    finish_proxied(reply.id, std::move(reply.response));
  }

  void finish_proxied(uint64_t id, node::Response response) {
    proxied.erase(id);
    answer(id, std::move(response));
  }

  // Held and proxied requests past their deadline; proxied ones refused by
  // every replica are sent round again.
  void expire_host_requests() {
    const uint64_t now = monotonic_ms();
    std::vector<Held> still;
    for (Held& h : std::exchange(held, {})) {
      if (now < h.deadline_ms) {
        still.push_back(std::move(h));
      } else {
        answer(h.id, unavailable("this node could not confirm its keyspace catalog with the meta "
                                 "group in time (is a majority of the cluster reachable?)"));
      }
    }
    held = std::move(still);
    std::vector<uint64_t> resend, expired;
    for (auto& [id, p] : proxied) {
      if (now >= p.deadline_ms) {
        expired.push_back(id);
      } else if (p.sent_to == 0) {
        resend.push_back(id);
      }
    }
    for (uint64_t id : expired) {
      Proxied& p = proxied.at(id);
      node::Response response;
      // A write that reached a replica may still be applied.
      const bool unknown = p.sent_to != 0 && p.request.kind == node::Request::Kind::kWrite;
      response.status = unknown ? node::Response::Status::kTimeout
                                : node::Response::Status::kUnavailable;
      response.reason = unknown ? "no answer from node " + std::to_string(p.sent_to) + " in time"
                                : (p.last_refusal.empty() ? "no replica answered in time"
                                                          : p.last_refusal);
      finish_proxied(id, std::move(response));
    }
    for (uint64_t id : resend) {
      if (proxied.contains(id)) proxy_send(id);
    }
  }

  // Answered from a later turn of the loop, never from inside submit() or
  // drain(): a caller that submits again from its callback (MGET's next
  // key) must not recurse once per key.
  void post_reply(Done done, node::Response response) {
    asio::post(loop, [done = std::move(done), response = std::move(response)]() mutable {
      done(std::move(response));
    });
  }

  void answer(uint64_t id, node::Response response) {
    auto it = waiting.find(id);
    if (it == waiting.end()) return;
    post_reply(std::move(it->second.done), std::move(response));
    waiting.erase(it);
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
    auto found = groups.find(group_id);
    if (found == groups.end() || found->second.retiring) return;
    Group& group = found->second;
    node::NodeOutput out = group.node->take_output();
    // A changed catalog is reread before this turn's replies go out, so a
    // caller told "created" finds it described.
    if (group_id == kMetaGroup.value() &&
        group.node->machine().catalog_version() != catalog_version_seen) {
      at_end_of_turn(refresh_posted, &Impl::refresh_catalog_now);
    }
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
    for (auto& [id, response] : out.responses) answer(id, std::move(response));
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

  // "meta group", "partition 3" (of default), "keyspace app partition 3".
  std::string group_name(uint64_t group_id) const {
    if (auto it = groups.find(group_id); it != groups.end() && !it->second.name.empty()) {
      return it->second.name;
    }
    if (group_id == kMetaGroup.value()) return "meta group";
    if (group_id < node::kFirstKeyspaceGroup) {
      return "partition " + std::to_string(group_id - kFirstPartitionGroup);
    }
    for (const auto& [name, keyspace] : router->catalog().all()) {
      if (group_id >= keyspace.first_group && group_id < keyspace.first_group + keyspace.partitions) {
        return "keyspace " + name + " partition " + std::to_string(group_id - keyspace.first_group);
      }
    }
    return "group " + std::to_string(group_id);
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
        auto it = groups.find(group_id);
        if (it == groups.end()) return;
        it->second.node->persisted();
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
    std::map<uint64_t, Waiting> open = std::move(waiting);
    waiting.clear();
    held.clear();
    proxied.clear();
    for (auto& [id, entry] : open) {
      // It may already be in a log: its outcome is unknown, not "never proposed".
      node::Response response;
      response.status = node::Response::Status::kTimeout;
      response.reason = reason;
      entry.done(std::move(response));
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

  // ---- Keyspace administration -----------------------------------------

  nlohmann::json keyspace_json(const placement::Keyspace& k, bool with_placement) const {
    nlohmann::json json = {{"name", k.name},
                           {"mode", std::string(placement::mode_name(k.mode))},
                           {"replicas", k.replicas},
                           {"partitions", k.partitions},
                           {"zone_policy", k.zone_policy},
                           {"state", std::string(placement::state_name(k.state))},
                           {"first_group", k.first_group}};
    if (!with_placement) return json;
    json["placement"] = nlohmann::json::array();
    const placement::Placement* where = router->placement_of(k.name);
    for (uint32_t p = 0; where != nullptr && p < where->replicas.size(); ++p) {
      const uint64_t g = k.group_of_partition(p);
      auto group = groups.find(g);
      const uint64_t leader = group == groups.end() ? 0 : group->second.node->leader().value();
      json["placement"].push_back(
          {{"partition", p}, {"group", g}, {"replicas", where->replicas[p]}, {"leader", leader}});
    }
    return json;
  }

  void keyspace_call(placement::KeyspaceCall call,
                     std::function<void(base::Result<std::string>)> done) {
    using Op = placement::KeyspaceCall::Op;
    const placement::Catalog& catalog = router->catalog();
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
    if (call.op == Op::kCreate) {
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
    } else {
      command.op = node::CommandOp::kDropKeyspace;
    }
    const std::string name = call.name;
    const bool create = call.op == Op::kCreate;
    submit_meta(std::move(command), [this, name, create, done = std::move(done)](
                                        node::Response response) {
      if (response.status != node::Response::Status::kOk) {
        done(Error(Errc::kUnavailable, "the meta group did not answer: " + response.reason));
        return;
      }
      if (response.reply.kind == node::CommandReply::Kind::kError) {
        std::string why = response.reply.error;
        if (why.starts_with("ERR ")) why = why.substr(4);
        done(Error(why.starts_with("no keyspace") ? Errc::kNotFound : Errc::kInvalidArgument, why));
        return;
      }
      say("keyspace '" + name + "' " + (create ? "created (it activates in about 4 s)" : "dropped"));
      const placement::Keyspace* keyspace = router->catalog().find(name);
      if (keyspace == nullptr) {
        done(nlohmann::json{{"name", name}}.dump() + "\n");
      } else {
        done(keyspace_json(*keyspace, true).dump(2) + "\n");
      }
    });
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
  return json.dump(2) + "\n";
}

std::string NodeHost::locate_json(const std::string& key) const {
  const node::Route where = impl_->router->route(key, monotonic_ms());
  nlohmann::json json;
  json["key"] = key;
  json["keyspace"] = where.keyspace;
  json["partition"] = where.partition;
  json["group"] = where.group;
  json["replicas"] = impl_->router->replicas_of(where.group);
  auto group = impl_->groups.find(where.group);
  uint64_t leader = 0;
  if (group != impl_->groups.end()) {
    leader = group->second.node->leader().value();
  } else if (auto hint = impl_->leader_hint.find(where.group); hint != impl_->leader_hint.end()) {
    leader = hint->second;  // the replica that last answered a forwarded request
  }
  json["leader"] = leader;
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
    if (id != kMetaGroup.value()) {
      for (const auto& [name, keyspace] : i.router->catalog().all()) {
        if (id >= keyspace.first_group && id < keyspace.first_group + keyspace.partitions) {
          group.keyspace = name;
          group.partition = static_cast<uint32_t>(id - keyspace.first_group);
        }
      }
    }
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
