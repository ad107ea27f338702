// The node's write-ahead log: one per node, shared by all its Raft groups.
//
// What it stores: per group, log entries, hard state (term, vote, commit) and
// snapshot markers (the log is compacted, or replaced, up to an index). The
// data those markers cover lives in the KV engine, not here.
//
// Layout: `<dir>/<16 hex digits>.wal` segment files, numbered upwards with no
// gaps. Each segment begins with a header record, then a checkpoint (every
// known group's latest snapshot marker and hard state), so a segment never
// needs an older one for anything but entries. Records are framed and
// checksummed (record.h). The writer rotates between rounds, before a round
// that would take the segment past `segment_bytes_max`, so a round lies in
// one segment and a checkpoint holds only durable state. The oldest segments
// are deleted, one at a time with a directory fsync between, once every entry
// they hold is at or below its group's compaction point (the last durable
// snapshot marker).
//
// Group commit: `submit()` queues a batch and returns; the writer takes every
// batch queued since its last flush, writes them, issues one fdatasync, then
// runs every batch's completion, in order, and releases every caller blocked
// in `write()` with one wake-up. While fewer batches are queued than its last
// round carried, it waits up to `group_commit_wait_us` for the callers it just
// released to submit again, so they share the next fsync. Callers never
// fsync. With `writer_thread = false` nothing runs by itself: the owner calls
// `write_pending()` (tests and the deterministic simulator do).
//
// Recovery (`open`): reads every segment in order to the first record whose
// length or checksum is wrong. A bad record in the last segment with nothing
// valid after it is a torn write: the tail is truncated (and logged), and
// the last segment is fsynced in any case (its tail may have been only in
// the page cache of a process that died). A bad
// record with valid records after it, or in any earlier segment, or a missing
// segment in the numbering, is corruption: `open` fails with an error naming
// the file, the offset and what was expected, and the safe way out. After
// recovery the writer always starts a new segment.
//
// Failure: a failed fdatasync (of a segment or of the directory) makes the
// WAL refuse every later write (kStoreFailed) until the process restarts and
// recovers from what is on disk; the kernel may have dropped the unsynced
// pages, so retrying the fsync could report success over lost data. Running
// out of space fails the round with kNoSpace, cuts the segment back to where
// the round began (or removes a half-made next segment), and leaves the WAL
// usable for later rounds. A record over `record_bytes_max` is refused
// before anything is written (kInvalidArgument), alone.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "storage/file_system.h"
#include "storage/record.h"

namespace synod::storage {

struct WalOptions {
  std::string dir;
  uint64_t segment_bytes_max = 64ull << 20;
  uint32_t record_bytes_max = 64u << 20;  // at most kRecordPayloadBytesCap
  bool writer_thread = true;
  // How long the writer may wait for more batches before a round, while
  // fewer are queued than its last round carried (0: never wait).
  uint32_t group_commit_wait_us = 100;
  // Receives one line per notable recovery event (a truncated torn tail).
  std::function<void(const std::string&)> log;
};

// Where a record lies: segment number and byte offset of its frame.
struct RecordLocation {
  uint64_t segment = 0;
  uint64_t offset = 0;
  friend bool operator==(const RecordLocation&, const RecordLocation&) = default;
};

// Records to write together; each becomes one WAL record.
class WalBatch {
 public:
  void add_entries(raft::GroupId group, std::vector<raft::Entry> entries);
  void add_hard_state(raft::GroupId group, const raft::HardState& state);
  void add_snapshot(raft::GroupId group, const raft::SnapshotMeta& meta, SnapshotMode mode);
  // Adds every record of `other`, after these.
  void append(WalBatch other);
  // Splits entries records so each payload is at most `payload_bytes_max`
  // (exact encoded sizes). False if one entry alone is over it; the WAL then
  // refuses the batch. `add_entries` splits at 1 MiB; `Wal::submit` fits a
  // batch to the WAL's record cap, so a caller that needs the records as
  // written (to feed a GroupLog) fits its own copy first.
  bool fit_records(uint64_t payload_bytes_max);
  // Entry bytes in the batch (records of other kinds are small).
  uint64_t bytes_estimate() const { return bytes_ + 48 * records_.size(); }

  const std::vector<WalRecord>& records() const { return records_; }
  bool empty() const { return records_.empty(); }

 private:
  // Appends `record` (entries) split into pieces of at most
  // `payload_bytes_max`; false if one entry alone is over it.
  bool append_split(WalRecord record, uint64_t payload_bytes_max);

