#include "storage/wal.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>

namespace synod::storage {

using base::Errc;
using base::Error;
using base::Result;
using base::Status;
using raft::GroupId;
using raft::LogIndex;

namespace {

constexpr std::string_view kSegmentSuffix = ".wal";
// Entries records are split so that reading one entry back never means
// reading much more than this.
constexpr uint64_t kEntriesRecordBytesTarget = 1u << 20;
// No segment we write is larger than its cap plus one record; a file larger
// than this is not ours to read into memory.
constexpr uint64_t kSegmentReadBytesCap = 2ull << 30;
constexpr uint64_t kSegmentBytesMin = 256;

constexpr std::string_view kRebuildAdvice =
    "Refusing to start: this disk returned data that is not what was written, so no record "
    "after it can be trusted. Safe way out: stop this node, move its data directory aside "
    "(keep it for diagnosis), and start the node again empty so it rebuilds this replica "
    "from its peers (it receives a snapshot and the log from the leader). Do not edit or "
    "truncate the file by hand.";

bool parse_segment_name(const std::string& name, uint64_t* segment) {
  if (name.size() != 16 + kSegmentSuffix.size() || !name.ends_with(kSegmentSuffix)) return false;
  uint64_t value = 0;
  for (size_t i = 0; i < 16; ++i) {
    const char c = name[i];
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  *segment = value;
  return true;
}

// Whether any well-formed record starts anywhere in `data` at or after `from`.
// A torn write leaves garbage or nothing after the last good record; a valid
// record after a bad one means the bad one is damage in the middle.
bool valid_record_after(std::string_view data, size_t from, uint32_t payload_bytes_max) {
  for (size_t offset = from; offset + kRecordHeaderBytes <= data.size(); ++offset) {
    // The type byte ends the header: a cheap filter before the checksum.
    if (!is_known_record_type(static_cast<uint8_t>(data[offset + kRecordHeaderBytes - 1]))) continue;
    const Frame frame = read_frame(data.substr(offset), payload_bytes_max);
    if (frame.status == FrameStatus::kOk) return true;
  }
  return false;
}

Error corruption(const std::string& path, uint64_t offset, const std::string& what) {
  return Error(Errc::kCorruption, "WAL segment " + path + " is corrupt at offset " +
                                      std::to_string(offset) + ": " + what + ". " +
                                      std::string(kRebuildAdvice));
}

}  // namespace

void WalBatch::add_entries(GroupId group, std::vector<raft::Entry> entries) {
  if (entries.empty()) return;
  WalRecord record;
  record.type = RecordType::kEntries;
  record.group = group;
  record.entries = std::move(entries);
  for (const raft::Entry& entry : record.entries) bytes_ += encoded_entry_bytes(entry);
  append_split(std::move(record), kEntriesRecordBytesTarget);
}

bool WalBatch::append_split(WalRecord record, uint64_t payload_bytes_max) {
  // An entries record's header (group, count, first index) is at most 30
  // bytes: three 10-byte varints.
  constexpr uint64_t kHeaderBytesMax = 30;
  bool fits = true;
  WalRecord piece;
  piece.type = RecordType::kEntries;
  piece.group = record.group;
  uint64_t bytes = kHeaderBytesMax;
  for (raft::Entry& entry : record.entries) {
    const uint64_t entry_bytes = encoded_entry_bytes(entry);
    if (!piece.entries.empty() && bytes + entry_bytes > payload_bytes_max) {
      entries_payload_bytes_max_ = std::max(entries_payload_bytes_max_, bytes);
      records_.push_back(std::move(piece));
      piece = WalRecord{};
      piece.type = RecordType::kEntries;
      piece.group = record.group;
      bytes = kHeaderBytesMax;
    }
    if (kHeaderBytesMax + entry_bytes > payload_bytes_max) fits = false;
    bytes += entry_bytes;
    piece.entries.push_back(std::move(entry));
  }
  entries_payload_bytes_max_ = std::max(entries_payload_bytes_max_, bytes);
  records_.push_back(std::move(piece));
  return fits;
}

bool WalBatch::fit_records(uint64_t payload_bytes_max) {
  // The usual case: every record already fits (an upper bound says so).
  if (entries_payload_bytes_max_ <= payload_bytes_max) return true;
  std::vector<WalRecord> records = std::move(records_);
  records_.clear();
  entries_payload_bytes_max_ = 0;
  bool fits = true;
  for (WalRecord& record : records) {
    if (record.type == RecordType::kEntries) {
      fits = append_split(std::move(record), payload_bytes_max) && fits;
    } else {
      records_.push_back(std::move(record));
    }
  }
  return fits;
}

void WalBatch::add_hard_state(GroupId group, const raft::HardState& state) {
  WalRecord record;
  record.type = RecordType::kHardState;
  record.group = group;
  record.hard_state = state;
  records_.push_back(std::move(record));
}

void WalBatch::append(WalBatch other) {
  for (WalRecord& record : other.records_) records_.push_back(std::move(record));
  bytes_ += other.bytes_;
  entries_payload_bytes_max_ = std::max(entries_payload_bytes_max_, other.entries_payload_bytes_max_);
}

void WalBatch::add_snapshot(GroupId group, const raft::SnapshotMeta& meta, SnapshotMode mode) {
  WalRecord record;
  record.type = RecordType::kSnapshot;
  record.group = group;
  record.snapshot = meta;
  record.snapshot_mode = mode;
  records_.push_back(std::move(record));
}

Wal::Wal(FileSystem& files, WalOptions options) : files_(files), options_(std::move(options)) {}

Result<std::unique_ptr<Wal>> Wal::open(FileSystem& files, WalOptions options,
                                       const Visitor& visit) {
  if (options.dir.empty()) return Error(Errc::kInvalidArgument, "WAL directory not set");
  if (options.record_bytes_max == 0 || options.record_bytes_max > kRecordPayloadBytesCap) {
    return Error(Errc::kInvalidArgument, "record_bytes_max must be in 1.." +
                                             std::to_string(kRecordPayloadBytesCap));
  }
  if (options.segment_bytes_max < kSegmentBytesMin) {
    return Error(Errc::kInvalidArgument,
                 "segment_bytes_max must be at least " + std::to_string(kSegmentBytesMin));
  }
  std::unique_ptr<Wal> wal(new Wal(files, std::move(options)));
  if (Status status = files.create_dirs(wal->options_.dir); !status) return status.error();
  if (Status status = wal->recover(visit); !status) return status.error();
  if (Status status = wal->rotate(); !status) return status.error();
  if (wal->options_.writer_thread) wal->writer_ = std::thread([w = wal.get()] { w->run_writer(); });
  return wal;
}

Wal::~Wal() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  // Without a writer thread, batches nobody wrote are failed, not dropped.
  std::deque<Pending> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(queue_);
  }
  std::vector<Pending> round(std::make_move_iterator(left.begin()),
                             std::make_move_iterator(left.end()));
  std::vector<WalWriteResult> results(
      round.size(), WalWriteResult{Error(Errc::kStoreFailed, "WAL closed before the batch was written"), {}});
  finish_round(round, results);
}

