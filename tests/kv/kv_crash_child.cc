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
// Entry i of the stream is a pure function of i (`crash_stream_entry`, the
// same function as in kv_crash_test.cc), so the parent can rebuild what any
// prefix of it must produce. The first batch of every run starts up to
// --redeliver-max entries *below* the loaded applied index, as Raft does when
// it redelivers committed entries after a restart; apply() must skip those,
// and this process checks that it answered none of them and answered every
// new entry that carries a command.
//
// It exits by itself only when something is wrong: 2 when opening or loading
// fails, 3 when applying or reporting fails or apply() answers wrongly, 64 on
// bad arguments; the message goes to stderr. It also dies with its parent
// (PR_SET_PDEATHSIG).
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/rng.h"
#include "node/kv_state_machine.h"
#include "storage/rocks_kv_engine.h"

namespace synod::node {
namespace {

using raft::Entry;
using raft::GroupId;
using raft::LogIndex;
using raft::Term;

constexpr GroupId kGroup{1};

// ---- The command stream. Must stay identical to the copy in kv_crash_test.cc.

constexpr uint64_t kClients = 5;
constexpr int kRetryChainStepsMax = 32;

enum class SlotKind { kEmpty, kFresh, kClientless, kRetry, kStaleRetry };

uint64_t stream_mix(uint64_t index, uint64_t salt) {
  uint64_t z = index * 0x9e3779b97f4a7c15ULL ^ salt * 0xd6e8feb86659fd93ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// What entry `index` carries: nothing (4%), a new command of client
// 1 + index % 5 (sequence = index) or of no client (15%), the retry of that
// client's previous command (10%), or a retry of an older one (3%).
SlotKind slot_kind(uint64_t index) {
  const uint64_t roll = stream_mix(index, 1) % 100;
  if (roll < 4) return SlotKind::kEmpty;
  if (roll < 14) return SlotKind::kRetry;
  if (roll < 17) return SlotKind::kStaleRetry;
  if (roll < 32) return SlotKind::kClientless;
  return SlotKind::kFresh;
}

// The index whose new command entry `index` carries (itself unless it is a
// retry), or 0 for an empty entry. A retry repeats the command of the
// client's previous slot (index - 5), which is that client's latest request
// unless that slot held no request of the client; then the retry is a new
// command instead. A stale retry repeats the slot before that (index - 10),
// whose sequence is below the client's latest.
uint64_t command_origin(uint64_t index) {
  const SlotKind kind = slot_kind(index);
  if (kind == SlotKind::kEmpty) return 0;
  if (kind == SlotKind::kStaleRetry) {
    return (index > 2 * kClients && slot_kind(index - 2 * kClients) == SlotKind::kFresh)
               ? index - 2 * kClients
               : index;
  }
  uint64_t at = index;
  for (int step = 0; step < kRetryChainStepsMax && slot_kind(at) == SlotKind::kRetry; ++step) {
    if (at <= kClients) return index;
    const SlotKind before = slot_kind(at - kClients);
    if (before == SlotKind::kFresh) return at - kClients;
    if (before != SlotKind::kRetry) return index;
    at -= kClients;
  }
  return index;
}

// The new command first issued at `origin`. Three key families keep the
// operations meaningful: counters (INCRBY), registers (PUT/CAS), logs
// (APPEND, where applying twice or skipping shows for good).
Command fresh_command(uint64_t origin) {
  Command command;
  if (slot_kind(origin) != SlotKind::kClientless) {
    command.client_id = 1 + origin % kClients;
    command.sequence = origin;
  }
  const uint64_t key_roll = stream_mix(origin, 2) % 50;
  const uint64_t op_roll = stream_mix(origin, 3) % 100;
  const uint64_t value_roll = stream_mix(origin, 4);
  char key[16];
  if (key_roll < 15) {
    std::snprintf(key, sizeof key, "ctr/%02llu", static_cast<unsigned long long>(key_roll));
    if (op_roll < 70) {
      command.op = CommandOp::kIncrBy;
      command.value = std::to_string(static_cast<int64_t>(value_roll % 41) - 20);
    } else if (op_roll < 80) {
      command.op = CommandOp::kDelete;
    } else if (op_roll < 90) {
      command.op = CommandOp::kCas;
      command.expect_absent = true;
      command.value = "100";
    } else {
      command.op = CommandOp::kCas;
      command.expected = std::to_string(value_roll % 8);
      command.value = "1000";
    }
  } else if (key_roll < 30) {
    std::snprintf(key, sizeof key, "reg/%02llu", static_cast<unsigned long long>(key_roll - 15));
    if (op_roll < 45) {
      command.op = CommandOp::kPut;
      command.value = "v" + std::to_string(value_roll % 4);
    } else if (op_roll < 75) {
      command.op = CommandOp::kCas;
      command.expected = "v" + std::to_string(value_roll % 4);
      command.value = "v" + std::to_string((value_roll >> 8) % 4);
    } else if (op_roll < 82) {
      command.op = CommandOp::kCas;
      command.expect_absent = true;
      command.value = "v0";
    } else if (op_roll < 92) {
      command.op = CommandOp::kDelete;
    } else {
      command.op = CommandOp::kIncrBy;  // on a non-integer: an error reply
      command.value = "1";
    }
  } else {
    std::snprintf(key, sizeof key, "log/%02llu", static_cast<unsigned long long>(key_roll - 30));
    if (op_roll < 88) {
      command.op = CommandOp::kAppend;
      command.value = std::to_string(origin) + ";";
    } else {
      command.op = CommandOp::kDelete;
    }
  }
  command.key = key;
  return command;
}

Term stream_term(uint64_t index) { return Term{1 + index / 512}; }

Entry crash_stream_entry(uint64_t index) {
  Entry entry{stream_term(index), LogIndex{index}, raft::EntryType::kNormal, base::Bytes()};
  const uint64_t origin = command_origin(index);
  if (origin != 0) entry.data = base::Bytes(encode_command(fresh_command(origin)));
  return entry;
}

raft::ConfState stream_conf_state() {
  raft::ConfState conf;
  conf.voters = {raft::NodeId{1}, raft::NodeId{2}, raft::NodeId{3}};
  return conf;
}

// A running hash of apply()'s answers to entries first applied in one run:
// the child reports it, the parent recomputes it from the model, so every
// reply (INCRBY's new value, APPEND's length, CAS's outcome, a retry answered
// from the dedupe table) is checked, not only the state left at the end.
uint64_t chain_answer(uint64_t chain, const AppliedEntry& answer) {
  auto absorb = [&chain](uint64_t word) { chain = stream_mix(chain ^ word, 5); };
  absorb(answer.index.value());
  absorb(answer.deduplicated ? 1 : 0);
  if (!answer.reply.has_value()) {
    absorb(0);
    return chain;
  }
  absorb(1 + static_cast<uint64_t>(answer.reply->kind));
  absorb(static_cast<uint64_t>(answer.reply->integer));
  absorb(answer.reply->error.size());
  for (char c : answer.reply->error) absorb(static_cast<unsigned char>(c));
  return chain;
}

// ---- End of the shared stream.

struct Options {
  std::string dir;
  int report_fd = -1;
  uint64_t batch_entries_max = 20;
  uint64_t sync_one_in = 10;
  uint64_t redeliver_max = 30;
  uint64_t write_buffer_bytes = 256u << 10;
  uint64_t seed = 1;
  int parent_pid = 0;
};

[[noreturn]] void die(int code, const std::string& message) {
  std::fprintf(stderr, "kv_crash_child: %s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

// Whole lines only; a pipe write of this size is atomic.
void report(int fd, char kind, uint64_t index, std::optional<uint64_t> chain = std::nullopt) {
  char line[64];
  const int length =
      chain.has_value()
          ? std::snprintf(line, sizeof line, "%c %llu %llu\n", kind,
                          static_cast<unsigned long long>(index),
                          static_cast<unsigned long long>(*chain))
          : std::snprintf(line, sizeof line, "%c %llu\n", kind,
                          static_cast<unsigned long long>(index));
  while (true) {
    const ssize_t written = ::write(fd, line, static_cast<size_t>(length));
    if (written == length) return;
    if (written < 0 && errno == EINTR) continue;
    die(3, "cannot write to the report pipe: " + std::string(std::strerror(errno)));
  }
}

bool parse_number(const char* text, uint64_t* value) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long parsed = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return false;
  *value = parsed;
  return true;
}

Options parse_options(int argc, char** argv) {
  if (argc < 3) die(64, "usage: kv_crash_child <db_dir> <report_fd> [--option N]...");
  Options options;
  options.dir = argv[1];
  uint64_t fd = 0;
  if (!parse_number(argv[2], &fd) || fd > 1 << 20) {
    die(64, "bad report fd: " + std::string(argv[2]));
  }
  options.report_fd = static_cast<int>(fd);
  for (int i = 3; i < argc; i += 2) {
    const std::string_view name = argv[i];
    uint64_t value = 0;
    if (i + 1 >= argc || !parse_number(argv[i + 1], &value)) {
      die(64, "option " + std::string(name) + " needs a number");
    }
    if (name == "--batch-entries-max") {
      options.batch_entries_max = value;
    } else if (name == "--sync-one-in") {
      options.sync_one_in = value;
    } else if (name == "--redeliver-max") {
      options.redeliver_max = value;
    } else if (name == "--write-buffer-bytes") {
      options.write_buffer_bytes = value;
    } else if (name == "--seed") {
      options.seed = value;
    } else if (name == "--parent-pid") {
      options.parent_pid = static_cast<int>(value);
    } else {
      die(64, "unknown option " + std::string(name));
    }
  }
  if (options.batch_entries_max < 1 || options.batch_entries_max > 4096) {
    die(64, "--batch-entries-max must be in 1..4096");
  }
  if (options.sync_one_in < 1) die(64, "--sync-one-in must be at least 1");
  if (options.redeliver_max > 4096) die(64, "--redeliver-max must be at most 4096");
  return options;
}

// Applies the stream from `applied + 1` on, in batches, forever.
[[noreturn]] void apply_forever(KvStateMachine& machine, const Options& options) {
  const uint64_t loaded = machine.applied().index.value();
  base::Rng rng(options.seed ^ (loaded * 0x9e3779b97f4a7c15ULL));
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
    report(options.report_fd, 'S', last);
    base::Result<std::vector<AppliedEntry>> applied =
        machine.apply(entries, &conf, WriteOptions{.sync = sync});
    if (!applied) die(3, "apply failed: " + applied.error().to_string());
    if (applied->size() != entries.size()) die(3, "apply answered a different number of entries");
    for (size_t k = 0; k < entries.size(); ++k) {
      const AppliedEntry& answer = (*applied)[k];
      const uint64_t index = answer.index.value();
      if (answer.index != entries[k].index) die(3, "apply answered out of order");
      if (index < next) {
        // Redelivered: applied before this run, so it must change nothing.
        if (answer.reply.has_value() || answer.deduplicated) {
          die(3, "apply answered entry " + std::to_string(index) +
                     ", which was applied before this run (applied index " +
                     std::to_string(loaded) + ")");
        }
        continue;
      }
      if (answer.reply.has_value() == entries[k].data.empty()) {
        die(3, "apply " + std::string(entries[k].data.empty() ? "answered" : "skipped") +
                   " entry " + std::to_string(index) + ", which carries " +
                   (entries[k].data.empty() ? "no command" : "a command"));
      }
      chain = chain_answer(chain, answer);
    }
    if (machine.applied().index != LogIndex{last}) {
      die(3, "applied index " + std::to_string(machine.applied().index.value()) +
                 " after applying up to " + std::to_string(last));
    }
    report(options.report_fd, sync ? 'D' : 'A', last, chain);
    from = next = last + 1;
  }
}

int run(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  // Die with the test process, so a crashed test leaves no writer behind.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (options.parent_pid != 0 && ::getppid() != options.parent_pid) die(3, "parent is gone");

  storage::RocksKvOptions rocks_options;
  rocks_options.block_cache_bytes = 8u << 20;
  rocks_options.write_buffer_bytes = options.write_buffer_bytes;
  base::Result<std::unique_ptr<storage::RocksKvEngine>> engine =
      storage::RocksKvEngine::open(options.dir, rocks_options);
  if (!engine) die(2, "open failed: " + engine.error().to_string());
  KvStateMachine machine(kGroup, engine->get());
  if (base::Status status = machine.load(); !status) {
    die(2, "load failed: " + status.error().to_string());
  }
  report(options.report_fd, 'R', machine.applied().index.value());
  apply_forever(machine, options);
}

}  // namespace
}  // namespace synod::node

int main(int argc, char** argv) { return synod::node::run(argc, argv); }
