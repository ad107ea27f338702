// Review of the durable storage commits: regression tests for the rules that
// were checked and found to hold, and for the four bugs the review found
// (each test failed before its fix; "Regression N" below says what it was).
#include <gtest/gtest.h>

#include <chrono>

#include <atomic>
#include <mutex>
#include <thread>

#include "node/kv_state_machine.h"
#include "storage/faulty_file_system.h"
#include "support/commands.h"
#include "support/log_entries.h"
#include "storage/group_log.h"
#include "storage/mem_kv_engine.h"
#include "storage/wal.h"

namespace synod::storage {
namespace {

using node::AppliedState;
using node::Command;
using node::CommandOp;
using node::CommandReply;
using node::KvStateMachine;
using raft::ConfState;
using raft::Entry;
using raft::GroupId;
using raft::HardState;
using raft::LogIndex;
using raft::NodeId;
using raft::SnapshotMeta;
using raft::Term;

constexpr GroupId kGroup{7};

Entry entry(uint64_t index, uint64_t term, size_t bytes = 100) {
  return test_support::numbered_entry(index, term, bytes);
}

std::vector<Entry> entries(uint64_t from, uint64_t to, uint64_t term, size_t bytes = 100) {
  return test_support::numbered_entries(from, to, term, bytes);
}

ConfState three_voters() {
  ConfState conf;
  conf.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  return conf;
}

// A FaultyFileSystem whose next directory fsync can be made to fail alone
// (FaultyFileSystem::fail_next_syncs counts file and directory syncs alike).
class DirSyncFaultFileSystem final : public FileSystem {
 public:
  base::Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                            bool create) override {
    return disk.open_writable(path, create);
  }
  base::Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& path) const override {
    return disk.open_readable(path);
  }
  base::Result<std::vector<std::string>> list(const std::string& dir) const override {
    return disk.list(dir);
  }
  base::Status create_dirs(const std::string& dir) override { return disk.create_dirs(dir); }
  base::Status remove(const std::string& path) override { return disk.remove(path); }
  base::Status sync_dir(const std::string& dir) override {
    if (fail_next_dir_sync.exchange(false)) {
      return base::Error(base::Errc::kIo, "fsync " + dir + ": input/output error (injected)");
    }
    return disk.sync_dir(dir);
  }
  bool exists(const std::string& path) const override { return disk.exists(path); }

  FaultyFileSystem disk{11};
  std::atomic<bool> fail_next_dir_sync{false};
};

class ReviewLog : public ::testing::Test {
 protected:
  WalOptions options(uint64_t segment_bytes) {
    WalOptions o;
    o.dir = "/r/wal";
    o.writer_thread = false;
    o.segment_bytes_max = segment_bytes;
    return o;
  }
  void open(FileSystem& files, uint64_t segment_bytes = 256) {
    log_.reset();
    auto opened = DurableLog::open(files, options(segment_bytes), GroupLogOptions{1 << 20});
    ASSERT_TRUE(opened.ok()) << opened.error().to_string();
    log_ = std::move(*opened);
  }
  void write_entries(std::vector<Entry> list) {
    WalBatch batch;
    batch.add_entries(kGroup, std::move(list));
    base::Status status = log_->write(batch);
    ASSERT_TRUE(status.ok()) << status.error().to_string();
  }
  void write_marker(uint64_t index, uint64_t term, SnapshotMode mode) {
    WalBatch batch;
    batch.add_snapshot(kGroup, SnapshotMeta{LogIndex{index}, Term{term}, three_voters()}, mode);
    base::Status status = log_->write(batch);
    ASSERT_TRUE(status.ok()) << status.error().to_string();
  }
  GroupLog& group() { return log_->group(kGroup); }

  FaultyFileSystem disk_{5};
  std::unique_ptr<DurableLog> log_;
};

