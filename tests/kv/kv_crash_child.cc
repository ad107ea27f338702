// The process that kv_crash_test.cc kills: it opens a RocksDB database,
// loads group 1's KvStateMachine from it, and then applies a deterministic
// stream of committed entries forever, reporting its progress to its parent.
//
//   kv_crash_child <db_dir> <report_fd> [--batch-entries-max N]
//                  [--sync-one-in N] [--redeliver-max N]
//                  [--write-buffer-bytes N] [--seed N] [--parent-pid N]
//
// Lines written to <report_fd>, each with one write() under PIPE_BUF bytes so
// a kill never leaves half a line:
//   "R <index>"  load() finished; the applied index found in the database;
//   "S <index>"  a batch ending at <index> is about to be applied (written
//                before apply(), so the parent's bound on what the database
//                may hold is never too low);
//   "A <index> <chain>"  applied up to <index> without sync: in RocksDB's
//                WAL file (so it survives the death of this process), not
//                fsynced;
//   "D <index> <chain>"  applied up to <index> with sync: durable.
// <chain> is `chain_answer` folded over apply()'s answers to the entries
// this run applied (loaded + 1 .. <index>), in order, starting from 0.
//
// Entry i of the stream is a pure function of i (`crash_stream_entry` in
// kv_crash_model.h, which the test replays too), so the parent can rebuild
// what any prefix of it must produce. The first batch of every run starts up to
// --redeliver-max entries *below* the loaded applied index, as Raft does when
// it redelivers committed entries after a restart; apply() must skip those,
// and this process checks that it answered none of them and answered every
// new entry that carries a command.
//
// It exits by itself only when something is wrong: 2 when opening or loading
// fails, 3 when applying or reporting fails or apply() answers wrongly, 64 on
// bad arguments; the message goes to stderr. It also dies with its parent
// (PR_SET_PDEATHSIG).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/rng.h"
#include "kv/kv_crash_model.h"
#include "node/kv_state_machine.h"
#include "storage/rocks_kv_engine.h"
#include "support/crash_child.h"

namespace synod::node {
namespace {

using kv_crash::chain_answer;
using kv_crash::crash_stream_entry;
using kv_crash::kGroup;
using kv_crash::stream_conf_state;
using raft::Entry;
using raft::LogIndex;
using test_support::ChildExit;
using test_support::CrashChild;

// Set from the command line; the defaults are what kv_crash_test.cc passes.
struct Options {
  uint64_t batch_entries_max = 20;
  uint64_t sync_one_in = 10;
  uint64_t redeliver_max = 30;
  uint64_t write_buffer_bytes = 256u << 10;
};

// Applies the stream from `applied + 1` on, in batches, forever.
[[noreturn]] void apply_forever(const CrashChild& child, KvStateMachine& machine,
                                const Options& options) {
  const uint64_t loaded = machine.applied().index.value();
  base::Rng rng(child.seed() ^ (loaded * 0x9e3779b97f4a7c15ULL));
  const raft::ConfState conf = stream_conf_state();
  // The first batch redelivers some entries that are applied already.
  uint64_t from = loaded + 1 - rng.uniform(std::min(loaded, options.redeliver_max) + 1);
  uint64_t next = loaded + 1;
  uint64_t chain = 0;  // chain_answer over entries loaded + 1 .. next - 1
  std::vector<Entry> entries;
  while (true) {
    const uint64_t last = next + rng.between(1, options.batch_entries_max) - 1;
    entries.clear();
    for (uint64_t index = from; index <= last; ++index) {
      entries.push_back(crash_stream_entry(index));
    }
    const bool sync = rng.chance(1, options.sync_one_in);
    child.report('S', last);
    base::Result<std::vector<AppliedEntry>> applied =
        machine.apply(entries, &conf, WriteOptions{.sync = sync});
    if (!applied) child.die(ChildExit::kWorkFailed, "apply failed: " + applied.error().to_string());
    if (applied->size() != entries.size()) {
      child.die(ChildExit::kWorkFailed, "apply answered a different number of entries");
    }
    for (size_t k = 0; k < entries.size(); ++k) {
      const AppliedEntry& answer = (*applied)[k];
      const uint64_t index = answer.index.value();
      if (answer.index != entries[k].index) {
        child.die(ChildExit::kWorkFailed, "apply answered out of order");
      }
      if (index < next) {
        // Redelivered: applied before this run, so it must change nothing.
        if (answer.reply.has_value() || answer.deduplicated) {
          child.die(ChildExit::kWorkFailed,
                    "apply answered entry " + std::to_string(index) +
                        ", which was applied before this run (applied index " +
                        std::to_string(loaded) + ")");
        }
        continue;
      }
      if (answer.reply.has_value() == entries[k].data.empty()) {
        child.die(ChildExit::kWorkFailed,
                  "apply " + std::string(entries[k].data.empty() ? "answered" : "skipped") +
                      " entry " + std::to_string(index) + ", which carries " +
                      (entries[k].data.empty() ? "no command" : "a command"));
      }
      chain = chain_answer(chain, answer);
    }
    if (machine.applied().index != LogIndex{last}) {
      child.die(ChildExit::kWorkFailed, "applied index " +
                                            std::to_string(machine.applied().index.value()) +
                                            " after applying up to " + std::to_string(last));
    }
    child.report(sync ? 'D' : 'A', last, chain);
    from = next = last + 1;
  }
}

int run(int argc, char** argv) {
  Options options;
  const CrashChild child("kv_crash_child", argc, argv,
                         {{"--batch-entries-max", &options.batch_entries_max, 1, 4096},
                          {"--sync-one-in", &options.sync_one_in, 1},
                          {"--redeliver-max", &options.redeliver_max, 0, 4096},
                          {"--write-buffer-bytes", &options.write_buffer_bytes}});

  storage::RocksKvOptions rocks_options;
  rocks_options.block_cache_bytes = 8u << 20;
  rocks_options.write_buffer_bytes = options.write_buffer_bytes;
  base::Result<std::unique_ptr<storage::RocksKvEngine>> engine =
      storage::RocksKvEngine::open(child.dir(), rocks_options);
  if (!engine) child.die(ChildExit::kRecoveryFailed, "open failed: " + engine.error().to_string());
  KvStateMachine machine(kGroup, engine->get());
  if (base::Status status = machine.load(); !status) {
    child.die(ChildExit::kRecoveryFailed, "load failed: " + status.error().to_string());
  }
  child.report('R', machine.applied().index.value());
  apply_forever(child, machine, options);
}

}  // namespace
}  // namespace synod::node

int main(int argc, char** argv) { return synod::node::run(argc, argv); }
