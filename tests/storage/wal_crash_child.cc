// The process that wal_crash_test.cc kills: it recovers the WAL, checks what
// it recovered, then appends entries to group 1 forever and reports each
// acknowledgement to its parent.
//
//   wal_crash_child <wal_dir> <report_fd> [--segment-bytes N] [--threads N]
//                   [--inflight N] [--batch-entries-max N]
//                   [--value-bytes-max N] [--compact-every N] [--seed N]
//                   [--parent-pid N]
//
// Lines written to <report_fd>, each with one write() under PIPE_BUF bytes so
// a kill never leaves half a line:
//   "R <index>"  recovery finished; the highest index it found (entries or
//                compaction point) for group 1;
//   "S <index>"  entries up to <index> are about to be submitted (written
//                before submit(), so the parent's bound on what may be on
//                disk is never too low);
//   "A <index>"  entries up to <index> are durable: written from the batch's
//                completion, which the WAL runs only after fdatasync.
//
// Entry contents are a pure function of the index (`crash_entry_data` in
// wal_crash_model.h, which the test checks against too), so anything
// replayed can be checked without remembering it. Several threads submit;
// one mutex around "take the next indexes, submit" keeps the WAL queue in
// index order, and up to --inflight batches wait at once so group commit
// takes several per fsync.
// Every --compact-every entries a batch also carries a kCompact snapshot
// marker at an acknowledged index and a hard state, so checkpoints are
// written and old segments deleted.
//
// It exits by itself only when something is wrong: 2 when recovery fails or
// recovers something wrong, 3 when a write fails, 64 on bad arguments; the
// message goes to stderr. It also dies with its parent (PR_SET_PDEATHSIG).
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/rng.h"
#include "storage/posix_file_system.h"
#include "storage/wal.h"
#include "storage/wal_crash_model.h"
#include "support/crash_child.h"

namespace synod::storage {
namespace {

using raft::Entry;
using raft::LogIndex;
using test_support::ChildExit;
using test_support::CrashChild;

// Set from the command line; the defaults are what wal_crash_test.cc passes.
struct Options {
  uint64_t segment_bytes = 64u << 10;
  uint64_t threads = 3;
  uint64_t inflight = 8;
  uint64_t batch_entries_max = 8;
  uint64_t value_bytes_max = 2000;
  uint64_t compact_every = 500;
};

// What recovery replayed for group 1, checked as it arrives.
class RecoveryCheck {
 public:
  explicit RecoveryCheck(uint64_t value_bytes_max) : value_bytes_max_(value_bytes_max) {}

  base::Status visit(const WalRecord& record) {
    if (record.group != kCrashGroup) {
      return fail("a record for unknown group " + std::to_string(record.group.value()));
    }
    switch (record.type) {
      case RecordType::kEntries:
        for (const Entry& entry : record.entries) {
          if (Status status = check_entry(entry); !status) return status;
        }
        return {};
      case RecordType::kSnapshot:
        if (record.snapshot_mode != SnapshotMode::kCompact) return fail("a kInstall marker");
        compacted_ = std::max(compacted_, record.snapshot.index.value());
        return {};
      case RecordType::kHardState:
      case RecordType::kSegmentHeader:
        return {};
    }
    return fail("a record of unknown type");
  }

  // After the last record: no gap between the compaction point and the
  // first replayed entry.
  base::Status finish() const {
    if (first_ != 0 && first_ > compacted_ + 1) {
      return fail("entries start at " + std::to_string(first_) +
                  " but the log is compacted only to " + std::to_string(compacted_));
    }
    return {};
  }

  uint64_t highest() const { return std::max(last_, compacted_); }

 private:
  using Status = base::Status;

  Status check_entry(const Entry& entry) {
    const uint64_t index = entry.index.value();
    if (first_ == 0) {
      first_ = index;
    } else if (index != last_ + 1) {
      return fail("entry " + std::to_string(index) + " follows entry " + std::to_string(last_));
    }
    last_ = index;
    if (entry.term != crash_entry_term(index) || entry.type != raft::EntryType::kNormal ||
        entry.data.view() != crash_entry_data(index, value_bytes_max_)) {
      return fail("entry " + std::to_string(index) + " has the wrong content");
    }
    return {};
  }

  static Status fail(const std::string& what) {
    return base::Error(base::Errc::kCorruption, "recovered " + what);
  }

  uint64_t value_bytes_max_;
  uint64_t first_ = 0;
  uint64_t last_ = 0;
  uint64_t compacted_ = 0;
};

// The appending side: indexes handed out under one mutex, so batches reach
// the WAL's queue in index order whichever thread submits them.
class Appender {
 public:
  Appender(const CrashChild& child, Wal& wal, const Options& options, uint64_t highest)
      : child_(child), wal_(wal), options_(options), rng_(child.seed() ^ highest),
        next_(highest + 1),
        compact_at_((highest / options.compact_every + 1) * options.compact_every) {}

