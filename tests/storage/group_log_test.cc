// GroupLog: raft::Storage over the WAL, with a bounded cache of entries.
#include <gtest/gtest.h>

#include "storage/faulty_file_system.h"
#include "support/log_entries.h"
#include "storage/group_log.h"

namespace synod::storage {
namespace {

using raft::ConfState;
using raft::Entry;
using raft::GroupId;
using raft::HardState;
using raft::LogIndex;
using raft::NodeId;
using raft::SnapshotMeta;
using raft::Term;

constexpr GroupId kGroup{3};

Entry entry(uint64_t index, uint64_t term, size_t bytes = 100) {
  return test_support::numbered_entry(index, term, bytes);
}

std::vector<Entry> entries(uint64_t from, uint64_t to, uint64_t term, size_t bytes = 100) {
  return test_support::numbered_entries(from, to, term, bytes);
}

class GroupLogTest : public ::testing::Test {
 protected:
  WalOptions options() {
    WalOptions o;
    o.dir = "/n/wal";
    o.writer_thread = false;
    o.segment_bytes_max = 8192;
    return o;
  }
  void open(uint64_t cache_bytes = 1024) {
    log_.reset();
    auto opened = DurableLog::open(disk_, options(), GroupLogOptions{cache_bytes});
    ASSERT_TRUE(opened.ok()) << opened.error().to_string();
    log_ = std::move(*opened);
  }
  void write_entries(std::vector<Entry> list) {
    WalBatch batch;
    batch.add_entries(kGroup, std::move(list));
    ASSERT_TRUE(log_->write(batch).ok());
  }
  void write_marker(uint64_t index, uint64_t term, SnapshotMode mode) {
    WalBatch batch;
    ConfState conf;
    conf.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
    batch.add_snapshot(kGroup, SnapshotMeta{LogIndex{index}, Term{term}, conf}, mode);
    ASSERT_TRUE(log_->write(batch).ok());
  }
  GroupLog& group() { return log_->group(kGroup); }

  FaultyFileSystem disk_{5};
  std::unique_ptr<DurableLog> log_;
};

TEST_F(GroupLogTest, OldEntriesAreReadBackFromTheWalBeyondTheCache) {
  open(/*cache_bytes=*/2000);
  for (uint64_t i = 1; i <= 200; i += 10) write_entries(entries(i, i + 9, 1));
  EXPECT_LT(group().cached_bytes(), 2001u);
  EXPECT_LT(group().cached_entries(), 200u);
  auto all = group().entries(LogIndex{1}, LogIndex{201}, UINT64_MAX);
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  ASSERT_EQ(all->size(), 200u);
  for (uint64_t i = 1; i <= 200; ++i) EXPECT_EQ((*all)[i - 1], entry(i, 1)) << i;
  EXPECT_GT(group().records_read(), 0u) << "nothing was read back: the cache was not bounded";
  // Each record is read once for its run of entries, not once per entry.
  EXPECT_LE(group().records_read(), 20u);
}

TEST_F(GroupLogTest, SizeLimitReturnsAtLeastOneEntry) {
  open();
  write_entries(entries(1, 10, 1, 500));
  auto some = group().entries(LogIndex{1}, LogIndex{11}, 1);
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->size(), 1u);
  auto more = group().entries(LogIndex{1}, LogIndex{11}, 1600);
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->size(), 3u);
}

TEST_F(GroupLogTest, ConflictingSuffixIsReplacedAndStaysReplacedAfterRestart) {
  open();
  write_entries(entries(1, 10, 1));
  write_entries(entries(6, 8, 2));
  EXPECT_EQ(group().last_index(), LogIndex{8});
  EXPECT_EQ(*group().term(LogIndex{5}), Term{1});
  EXPECT_EQ(*group().term(LogIndex{6}), Term{2});
  open();
  EXPECT_EQ(group().last_index(), LogIndex{8});
  EXPECT_EQ(*group().term(LogIndex{8}), Term{2});
  auto got = group().entries(LogIndex{5}, LogIndex{9}, UINT64_MAX);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0], entry(5, 1));
  EXPECT_EQ((*got)[1], entry(6, 2));
}

TEST_F(GroupLogTest, CompactionAndInstallMarkers) {
  open();
  write_entries(entries(1, 30, 1));
  write_marker(20, 1, SnapshotMode::kCompact);
  EXPECT_EQ(group().first_index(), LogIndex{21});
  EXPECT_EQ(group().last_index(), LogIndex{30});
  EXPECT_EQ(*group().term(LogIndex{20}), Term{1});
  EXPECT_EQ(group().term(LogIndex{19}).code(), base::Errc::kCompacted);
  EXPECT_EQ(group().entries(LogIndex{20}, LogIndex{25}, UINT64_MAX).code(), base::Errc::kCompacted);
  EXPECT_EQ(group().entries(LogIndex{21}, LogIndex{32}, UINT64_MAX).code(), base::Errc::kUnavailable);

  // A snapshot from a leader replaces the whole log, even entries past it.
  write_marker(25, 3, SnapshotMode::kInstall);
  EXPECT_EQ(group().first_index(), LogIndex{26});
  EXPECT_EQ(group().last_index(), LogIndex{25});
  write_entries(entries(26, 27, 3));
  open();
  EXPECT_EQ(group().snapshot_meta().index, LogIndex{25});
  EXPECT_EQ(group().snapshot_meta().conf_state.voters.size(), 3u);
  EXPECT_EQ(group().first_index(), LogIndex{26});
  EXPECT_EQ(group().last_index(), LogIndex{27});
  EXPECT_EQ(*group().term(LogIndex{26}), Term{3});
}

