// The host's persisted log, as the Raft core reads it.
//
// The core only reads; the host writes (what a Ready tells it to) before it
// calls `advance()`. This issue ships `MemoryStorage`; the durable storage
// over the write-ahead log implements the same interface.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "raft/types.h"

namespace synod::raft {

struct InitialState {
  HardState hard_state;
  ConfState conf_state;
};

class Storage {
 public:
  virtual ~Storage() = default;

  virtual base::Result<InitialState> initial_state() const = 0;
  // Entries in [low, high), at least one if any exist, and no more than
  // `max_bytes` in total beyond the first. Errors: kCompacted if `low` is at
  // or below the snapshot, kUnavailable if `high` is beyond the last entry.
  virtual base::Result<std::vector<Entry>> entries(LogIndex low, LogIndex high,
                                                   uint64_t max_bytes) const = 0;
  // The term of entry `index`, which may be the snapshot's last index.
  virtual base::Result<Term> term(LogIndex index) const = 0;
  // Index of the first entry still in the log (snapshot index + 1).
  virtual LogIndex first_index() const = 0;
  virtual LogIndex last_index() const = 0;
  // The latest snapshot. kSnapshotTemporarilyUnavailable if it is being made.
  virtual base::Result<Snapshot> snapshot() const = 0;
};

}  // namespace synod::raft
