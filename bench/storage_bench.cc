// Storage: what this machine's disk allows, and how much of it the WAL uses.
//
// `BM_RawFdatasync` is the physical limit: one thread appends a small record
// to a file with pwrite and calls fdatasync, in a plain loop. Every append
// grows the file, as the WAL's do, so both pay for the same metadata.
//
// `BM_WalAppend` opens a Wal (PosixFileSystem, writer thread on) in a fresh
// directory and, for a fixed time, keeps `writers` writes going, each a batch
// of one entries record (its own group, consecutive indexes, a payload of
// `bytes`). With event_loop:0 each writer is a thread calling `wal.write()`,
// which returns once the batch is durable; with event_loop:1 there are no
// writer threads: each completion submits that writer's next batch, as the
// server's event loop will (this is the figure that matters for Synod; the
// threaded one also measures how a 2-core machine schedules 64 threads). Group commit should make records per fsync grow with the
// number of writers while fsyncs per second stay near the raw loop's.
//
// Counters (rates are per second of wall time of the timed window):
//   fsyncs_per_second        fdatasyncs issued (raw loop, or the WAL's stats)
//   appends_per_second       WAL writes acknowledged durable
//   records_per_fsync        WAL records per fdatasync (one record per write)
//   payload_MB_per_second    entry payload bytes made durable, 10^6 bytes
//   wal_MB_per_second        framed record bytes written by the WAL
//   fsync_ratio_vs_raw       WAL fsyncs/s over the raw loop's fsyncs/s for
//                            the same record size, measured once at start-up
//                            in this process (goal: >= 0.9)
//   raw_after_fsyncs_per_second
//                            a short raw loop run right after the WAL run,
//                            writing the WAL's mean bytes per fsync: the
//                            limit for what the WAL asked of the disk, taken
//                            close in time (a shared disk drifts)
//   fsync_ratio_vs_raw_after WAL fsyncs/s over that
//   latency_us_p50/p99       per write(), submit to durable
//   cpu_us_per_append        process CPU time (user + system) per append
//
// Where: `$SYNOD_BENCH_DIR` if set, else the repository's build/ directory
// if it exists, else /var/tmp (never /tmp, which may be tmpfs). A mkdtemp
// directory is made there and removed at exit; the label of every result
// names the directory and its filesystem.
//
//   ./build/bench/storage_bench
//   SYNOD_BENCH_DIR=/mnt/nvme ./build/bench/storage_bench --benchmark_filter=Wal
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/assert.h"
#include "storage/posix_file_system.h"
#include "storage/wal.h"

namespace synod::storage {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kRawSecondsPerRun = 2.0;
constexpr double kWalSecondsPerRun = 2.0;
constexpr double kCalibrationSeconds = 1.0;
constexpr double kRawAfterSeconds = 0.5;
constexpr size_t kSmallRecordBytes = 64;
constexpr size_t kLargeRecordBytes = 1024;

// Set once in main before any benchmark runs, read-only afterwards.
struct BenchEnvironment {
  std::string root_dir;     // the mkdtemp directory all runs work under
  std::string description;  // "<dir> on <fstype> (<device>)"
  double raw_fsyncs_per_second_small = 0;
  double raw_fsyncs_per_second_large = 0;
  uint64_t next_run = 0;
};

BenchEnvironment& environment() {
  static BenchEnvironment env;
  return env;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::string filesystem_type_name(int64_t magic) {
  switch (static_cast<uint64_t>(magic)) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlayfs";
    case 0x2FC12FC1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x6969: return "nfs";
    case 0x65735546: return "fuse";
    default: {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(magic));
      return hex;
    }
  }
}

// The mount (fstype and source) holding `dir`, from /proc/self/mountinfo:
// the entry with `dir`'s device number and the longest mount point that is a
// prefix of `dir`.
std::string mount_of(const std::string& dir) {
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0) return "?";
  const std::string device =
      std::to_string(major(info.st_dev)) + ":" + std::to_string(minor(info.st_dev));
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  std::string best;
  size_t best_length = 0;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, numbers, root, mount_point;
    fields >> id >> parent >> numbers >> root >> mount_point;
    if (numbers != device) continue;
    if (dir.compare(0, mount_point.size(), mount_point) != 0) continue;
    if (mount_point.size() < best_length && !best.empty()) continue;
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype, source;
    tail >> fstype >> source;
    best = fstype + " " + source + " mounted on " + mount_point;
    best_length = mount_point.size();
  }
  return best.empty() ? "mount unknown" : best;
}

