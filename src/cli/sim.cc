// `synod sim`: runs the deterministic simulator over one seed or many and
// says, per seed, whether every check passed. Scripts rely on the output:
// a line `digest: <hex>` per run (of the one seed, or of all seeds' digests
// in order), and the exit status (0: every seed passed, 1: a check failed,
// 2: bad arguments).
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/frame.h"
#include "cli/commands.h"
#include "sim/history.h"
#include "sim/simulator.h"

namespace synod::cli {
namespace {

std::string replay_command(const SimCommandOptions& options, uint64_t seed) {
  std::string command = "synod sim --replay " + std::to_string(seed) + " --nodes " +
                        std::to_string(options.nodes) + " --clients " +
                        std::to_string(options.clients) + " --partitions " +
                        std::to_string(options.partitions) + " --duration " +
                        std::to_string(options.duration_seconds) + " --faults " + options.faults;
  for (const std::string& bug : options.bugs) command += " --bug " + bug;
  if (options.no_keyspace) command += " --no-keyspace";
  return command;
}

// Writes the failing seed's history and trace under `out_dir`; returns the
// directory, or an empty string if it could not.
std::string save_failure(const std::string& out_dir, const sim::SimResult& result) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path dir = fs::path(out_dir) / ("seed-" + std::to_string(result.seed));
  fs::create_directories(dir, error);
  if (error) return {};
  std::ofstream history(dir / "history.jsonl");
  if (!sim::write_history(result.history, history).ok()) return {};
  std::ofstream trace(dir / "trace.txt");
  for (const std::string& line : result.trace) trace << line << '\n';
  std::ofstream violation(dir / "violation.txt");
  violation << result.violation << '\n';
  return dir.string();
}

void progress(uint64_t done, uint64_t total, uint64_t failed, double wall_s) {
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / std::max<uint64_t>(total, 1));
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r[%s] %" PRIu64 "/%" PRIu64 " seeds, %" PRIu64 " failed, %.1f s",
               bar.c_str(), done, total, failed, wall_s);
  std::fflush(stderr);
}

}  // namespace

