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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/rng.h"
#include "storage/posix_file_system.h"
#include "storage/wal.h"

#ifndef SYNOD_WAL_CRASH_CHILD
#error "SYNOD_WAL_CRASH_CHILD must name the wal_crash_child binary (tests/CMakeLists.txt)"
#endif

namespace synod::storage {
namespace {

using Clock = std::chrono::steady_clock;
using raft::GroupId;
using raft::Term;

constexpr GroupId kGroup{1};
constexpr uint64_t kSegmentBytes = 64u << 10;
constexpr uint64_t kValueBytesMax = 2000;
constexpr uint64_t kCompactEvery = 500;
// How long a killed child may take to close its end of the pipe.
constexpr int kChildExitWaitMs = 10'000;

// Must stay identical to the copy in wal_crash_child.cc.
std::string crash_entry_data(uint64_t index, uint64_t value_bytes_max) {
  base::Rng rng(index * 0x9e3779b97f4a7c15ULL ^ 0x5157a11c0ffeeULL);
  const uint64_t length = 1 + rng.uniform(value_bytes_max);
  std::string data(length, '\0');
  for (uint64_t i = 0; i < length; i += 8) {
    const uint64_t word = rng.next();
    std::memcpy(data.data() + i, &word, std::min<uint64_t>(8, length - i));
  }
  return data;
}
Term crash_entry_term(uint64_t index) { return Term{1 + index / 1024}; }

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  return (end != text && *end == '\0') ? value : fallback;
}

// A directory of our own under $TMPDIR (or /tmp), removed with what is in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                          "/synod-wal-crash-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One run of wal_crash_child. Whatever happens to the test (a failed ASSERT
// returns early), the destructor kills and reaps the child, so no writer is
// left behind appending to a directory about to be removed.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    kill_and_reap();
    if (read_fd_ >= 0) ::close(read_fd_);
  }

  // Starts the child; false (with `error` set) if it could not be started.
  bool start(const std::vector<std::string>& args, std::string* error) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      *error = std::string("pipe2: ") + std::strerror(errno);
      return false;
    }
    std::vector<std::string> full = args;
    full.insert(full.begin() + 1, std::to_string(fds[1]));  // <wal_dir> <report_fd> ...
    full.insert(full.begin(), SYNOD_WAL_CRASH_CHILD);
    std::vector<char*> argv;
    for (std::string& arg : full) argv.push_back(arg.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
      *error = std::string("fork: ") + std::strerror(errno);
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::fcntl(fds[1], F_SETFD, 0);  // the report end survives exec
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    pid_ = pid;
    read_fd_ = fds[0];
    return true;
  }

  int report_fd() const { return read_fd_; }

  // SIGKILL (if it still runs) and waitpid; returns the wait status, or -1
  // when there was no child.
  int kill_and_reap() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
};

// What the child told us in one run (see wal_crash_child.cc for the lines).
struct Reports {
  bool recovered_seen = false;
  uint64_t recovered = 0;
  uint64_t submitted = 0;  // highest "S"
  uint64_t acked = 0;      // highest "A"
  uint64_t ack_lines = 0;
  std::vector<std::string> problems;
  std::string partial;

  void take(std::string_view chunk) {
    partial.append(chunk);
    size_t start = 0;
    for (size_t end; (end = partial.find('\n', start)) != std::string::npos; start = end + 1) {
      take_line(std::string_view(partial).substr(start, end - start));
    }
    partial.erase(0, start);
  }

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

// Reads reports until `deadline` (or, with no deadline, until end of file).
// Returns true at end of file: the child is gone.
bool read_reports(int fd, Reports& reports, const Clock::time_point* deadline) {
  char buffer[4096];
  while (true) {
    int timeout_ms = kChildExitWaitMs;
    if (deadline != nullptr) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) return false;
      timeout_ms = static_cast<int>(left.count());
    }
    pollfd poll_fd{fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;  // deadline reached (or a child that will not die)
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return true;
    reports.take(std::string_view(buffer, static_cast<size_t>(got)));
  }
}

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
    if (record.group != kGroup) {
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

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < 20; ++i) out += "\n  " + lines[i];
  if (lines.size() > 20) out += "\n  ... " + std::to_string(lines.size() - 20) + " more";
  return out;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

TEST(WalCrash, AcknowledgedEntriesSurviveSigkillAtRandomMoments) {
  const uint64_t iterations = env_number("SYNOD_WAL_CRASH_ITERATIONS", 30);
  const uint64_t seed = env_number("SYNOD_WAL_CRASH_SEED", 1);
  SCOPED_TRACE("reproduce with SYNOD_WAL_CRASH_SEED=" + std::to_string(seed) +
               " SYNOD_WAL_CRASH_ITERATIONS=" + std::to_string(iterations));
  base::Rng rng(seed);
  TempDir temp;
  ASSERT_FALSE(temp.path().empty()) << "mkdtemp: " << std::strerror(errno);
  const std::string wal_dir = temp.path() + "/wal";
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
    // Mostly mid-stream; one time in five right at start-up, to land inside
    // recovery, segment creation or the first batches.
    const bool early = rng.chance(1, 5);
    const uint64_t delay_us = early ? rng.uniform(5'000) : rng.between(20'000, 200'000);

    Reports reports;
    int wait_status = 0;
    {
      ChildProcess child;
      std::string error;
      ASSERT_TRUE(child.start({wal_dir, "--segment-bytes", std::to_string(kSegmentBytes),
                               "--threads", "3", "--inflight", "8", "--batch-entries-max", "8",
                               "--value-bytes-max", std::to_string(kValueBytesMax),
                               "--compact-every", std::to_string(kCompactEvery), "--seed",
                               std::to_string(rng.next() >> 1), "--parent-pid",
                               std::to_string(::getpid())},
                              &error))
          << error;
      const Clock::time_point deadline = Clock::now() + std::chrono::microseconds(delay_us);
      const bool ended_early = read_reports(child.report_fd(), reports, &deadline);
      wait_status = child.kill_and_reap();
      // Everything the child wrote before it died is still in the pipe.
      if (!ended_early) {
        ASSERT_TRUE(read_reports(child.report_fd(), reports, nullptr))
            << "the killed child's report pipe did not close";
      }
    }
    ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
        << "the child ended by itself (" << describe_wait_status(wait_status)
        << "); its stderr above says why";
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
