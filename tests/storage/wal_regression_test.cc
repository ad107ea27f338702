// Regressions found in the WAL, each a scenario that once lost or refused data.
#include <gtest/gtest.h>

#include "storage/faulty_file_system.h"
#include "storage/wal.h"

namespace synod::storage {
namespace {

using raft::Entry;
using raft::GroupId;
using raft::LogIndex;
using raft::Term;

WalOptions options() {
  WalOptions o;
  o.dir = "/r/wal";
  o.writer_thread = false;
  return o;
}

Entry entry(uint64_t index) {
  return Entry{Term{1}, LogIndex{index}, raft::EntryType::kNormal,
               base::Bytes("entry-" + std::to_string(index))};
}

std::vector<uint64_t> recovered_indexes(FaultyFileSystem& disk) {
  std::vector<uint64_t> out;
  auto wal = Wal::open(disk, options(), [&out](const WalRecord& record, RecordLocation) {
    for (const Entry& e : record.entries) out.push_back(e.index.value());
    return base::Status();
  });
  EXPECT_TRUE(wal.ok()) << wal.error().to_string();
  return out;
}

// A process died after writing records but before their fsync; it restarted,
// recovered them from the page cache, and acknowledged newer records in a new
// segment. Then the power went. The recovered records must have been made
// durable at recovery, or they vanish from under the newer ones (or their
// torn remains sit in a segment that is no longer the last: "corruption").
TEST(WalRegression, RecoveredUnsyncedTailIsSyncedBeforeNewWritesAreAcknowledged) {
  for (bool torn : {false, true}) {
    FaultyFileSystem disk(torn ? 2 : 1);
    {
      auto wal = Wal::open(disk, options(), [](const WalRecord&, RecordLocation) { return base::Status(); });
      ASSERT_TRUE(wal.ok());
      WalBatch first;
      first.add_entries(GroupId{1}, {entry(1), entry(2), entry(3)});
      ASSERT_TRUE((*wal)->write(std::move(first)).status.ok());
    }
    // Entries 4..6 reach the file but not the platter: written without the
    // WAL's fsync, as a process killed between write and fdatasync leaves them.
    {
      std::string unsynced = *disk.contents("/r/wal/0000000000000001.wal");
      const uint64_t synced = *disk.synced_size("/r/wal/0000000000000001.wal");
      ASSERT_EQ(unsynced.size(), synced);
      std::string tail;
      WalRecord record;
      record.type = RecordType::kEntries;
      record.group = GroupId{1};
      record.entries = {entry(4), entry(5), entry(6)};
      encode_wal_record(tail, record);
      auto file = disk.open_writable("/r/wal/0000000000000001.wal", false);
      ASSERT_TRUE(file.ok());
      ASSERT_TRUE((*file)->append(tail).ok());
    }
    // Restart without a power cut: 4..6 are recovered, and 7..9 acknowledged.
    {
      std::vector<uint64_t> seen;
      auto wal = Wal::open(disk, options(), [&seen](const WalRecord& record, RecordLocation) {
        for (const Entry& e : record.entries) seen.push_back(e.index.value());
        return base::Status();
      });
      ASSERT_TRUE(wal.ok());
      ASSERT_EQ(seen, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
      WalBatch next;
      next.add_entries(GroupId{1}, {entry(7), entry(8), entry(9)});
      ASSERT_TRUE((*wal)->write(std::move(next)).status.ok());
    }
    CrashOptions crash;
    crash.keep_some_unsynced = torn;
    crash.garble_torn_tail = torn;
    disk.crash(crash);
    EXPECT_EQ(recovered_indexes(disk), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}))
        << (torn ? "torn" : "clean") << " power cut";
  }
}

}  // namespace
}  // namespace synod::storage