std::string describe_directory(const std::string& dir) {
  struct statfs fs {};
  std::string type = "?";
  if (::statfs(dir.c_str(), &fs) == 0) type = filesystem_type_name(fs.f_type);
  return dir + " on " + type + " (" + mount_of(dir) + ")";
}

std::string choose_base_directory() {
  if (const char* chosen = std::getenv("SYNOD_BENCH_DIR"); chosen != nullptr && *chosen != 0) {
    return chosen;
  }
  // The repository root is two levels above this file.
  const std::filesystem::path source(__FILE__);
  const std::filesystem::path build = source.parent_path().parent_path() / "build";
  std::error_code error;
  if (source.is_absolute() && std::filesystem::is_directory(build, error)) return build.string();
  return "/var/tmp";
}

// A fresh directory for one run, under the bench root.
std::string fresh_run_directory(const std::string& what) {
  BenchEnvironment& env = environment();
  const std::string dir = env.root_dir + "/" + what + "-" + std::to_string(env.next_run++);
  std::filesystem::create_directories(dir);
  return dir;
}

void remove_directory(const std::string& dir) {
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  if (error) std::fprintf(stderr, "storage_bench: could not remove %s: %s\n", dir.c_str(),
                          error.message().c_str());
}

struct RawResult {
  uint64_t syncs = 0;
  double seconds = 0;
};

// pwrite `record_bytes` at the end of a new file, then fdatasync, until
// `duration_seconds` have passed.
RawResult raw_fdatasync_loop(size_t record_bytes, double duration_seconds) {
  const std::string dir = fresh_run_directory("raw");
  const std::string path = dir + "/raw.log";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SYNOD_ASSERT(fd >= 0, "the raw benchmark file must open");
  const std::string record(record_bytes, 'r');
  RawResult result;
  off_t offset = 0;
  const Clock::time_point start = Clock::now();
  while (seconds_since(start) < duration_seconds) {
    const ssize_t written = ::pwrite(fd, record.data(), record.size(), offset);
    SYNOD_ASSERT(written == static_cast<ssize_t>(record.size()), "raw pwrite must write whole");
    offset += written;
    SYNOD_ASSERT(::fdatasync(fd) == 0, "raw fdatasync must succeed");
    ++result.syncs;
  }
  result.seconds = seconds_since(start);
  ::close(fd);
  remove_directory(dir);
  return result;
}

double raw_rate_for(size_t record_bytes) {
  const BenchEnvironment& env = environment();
  return record_bytes <= kSmallRecordBytes ? env.raw_fsyncs_per_second_small
                                           : env.raw_fsyncs_per_second_large;
}

void BM_RawFdatasync(benchmark::State& state) {
  const size_t record_bytes = static_cast<size_t>(state.range(0));
  RawResult result;
  for (auto _ : state) {
    result = raw_fdatasync_loop(record_bytes, kRawSecondsPerRun);
    state.SetIterationTime(result.seconds);
  }
  const double rate = static_cast<double>(result.syncs) / result.seconds;
  state.SetItemsProcessed(static_cast<int64_t>(result.syncs));
  state.counters["fsyncs_per_second"] = rate;
  state.counters["MB_per_second"] = rate * static_cast<double>(record_bytes) / 1e6;
  state.counters["latency_us_mean"] = 1e6 / rate;
  state.SetLabel(environment().description);
}

// One writer thread's loop: its own group, consecutive indexes from 1.
struct WriterTally {
  uint64_t appends = 0;
  std::vector<double> latencies_us;
};

// `deadline` is written before `go` is set and read only after.
void run_writer(Wal& wal, uint64_t group, size_t payload_bytes, const std::atomic<bool>& go,
                const Clock::time_point& deadline, WriterTally* tally) {
  const base::Bytes payload(std::string(payload_bytes, static_cast<char>('a' + group % 26)));
  tally->latencies_us.reserve(1 << 16);
  while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
  uint64_t index = 1;
  while (Clock::now() < deadline) {
    std::vector<raft::Entry> entries(1);
    entries[0].term = raft::Term{1};
    entries[0].index = raft::LogIndex{index};
    entries[0].data = payload;
    WalBatch batch;
    batch.add_entries(raft::GroupId{group}, std::move(entries));
    const Clock::time_point start = Clock::now();
    const WalWriteResult result = wal.write(std::move(batch));
    tally->latencies_us.push_back(seconds_since(start) * 1e6);
    SYNOD_ASSERT(result.status.ok(), "a WAL write on a healthy disk must succeed");
    SYNOD_ASSERT(result.locations.size() == 1, "one record per batch");
    ++tally->appends;
    ++index;
  }
}