  [[noreturn]] void run_thread() {
    while (true) submit_one();
  }

 private:
  void submit_one() {
    std::unique_lock lock(mutex_);
    room_.wait(lock, [this] { return inflight_ < options_.inflight; });
    const uint64_t count = rng_.between(1, options_.batch_entries_max);
    std::vector<Entry> entries;
    entries.reserve(count);
    for (uint64_t k = 0; k < count; ++k) {
      const uint64_t index = next_ + k;
      entries.push_back(Entry{crash_entry_term(index), LogIndex{index}, raft::EntryType::kNormal,
                              base::Bytes(crash_entry_data(index, options_.value_bytes_max))});
    }
    const uint64_t last = next_ + count - 1;
    WalBatch batch;
    batch.add_entries(kCrashGroup, std::move(entries));
    // At every multiple of --compact-every (whichever run reaches it), once
    // this run has an acknowledgement to compact to.
    if (last >= compact_at_ && acked_ > 0) {
      // Compact to a random index this run saw acknowledged (recovered but
      // unacknowledged entries do not count: the parent never heard of
      // them), keeping some entries above it for the parent to check.
      const uint64_t keep = rng_.uniform(std::min<uint64_t>(acked_, options_.compact_every));
      raft::SnapshotMeta meta;
      meta.index = LogIndex{acked_ - keep};
      meta.term = crash_entry_term(acked_ - keep);
      meta.conf_state.voters = {raft::NodeId{1}};
      batch.add_snapshot(kCrashGroup, meta, SnapshotMode::kCompact);
      batch.add_hard_state(kCrashGroup, raft::HardState{crash_entry_term(acked_), raft::NodeId{1},
                                                        LogIndex{acked_}});
      compact_at_ = (last / options_.compact_every + 1) * options_.compact_every;
    }
    next_ = last + 1;
    ++inflight_;
    child_.report('S', last);
    wal_.submit(std::move(batch),
                [this, last](WalWriteResult result) { submitted_done(result, last); });
  }

  // Runs on the WAL's writer thread, in submission order.
  void submitted_done(const WalWriteResult& result, uint64_t last) {
    if (!result.status) {
      child_.die(ChildExit::kWorkFailed, "WAL write failed: " + result.status.error().to_string());
    }
    child_.report('A', last);
    {
      std::lock_guard lock(mutex_);
      if (last <= acked_) child_.die(ChildExit::kWorkFailed, "acknowledgements out of order");
      acked_ = last;
      --inflight_;
    }
    room_.notify_one();
  }

  const CrashChild& child_;
  Wal& wal_;
  const Options& options_;
  std::mutex mutex_;
  std::condition_variable room_;
  base::Rng rng_;
  uint64_t next_;
  uint64_t acked_ = 0;  // highest index acknowledged in this run; 0 before the first
  uint64_t compact_at_;
  uint64_t inflight_ = 0;
};

int run(int argc, char** argv) {
  Options options;
  const CrashChild child(
      "wal_crash_child", argc, argv,
      {{"--segment-bytes", &options.segment_bytes, 4096},
       {"--threads", &options.threads, 1, 64},
       {"--inflight", &options.inflight, 1, 4096},
       {"--batch-entries-max", &options.batch_entries_max, 1, 4096},
       {"--value-bytes-max", &options.value_bytes_max, 1, 1u << 20},
       {"--compact-every", &options.compact_every, 1}});

  PosixFileSystem files;
  WalOptions wal_options;
  wal_options.dir = child.dir();
  wal_options.segment_bytes_max = options.segment_bytes;
  wal_options.writer_thread = true;
  wal_options.log = [](const std::string& line) {
    std::fprintf(stderr, "wal_crash_child: %s\n", line.c_str());
  };
  RecoveryCheck check(options.value_bytes_max);
  base::Result<std::unique_ptr<Wal>> wal =
      Wal::open(files, wal_options,
                [&check](const WalRecord& record, RecordLocation) { return check.visit(record); });
  if (!wal) child.die(ChildExit::kRecoveryFailed, "recovery failed: " + wal.error().to_string());
  if (base::Status status = check.finish(); !status) {
    child.die(ChildExit::kRecoveryFailed, "recovery failed: " + status.error().to_string());
  }
  child.report('R', check.highest());

  Appender appender(child, **wal, options, check.highest());
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < options.threads; ++t) {
    threads.emplace_back([&appender] { appender.run_thread(); });
  }
  for (std::thread& thread : threads) thread.join();  // never returns: killed by the parent
  return 0;
}

}  // namespace
}  // namespace synod::storage

int main(int argc, char** argv) { return synod::storage::run(argc, argv); }
