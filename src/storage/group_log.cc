#include "storage/group_log.h"

#include <string>

namespace synod::storage {

using base::Errc;
using base::Error;
using base::Result;
using base::Status;
using raft::Entry;
using raft::LogIndex;
using raft::Term;

namespace {

std::string str(LogIndex index) { return std::to_string(index.value()); }

}  // namespace

GroupLog::GroupLog(raft::GroupId group, const Wal* wal, GroupLogOptions options)
    : group_(group), wal_(wal), options_(options), slots_first_(LogIndex{1}) {}

Status GroupLog::apply(const WalRecord& record, RecordLocation location) {
  SYNOD_ASSERT(record.group == group_, "a record of another group");
  switch (record.type) {
    case RecordType::kSegmentHeader: return {};
    case RecordType::kEntries: return apply_entries(record.entries, location);
    case RecordType::kHardState:
      hard_state_ = record.hard_state;
      // A snapshot holds only committed entries, so the commit index is at
      // least its index even when the hard state written with it was lost
      // (a crash tore the batch after the marker).
      hard_state_.commit = std::max(hard_state_.commit, snapshot_.index);
      return {};
    case RecordType::kSnapshot: return apply_snapshot(record.snapshot, record.snapshot_mode);
  }
  return {};
}

Status GroupLog::apply_entries(const std::vector<Entry>& entries, RecordLocation location) {
  size_t skip = 0;
  while (skip < entries.size() && entries[skip].index <= snapshot_.index) ++skip;
  if (skip == entries.size()) return {};
  const LogIndex start = entries[skip].index;
  if (start > last_index() + 1 || start < slots_first_) {
    // (start < slots_first_ only in recovery, after a gap: a rewrite from
    // below the first surviving entry replaces all of it.)
    if (!recovering_) {
      return Error(Errc::kInvalidArgument,
                   "group " + std::to_string(group_.value()) + ": entries from " + str(start) +
                       " leave a gap after the last index " + str(last_index()));
    }
    // Entries before `start` were in a deleted segment; the marker that
    // compacted them comes later in the WAL (check_recovered insists).
    slots_.clear();
    cache_.clear();
    cache_bytes_ = 0;
    slots_first_ = start;
  } else {
    drop_from(start);
  }
  for (size_t i = skip; i < entries.size(); ++i) {
    SYNOD_ASSERT(entries[i].index == start + (i - skip), "entries of a record are consecutive");
    slots_.push_back({entries[i].term, location});
    if (!cache_.empty() && cache_.back().index + 1 != entries[i].index) {
      cache_.clear();
      cache_bytes_ = 0;
    }
    cache_.push_back(entries[i]);
    cache_bytes_ += entries[i].size_bytes();
  }
  evict();
  return {};
}

Status GroupLog::apply_snapshot(const raft::SnapshotMeta& meta, SnapshotMode mode) {
  hard_state_.commit = std::max(hard_state_.commit, meta.index);  // see kHardState above
  if (mode == SnapshotMode::kInstall) {
    snapshot_ = meta;
    slots_.clear();
    cache_.clear();
    cache_bytes_ = 0;
    slots_first_ = meta.index + 1;
    return {};
  }
  if (meta.index <= snapshot_.index) return {};  // a checkpoint repeating an older marker
  if (meta.index >= slots_first_ && meta.index <= last_index() &&
      slot(meta.index).term != meta.term) {
    return Error(Errc::kCorruption, "group " + std::to_string(group_.value()) +
                                        ": compaction marker at " + str(meta.index) + " term " +
                                        std::to_string(meta.term.value()) +
                                        " disagrees with the log's term there");
  }
  drop_through(meta.index);
  snapshot_ = meta;
  if (slots_.empty()) slots_first_ = std::max(slots_first_, meta.index + 1);
  return {};
}

void GroupLog::drop_from(LogIndex index) {
  while (!slots_.empty() && slots_first_ + (slots_.size() - 1) >= index) slots_.pop_back();
  while (!cache_.empty() && cache_.back().index >= index) {
    cache_bytes_ -= cache_.back().size_bytes();
    cache_.pop_back();
  }
}

void GroupLog::drop_through(LogIndex index) {
  while (!slots_.empty() && slots_first_ <= index) {
    slots_.pop_front();
    ++slots_first_;
  }
  while (!cache_.empty() && cache_.front().index <= index) {
    cache_bytes_ -= cache_.front().size_bytes();
    cache_.pop_front();
  }
}

void GroupLog::evict() {
  while (cache_.size() > 1 && cache_bytes_ > options_.cache_bytes_max) {
    cache_bytes_ -= cache_.front().size_bytes();
    cache_.pop_front();
  }
}

const GroupLog::Slot& GroupLog::slot(LogIndex index) const {
  SYNOD_ASSERT(index >= slots_first_, "slot below the log");
  SYNOD_ASSERT(index - slots_first_ < slots_.size(), "slot past the log");
  return slots_[index - slots_first_];
}

Status GroupLog::check_recovered() {
  recovering_ = false;
  if (slots_first_ != snapshot_.index + 1) {
    return Error(Errc::kCorruption,
                 "group " + std::to_string(group_.value()) + ": the WAL holds entries from " +
                     str(slots_first_) + " but the snapshot marker covers only up to " +
                     str(snapshot_.index) + "; a segment with the entries between is missing");
  }
  return {};
}

Result<raft::InitialState> GroupLog::initial_state() const {
  return raft::InitialState{hard_state_, snapshot_.conf_state};
}

LogIndex GroupLog::first_index() const { return snapshot_.index + 1; }

LogIndex GroupLog::last_index() const {
  if (slots_.empty()) return slots_first_ - 1;
  return slots_first_ + (slots_.size() - 1);
}

Result<Term> GroupLog::term(LogIndex index) const {
  if (index == snapshot_.index) return snapshot_.term;
  if (index < snapshot_.index) return Error(Errc::kCompacted);
  if (index > last_index()) return Error(Errc::kUnavailable);
  if (index < slots_first_) return Error(Errc::kCompacted);
  return slot(index).term;
}

Result<std::vector<Entry>> GroupLog::entries(LogIndex low, LogIndex high, uint64_t max_bytes) const {
  if (low <= snapshot_.index || low < slots_first_) return Error(Errc::kCompacted);
  if (high > last_index() + 1) {
    return Error(Errc::kUnavailable,
                 "entries up to " + str(high - 1) + " requested, last is " + str(last_index()));
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  const LogIndex cached_from = cache_.empty() ? last_index() + 1 : cache_.front().index;
  // The record last read from disk: consecutive entries usually share one.
  std::optional<WalRecord> record;
  RecordLocation record_location;
  for (LogIndex index = low; index < high; ++index) {
    const Entry* entry = nullptr;
    if (index >= cached_from) {
      entry = &cache_[index - cached_from];
      SYNOD_ASSERT(entry->index == index, "the entry cache is out of step with the log");
    } else {
      const Slot& where = slot(index);
      if (!record || !(record_location == where.location)) {
        Result<WalRecord> read = wal_->read(where.location);
        if (!read) return read.error();
        ++records_read_;
        record = std::move(*read);
        record_location = where.location;
        if (record->type != RecordType::kEntries || record->group != group_) {
          return Error(Errc::kCorruption, "WAL record at segment " +
                                              std::to_string(where.location.segment) + " offset " +
                                              std::to_string(where.location.offset) +
                                              " is not this group's entries");
        }
      }
      const LogIndex first = record->entries.front().index;
      if (index < first || index - first >= record->entries.size()) {
        return Error(Errc::kCorruption, "WAL record does not hold entry " + str(index));
      }
      entry = &record->entries[index - first];
      SYNOD_ASSERT(entry->term == where.term, "entry read back with another term");
    }
    bytes += entry->size_bytes();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(*entry);
  }
  return out;
}

Result<raft::Snapshot> GroupLog::snapshot() const {
  if (snapshot_source_) return snapshot_source_();
  return raft::Snapshot{snapshot_, base::Bytes()};
}

}  // namespace synod::storage

namespace synod::storage {

Result<std::unique_ptr<DurableLog>> DurableLog::open(FileSystem& files, WalOptions options,
                                                     GroupLogOptions group_options) {
  std::unique_ptr<DurableLog> log(new DurableLog());
  log->group_options_ = group_options;
  DurableLog* self = log.get();
  Result<std::unique_ptr<Wal>> wal =
      Wal::open(files, std::move(options), [self](const WalRecord& record, RecordLocation where) {
        return self->group(record.group).apply(record, where);
      });
  if (!wal) return wal.error();
  log->wal_ = std::move(*wal);
  // The logs were built before the Wal existed; point them at it now.
  for (auto& [id, group] : log->groups_) group->attach(log->wal_.get());
  for (auto& [id, group] : log->groups_) {
    if (Status status = group->check_recovered(); !status) return status.error();
  }
  return log;
}

GroupLog& DurableLog::group(raft::GroupId group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    it = groups_.emplace(group, std::make_unique<GroupLog>(group, wal_.get(), group_options_)).first;
    // A group first seen after recovery has nothing to recover.
    if (wal_ != nullptr) (void)it->second->check_recovered();
  }
  return *it->second;
}

Status DurableLog::apply(const WalBatch& batch, const WalWriteResult& result) {
  if (!result.status) return result.status;
  SYNOD_ASSERT(result.locations.size() == batch.records().size(), "one location per record");
  for (size_t i = 0; i < batch.records().size(); ++i) {
    const WalRecord& record = batch.records()[i];
    if (Status status = group(record.group).apply(record, result.locations[i]); !status) return status;
  }
  return {};
}

Status DurableLog::write(const WalBatch& batch) {
  base::Result<WalBatch> fitted = prepare(batch);
  if (!fitted) return fitted.error();
  WalBatch copy = *fitted;
  WalWriteResult result = wal_->write(std::move(copy));
  return apply(*fitted, result);
}

void DurableLog::submit(const WalBatch& batch, Submitted done) {
  base::Result<WalBatch> fitted = prepare(batch);
  if (!fitted) {
    done(WalBatch(), WalWriteResult{fitted.error(), {}});
    return;
  }
  auto records = std::make_shared<WalBatch>(*fitted);
  wal_->submit(std::move(*fitted), [records, done = std::move(done)](WalWriteResult result) {
    done(std::move(*records), std::move(result));
  });
}

base::Result<WalBatch> DurableLog::prepare(const WalBatch& batch) {
  // A gap would be written durably and then refused by the log, and the
  // next recovery would read it as a lost segment: check before writing.
  std::map<raft::GroupId, LogIndex> last;
  for (const WalRecord& record : batch.records()) {
    auto it = last.find(record.group);
    if (it == last.end()) it = last.emplace(record.group, group(record.group).last_index()).first;
    if (record.type == RecordType::kSnapshot && record.snapshot_mode == SnapshotMode::kInstall) {
      it->second = record.snapshot.index;
    } else if (record.type == RecordType::kEntries) {
      const LogIndex first = record.entries.front().index;
      if (first > it->second + 1) {
        return Error(Errc::kInvalidArgument,
                     "group " + std::to_string(record.group.value()) + ": entries from " +
                         str(first) + " leave a gap after the last index " + str(it->second) +
                         "; nothing was written");
      }
      it->second = record.entries.back().index;
    }
  }
  // The records as the WAL will write them, so locations line up.
  WalBatch fitted = batch;
  fitted.fit_records(wal_->record_bytes_max());
  return fitted;
}

}  // namespace synod::storage