TEST_F(GroupLogTest, SegmentsBelowTheCompactionPointAreDeletedAndRecoveryStillWorks) {
  open();
  for (uint64_t i = 1; i <= 400; i += 20) write_entries(entries(i, i + 19, 1));
  WalBatch hard;
  hard.add_hard_state(kGroup, HardState{Term{1}, NodeId{2}, LogIndex{400}});
  ASSERT_TRUE(log_->write(hard).ok());
  const size_t segments_before = log_->wal().segments().size();
  ASSERT_GT(segments_before, 4u);
  write_marker(350, 1, SnapshotMode::kCompact);
  const size_t segments_after = log_->wal().segments().size();
  EXPECT_LT(segments_after, segments_before);
  // Entries after the compaction point are still readable, from disk too.
  auto kept = group().entries(LogIndex{351}, LogIndex{401}, UINT64_MAX);
  ASSERT_TRUE(kept.ok()) << kept.error().to_string();
  EXPECT_EQ(kept->size(), 50u);

  open();
  EXPECT_EQ(group().first_index(), LogIndex{351});
  EXPECT_EQ(group().last_index(), LogIndex{400});
  EXPECT_EQ(group().hard_state(), (HardState{Term{1}, NodeId{2}, LogIndex{400}}));
  auto again = group().entries(LogIndex{351}, LogIndex{401}, UINT64_MAX);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  for (uint64_t i = 351; i <= 400; ++i) EXPECT_EQ((*again)[i - 351], entry(i, 1));
}

TEST_F(GroupLogTest, MissingSegmentIsReportedNotPapered) {
  open();
  for (uint64_t i = 1; i <= 300; i += 20) write_entries(entries(i, i + 19, 1));
  const std::vector<uint64_t> segments = log_->wal().segments();
  ASSERT_GT(segments.size(), 3u);
  const std::string first = log_->wal().segment_path(segments.front());
  log_.reset();
  // The oldest segment vanishes: no marker covers its entries.
  ASSERT_TRUE(disk_.remove(first).ok());
  auto reopened = DurableLog::open(disk_, options());
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.error().code(), base::Errc::kCorruption);
  EXPECT_NE(reopened.error().message().find("missing"), std::string::npos)
      << reopened.error().message();
}

TEST_F(GroupLogTest, EntriesLeavingAGapAreRefusedOnceRecovered) {
  open();
  write_entries(entries(1, 5, 1));
  WalBatch batch;
  batch.add_entries(kGroup, entries(8, 9, 1));
  base::Status status = log_->write(batch);
  EXPECT_EQ(status.code(), base::Errc::kInvalidArgument);
  EXPECT_EQ(group().last_index(), LogIndex{5});
  // Nothing reached the disk: the node still starts.
  open();
  EXPECT_EQ(group().last_index(), LogIndex{5});
}

}  // namespace
}  // namespace synod::storage

namespace synod::storage {
namespace {

// Found by the simulator (synod sim --seed 3 --duration 60, and seeds 20,
// 58): a crash tore a batch after its snapshot install marker, so the hard
// state written with it was lost and the older one on disk said commit 2
// with the log starting at 372. Raft refused to start. A snapshot holds only
// committed entries, so its index is a floor for the commit index.
TEST_F(GroupLogTest, SnapshotMarkerIsAFloorForTheCommitIndexWhenItsHardStateWasLost) {
  open();
  WalBatch old_state;
  old_state.add_hard_state(kGroup, HardState{Term{2}, NodeId{1}, LogIndex{2}});
  ASSERT_TRUE(log_->write(old_state).ok());
  write_marker(371, 3, SnapshotMode::kInstall);  // its hard state never made it
  open();
  auto initial = group().initial_state();
  ASSERT_TRUE(initial.ok());
  EXPECT_EQ(initial->hard_state.commit, LogIndex{371});
  EXPECT_EQ(initial->hard_state.term, Term{2});
  // A hard state written later with a stale commit does not lower it either.
  WalBatch stale;
  stale.add_hard_state(kGroup, HardState{Term{3}, NodeId{1}, LogIndex{5}});
  ASSERT_TRUE(log_->write(stale).ok());
  EXPECT_EQ(group().hard_state().commit, LogIndex{371});
  write_marker(380, 3, SnapshotMode::kInstall);
  EXPECT_EQ(group().hard_state().commit, LogIndex{380});
}

}  // namespace
}  // namespace synod::storage