int run_sim(const SimCommandOptions& options) {
  if (options.list_bugs) {
    if (!base::kBugsCompiledIn) {
      std::printf("this build has no injectable bugs (configured with SYNOD_INJECTABLE_BUGS=OFF)\n");
      return 0;
    }
    for (const base::BugInfo& info : base::kBugs) {
      std::printf("%-20s %s\n", std::string(info.name).c_str(), std::string(info.description).c_str());
    }
    return 0;
  }
  if (options.list_faults) {
    for (const sim::FaultInfo& info : sim::kFaults) {
      std::printf("%-10s %s\n", std::string(info.name).c_str(), std::string(info.description).c_str());
    }
    return 0;
  }
  sim::SimOptions sim;
  sim.nodes = options.nodes;
  sim.partitions = options.partitions;
  sim.keyspaces = !options.no_keyspace;
  sim.clients = options.clients;
  if (options.duration_seconds <= 0 || options.duration_seconds > 1e6) {
    std::fprintf(stderr, "synod sim: --duration must be a positive number of seconds\n");
    return 2;
  }
  sim.duration_ns = static_cast<uint64_t>(options.duration_seconds * 1e9);
  auto faults = sim::parse_faults(options.faults);
  if (!faults.ok()) {
    std::fprintf(stderr, "synod sim: %s\n", faults.error().message().c_str());
    return 2;
  }
  sim.faults = *faults;
  for (const std::string& name : options.bugs) {
    auto bug = base::bug_from_name(name);
    if (!bug) {
      std::fprintf(stderr, "synod sim: unknown bug \"%s\" (see synod sim --list-bugs)\n", name.c_str());
      return 2;
    }
    if (!base::kBugsCompiledIn) {
      std::fprintf(stderr, "synod sim: this build has no injectable bugs\n");
      return 2;
    }
    sim.bugs = base::BugSet::of(*bug);
  }
  const bool replay = options.replay != 0;
  uint64_t first = options.seed;
  uint64_t count = 1;
  if (replay) {
    first = options.replay;
  } else if (options.seeds != 0) {
    first = options.first_seed;
    count = options.seeds;
  }
  if (replay) {
    sim.trace_lines_kept = 0;
    sim.trace_sink = [](std::string_view line) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
    };
  }
  sim::SimOptions valid = sim;
  if (auto status = valid.validate(); !status.ok()) {
    std::fprintf(stderr, "synod sim: %s\n", status.error().message().c_str());
    return 2;
  }

  const bool show_progress = count > 1 && isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  auto wall = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  uint64_t failed = 0;
  uint64_t combined = 0;
  uint64_t last_digest = 0;
  double simulated_s = 0;
  uint64_t operations = 0;
  for (uint64_t i = 0; i < count; ++i) {
    sim.seed = first + i;
    const sim::SimResult result = sim::run_simulation(sim);
    combined = base::checksum64(sim::digest_hex(result.digest), combined);
    last_digest = result.digest;
    simulated_s += static_cast<double>(result.stats.simulated_ns) / 1e9;
    operations += result.stats.operations;
    if (!options.history_file.empty() && count == 1) {
      std::ofstream file(options.history_file);
      if (!file || !sim::write_history(result.history, file).ok()) {
        std::fprintf(stderr, "synod sim: cannot write %s\n", options.history_file.c_str());
      }
    }
    if (count == 1 || (options.verbose && result.passed)) {
      if (show_progress) std::fputc('\n', stderr);
      std::printf("seed %" PRIu64 ": %s: %s\n", result.seed, result.passed ? "pass" : "FAIL",
                  sim::describe_stats(result.stats).c_str());
    }
    if (!result.passed) {
      ++failed;
      if (show_progress) std::fputc('\n', stderr);
      std::printf("seed %" PRIu64 ": FAIL: %s\n", result.seed, result.violation.c_str());
      if (!replay) {
        const size_t shown = std::min<size_t>(result.trace.size(), 30);
        std::printf("  last %zu trace lines:\n", shown);
        for (size_t k = result.trace.size() - shown; k < result.trace.size(); ++k) {
          std::printf("    %s\n", result.trace[k].c_str());
        }
      }
      const std::string saved = save_failure(options.out_dir, result);
      if (!saved.empty()) {
        std::printf("  history (JSON lines) and trace: %s/\n", saved.c_str());
      }
      std::printf("  replay: %s\n", replay_command(options, result.seed).c_str());
      if (options.stop_on_failure) {
        count = i + 1;
        break;
      }
    }
    if (show_progress) progress(i + 1, count, failed, wall());
  }
  if (show_progress) std::fputc('\n', stderr);
  const double wall_s = wall();
  if (count > 1) {
    std::printf("%" PRIu64 " seeds (%" PRIu64 "..%" PRIu64 "): %" PRIu64 " passed, %" PRIu64
                " failed; %" PRIu64 " operations; %.0f simulated s in %.1f wall s (%.0f× real "
                "time)\n",
                count, first, first + count - 1, count - failed, failed, operations, simulated_s,
                wall_s, simulated_s / std::max(wall_s, 1e-9));
  } else {
    std::printf("%.1f simulated s in %.2f wall s (%.0f× real time)\n", simulated_s, wall_s,
                simulated_s / std::max(wall_s, 1e-9));
  }
  std::printf("digest: %s\n", sim::digest_hex(count == 1 ? last_digest : combined).c_str());
  return failed == 0 ? 0 : 1;
}

int run_check(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    std::fprintf(stderr, "synod check: cannot open %s\n", path.c_str());
    return 2;
  }
  auto history = sim::read_history(file);
  if (!history.ok()) {
    std::fprintf(stderr, "synod check: %s: %s\n", path.c_str(), history.error().message().c_str());
    return 2;
  }
  const auto started = std::chrono::steady_clock::now();
  auto report = sim::check_linearizability(*history);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!report.ok()) {
    std::fprintf(stderr, "synod check: %s\n", report.error().message().c_str());
    return 2;
  }
  const sim::CheckStats& stats = report->stats;
  std::printf("%s: %" PRIu64 " operations (%" PRIu64 " checked, %" PRIu64
              " unknown) on %" PRIu64 " keys, %" PRIu64 " configurations, checked in %.3f s\n",
              std::string(sim::verdict_name(report->verdict)).c_str(), stats.operations,
              stats.operations_checked, stats.operations_unknown, stats.keys,
              stats.configurations, seconds);
  if (report->verdict != sim::Verdict::kOk) {
    std::printf("key \"%s\": %s\n", report->key.c_str(), report->explanation.c_str());
    return 1;
  }
  return 0;
}

}  // namespace synod::cli
