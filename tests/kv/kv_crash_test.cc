// The KV state machine on RocksDB against real process death: a child
// process (kv_crash_child.cc) applies a deterministic stream of committed
// entries to group 1 and reports its progress; the test SIGKILLs it at random
// moments, opens the database itself, loads the state machine and checks the
// promise kv_state_machine.h makes:
//   - the applied index is written in the same atomic batch as the data it
//     covers, so what the database holds is *exactly* the effect of entries
//     1..A for the applied index A it holds: the test replays 1..A through a
//     KvStateMachine on a MemKvEngine and every key (data, the client dedupe
//     table and the applied state) must be identical. An entry applied twice
//     shows as a doubled APPEND or INCRBY (clientless commands have no dedupe
//     to hide it); a skipped one as a missing one;
//   - retries are answered from the dedupe table, which lives in the engine
//     and so survives the crash with the data (about one entry in eight is a
//     retry, some of them of a request older than the client's latest);
//   - nothing synced is lost: A >= every "D" reported; and, since SIGKILL
//     ends the process but not the machine, nothing RocksDB wrote to its WAL
//     file is lost either: A is the last batch reported applied, or the one
//     the child was applying when it died, never older, never newer;
//   - after the restart the child loads A and continues at A + 1; its first
//     batch redelivers some entries <= A, which apply() must skip;
//   - every answer apply() gave the child (folded into a chain it reports)
//     is the model's answer, so a skipped or doubled entry shows where it
//     happened even if later writes overwrite its effect on the state.
// Each recovery's state also goes through snapshot() and install() into a
// fresh MemKvEngine and must come out identical.
//
// What this does not test: power loss (the page cache survives SIGKILL, so
// unsynced batches are not lost here); the MemKvEngine crash model and the
// engine suite cover losing unsynced batches.
//
// Knobs: SYNOD_KV_CRASH_ITERATIONS (default 25), SYNOD_KV_CRASH_SEED
// (default 1; the kill delays and the child's batch sizes follow from it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/assert.h"
#include "kv/kv_crash_model.h"
#include "node/kv_state_machine.h"
#include "storage/mem_kv_engine.h"
#include "storage/rocks_kv_engine.h"
#include "support/crash_loop.h"

#ifndef SYNOD_KV_CRASH_CHILD
#error "SYNOD_KV_CRASH_CHILD must name the kv_crash_child binary (tests/CMakeLists.txt)"
#endif

namespace synod::node {
namespace {

using Clock = std::chrono::steady_clock;
using kv_crash::chain_answer;
using kv_crash::crash_stream_entry;
using kv_crash::kGroup;
using kv_crash::stream_conf_state;
using kv_crash::stream_term;
using raft::Entry;
using raft::LogIndex;
using storage::MemKvEngine;
using storage::RocksKvEngine;
using storage::RocksKvOptions;
using test_support::join_lines;

constexpr uint64_t kBatchEntriesMax = 20;
constexpr uint64_t kSyncOneIn = 10;
constexpr uint64_t kRedeliverMax = 30;
// Small memtables, so runs flush to SST files and recovery meets both.
constexpr size_t kWriteBufferBytes = 256u << 10;
// The model applies the stream in batches of this many entries (the child's
// batches are 1..20: the result must not depend on the batching).
constexpr uint64_t kModelBatchEntries = 64;

// What the child told us in one run (see kv_crash_child.cc for the lines).
struct Reports {
  bool loaded_seen = false;
  uint64_t loaded = 0;     // "R"
  uint64_t submitted = 0;  // highest "S"
  uint64_t applied = 0;    // highest "A" or "D"
  uint64_t durable = 0;    // highest "D"
  uint64_t applied_lines = 0;
  uint64_t durable_lines = 0;
  // Each "A"/"D" line's index and chain of answers, in order.
  std::vector<std::pair<uint64_t, uint64_t>> chains;
  std::vector<std::string> problems;