std::string Wal::segment_path(uint64_t segment) const {
  char name[32];
  std::snprintf(name, sizeof name, "%016" PRIx64 "%s", segment, kSegmentSuffix.data());
  return join_path(options_.dir, name);
}

void Wal::log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

Status Wal::recover(const Visitor& visit) {
  Result<std::vector<std::string>> names = files_.list(options_.dir);
  if (!names) return names.error();
  std::vector<uint64_t> segments;
  for (const std::string& name : *names) {
    uint64_t segment = 0;
    if (parse_segment_name(name, &segment)) segments.push_back(segment);
  }
  std::sort(segments.begin(), segments.end());

  for (size_t k = 0; k < segments.size(); ++k) {
    const uint64_t segment = segments[k];
    const bool last = k + 1 == segments.size();
    const std::string path = segment_path(segment);
    if (k > 0 && segment != segments[k - 1] + 1) {
      return Error(Errc::kCorruption,
                   "WAL segment " + segment_path(segments[k - 1] + 1) + " is missing (found " +
                       segment_path(segments[k - 1]) + " and " + path +
                       "); segments are deleted oldest first, so a gap means lost data. " +
                       std::string(kRebuildAdvice));
    }
    Result<std::unique_ptr<ReadableFile>> reader = files_.open_readable(path);
    if (!reader) return reader.error();
    Result<uint64_t> size = (*reader)->size();
    if (!size) return size.error();
    if (*size > kSegmentReadBytesCap) {
      return corruption(path, 0, "the file is " + std::to_string(*size) +
                                     " bytes, larger than any segment this WAL writes");
    }
    std::string data;
    if (Status status = (*reader)->read_at(0, *size, &data); !status) return status;

    uint64_t offset = 0;
    bool header_seen = false;
    while (offset < data.size()) {
      const std::string_view rest = std::string_view(data).substr(offset);
      const Frame frame = read_frame(rest, options_.record_bytes_max);
      if (frame.status != FrameStatus::kOk) {
        const std::string problem = describe_frame_problem(frame, options_.record_bytes_max);
        if (!last) {
          return corruption(path, offset,
                            problem + " in a segment that was complete and synced before the "
                                      "next one began");
        }
        if (valid_record_after(data, offset + 1, options_.record_bytes_max)) {
          return corruption(path, offset, problem + ", and valid records follow it, so it is "
                                                    "not a torn write at the end of the log");
        }
        log("WAL recovery: " + path + ": torn write at offset " + std::to_string(offset) + " (" +
            problem + "); truncating " + std::to_string(data.size() - offset) +
            " bytes that were never acknowledged");
        Result<std::unique_ptr<WritableFile>> writer = files_.open_writable(path, false);
        if (!writer) return writer.error();
        if (Status status = (*writer)->truncate(offset); !status) return status;
        data.resize(offset);  // the fsync of the last segment below makes it durable
        break;
      }
      Result<WalRecord> record = decode_wal_record(static_cast<RecordType>(frame.type), frame.payload, options_.record_bytes_max);
      if (!record) return corruption(path, offset, record.error().message());
      if (!header_seen) {
        if (record->type != RecordType::kSegmentHeader || record->segment != segment) {
          return corruption(path, offset, "expected the header of segment " +
                                              std::to_string(segment));
        }
        header_seen = true;
      } else {
        if (record->type == RecordType::kSegmentHeader) {
          return corruption(path, offset, "a segment header in the middle of a segment");
        }
        segment_index_[segment];  // the segment exists even if it holds no entries
        const RecordLocation location{segment, offset};
        note_record(*record, segment);
        if (Status status = visit(*record, location); !status) return status;
      }
      offset += frame.frame_bytes;
    }
    if (!header_seen) {
      if (!last) return corruption(path, 0, "a segment without a header before other segments");
      // Created, then the machine died before its header was synced.
      log("WAL recovery: " + path + ": empty segment left by a crash while it was created; removed");
      if (Status status = files_.remove(path); !status) return status;
      if (Status status = files_.sync_dir(options_.dir); !status) return status;
      continue;
    }
    segment_index_[segment];
    active_segment_ = segment;
    if (last) {
      // What we recovered may have reached only the page cache (the process
      // died before its fsync). Make it durable before anything is built on
      // it: otherwise a later power cut could take these records away after
      // newer segments were acknowledged, or tear a segment that is no
      // longer the last one.
      Result<std::unique_ptr<WritableFile>> writer = files_.open_writable(path, false);
      if (!writer) return writer.error();
      if (Status status = (*writer)->sync(); !status) return status;
    }
  }
  std::lock_guard lock(mutex_);
  for (const auto& [segment, index] : segment_index_) live_segments_.push_back(segment);
  return {};
}