// ---------------------------------------------------------------------------
// Regression 1 (GroupLog recovery, fixed: a rewrite below the first
// surviving entry now resets the log). The oldest segment was deleted (its entries are
// under the compaction point), so recovery meets the first surviving entries
// at index 4 > snapshot + 1 and enters the "gap" state (slots_first_ = 4).
// A later record rewrites the log from index 2 (a new leader overwrote
// uncommitted entries, which happened before the compaction that allowed the
// deletion). apply_entries calls drop_from(2), which empties slots_ but
// leaves slots_first_ at 4, then pushes entries 2..7 as if they were 4..9.
// After the compaction marker at 4 the log reports last_index 9 and terms for
// entries 8 and 9 that do not exist: Raft would acknowledge appends it does
// not hold (counting toward a quorum) and crash when it tries to read them.
TEST_F(ReviewLog, RecoveryRewriteBelowTheFirstSurvivingEntryKeepsIndexesAligned) {
  open(disk_);
  write_entries(entries(1, 3, 1));  // segment 1
  write_entries(entries(4, 6, 1));  // segment 2
  write_entries(entries(2, 7, 2));  // segment 3: a new leader rewrites from 2
  EXPECT_EQ(group().last_index(), LogIndex{7});
  write_marker(4, 2, SnapshotMode::kCompact);  // segment 4; deletes segment 1 only
  const std::vector<uint64_t> segments = log_->wal().segments();
  ASSERT_FALSE(segments.empty());
  ASSERT_EQ(segments.front(), 2u) << "setup: segment 1 deleted, segment 2 kept";
  EXPECT_EQ(group().last_index(), LogIndex{7});

  open(disk_);
  EXPECT_EQ(group().first_index(), LogIndex{5});
  EXPECT_EQ(group().last_index(), LogIndex{7}) << "phantom entries after recovery";
  EXPECT_FALSE(group().term(LogIndex{9}).ok()) << "entry 9 was never written";
  auto got = group().entries(LogIndex{5}, LogIndex{8}, UINT64_MAX);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  ASSERT_EQ(got->size(), 3u);
  for (uint64_t i = 5; i <= 7; ++i) EXPECT_EQ((*got)[i - 5], entry(i, 2)) << i;
}

// The same deleted-prefix recovery without a rewrite below the first
// surviving entry is handled correctly (regression value).
TEST_F(ReviewLog, RecoveryAfterADeletedPrefixWithARewriteAtOrAboveTheGap) {
  open(disk_);
  write_entries(entries(1, 3, 1));  // segment 1
  write_entries(entries(4, 6, 1));  // segment 2
  write_entries(entries(5, 8, 2));  // segment 3: rewrite from 5
  write_marker(4, 1, SnapshotMode::kCompact);
  ASSERT_EQ(log_->wal().segments().front(), 2u);
  open(disk_);
  EXPECT_EQ(group().first_index(), LogIndex{5});
  EXPECT_EQ(group().last_index(), LogIndex{8});
  auto got = group().entries(LogIndex{5}, LogIndex{9}, UINT64_MAX);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  ASSERT_EQ(got->size(), 4u);
  for (uint64_t i = 5; i <= 8; ++i) EXPECT_EQ((*got)[i - 5], entry(i, 2)) << i;
}

// ---------------------------------------------------------------------------
// Regression 2 (WAL segment deletion stalled for good; fixed: a removal
// whose directory sync failed is retried, then its bookkeeping dropped). delete_obsolete_segments
// removes the oldest segment, then its directory fsync fails: it logs and
// returns, leaving the segment in segment_index_/live_segments_. Every later
// attempt calls remove() on the file that is already gone, fails with "no
// such file", logs and returns, so no segment is ever deleted again and the
// disk fills (the WAL then fails every write with kNoSpace).
TEST_F(ReviewLog, FailedDirectorySyncAfterADeletionDoesNotStopLaterDeletions) {
  DirSyncFaultFileSystem files;
  open(files);
  for (uint64_t i = 1; i <= 30; i += 3) write_entries(entries(i, i + 2, 1));
  ASSERT_GT(log_->wal().segments().size(), 5u);
  // A small record rotates into a fresh segment, so the marker after it is
  // written without a rotation and the next directory fsync is the deletion's.
  WalBatch hard;
  hard.add_hard_state(kGroup, HardState{Term{1}, NodeId{1}, LogIndex{30}});
  ASSERT_TRUE(log_->write(hard).ok());
  const size_t created = log_->wal().stats().segments_created;
  files.fail_next_dir_sync = true;
  write_marker(6, 1, SnapshotMode::kCompact);  // deletes segment 1, its dir fsync fails
  ASSERT_EQ(log_->wal().stats().segments_created, created) << "setup: no rotation";
  ASSERT_FALSE(files.fail_next_dir_sync) << "setup: the deletion's fsync was the one that failed";
  for (uint64_t i = 31; i <= 45; i += 3) write_entries(entries(i, i + 2, 1));
  write_marker(42, 1, SnapshotMode::kCompact);
  const std::vector<uint64_t> segments = log_->wal().segments();
  ASSERT_FALSE(segments.empty());
  EXPECT_GT(segments.front(), 5u) << "segments under the compaction point are never deleted";
  EXPECT_LT(segments.size(), 6u);
}

