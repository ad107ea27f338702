// The WAL against real process death: a child process (wal_crash_child.cc)
// appends entries through the WAL with its writer thread and reports every
// acknowledgement; the test SIGKILLs it at random moments, recovers the
// directory itself, and checks the promise the WAL makes to Raft:
//   - every acknowledged entry above the compaction point is replayed, in
//     order, with the content it was written with;
//   - nothing is replayed that was never submitted, and no replayed entry is
//     garbage (contents are a pure function of the index, so each is checked);
//   - snapshot markers and hard states never run ahead of acknowledgements.
// Then the child starts again on the same directory, recovers, and goes on.
//
// What this does not test: SIGKILL ends the process, not the machine, so the
// page cache survives and every write() the child finished is still there.
// Torn tails are therefore rare here (a kill in the middle of one large
// write() can leave one); the count is printed, and zero is a normal result.
// Power loss (unsynced bytes lost, torn sectors, failed fsyncs) is the
// FaultyFileSystem tests' job.
//
// Knobs: SYNOD_WAL_CRASH_ITERATIONS (default 30), SYNOD_WAL_CRASH_SEED
// (default 1; the kill delays and the child's batch sizes follow from it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/posix_file_system.h"
#include "storage/wal.h"
#include "storage/wal_crash_model.h"
#include "support/crash_loop.h"

#ifndef SYNOD_WAL_CRASH_CHILD
#error "SYNOD_WAL_CRASH_CHILD must name the wal_crash_child binary (tests/CMakeLists.txt)"
#endif

namespace synod::storage {
namespace {

using Clock = std::chrono::steady_clock;
using test_support::join_lines;

constexpr uint64_t kSegmentBytes = 64u << 10;
constexpr uint64_t kValueBytesMax = 2000;
constexpr uint64_t kCompactEvery = 500;

// What the child told us in one run (see wal_crash_child.cc for the lines).
struct Reports {
  bool recovered_seen = false;
  uint64_t recovered = 0;
  uint64_t submitted = 0;  // highest "S"
  uint64_t acked = 0;      // highest "A"
  uint64_t ack_lines = 0;
  std::vector<std::string> problems;

  void take_line(std::string_view line) {
    unsigned long long value = 0;
    char kind = 0;
    if (std::sscanf(std::string(line).c_str(), "%c %llu", &kind, &value) != 2) {
      problems.push_back("unreadable report line '" + std::string(line) + "'");
      return;
    }
    switch (kind) {
      case 'R':
        recovered_seen = true;
        recovered = value;
        break;
      case 'S':
        if (value <= submitted) {
          problems.push_back("submissions out of order at " + std::to_string(value));
        }
        submitted = value;
        break;
      case 'A':
        if (value <= acked) {
          problems.push_back("acknowledgements out of order at " + std::to_string(value));
        }
        if (value > submitted) {
          problems.push_back("acknowledged " + std::to_string(value) + " before submitting it");
        }
        acked = value;
        ++ack_lines;
        break;
      default:
        problems.push_back("unknown report line '" + std::string(line) + "'");
    }
  }
};

// Group 1's log as recovery replays it, checked record by record.
struct ReplayedLog {
  uint64_t first = 0;  // 0: no entries replayed
  uint64_t last = 0;
  uint64_t entries = 0;
  uint64_t compacted = 0;  // highest kCompact marker
  bool has_hard_state = false;
  raft::HardState hard_state;
  std::vector<std::string> problems;

  void visit(const WalRecord& record) {
    if (record.group != kCrashGroup) {
      problems.push_back("a record for group " + std::to_string(record.group.value()));
      return;
    }
    switch (record.type) {
      case RecordType::kEntries:
        for (const raft::Entry& entry : record.entries) visit_entry(entry);
        break;
      case RecordType::kSnapshot: {
        if (record.snapshot_mode != SnapshotMode::kCompact) {
          problems.push_back("a kInstall marker");
        }
        const uint64_t index = record.snapshot.index.value();
        if (record.snapshot.term != crash_entry_term(index)) {
          problems.push_back("a snapshot marker at " + std::to_string(index) +
                             " with the wrong term");
        }
        compacted = std::max(compacted, index);
        break;
      }
      case RecordType::kHardState:
        has_hard_state = true;
        hard_state = record.hard_state;
        break;
      case RecordType::kSegmentHeader:
        problems.push_back("a segment header passed to the visitor");
        break;
    }
  }