void Wal::note_record(const WalRecord& record, uint64_t segment, RoundUndo* undo) {
  if (undo != nullptr && !undo->groups.count(record.group)) {
    auto it = groups_.find(record.group);
    undo->groups[record.group] =
        it == groups_.end() ? std::nullopt : std::optional<GroupState>(it->second);
  }
  GroupState& group = groups_[record.group];
  switch (record.type) {
    case RecordType::kSegmentHeader: break;
    case RecordType::kEntries: {
      SegmentIndex& index = segment_index_[segment];
      if (undo != nullptr && undo->segment == segment && !undo->highest.count(record.group)) {
        auto it = index.find(record.group);
        undo->highest[record.group] =
            it == index.end() ? std::nullopt : std::optional<LogIndex>(it->second);
      }
      LogIndex& highest = index[record.group];
      highest = std::max(highest, record.entries.back().index);
      break;
    }
    case RecordType::kHardState:
      group.hard_state = record.hard_state;
      group.has_hard_state = true;
      break;
    case RecordType::kSnapshot:
      if (!group.has_snapshot || record.snapshot.index >= group.snapshot.index ||
          record.snapshot_mode == SnapshotMode::kInstall) {
        group.snapshot = record.snapshot;
        group.has_snapshot = true;
      }
      break;
  }
}