// A failed directory fsync before any deletion leaves nothing stuck when no
// removal was in flight: control for the test above.
TEST_F(ReviewLog, SegmentsUnderTheCompactionPointAreDeletedOldestFirst) {
  open(disk_);
  for (uint64_t i = 1; i <= 30; i += 3) write_entries(entries(i, i + 2, 1));
  write_marker(21, 1, SnapshotMode::kCompact);
  const std::vector<uint64_t> segments = log_->wal().segments();
  ASSERT_FALSE(segments.empty());
  for (size_t k = 1; k < segments.size(); ++k) EXPECT_EQ(segments[k], segments[k - 1] + 1);
  disk_.crash();
  open(disk_);
  EXPECT_EQ(group().first_index(), LogIndex{22});
  EXPECT_EQ(group().last_index(), LogIndex{30});
}

// ---------------------------------------------------------------------------
// WAL: a full disk cuts the round back, restores its bookkeeping, and neither
// the failed batch nor a checkpoint built from it appears after a restart.
TEST_F(ReviewLog, FullDiskRoundIsUndoneAndNeverReappears) {
  open(disk_, 4096);
  write_entries(entries(1, 5, 1));
  write_marker(3, 1, SnapshotMode::kCompact);
  disk_.set_capacity_bytes(disk_.used_bytes() + 50);
  {
    WalBatch batch;
    batch.add_entries(kGroup, entries(6, 10, 1));
    batch.add_snapshot(kGroup, SnapshotMeta{LogIndex{9}, Term{1}, three_voters()},
                       SnapshotMode::kCompact);
    base::Status status = log_->write(batch);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), base::Errc::kNoSpace);
  }
  disk_.set_capacity_bytes(std::nullopt);
  write_entries(entries(6, 7, 2));
  disk_.crash();
  open(disk_, 4096);
  EXPECT_EQ(group().snapshot_meta().index, LogIndex{3});
  EXPECT_EQ(group().last_index(), LogIndex{7});
  EXPECT_EQ(*group().term(LogIndex{7}), Term{2});
}

// WAL: after a failed fdatasync nothing is written again, even once the disk
// recovers, until a restart.
TEST_F(ReviewLog, FailedFsyncIsStickyAndRestartKeepsOnlyTheAcknowledged) {
  open(disk_, 4096);
  write_entries(entries(1, 3, 1));
  disk_.fail_next_syncs(1);
  {
    WalBatch batch;
    batch.add_entries(kGroup, entries(4, 5, 1));
    EXPECT_EQ(log_->write(batch).code(), base::Errc::kStoreFailed);
  }
  {
    WalBatch batch;
    batch.add_entries(kGroup, entries(4, 5, 1));
    EXPECT_EQ(log_->write(batch).code(), base::Errc::kStoreFailed);
  }
  disk_.crash(CrashOptions{.keep_some_unsynced = false});
  open(disk_, 4096);
  EXPECT_EQ(group().last_index(), LogIndex{3});
}

// ---------------------------------------------------------------------------
// State machine.

