// Raft replication throughput, core only: three RawNodes in one thread, each
// persisting to its own MemoryStorage, messages handed over in memory. A
// leader is elected once; then every loop turn proposes a batch of 100-byte
// entries at the leader and carries out Readies and messages until every
// node has applied the whole batch. No disk, no network, no clock: this is
// the ceiling the core puts on a group, not a figure for a deployment.
//
// Reported: `entries_per_second`, entries committed and applied on all three
// nodes per second of wall time; `heartbeat_ticks_per_turn`, how often a
// follower learned the final commit index only from a heartbeat.
//
//   ./build/bench/raft_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "base/assert.h"
#include "raft/memory_storage.h"
#include "raft/raw_node.h"
#include "raft/raft.h"

namespace synod::raft {
namespace {

constexpr size_t kNodes = 3;
constexpr size_t kPayloadBytes = 100;
// Compact once this many entries were applied since the last compaction, so
// memory stays bounded however long the benchmark runs.
constexpr uint64_t kCompactEvery = 16384;

class BenchCluster {
 public:
  BenchCluster() {
    ConfState conf;
    for (size_t i = 0; i < kNodes; ++i) conf.voters.push_back(NodeId{i + 1});
    for (size_t i = 0; i < kNodes; ++i) {
      Node& n = nodes_[i];
      n.storage = std::make_unique<MemoryStorage>();
      // Bootstrapped as a deployment would be: the configuration is a
      // snapshot at 1@1.
      Snapshot snap;
      snap.meta.index = LogIndex{1};
      snap.meta.term = Term{1};
      snap.meta.conf_state = conf;
      SYNOD_ASSERT(n.storage->apply_snapshot(snap).ok(), "bootstrap snapshot");
      n.storage->set_hard_state(HardState{Term{1}, kNone, LogIndex{1}});
      n.applied = LogIndex{1};
      Config c;
      c.id = NodeId{i + 1};
      c.group = GroupId{1};
      c.storage = n.storage.get();
      c.random_seed = i + 1;
      c.applied = n.applied;
      auto raw = RawNode::create(c);
      SYNOD_ASSERT(raw.ok(), "bench node must start");
      n.raw = std::move(raw).value();
    }
    SYNOD_ASSERT(leader().campaign().ok(), "campaign");
    pump();
    SYNOD_ASSERT(leader().raft().role() == Role::kLeader, "node 1 must win the election");
  }

  RawNode& leader() { return *nodes_[0].raw; }

  // Proposes `batch` fresh payloads at the leader and runs the group until
  // all of them are applied everywhere. Returns the entries committed.
  uint64_t turn(size_t batch) {
    for (size_t i = 0; i < batch; ++i) {
      const base::Status st = leader().propose(Bytes(std::string(kPayloadBytes, 'x')));
      SYNOD_ASSERT(st.ok(), "the leader takes every proposal");
    }
    const LogIndex target = leader().raft().log().last_index();
    pump();
    // A follower may not have been told the final commit index yet (the
    // leader tells it with the next append or heartbeat): let heartbeats
    // carry it, as a running host's timer would.
    for (int beat = 0; !all_applied(target); ++beat) {
      SYNOD_ASSERT(beat < 8, "a turn must end fully applied within a few heartbeats");
      leader().tick();
      ++heartbeat_ticks_;
      pump();
    }
    maybe_compact();
    return batch;
  }

  uint64_t heartbeat_ticks() const { return heartbeat_ticks_; }

 private:
  struct Node {
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<RawNode> raw;
    LogIndex applied;
    LogIndex compacted;
  };

  bool all_applied(LogIndex target) const {
    for (const Node& n : nodes_) {
      if (n.applied < target) return false;
    }
    return true;
  }

  // Readies and deliveries until nothing moves.
  void pump() {
    bool moved = true;
    while (moved) {
      moved = false;
      for (Node& n : nodes_) moved |= process_ready(n);
      if (outbox_.empty()) continue;
      moved = true;
      inbox_.swap(outbox_);
      for (const Message& m : inbox_) (void)nodes_[m.to.value() - 1].raw->step(m);
      inbox_.clear();
    }
  }

  bool process_ready(Node& n) {
    if (!n.raw->has_ready()) return false;
    Ready rd = n.raw->ready();
    for (Message& m : rd.messages) outbox_.push_back(std::move(m));
    if (rd.snapshot) SYNOD_ASSERT(n.storage->apply_snapshot(*rd.snapshot).ok(), "snapshot");
    if (!rd.entries.empty()) SYNOD_ASSERT(n.storage->append(rd.entries).ok(), "append");
    if (rd.hard_state) n.storage->set_hard_state(*rd.hard_state);
    for (Message& m : rd.messages_after_persist) outbox_.push_back(std::move(m));
    if (rd.snapshot) n.applied = rd.snapshot->meta.index;
    if (!rd.committed_entries.empty()) {
      uint64_t bytes = 0;
      for (const Entry& e : rd.committed_entries) bytes += e.data.size();
      benchmark::DoNotOptimize(bytes);
      n.applied = rd.committed_entries.back().index;
    }
    n.raw->advance();
    return true;
  }

  void maybe_compact() {
    for (Node& n : nodes_) {
      if (n.applied - n.compacted < kCompactEvery) continue;
      auto snap = n.storage->create_snapshot(n.applied, nullptr, Bytes("state"));
      SYNOD_ASSERT(snap.ok(), "create_snapshot at the applied index");
      SYNOD_ASSERT(n.storage->compact(n.applied).ok(), "compact");
      n.compacted = n.applied;
    }
  }

  std::array<Node, kNodes> nodes_;
  std::vector<Message> outbox_;
  std::vector<Message> inbox_;
  uint64_t heartbeat_ticks_ = 0;
};

// Arg: proposals per loop turn (1 = no batching).
void BM_RaftCommit(benchmark::State& state) {
  const auto batch = static_cast<size_t>(state.range(0));
  BenchCluster cluster;
  uint64_t committed = 0;
  for (auto _ : state) committed += cluster.turn(batch);
  state.counters["entries_per_second"] =
      benchmark::Counter(static_cast<double>(committed), benchmark::Counter::kIsRate);
  // Turns that needed a heartbeat before every node learned the commit index.
  state.counters["heartbeat_ticks_per_turn"] = benchmark::Counter(
      static_cast<double>(cluster.heartbeat_ticks()), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_RaftCommit)->ArgName("batch")->Arg(1)->Arg(64)->Arg(256)->UseRealTime();

}  // namespace
}  // namespace synod::raft

BENCHMARK_MAIN();