  void take_line(std::string_view line) {
    unsigned long long value = 0, chain = 0;
    char kind = 0;
    const int fields =
        std::sscanf(std::string(line).c_str(), "%c %llu %llu", &kind, &value, &chain);
    if (fields != ((kind == 'A' || kind == 'D') ? 3 : 2)) {
      problems.push_back("unreadable report line '" + std::string(line) + "'");
      return;
    }
    if (kind != 'R' && !loaded_seen) {
      problems.push_back("'" + std::string(line) + "' before the load report");
    }
    switch (kind) {
      case 'R':
        if (loaded_seen) problems.push_back("a second load report");
        loaded_seen = true;
        loaded = value;
        break;
      case 'S':
        if (value <= std::max(submitted, loaded)) {
          problems.push_back("batches out of order at " + std::to_string(value));
        }
        if (submitted > applied) {
          problems.push_back("batch " + std::to_string(value) + " started before batch " +
                             std::to_string(submitted) + " was reported applied");
        }
        submitted = value;
        break;
      case 'A':
      case 'D':
        // One batch at a time: each report closes the batch just started.
        if (value != submitted || value <= applied) {
          problems.push_back("'" + std::string(line) + "' does not close batch " +
                             std::to_string(submitted));
        }
        applied = value;
        chains.emplace_back(value, chain);
        if (kind == 'D') {
          durable = value;
          ++durable_lines;
        } else {
          ++applied_lines;
        }
        break;
      default:
        problems.push_back("unknown report line '" + std::string(line) + "'");
    }
  }
};

// Engine keys hold the group number in binary; this prints them readably.
std::string printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  return out;
}

using Contents = std::map<std::string, std::string>;

// Every key of the engine (only group 1's state machine writes to it).
base::Result<Contents> contents_of(const KvEngine& engine) {
  Contents out;
  std::unique_ptr<KvIterator> it = engine.iterate();
  for (it->seek_to_first(); it->valid(); it->next()) {
    out.emplace(std::string(it->key()), std::string(it->value()));
  }
  if (base::Status status = it->status(); !status) return status.error();
  return out;
}

// Each key that differs, as one line (empty: identical).
std::vector<std::string> differences(const Contents& actual, const Contents& expected,
                                     std::string_view actual_name) {
  std::vector<std::string> out;
  auto a = actual.begin();
  auto e = expected.begin();
  while (a != actual.end() || e != expected.end()) {
    if (e == expected.end() || (a != actual.end() && a->first < e->first)) {
      out.push_back(printable(a->first) + ": " + std::string(actual_name) + " has '" +
                    printable(a->second) + "', the model has nothing");
      ++a;
    } else if (a == actual.end() || e->first < a->first) {
      out.push_back(printable(e->first) + ": " + std::string(actual_name) +
                    " has nothing, the model has '" + printable(e->second) + "'");
      ++e;
    } else {
      if (a->second != e->second) {
        out.push_back(printable(a->first) + ": " + std::string(actual_name) + " has '" +
                      printable(a->second) + "', the model has '" + printable(e->second) + "'");
      }
      ++a;
      ++e;
    }
  }
  return out;
}

// What the stream's prefix applied by the model held.
struct StreamCounts {
  uint64_t empty_entries = 0;
  uint64_t commands = 0;
  uint64_t retries_answered = 0;  // same sequence as the client's last request
  uint64_t stale_refused = 0;     // older than the client's last request
  uint64_t error_replies = 0;     // applied, answered with an error
};

// The stream's prefix 1..applied, applied by a KvStateMachine on a
// MemKvEngine in batches unlike the child's; advanced as the database grows.
class Model {
 public:
  Model() : machine_(kGroup, &engine_) {}

  uint64_t applied() const { return machine_.applied().index.value(); }

  // Applies up to `target`, and remembers the chain of answers from here to
  // every index on the way (what a child that loaded `applied()` reports).
  base::Status advance_to(uint64_t target) {
    const raft::ConfState conf = stream_conf_state();
    chain_start_ = applied();
    chains_.clear();
    uint64_t chain = 0;
    std::vector<Entry> entries;
    while (applied() < target) {
      const uint64_t last = std::min(target, applied() + kModelBatchEntries);
      entries.clear();
      for (uint64_t index = applied() + 1; index <= last; ++index) {
        entries.push_back(crash_stream_entry(index));
      }
      base::Result<std::vector<AppliedEntry>> answers =
          machine_.apply(entries, &conf, WriteOptions{.sync = true});
      if (!answers) return answers.error();
      for (const AppliedEntry& answer : *answers) {
        count(answer);
        chain = chain_answer(chain, answer);
        chains_.push_back(chain);
      }
    }
    return {};
  }

  // The chain of answers over entries (start of the last advance, index].
  uint64_t chain_at(uint64_t index) const {
    SYNOD_ASSERT(index > chain_start_ && index - chain_start_ <= chains_.size(),
                 "chain_at outside the last advance");
    return chains_[index - chain_start_ - 1];
  }