std::string command(uint64_t client, uint64_t sequence, CommandOp op, std::string key,
                    std::string value = {}) {
  return node::encode_command(
      test_support::kv_command(client, sequence, op, std::move(key), std::move(value)));
}

Entry command_entry(uint64_t index, const std::string& data, uint64_t term = 1) {
  return Entry{Term{term}, LogIndex{index}, raft::EntryType::kNormal, base::Bytes(data)};
}

// Regression 3 (a committed entry that could never be applied; fixed:
// user keys are capped at kMaxUserKeyBytes, and a longer one gets an ERR). decode_command lets a
// key be kMaxKeyBytes long, but the engine key is a 9-byte prefix plus the
// user key, which is over the engine's cap: engine_->write refuses the whole
// batch with kInvalidArgument, apply() returns the error, and every replica
// fails the same way on every retry. The group stops applying for good.
TEST(ReviewKvStateMachine, KeyAtTheCommandCapDoesNotWedgeTheGroup) {
  MemKvEngine engine;
  KvStateMachine machine(kGroup, &engine);
  ASSERT_TRUE(machine.load().ok());
  const std::string big_key(node::kMaxKeyBytes, 'k');
  std::vector<Entry> list = {
      command_entry(1, command(5, 1, CommandOp::kPut, big_key, "v")),
      command_entry(2, command(5, 2, CommandOp::kPut, "small", "v")),
  };
  auto applied = machine.apply(list, nullptr);
  ASSERT_TRUE(applied.ok()) << applied.error().to_string();
  EXPECT_EQ(machine.applied().index, LogIndex{2});
  ASSERT_EQ(applied->size(), 2u);
  ASSERT_TRUE((*applied)[0].reply.has_value());
  EXPECT_EQ((*applied)[0].reply->kind, CommandReply::Kind::kError);
  EXPECT_EQ(**machine.get("small"), "v");
}

TEST(ReviewKvStateMachine, RetryInTheSameBatchAndAfterAnEngineCrashAppliesOnce) {
  MemKvEngine engine;
  {
    KvStateMachine machine(kGroup, &engine);
    ASSERT_TRUE(machine.load().ok());
    ASSERT_TRUE(machine.apply({command_entry(1, command(9, 1, CommandOp::kIncrBy, "n", "5"))},
                              nullptr, {.sync = true})
                    .ok());
    // Same request twice in one batch (a retry committed next to the original).
    auto applied = machine.apply({command_entry(2, command(9, 2, CommandOp::kIncrBy, "n", "1")),
                                  command_entry(3, command(9, 2, CommandOp::kIncrBy, "n", "1"))},
                                 nullptr);
    ASSERT_TRUE(applied.ok());
    EXPECT_FALSE((*applied)[0].deduplicated);
    EXPECT_TRUE((*applied)[1].deduplicated);
    EXPECT_EQ((*applied)[1].reply, (*applied)[0].reply);
    EXPECT_EQ(**machine.get("n"), "6");
  }
  // The unsynced batch is lost as a whole: data, session and applied index.
  engine.crash();
  KvStateMachine machine(kGroup, &engine);
  ASSERT_TRUE(machine.load().ok());
  EXPECT_EQ(machine.applied().index, LogIndex{1});
  EXPECT_EQ(**machine.get("n"), "5");
  // Raft replays from the log: entry 1 is skipped, 2 applies, 3 is a retry.
  auto replayed = machine.apply({command_entry(1, command(9, 1, CommandOp::kIncrBy, "n", "5")),
                                 command_entry(2, command(9, 2, CommandOp::kIncrBy, "n", "1")),
                                 command_entry(3, command(9, 2, CommandOp::kIncrBy, "n", "1"))},
                                nullptr);
  ASSERT_TRUE(replayed.ok());
  EXPECT_FALSE((*replayed)[0].reply.has_value());
  EXPECT_EQ(**machine.get("n"), "6");
  EXPECT_EQ(machine.applied().index, LogIndex{3});
  // And a second replay of the same entries changes nothing.
  ASSERT_TRUE(machine.apply({command_entry(3, command(9, 2, CommandOp::kIncrBy, "n", "1"))}, nullptr)
                  .ok());
  EXPECT_EQ(**machine.get("n"), "6");
}