// An event loop's way to use the WAL (what the server does): no thread per
// writer; `in_flight` writes are kept submitted, and each completion (on the
// WAL's writer thread) submits that slot's next write at once.
void run_in_flight(Wal& wal, size_t in_flight, size_t payload_bytes,
                   const Clock::time_point& deadline, std::vector<WriterTally>* tallies) {
  struct Slot {
    uint64_t group = 0;
    uint64_t index = 1;
    Clock::time_point submitted;
  };
  const base::Bytes payload(std::string(payload_bytes, 'p'));
  std::vector<Slot> slots(in_flight);
  std::mutex mutex;
  std::condition_variable drained;
  size_t outstanding = in_flight;
  std::function<void(size_t)> submit_next = [&](size_t k) {
    Slot& slot = slots[k];
    std::vector<raft::Entry> entries(1);
    entries[0].term = raft::Term{1};
    entries[0].index = raft::LogIndex{slot.index};
    entries[0].data = payload;
    WalBatch batch;
    batch.add_entries(raft::GroupId{slot.group}, std::move(entries));
    slot.submitted = Clock::now();
    wal.submit(std::move(batch), [&, k](WalWriteResult result) {
      SYNOD_ASSERT(result.status.ok(), "a WAL write on a healthy disk must succeed");
      WriterTally& tally = (*tallies)[k];
      tally.latencies_us.push_back(seconds_since(slots[k].submitted) * 1e6);
      ++tally.appends;
      ++slots[k].index;
      if (Clock::now() < deadline) {
        submit_next(k);
        return;
      }
      std::lock_guard lock(mutex);
      if (--outstanding == 0) drained.notify_one();
    });
  };
  for (size_t k = 0; k < in_flight; ++k) {
    slots[k].group = k + 1;
    (*tallies)[k].latencies_us.reserve(1 << 16);
  }
  for (size_t k = 0; k < in_flight; ++k) submit_next(k);
  std::unique_lock lock(mutex);
  drained.wait(lock, [&] { return outstanding == 0; });
}

double percentile(std::vector<double>& values, double fraction) {
  if (values.empty()) return 0;
  const size_t k = std::min(values.size() - 1, static_cast<size_t>(fraction * values.size()));
  std::nth_element(values.begin(), values.begin() + static_cast<ptrdiff_t>(k), values.end());
  return values[k];
}

