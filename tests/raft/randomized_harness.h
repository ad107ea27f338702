// A randomized, seeded, in-process simulation of one Raft group, and the
// checker of Raft's safety properties that judges every step of it (Raft
// paper Figure 3; TigerBeetle's VOPR and FoundationDB's simulator in spirit).
//
// The simulation wires 3 or 5 RawNodes, each with its own MemoryStorage as
// its disk, through a network that drops, duplicates, delays (so reorders)
// and partitions messages, and crashes nodes, possibly in the middle of
// carrying out a Ready (after sending, after persisting, after applying).
// Clients propose, read (ReadIndex) and ask for leadership transfers; hosts
// compact their logs into snapshots. With `SimOptions::conf_changes` the
// leader's host also, rarely, proposes a membership change (see
// `conf_change_one`): the node set stays fixed, members become learners,
// voters, non-members and members again; hosts apply committed conf change
// entries in order (on replay after a restart too) and record in every
// snapshot the configuration at its index. Everything is drawn from one
// `base::Rng`, so a seed is a complete description of a run: the same seed
// gives the same trace, event for event (the digest proves it).
//
// After every step the checker verifies:
//   - Election Safety: at most one leader per term, over the whole run.
//   - Log Matching: two logs holding an entry with the same index and term
//     agree on its payload and on every earlier entry they both still hold.
//     Checked inductively: all entries ever seen at (index, term) must agree
//     on payload and on the term of the entry before them.
//   - Leader Completeness: a leader of term T holds every entry that was
//     known committed before term T began.
//   - State Machine Safety: no two nodes (nor one node before and after a
//     restart) apply different entries at one index, and every snapshot a
//     node installs or restarts from is the state others reached there.
//   - Linearizable reads: a ReadIndex answer is at least every index that was
//     applied somewhere before the read was asked. A quarter of the seeds
//     use lease-based reads; there time is global and each node's clock runs
//     at its own rate, within the configured drift bound (elsewhere single
//     nodes tick at random, i.e. clocks drift without bound).
//   - The core's own invariants (`Raft::check_invariants`).
// At the end every fault is healed and the group must elect a leader and
// commit a fresh proposal on every node within a bound of ticks (liveness);
// with membership changes, on every member of the final configuration.
//
// A violation stops the run; the result carries the seed, the first
// violation in words and the tail of the event trace.
#pragma once

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/rng.h"
#include "raft/confchange.h"
#include "raft/memory_storage.h"
#include "raft/raft.h"
#include "raft/raw_node.h"

namespace synod::raft::randomized {

// ---------------------------------------------------------------------------
// Hashing (FNV-1a, 64 bit): trace digests, payload fingerprints, and the
// digest of a state machine's whole applied history.

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
inline constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

inline uint64_t fnv1a(uint64_t hash, std::string_view bytes) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= kFnvPrime;
  }
  return hash;
}

inline uint64_t fnv1a_u64(uint64_t hash, uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    hash ^= (value >> (8 * i)) & 0xff;
    hash *= kFnvPrime;
  }
  return hash;
}

// Fingerprint of what an entry says (its type and payload).
inline uint64_t payload_hash(const Entry& e) {
  return fnv1a(fnv1a_u64(kFnvOffset, static_cast<uint64_t>(e.type)), e.data.view());
}

// The state machine is the digest of everything it applied, in order: two
// state machines at one index are equal exactly when their histories are.
inline constexpr uint64_t kStateBase = kFnvOffset;
inline uint64_t state_after(uint64_t state, const Entry& e) {
  state = fnv1a_u64(state, e.index.value());
  state = fnv1a_u64(state, e.term.value());
  return fnv1a_u64(state, payload_hash(e));
}

// What a snapshot's data holds: "sm <index> <state>" and filler bytes, so
// that snapshots span several chunks when the chunk size is small.
inline std::string encode_state(LogIndex index, uint64_t state, size_t filler_bytes) {
  char head[64];
  std::snprintf(head, sizeof(head), "sm %" PRIu64 " %016" PRIx64 " ", index.value(), state);
  std::string out(head);
  out.append(filler_bytes, '.');
  return out;
}

inline bool decode_state(std::string_view data, LogIndex* index, uint64_t* state) {
  uint64_t i = 0;
  uint64_t s = 0;
  const std::string copy(data.substr(0, 64));
  if (std::sscanf(copy.c_str(), "sm %" SCNu64 " %" SCNx64, &i, &s) != 2) return false;
  *index = LogIndex{i};
  *state = s;
  return true;
}

// A payload shown to a person: at most 24 printable characters.
inline std::string preview(const Bytes& data) {
  std::string out;
  for (char c : data.view().substr(0, 24)) out += (c >= 32 && c < 127) ? c : '?';
  if (data.size() > 24) out += "...";
  if (data.empty()) out = "<empty>";
  return out;
}

inline std::string entry_words(const Entry& e) {
  return "(index " + std::to_string(e.index.value()) + ", term " + std::to_string(e.term.value()) +
         ", " + (e.type == EntryType::kConfChange ? "conf change " : "") + "'" + preview(e.data) +
         "')";
}

// ---------------------------------------------------------------------------
// SafetyChecker: Figure 3 of the Raft paper, judged on observations. It knows
// nothing of the simulation, so tests can feed it fabricated histories.

// A node's log as the checker sees it: the entries after a compaction point
// whose term is known (the snapshot's).
struct LogView {
  LogIndex snapshot_index;
  Term snapshot_term;
  std::vector<Entry> entries;  // contiguous from snapshot_index + 1
};

inline LogView log_view(const RaftLog& log) {
  LogView view;
  view.snapshot_index = log.first_index() - 1;
  view.snapshot_term = log.term_or_zero(view.snapshot_index);
  view.entries = log.all_entries();
  return view;
}

class SafetyChecker {
 public:
  // The largest index a sane run reaches; beyond it the checker refuses to
  // grow its tables (a corrupt index, not a long run).
  static constexpr uint64_t kMaxIndex = uint64_t{1} << 24;

  bool ok() const { return violation_.empty(); }
  // The first violation, in words ("" if none).
  const std::string& violation() const { return violation_; }

  // Election Safety: `node` is leader in `term`.
  void on_leader(NodeId node, Term term) {
    auto [it, inserted] = leaders_.emplace(term, node);
    if (!inserted && it->second != node) {
      fail("election safety: nodes " + std::to_string(it->second.value()) + " and " +
           std::to_string(node.value()) + " were both leader in term " +
           std::to_string(term.value()));
    }
  }

  // Log Matching (and terms never decreasing along a log); Leader
  // Completeness when `node` is leader in `term`.
  void on_log(NodeId node, const LogView& log, bool is_leader, Term term) {
    Term prev_term = log.snapshot_term;
    LogIndex expect = log.snapshot_index + 1;
    for (const Entry& e : log.entries) {
      if (e.index != expect) {
        fail("log of node " + who(node) + " is not contiguous: entry " + entry_words(e) +
             " where index " + std::to_string(expect.value()) + " was due");
        return;
      }
      if (e.term < prev_term) {
        fail("log of node " + who(node) + ": entry " + entry_words(e) +
             " has a lower term than the entry before it (term " +
             std::to_string(prev_term.value()) + ")");
        return;
      }
      if (!check_matching(node, e, prev_term)) return;
      prev_term = e.term;
      ++expect;
    }
    if (is_leader) check_leader_completeness(node, log, term);
  }

  // State Machine Safety: `node` applied `entry`. `observed_term` is at least
  // the term in which the entry was committed (the largest term any node had
  // when the apply was seen), so every leader of a later term must hold it.
  void on_apply(NodeId node, const Entry& entry, Term observed_term) {
    if (!index_in_range(entry.index)) return;
    const uint64_t i = entry.index.value();
    if (committed_.size() <= i) committed_.resize(i + 1);
    Committed& c = committed_[i];
    const uint64_t hash = payload_hash(entry);
    if (!c.present) {
      c = Committed{true, entry.term, hash, observed_term, node, entry};
      max_committed_ = std::max(max_committed_, entry.index);
      return;
    }
    if (c.term != entry.term || c.hash != hash) {
      fail("state machine safety: node " + who(node) + " applied " + entry_words(entry) +
           " but node " + who(c.first_node) + " applied " + entry_words(c.entry) +
           " at the same index");
    }
  }