namespace synod::storage {

WalBatch to_wal_batch(raft::GroupId group, const node::PersistRequest& request,
                      const GroupLog& log) {
  WalBatch batch;
  if (request.snapshot) batch.add_snapshot(group, *request.snapshot, SnapshotMode::kInstall);
  if (!request.entries.empty()) batch.add_entries(group, request.entries);
  if (request.hard_state) batch.add_hard_state(group, *request.hard_state);
  if (request.compact) {
    raft::LogIndex first = log.first_index();
    raft::LogIndex last = log.last_index();
    if (request.snapshot) {
      first = request.snapshot->index + 1;
      last = request.snapshot->index;
    }
    if (!request.entries.empty()) last = request.entries.back().index;
    if (request.compact->index >= first && request.compact->index <= last) {
      batch.add_snapshot(group, *request.compact, SnapshotMode::kCompact);
    }
  }
  return batch;
}

base::Status WalGroupLogs::persist_now(
    const std::vector<std::pair<raft::GroupId, node::PersistRequest>>& requests) {
  WalBatch batch;
  for (const auto& [group, request] : requests) {
    batch.append(to_wal_batch(group, request, log_->group(group)));
  }
  return batch.empty() ? base::Status() : log_->write(batch);
}

void WalGroupLogs::set_snapshot_source(raft::GroupId group,
                                       std::function<base::Result<raft::Snapshot>()> source) {
  if (!source) {
    source = [] {
      return base::Result<raft::Snapshot>(
          base::Error(base::Errc::kUnavailable, "the replica was removed"));
    };
  }
  log_->group(group).set_snapshot_source(std::move(source));
}

}  // namespace synod::storage