void Wal::undo_round(const RoundUndo& undo) {
  for (const auto& [group, state] : undo.groups) {
    if (state) {
      groups_[group] = *state;
    } else {
      groups_.erase(group);
    }
  }
  SegmentIndex& index = segment_index_[undo.segment];
  for (const auto& [group, highest] : undo.highest) {
    if (highest) {
      index[group] = *highest;
    } else {
      index.erase(group);
    }
  }
}

Status Wal::open_new_segment() {
  const uint64_t segment = active_segment_ + 1;
  const std::string path = segment_path(segment);
  Result<std::unique_ptr<WritableFile>> file = files_.open_writable(path, true);
  if (!file) return file.error();
  if ((*file)->size() != 0) {
    return Error(Errc::kFailedPrecondition, "WAL segment " + path + " already exists");
  }
  std::string buffer;
  WalRecord header;
  header.type = RecordType::kSegmentHeader;
  header.segment = segment;
  encode_wal_record(buffer, header);
  // The checkpoint: this segment alone knows every group's state.
  for (const auto& [group, state] : groups_) {
    if (state.has_snapshot) {
      WalRecord marker;
      marker.type = RecordType::kSnapshot;
      marker.group = group;
      marker.snapshot = state.snapshot;
      marker.snapshot_mode = SnapshotMode::kCompact;
      encode_wal_record(buffer, marker);
    }
    if (state.has_hard_state) {
      WalRecord hard;
      hard.type = RecordType::kHardState;
      hard.group = group;
      hard.hard_state = state.hard_state;
      encode_wal_record(buffer, hard);
    }
  }
  if (Status status = (*file)->append(buffer); !status) return status;
  if (Status status = (*file)->sync(); !status) {
    return fail_store("fdatasync of the new WAL segment " + path, status.error());
  }
  if (Status status = files_.sync_dir(options_.dir); !status) {
    return fail_store("fsync of the WAL directory " + options_.dir, status.error());
  }
  active_ = std::move(*file);
  active_segment_ = segment;
  segment_start_bytes_ = buffer.size();
  segment_index_[segment];
  std::lock_guard lock(mutex_);
  live_segments_.push_back(segment);
  ++stats_.segments_created;
  return {};
}

void Wal::submit(WalBatch batch, Done done) {
  batch.fit_records(options_.record_bytes_max);
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(batch), std::move(done)});
  }
  wake_.notify_one();
}

WalWriteResult Wal::write(WalBatch batch) {
  batch.fit_records(options_.record_bytes_max);
  Waiter waiter;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(batch), nullptr, &waiter});
  }
  wake_.notify_one();
  if (!options_.writer_thread) write_pending();
  std::unique_lock lock(mutex_);
  finished_.wait(lock, [&waiter] { return waiter.finished; });
  return std::move(waiter.result);
}

std::vector<Wal::Pending> Wal::take_round_locked() {
  // A round writes at most about a segment's worth, so a segment overshoots
  // its cap by at most one round and the queue drains in bounded steps.
  std::vector<Pending> round;
  uint64_t bytes = 0;
  while (!queue_.empty() && (round.empty() || bytes < options_.segment_bytes_max)) {
    bytes += queue_.front().batch.bytes_estimate();
    round.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return round;
}

size_t Wal::write_pending() {
  SYNOD_ASSERT(!options_.writer_thread, "write_pending() is for a WAL without a writer thread");
  size_t batches = 0;
  while (true) {
    std::vector<Pending> round;
    {
      std::lock_guard lock(mutex_);
      round = take_round_locked();
    }
    if (round.empty()) return batches;
    batches += round.size();
    write_round(round);
  }
}

void Wal::run_writer() {
  size_t last_round_batches = 0;
  while (true) {
    std::vector<Pending> round;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything was written
      // Callers woken by the last round resubmit within microseconds. Give
      // them a moment to join this round rather than leave them for the
      // next fsync (PostgreSQL's commit_delay, bounded and adaptive: only
      // while fewer batches wait than the last round carried).
      if (queue_.size() < last_round_batches && options_.group_commit_wait_us > 0) {
        wake_.wait_for(lock, std::chrono::microseconds(options_.group_commit_wait_us),
                       [&] { return stopping_ || queue_.size() >= last_round_batches; });
      }
      round = take_round_locked();
    }
    last_round_batches = round.size();
    write_round(round);
  }
}