  // `node`'s state machine, having applied everything through `index`
  // (directly or through a snapshot), has digest `state`.
  void on_state(NodeId node, LogIndex index, uint64_t state) {
    if (!index_in_range(index)) return;
    const uint64_t i = index.value();
    if (states_.size() <= i) states_.resize(i + 1);
    State& s = states_[i];
    if (!s.present) {
      s = State{true, state, node};
      return;
    }
    if (s.state != state) {
      fail("state machine safety: node " + who(node) + " has state " + hex(state) + " after index " +
           std::to_string(i) + " but node " + who(s.first_node) + " had state " + hex(s.state) +
           " there (their applied histories differ)");
    }
  }

  // A read was asked when everything through `min_index` had been applied
  // somewhere: its answer must not be older.
  void on_read_request(const std::string& context, LogIndex min_index) {
    reads_[context] = min_index;
  }
  void on_read_state(NodeId node, const ReadState& read) {
    auto it = reads_.find(read.context.str());
    if (it == reads_.end()) {
      fail("node " + who(node) + " served read '" + preview(read.context) +
           "' that nobody asked for");
      return;
    }
    if (read.index < it->second) {
      fail("linearizable read: read '" + it->first + "' at node " + who(node) +
           " got read index " + std::to_string(read.index.value()) + ", but index " +
           std::to_string(it->second.value()) +
           " had already been applied when it was asked (a stale read)");
    }
  }

  // The core's own invariants, as it reports them.
  void on_core_invariant(NodeId node, const base::Status& status) {
    if (!status.ok()) {
      fail("core invariant broken at node " + who(node) + ": " + status.error().to_string());
    }
  }

  // Anything else that must never happen (a storage write refused, a
  // committed entry handed out of order), in words.
  void on_contract_breach(const std::string& what) { fail(what); }

  LogIndex max_committed() const { return max_committed_; }
  size_t leaders_seen() const { return leaders_.size(); }
  size_t reads_asked() const { return reads_.size(); }

 private:
  struct Slot {
    Term term;
    Term prev_term;
    uint64_t hash = 0;
    NodeId first_node;
  };
  struct Committed {
    bool present = false;
    Term term;
    uint64_t hash = 0;
    Term observed_term;
    NodeId first_node;
    Entry entry;
  };
  struct State {
    bool present = false;
    uint64_t state = 0;
    NodeId first_node;
  };

  static std::string who(NodeId node) { return std::to_string(node.value()); }
  static std::string hex(uint64_t value) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "%016" PRIx64, value);
    return buf;
  }

  bool index_in_range(LogIndex index) {
    if (index.value() < kMaxIndex) return true;
    fail("index " + std::to_string(index.value()) + " is beyond any index this run can reach");
    return false;
  }

  bool check_matching(NodeId node, const Entry& e, Term prev_term) {
    if (!index_in_range(e.index)) return false;
    const uint64_t i = e.index.value();
    if (slots_.size() <= i) slots_.resize(i + 1);
    const uint64_t hash = payload_hash(e);
    for (const Slot& s : slots_[i]) {
      if (s.term != e.term) continue;
      if (s.hash != hash) {
        fail("log matching: nodes " + who(s.first_node) + " and " + who(node) +
             " hold different entries at index " + std::to_string(i) + " in term " +
             std::to_string(e.term.value()) + " (node " + who(node) + " has " + entry_words(e) +
             ")");
        return false;
      }
      if (s.prev_term != prev_term) {
        fail("log matching: nodes " + who(s.first_node) + " and " + who(node) +
             " both hold index " + std::to_string(i) + " of term " +
             std::to_string(e.term.value()) + " but disagree before it: the entry at index " +
             std::to_string(i - 1) + " has term " + std::to_string(s.prev_term.value()) +
             " at node " + who(s.first_node) + " and term " + std::to_string(prev_term.value()) +
             " at node " + who(node));
        return false;
      }
      return true;
    }
    slots_[i].push_back(Slot{e.term, prev_term, hash, node});
    return true;
  }

  void check_leader_completeness(NodeId node, const LogView& log, Term term) {
    const uint64_t first = log.snapshot_index.value() + 1;
    const uint64_t last = log.snapshot_index.value() + log.entries.size();
    const uint64_t end = std::min<uint64_t>(committed_.size(), max_committed_.value() + 1);
    for (uint64_t i = first; i < end; ++i) {
      const Committed& c = committed_[i];
      if (!c.present || c.observed_term >= term) continue;
      if (i > last) {
        fail("leader completeness: node " + who(node) + " leads term " +
             std::to_string(term.value()) + " but its log ends at index " + std::to_string(last) +
             ", without committed entry " + entry_words(c.entry) +
             " (known committed by term " + std::to_string(c.observed_term.value()) + ")");
        return;
      }
      const Entry& mine = log.entries[i - first];
      if (mine.term != c.term || payload_hash(mine) != c.hash) {
        fail("leader completeness: node " + who(node) + " leads term " +
             std::to_string(term.value()) + " and holds " + entry_words(mine) +
             " where committed entry " + entry_words(c.entry) + " belongs (known committed by term " +
             std::to_string(c.observed_term.value()) + ")");
        return;
      }
    }
  }

  void fail(std::string why) {
    if (violation_.empty()) violation_ = std::move(why);
  }

  std::map<Term, NodeId> leaders_;
  // Log Matching: per index, every term seen there with its payload and the
  // term of the entry before it.
  std::vector<std::vector<Slot>> slots_;
  // Every entry applied anywhere, by index.
  std::vector<Committed> committed_;
  LogIndex max_committed_;
  // State machine digests, by index.
  std::vector<State> states_;
  std::unordered_map<std::string, LogIndex> reads_;
  std::string violation_;
};

// ---------------------------------------------------------------------------
// The simulation.

// Deliberate host mistakes, to prove the checker catches what they cause.
enum class HostBug : uint8_t {
  kNone,
  // Persists the hard state without its vote: after a restart the node may
  // vote twice in one term.
  kForgetVote,
  // Sends `messages_after_persist` before persisting (and crashes between
  // more often): acknowledged entries can be lost.
  kAckBeforePersist,
};

struct SimOptions {
  uint64_t seed = 1;
  HostBug host_bug = HostBug::kNone;
  // Random steps before the liveness phase.
  int steps = 3000;
  bool check_liveness = true;
  // Membership changes in the workload (drawn from a second stream of the
  // seed, so a run without them is the same run it always was).
  bool conf_changes = false;
  // Print every event to stderr as it happens (to see what led to a crash of
  // the process itself, e.g. a failed SYNOD_ASSERT in the core).
  bool echo_trace = false;
};

struct SimStats {
  uint64_t steps = 0;
  uint64_t messages_delivered = 0;
  uint64_t messages_dropped = 0;
  uint64_t messages_duplicated = 0;
  uint64_t proposals_accepted = 0;
  uint64_t entries_applied = 0;
  uint64_t max_committed = 0;
  uint64_t terms = 0;
  uint64_t leaders = 0;
  uint64_t crashes = 0;
  uint64_t crashes_mid_ready = 0;
  uint64_t snapshots_made = 0;
  uint64_t snapshots_installed = 0;
  uint64_t reads_asked = 0;
  uint64_t reads_served = 0;
  uint64_t lease_runs = 0;
  uint64_t transfers_asked = 0;
  uint64_t partitions = 0;
  uint64_t liveness_ticks = 0;
  uint64_t conf_changes_proposed = 0;
  uint64_t conf_changes_applied = 0;
};

struct SimResult {
  bool ok = true;
  // Seed, first violation in words, how to replay it and the trace tail.
  std::string failure;
  // FNV-1a over every event of the run.
  uint64_t digest = 0;
  SimStats stats;
};

class Simulation {
 public:
  static constexpr size_t kMaxNodes = 5;
  // Bounds: in-flight messages, trace tail, settle rounds in the liveness
  // phase.
  static constexpr size_t kMaxInFlight = 4096;
  static constexpr size_t kTraceTail = 48;
  static constexpr int kSettleRounds = 64;

  explicit Simulation(SimOptions options)
      : options_(options),
        rng_(options.seed * 0x9e3779b97f4a7c15ULL + 0x5eed),
        conf_rng_(options.seed * 0xbf58476d1ce4e5b9ULL + 0xc0f) {}

  SimResult run() {
    setup();
    for (int step = 0; step < options_.steps && ok(); ++step) {
      now_ = static_cast<uint64_t>(step);
      random_step();
      check_step();
      ++stats_.steps;
    }
    if (ok() && options_.check_liveness) liveness();
    return finish();
  }

