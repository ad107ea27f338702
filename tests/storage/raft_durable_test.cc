// The Raft core on durable storage: three nodes, each with its own simulated
// disk (FaultyFileSystem) under a WAL and GroupLog, and a KvStateMachine on
// an in-memory engine that loses unsynced writes when its node crashes.
//
// Clients append unique tokens to a few hot keys, retrying with the same
// (client, sequence) until a reply comes. Nodes crash (the disk keeps only
// what was synced: the WAL syncs before acknowledging, the state machine
// does not, so a restart replays from the WAL), restart, compact their logs,
// and lag behind so that snapshots are sent. The checks:
//   - Raft's invariants after every Ready (check_invariants);
//   - every acknowledged token is in its key exactly once, in each client's
//     order, on every node at the end (no lost write, no double apply, even
//     across retries and replays);
//   - all nodes end with identical state.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/rng.h"
#include "node/kv_state_machine.h"
#include "raft/raft.h"
#include "raft/raw_node.h"
#include "storage/faulty_file_system.h"
#include "storage/group_log.h"
#include "storage/mem_kv_engine.h"
#include "support/numbers.h"

namespace synod {
namespace {

using namespace synod::raft;
using node::Command;
using node::CommandOp;
using node::KvStateMachine;
using storage::DurableLog;
using storage::FaultyFileSystem;
using storage::GroupLog;
using storage::MemKvEngine;
using storage::SnapshotMode;
using storage::WalBatch;
using storage::WalOptions;

constexpr GroupId kGroup{7};
constexpr int kClients = 4;
const char* const kKeys[] = {"alpha", "beta", "gamma"};

struct Node {
  uint64_t id = 0;
  std::unique_ptr<FaultyFileSystem> disk;
  MemKvEngine engine;
  std::unique_ptr<DurableLog> log;
  std::unique_ptr<KvStateMachine> machine;
  std::unique_ptr<RawNode> raw;
  bool up() const { return raw != nullptr; }
};

struct Client {
  uint64_t id = 0;
  uint64_t sequence = 0;  // of the request outstanding, 0 when none
  std::string key;
  uint64_t sent_at = 0;
};

class DurableCluster {
 public:
  explicit DurableCluster(uint64_t seed) : rng_(seed), seed_(seed) {
    for (uint64_t id = 1; id <= 3; ++id) conf_.voters.push_back(NodeId{id});
    for (uint64_t id = 1; id <= 3; ++id) {
      Node& n = nodes_[id];
      n.id = id;
      n.disk = std::make_unique<FaultyFileSystem>(seed * 31 + id);
      bootstrap(n);
      start(n);
    }
    for (int c = 0; c < kClients; ++c) {
      Client client;
      client.id = static_cast<uint64_t>(c + 1);
      clients_.push_back(client);
    }
  }

  WalOptions wal_options() const {
    WalOptions options;
    options.dir = "/data/wal";
    options.writer_thread = false;
    options.segment_bytes_max = 4096;  // rotate and delete segments often
    options.log = [](const std::string&) {};
    return options;
  }

  void bootstrap(Node& n) {
    auto log = DurableLog::open(*n.disk, wal_options());
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    WalBatch batch;
    batch.add_snapshot(kGroup, SnapshotMeta{LogIndex{1}, Term{1}, conf_}, SnapshotMode::kInstall);
    batch.add_hard_state(kGroup, HardState{Term{1}, NodeId{0}, LogIndex{1}});
    ASSERT_TRUE((*log)->write(batch).ok());
    KvStateMachine machine(kGroup, &n.engine);
    ASSERT_TRUE(machine.bootstrap(node::AppliedState{LogIndex{1}, Term{1}, conf_}).ok());
  }

  void start(Node& n) {
    auto log = DurableLog::open(*n.disk, wal_options(), storage::GroupLogOptions{512});
    if (!log.ok() && log.error().code() == base::Errc::kNoSpace) {
      disk_errors_.push_back("restart: " + log.error().to_string());
      return;  // stays down until there is room
    }
    ASSERT_TRUE(log.ok()) << "node " << n.id << ": " << log.error().to_string();
    n.log = std::move(*log);
    n.machine = std::make_unique<KvStateMachine>(kGroup, &n.engine);
    ASSERT_TRUE(n.machine->load().ok());
    GroupLog& group = n.log->group(kGroup);
    KvStateMachine* machine = n.machine.get();
    group.set_snapshot_source([machine] { return machine->snapshot(); });
    Config config;
    config.id = NodeId{n.id};
    config.group = kGroup;
    config.storage = &group;
    config.random_seed = seed_ * 977 + n.id + 1000 * restarts_;
    config.max_size_per_msg_bytes = 512;
    config.snapshot_chunk_bytes = 300;
    auto raw = RawNode::create(config);
    ASSERT_TRUE(raw.ok()) << "node " << n.id << ": " << raw.error().to_string();
    n.raw = std::move(*raw);
  }