void Wal::finish_round(std::vector<Pending>& round, std::vector<WalWriteResult>& results) {
  bool any_waiter = false;
  for (size_t b = 0; b < round.size(); ++b) {
    if (round[b].waiter != nullptr) {
      round[b].waiter->result = std::move(results[b]);
      any_waiter = true;
    } else if (round[b].done) {
      round[b].done(std::move(results[b]));
    }
  }
  if (!any_waiter) return;
  {
    std::lock_guard lock(mutex_);
    for (Pending& pending : round) {
      if (pending.waiter != nullptr) pending.waiter->finished = true;
    }
  }
  // One wake-up call for the whole round, not one per waiter.
  finished_.notify_all();
}

void Wal::write_round(std::vector<Pending>& round) {
  std::vector<WalWriteResult> results(round.size());
  auto fail_all = [&](const Error& error) {
    for (WalWriteResult& result : results) result = {error, {}};
    finish_round(round, results);
  };
  if (!failed_) {
    fail_all(failed_.error());
    return;
  }
  // Rotation happens only between rounds, so a round lies in one segment
  // (and can be cut back whole), and a checkpoint holds only durable state.
  uint64_t round_bytes = 0;
  for (const Pending& pending : round) round_bytes += pending.batch.bytes_estimate();
  if (active_->size() > segment_start_bytes_ &&
      active_->size() + round_bytes > options_.segment_bytes_max) {
    if (Status status = rotate(); !status) {
      fail_all(status.error());
      return;
    }
  }

  RoundUndo undo;
  undo.segment = active_segment_;
  const uint64_t size_before = active_->size();
  std::string buffer;
  uint64_t records = 0;
  for (size_t b = 0; b < round.size(); ++b) {
    const size_t batch_start = buffer.size();
    std::vector<RecordLocation> locations;
    for (const WalRecord& record : round[b].batch.records()) {
      const size_t start = buffer.size();
      encode_wal_record(buffer, record);
      const size_t payload_bytes = buffer.size() - start - kRecordHeaderBytes;
      if (payload_bytes > options_.record_bytes_max) {
        // Never write what recovery would refuse to read.
        size_t largest = 0;
        for (const raft::Entry& entry : record.entries) largest = std::max(largest, entry.data.size());
        results[b].status = Error(
            Errc::kInvalidArgument,
            "a WAL record of " + std::to_string(payload_bytes) + " bytes" +
                (record.type == RecordType::kEntries
                     ? " (holding a log entry of " + std::to_string(largest) + " bytes)"
                     : std::string()) +
                " is over the record cap of " + std::to_string(options_.record_bytes_max) +
                " bytes");
        break;
      }
      locations.push_back({active_segment_, size_before + start});
    }
    if (!results[b].status) {
      buffer.resize(batch_start);
      continue;
    }
    for (const WalRecord& record : round[b].batch.records()) {
      note_record(record, active_segment_, &undo);
      ++records;
    }
    results[b].locations = std::move(locations);
  }
  const uint64_t bytes = buffer.size();
  if (Status status = active_->append(buffer); !status) {
    // A write that did not land (full disk, I/O error) is cut back off, so
    // the segment ends where the last durable round ended.
    Status restored = active_->truncate(size_before);
    if (restored) restored = active_->sync();
    if (restored) {
      undo_round(undo);
      fail_all(status.error());
    } else {
      failed_ = Error(Errc::kStoreFailed, "WAL write failed (" + status.error().to_string() +
                                              ") and could not be undone (" +
                                              restored.error().to_string() +
                                              "); restart the node to recover from what is on disk");
      fail_all(failed_.error());
    }
    return;
  }
  Status synced = active_->sync();
  {
    std::lock_guard lock(mutex_);
    ++stats_.syncs;
    if (synced) {
      stats_.batches += round.size();
      stats_.records += records;
      stats_.bytes += bytes;
    }
  }
  if (!synced) {
    fail_all(fail_store("fdatasync of the WAL", synced.error()));
    return;
  }
  delete_obsolete_segments();
  finish_round(round, results);
}

Error Wal::fail_store(const std::string& what, const Error& cause) {
  failed_ = Error(Errc::kStoreFailed,
                  what + " failed (" + cause.to_string() +
                      "); the kernel may have dropped the unsynced pages, so this node refuses "
                      "writes until it restarts and recovers from what is on disk");
  return failed_.error();
}