 private:
  // ---- Events: every one feeds the digest; the last few are kept to show.
  enum class EventKind : uint8_t {
    kSetup,
    kTick,
    kTickAll,
    kDeliver,
    kDrop,
    kDuplicate,
    kPropose,
    kRead,
    kTransfer,
    kCompact,
    kCrash,
    kRestart,
    kPartition,
    kReady,
    kApply,
    kInstall,
    kRole,
    kHeal,
    kLivenessPropose,
    kConfPropose,
    kConfApply,
  };
  struct Event {
    uint64_t step = 0;
    EventKind kind = EventKind::kSetup;
    uint8_t msg = 0;
    uint8_t node = 0;
    uint8_t peer = 0;
    uint64_t a = 0, b = 0, c = 0, d = 0;
  };

  struct Node {
    NodeId id;
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<RawNode> raw;  // null while crashed
    // The state machine: applied index and the digest of its history.
    LogIndex applied;
    uint64_t state = kStateBase;
    // The configuration as of `applied` (what a snapshot there records).
    ConfState conf;
    Role role = Role::kFollower;
    Term term;
    uint64_t incarnation = 0;
    // Storage answers snapshot() with kSnapshotTemporarilyUnavailable.
    bool snapshot_unavailable = false;
    // Lease mode: this node's clock rate (ticks per unit of true time) and
    // the fraction of a tick it has accumulated.
    double tick_rate = 1.0;
    double tick_credit = 0.0;
  };

  // The host's own view of its storage's snapshot (the unavailability is
  // only what Raft is told).
  static base::Result<Snapshot> stored_snapshot(Node& n) {
    n.storage->set_snapshot_unavailable(false);
    auto snap = n.storage->snapshot();
    n.storage->set_snapshot_unavailable(n.snapshot_unavailable);
    return snap;
  }

  struct InFlight {
    uint64_t deliver_at = 0;
    uint64_t seq = 0;
    Message message;
  };

  // Fault rates for one run, drawn from the seed.
  struct Faults {
    uint32_t drop_per_mille = 0;
    uint32_t duplicate_per_mille = 0;
    uint32_t long_delay_per_mille = 0;
    uint64_t short_delay_max = 0;
    uint64_t long_delay_max = 0;
    uint32_t crash_per_100k_steps = 0;
    uint32_t crash_mid_ready_per_mille = 0;
    uint32_t restart_per_mille = 0;
    uint32_t partition_change_per_10k = 0;
    size_t max_down = 1;
  };

  bool ok() const { return checker_.ok(); }

  // ---- Setup

  void setup() {
    const size_t count = rng_.chance(1, 2) ? 3 : 5;
    for (size_t i = 0; i < count; ++i) conf_.voters.push_back(NodeId{i + 1});
    draw_config();
    draw_faults(count);
    for (size_t i = 0; i < count; ++i) {
      Node n;
      n.id = NodeId{i + 1};
      // Rates in [1, 1 + ratio): no clock runs more than `ratio` faster than
      // another.
      n.tick_rate = 1.0 + base_config_.max_clock_drift_ratio * rng_.unit();
      n.storage = std::make_unique<MemoryStorage>();
      // Bootstrapped as a deployment would be: the configuration arrives as
      // a snapshot at 1@1, so every member starts from one committed state.
      Snapshot snap;
      snap.meta.index = LogIndex{1};
      snap.meta.term = Term{1};
      snap.meta.conf_state = conf_;
      snap.data = Bytes(encode_state(LogIndex{1}, kStateBase, 0));
      if (auto st = n.storage->apply_snapshot(snap); !st.ok()) {
        checker_.on_contract_breach("setup: bootstrap snapshot refused: " + st.error().to_string());
      }
      n.storage->set_hard_state(HardState{Term{1}, kNone, LogIndex{1}});
      nodes_.push_back(std::move(n));
    }
    checker_.on_state(NodeId{0}, LogIndex{1}, kStateBase);
    for (Node& n : nodes_) start(n);
    record(Event{0, EventKind::kSetup, 0, static_cast<uint8_t>(count), 0,
                 static_cast<uint64_t>(base_config_.election_tick),
                 static_cast<uint64_t>(base_config_.heartbeat_tick),
                 (base_config_.pre_vote ? 1u : 0u) | (base_config_.check_quorum ? 2u : 0u) |
                     (lease_mode() ? 4u : 0u),
                 base_config_.max_size_per_msg_bytes});
  }

  // Knobs the core may be tuned by, drawn so that rare paths (tiny messages,
  // a window of one, many-chunk snapshots, no PreVote) are common here.
  void draw_config() {
    Config& c = base_config_;
    c.group = GroupId{1};
    c.election_tick = static_cast<int>(rng_.between(5, 20));
    c.heartbeat_tick = static_cast<int>(rng_.between(1, std::min<uint64_t>(3, c.election_tick - 1)));
    c.pre_vote = !rng_.chance(1, 4);
    c.check_quorum = !rng_.chance(1, 4);
    c.max_size_per_msg_bytes = rng_.chance(1, 2) ? rng_.between(1, 400) : (size_t{1} << 20);
    c.max_inflight_msgs = rng_.chance(1, 3) ? rng_.between(1, 4) : 256;
    c.max_inflight_bytes = 0;
    c.max_uncommitted_entries_bytes = rng_.chance(1, 3) ? rng_.between(64, 4096) : 0;
    c.max_committed_size_per_ready_bytes = rng_.chance(1, 3) ? rng_.between(1, 512) : 0;
    c.snapshot_chunk_bytes = rng_.chance(1, 2) ? rng_.between(1, 64) : (size_t{1} << 20);
    c.disable_proposal_forwarding = rng_.chance(1, 5);
    c.read_only_option = ReadOnlyOption::kSafe;
    if (rng_.chance(1, 4)) {
      // Lease reads are safe only while clocks drift apart by less than the
      // configured ratio: in this mode time is global and every node's
      // clock runs at its own rate within that bound.
      c.read_only_option = ReadOnlyOption::kLeaseBased;
      c.check_quorum = true;
      c.max_clock_drift_ratio = static_cast<double>(rng_.between(0, 20)) / 100.0;
    }
  }

  bool lease_mode() const { return base_config_.read_only_option == ReadOnlyOption::kLeaseBased; }

  void draw_faults(size_t count) {
    Faults& f = faults_;
    f.drop_per_mille = static_cast<uint32_t>(rng_.chance(1, 5) ? 0 : rng_.between(1, 200));
    f.duplicate_per_mille = static_cast<uint32_t>(rng_.between(0, 60));
    f.long_delay_per_mille = static_cast<uint32_t>(rng_.between(0, 50));
    f.short_delay_max = rng_.between(0, 12);
    f.long_delay_max = rng_.between(20, 400);
    f.crash_per_100k_steps = static_cast<uint32_t>(rng_.chance(1, 5) ? 0 : rng_.between(10, 300));
    f.crash_mid_ready_per_mille = static_cast<uint32_t>(rng_.chance(1, 3) ? 0 : rng_.between(1, 15));
    f.restart_per_mille = static_cast<uint32_t>(rng_.between(2, 30));
    f.partition_change_per_10k = static_cast<uint32_t>(rng_.chance(1, 5) ? 0 : rng_.between(5, 60));
    f.max_down = static_cast<size_t>(rng_.between(1, count - 1));
    if (options_.host_bug != HostBug::kNone) {
      // A host bug shows only around crashes: make them frequent.
      f.crash_per_100k_steps = std::max<uint32_t>(f.crash_per_100k_steps, 1000);
      f.crash_mid_ready_per_mille = std::max<uint32_t>(f.crash_mid_ready_per_mille, 20);
      f.restart_per_mille = std::max<uint32_t>(f.restart_per_mille, 50);
    }
  }