  void crash(Node& n) {
    n.raw.reset();
    n.machine.reset();
    n.log.reset();
    n.disk->crash();
    n.engine.crash();  // the state machine's unsynced batches are gone
    std::erase_if(network_, [&](const Message& m) { return m.to.value() == n.id; });
    ++crashes_;
  }

  void process(Node& n) {
    if (!n.up() || !n.raw->has_ready()) return;
    Ready rd = n.raw->ready();
    for (Message& m : rd.messages) network_.push_back(std::move(m));
    if (rd.snapshot) {
      // The state machine takes the snapshot (durably) before the WAL says
      // the log restarts after it.
      ASSERT_TRUE(n.machine->install(*rd.snapshot, {.sync = true}).ok());
      ++snapshots_installed_;
      // Crash with the engine ahead of the log: replay must cope.
      if (crash_mid_ready()) return crash(n);
    }
    WalBatch batch;
    if (rd.snapshot) batch.add_snapshot(kGroup, rd.snapshot->meta, SnapshotMode::kInstall);
    if (!rd.entries.empty()) batch.add_entries(kGroup, rd.entries);
    if (rd.hard_state) batch.add_hard_state(kGroup, *rd.hard_state);
    if (!batch.empty()) {
      base::Status written = n.log->write(batch);
      if (!written.ok() && written.code() == base::Errc::kNoSpace) {
        // Nothing of this Ready may be acknowledged: the node stops (as etcd
        // does on a failed WAL write) and recovers from disk when restarted.
        disk_errors_.push_back(written.error().to_string());
        crash(n);
        return;
      }
      ASSERT_TRUE(written.ok()) << written.error().to_string();
      // Durable but nothing said yet: acknowledgements are lost, not wrong.
      if (crash_mid_ready()) return crash(n);
    }
    for (Message& m : rd.messages_after_persist) network_.push_back(std::move(m));
    if (crash_mid_ready()) return crash(n);  // promised, not yet applied
    if (!rd.committed_entries.empty()) {
      auto applied = n.machine->apply(rd.committed_entries, &conf_);
      ASSERT_TRUE(applied.ok()) << applied.error().to_string();
      for (size_t i = 0; i < applied->size(); ++i) {
        const node::AppliedEntry& result = (*applied)[i];
        if (!result.reply) continue;
        auto command = node::decode_command(rd.committed_entries[i].data.view());
        ASSERT_TRUE(command.ok());
        Client& client = clients_[command->client_id - 1];
        if (client.sequence == command->sequence) {
          // The reply reaches the client.
          acknowledged_[client.key].push_back(token(client.id, client.sequence));
          client.sequence = 0;
        }
      }
    }
    n.raw->advance();
    auto invariants = n.raw->raft().check_invariants();
    ASSERT_TRUE(invariants.ok()) << "node " << n.id << ": " << invariants.error().to_string();
  }

  // A crash between two steps of carrying out a Ready (only while every
  // node is up, so a majority survives).
  bool crash_mid_ready() {
    if (!crash_nodes_ || down_count() != 0 || !rng_.chance(1, 600)) return false;
    ++crashes_mid_ready_;
    return true;
  }

  static std::string token(uint64_t client, uint64_t sequence) {
    return "[" + std::to_string(client) + ":" + std::to_string(sequence) + "]";
  }

  Node* leader() {
    for (auto& [id, n] : nodes_) {
      if (n.up() && n.raw->raft().role() == Role::kLeader) return &n;
    }
    return nullptr;
  }

  void client_step(uint64_t now) {
    Client& client = clients_[rng_.uniform(clients_.size())];
    if (client.sequence == 0) {
      client.sequence = ++next_sequence_[client.id];
      client.key = kKeys[rng_.uniform(3)];
      client.sent_at = 0;
    }
    if (client.sent_at != 0 && now - client.sent_at < 40) return;  // wait, then retry
    Node* n = leader();
    if (n == nullptr) return;
    Command command;
    command.client_id = client.id;
    command.sequence = client.sequence;
    command.op = CommandOp::kAppend;
    command.key = client.key;
    command.value = token(client.id, client.sequence);
    (void)n->raw->propose(Bytes(node::encode_command(command)));
    client.sent_at = now;
  }