TEST(ReviewKvStateMachine, DamagedOrMismatchedSnapshotChangesNothing) {
  MemKvEngine source_engine;
  KvStateMachine source(kGroup, &source_engine);
  ASSERT_TRUE(source.load().ok());
  std::vector<Entry> list;
  for (uint64_t i = 1; i <= 50; ++i) {
    list.push_back(command_entry(i, command(1, i, CommandOp::kPut, "k" + std::to_string(i),
                                            std::string(100, 'x'))));
  }
  ConfState conf = three_voters();
  ASSERT_TRUE(source.apply(list, &conf).ok());
  auto snapshot = source.snapshot();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->meta.index, LogIndex{50});

  MemKvEngine engine;
  KvStateMachine target(kGroup, &engine);
  ASSERT_TRUE(target.load().ok());
  ASSERT_TRUE(target.apply({command_entry(1, command(2, 1, CommandOp::kPut, "mine", "1"))}, nullptr)
                  .ok());
  const std::string data(snapshot->data.view());
  auto refused = [&](raft::Snapshot s) {
    base::Status status = target.install(s);
    EXPECT_FALSE(status.ok());
    EXPECT_EQ(target.applied().index, LogIndex{1});
    EXPECT_EQ(**target.get("mine"), "1");
    EXPECT_FALSE(target.get("k1")->has_value());
  };
  raft::Snapshot cut = *snapshot;  // half received
  cut.data = base::Bytes(data.substr(0, data.size() / 2));
  refused(cut);
  raft::Snapshot no_trailer = *snapshot;
  no_trailer.data = base::Bytes(data.substr(0, data.size() - 15));
  refused(no_trailer);
  raft::Snapshot flipped = *snapshot;
  std::string damaged = data;
  damaged[damaged.size() / 2] ^= 0x10;
  flipped.data = base::Bytes(damaged);
  refused(flipped);
  raft::Snapshot wrong_index = *snapshot;
  wrong_index.meta.index = LogIndex{51};
  refused(wrong_index);
  KvStateMachine other_group(GroupId{8}, &engine);
  EXPECT_FALSE(other_group.install(*snapshot).ok());

  ASSERT_TRUE(target.install(*snapshot).ok());
  EXPECT_EQ(target.applied().index, LogIndex{50});
  EXPECT_FALSE(target.get("mine")->has_value());
  EXPECT_EQ(**target.get("k50"), std::string(100, 'x'));
  // Sessions came along: a retry of client 1's last request is deduplicated.
  auto retry = target.apply({command_entry(51, command(1, 50, CommandOp::kPut, "k50", "new"))},
                            nullptr);
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE((*retry)[0].deduplicated);
  EXPECT_EQ(**target.get("k50"), std::string(100, 'x'));
}

}  // namespace
}  // namespace synod::storage