Status Wal::rotate() {
  const std::string path = segment_path(active_segment_ + 1);
  Status status = open_new_segment();
  if (status) return {};
  if (status.code() == Errc::kStoreFailed) return status;
  // The new segment did not come to be (a full disk): take its file away so
  // a later rotation can make it, and keep writing the current one.
  if (files_.exists(path)) {
    Status removed = files_.remove(path);
    if (removed) removed = files_.sync_dir(options_.dir);
    if (!removed) {
      return fail_store("removing the unfinished WAL segment " + path, removed.error());
    }
  }
  return status;
}

void Wal::delete_obsolete_segments() {
  while (segment_index_.size() > 1) {
    auto oldest = segment_index_.begin();
    if (oldest->first == active_segment_) return;
    for (const auto& [group, highest] : oldest->second) {
      const GroupState& state = groups_[group];
      if (!state.has_snapshot || highest > state.snapshot.index) return;
    }
    const uint64_t segment = oldest->first;
    const std::string path = segment_path(segment);
    {
      // Readers first learn the segment is gone (kCompacted), then it goes:
      // a read never races the unlink. Lock order: readers_mutex_, mutex_.
      std::lock_guard readers_lock(readers_mutex_);
      std::lock_guard lock(mutex_);
      live_segments_.erase(std::remove(live_segments_.begin(), live_segments_.end(), segment),
                           live_segments_.end());
      readers_.erase(segment);
    }
    // An earlier attempt may have removed the file and then failed to sync
    // the directory: only the sync is left to do.
    if (files_.exists(path)) {
      if (Status status = files_.remove(path); !status) {
        log("WAL: could not delete obsolete segment: " + status.error().to_string());
        return;
      }
    }
    // One at a time, each removal durable before the next, so a crash never
    // leaves a gap in the numbering (recovery treats a gap as lost data).
    if (Status status = files_.sync_dir(options_.dir); !status) {
      log("WAL: could not sync the directory after deleting a segment (will retry): " +
          status.error().to_string());
      return;
    }
    segment_index_.erase(oldest);
    std::lock_guard lock(mutex_);
    ++stats_.segments_deleted;
  }
}

Result<WalRecord> Wal::read(RecordLocation location) const {
  // Lock order: readers_mutex_, then mutex_. Held through the read, so the
  // writer cannot unlink this segment under it.
  std::lock_guard lock(readers_mutex_);
  bool live = false;
  {
    std::lock_guard state_lock(mutex_);
    live = std::find(live_segments_.begin(), live_segments_.end(), location.segment) !=
           live_segments_.end();
  }
  if (!live) {
    return Error(Errc::kCompacted, "WAL segment " + std::to_string(location.segment) +
                                       " was deleted");
  }
  auto it = readers_.find(location.segment);
  if (it == readers_.end()) {
    Result<std::unique_ptr<ReadableFile>> reader = files_.open_readable(segment_path(location.segment));
    if (!reader) return reader.error();
    it = readers_.emplace(location.segment, std::move(*reader)).first;
  }
  const std::string path = segment_path(location.segment);
  std::string header;
  if (Status status = it->second->read_at(location.offset, kRecordHeaderBytes, &header); !status) {
    return status.error();
  }
  Frame frame = read_frame(header, options_.record_bytes_max);
  if (header.size() < kRecordHeaderBytes || frame.status == FrameStatus::kLengthOverCap) {
    return corruption(path, location.offset, describe_frame_problem(frame, options_.record_bytes_max));
  }
  std::string data;
  if (Status status = it->second->read_at(location.offset, kRecordHeaderBytes + frame.length, &data);
      !status) {
    return status.error();
  }
  frame = read_frame(data, options_.record_bytes_max);
  if (frame.status != FrameStatus::kOk) {
    return corruption(path, location.offset, describe_frame_problem(frame, options_.record_bytes_max));
  }
  Result<WalRecord> record = decode_wal_record(static_cast<RecordType>(frame.type), frame.payload, options_.record_bytes_max);
  if (!record) return corruption(path, location.offset, record.error().message());
  return record;
}

WalStats Wal::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::vector<uint64_t> Wal::segments() const {
  std::lock_guard lock(mutex_);
  return live_segments_;
}

}  // namespace synod::storage