  void deliver_some() {
    for (int k = 0; k < 6 && !network_.empty(); ++k) {
      const size_t pick = rng_.uniform(std::min<size_t>(network_.size(), 4));
      Message m = std::move(network_[pick]);
      network_.erase(network_.begin() + static_cast<ptrdiff_t>(pick));
      auto it = nodes_.find(m.to.value());
      if (it == nodes_.end() || !it->second.up() || rng_.chance(1, 50)) continue;
      if (lagging_ == m.to.value() || lagging_ == m.from.value()) continue;
      (void)it->second.raw->step(m);
    }
  }

  void compact(Node& n) {
    // The log may drop what the engine holds durably, never more.
    ASSERT_TRUE(n.engine.sync().ok());
    const node::AppliedState& applied = n.machine->applied();
    GroupLog& group = n.log->group(kGroup);
    if (applied.index < group.first_index() || applied.index > group.last_index()) return;
    WalBatch batch;
    batch.add_snapshot(kGroup, SnapshotMeta{applied.index, applied.term, applied.conf_state},
                       SnapshotMode::kCompact);
    ASSERT_TRUE(n.log->write(batch).ok());
    ++compactions_;
  }

  void run(uint64_t steps) {
    for (uint64_t now = 1; now <= steps; ++now) {
      if (::testing::Test::HasFatalFailure()) return;
      const uint64_t dice = rng_.uniform(1000);
      if (dice < 300) {
        client_step(now);
      } else if (dice < 320) {
        Node& n = nodes_[rng_.between(1, 3)];
        if (n.up()) compact(n);
      } else if (dice < 324 && down_count() == 0 && crash_nodes_) {
        crash(nodes_[rng_.between(1, 3)]);
      } else if (dice < 340) {
        for (auto& [id, n] : nodes_) {
          if (!n.up()) {
            ++restarts_;
            start(n);
          }
        }
      } else if (dice < 343) {
        // One node stops hearing anything for a while: it falls behind the
        // compaction point and must be sent a snapshot.
        lagging_ = lagging_ == 0 ? rng_.between(1, 3) : 0;
      }
      if (now % 3 == 0) {
        for (auto& [id, n] : nodes_) {
          if (n.up()) n.raw->tick();
        }
      }
      deliver_some();
      for (auto& [id, n] : nodes_) process(n);
    }
  }

  // Heals everything and runs until every client has its reply and every
  // node has applied the same index.
  void settle() {
    lagging_ = 0;
    crash_nodes_ = false;  // the faults are over: now the cluster must converge
    for (auto& [id, n] : nodes_) {
      if (!n.up()) {
        ++restarts_;
        start(n);
      }
    }
    for (uint64_t now = 1; now < 200000; ++now) {
      if (::testing::Test::HasFatalFailure()) return;
      bool waiting = false;
      for (Client& c : clients_) waiting |= c.sequence != 0;
      if (waiting) {
        for (size_t i = 0; i < clients_.size(); ++i) client_step(1000000 + now);
      } else if (converged()) {
        return;
      }
      if (now % 3 == 0) {
        for (auto& [id, n] : nodes_) n.raw->tick();
      }
      deliver_some();
      for (auto& [id, n] : nodes_) process(n);
    }
    FAIL() << "seed " << seed_ << ": the cluster did not settle";
  }

  bool converged() {
    if (!network_.empty()) return false;
    const LogIndex first = nodes_[1].machine->applied().index;
    for (auto& [id, n] : nodes_) {
      if (n.raw->has_ready() || n.machine->applied().index != first) return false;
      if (n.raw->raft().log().committed() != first) return false;
    }
    return true;
  }

  void check() {
    for (const char* key : kKeys) {
      std::optional<std::string> first;
      for (auto& [id, n] : nodes_) {
        auto value = n.machine->get(key);
        ASSERT_TRUE(value.ok());
        const std::string text = value->value_or("");
        if (!first) first = text;
        EXPECT_EQ(text, *first) << "seed " << seed_ << ": node " << id << " differs on " << key;
      }
      const std::string& text = *first;
      for (const std::string& acked : acknowledged_[key]) {
        const size_t at = text.find(acked);
        EXPECT_NE(at, std::string::npos) << "seed " << seed_ << ": acknowledged " << acked
                                         << " lost from " << key;
        if (at != std::string::npos) {
          EXPECT_EQ(text.find(acked, at + 1), std::string::npos)
              << "seed " << seed_ << ": " << acked << " applied twice in " << key;
        }
      }
      // Each client's tokens appear in its own order.
      std::map<uint64_t, uint64_t> last;
      for (size_t at = text.find('['); at != std::string::npos; at = text.find('[', at + 1)) {
        const uint64_t client = std::stoull(text.substr(at + 1));
        const uint64_t sequence = std::stoull(text.substr(text.find(':', at) + 1));
        EXPECT_GT(sequence, last[client]) << "seed " << seed_ << ": client " << client
                                          << " out of order in " << key;
        last[client] = sequence;
      }
    }
  }