  void visit_entry(const raft::Entry& entry) {
    const uint64_t index = entry.index.value();
    if (first == 0) {
      first = index;
    } else if (index != last + 1) {
      problems.push_back("entry " + std::to_string(index) + " replayed after entry " +
                         std::to_string(last));
    }
    last = index;
    ++entries;
    if (entry.term != crash_entry_term(index)) {
      problems.push_back("entry " + std::to_string(index) + " has the wrong term");
    }
    if (entry.type != raft::EntryType::kNormal ||
        entry.data.view() != crash_entry_data(index, kValueBytesMax)) {
      problems.push_back("entry " + std::to_string(index) + " has the wrong content (" +
                         std::to_string(entry.data.size()) + " bytes)");
    }
  }
};

TEST(WalCrash, AcknowledgedEntriesSurviveSigkillAtRandomMoments) {
  test_support::CrashLoop loop({.iterations_env = "SYNOD_WAL_CRASH_ITERATIONS",
                                .iterations_default = 30,
                                .seed_env = "SYNOD_WAL_CRASH_SEED",
                                .temp_dir_name = "synod-wal-crash",
                                .kill_delay_us_max = 200'000});
  const uint64_t iterations = loop.iterations();
  const uint64_t seed = loop.seed();
  SCOPED_TRACE(loop.reproduce());
  ASSERT_FALSE(loop.temp_dir().empty()) << "mkdtemp: " << std::strerror(errno);
  const std::string wal_dir = loop.temp_dir() + "/wal";
  const auto started = Clock::now();

  uint64_t acked_max = 0;      // over all runs: must survive every later crash
  uint64_t submitted_max = 0;  // over all runs: nothing beyond may be replayed
  uint64_t ack_lines = 0;
  uint64_t torn_tails = 0;
  uint64_t empty_segments = 0;
  uint64_t killed_before_recovery_reported = 0;
  ReplayedLog last_replay;
  std::vector<uint64_t> segments_after;

  for (uint64_t iteration = 0; iteration < iterations; ++iteration) {
    SCOPED_TRACE("iteration " + std::to_string(iteration));
    Reports reports;
    ASSERT_NO_FATAL_FAILURE(loop.run_until_killed(
        SYNOD_WAL_CRASH_CHILD, wal_dir,
        {"--segment-bytes", std::to_string(kSegmentBytes), "--threads", "3", "--inflight", "8",
         "--batch-entries-max", "8", "--value-bytes-max", std::to_string(kValueBytesMax),
         "--compact-every", std::to_string(kCompactEvery)},
        [&reports](std::string_view line) { reports.take_line(line); }));
    ASSERT_TRUE(reports.problems.empty()) << join_lines(reports.problems);
    if (reports.recovered_seen) {
      // It recovered at least what every earlier run had acknowledged.
      EXPECT_GE(reports.recovered, acked_max);
    } else {
      ++killed_before_recovery_reported;
    }
    acked_max = std::max(acked_max, reports.acked);
    submitted_max = std::max(submitted_max, reports.submitted);
    ack_lines += reports.ack_lines;

    PosixFileSystem files;
    WalOptions options;
    options.dir = wal_dir;
    options.segment_bytes_max = kSegmentBytes;
    options.writer_thread = false;
    options.log = [&](const std::string& line) {
      if (line.find("torn write") != std::string::npos) ++torn_tails;
      if (line.find("empty segment") != std::string::npos) ++empty_segments;
      std::printf("[wal_crash] iteration %llu: %s\n", static_cast<unsigned long long>(iteration),
                  line.c_str());
    };
    ReplayedLog replay;
    base::Result<std::unique_ptr<Wal>> wal =
        Wal::open(files, options, [&replay](const WalRecord& record, RecordLocation) {
          replay.visit(record);
          return base::Status();
        });
    ASSERT_TRUE(wal.ok()) << "recovery after SIGKILL failed: " << wal.error().to_string();
    ASSERT_TRUE(replay.problems.empty()) << join_lines(replay.problems);

    // Every acknowledged entry the compaction point does not cover is there;
    // the entries are consecutive (checked while replaying), so the first and
    // the last one bound them all.
    if (acked_max > replay.compacted) {
      ASSERT_NE(replay.first, 0u) << "no entries replayed; acknowledged up to " << acked_max
                                  << ", compacted to " << replay.compacted;
      ASSERT_LE(replay.first, replay.compacted + 1)
          << "entries " << replay.compacted + 1 << ".." << replay.first - 1
          << " are neither replayed nor compacted";
      ASSERT_GE(replay.last, acked_max) << "acknowledged entries lost";
    }
    ASSERT_LE(replay.last, submitted_max) << "replayed an entry that was never submitted";
    ASSERT_LE(replay.compacted, acked_max) << "a compaction point beyond every acknowledgement";
    if (replay.has_hard_state) {
      const uint64_t commit = replay.hard_state.commit.value();
      ASSERT_LE(commit, acked_max) << "a hard state committing unacknowledged entries";
      ASSERT_EQ(replay.hard_state.term, crash_entry_term(commit));
      ASSERT_EQ(replay.hard_state.vote, raft::NodeId{1});
    }
    last_replay = replay;
    segments_after = (*wal)->segments();
  }

  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf(
      "[wal_crash] %llu iterations in %.1f s (seed %llu): %llu acknowledgements up to index "
      "%llu, submitted up to %llu; last recovery replayed %llu entries (%llu..%llu), "
      "compacted to %llu, %zu segments on disk (oldest %llu); %llu torn tails truncated, "
      "%llu empty segments removed, %llu kills before the child reported recovery\n",
      static_cast<unsigned long long>(iterations), seconds, static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(ack_lines), static_cast<unsigned long long>(acked_max),
      static_cast<unsigned long long>(submitted_max),
      static_cast<unsigned long long>(last_replay.entries),
      static_cast<unsigned long long>(last_replay.first),
      static_cast<unsigned long long>(last_replay.last),
      static_cast<unsigned long long>(last_replay.compacted), segments_after.size(),
      static_cast<unsigned long long>(segments_after.empty() ? 0 : segments_after.front()),
      static_cast<unsigned long long>(torn_tails), static_cast<unsigned long long>(empty_segments),
      static_cast<unsigned long long>(killed_before_recovery_reported));
  if (iterations > 0) {
    EXPECT_GT(acked_max, 0u) << "the child never acknowledged anything";
  }
}

}  // namespace
}  // namespace synod::storage