  void start(Node& n) {
    Config c = base_config_;
    c.id = n.id;
    c.storage = n.storage.get();
    c.random_seed = rng_.next();
    // The state machine restarts from the snapshot on disk.
    auto snap = stored_snapshot(n);
    if (!snap.ok()) {
      checker_.on_contract_breach("restart of node " + std::to_string(n.id.value()) +
                                  ": storage has no snapshot: " + snap.error().to_string());
      return;
    }
    LogIndex index;
    uint64_t state = 0;
    if (!decode_state(snap->data.view(), &index, &state) || index != snap->meta.index) {
      checker_.on_contract_breach("restart of node " + std::to_string(n.id.value()) +
                                  ": its snapshot at index " +
                                  std::to_string(snap->meta.index.value()) +
                                  " holds no state machine for that index");
      return;
    }
    n.applied = index;
    n.state = state;
    n.conf = snap->meta.conf_state;
    checker_.on_state(n.id, index, state);
    c.applied = index;
    auto raw = RawNode::create(c);
    if (!raw.ok()) {
      checker_.on_contract_breach("node " + std::to_string(n.id.value()) +
                                  " cannot start from its storage: " + raw.error().to_string());
      return;
    }
    n.raw = std::move(raw).value();
    n.role = n.raw->raft().role();
    n.term = n.raw->raft().term();
    ++n.incarnation;
    touch(n);
  }

  // ---- One random step

  void random_step() {
    maybe_change_partition();
    maybe_crash_or_restart();
    if (options_.conf_changes && conf_rng_.chance(1, 150)) return conf_change_one();
    const uint64_t backlog = std::min<uint64_t>(net_.size(), 200);
    // Weights: delivery keeps pace with the backlog so queues stay short.
    const uint64_t w_deliver = 30 + backlog;
    const uint64_t w_ready = 25;
    const uint64_t w_tick = 8;
    const uint64_t w_tick_all = 5;
    const uint64_t w_propose = 8;
    const uint64_t w_read = 2;
    const uint64_t w_transfer = 1;
    const uint64_t w_compact = 2;
    const uint64_t w_snapshot_toggle = 1;
    uint64_t pick = rng_.uniform(w_deliver + w_ready + w_tick + w_tick_all + w_propose + w_read +
                                 w_transfer + w_compact + w_snapshot_toggle);
    if (pick < w_deliver) return deliver_one();
    pick -= w_deliver;
    if (pick < w_ready) return ready_one();
    pick -= w_ready;
    if (pick < w_tick) return tick_one();
    pick -= w_tick;
    if (pick < w_tick_all) return tick_all();
    pick -= w_tick_all;
    if (pick < w_propose) return propose_one();
    pick -= w_propose;
    if (pick < w_read) return read_one();
    pick -= w_read;
    if (pick < w_transfer) return transfer_one();
    pick -= w_transfer;
    if (pick < w_compact) return compact_one();
    return toggle_snapshot_unavailable();
  }

  Node* random_up_node() {
    const size_t begin = rng_.uniform(nodes_.size());
    for (size_t k = 0; k < nodes_.size(); ++k) {
      Node& n = nodes_[(begin + k) % nodes_.size()];
      if (n.raw) return &n;
    }
    return nullptr;
  }

  Node* current_leader() {
    Node* best = nullptr;
    for (Node& n : nodes_) {
      if (!n.raw || n.raw->raft().role() != Role::kLeader) continue;
      if (best == nullptr || n.raw->raft().term() > best->raw->raft().term()) best = &n;
    }
    return best;
  }

  // Lease mode: one unit of true time passes; each clock ticks at its rate.
  void clock_tick() {
    record(Event{now_, EventKind::kTickAll, 0, 0, 0, 1});
    for (Node& n : nodes_) {
      if (!n.raw) continue;
      n.tick_credit += n.tick_rate;
      while (n.tick_credit >= 1.0) {
        n.tick_credit -= 1.0;
        n.raw->tick();
        touch(n);
      }
    }
  }

  void tick_one() {
    if (lease_mode()) return clock_tick();
    Node* n = random_up_node();
    if (n == nullptr) return;
    record(Event{now_, EventKind::kTick, 0, node_byte(*n)});
    n->raw->tick();
    touch(*n);
  }

  void tick_all() {
    if (lease_mode()) return clock_tick();
    record(Event{now_, EventKind::kTickAll});
    for (Node& n : nodes_) {
      if (!n.raw) continue;
      n.raw->tick();
      touch(n);
    }
  }

  void propose_one() {
    Node* target = current_leader();
    if (target == nullptr || rng_.chance(3, 10)) target = random_up_node();
    if (target == nullptr) return;
    std::string data = "p" + std::to_string(++proposals_);
    if (rng_.chance(1, 4)) data.append(rng_.between(1, 200), static_cast<char>('a' + proposals_ % 26));
    const base::Status st = target->raw->propose(Bytes(std::move(data)));
    if (st.ok()) ++stats_.proposals_accepted;
    record(Event{now_, EventKind::kPropose, 0, node_byte(*target), 0, proposals_,
                 st.ok() ? 1u : 0u});
    touch(*target);
  }

  void read_one() {
    Node* n = random_up_node();
    if (n == nullptr) return;
    const std::string context = "r" + std::to_string(++reads_);
    // Everything applied anywhere by now must be visible to this read.
    checker_.on_read_request(context, checker_.max_committed());
    n->raw->read_index(Bytes(context));
    ++stats_.reads_asked;
    record(Event{now_, EventKind::kRead, 0, node_byte(*n), 0, reads_,
                 checker_.max_committed().value()});
    touch(*n);
  }

  void transfer_one() {
    Node* n = random_up_node();
    if (n == nullptr) return;
    const NodeId to = conf_.voters[rng_.uniform(conf_.voters.size())];
    n->raw->transfer_leader(to);
    ++stats_.transfers_asked;
    record(Event{now_, EventKind::kTransfer, 0, node_byte(*n), static_cast<uint8_t>(to.value())});
    touch(*n);
  }

  // ---- Membership changes

  static bool has(const std::vector<NodeId>& v, NodeId id) {
    return std::find(v.begin(), v.end(), id) != v.end();
  }
  static void drop(std::vector<NodeId>& v, NodeId id) { std::erase(v, id); }

  // The configuration in a trace word: 4 bits per node (voter, learner,
  // outgoing voter, next learner) and the auto-leave flag.
  static uint64_t conf_bits(const ConfState& cs) {
    uint64_t bits = cs.auto_leave ? uint64_t{1} << 63 : 0;
    auto mark = [&](const std::vector<NodeId>& v, unsigned shift) {
      for (NodeId id : v) bits |= uint64_t{1} << ((id.value() - 1) * 4 + shift);
    };
    mark(cs.voters, 0);
    mark(cs.learners, 1);
    mark(cs.voters_outgoing, 2);
    mark(cs.learners_next, 3);
    return bits;
  }

  static bool is_member(const ConfState& cs, NodeId id) {
    return has(cs.voters, id) || has(cs.learners, id) || has(cs.voters_outgoing, id) ||
           has(cs.learners_next, id);
  }

  // One random single change that keeps at least 3 voters, touching none of
  // `used`; updates the sets as if it were applied. False if none fits.
  bool random_single(std::vector<NodeId>& voters, std::vector<NodeId>& learners,
                     std::vector<NodeId>& used, ConfChangeSingle* out) {
    std::vector<NodeId> others;
    for (const Node& n : nodes_) {
      if (!has(voters, n.id) && !has(learners, n.id) && !has(used, n.id)) others.push_back(n.id);
    }
    auto pick = [&](const std::vector<NodeId>& from) {
      std::vector<NodeId> free;
      for (NodeId id : from) {
        if (!has(used, id)) free.push_back(id);
      }
      return free.empty() ? NodeId{0} : free[conf_rng_.uniform(free.size())];
    };
    for (int attempt = 0; attempt < 8; ++attempt) {
      NodeId id{0};
      switch (conf_rng_.uniform(6)) {
        case 0:  // a non-member joins as a learner
          id = pick(others);
          if (id == NodeId{0}) continue;
          *out = ConfChangeSingle{ConfChangeType::kAddLearnerNode, id};
          learners.push_back(id);
          break;
        case 1:  // a learner is promoted
          id = pick(learners);
          if (id == NodeId{0}) continue;
          *out = ConfChangeSingle{ConfChangeType::kAddNode, id};
          drop(learners, id);
          voters.push_back(id);
          break;
        case 2:  // a voter leaves (never below 3)
          if (voters.size() <= 3) continue;
          id = pick(voters);
          if (id == NodeId{0}) continue;
          *out = ConfChangeSingle{ConfChangeType::kRemoveNode, id};
          drop(voters, id);
          break;
        case 3:  // a learner leaves
          id = pick(learners);
          if (id == NodeId{0}) continue;
          *out = ConfChangeSingle{ConfChangeType::kRemoveNode, id};
          drop(learners, id);
          break;
        case 4:  // a voter is demoted to learner (never below 3 voters)
          if (voters.size() <= 3) continue;
          id = pick(voters);
          if (id == NodeId{0}) continue;
          *out = ConfChangeSingle{ConfChangeType::kAddLearnerNode, id};
          drop(voters, id);
          learners.push_back(id);
          break;
        default:  // a non-member joins as a voter directly
          id = pick(others);
          if (id == NodeId{0}) continue;
          *out = ConfChangeSingle{ConfChangeType::kAddNode, id};
          voters.push_back(id);
          break;
      }
      used.push_back(id);
      return true;
    }
    return false;
  }

