// The deterministic simulator: a whole cluster of real nodes (node::Node: the
// Raft core, the KV state machine with client-session dedupe, the request
// routing) over the real write-ahead log on simulated disks, a simulated
// network, simulated processes and clocks, and simulated clients, all in one
// thread and in simulated time. One seed decides everything, so a failure
// found once is replayed exactly (FoundationDB's and TigerBeetle's approach).
//
// A run has three phases:
//   1. faults, for `duration_ns`: clients run a workload on a few hot keys
//      while a nemesis injects the enabled fault classes;
//   2. liveness: every fault is healed (partitions, pauses, slow disks, down
//      nodes restarted); every client must then complete an operation, and a
//      leader must exist, within `liveness_bound_ns`;
//   3. settle: clients stop, one reads every key, and every replica must
//      reach the same applied index with identical data.
//
// Checks, and the first one to fail is the run's verdict:
//   - after every step of every node: Raft's own invariants
//     (Raft::check_invariants), at most one leader per term, a leader commits
//     by counting replicas only entries of its own term (§5.4.2), a new
//     leader holds every entry any node has applied (leader completeness),
//     no two nodes apply different entries at one index (state machine
//     safety, which implies log matching for committed entries);
//   - a node's recovery from its simulated disk never fails;
//   - the client history is linearizable (linearizability.h); the final
//     reads make a lost acknowledged write a violation;
//   - liveness and convergence as above.
//
// The trace: one line per notable event (faults, crashes, elections, client
// operations); the digest hashes every trace line and every message
// delivered, so two runs with the same digest did the same thing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bugs.h"
#include "base/result.h"
#include "sim/history.h"
#include "sim/linearizability.h"

namespace synod::sim {

enum class Fault : uint8_t {
  kPartition = 0,  // random halves, isolated leader, bridge, majorities ring; heal
  kNetwork = 1,    // loss, duplication, reordering of messages
  kWan = 2,        // nodes in three regions with WAN latency between them
  kCrash = 3,      // kill a process (unsynced writes lost) and restart it
  kPause = 4,      // freeze a process (a GC pause) and resume it
  kDisk = 5,       // slow fsyncs; a crash mid-write tears the WAL's tail
  kClock = 6,      // per-node tick rate drift and forward jumps of the timer
};
inline constexpr size_t kFaultCount = 7;

struct FaultInfo {
  Fault fault;
  std::string_view name;
  std::string_view description;
};
extern const FaultInfo kFaults[kFaultCount];

class FaultSet {
 public:
  static FaultSet all() {
    FaultSet set;
    set.bits_ = (1u << kFaultCount) - 1;
    return set;
  }
  static FaultSet none() { return {}; }
  bool has(Fault fault) const { return (bits_ >> static_cast<unsigned>(fault)) & 1u; }
  void add(Fault fault) { bits_ |= 1u << static_cast<unsigned>(fault); }
  bool empty() const { return bits_ == 0; }
  // "partition,crash" or "all" or "none".
  std::string to_string() const;

 private:
  uint32_t bits_ = 0;
};

// Parses "all", "none" or a comma-separated list of fault names.
base::Result<FaultSet> parse_faults(std::string_view text);

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 5;
  int clients = 10;
  // Raft groups of the default keyspace (the workload's keys spread over
  // them), besides the meta group.
  int partitions = 2;
  // An operator creates a keyspace a quarter into the fault phase and
  // drops it at two thirds (or later); clients use its keys while active.
  bool keyspaces = true;
  uint64_t duration_ns = 60'000'000'000;
  FaultSet faults = FaultSet::all();
  base::BugSet bugs;
  // After healing: how long the cluster has to serve every client again,
  // and then to converge.
  uint64_t liveness_bound_ns = 20'000'000'000;
  // Trace lines kept for the report (the newest); 0 keeps every line.
  size_t trace_lines_kept = 200;
  // Receives every trace line as it happens (for --replay), if set.
  std::function<void(std::string_view)> trace_sink;
  CheckOptions check;

  base::Status validate() const;
};

struct SimStats {
  uint64_t simulated_ns = 0;
  uint64_t events = 0;
  uint64_t messages_delivered = 0;
  uint64_t messages_dropped = 0;
  uint64_t operations = 0;
  uint64_t operations_ok = 0;
  uint64_t operations_fail = 0;
  uint64_t operations_unknown = 0;
  uint64_t leaders_elected = 0;
  uint64_t crashes = 0;
  uint64_t torn_writes = 0;  // crashes with a WAL write in flight left unsynced
  uint64_t pauses = 0;
  uint64_t partitions = 0;
  uint64_t slow_disks = 0;
  uint64_t clock_jumps = 0;
  uint64_t snapshots_installed = 0;
  uint64_t compactions = 0;
  uint64_t entries_applied = 0;  // summed over nodes
};

struct SimResult {
  uint64_t seed = 0;
  bool passed = false;
  // The first violation, in words (empty when passed).
  std::string violation;
  uint64_t digest = 0;
  History history;
  std::vector<std::string> trace;  // the newest lines (all, if asked)
  SimStats stats;
  CheckReport check;  // the linearizability checker's report
};

SimResult run_simulation(const SimOptions& options);

std::string digest_hex(uint64_t digest);
// One line for a person: seeds, operations, faults and checks.
std::string describe_stats(const SimStats& stats);

}  // namespace synod::sim
