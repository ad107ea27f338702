#include "sim/simulator.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>

#include "base/assert.h"
#include "base/frame.h"
#include "base/rng.h"
#include "node/group_host.h"
#include "node/node.h"
#include "placement/placement.h"
#include "raft/raft.h"
#include "sim/network.h"
#include "storage/faulty_file_system.h"
#include "storage/group_log.h"
#include "storage/mem_kv_engine.h"

namespace synod::sim {

const FaultInfo kFaults[kFaultCount] = {
    {Fault::kPartition, "partition",
     "random halves, isolated leader, bridge, majorities ring; then heal"},
    {Fault::kNetwork, "network", "message loss, duplication and reordering"},
    {Fault::kWan, "wan", "nodes spread over three regions with 20-140 ms links between them"},
    {Fault::kCrash, "crash", "kill a process, losing what it had not fsynced; restart it later"},
    {Fault::kPause, "pause", "freeze a process (a GC pause) for up to 3 s, then resume it"},
    {Fault::kDisk, "disk", "slow fsyncs (20-300 ms); a crash during a WAL write tears its tail"},
    {Fault::kClock, "clock", "per-node timer drift up to 5% and forward jumps of up to 1 s"},
};

std::string FaultSet::to_string() const {
  if (empty()) return "none";
  std::string text;
  for (const FaultInfo& info : kFaults) {
    if (!has(info.fault)) continue;
    if (!text.empty()) text += ",";
    text += info.name;
  }
  return text;
}

base::Result<FaultSet> parse_faults(std::string_view text) {
  if (text == "all") return FaultSet::all();
  FaultSet set;
  if (text == "none") return set;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view name = text.substr(start, comma - start);
    bool known = false;
    for (const FaultInfo& info : kFaults) {
      if (info.name == name) {
        set.add(info.fault);
        known = true;
      }
    }
    if (!known) {
      std::string names;
      for (const FaultInfo& info : kFaults) names += std::string(names.empty() ? "" : ", ") + std::string(info.name);
      return base::Error(base::Errc::kInvalidArgument,
                         "unknown fault \"" + std::string(name) + "\"; known: " + names +
                             " (or all, none)");
    }
    start = comma + 1;
  }
  return set;
}