  // The current leader's host proposes a membership change drawn from the
  // seed: a single change, a two-change joint change left automatically, or
  // an explicit joint change (one or two changes) left later by an empty
  // ConfChange, proposed here when the leader finds itself in one.
  void conf_change_one() {
    Node* leader = current_leader();
    if (leader == nullptr) return;
    const ConfState cs = leader->raw->status().conf_state;
    ConfChange cc;
    if (!cs.voters_outgoing.empty()) {
      if (cs.auto_leave) return;  // the core leaves by itself
      // Explicit joint: leave (empty change).
    } else {
      std::vector<NodeId> voters = cs.voters;
      std::vector<NodeId> learners = cs.learners;
      std::vector<NodeId> used;
      const uint64_t kind = conf_rng_.uniform(4);
      const size_t count = kind == 0 ? 1 : kind == 1 ? 2 : 1 + conf_rng_.uniform(2);
      for (size_t k = 0; k < count; ++k) {
        ConfChangeSingle one;
        if (!random_single(voters, learners, used, &one)) break;
        cc.changes.push_back(one);
      }
      if (cc.changes.empty()) return;
      // kind 0, 1: kAuto (one change is one step, two enter a joint
      // configuration left automatically); 2, 3: kJointExplicit.
      cc.transition = kind <= 1 ? ConfChangeTransition::kAuto : ConfChangeTransition::kJointExplicit;
    }
    const base::Status st = leader->raw->propose_conf_change(cc);
    ++stats_.conf_changes_proposed;
    uint64_t what = 0;
    for (const ConfChangeSingle& one : cc.changes) {
      what = what << 8 | static_cast<uint64_t>(one.type) << 4 | one.node.value();
    }
    record(Event{now_, EventKind::kConfPropose, 0, node_byte(*leader), 0,
                 static_cast<uint64_t>(cc.transition), what, cc.changes.size(), st.ok() ? 1u : 0u});
    touch(*leader);
  }

  // The host snapshots its state machine at the applied index and drops a
  // prefix of its log (keeping a few entries, as etcd's hosts do).
  void compact_one() {
    Node* n = random_up_node();
    if (n == nullptr) return;
    compact(*n, rng_.between(0, 8));
  }

  void compact(Node& n, uint64_t keep) {
    MemoryStorage& s = *n.storage;
    auto snap = stored_snapshot(n);
    const LogIndex snap_index = snap.ok() ? snap->meta.index : LogIndex{0};
    if (n.applied <= snap_index || n.applied > s.last_index()) return;
    const size_t filler = base_config_.snapshot_chunk_bytes < 64 ? rng_.between(0, 200) : 0;
    auto made = s.create_snapshot(n.applied, &n.conf, Bytes(encode_state(n.applied, n.state, filler)));
    if (!made.ok()) {
      checker_.on_contract_breach("node " + std::to_string(n.id.value()) +
                                  ": create_snapshot at its applied index " +
                                  std::to_string(n.applied.value()) +
                                  " failed: " + made.error().to_string());
      return;
    }
    ++stats_.snapshots_made;
    const LogIndex upto = n.applied - std::min<uint64_t>(keep, n.applied.value());
    if (upto >= s.first_index()) {
      if (auto st = s.compact(upto); !st.ok()) {
        checker_.on_contract_breach("node " + std::to_string(n.id.value()) + ": compact(" +
                                    std::to_string(upto.value()) +
                                    ") failed: " + st.error().to_string());
        return;
      }
    }
    record(Event{now_, EventKind::kCompact, 0, node_byte(n), 0, n.applied.value(), upto.value()});
    touch(n);
  }

  void toggle_snapshot_unavailable() {
    Node& n = nodes_[rng_.uniform(nodes_.size())];
    n.snapshot_unavailable = rng_.chance(1, 3);
    n.storage->set_snapshot_unavailable(n.snapshot_unavailable);
  }

  // ---- Faults

  void maybe_change_partition() {
    if (faults_.partition_change_per_10k == 0) return;
    if (!rng_.chance(faults_.partition_change_per_10k, 10000)) return;
    for (auto& row : cut_) row.fill(false);
    const size_t count = nodes_.size();
    uint64_t mode = rng_.uniform(5);
    switch (mode) {
      case 0:  // healed
        break;
      case 1: {  // one node isolated
        const size_t x = rng_.uniform(count);
        for (size_t y = 0; y < count; ++y) {
          if (y != x) cut_[x][y] = cut_[y][x] = true;
        }
        break;
      }
      case 2: {  // two random halves
        uint64_t side = 0;
        for (size_t x = 0; x < count; ++x) side |= rng_.uniform(2) << x;
        for (size_t x = 0; x < count; ++x) {
          for (size_t y = 0; y < count; ++y) {
            if (((side >> x) & 1) != ((side >> y) & 1)) cut_[x][y] = true;
          }
        }
        break;
      }
      case 3: {  // one-way: a node hears nobody but is heard
        const size_t x = rng_.uniform(count);
        for (size_t y = 0; y < count; ++y) {
          if (y != x) cut_[y][x] = true;
        }
        break;
      }
      default: {  // a bridge: the first two cannot talk, both reach the rest
        const size_t x = rng_.uniform(count);
        const size_t y = (x + 1 + rng_.uniform(count - 1)) % count;
        cut_[x][y] = cut_[y][x] = true;
        break;
      }
    }
    ++stats_.partitions;
    uint64_t bits = 0;
    for (size_t x = 0; x < count; ++x) {
      for (size_t y = 0; y < count; ++y) bits |= uint64_t{cut_[x][y]} << (x * kMaxNodes + y);
    }
    record(Event{now_, EventKind::kPartition, 0, 0, 0, mode, bits});
  }

  void maybe_crash_or_restart() {
    size_t down = 0;
    for (const Node& n : nodes_) down += n.raw ? 0 : 1;
    if (down > 0 && rng_.chance(faults_.restart_per_mille, 1000)) {
      const size_t begin = rng_.uniform(nodes_.size());
      for (size_t k = 0; k < nodes_.size(); ++k) {
        Node& n = nodes_[(begin + k) % nodes_.size()];
        if (n.raw) continue;
        restart(n);
        break;
      }
    }
    if (faults_.crash_per_100k_steps == 0 || down >= faults_.max_down) return;
    if (!rng_.chance(faults_.crash_per_100k_steps, 100000)) return;
    Node* n = random_up_node();
    if (n != nullptr) crash(*n, 9);
  }

  // Loses everything not in storage: the node object, its unstable log, its
  // state machine. Messages it already sent stay in the network.
  void crash(Node& n, uint64_t stage) {
    n.raw.reset();
    ++stats_.crashes;
    if (stage < 9) ++stats_.crashes_mid_ready;
    record(Event{now_, EventKind::kCrash, 0, node_byte(n), 0, stage});
    // Messages to itself were local acknowledgements of the lost process.
    std::erase_if(net_, [&](const InFlight& f) {
      return f.message.to == n.id && f.message.from == n.id;
    });
  }

  void restart(Node& n) {
    record(Event{now_, EventKind::kRestart, 0, node_byte(n)});
    start(n);
  }

  // ---- Network

  void send(Node& from, Message m) {
    if (m.to == from.id) {
      // Local: never lost, delivered in order.
      push(std::move(m), 0);
      return;
    }
    if (faults_.drop_per_mille != 0 && rng_.chance(faults_.drop_per_mille, 1000)) {
      dropped(m, 0);
      return;
    }
    const uint64_t copies =
        faults_.duplicate_per_mille != 0 && rng_.chance(faults_.duplicate_per_mille, 1000) ? 2 : 1;
    if (copies == 2) {
      ++stats_.messages_duplicated;
      record(message_event(EventKind::kDuplicate, m));
    }
    for (uint64_t k = 0; k < copies; ++k) {
      uint64_t delay = rng_.between(0, faults_.short_delay_max);
      if (rng_.chance(faults_.long_delay_per_mille, 1000)) {
        delay = rng_.between(0, faults_.long_delay_max);
      }
      push(k + 1 == copies ? std::move(m) : m, delay);
    }
  }

