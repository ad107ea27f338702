// An in-memory Storage for tests, the simulator and benchmarks.
//
// Invariant: `entries_[0]` is a dummy entry holding the index and term of the
// last compacted entry (the snapshot's), so term lookups at the snapshot
// boundary need no special case.
#pragma once

#include <vector>

#include "raft/storage.h"

namespace synod::raft {

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();

  base::Result<InitialState> initial_state() const override;
  base::Result<std::vector<Entry>> entries(LogIndex low, LogIndex high,
                                           uint64_t max_bytes) const override;
  base::Result<Term> term(LogIndex index) const override;
  LogIndex first_index() const override;
  LogIndex last_index() const override;
  base::Result<Snapshot> snapshot() const override;

  // Host-side writes.
  void set_hard_state(const HardState& state) { hard_state_ = state; }
  const HardState& hard_state() const { return hard_state_; }
  // Replaces the log with the snapshot's state. Older snapshots are refused.
  base::Status apply_snapshot(const Snapshot& snapshot);
  // Makes a snapshot at `index` (≤ last index, ≥ current snapshot) holding
  // `data`; `conf_state` is the configuration as of `index`.
  base::Result<Snapshot> create_snapshot(LogIndex index, const ConfState* conf_state,
                                         Bytes data);
  // Drops entries up to and including `index`.
  base::Status compact(LogIndex index);
  // Appends entries, truncating any conflicting suffix first.
  base::Status append(const std::vector<Entry>& entries);
  // Test hook: `snapshot()` answers kSnapshotTemporarilyUnavailable while set.
  void set_snapshot_unavailable(bool unavailable) { snapshot_unavailable_ = unavailable; }

 private:
  LogIndex offset() const { return entries_.front().index; }

  HardState hard_state_;
  Snapshot snapshot_;
  std::vector<Entry> entries_;
  bool snapshot_unavailable_ = false;
};

}  // namespace synod::raft