void BM_WalAppend(benchmark::State& state) {
  const size_t writers = static_cast<size_t>(state.range(0));
  const size_t payload_bytes = static_cast<size_t>(state.range(1));
  const bool event_loop = state.range(2) == 1;
  uint64_t appends = 0;
  WalStats delta;
  double seconds = 0;
  double cpu_seconds = 0;
  double raw_after_rate = 0;
  std::vector<double> latencies_us;
  for (auto _ : state) {
    const std::string dir = fresh_run_directory("wal");
    PosixFileSystem files;
    WalOptions options;
    options.dir = dir;
    options.writer_thread = true;
    auto opened = Wal::open(files, options, [](const WalRecord&, RecordLocation) {
      return base::Status();
    });
    SYNOD_ASSERT(opened.ok(), "the benchmark WAL must open");
    std::unique_ptr<Wal> wal = std::move(opened).value();

    std::vector<WriterTally> tallies(writers);
    std::vector<std::thread> threads;
    std::atomic<bool> go{false};
    Clock::time_point deadline;
    for (size_t t = 0; t < writers && !event_loop; ++t) {
      threads.emplace_back(run_writer, std::ref(*wal), t + 1, payload_bytes, std::cref(go),
                           std::cref(deadline), &tallies[t]);
    }
    const WalStats before = wal->stats();
    const double cpu_before = process_cpu_seconds();
    const Clock::time_point start = Clock::now();
    deadline = start + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(kWalSecondsPerRun));
    go.store(true, std::memory_order_release);
    if (event_loop) run_in_flight(*wal, writers, payload_bytes, deadline, &tallies);
    for (std::thread& thread : threads) thread.join();
    seconds = seconds_since(start);
    cpu_seconds = process_cpu_seconds() - cpu_before;
    const WalStats after = wal->stats();
    state.SetIterationTime(seconds);

    delta.syncs = after.syncs - before.syncs;
    delta.records = after.records - before.records;
    delta.bytes = after.bytes - before.bytes;
    delta.batches = after.batches - before.batches;
    appends = 0;
    latencies_us.clear();
    for (WriterTally& tally : tallies) {
      appends += tally.appends;
      latencies_us.insert(latencies_us.end(), tally.latencies_us.begin(),
                          tally.latencies_us.end());
    }
    SYNOD_ASSERT(delta.records == appends, "every acknowledged write is one record synced");
    wal.reset();
    remove_directory(dir);

    const size_t bytes_per_sync = static_cast<size_t>(
        delta.bytes / std::max<uint64_t>(delta.syncs, 1));
    const RawResult raw = raw_fdatasync_loop(std::max<size_t>(bytes_per_sync, 1), kRawAfterSeconds);
    raw_after_rate = static_cast<double>(raw.syncs) / raw.seconds;
  }
  const double fsyncs_per_second = static_cast<double>(delta.syncs) / seconds;
  state.SetItemsProcessed(static_cast<int64_t>(appends));
  state.counters["appends_per_second"] = static_cast<double>(appends) / seconds;
  state.counters["fsyncs_per_second"] = fsyncs_per_second;
  state.counters["records_per_fsync"] =
      static_cast<double>(delta.records) / static_cast<double>(std::max<uint64_t>(delta.syncs, 1));
  state.counters["payload_MB_per_second"] =
      static_cast<double>(appends * payload_bytes) / seconds / 1e6;
  state.counters["wal_MB_per_second"] = static_cast<double>(delta.bytes) / seconds / 1e6;
  state.counters["fsync_ratio_vs_raw"] = fsyncs_per_second / raw_rate_for(payload_bytes);
  state.counters["raw_after_fsyncs_per_second"] = raw_after_rate;
  state.counters["fsync_ratio_vs_raw_after"] = fsyncs_per_second / raw_after_rate;
  state.counters["latency_us_p50"] = percentile(latencies_us, 0.50);
  state.counters["latency_us_p99"] = percentile(latencies_us, 0.99);
  state.counters["cpu_us_per_append"] =
      cpu_seconds * 1e6 / static_cast<double>(std::max<uint64_t>(appends, 1));
  state.SetLabel(environment().description);
}

BENCHMARK(BM_RawFdatasync)
    ->ArgName("bytes")
    ->Arg(kSmallRecordBytes)
    ->Arg(kLargeRecordBytes)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_WalAppend)
    ->ArgNames({"writers", "bytes", "event_loop"})
    ->ArgsProduct({{1, 16, 64}, {kSmallRecordBytes, kLargeRecordBytes}, {0, 1}})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace synod::storage

int main(int argc, char** argv) {
  using namespace synod::storage;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  BenchEnvironment& env = environment();
  std::string base = choose_base_directory();
  std::string pattern = base + "/synod-storage-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "storage_bench: mkdtemp under %s failed: %s (set SYNOD_BENCH_DIR)\n",
                 base.c_str(), std::strerror(errno));
    return 1;
  }
  env.root_dir = pattern;
  env.description = describe_directory(env.root_dir);
  benchmark::AddCustomContext("bench_dir", env.description);

  // The physical limit the WAL is compared with, per record size.
  const RawResult small = raw_fdatasync_loop(kSmallRecordBytes, kCalibrationSeconds);
  const RawResult large = raw_fdatasync_loop(kLargeRecordBytes, kCalibrationSeconds);
  env.raw_fsyncs_per_second_small = static_cast<double>(small.syncs) / small.seconds;
  env.raw_fsyncs_per_second_large = static_cast<double>(large.syncs) / large.seconds;
  char line[128];
  std::snprintf(line, sizeof line, "%.0f fsyncs/s at %zu B, %.0f at %zu B",
                env.raw_fsyncs_per_second_small, kSmallRecordBytes,
                env.raw_fsyncs_per_second_large, kLargeRecordBytes);
  benchmark::AddCustomContext("raw_fdatasync_calibration", line);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  remove_directory(env.root_dir);
  return 0;
}