  void push(Message m, uint64_t delay) {
    if (net_.size() >= kMaxInFlight) {
      // The network's buffers are full: the oldest message is lost.
      auto oldest = std::min_element(net_.begin(), net_.end(), [](const auto& a, const auto& b) {
        return a.seq < b.seq;
      });
      dropped(oldest->message, 1);
      net_.erase(oldest);
    }
    net_.push_back(InFlight{now_ + delay, ++seq_, std::move(m)});
  }

  // A transport learns of some failures: it tells the sender, as a host
  // would (ReportUnreachable / ReportSnapshot in etcd's terms).
  void dropped(const Message& m, uint64_t why) {
    ++stats_.messages_dropped;
    record(message_event(EventKind::kDrop, m, why));
    Node& from = nodes_[m.from.value() - 1];
    if (!from.raw || m.from == m.to) return;
    if (m.type == MessageType::kSnap && rng_.chance(1, 2)) {
      from.raw->report_snapshot(m.to, true);
      touch(from);
    } else if (m.type == MessageType::kApp && rng_.chance(1, 4)) {
      from.raw->report_unreachable(m.to);
      touch(from);
    }
  }

  // Delivers one message whose time has come, chosen at random among them.
  void deliver_one() {
    size_t chosen = net_.size();
    uint64_t seen = 0;
    for (size_t i = 0; i < net_.size(); ++i) {
      if (net_[i].deliver_at > now_) continue;
      ++seen;
      if (rng_.uniform(seen) == 0) chosen = i;
    }
    if (chosen == net_.size()) return;
    InFlight f = std::move(net_[chosen]);
    net_[chosen] = std::move(net_.back());
    net_.pop_back();
    deliver(std::move(f.message));
  }

  void deliver(Message m) {
    const size_t to = m.to.value() - 1;
    const size_t from = m.from.value() - 1;
    if (to >= nodes_.size() || from >= nodes_.size()) {
      checker_.on_contract_breach("a message names a node that does not exist: " +
                                  format(message_event(EventKind::kDeliver, m)));
      return;
    }
    Node& n = nodes_[to];
    if (!n.raw) {
      dropped(m, 2);
      return;
    }
    if (cut_[from][to]) {
      dropped(m, 3);
      return;
    }
    ++stats_.messages_delivered;
    record(message_event(EventKind::kDeliver, m));
    (void)n.raw->step(m);
    touch(n);
  }

  // ---- Ready

  void ready_one() {
    const size_t begin = rng_.uniform(nodes_.size());
    for (size_t k = 0; k < nodes_.size(); ++k) {
      Node& n = nodes_[(begin + k) % nodes_.size()];
      if (!n.raw || !n.raw->has_ready()) continue;
      process_ready(n, true);
      return;
    }
  }

  // Carries out one Ready in the order ready.h prescribes. With a small
  // chance the node crashes between two of the steps: after sending
  // `messages` (stage 0), after persisting (1), after sending
  // `messages_after_persist` (2) or after applying (3).
  bool process_ready(Node& n, bool may_crash) {
    if (!n.raw || !n.raw->has_ready()) return false;
    touch(n);
    Ready rd = n.raw->ready();
    int crash_stage = -1;
    if (may_crash && faults_.crash_mid_ready_per_mille != 0 &&
        rng_.chance(faults_.crash_mid_ready_per_mille, 1000)) {
      crash_stage = static_cast<int>(rng_.uniform(4));
    }
    record(Event{now_, EventKind::kReady, 0, node_byte(n), 0, rd.entries.size(),
                 rd.committed_entries.size(), rd.messages.size() + rd.messages_after_persist.size(),
                 rd.hard_state ? rd.hard_state->commit.value() : 0});
    const bool ack_early = options_.host_bug == HostBug::kAckBeforePersist;
    // The window the bug opens: acknowledgements are out, the disk is not.
    if (ack_early && may_crash && rng_.chance(1, 20)) crash_stage = 0;
    for (int stage = 0; stage < 4; ++stage) {
      switch (stage) {
        case 0:
          for (Message& m : rd.messages) send(n, std::move(m));
          if (ack_early) {
            for (Message& m : rd.messages_after_persist) send(n, std::move(m));
          }
          break;
        case 1:
          persist(n, rd);
          break;
        case 2:
          if (!ack_early) {
            for (Message& m : rd.messages_after_persist) send(n, std::move(m));
          }
          break;
        case 3:
          apply(n, rd);
          break;
      }
      if (stage == crash_stage) {
        crash(n, static_cast<uint64_t>(stage));
        return true;
      }
    }
    n.raw->advance();
    return true;
  }

  void persist(Node& n, const Ready& rd) {
    MemoryStorage& s = *n.storage;
    const std::string who = "node " + std::to_string(n.id.value());
    if (rd.snapshot) {
      if (auto st = s.apply_snapshot(*rd.snapshot); !st.ok()) {
        checker_.on_contract_breach(who + ": storage refused the Ready's snapshot at index " +
                                    std::to_string(rd.snapshot->meta.index.value()) + ": " +
                                    st.error().to_string());
      }
    }
    if (!rd.entries.empty()) {
      if (auto st = s.append(rd.entries); !st.ok()) {
        checker_.on_contract_breach(who + ": storage refused the Ready's entries " +
                                    std::to_string(rd.entries.front().index.value()) + ".." +
                                    std::to_string(rd.entries.back().index.value()) + ": " +
                                    st.error().to_string());
      }
    }
    if (rd.hard_state) {
      HardState hs = *rd.hard_state;
      if (options_.host_bug == HostBug::kForgetVote) hs.vote = kNone;
      s.set_hard_state(hs);
    }
  }

  void apply(Node& n, const Ready& rd) {
    const std::string who = "node " + std::to_string(n.id.value());
    if (rd.snapshot) {
      const Snapshot& snap = *rd.snapshot;
      LogIndex index;
      uint64_t state = 0;
      if (!decode_state(snap.data.view(), &index, &state) || index != snap.meta.index) {
        checker_.on_contract_breach(who + " was handed a snapshot at index " +
                                    std::to_string(snap.meta.index.value()) +
                                    " whose data is not the state machine at that index");
        return;
      }
      if (index <= n.applied) {
        checker_.on_contract_breach(who + " was handed a snapshot at index " +
                                    std::to_string(index.value()) + " but has applied up to " +
                                    std::to_string(n.applied.value()) + " already");
        return;
      }
      n.applied = index;
      n.state = state;
      n.conf = snap.meta.conf_state;
      ++stats_.snapshots_installed;
      record(Event{now_, EventKind::kInstall, 0, node_byte(n), 0, index.value(), snap.meta.term.value()});
      checker_.on_state(n.id, index, state);
    }
    const Term observed = max_term();
    for (const Entry& e : rd.committed_entries) {
      if (e.index != n.applied + 1) {
        checker_.on_contract_breach(who + " was handed committed entry " + entry_words(e) +
                                    " to apply, but has applied up to " +
                                    std::to_string(n.applied.value()));
        return;
      }
      checker_.on_apply(n.id, e, observed);
      n.state = state_after(n.state, e);
      n.applied = e.index;
      if (e.type == EntryType::kConfChange) {
        auto cc = decode_conf_change(e.data.view());
        if (!cc.ok()) {
          checker_.on_contract_breach(who + " was handed committed conf change " + entry_words(e) +
                                      " that does not decode: " + cc.error().to_string());
          return;
        }
        n.conf = n.raw->apply_conf_change(*cc);
        ++stats_.conf_changes_applied;
        record(Event{now_, EventKind::kConfApply, 0, node_byte(n), 0, e.index.value(),
                     conf_bits(n.conf)});
      }
      checker_.on_state(n.id, e.index, n.state);
      ++stats_.entries_applied;
      record(Event{now_, EventKind::kApply, 0, node_byte(n), 0, e.index.value(), e.term.value(),
                   payload_hash(e)});
      if (!liveness_marker_.empty() && e.data.view() == liveness_marker_ &&
          liveness_index_ == LogIndex{0}) {
        liveness_index_ = e.index;
      }
    }
    for (const ReadState& rs : rd.read_states) {
      ++stats_.reads_served;
      checker_.on_read_state(n.id, rs);
    }
  }