  std::vector<WalRecord> records_;
  uint64_t bytes_ = 0;
  // An upper bound of every entries record's payload (header counted at its
  // largest), so fitting a batch that already fits costs nothing.
  uint64_t entries_payload_bytes_max_ = 0;
};

struct WalWriteResult {
  base::Status status;
  // One per record of the batch, in order (empty when `status` failed).
  std::vector<RecordLocation> locations;
};

struct WalStats {
  uint64_t syncs = 0;
  uint64_t batches = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t segments_created = 0;
  uint64_t segments_deleted = 0;
};

class Wal {
 public:
  using Visitor = std::function<base::Status(const WalRecord&, RecordLocation)>;
  using Done = std::function<void(WalWriteResult)>;

  // Recovers `options.dir` (created if missing), calling `visit` for every
  // durable record in order (segment headers excluded), then opens a new
  // segment for writing. `visit` may fail recovery by returning an error.
  static base::Result<std::unique_ptr<Wal>> open(FileSystem& files, WalOptions options,
                                                 const Visitor& visit);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Queues `batch`; `done` runs once it is durable or has failed (on the
  // writer thread, or inside `write_pending()`), in submission order. It may
  // `submit()` again (an event loop keeps its writes in flight that way).
  // `done` must not call `write()` (it would wait for itself).
  void submit(WalBatch batch, Done done);
  // Submits and waits. With writer_thread off it writes at once.
  WalWriteResult write(WalBatch batch);
  // Writes and syncs everything queued; returns how many batches it took.
  size_t write_pending();

  // Reads one record back (verifying its checksum). Any thread.
  base::Result<WalRecord> read(RecordLocation location) const;

  WalStats stats() const;
  // Segment numbers on disk, oldest first.
  std::vector<uint64_t> segments() const;
  const std::string& dir() const { return options_.dir; }
  uint32_t record_bytes_max() const { return options_.record_bytes_max; }
  std::string segment_path(uint64_t segment) const;

 private:
  // A caller blocked in write(): filled in by the writer, then released
  // together with every other waiter of its round by one notify_all.
  struct Waiter {
    WalWriteResult result;
    bool finished = false;
  };
  struct Pending {
    WalBatch batch;
    Done done;               // or
    Waiter* waiter = nullptr;
  };
  struct GroupState {
    raft::HardState hard_state;
    raft::SnapshotMeta snapshot;  // latest durable marker
    bool has_hard_state = false;
    bool has_snapshot = false;
  };
  // Per segment: the highest entry index of each group with entries in it.
  using SegmentIndex = std::map<raft::GroupId, raft::LogIndex>;
  // What a round changed in the bookkeeping, to put back if its write is cut
  // off (a full disk). Only the groups it touched: a node hosts thousands.
  struct RoundUndo {
    std::map<raft::GroupId, std::optional<GroupState>> groups;
    std::map<raft::GroupId, std::optional<raft::LogIndex>> highest;  // in `segment`
    uint64_t segment = 0;
  };

  Wal(FileSystem& files, WalOptions options);
  base::Status recover(const Visitor& visit);
  base::Status open_new_segment();
  // Opens the next segment; on a failure that leaves the WAL usable (a full
  // disk) removes the half-made file and keeps the current segment.
  base::Status rotate();
  // Marks the WAL failed for good and returns the error to report.
  base::Error fail_store(const std::string& what, const base::Error& cause);
  std::vector<Pending> take_round_locked();
  void note_record(const WalRecord& record, uint64_t segment, RoundUndo* undo = nullptr);
  void undo_round(const RoundUndo& undo);
  void finish_round(std::vector<Pending>& round, std::vector<WalWriteResult>& results);
  void run_writer();
  void write_round(std::vector<Pending>& round);
  void delete_obsolete_segments();
  void log(const std::string& line) const;

  FileSystem& files_;
  WalOptions options_;

  // Writer state: touched by the writer (or by write_pending's caller) only.
  std::unique_ptr<WritableFile> active_;
  uint64_t active_segment_ = 0;
  uint64_t segment_start_bytes_ = 0;  // header and checkpoint of the active segment
  std::map<raft::GroupId, GroupState> groups_;
  std::map<uint64_t, SegmentIndex> segment_index_;  // every segment on disk
  base::Status failed_;  // sticky after a failed fsync

  mutable std::mutex mutex_;  // guards the queue, stats and the reader cache
  std::condition_variable wake_;
  std::condition_variable finished_;  // waiters of write()
  std::deque<Pending> queue_;
  bool stopping_ = false;
  WalStats stats_;
  std::vector<uint64_t> live_segments_;
  mutable std::mutex readers_mutex_;
  mutable std::map<uint64_t, std::unique_ptr<ReadableFile>> readers_;
  std::thread writer_;
};

}  // namespace synod::storage
