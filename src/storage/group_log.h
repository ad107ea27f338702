// One Raft group's durable log, as the Raft core reads it (raft::Storage),
// kept from the node's shared write-ahead log.
//
// The host feeds it every record of its group in WAL order: first during
// recovery (from the Wal::open visitor), then after each WAL write is durable
// (`apply`). So the core only ever reads what is on disk, as with
// MemoryStorage in etcd/raft's contract.
//
// Memory is bounded: the newest entries stay cached up to `cache_bytes_max`;
// older ones are read back from their WAL record when the core asks (a
// lagging follower being caught up). Per entry it always keeps its term and
// the location of its record, 24 bytes.
//
// Snapshot data is not in the WAL, only markers are: the state machine makes
// a snapshot on demand through `set_snapshot_source`.
#pragma once

#include <deque>
#include <functional>
#include <optional>

#include "node/group_host.h"
#include "node/node.h"
#include "raft/storage.h"
#include "storage/wal.h"

namespace synod::storage {

struct GroupLogOptions {
  uint64_t cache_bytes_max = 8u << 20;
};

class GroupLog final : public raft::Storage {
 public:
  using SnapshotSource = std::function<base::Result<raft::Snapshot>()>;

  GroupLog(raft::GroupId group, const Wal* wal, GroupLogOptions options = {});

  // Takes one durable record of this group, in WAL order.
  base::Status apply(const WalRecord& record, RecordLocation location);
  // Ends recovery: kCorruption if entries are missing below the first one
  // recovered that no snapshot covers (a lost segment). From then on a gap
  // is the host's mistake and `apply` refuses it.
  base::Status check_recovered();
  void set_snapshot_source(SnapshotSource source) { snapshot_source_ = std::move(source); }
  // Which WAL to read evicted entries from (set after recovery builds us).
  void attach(const Wal* wal) { wal_ = wal; }

  base::Result<raft::InitialState> initial_state() const override;
  base::Result<std::vector<raft::Entry>> entries(raft::LogIndex low, raft::LogIndex high,
                                                 uint64_t max_bytes) const override;
  base::Result<raft::Term> term(raft::LogIndex index) const override;
  raft::LogIndex first_index() const override;
  raft::LogIndex last_index() const override;
  base::Result<raft::Snapshot> snapshot() const override;

  raft::GroupId group() const { return group_; }
  const raft::HardState& hard_state() const { return hard_state_; }
  const raft::SnapshotMeta& snapshot_meta() const { return snapshot_; }
  size_t cached_entries() const { return cache_.size(); }
  uint64_t cached_bytes() const { return cache_bytes_; }
  // How many WAL records were read back from disk to serve `entries`.
  uint64_t records_read() const { return records_read_; }

 private:
  struct Slot {
    raft::Term term;
    RecordLocation location;
  };

  base::Status apply_entries(const std::vector<raft::Entry>& entries, RecordLocation location);
  base::Status apply_snapshot(const raft::SnapshotMeta& meta, SnapshotMode mode);
  void drop_from(raft::LogIndex index);  // drops slots and cache at and after `index`
  void drop_through(raft::LogIndex index);  // drops slots and cache up to `index`
  void evict();
  const Slot& slot(raft::LogIndex index) const;

  raft::GroupId group_;
  const Wal* wal_;
  GroupLogOptions options_;
  raft::HardState hard_state_;
  raft::SnapshotMeta snapshot_;  // entries up to snapshot_.index are gone
  // slots_[k] is entry slots_first_ + k. slots_first_ == snapshot_.index + 1
  // except while recovery has seen entries whose predecessors were in a
  // deleted segment and the snapshot marker that covers them is still ahead.
  std::deque<Slot> slots_;
  raft::LogIndex slots_first_;
  std::deque<raft::Entry> cache_;  // a suffix of the log
  uint64_t cache_bytes_ = 0;
  SnapshotSource snapshot_source_;
  mutable uint64_t records_read_ = 0;
  // While the WAL is replayed, entries may follow a gap that a later
  // compaction marker covers (their predecessors' segment was deleted).
  bool recovering_ = true;
};

}  // namespace synod::storage

namespace synod::storage {

// A node's WAL with the GroupLog of each of its groups: recovery feeds every
// group, and `apply` feeds the records of each durable write.
class DurableLog {
 public:
  static base::Result<std::unique_ptr<DurableLog>> open(FileSystem& files, WalOptions options,
                                                        GroupLogOptions group_options = {});

  Wal& wal() { return *wal_; }
  // The group's log, empty if the WAL has never seen it.
  GroupLog& group(raft::GroupId group);
  bool has_group(raft::GroupId group) const { return groups_.count(group) > 0; }
  // Every group the WAL has records of, ascending.
  std::vector<raft::GroupId> groups() const {
    std::vector<raft::GroupId> out;
    for (const auto& [id, log] : groups_) out.push_back(id);
    return out;
  }
  // Feeds each record of `batch` to its group, once `result` says it is durable.
  base::Status apply(const WalBatch& batch, const WalWriteResult& result);
  // Writes `batch` (waiting for it) and feeds it to the groups.
  base::Status write(const WalBatch& batch);
  // Queues `batch` and returns; `done` runs on the WAL's writer thread with
  // the records as written and the result. The owner of the groups then
  // calls `apply(records, result)` on its own thread (the groups are not
  // thread-safe). A batch refused before writing (a gap) gets `done` at once.
  using Submitted = std::function<void(WalBatch records, WalWriteResult result)>;
  void submit(const WalBatch& batch, Submitted done);

 private:
  DurableLog() = default;
  base::Result<WalBatch> prepare(const WalBatch& batch);

  GroupLogOptions group_options_;
  std::unique_ptr<Wal> wal_;
  std::map<raft::GroupId, std::unique_ptr<GroupLog>> groups_;
};

}  // namespace synod::storage

namespace synod::storage {

// The WAL records for a node's PersistRequest (node/node.h): the installed
// snapshot's marker first, then entries, then the hard state, then the
// compaction marker, which is dropped if it falls outside the group's log as
// it will stand (a snapshot installed meanwhile may have passed it).
WalBatch to_wal_batch(raft::GroupId group, const node::PersistRequest& request,
                      const GroupLog& log);

// A DurableLog as node::GroupHost's logs (the process and the simulator).
class WalGroupLogs final : public node::GroupLogs {
 public:
  explicit WalGroupLogs(DurableLog* log) : log_(log) {}
  bool has(raft::GroupId group) const override { return log_->has_group(group); }
  std::vector<raft::GroupId> groups() const override { return log_->groups(); }
  raft::Storage& storage(raft::GroupId group) override { return log_->group(group); }
  base::Status persist_now(
      const std::vector<std::pair<raft::GroupId, node::PersistRequest>>& requests) override;
  void set_snapshot_source(raft::GroupId group,
                           std::function<base::Result<raft::Snapshot>()> source) override;

 private:
  DurableLog* log_;
};

}  // namespace synod::storage