  // The largest term any node has (up nodes in memory, crashed ones on disk):
  // every entry committed by now was committed in a term no larger.
  Term max_term() {
    for (const Node& n : nodes_) {
      const Term t = n.raw ? n.raw->raft().term() : n.storage->hard_state().term;
      max_term_ = std::max(max_term_, t);
    }
    return max_term_;
  }

  // ---- Checks after every step

  void touch(Node& n) { touched_ |= uint32_t{1} << (n.id.value() - 1); }

  void check_step() {
    for (Node& n : nodes_) {
      if (!n.raw) continue;
      const Raft& r = n.raw->raft();
      if (r.role() != n.role || r.term() != n.term) {
        n.role = r.role();
        n.term = r.term();
        record(Event{now_, EventKind::kRole, 0, node_byte(n), 0, static_cast<uint64_t>(n.role),
                     n.term.value()});
      }
      if (r.role() == Role::kLeader) checker_.on_leader(n.id, r.term());
      if ((touched_ >> (n.id.value() - 1) & 1) == 0) continue;
      checker_.on_core_invariant(n.id, r.check_invariants());
      checker_.on_log(n.id, log_view(r.log()), r.role() == Role::kLeader, r.term());
    }
    touched_ = 0;
  }

  // ---- Liveness: heal everything, then a leader must commit a fresh entry
  // on every node within a bound of ticks.

  void liveness() {
    for (auto& row : cut_) row.fill(false);
    faults_ = Faults{};
    for (Node& n : nodes_) {
      n.snapshot_unavailable = false;
      n.storage->set_snapshot_unavailable(false);
      if (!n.raw) restart(n);
    }
    record(Event{now_, EventKind::kHeal});
    check_step();
    liveness_marker_ = "live-" + std::to_string(options_.seed);
    const int bound = 20 * base_config_.election_tick + 100;
    int proposed_at = -1;
    NodeId proposed_to;
    for (int t = 0; t < bound && ok(); ++t) {
      ++now_;
      ++stats_.liveness_ticks;
      for (Node& n : nodes_) {
        n.raw->tick();
        touch(n);
      }
      check_step();
      settle();
      if (!ok()) return;
      if (liveness_index_ != LogIndex{0} && members_applied(liveness_index_)) return;
      Node* leader = current_leader();
      if (leader != nullptr) refresh_snapshot_for_members(*leader);
      if (leader == nullptr || liveness_index_ != LogIndex{0}) continue;
      // (Re)propose when there is a new leader, or the last try went nowhere.
      if (proposed_at < 0 || leader->id != proposed_to ||
          t - proposed_at > 4 * base_config_.election_tick) {
        const base::Status st = leader->raw->propose(Bytes(liveness_marker_));
        record(Event{now_, EventKind::kLivenessPropose, 0, node_byte(*leader), 0,
                     st.ok() ? 1u : 0u});
        touch(*leader);
        if (st.ok()) {
          proposed_at = t;
          proposed_to = leader->id;
        }
        check_step();
        settle();
      }
    }
    if (!ok()) return;
    std::string status;
    for (const Node& n : nodes_) {
      const Raft& r = n.raw->raft();
      status += " node " + std::to_string(n.id.value()) + ": " + std::string(role_name(r.role())) +
                " term " + std::to_string(r.term().value()) + " leader " +
                std::to_string(r.leader().value()) + " commit " +
                std::to_string(r.log().committed().value()) + " applied " +
                std::to_string(n.applied.value()) + " last " +
                std::to_string(r.log().last_index().value()) + " conf " +
                conf_words(n.conf) + ";";
    }
    if (const Node* leader = current_leader()) {
      status += " leader's view:";
      for (const auto& pr : leader->raw->status().progress) {
        status += " " + std::to_string(pr.id.value()) + "=" + pr.state + "(match " +
                  std::to_string(pr.match.value()) + ", next " + std::to_string(pr.next.value()) +
                  ")";
      }
    }
    checker_.on_contract_breach(
        "liveness: with every fault healed, " +
        std::string(current_leader() == nullptr ? "no leader emerged and " : "") +
        "a fresh proposal was not applied on every member within " + std::to_string(bound) +
        " ticks (marker index " + std::to_string(liveness_index_.value()) + ");" + status);
  }

  // A member that was removed and re-added after the leader's stored
  // snapshot was taken is not named in that snapshot's configuration, so it
  // refuses it (as etcd's raft does) and the leader would offer it the same
  // snapshot forever. A host answers by taking a fresh snapshot (it holds
  // the re-add, since the leader's configuration changes when it applies).
  void refresh_snapshot_for_members(Node& leader) {
    auto snap = stored_snapshot(leader);
    if (!snap.ok()) return;
    const ConfState now = leader.raw->status().conf_state;
    for (const Node& n : nodes_) {
      if (is_member(now, n.id) && !is_member(snap->meta.conf_state, n.id)) {
        compact(leader, 8);
        return;
      }
    }
  }

  // Every member of the final configuration applied `index`: the
  // configuration of the most advanced state machine (it applied the
  // marker, so it is at least as new as any the marker was committed in),
  // and, while there is a leader, the leader's own. Non-members are not
  // replicated to and are not expected to keep up.
  bool members_applied(LogIndex index) {
    const Node* most = &nodes_.front();
    for (const Node& n : nodes_) {
      if (n.applied > most->applied) most = &n;
    }
    const Node* leader = current_leader();
    const ConfState lead_conf = leader != nullptr ? leader->raw->status().conf_state : ConfState{};
    for (const Node& n : nodes_) {
      if (!is_member(most->conf, n.id)) continue;
      if (leader != nullptr && !is_member(lead_conf, n.id)) continue;
      if (n.applied < index) return false;
    }
    return true;
  }

  static std::string conf_words(const ConfState& cs) {
    auto list = [](const std::vector<NodeId>& v) {
      std::string out;
      for (NodeId id : v) out += (out.empty() ? "" : ",") + std::to_string(id.value());
      return out;
    };
    std::string out = "v[" + list(cs.voters) + "]";
    if (!cs.learners.empty()) out += " l[" + list(cs.learners) + "]";
    if (!cs.voters_outgoing.empty()) out += " out[" + list(cs.voters_outgoing) + "]";
    if (!cs.learners_next.empty()) out += " next[" + list(cs.learners_next) + "]";
    if (cs.auto_leave) out += " auto";
    return out;
  }

  // Ready processing and in-order delivery until nothing moves.
  void settle() {
    for (int round = 0; round < kSettleRounds && ok(); ++round) {
      bool moved = false;
      for (Node& n : nodes_) moved |= process_ready(n, false);
      std::sort(net_.begin(), net_.end(), [](const InFlight& a, const InFlight& b) {
        return a.seq < b.seq;
      });
      std::vector<InFlight> batch = std::move(net_);
      net_.clear();
      for (InFlight& f : batch) {
        moved = true;
        deliver(std::move(f.message));
      }
      check_step();
      if (!moved) return;
    }
  }

  // ---- Trace

  uint8_t node_byte(const Node& n) const { return static_cast<uint8_t>(n.id.value()); }

  Event message_event(EventKind kind, const Message& m, uint64_t why = 0) const {
    Event e{now_, kind, static_cast<uint8_t>(m.type), static_cast<uint8_t>(m.from.value()),
            static_cast<uint8_t>(m.to.value())};
    e.a = m.term.value();
    e.b = m.index.value() | (m.log_term.value() << 32);
    e.c = m.commit.value() | (uint64_t{m.reject} << 63);
    e.d = m.entries.size() | (why << 32) | (m.snapshot ? uint64_t{1} << 40 : 0);
    if (m.snapshot) {
      // A chunk (or its ack): which snapshot, which bytes, whether the last.
      e.b = m.snapshot->meta.index.value() | (m.snapshot->meta.term.value() << 32);
      e.c = m.snapshot->offset | (uint64_t{m.snapshot->last} << 62) | (uint64_t{m.reject} << 63);
      e.d |= (m.snapshot->data.size() & 0xffffff) << 41;
    }
    return e;
  }

  void record(const Event& e) {
    uint64_t h = digest_;
    h = fnv1a_u64(h, e.step);
    h = fnv1a_u64(h, static_cast<uint64_t>(e.kind) | uint64_t{e.msg} << 8 |
                         uint64_t{e.node} << 16 | uint64_t{e.peer} << 24);
    h = fnv1a_u64(h, e.a);
    h = fnv1a_u64(h, e.b);
    h = fnv1a_u64(h, e.c);
    digest_ = fnv1a_u64(h, e.d);
    tail_[tail_next_ % kTraceTail] = e;
    ++tail_next_;
    if (options_.echo_trace) std::fprintf(stderr, "%s\n", format(e).c_str());
  }