base::Status SimOptions::validate() const {
  auto bad = [](std::string why) { return base::Status(base::Error(base::Errc::kInvalidArgument, why)); };
  if (nodes < 1 || nodes > 9) return bad("nodes must be between 1 and 9");
  if (clients < 1 || clients > 1000) return bad("clients must be between 1 and 1000");
  if (partitions < 1 || partitions > 64) return bad("partitions must be between 1 and 64");
  if (duration_ns == 0) return bad("duration must be positive");
  if (liveness_bound_ns < 1'000'000'000) return bad("the liveness bound must be at least 1 s");
  return check.validate();
}

std::string digest_hex(uint64_t digest) {
  char text[17];
  std::snprintf(text, sizeof text, "%016" PRIx64, digest);
  return text;
}

std::string describe_stats(const SimStats& s) {
  char text[512];
  std::snprintf(text, sizeof text,
                "%.1f simulated s, %" PRIu64 " ops (%" PRIu64 " ok, %" PRIu64 " fail, %" PRIu64
                " unknown), %" PRIu64 " leaders, %" PRIu64 " crashes (%" PRIu64 " torn), %" PRIu64
                " pauses, %" PRIu64 " partitions, %" PRIu64 " slow disks, %" PRIu64
                " clock jumps, %" PRIu64 " snapshots, %" PRIu64 " compactions, %" PRIu64
                " messages",
                static_cast<double>(s.simulated_ns) / 1e9, s.operations, s.operations_ok,
                s.operations_fail, s.operations_unknown, s.leaders_elected, s.crashes,
                s.torn_writes, s.pauses, s.partitions, s.slow_disks, s.clock_jumps,
                s.snapshots_installed, s.compactions, s.messages_delivered);
  return text;
}

namespace {

using namespace synod::raft;
using node::PeerMessage;
using node::Request;
using node::Response;

// Group 1 is the meta group (the keyspace catalog); the default keyspace's
// partitions are groups 2.. (node::GroupHost).
constexpr uint64_t kMetaGroup = node::kMetaGroupId;
constexpr uint64_t kFirstDataGroup = 2;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSecond = 1'000 * kMs;
constexpr uint64_t kTickNs = 10 * kMs;
constexpr int kElectionTicks = 20;
constexpr int kHeartbeatTicks = 2;
constexpr uint64_t kRequestTimeoutTicks = 100;
constexpr uint64_t kAttemptTimeoutNs = 1500 * kMs;
constexpr int kAttemptsMax = 3;
constexpr size_t kPausedBacklogMax = 20'000;
const char* const kRegisterKeys[] = {"r0", "r1", "r2"};
const char* const kCounterKeys[] = {"c0", "c1"};
// The keyspace an operator creates and drops during the run, and its keys
// (used only while it is active: see keyspace_step).
constexpr const char* kKeyspace = "ks";
const char* const kKeyspaceRegisterKeys[] = {"ks:r0", "ks:r1"};
const char* const kKeyspaceCounterKeys[] = {"ks:c0"};
const char* const kRegions[] = {"us-east", "eu-west", "ap-south"};

enum class Phase : uint8_t { kFaults, kLiveness, kSettle, kDone };

struct SimNode {
  uint64_t id = 0;
  std::unique_ptr<storage::FaultyFileSystem> disk;
  std::unique_ptr<storage::MemKvEngine> engine;
  std::unique_ptr<storage::DurableLog> log;
  std::unique_ptr<storage::WalGroupLogs> logs;
  std::unique_ptr<node::GroupHost> host;
  enum class State : uint8_t { kUp, kPaused, kDown } state = State::kUp;
  uint64_t epoch = 0;  // bumped by every crash: events of a past life are ignored
  uint64_t tick_ns = kTickNs;
  uint64_t slow_fsync_until = 0;
  bool crash_during_next_sync = false;
  std::map<uint64_t, node::PersistRequest> persisting;  // by group: writes in flight
  bool drain_scheduled = false;  // a deferred take_output (defer_drain)
  std::vector<std::function<void()>> backlog;  // what arrived while paused
  // What the checks saw last, per group.
  struct Seen {
    Role role = Role::kFollower;
    Term term;
    LogIndex commit;
  };
  std::map<uint64_t, Seen> seen;
  uint64_t restarts = 0;
};

struct SimClient {
  uint64_t id = 0;
  uint64_t sequence = 0;  // of the last write sent
  bool busy = false;
  Operation op;
  Request request;
  int attempts = 0;
  bool any_timeout = false;
  uint64_t attempt_id = 0;  // the request id of the attempt in flight
  uint64_t node = 0;        // the node it talks to
  uint64_t ok_after_heal = 0;
  std::map<std::string, std::optional<std::string>> last_read;
};

struct Event {
  uint64_t at = 0;
  uint64_t sequence = 0;
  std::function<void()> run;
};
struct EventLater {
  bool operator()(const Event& a, const Event& b) const {
    if (a.at != b.at) return a.at > b.at;
    return a.sequence > b.sequence;
  }
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& options)
      : options_(options),
        rng_(options.seed),
        nemesis_rng_(rng_.fork()),
        client_rng_(rng_.fork()),
        latency_rng_(rng_.fork()),
        network_(rng_.fork(), network_options(options)),
        drain_rng_(rng_.fork()) {
    result_.seed = options.seed;
  }

  SimResult run() {
    setup();
    while (!events_.empty() && phase_ != Phase::kDone && result_.violation.empty()) {
      const uint64_t next_event = events_.top().at;
      const std::optional<uint64_t> next_message = network_.next_delivery_time();
      if (next_message && *next_message <= next_event) {
        now_ = *next_message;
        for (auto& delivery : network_.deliver_until(now_)) deliver(std::move(delivery));
        continue;
      }
      Event event = std::move(const_cast<Event&>(events_.top()));
      events_.pop();
      now_ = event.at;
      result_.stats.events++;
      event.run();
    }
    finish();
    return std::move(result_);
  }

 private:
  static SimNetworkOptions network_options(const SimOptions& options) {
    SimNetworkOptions network;
    if (options.faults.has(Fault::kNetwork)) {
      network.loss_probability = 0.01;
      network.duplicate_probability = 0.01;
      network.reorder_probability = 0.02;
    }
    return network;
  }

  // ---- Set-up --------------------------------------------------------------

  void setup() {
    for (int i = 1; i <= options_.nodes; ++i) {
      const uint64_t id = static_cast<uint64_t>(i);
      SimNode& n = nodes_[id];
      n.id = id;
      n.disk = std::make_unique<storage::FaultyFileSystem>(rng_.next());
      n.engine = std::make_unique<storage::MemKvEngine>();
      const bool wan = options_.faults.has(Fault::kWan);
      network_.add_node(id, wan ? kRegions[(id - 1) % 3] : "dc1");
      if (options_.faults.has(Fault::kClock)) {
        // Up to 5% fast or slow.
        n.tick_ns = kTickNs - kTickNs / 20 + rng_.uniform(kTickNs / 10 + 1);
      }
      bootstrap(n);
    }
    for (auto& [id, n] : nodes_) {
      if (!start(n)) return;
    }
    for (int c = 1; c <= options_.clients; ++c) {
      SimClient& client = clients_[static_cast<uint64_t>(c)];
      client.id = static_cast<uint64_t>(c);
      client.node = static_cast<uint64_t>((c - 1) % options_.nodes + 1);
      schedule(client_rng_.uniform(50 * kMs), [this, c] { client_wake(static_cast<uint64_t>(c)); });
    }
    if (!options_.faults.empty()) schedule(nemesis_delay(), [this] { nemesis(); });
    keyspace_kept_ = nemesis_rng_.chance(1, 2);
    schedule(50 * kMs, [this] { keyspace_step(); });
    schedule(options_.duration_ns, [this] { heal_all(); });
    schedule(100 * kMs, [this] { check_log_matching(); });
    trace("start: " + std::to_string(options_.nodes) + " nodes, " +
          std::to_string(options_.clients) + " clients, faults " + options_.faults.to_string() +
          (options_.bugs.empty() ? std::string() : ", bug " + bug_names()));
  }

  std::string bug_names() const {
    std::string names;
    for (const base::BugInfo& info : base::kBugs) {
      if (options_.bugs.has(info.bug)) names += (names.empty() ? "" : ",") + std::string(info.name);
    }
    return names;
  }

  storage::WalOptions wal_options() const {
    storage::WalOptions wal;
    wal.dir = "/data/wal";
    wal.writer_thread = false;
    wal.segment_bytes_max = 64 * 1024;
    wal.log = [](const std::string&) {};
    return wal;
  }

  // Every node's groups as the server configures them, scaled to the
  // simulator's 10 ms tick.
  node::GroupHostOptions host_options(uint64_t id) {
    node::GroupHostOptions o;
    o.node_id = id;
    for (int i = 1; i <= options_.nodes; ++i) o.members.push_back(static_cast<uint64_t>(i));
    o.default_partitions = static_cast<uint32_t>(options_.partitions);
    o.node.raft.election_tick = kElectionTicks;
    o.node.raft.heartbeat_tick = kHeartbeatTicks;
    o.node.raft.max_size_per_msg_bytes = 1024;  // catching up takes many appends
    o.node.raft.max_inflight_msgs = 64;
    o.node.raft.snapshot_chunk_bytes = 2048;
    o.node.request_timeout_ticks = kRequestTimeoutTicks;
    o.node.compact_every_entries = 100;  // snapshots get sent often
    o.node.report_applied = true;
    o.node.bugs = options_.bugs;
    o.tick_ms = kTickNs / kMs;
    o.request_timeout_ms = kRequestTimeoutTicks * kTickNs / kMs;
    o.router = node::RouterOptions{.lease_ms = 2000, .renew_ms = 500};
    o.random = [this] { return rng_.next(); };
    return o;
  }

  // The node's monotonic clock in ms: simulated time at the node's own rate
  // (clock drift), which never jumps (CLOCK_MONOTONIC is slewed, not
  // stepped; the timer jumps of the clock fault act on ticks).
  uint64_t local_ms(const SimNode& n) const { return now_ / n.tick_ns * kTickNs / kMs; }

  void bootstrap(SimNode& n) {
    auto log = storage::DurableLog::open(*n.disk, wal_options());
    SYNOD_ASSERT(log.ok(), "a fresh simulated disk opens");
    storage::WalGroupLogs logs(log->get());
    SYNOD_ASSERT(node::GroupHost::bootstrap(host_options(n.id), n.engine.get(), &logs).ok(),
                 "bootstrap writes");
  }

  // Opens the node's disk and starts its process; false (with a violation)
  // if recovery fails.
  bool start(SimNode& n) {
    auto log = storage::DurableLog::open(*n.disk, wal_options(),
                                         storage::GroupLogOptions{256 * 1024});
    if (!log.ok()) {
      violation("node " + std::to_string(n.id) + " cannot recover from its disk: " +
                log.error().to_string());
      return false;
    }
    n.log = std::move(*log);
    n.logs = std::make_unique<storage::WalGroupLogs>(n.log.get());
    auto made = node::GroupHost::open(host_options(n.id), n.engine.get(), n.logs.get(), local_ms(n));
    if (!made.ok()) {
      violation("node " + std::to_string(n.id) + " cannot start: " + made.error().to_string());
      return false;
    }
    n.host = std::move(*made);
    n.state = SimNode::State::kUp;
    n.seen.clear();
    for (uint64_t g : n.host->groups()) {
      const Raft& raft = n.host->group(g)->raw().raft();
      n.seen[g] = SimNode::Seen{Role::kFollower, raft.term(), raft.log().committed()};
    }
    const uint64_t epoch = n.epoch;
    const uint64_t id = n.id;
    schedule(n.tick_ns, [this, id, epoch] { tick(id, epoch); });
    return true;
  }

  // ---- Scheduling and the trace -----------------------------------------------

  void schedule(uint64_t delay_ns, std::function<void()> run) {
    events_.push(Event{now_ + delay_ns, next_event_sequence_++, std::move(run)});
  }

  void trace(const std::string& what) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%4" PRIu64 ".%06" PRIu64 " ", now_ / kSecond,
                  (now_ % kSecond) / 1000);
    std::string line = stamp + what;
    digest_ = base::checksum64(line, digest_);
    if (options_.trace_sink) options_.trace_sink(line);
    trace_.push_back(std::move(line));
    if (options_.trace_lines_kept != 0 && trace_.size() > options_.trace_lines_kept) {
      trace_.pop_front();
    }
  }

  void violation(const std::string& what) {
    if (!result_.violation.empty()) return;
    result_.violation = what;
    trace("VIOLATION: " + what);
  }

  // ---- Nodes ------------------------------------------------------------------

  SimNode* up_node(uint64_t id, uint64_t epoch) {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || it->second.epoch != epoch ||
        it->second.state == SimNode::State::kDown) {
      return nullptr;
    }
    return &it->second;
  }

  // Runs `action` on the node now, or when it resumes if it is paused.
  // Arrivals beyond the backlog's bound are dropped (a full socket buffer);
  // the node's own disk completions never are.
  void on_node(SimNode& n, std::function<void()> action, bool droppable = true) {
    if (n.state == SimNode::State::kPaused) {
      if (!droppable || n.backlog.size() < kPausedBacklogMax) n.backlog.push_back(std::move(action));
      return;
    }
    action();
  }

  void tick(uint64_t id, uint64_t epoch) {
    SimNode* n = up_node(id, epoch);
    if (n == nullptr) return;
    schedule(n->tick_ns, [this, id, epoch] { tick(id, epoch); });
    if (n->state == SimNode::State::kPaused) return;  // a frozen process's timer is late
    int ticks = 1;
    if (phase_ == Phase::kFaults && options_.faults.has(Fault::kClock) &&
        nemesis_rng_.chance(1, 20000)) {
      // The node's monotonic clock leaps ahead (a VM migration, an NTP step
      // of a badly configured source): every timer due in the gap fires.
      ticks = static_cast<int>(nemesis_rng_.between(5, 100));
      result_.stats.clock_jumps++;
      trace("n" + std::to_string(id) + " clock jumps " + std::to_string(ticks) + " ticks");
    }
    for (int i = 0; i < ticks && n->host; ++i) {
      n->host->tick(local_ms(*n));
      drain(*n);
    }
  }

  void deliver(Delivery<PeerMessage> delivery) {
    result_.stats.messages_delivered++;
    digest_message(delivery);
    auto it = nodes_.find(delivery.to);
    if (it == nodes_.end() || it->second.state == SimNode::State::kDown) return;
    SimNode& n = it->second;
    const uint64_t epoch = n.epoch;
    const uint64_t id = n.id;
    auto message = std::make_shared<PeerMessage>(std::move(delivery.message));
    const NodeId from{delivery.from};
    on_node(n, [this, id, epoch, from, message] {
      SimNode* target = up_node(id, epoch);
      if (target == nullptr) return;
      target->host->receive(from.value(), std::move(*message), local_ms(*target));
      defer_drain(*target);
    });
  }

  void digest_message(const Delivery<PeerMessage>& delivery) {
    uint64_t words[6] = {delivery.from, delivery.to, delivery.at, delivery.message.index(), 0, 0};
    if (const auto* m = std::get_if<Message>(&delivery.message)) {
      words[4] = (static_cast<uint64_t>(m->type) << 56) ^ m->term.value();
      words[5] = m->index.value() ^ (m->commit.value() << 32) ^ m->entries.size();
    } else if (const auto* f = std::get_if<node::ForwardRequest>(&delivery.message)) {
      words[4] = f->id;
    } else if (const auto* r = std::get_if<node::ForwardReply>(&delivery.message)) {
      words[4] = r->id;
      words[5] = static_cast<uint64_t>(r->response.status);
    }
    digest_ = base::checksum64(
        std::string_view(reinterpret_cast<const char*>(words), sizeof words), digest_);
  }

  // Like the server, which takes a group's output once per turn of its loop:
  // after a delivery or a client request the output is often taken up to
  // 0.4 ms later, so several events reach the node first (writes batched
  // into one proposal, leadership changing under queued writes).
  void defer_drain(SimNode& n) {
    if (n.drain_scheduled) return;
    if (drain_rng_.chance(1, 3)) return drain(n);
    n.drain_scheduled = true;
    const uint64_t id = n.id, epoch = n.epoch;
    schedule(drain_rng_.uniform(400'000), [this, id, epoch] {
      SimNode* target = up_node(id, epoch);
      if (target == nullptr) return;
      on_node(*target, [this, id, epoch] {
        SimNode* again = up_node(id, epoch);
        if (again == nullptr) return;
        again->drain_scheduled = false;
        drain(*again);
      }, /*droppable=*/false);
    });
  }

  // Carries out what the node asked for, then checks it.
  void drain(SimNode& n) {
    if (!n.host) return;
    node::GroupHostOutput out = n.host->take_output();
    for (const std::string& line : out.log) {
      // The catalog's life (keyspaces, replicas started and removed); the
      // trace has elections already.
      if (line.find("keyspace") != std::string::npos || line.find("replica") != std::string::npos) {
        trace("n" + std::to_string(n.id) + " " + line);
      }
    }
    for (node::Envelope& envelope : out.messages) {
      if (const auto* m = std::get_if<Message>(&envelope.message)) {
        check_promise(n, node::group_of(envelope.message), *m);
        if (!result_.violation.empty()) return;
      }
      const uint64_t to = envelope.to.value();
      if (!network_.has_node(to)) continue;
      network_.send(n.id, to, std::move(envelope.message), now_);
    }
    for (auto& [request_id, response] : out.responses) respond(request_id, std::move(response));
    for (auto& [group, entries] : out.applied) check_applied(n, group, entries);
    for (auto& [group, request] : out.persists) {
      SYNOD_ASSERT(!n.persisting.contains(group), "one write in flight per group");
      if (request.snapshot) result_.stats.snapshots_installed++;
      if (request.compact) result_.stats.compactions++;
      uint64_t delay = 20'000;  // no fsync: a write to the page cache
      if (request.sync) {
        delay = 200'000 + latency_rng_.uniform(1'800'000);
        if (now_ < n.slow_fsync_until) delay = 20 * kMs + latency_rng_.uniform(280 * kMs);
      }
      const bool crash_now = request.sync && n.crash_during_next_sync;
      n.persisting.emplace(group, std::move(request));
      const uint64_t id = n.id;
      const uint64_t epoch = n.epoch;
      if (crash_now) {
        n.crash_during_next_sync = false;
        schedule(latency_rng_.uniform(delay), [this, id, epoch] {
          SimNode* victim = up_node(id, epoch);
          if (victim != nullptr && phase_ == Phase::kFaults) crash_and_restart_later(*victim);
        });
      }
      schedule(delay, [this, id, epoch, group] { persist_done(id, epoch, group); });
    }
    if (n.host->failed()) {
      trace("n" + std::to_string(n.id) + " stops: " + n.host->failed()->to_string());
      crash(n, /*tear=*/false);
      return;
    }
    check_node(n);
    check_voters_keep_replicas(n, out.removed);
  }

  // Durability across moves: a running node never lets go of a keyspace
  // replica while the newest configuration any replica of that group has
  // applied still names it a voter (it may hold entries a quorum needs).
  void check_voters_keep_replicas(SimNode& n,
                                  const std::vector<std::pair<uint64_t, node::AppliedState>>& removed) {
    if (!result_.violation.empty()) return;
    // What a removed replica had applied counts too: it went because its
    // newest configuration no longer named it.
    for (const auto& [g, applied] : removed) {
      auto& newest = newest_conf_[g];
      if (applied.index.value() > newest.first) newest = {applied.index.value(), applied.conf_state};
    }
    for (uint64_t g : n.host->groups()) {
      if (g < node::kFirstKeyspaceGroup) continue;
      const node::AppliedState& applied = n.host->group(g)->machine().applied();
      // A replica that never had a configuration naming it (started empty,
      // no snapshot yet) holds nothing and promised nothing.
      const auto& voters = applied.conf_state.voters;
      const auto& learners = applied.conf_state.learners;
      if (std::find(voters.begin(), voters.end(), NodeId{n.id}) != voters.end() ||
          std::find(learners.begin(), learners.end(), NodeId{n.id}) != learners.end()) {
        held_groups_[n.id].insert(g);
      }
      auto& newest = newest_conf_[g];
      if (applied.index.value() > newest.first) newest = {applied.index.value(), applied.conf_state};
    }
    for (uint64_t g : held_groups_[n.id]) {
      if (n.host->group(g) != nullptr) continue;
      // A dropped keyspace's replicas all go.
      if (n.host->router().catalog().keyspace_of_group(g) == nullptr) continue;
      const auto it = newest_conf_.find(g);
      if (it == newest_conf_.end()) continue;
      const ConfState& conf = it->second.second;
      const NodeId self{n.id};
      if (std::find(conf.voters.begin(), conf.voters.end(), self) != conf.voters.end() ||
          std::find(conf.voters_outgoing.begin(), conf.voters_outgoing.end(), self) !=
              conf.voters_outgoing.end()) {
        return violation("durability: node " + std::to_string(n.id) + " holds no replica of group " +
                         std::to_string(g) + " but the group's configuration at index " +
                         std::to_string(it->second.first) + " names it a voter");
      }
    }
  }

  void persist_done(uint64_t id, uint64_t epoch, uint64_t group) {
    SimNode* n = up_node(id, epoch);
    if (n == nullptr) return;
    on_node(*n, [this, id, epoch, group] {
      SimNode* target = up_node(id, epoch);
      if (target == nullptr) return;
      auto it = target->persisting.find(group);
      if (it == target->persisting.end()) return;
      const GroupId g{group};
      storage::WalBatch batch = storage::to_wal_batch(g, it->second, target->log->group(g));
      target->persisting.erase(it);
      if (!batch.empty()) {
        base::Status written = target->log->write(batch);
        if (!written.ok()) {
          violation("node " + std::to_string(id) + " WAL write failed: " +
                    written.error().to_string());
          return;
        }
      }
      target->host->persisted(group);
      drain(*target);
    }, /*droppable=*/false);
  }

  void crash(SimNode& n, bool tear) {
    if (n.state == SimNode::State::kDown) return;
    std::string how;
    if (tear && !n.persisting.empty() && n.log) {
      // The process dies during a WAL write: the bytes reach the page
      // cache but the fsync never completes, so the power cut may keep a
      // torn prefix of them.
      const auto& [group, request] = *n.persisting.begin();
      storage::WalBatch batch = storage::to_wal_batch(GroupId{group}, request, n.log->group(GroupId{group}));
      if (!batch.empty()) {
        n.disk->fail_next_syncs(1);
        (void)n.log->write(batch);
        result_.stats.torn_writes++;
        how = " during a WAL write";
      }
    }
    n.host.reset();
    n.logs.reset();
    n.log.reset();
    n.persisting.clear();
    n.drain_scheduled = false;
    n.backlog.clear();
    n.disk->crash();
    n.engine->crash();
    n.state = SimNode::State::kDown;
    n.epoch++;
    n.crash_during_next_sync = false;
    n.seen.clear();
    result_.stats.crashes++;
    trace("n" + std::to_string(n.id) + " crashes" + how);
  }

  void crash_and_restart_later(SimNode& n) {
    crash(n, options_.faults.has(Fault::kDisk) && nemesis_rng_.chance(1, 2));
    const uint64_t id = n.id;
    schedule(100 * kMs + nemesis_rng_.uniform(2900 * kMs), [this, id] {
      if (phase_ == Phase::kFaults) restart(id);
    });
  }

  void restart(uint64_t id) {
    SimNode& n = nodes_.at(id);
    if (n.state != SimNode::State::kDown) return;
    n.restarts++;
    trace("n" + std::to_string(id) + " restarts");
    start(n);
  }

  void pause(SimNode& n) {
    n.state = SimNode::State::kPaused;
    result_.stats.pauses++;
    trace("n" + std::to_string(n.id) + " pauses");
  }

  void resume(uint64_t id, uint64_t epoch) {
    SimNode* n = up_node(id, epoch);
    if (n == nullptr || n->state != SimNode::State::kPaused) return;
    n->state = SimNode::State::kUp;
    trace("n" + std::to_string(id) + " resumes (" + std::to_string(n->backlog.size()) +
          " deliveries waiting)");
    std::vector<std::function<void()>> backlog = std::move(n->backlog);
    n->backlog.clear();
    for (auto& action : backlog) action();
  }

  // ---- Checks -------------------------------------------------------------------

  // "n3" for the first data group (the one most traces are about), "n3 g1"
  // for the others.
  static std::string where(uint64_t node, uint64_t group) {
    return "n" + std::to_string(node) +
           (group == kFirstDataGroup ? std::string() : " g" + std::to_string(group));
  }

  void check_node(SimNode& n) {
    for (uint64_t group : n.host->groups()) {
      check_group(n, group);
      if (!result_.violation.empty()) return;
    }
  }

  void check_group(SimNode& n, uint64_t group) {
    const Raft& raft = n.host->group(group)->raw().raft();
    SimNode::Seen& seen = n.seen[group];
    base::Status invariants = raft.check_invariants();
    if (!invariants.ok()) {
      return violation("node " + std::to_string(n.id) + " group " + std::to_string(group) +
                       " breaks a Raft invariant: " + invariants.error().message());
    }
    const bool leader = raft.role() == Role::kLeader;
    const bool became_leader = leader && (seen.role != Role::kLeader || seen.term != raft.term());
    const LogIndex commit = raft.log().committed();
    if (became_leader) {
      result_.stats.leaders_elected++;
      trace(where(n.id, group) + " leads term " + std::to_string(raft.term().value()));
      auto [it, inserted] = leaders_.emplace(std::make_pair(group, raft.term().value()), n.id);
      if (!inserted && it->second != n.id) {
        return violation("group " + std::to_string(group) + ": two leaders in term " +
                         std::to_string(raft.term().value()) + ": nodes " +
                         std::to_string(it->second) + " and " + std::to_string(n.id));
      }
      check_leader_completeness(n, group, raft);
    }
    if (leader && commit > seen.commit) {
      // Entries committed now, in this leader's term (the first such term
      // is what leader completeness is about).
      for (uint64_t i = seen.commit.value() + 1; i <= commit.value(); ++i) {
        commits_.emplace(std::make_pair(group, i),
                         CommitRecord{raft.term().value(),
                                      raft.log().term_or_zero(LogIndex{i}).value(), n.id});
      }
    }
    if (leader && !became_leader && commit > seen.commit &&
        raft.log().term_or_zero(commit) != raft.term()) {
      return violation("group " + std::to_string(group) + ": leader " + std::to_string(n.id) +
                       " of term " + std::to_string(raft.term().value()) + " committed index " +
                       std::to_string(commit.value()) + " of term " +
                       std::to_string(raft.log().term_or_zero(commit).value()) +
                       " by counting replicas (Raft §5.4.2 allows that only for entries of "
                       "the leader's own term)");
    }
    seen.role = raft.role();
    seen.term = raft.term();
    seen.commit = commit;
  }

  // Raft's log matching property, across every pair of running nodes: if
  // two logs hold an entry with the same index and term, they agree on every
  // entry before it (within what both still hold).
  void check_log_matching() {
    if (phase_ == Phase::kDone || !result_.violation.empty()) return;
    schedule(100 * kMs, [this] { check_log_matching(); });
    std::map<uint64_t, std::vector<std::pair<uint64_t, const RaftLog*>>> by_group;
    for (auto& [id, n] : nodes_) {
      if (!n.host) continue;
      for (uint64_t g : n.host->groups()) by_group[g].emplace_back(id, &n.host->group(g)->raw().raft().log());
    }
    for (const auto& [group, logs] : by_group) {
    for (size_t a = 0; a < logs.size(); ++a) {
      for (size_t b = a + 1; b < logs.size(); ++b) {
        const RaftLog& x = *logs[a].second;
        const RaftLog& y = *logs[b].second;
        const uint64_t low = std::max(x.first_index(), y.first_index()).value();
        const uint64_t high = std::min(x.last_index(), y.last_index()).value();
        uint64_t i = high;
        while (i >= low && i > 0 && x.term_or_zero(LogIndex{i}) != y.term_or_zero(LogIndex{i})) --i;
        for (uint64_t j = low; j < i; ++j) {
          const Term tx = x.term_or_zero(LogIndex{j});
          const Term ty = y.term_or_zero(LogIndex{j});
          if (tx != ty) {
            return violation("log matching in group " + std::to_string(group) + ": nodes " +
                             std::to_string(logs[a].first) + " and " +
                             std::to_string(logs[b].first) + " agree on index " +
                             std::to_string(i) + " (term " +
                             std::to_string(x.term_or_zero(LogIndex{i}).value()) +
                             ") but not on index " + std::to_string(j) + " (terms " +
                             std::to_string(tx.value()) + " and " + std::to_string(ty.value()) +
                             ")");
          }
        }
      }
    }
    }
  }

  // A node promises only what its disk holds (Raft §5: persistent state is
  // updated on stable storage before responding to RPCs). The sim's WAL is
  // the disk, and its GroupLog knows what has been written durably.
  void check_promise(SimNode& n, uint64_t group, const Message& m) {
    if (m.reject || !n.log) return;
    const storage::GroupLog& durable = n.log->group(GroupId{group});
    if (m.type == MessageType::kVoteResp) {
      const HardState& state = durable.hard_state();
      if (state.term < m.term || (state.term == m.term && state.vote != m.to)) {
        violation("node " + std::to_string(n.id) + " granted its vote in term " +
                  std::to_string(m.term.value()) + " to node " + std::to_string(m.to.value()) +
                  " before its disk recorded it (disk: term " + std::to_string(state.term.value()) +
                  ", vote " + std::to_string(state.vote.value()) + ")");
      }
    } else if (m.type == MessageType::kAppResp && durable.hard_state().term <= m.term) {
      // (An acknowledgement from an earlier term may be sent after a newer
      // leader legitimately truncated what it acknowledged: to Raft that is
      // a message delayed in the network.)
      if (durable.last_index() < m.index) {
        return violation("node " + std::to_string(n.id) + " acknowledged entries up to " +
                         std::to_string(m.index.value()) + " to node " +
                         std::to_string(m.to.value()) + " while its disk holds them only up to " +
                         std::to_string(durable.last_index().value()));
      }
      // The entry acknowledged (its term travels in the acknowledgement)
      // must be the one on disk, not an older entry of another term that a
      // conflicting append is still replacing.
      const base::Result<Term> on_disk = durable.term(m.index);
      if (m.log_term != Term{0} && on_disk.ok() && *on_disk != m.log_term) {
        violation("node " + std::to_string(n.id) + " acknowledged index " +
                  std::to_string(m.index.value()) + " of term " +
                  std::to_string(m.log_term.value()) + " while its disk still holds term " +
                  std::to_string(on_disk->value()) + " there");
      }
    }
  }

  // Every entry committed in an earlier term is in the new leader's log,
  // with the same term (Raft's leader completeness property).
  void check_leader_completeness(SimNode& n, uint64_t group, const Raft& raft) {
    const LogIndex first = raft.log().first_index();
    const LogIndex last = raft.log().last_index();
    for (auto it = commits_.lower_bound(std::make_pair(group, first.value()));
         it != commits_.end() && it->first.first == group; ++it) {
      const uint64_t index = it->first.second;
      const CommitRecord& record = it->second;
      if (record.commit_term >= raft.term().value()) continue;
      const Term term = raft.log().term_or_zero(LogIndex{index});
      if (index > last.value() || term.value() != record.entry_term) {
        return violation("leader completeness in group " + std::to_string(group) + ": node " +
                         std::to_string(n.id) +
                         " leads term " + std::to_string(raft.term().value()) + " but its log " +
                         (index > last.value() ? "ends at " + std::to_string(last.value())
                                               : "has term " + std::to_string(term.value()) +
                                                     " at index " + std::to_string(index)) +
                         ", while index " + std::to_string(index) + " (term " +
                         std::to_string(record.entry_term) + ") was committed in term " +
                         std::to_string(record.commit_term) + " by node " +
                         std::to_string(record.leader));
      }
    }
  }

  void check_applied(SimNode& n, uint64_t group, const std::vector<Entry>& entries) {
    // Routing: while "ks" is active its keys belong to its own groups; a
    // write of one applied in a default partition was routed by a catalog
    // that did not know "ks" (the catalog lease exists to prevent that).
    const bool keyspace_live =
        keyspace_ == KeyspaceStage::kActive || keyspace_ == KeyspaceStage::kDraining;
    const bool default_group = group >= kFirstDataGroup && group < node::kFirstKeyspaceGroup;
    for (const Entry& entry : entries) {
      if (keyspace_live && default_group && entry.type == EntryType::kNormal && !entry.data.empty()) {
        auto command = node::decode_command(entry.data.view());
        if (command.ok() && command->key.starts_with("ks:")) {
          return violation("routing: node " + std::to_string(n.id) + " applied a write of \"" +
                           command->key + "\" in default partition group " +
                           std::to_string(group) + " while keyspace ks is active");
        }
      }
      result_.stats.entries_applied++;
      const uint64_t hash = base::checksum64(entry.data.view(), static_cast<uint64_t>(entry.type));
      auto [it, inserted] = applied_.emplace(std::make_pair(group, entry.index.value()),
                                             AppliedRecord{entry.term.value(), hash, n.id});
      if (!inserted && (it->second.term != entry.term.value() || it->second.hash != hash)) {
        return violation("state machine safety in group " + std::to_string(group) + ": node " +
                         std::to_string(n.id) +
                         " applied index " + std::to_string(entry.index.value()) + " from term " +
                         std::to_string(entry.term.value()) + ", node " +
                         std::to_string(it->second.node) + " applied a different entry there" +
                         " (term " + std::to_string(it->second.term) + ")");
      }
    }
  }

  // ---- Clients --------------------------------------------------------------------

  void client_wake(uint64_t id) {
    SimClient& client = clients_.at(id);
    if (client.busy) return;
    if (phase_ == Phase::kSettle || phase_ == Phase::kDone) return;
    new_operation(client);
    send_attempt(client);
  }

  void new_operation(SimClient& client) {
    Operation op;
    op.id = next_operation_id_++;
    op.client = client.id;
    op.call_ns = now_;
    Request request;
    const bool counter = client_rng_.chance(2, 5);
    const bool in_keyspace = keyspace_ == KeyspaceStage::kActive && client_rng_.chance(1, 2);
    if (counter) {
      op.key = in_keyspace ? kKeyspaceCounterKeys[0] : kCounterKeys[client_rng_.uniform(2)];
      op.kind = client_rng_.chance(2, 5) ? OpKind::kGet : OpKind::kIncr;
    } else {
      op.key = in_keyspace ? kKeyspaceRegisterKeys[client_rng_.uniform(2)]
                           : kRegisterKeys[client_rng_.uniform(3)];
      const uint64_t dice = client_rng_.uniform(10);
      op.kind = dice < 4 ? OpKind::kGet : dice < 7 ? OpKind::kSet : OpKind::kCas;
    }
    if (op.kind == OpKind::kGet) {
      request.kind = Request::Kind::kRead;
      request.key = op.key;
    } else {
      request.kind = Request::Kind::kWrite;
      node::Command& command = request.command;
      command.client_id = client.id;
      command.sequence = ++client.sequence;
      command.key = op.key;
      const std::string value =
          "v" + std::to_string(client.id) + "." + std::to_string(client.sequence);
      if (op.kind == OpKind::kSet) {
        op.value = value;
        command.op = node::CommandOp::kPut;
        command.value = value;
      } else if (op.kind == OpKind::kCas) {
        op.value = value;
        auto seen = client.last_read.find(op.key);
        op.expected = seen == client.last_read.end() ? std::nullopt : seen->second;
        command.op = node::CommandOp::kCas;
        command.value = value;
        command.expect_absent = !op.expected.has_value();
        command.expected = op.expected.value_or("");
      } else {
        op.delta = static_cast<int64_t>(client_rng_.between(1, 5));
        command.op = node::CommandOp::kIncrBy;
        command.value = std::to_string(op.delta);
      }
    }
    client.op = std::move(op);
    client.request = std::move(request);
    client.busy = true;
    client.attempts = 0;
    client.any_timeout = false;
  }

  void send_attempt(SimClient& client) {
    client.attempts++;
    const uint64_t request_id = next_request_id_++;
    client.attempt_id = request_id;
    requests_[request_id] = client.id;
    const uint64_t client_id = client.id;
    schedule(kAttemptTimeoutNs, [this, client_id, request_id] { attempt_timeout(client_id, request_id); });
    SimNode& n = nodes_.at(client.node);
    if (n.state == SimNode::State::kDown) {
      // Connection refused: try another node soon.
      schedule(5 * kMs, [this, client_id, request_id] {
        Response refused;
        refused.status = Response::Status::kUnavailable;
        refused.reason = "connection refused";
        client_response(client_id, request_id, std::move(refused));
      });
      return;
    }
    const uint64_t epoch = n.epoch;
    const uint64_t node_id = n.id;
    auto request = std::make_shared<Request>(client.request);
    schedule(client_link_delay(), [this, node_id, epoch, request_id, request] {
      SimNode* target = up_node(node_id, epoch);
      if (target == nullptr) return;  // the connection died with the process
      on_node(*target, [this, node_id, epoch, request_id, request] {
        SimNode* process = up_node(node_id, epoch);
        if (process == nullptr) return;
        process->host->submit(request_id, std::move(*request), local_ms(*process));
        defer_drain(*process);
      });
    });
  }

  uint64_t client_link_delay() { return 50'000 + latency_rng_.uniform(150'000); }

  void respond(uint64_t request_id, Response response) {
    if (request_id == keyspace_request_) {
      keyspace_request_ = 0;
      keyspace_answer(std::move(response));
      return;
    }
    auto it = requests_.find(request_id);
    if (it == requests_.end()) return;
    const uint64_t client_id = it->second;
    auto shared = std::make_shared<Response>(std::move(response));
    schedule(client_link_delay(), [this, client_id, request_id, shared] {
      client_response(client_id, request_id, std::move(*shared));
    });
  }

  void attempt_timeout(uint64_t client_id, uint64_t request_id) {
    Response timeout;
    timeout.status = Response::Status::kTimeout;
    timeout.reason = "client gave up waiting";
    client_response(client_id, request_id, std::move(timeout));
  }

  void client_response(uint64_t client_id, uint64_t request_id, Response response) {
    SimClient& client = clients_.at(client_id);
    if (!client.busy || client.attempt_id != request_id) return;  // a stale answer
    requests_.erase(request_id);
    Operation& op = client.op;
    if (response.status == Response::Status::kOk) {
      if (op.kind == OpKind::kGet) {
        op.read = response.value;
        client.last_read[op.key] = response.value;
        op.outcome = Outcome::kOk;
      } else if (response.reply.kind == node::CommandReply::Kind::kError) {
        op.outcome = Outcome::kFail;
      } else {
        op.outcome = Outcome::kOk;
        if (op.kind == OpKind::kCas) op.swapped = response.reply.integer == 1;
        if (op.kind == OpKind::kIncr) op.result = response.reply.integer;
      }
      return complete(client);
    }
    if (response.status == Response::Status::kTimeout) client.any_timeout = true;
    if (client.attempts < kAttemptsMax || phase_ != Phase::kFaults) {
      // Retry elsewhere, with the same dedupe id for a write.
      client.node = client_rng_.between(1, static_cast<uint64_t>(options_.nodes));
      const uint64_t id = client.id;
      schedule(10 * kMs + client_rng_.uniform(40 * kMs), [this, id] {
        SimClient& again = clients_.at(id);
        if (again.busy) send_attempt(again);
      });
      return;
    }
    op.outcome = client.any_timeout || op.kind == OpKind::kGet ? Outcome::kUnknown : Outcome::kFail;
    complete(client);
  }

  void complete(SimClient& client) {
    Operation& op = client.op;
    op.return_ns = now_;
    if (op.outcome != Outcome::kOk) {
      op.read.reset();
      op.swapped = false;
      op.result = 0;
    }
    result_.stats.operations++;
    if (op.outcome == Outcome::kOk) result_.stats.operations_ok++;
    if (op.outcome == Outcome::kFail) result_.stats.operations_fail++;
    if (op.outcome == Outcome::kUnknown) result_.stats.operations_unknown++;
    trace(describe(op));
    if (phase_ == Phase::kLiveness && op.outcome == Outcome::kOk && op.call_ns >= healed_at_) {
      client.ok_after_heal++;
    }
    result_.history.push_back(std::move(op));
    client.busy = false;
    if (phase_ == Phase::kLiveness) check_liveness();
    if (phase_ == Phase::kSettle) check_settled();
    const uint64_t id = client.id;
    schedule(client_rng_.uniform(20 * kMs), [this, id] { client_wake(id); });
  }

  // ---- Nemesis ------------------------------------------------------------------------

  uint64_t nemesis_delay() { return 300 * kMs + nemesis_rng_.uniform(1700 * kMs); }

  std::vector<uint64_t> nodes_in(SimNode::State state) {
    std::vector<uint64_t> ids;
    for (auto& [id, n] : nodes_) {
      if (n.state == state) ids.push_back(id);
    }
    return ids;
  }

  uint64_t current_leader() {
    uint64_t best = 0;
    Term best_term;
    for (auto& [id, n] : nodes_) {
      if (n.state == SimNode::State::kDown || !n.host) continue;
      const node::Node* data = n.host->group(kFirstDataGroup);
      if (data == nullptr) continue;
      const Raft& raft = data->raw().raft();
      if (raft.role() == Role::kLeader && raft.term() >= best_term) {
        best = id;
        best_term = raft.term();
      }
    }
    return best;
  }

  // A running node to crash or pause: the leader half the time (the
  // interesting case), else any; 0 if none runs.
  uint64_t pick_victim() {
    std::vector<uint64_t> up = nodes_in(SimNode::State::kUp);
    if (up.empty()) return 0;
    const uint64_t leader = current_leader();
    if (leader != 0 && nodes_.at(leader).state == SimNode::State::kUp &&
        nemesis_rng_.chance(1, 2)) {
      return leader;
    }
    return up[nemesis_rng_.uniform(up.size())];
  }

  void nemesis() {
    if (phase_ != Phase::kFaults) return;
    schedule(nemesis_delay(), [this] { nemesis(); });
    std::vector<Fault> enabled;
    for (const FaultInfo& info : kFaults) {
      // Network and WAN faults act through the network's settings; clock
      // drift and jumps act at every tick.
      if (info.fault == Fault::kNetwork || info.fault == Fault::kWan ||
          info.fault == Fault::kClock) {
        continue;
      }
      if (options_.faults.has(info.fault)) enabled.push_back(info.fault);
    }
    if (enabled.empty()) return;
    const Fault fault = enabled[nemesis_rng_.uniform(enabled.size())];
    const size_t minority = static_cast<size_t>((options_.nodes - 1) / 2);
    switch (fault) {
      case Fault::kPartition: {
        if (partitioned_) {
          network_.heal();
          partitioned_ = false;
          trace("heal partition");
          break;
        }
        if (options_.nodes < 2) break;
        const uint64_t shape = nemesis_rng_.uniform(4);
        const uint64_t leader = current_leader();
        if (shape == 0 || (shape == 3 && options_.nodes < 4) || (shape == 2 && options_.nodes < 3)) {
          network_.random_halves();
        } else if (shape == 1) {
          network_.isolate(leader != 0 ? leader : nemesis_rng_.between(1, options_.nodes));
        } else if (shape == 2) {
          network_.bridge();
        } else {
          network_.majorities_ring();
        }
        partitioned_ = true;
        result_.stats.partitions++;
        trace("partition " + network_.describe());
        break;
      }
      case Fault::kCrash: {
        const std::vector<uint64_t> down = nodes_in(SimNode::State::kDown);
        if (down.size() >= minority) {
          restart(down[nemesis_rng_.uniform(down.size())]);
          break;
        }
        const uint64_t victim = pick_victim();
        if (victim == 0) break;
        if (nemesis_rng_.chance(1, 2)) {
          // Die during the next fsync, when what the node has promised and
          // what its disk holds differ most.
          nodes_.at(victim).crash_during_next_sync = true;
        } else {
          crash_and_restart_later(nodes_.at(victim));
        }
        break;
      }
      case Fault::kPause: {
        const uint64_t victim = pick_victim();
        if (victim == 0) break;
        SimNode& n = nodes_.at(victim);
        pause(n);
        const uint64_t epoch = n.epoch;
        schedule(50 * kMs + nemesis_rng_.uniform(2950 * kMs),
                 [this, victim, epoch] { resume(victim, epoch); });
        break;
      }
      case Fault::kDisk: {
        const uint64_t victim = nemesis_rng_.between(1, static_cast<uint64_t>(options_.nodes));
        const uint64_t lasting = kSecond + nemesis_rng_.uniform(4 * kSecond);
        nodes_.at(victim).slow_fsync_until = now_ + lasting;
        result_.stats.slow_disks++;
        trace("n" + std::to_string(victim) + " disk slows down for " +
              format_time_ns(lasting));
        break;
      }
      default: break;
    }
  }

  // ---- The operator: a keyspace created and dropped under faults ------------------
  //
  // A quarter into the fault phase "ks" is created (2 partitions, 3 replicas
  // or as many as there are nodes), through any running node, retried
  // until the meta group takes it. Clients use its keys only once some
  // node has applied its activation: by the catalog lease, no node may
  // route them by a catalog without "ks" from then on, and the checker
  // holds every key to linearizability. At two thirds clients stop using
  // them (or a quarter of the phase after it became active, if later);
  // once no operation on them is open, "ks" is dropped (its replicas
  // are removed everywhere when it is forgotten).

  void keyspace_step() {
    if (phase_ != Phase::kFaults || !options_.keyspaces) return;
    schedule(50 * kMs, [this] { keyspace_step(); });
    if (keyspace_request_ != 0) return;  // an attempt is in flight
    switch (keyspace_) {
      case KeyspaceStage::kNone:
        if (now_ >= options_.duration_ns / 4) keyspace_send(/*create=*/true);
        break;
      case KeyspaceStage::kCreating:
        for (auto& [id, n] : nodes_) {
          const placement::Keyspace* k =
              n.host ? n.host->router().catalog().find(kKeyspace) : nullptr;
          if (k != nullptr && k->state == placement::KeyspaceState::kActive) {
            keyspace_ = KeyspaceStage::kActive;
            keyspace_active_at_ = now_;
            trace("keyspace ks is active (seen on n" + std::to_string(id) + "): clients use it");
            break;
          }
        }
        break;
      case KeyspaceStage::kActive:
        if (!keyspace_moved_ && now_ >= keyspace_active_at_ + options_.duration_ns / 8) {
          keyspace_move();
          break;
        }
        if (keyspace_moved_ && !keyspace_move_done_) {
          keyspace_send_move();
          break;
        }
        // Half the runs keep the keyspace to the end, where every partition
        // must be fully replicated where the placement says.
        if (keyspace_kept_) break;
        if (now_ >= std::max(options_.duration_ns * 2 / 3,
                             keyspace_active_at_ + options_.duration_ns / 4)) {
          keyspace_ = KeyspaceStage::kDraining;
          trace("clients stop using keyspace ks");
        }
        break;
      case KeyspaceStage::kDraining:
        for (auto& [id, client] : clients_) {
          if (client.busy && client.op.key.starts_with("ks:")) return;
        }
        keyspace_send(/*create=*/false);
        break;
      case KeyspaceStage::kDropped:
        break;
    }
  }

  void keyspace_send(bool create) {
    std::vector<uint64_t> up = nodes_in(SimNode::State::kUp);
    if (up.empty()) return;
    SimNode& n = nodes_.at(up[nemesis_rng_.uniform(up.size())]);
    node::Command command;
    command.key = kKeyspace;
    if (create) {
      placement::Keyspace k;
      k.name = kKeyspace;
      k.partitions = 2;
      k.replicas = static_cast<uint32_t>(std::min(options_.nodes, 3));
      std::vector<placement::Member> members;
      for (int i = 1; i <= options_.nodes; ++i) members.push_back({static_cast<uint64_t>(i), ""});
      auto where = placement::place(members, k.partitions, k.replicas, {});
      SYNOD_ASSERT(where.ok(), "the operator's placement");
      command.op = node::CommandOp::kCreateKeyspace;
      command.value = placement::encode_keyspace(k);
      command.expected = placement::encode_placement(*where);
    } else {
      command.op = node::CommandOp::kDropKeyspace;
    }
    keyspace_request_ = next_request_id_++;
    keyspace_creating_ = create;
    trace(std::string(create ? "create" : "drop") + " keyspace ks through n" + std::to_string(n.id));
    n.host->submit_meta(keyspace_request_, std::move(command));
    defer_drain(n);
    // A node that dies or pauses takes the answer with it: try again later.
    const uint64_t request = keyspace_request_;
    schedule(3 * kSecond, [this, request] {
      if (keyspace_request_ == request) keyspace_request_ = 0;
    });
  }

  // Moves one replica of each of ks's partitions to a node that never held
  // it (the leader's replica half the time), by a new target placement;
  // the groups' leaders carry it out by joint consensus.
  void keyspace_move() {
    const node::GroupHost* any = nullptr;
    for (auto& [id, n] : nodes_) {
      if (n.host && n.host->router().catalog().find(kKeyspace) != nullptr) any = n.host.get();
    }
    if (any == nullptr) return;
    const placement::Keyspace& k = *any->router().catalog().find(kKeyspace);
    placement::Placement where = *any->router().placement_of(kKeyspace);
    bool moved = false;
    for (uint32_t p = 0; p < where.replicas.size(); ++p) {
      std::vector<uint64_t>& replicas = where.replicas[p];
      std::set<uint64_t>& held = keyspace_held_[p];
      held.insert(replicas.begin(), replicas.end());
      std::vector<uint64_t> spare;
      for (int i = 1; i <= options_.nodes; ++i) {
        if (!held.contains(static_cast<uint64_t>(i))) spare.push_back(static_cast<uint64_t>(i));
      }
      if (spare.empty()) continue;
      size_t out = nemesis_rng_.uniform(replicas.size());
      const uint64_t leader = any->leader_of(k.group_of_partition(p));
      if (leader != 0 && nemesis_rng_.chance(1, 2)) {
        auto it = std::find(replicas.begin(), replicas.end(), leader);
        if (it != replicas.end()) out = static_cast<size_t>(it - replicas.begin());
      }
      const uint64_t in = spare[nemesis_rng_.uniform(spare.size())];
      trace("move keyspace ks partition " + std::to_string(p) + ": node " +
            std::to_string(replicas[out]) + " -> node " + std::to_string(in));
      replicas[out] = in;
      held.insert(in);
      moved = true;
    }
    keyspace_moved_ = true;
    if (!moved) return;
    keyspace_from_ = *any->router().placement_of(kKeyspace);
    keyspace_to_ = where;
    keyspace_first_group_ = k.first_group;
    keyspace_send_move();
  }

  // Sends the move (again, if an attempt was lost), compare-and-set against
  // the placement it was made from; done once some node shows the new one.
  void keyspace_send_move() {
    for (auto& [id, n] : nodes_) {
      const placement::Placement* now = n.host ? n.host->router().placement_of(kKeyspace) : nullptr;
      if (now != nullptr && *now == keyspace_to_) {
        keyspace_move_done_ = true;
        return;
      }
    }
    std::vector<uint64_t> up = nodes_in(SimNode::State::kUp);
    if (up.empty()) return;
    SimNode& n = nodes_.at(up[nemesis_rng_.uniform(up.size())]);
    node::Command command;
    command.op = node::CommandOp::kSetPlacement;
    command.key = kKeyspace;
    command.value = placement::encode_placement(keyspace_to_);
    command.expected = std::to_string(keyspace_first_group_) + "/" +
                       placement::placement_version(keyspace_from_);
    keyspace_request_ = next_request_id_++;
    keyspace_moving_ = true;
    n.host->submit_meta(keyspace_request_, std::move(command));
    defer_drain(n);
    const uint64_t request = keyspace_request_;
    schedule(3 * kSecond, [this, request] {
      if (keyspace_request_ == request) keyspace_request_ = 0;
    });
  }

  void keyspace_answer(Response response) {
    const bool done = response.status == Response::Status::kOk;
    if (keyspace_moving_) {
      keyspace_moving_ = false;
      trace(std::string("new placement for ks ") +
            (done ? (response.reply.kind == node::CommandReply::Kind::kError ? "refused: " + response.reply.error : "committed")
                  : "not answered: " + response.reason));
      // Refused: another attempt of this same move got in first (the
      // placement is no longer the one it was made from).
      if (done) keyspace_move_done_ = true;
      return;
    }
    // "already exists" / "is dropping": an earlier attempt took effect.
    if (!done) return;
    if (keyspace_creating_) {
      keyspace_ = KeyspaceStage::kCreating;
      trace("keyspace ks created" + (response.reply.kind == node::CommandReply::Kind::kError
                                         ? " (" + response.reply.error + ")"
                                         : std::string()));
    } else {
      keyspace_ = KeyspaceStage::kDropped;
      trace("keyspace ks dropped" + (response.reply.kind == node::CommandReply::Kind::kError
                                         ? " (" + response.reply.error + ")"
                                         : std::string()));
    }
  }

  // ---- Phases -------------------------------------------------------------------------

  void heal_all() {
    phase_ = Phase::kLiveness;
    healed_at_ = now_;
    network_.heal();
    partitioned_ = false;
    trace("faults end: heal every partition, resume and restart every node");
    for (auto& [id, n] : nodes_) {
      n.slow_fsync_until = 0;
      if (n.state == SimNode::State::kPaused) resume(id, n.epoch);
    }
    for (auto& [id, n] : nodes_) {
      if (n.state == SimNode::State::kDown) restart(id);
    }
    schedule(options_.liveness_bound_ns, [this] {
      if (phase_ == Phase::kLiveness) {
        std::string waiting;
        for (auto& [id, client] : clients_) {
          if (client.ok_after_heal == 0) waiting += " " + std::to_string(id);
        }
        violation("liveness: " + format_time_ns(options_.liveness_bound_ns) +
                  " after the faults were healed, clients" + waiting +
                  " had not completed an operation (leader: " +
                  (current_leader() ? "n" + std::to_string(current_leader()) : "none") + ")");
      }
    });
  }

  void check_liveness() {
    for (auto& [id, client] : clients_) {
      if (client.ok_after_heal == 0) return;
    }
    if (current_leader() == 0) return;
    phase_ = Phase::kSettle;
    settle_started_ = now_;
    trace("liveness: every client served after the heal; settling");
    schedule(options_.liveness_bound_ns, [this] {
      if (phase_ == Phase::kSettle) {
        violation("the cluster did not settle within " +
                  format_time_ns(options_.liveness_bound_ns) + ": " + settle_state());
      }
    });
    // Final reads: one client reads every key once the others are done.
    check_settled();
  }

  std::string settle_state() {
    std::string state;
    for (auto& [id, n] : nodes_) {
      state += "n" + std::to_string(id);
      if (!n.host) {
        state += " down; ";
        continue;
      }
      for (uint64_t g : n.host->groups()) {
        state += " g" + std::to_string(g) + " applied " +
                 std::to_string(n.host->group(g)->machine().applied().index.value());
      }
      state += "; ";
    }
    return state;
  }

  void check_settled() {
    if (phase_ != Phase::kSettle) return;
    for (auto& [id, client] : clients_) {
      if (client.busy) return;
    }
    const std::vector<std::string> keys = settle_keys();
    if (final_reads_done_ < keys.size()) {
      // Reads go through the same path as any client's, retried until ok.
      SimClient& reader = clients_.begin()->second;
      const size_t k = final_reads_done_++;
      Operation op;
      op.id = next_operation_id_++;
      op.client = reader.id;
      op.call_ns = now_;
      op.kind = OpKind::kGet;
      op.key = keys[k];
      reader.op = op;
      reader.request = Request{Request::Kind::kRead, op.key, {}};
      reader.busy = true;
      reader.attempts = 0;
      reader.any_timeout = false;
      send_attempt(reader);
      return;
    }
    schedule(10 * kMs, [this] { check_converged(); });
  }

  // The keys read at the end and compared across replicas: the keyspace's
  // too while it is active (after its drop its keys are nobody's).
  std::vector<std::string> settle_keys() const {
    std::vector<std::string> keys(std::begin(kRegisterKeys), std::end(kRegisterKeys));
    keys.insert(keys.end(), std::begin(kCounterKeys), std::end(kCounterKeys));
    if (keyspace_ == KeyspaceStage::kActive) {
      keys.insert(keys.end(), std::begin(kKeyspaceRegisterKeys), std::end(kKeyspaceRegisterKeys));
      keys.insert(keys.end(), std::begin(kKeyspaceCounterKeys), std::end(kKeyspaceCounterKeys));
    }
    return keys;
  }

  // Every replica of every group has applied all it committed, and the
  // replicas of each group hold the same data and the same state.
  void check_converged() {
    if (phase_ != Phase::kSettle) return;
    std::map<uint64_t, std::vector<std::pair<uint64_t, const node::Node*>>> replicas;
    for (auto& [id, n] : nodes_) {
      if (!n.host || !n.persisting.empty()) return retry_converged();
      for (uint64_t g : n.host->groups()) replicas[g].emplace_back(id, n.host->group(g));
    }
    // Every partition of a keyspace ends fully replicated where its placement
    // says: each replica there, configurations equal to it, no learner left
    // over, no replica anywhere else.
    const node::GroupHost& view = *nodes_.begin()->second.host;
    for (const auto& [name, keyspace] : view.router().catalog().all()) {
      if (name == placement::kDefaultKeyspace) continue;
      if (keyspace.state != placement::KeyspaceState::kActive) return retry_converged();
      for (uint32_t p = 0; p < keyspace.partitions; ++p) {
        const uint64_t group = keyspace.group_of_partition(p);
        std::vector<uint64_t> target = view.router().replicas_of(group);
        std::sort(target.begin(), target.end());
        std::vector<uint64_t> holders;
        for (const auto& [id, replica] : replicas[group]) {
          holders.push_back(id);
          std::vector<uint64_t> voters;
          const auto conf = replica->raw().raft().tracker().config.to_conf_state();
          for (NodeId v : conf.voters) voters.push_back(v.value());
          std::sort(voters.begin(), voters.end());
          if (voters != target || !conf.learners.empty() || !conf.voters_outgoing.empty()) {
            return retry_converged();
          }
        }
        std::sort(holders.begin(), holders.end());
        if (holders != target) return retry_converged();
      }
    }
    for (const auto& [group, held] : replicas) {
      std::optional<LogIndex> index;
      for (const auto& [id, replica] : held) {
        const LogIndex applied = replica->machine().applied().index;
        if ((index && *index != applied) || replica->raw().raft().log().committed() != applied) {
          return retry_converged();
        }
        index = applied;
      }
    }
    for (const std::string& key : settle_keys()) {
      const uint64_t group = nodes_.begin()->second.host->router().route(key, 0).group;
      std::optional<std::optional<std::string>> first;
      uint64_t first_node = 0;
      for (const auto& [id, replica] : replicas[group]) {
        auto value = replica->machine().get(key);
        if (!value.ok()) return violation("node " + std::to_string(id) + " cannot read " + key);
        if (!first) {
          first = *value;
          first_node = id;
        } else if (*first != *value) {
          return violation("replicas of group " + std::to_string(group) + " diverge: key " + key +
                           " is " + quote_optional(*first) + " on node " +
                           std::to_string(first_node) + " but " + quote_optional(*value) +
                           " on node " + std::to_string(id));
        }
      }
    }
    // Beyond user keys: each replica's whole state (dedupe records, applied
    // position, configuration) as its snapshot encodes it.
    uint64_t entries = 0;
    for (const auto& [group, held] : replicas) {
      std::optional<uint64_t> first_state;
      uint64_t first_node = 0;
      for (const auto& [id, replica] : held) {
        auto snapshot = replica->machine().snapshot();
        if (!snapshot.ok()) return violation("node " + std::to_string(id) + " cannot snapshot");
        const uint64_t checksum = base::checksum64(snapshot->data.view());
        if (first_state && *first_state != checksum) {
          return violation("replicas of group " + std::to_string(group) +
                           " diverge: node " + std::to_string(id) +
                           "'s state (sessions, applied position) differs from node " +
                           std::to_string(first_node) + "'s");
        }
        first_state = checksum;
        first_node = id;
      }
      entries += held.front().second->machine().applied().index.value();
    }
    trace("settled: the replicas of each of " + std::to_string(replicas.size()) +
          " groups applied the same entries (" + std::to_string(entries) +
          " in all) with identical data");
    phase_ = Phase::kDone;
  }

  void retry_converged() {
    schedule(50 * kMs, [this] { check_converged(); });
  }

  void finish() {
    result_.stats.simulated_ns = now_;
    if (result_.violation.empty() && phase_ != Phase::kDone) {
      violation("the simulation stopped before it settled (no events left)");
    }
    if (result_.violation.empty()) {
      auto report = check_linearizability(result_.history, options_.check);
      if (!report.ok()) {
        violation("the history is invalid: " + report.error().to_string());
      } else {
        result_.check = *report;
        if (report->verdict != Verdict::kOk) {
          violation(std::string("linearizability: ") + std::string(verdict_name(report->verdict)) +
                    " on key \"" + report->key + "\": " + report->explanation);
        }
      }
    }
    result_.passed = result_.violation.empty();
    trace(result_.passed ? "pass" : "fail");
    result_.digest = digest_;
    result_.trace.assign(trace_.begin(), trace_.end());
  }

  struct CommitRecord {
    uint64_t commit_term;
    uint64_t entry_term;
    uint64_t leader;
  };
  struct AppliedRecord {
    uint64_t term;
    uint64_t hash;
    uint64_t node;
  };

  SimOptions options_;
  base::Rng rng_;
  base::Rng nemesis_rng_;
  base::Rng client_rng_;
  base::Rng latency_rng_;
  SimNetwork<PeerMessage> network_;
  base::Rng drain_rng_;
  std::map<uint64_t, SimNode> nodes_;
  std::map<uint64_t, SimClient> clients_;
  std::priority_queue<Event, std::vector<Event>, EventLater> events_;
  uint64_t next_event_sequence_ = 0;
  uint64_t now_ = 0;
  Phase phase_ = Phase::kFaults;
  uint64_t healed_at_ = 0;
  uint64_t settle_started_ = 0;
  size_t final_reads_done_ = 0;
  bool partitioned_ = false;
  uint64_t next_operation_id_ = 1;
  uint64_t next_request_id_ = 1;
  std::map<uint64_t, uint64_t> requests_;  // request id -> client
  enum class KeyspaceStage : uint8_t { kNone, kCreating, kActive, kDraining, kDropped };
  KeyspaceStage keyspace_ = KeyspaceStage::kNone;
  uint64_t keyspace_request_ = 0;  // the operator's attempt in flight
  bool keyspace_creating_ = false;
  uint64_t keyspace_active_at_ = 0;
  bool keyspace_moved_ = false;   // the operator's move was sent
  bool keyspace_move_done_ = false;  // ... and taken (or seen taken)
  bool keyspace_kept_ = false;    // never dropped: checked fully replicated at the end
  std::map<uint64_t, std::set<uint64_t>> held_groups_;  // node -> keyspace groups it held
  std::map<uint64_t, std::pair<uint64_t, ConfState>> newest_conf_;  // group -> (index, conf)
  placement::Placement keyspace_from_, keyspace_to_;
  uint64_t keyspace_first_group_ = 0;
  bool keyspace_moving_ = false;  // its answer is awaited
  std::map<uint32_t, std::set<uint64_t>> keyspace_held_;  // partition -> nodes that held it
  using GroupIndex = std::pair<uint64_t, uint64_t>;  // (group, term or index)
  std::map<GroupIndex, uint64_t> leaders_;        // (group, term) -> leader
  std::map<GroupIndex, AppliedRecord> applied_;   // (group, index) -> what was applied there
  std::map<GroupIndex, CommitRecord> commits_;    // (group, index) -> when first committed
  uint64_t digest_ = 0;
  std::deque<std::string> trace_;
  SimResult result_;
};

}  // namespace

SimResult run_simulation(const SimOptions& options) {
  base::Status valid = options.validate();
  if (!valid.ok()) {
    SimResult result;
    result.seed = options.seed;
    result.violation = "invalid options: " + valid.error().to_string();
    return result;
  }
  Simulation simulation(options);
  return simulation.run();
}

}  // namespace synod::sim
