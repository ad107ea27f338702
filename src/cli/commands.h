// Entry points of the `synod` binary, one per subcommand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace synod::cli {

struct DemoOptions {
  uint64_t seed = 1;
  int nodes = 3;
};

// Runs the in-process Raft demonstration; returns the process exit status.
int run_demo(const DemoOptions& options);

struct SimCommandOptions {
  uint64_t seed = 1;
  uint64_t seeds = 0;  // run first_seed .. first_seed + seeds - 1 when set
  uint64_t first_seed = 1;
  uint64_t replay = 0;  // rerun this seed, printing its whole trace
  int nodes = 5;
  int clients = 10;
  double duration_seconds = 60;
  std::string faults = "all";
  std::vector<std::string> bugs;
  bool list_bugs = false;
  bool list_faults = false;
  bool stop_on_failure = false;
  bool verbose = false;  // a line per seed, passed or not
  std::string out_dir = "sim-failures";
  std::string history_file;  // write the (one) seed's history here, pass or fail
};

// Runs the deterministic simulator; 0 when every seed passes, 1 when a check
// fails, 2 on bad arguments.
int run_sim(const SimCommandOptions& options);

// Checks a history file (JSON lines, docs/history.md) for linearizability;
// 0 when linearizable, 1 for a violation or an inconclusive search, 2 when
// the file cannot be read or is not a valid history.
int run_check(const std::string& path);

}  // namespace synod::cli