  static std::string format(const Event& e) {
    char buf[256];
    const auto n = static_cast<unsigned>(e.node);
    const auto p = static_cast<unsigned>(e.peer);
    const auto a = e.a;
    const auto b = e.b;
    switch (e.kind) {
      case EventKind::kSetup:
        std::snprintf(buf, sizeof(buf), "setup: %u nodes, election_tick %" PRIu64
                      ", heartbeat_tick %" PRIu64 ", pre_vote %d, check_quorum %d, lease reads %d, "
                      "max_msg %" PRIu64,
                      n, a, b, int(e.c & 1), int(e.c >> 1 & 1), int(e.c >> 2 & 1), e.d);
        break;
      case EventKind::kTick:
        std::snprintf(buf, sizeof(buf), "tick %u", n);
        break;
      case EventKind::kTickAll:
        std::snprintf(buf, sizeof(buf), a ? "clock: one unit of time for all" : "tick all");
        break;
      case EventKind::kDeliver:
      case EventKind::kDrop:
      case EventKind::kDuplicate: {
        static constexpr const char* kWhy[] = {"lost", "buffer full", "receiver down", "partition"};
        const char* verb = e.kind == EventKind::kDeliver ? "deliver"
                           : e.kind == EventKind::kDrop  ? "drop"
                                                         : "duplicate";
        std::string type(message_type_name(static_cast<MessageType>(e.msg)));
        char extra[48] = "";
        if (e.kind == EventKind::kDrop) {
          std::snprintf(extra, sizeof(extra), " (%s)", kWhy[(e.d >> 32 & 0xff) % 4]);
        }
        if (e.d >> 40 & 1) {
          std::snprintf(buf, sizeof(buf),
                        "%s %s %u->%u term %" PRIu64 " snapshot index %" PRIu64 " term %" PRIu64
                        " offset %" PRIu64 " bytes %" PRIu64 "%s%s%s",
                        verb, type.c_str(), n, p, a, b & 0xffffffff, b >> 32,
                        e.c & ((uint64_t{1} << 62) - 1), e.d >> 41, e.c >> 62 & 1 ? " last" : "",
                        e.c >> 63 ? " reject" : "", extra);
          break;
        }
        std::snprintf(buf, sizeof(buf),
                      "%s %s %u->%u term %" PRIu64 " index %" PRIu64 " log_term %" PRIu64
                      " commit %" PRIu64 " entries %" PRIu64 "%s%s",
                      verb, type.c_str(), n, p, a, b & 0xffffffff, b >> 32,
                      e.c & ~(uint64_t{1} << 63), e.d & 0xffffffff, e.c >> 63 ? " reject" : "",
                      extra);
        break;
      }
      case EventKind::kPropose:
        std::snprintf(buf, sizeof(buf), "propose p%" PRIu64 " at %u: %s", a, n,
                      b ? "accepted" : "dropped");
        break;
      case EventKind::kRead:
        std::snprintf(buf, sizeof(buf), "read r%" PRIu64 " at %u (applied somewhere: %" PRIu64 ")",
                      a, n, b);
        break;
      case EventKind::kTransfer:
        std::snprintf(buf, sizeof(buf), "transfer leadership to %u, asked at %u", p, n);
        break;
      case EventKind::kCompact:
        std::snprintf(buf, sizeof(buf), "node %u snapshots at %" PRIu64 ", compacts to %" PRIu64, n,
                      a, b);
        break;
      case EventKind::kCrash: {
        static constexpr const char* kStage[] = {
            "after sending messages, before persisting", "after persisting, before sending",
            "after sending, before applying", "after applying, before advance"};
        std::snprintf(buf, sizeof(buf), "crash %u%s%s", n, a < 4 ? " mid-Ready: " : "",
                      a < 4 ? kStage[a] : "");
        break;
      }
      case EventKind::kRestart:
        std::snprintf(buf, sizeof(buf), "restart %u", n);
        break;
      case EventKind::kPartition: {
        static constexpr const char* kMode[] = {"healed", "isolate", "halves", "one-way", "bridge"};
        std::snprintf(buf, sizeof(buf), "partition: %s (cut mask %" PRIx64 ")", kMode[a % 5], b);
        break;
      }
      case EventKind::kReady:
        std::snprintf(buf, sizeof(buf),
                      "ready %u: %" PRIu64 " entries, %" PRIu64 " committed, %" PRIu64
                      " messages, commit %" PRIu64,
                      n, a, b, e.c, e.d);
        break;
      case EventKind::kApply:
        std::snprintf(buf, sizeof(buf), "apply %u: index %" PRIu64 " term %" PRIu64, n, a, b);
        break;
      case EventKind::kInstall:
        std::snprintf(buf, sizeof(buf), "install %u: snapshot index %" PRIu64 " term %" PRIu64, n,
                      a, b);
        break;
      case EventKind::kRole:
        std::snprintf(buf, sizeof(buf), "node %u is %s in term %" PRIu64, n,
                      std::string(role_name(static_cast<Role>(a))).c_str(), b);
        break;
      case EventKind::kHeal:
        std::snprintf(buf, sizeof(buf), "heal: every fault off, every node up (liveness phase)");
        break;
      case EventKind::kLivenessPropose:
        std::snprintf(buf, sizeof(buf), "liveness proposal at %u: %s", n, a ? "accepted" : "dropped");
        break;
      case EventKind::kConfPropose:
        // b: per change a byte (type << 4 | node), the first change highest.
        std::snprintf(buf, sizeof(buf),
                      "conf change at %u: transition %" PRIu64 ", %" PRIu64
                      " changes (type<<4|node bytes %" PRIx64 "): %s",
                      n, a, e.c, b, e.d ? "accepted" : "dropped");
        break;
      case EventKind::kConfApply:
        // b: 4 bits per node: voter, learner, outgoing voter, next learner.
        std::snprintf(buf, sizeof(buf), "apply conf change %u: index %" PRIu64 ", config bits %" PRIx64,
                      n, a, b);
        break;
    }
    char line[300];
    std::snprintf(line, sizeof(line), "  step %6" PRIu64 "  %s", e.step, buf);
    return line;
  }

  SimResult finish() {
    SimResult result;
    result.digest = digest_;
    stats_.max_committed = checker_.max_committed().value();
    stats_.leaders = checker_.leaders_seen();
    stats_.terms = max_term().value();
    stats_.lease_runs = lease_mode() ? 1 : 0;
    result.stats = stats_;
    result.ok = checker_.ok();
    if (result.ok) return result;
    result.failure = "seed " + std::to_string(options_.seed) + ", step " + std::to_string(now_) +
                     ": " + checker_.violation() +
                     "\n  replay: SYNOD_RAFT_SEED=" + std::to_string(options_.seed) +
                     " SYNOD_RAFT_STEPS=" + std::to_string(options_.steps) +
                     " SYNOD_RAFT_TRACE=1 raft_tests --gtest_filter=RaftRandomizedReplay.ReplaysOneSeed" +
                     "\n  last events:\n";
    const uint64_t count = std::min<uint64_t>(tail_next_, kTraceTail);
    for (uint64_t k = tail_next_ - count; k < tail_next_; ++k) {
      result.failure += format(tail_[k % kTraceTail]) + "\n";
    }
    return result;
  }

  SimOptions options_;
  base::Rng rng_;
  base::Rng conf_rng_;
  Config base_config_;
  Faults faults_;
  ConfState conf_;
  std::vector<Node> nodes_;
  std::vector<InFlight> net_;
  std::array<std::array<bool, kMaxNodes>, kMaxNodes> cut_{};
  SafetyChecker checker_;
  SimStats stats_;
  uint64_t now_ = 0;
  uint64_t seq_ = 0;
  uint64_t proposals_ = 0;
  uint64_t reads_ = 0;
  uint32_t touched_ = 0;
  Term max_term_;
  std::string liveness_marker_;
  LogIndex liveness_index_;
  uint64_t digest_ = kFnvOffset;
  std::array<Event, kTraceTail> tail_{};
  uint64_t tail_next_ = 0;
};

}  // namespace synod::raft::randomized