namespace synod::storage {
namespace {

// A WAL with its writer thread and tiny segments, so rotation and deletion
// happen all the time.
std::unique_ptr<Wal> open_rotating_wal(FaultyFileSystem& disk) {
  WalOptions options;
  options.dir = "/t/wal";
  options.segment_bytes_max = 1024;
  auto opened = Wal::open(disk, options, [](const WalRecord&, RecordLocation) {
    return base::Status();
  });
  return opened.ok() ? std::move(*opened) : nullptr;
}

// Readers race the writer thread while it rotates and deletes segments: no
// data race (run under TSAN), and a read of a deleted record fails as
// kCompacted, never as an I/O error (Raft asserts on anything else).
TEST(ReviewWalThreads, ReadsStatsAndSegmentsRaceRotationAndDeletion) {
  FaultyFileSystem disk(3);
  std::unique_ptr<Wal> wal = open_rotating_wal(disk);
  ASSERT_NE(wal, nullptr);
  std::mutex mutex;
  std::vector<RecordLocation> written;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads_ok{0}, reads_compacted{0};
  std::vector<std::string> other_errors;
  std::thread reader([&] {
    uint64_t k = 0;
    while (!done.load()) {
      RecordLocation where;
      {
        std::lock_guard lock(mutex);
        if (written.empty()) continue;
        where = written[k++ % written.size()];
      }
      auto got = wal->read(where);
      if (got.ok()) {
        ++reads_ok;
      } else if (got.code() == base::Errc::kCompacted) {
        ++reads_compacted;
      } else {
        std::lock_guard lock(mutex);
        other_errors.push_back(got.error().to_string());
      }
      (void)wal->stats();
      (void)wal->segments();
    }
  });
  for (uint64_t i = 1; i <= 600; i += 3) {
    WalBatch batch;
    batch.add_entries(kGroup, entries(i, i + 2, 1));
    if (i > 30) {
      batch.add_snapshot(kGroup, SnapshotMeta{LogIndex{i - 30}, Term{1}, three_voters()},
                         SnapshotMode::kCompact);
    }
    WalWriteResult result = wal->write(std::move(batch));
    ASSERT_TRUE(result.status.ok()) << result.status.error().to_string();
    std::lock_guard lock(mutex);
    written.push_back(result.locations.front());
  }
  // On one core the reader may not have run yet: let it read something
  // before it stops (bounded, so a broken reader still ends the test).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (reads_ok.load() == 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  done = true;
  reader.join();
  EXPECT_GT(wal->stats().segments_deleted, 10u);
  EXPECT_GT(reads_ok.load(), 0u);
  EXPECT_TRUE(other_errors.empty()) << other_errors.size() << " reads failed otherwise, first: "
                                    << other_errors.front();
}

// Readers of records above the compaction point never fail, whatever the
// writer thread is rotating or deleting meanwhile (run under TSAN too).
TEST(ReviewWalThreads, ReadsOfLiveRecordsSucceedDuringRotationAndDeletion) {
  FaultyFileSystem disk(4);
  std::unique_ptr<Wal> wal = open_rotating_wal(disk);
  ASSERT_NE(wal, nullptr);
  std::mutex mutex;
  std::optional<std::pair<RecordLocation, uint64_t>> newest;  // location, first index
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads_ok{0};
  std::atomic<uint64_t> compacted_through{0};
  std::vector<std::string> errors;
  std::thread reader([&] {
    while (!done.load()) {
      std::optional<std::pair<RecordLocation, uint64_t>> target;
      {
        std::lock_guard lock(mutex);
        target = newest;
      }
      if (!target) continue;
      auto got = wal->read(target->first);
      std::lock_guard lock(mutex);
      // A reader descheduled long enough may find its record compacted
      // since it picked it: that answer is right, and must be kCompacted.
      const bool compacted_since = target->second + 2 <= compacted_through.load();
      if (!got.ok() && got.error().code() == base::Errc::kCompacted && compacted_since) continue;
      if (!got.ok()) {
        errors.push_back(got.error().to_string());
      } else if (got->type != RecordType::kEntries ||
                 got->entries.front().index != LogIndex{target->second}) {
        errors.push_back("wrong record");
      } else {
        ++reads_ok;
      }
    }
  });
  for (uint64_t i = 1; i <= 600; i += 3) {
    WalBatch batch;
    batch.add_entries(kGroup, entries(i, i + 2, 1));
    if (i > 30) {
      batch.add_snapshot(kGroup, SnapshotMeta{LogIndex{i - 30}, Term{1}, three_voters()},
                         SnapshotMode::kCompact);
    }
    if (i > 30) compacted_through = i - 30;  // before the write: a deletion may follow at once
    WalWriteResult result = wal->write(std::move(batch));
    ASSERT_TRUE(result.status.ok()) << result.status.error().to_string();
    std::lock_guard lock(mutex);
    newest = std::make_pair(result.locations.front(), i);
  }
  done = true;
  reader.join();
  EXPECT_GT(wal->stats().segments_deleted, 10u);
  EXPECT_TRUE(errors.empty()) << errors.size() << " reads failed, first: " << errors.front();
}

}  // namespace
}  // namespace synod::storage