  size_t down_count() const {
    size_t down = 0;
    for (const auto& [id, n] : nodes_) down += n.up() ? 0 : 1;
    return down;
  }

  FaultyFileSystem& disk(uint64_t id) { return *nodes_[id].disk; }
  bool up(uint64_t id) { return nodes_[id].up(); }

  uint64_t crashes_ = 0, crashes_mid_ready_ = 0, restarts_ = 0, compactions_ = 0,
           snapshots_installed_ = 0;
  std::vector<std::string> disk_errors_;
  std::map<std::string, std::vector<std::string>> acknowledged_;

 private:
  base::Rng rng_;
  uint64_t seed_;
  ConfState conf_;
  std::map<uint64_t, Node> nodes_;
  std::deque<Message> network_;
  std::vector<Client> clients_;
  std::map<uint64_t, uint64_t> next_sequence_;
  uint64_t lagging_ = 0;

 public:
  bool crash_nodes_ = true;
};

TEST(RaftOnDurableStorage, CrashesRestartsCompactionsAndSnapshotsLoseNoAcknowledgedWrite) {
  uint64_t crashes = 0, crashes_mid_ready = 0, compactions = 0, snapshots = 0, acknowledged = 0;
  const uint64_t seeds = test_support::env_number("SYNOD_RAFT_DURABLE_SEEDS", 24);
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    DurableCluster cluster(seed);
    cluster.run(6000);
    ASSERT_FALSE(HasFatalFailure()) << "seed " << seed;
    cluster.settle();
    ASSERT_FALSE(HasFatalFailure()) << "seed " << seed;
    cluster.check();
    crashes += cluster.crashes_;
    crashes_mid_ready += cluster.crashes_mid_ready_;
    compactions += cluster.compactions_;
    snapshots += cluster.snapshots_installed_;
    for (const auto& [key, tokens] : cluster.acknowledged_) acknowledged += tokens.size();
  }
  std::printf("%llu seeds: %llu acknowledged appends, %llu crashes (%llu in the middle of a "
              "Ready), %llu compactions, %llu snapshots installed\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(acknowledged),
              static_cast<unsigned long long>(crashes),
              static_cast<unsigned long long>(crashes_mid_ready),
              static_cast<unsigned long long>(compactions), static_cast<unsigned long long>(snapshots));
  // The run must actually exercise what it claims to.
  EXPECT_GT(acknowledged, 1000u);
  EXPECT_GT(crashes, 20u);
  EXPECT_GT(crashes_mid_ready, 10u);
  EXPECT_GT(compactions, 100u);
  EXPECT_GT(snapshots, 0u);
}

TEST(RaftOnDurableStorage, FullDiskStopsTheNodeWithAClearErrorAndCorruptsNothing) {
  DurableCluster cluster(99);
  cluster.crash_nodes_ = false;
  cluster.run(1500);
  ASSERT_FALSE(HasFatalFailure());
  // Node 3's disk fills up: a few hundred bytes of room are left.
  auto acknowledged = [&cluster] {
    size_t count = 0;
    for (const auto& [key, tokens] : cluster.acknowledged_) count += tokens.size();
    return count;
  };
  const size_t acknowledged_before = acknowledged();
  FaultyFileSystem& disk = cluster.disk(3);
  disk.set_capacity_bytes(disk.used_bytes() + 300);
  cluster.run(3000);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_FALSE(cluster.disk_errors_.empty()) << "the disk never filled up";
  EXPECT_NE(cluster.disk_errors_.front().find("no space left on device"), std::string::npos)
      << cluster.disk_errors_.front();
  EXPECT_FALSE(cluster.up(3)) << "a node whose WAL cannot be written must not keep running";
  bool restart_refused = false;
  for (const std::string& error : cluster.disk_errors_) restart_refused |= error.starts_with("restart");
  EXPECT_TRUE(restart_refused) << "restarts while the disk is full should fail clearly";
  // The other two carried on without it.
  EXPECT_GT(acknowledged(), acknowledged_before + 100);
  // Room again: node 3 recovers what it had and catches up.
  disk.set_capacity_bytes(std::nullopt);
  cluster.settle();
  ASSERT_FALSE(HasFatalFailure());
  cluster.check();
}

}  // namespace
}  // namespace synod
