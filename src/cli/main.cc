// synod: one binary, one subcommand per job.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Synod: a distributed key-value store where each keyspace chooses its side of CAP"};
  app.require_subcommand(1);

  synod::cli::DemoOptions demo;
  CLI::App* demo_cmd = app.add_subcommand(
      "demo", "Run a local cluster. Until the networked server lands this runs real Raft nodes "
              "in one process over a simulated network, and says so.");
  demo_cmd->add_option("--seed", demo.seed, "Seed of the simulated network and timeouts");
  demo_cmd->add_option("--nodes", demo.nodes, "Number of nodes (3 or 5)")
      ->check(CLI::IsMember({3, 5}));

  CLI11_PARSE(app, argc, argv);
  if (demo_cmd->parsed()) return synod::cli::run_demo(demo);
  return 0;
}
