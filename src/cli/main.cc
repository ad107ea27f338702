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

  synod::cli::SimCommandOptions sim;
  CLI::App* sim_cmd = app.add_subcommand(
      "sim", "Run the deterministic simulator: real nodes, simulated network, disks, processes "
             "and clocks, with faults, under a checked client workload");
  sim_cmd->add_option("--seed", sim.seed, "Run this one seed");
  sim_cmd->add_option("--seeds", sim.seeds, "Run this many seeds, from --first-seed (default 1)");
  sim_cmd->add_option("--first-seed", sim.first_seed, "First seed of --seeds");
  sim_cmd->add_option("--replay", sim.replay, "Rerun one seed and print its whole trace");
  sim_cmd->add_option("--nodes", sim.nodes, "Nodes in the cluster")->check(CLI::Range(1, 9));
  sim_cmd->add_option("--clients", sim.clients, "Concurrent clients")->check(CLI::Range(1, 1000));
  sim_cmd->add_option("--duration", sim.duration_seconds,
                      "Simulated seconds of faults before everything is healed");
  sim_cmd->add_option("--faults", sim.faults,
                      "Fault classes: all, none, or a comma-separated list (see --list-faults)");
  sim_cmd->add_option("--bug", sim.bugs, "Inject a protocol bug (see --list-bugs)");
  sim_cmd->add_flag("--list-bugs", sim.list_bugs, "List the injectable bugs");
  sim_cmd->add_flag("--list-faults", sim.list_faults, "List the fault classes");
  sim_cmd->add_flag("--stop-on-failure", sim.stop_on_failure, "Stop at the first failing seed");
  sim_cmd->add_flag("-v,--verbose", sim.verbose, "Print a line for every seed, not only failures");
  sim_cmd->add_option("--out", sim.out_dir, "Where a failing seed's history and trace go");
  sim_cmd->add_option("--history", sim.history_file,
                      "Write the seed's history (JSON lines) to this file, pass or fail");

  std::string check_path;
  CLI::App* check_cmd = app.add_subcommand(
      "check", "Check a history (JSON lines, docs/history.md) for linearizability");
  check_cmd->add_option("history", check_path, "The history file")->required();
  CLI11_PARSE(app, argc, argv);
  if (check_cmd->parsed()) return synod::cli::run_check(check_path);
  if (demo_cmd->parsed()) return synod::cli::run_demo(demo);
  if (sim_cmd->parsed()) return synod::cli::run_sim(sim);
  return 0;
}