  base::Result<Contents> contents() const { return contents_of(engine_); }
  const StreamCounts& counts() const { return counts_; }

 private:
  void count(const AppliedEntry& answer) {
    if (!answer.reply.has_value()) {
      ++counts_.empty_entries;
      return;
    }
    ++counts_.commands;
    const bool error = answer.reply->kind == CommandReply::Kind::kError;
    if (answer.deduplicated) {
      ++(error ? counts_.stale_refused : counts_.retries_answered);
    } else if (error) {
      ++counts_.error_replies;
    }
  }

  MemKvEngine engine_;
  KvStateMachine machine_;
  uint64_t chain_start_ = 0;
  std::vector<uint64_t> chains_;
  StreamCounts counts_;
};

TEST(KvCrash, StateMachineOnRocksDbNeverAppliesTwiceOrSkipsAcrossSigkill) {
  test_support::CrashLoop loop({.iterations_env = "SYNOD_KV_CRASH_ITERATIONS",
                                .iterations_default = 25,
                                .seed_env = "SYNOD_KV_CRASH_SEED",
                                .temp_dir_name = "synod-kv-crash",
                                .kill_delay_us_max = 150'000});
  const uint64_t iterations = loop.iterations();
  const uint64_t seed = loop.seed();
  SCOPED_TRACE(loop.reproduce());
  ASSERT_FALSE(loop.temp_dir().empty()) << "mkdtemp: " << std::strerror(errno);
  const std::string db_dir = loop.temp_dir() + "/db";
  RocksKvOptions rocks_options;
  rocks_options.block_cache_bytes = 8u << 20;
  rocks_options.write_buffer_bytes = kWriteBufferBytes;
  const auto started = Clock::now();

  Model model;
  uint64_t recovered = 0;        // the applied index the last recovery found
  uint64_t durable_max = 0;      // over all runs: must survive every later crash
  uint64_t applied_max = 0;      // over all runs: in the WAL file, survives SIGKILL
  uint64_t applied_lines = 0;
  uint64_t durable_lines = 0;
  uint64_t killed_before_load_reported = 0;
  uint64_t killed_after_write_before_report = 0;
  uint64_t snapshot_bytes_last = 0;
  size_t keys_last = 0;

  for (uint64_t iteration = 0; iteration < iterations; ++iteration) {
    SCOPED_TRACE("iteration " + std::to_string(iteration));
    Reports reports;
    ASSERT_NO_FATAL_FAILURE(loop.run_until_killed(
        SYNOD_KV_CRASH_CHILD, db_dir,
        {"--batch-entries-max", std::to_string(kBatchEntriesMax), "--sync-one-in",
         std::to_string(kSyncOneIn), "--redeliver-max", std::to_string(kRedeliverMax),
         "--write-buffer-bytes", std::to_string(kWriteBufferBytes)},
        [&reports](std::string_view line) { reports.take_line(line); }));
    ASSERT_TRUE(reports.problems.empty()) << join_lines(reports.problems);
    if (reports.loaded_seen) {
      // The child found exactly what the test's own recovery found last time.
      ASSERT_EQ(reports.loaded, recovered) << "the child loaded another applied index";
    } else {
      ++killed_before_load_reported;
    }
    durable_max = std::max(durable_max, reports.durable);
    applied_max = std::max(applied_max, reports.applied);
    applied_lines += reports.applied_lines;
    durable_lines += reports.durable_lines;
    // The last batch the child finished (or, if none, where it started) and
    // the one it had begun when it died, if any.
    const uint64_t last_done = std::max(recovered, reports.applied);
    const uint64_t in_flight = reports.submitted > last_done ? reports.submitted : 0;

    {
      base::Result<std::unique_ptr<RocksKvEngine>> engine =
          RocksKvEngine::open(db_dir, rocks_options);
      ASSERT_TRUE(engine.ok()) << "RocksDB open after SIGKILL failed: "
                               << engine.error().to_string();
      KvStateMachine machine(kGroup, engine->get());
      base::Status loaded = machine.load();
      ASSERT_TRUE(loaded.ok()) << "load after SIGKILL failed: " << loaded.error().to_string();
      const uint64_t applied = machine.applied().index.value();

      ASSERT_GE(applied, durable_max) << "a synced batch was lost";
      ASSERT_GE(applied, applied_max)
          << "a batch RocksDB had written to its WAL file was lost, though only the process died";
      ASSERT_TRUE(applied == last_done || (in_flight != 0 && applied == in_flight))
          << "recovered applied index " << applied << " is neither the last batch reported ("
          << last_done << ") nor the one being applied (" << in_flight << ")";
      if (in_flight != 0 && applied == in_flight) ++killed_after_write_before_report;
      ASSERT_GE(applied, model.applied()) << "the applied index went back";
      const uint64_t recovered_before = recovered;
      recovered = applied;

      // The whole database must be exactly what entries 1..applied make.
      base::Status advanced = model.advance_to(applied);
      ASSERT_TRUE(advanced.ok()) << "the model failed to apply: " << advanced.error().to_string();
      base::Result<Contents> actual = contents_of(**engine);
      ASSERT_TRUE(actual.ok()) << actual.error().to_string();
      base::Result<Contents> expected = model.contents();
      ASSERT_TRUE(expected.ok()) << expected.error().to_string();
      const std::vector<std::string> diff = differences(*actual, *expected, "RocksDB");
      ASSERT_TRUE(diff.empty()) << "after recovery at applied index " << applied << ", "
                                << diff.size() << " keys differ from replaying entries 1.."
                                << applied << ":" << join_lines(diff);
      keys_last = actual->size();

      // Every answer the child got this run is the model's answer: an entry
      // skipped or applied twice anywhere in the run changes the answers
      // from there on, even when later writes hide it in the final state.
      for (const auto& [index, chain] : reports.chains) {
        ASSERT_EQ(chain, model.chain_at(index))
            << "the child's answers to entries " << recovered_before + 1 << ".." << index
            << " differ from the model's (the first batch that differs ends at " << index << ")";
      }

      // And it survives a snapshot round trip unchanged (not at index 0:
      // Raft never sends that snapshot, and installing it writes an applied
      // state the empty database does not have).
      if (applied > 0) {
        base::Result<raft::Snapshot> snapshot = machine.snapshot();
        ASSERT_TRUE(snapshot.ok()) << snapshot.error().to_string();
        ASSERT_EQ(snapshot->meta.index, LogIndex{applied});
        ASSERT_EQ(snapshot->meta.term, stream_term(applied));
        ASSERT_EQ(snapshot->meta.conf_state, stream_conf_state());
        snapshot_bytes_last = snapshot->data.size();
        MemKvEngine installed_engine;
        KvStateMachine installed(kGroup, &installed_engine);
        base::Status installed_status = installed.install(*snapshot);
        ASSERT_TRUE(installed_status.ok()) << installed_status.error().to_string();
        ASSERT_EQ(installed.applied(), machine.applied());
        base::Result<Contents> reinstalled = contents_of(installed_engine);
        ASSERT_TRUE(reinstalled.ok()) << reinstalled.error().to_string();
        const std::vector<std::string> snapshot_diff =
            differences(*reinstalled, *expected, "the installed snapshot");
        ASSERT_TRUE(snapshot_diff.empty()) << join_lines(snapshot_diff);
      }

      base::Status closed = (*engine)->close();
      ASSERT_TRUE(closed.ok()) << closed.error().to_string();
    }
  }

  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf(
      "[kv_crash] %llu iterations in %.1f s (seed %llu): applied up to index %llu (%llu unsynced "
      "and %llu synced batches reported; durable up to %llu); %llu kills between a write and its "
      "report, %llu before the child reported its load; the stream up to there: %llu commands, "
      "%llu empty entries, %llu retries answered from the dedupe table, %llu stale retries "
      "refused, %llu error replies; %zu keys in the database, snapshot %llu bytes\n",
      static_cast<unsigned long long>(iterations), seconds, static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(recovered), static_cast<unsigned long long>(applied_lines),
      static_cast<unsigned long long>(durable_lines),
      static_cast<unsigned long long>(durable_max),
      static_cast<unsigned long long>(killed_after_write_before_report),
      static_cast<unsigned long long>(killed_before_load_reported),
      static_cast<unsigned long long>(model.counts().commands),
      static_cast<unsigned long long>(model.counts().empty_entries),
      static_cast<unsigned long long>(model.counts().retries_answered),
      static_cast<unsigned long long>(model.counts().stale_refused),
      static_cast<unsigned long long>(model.counts().error_replies), keys_last,
      static_cast<unsigned long long>(snapshot_bytes_last));
  if (iterations > 0) {
    EXPECT_GT(durable_max, 0u) << "the child never synced a batch";
    EXPECT_GT(model.counts().retries_answered, 0u) << "no retry reached the dedupe table";
  }
}

}  // namespace
}  // namespace synod::node
