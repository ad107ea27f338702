// Entry points of the `synod` binary, one per subcommand.
#pragma once

#include <cstdint>

namespace synod::cli {

struct DemoOptions {
  uint64_t seed = 1;
  int nodes = 3;
};

// Runs the in-process Raft demonstration; returns the process exit status.
int run_demo(const DemoOptions& options);

}  // namespace synod::cli
