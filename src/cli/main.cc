// synod: one binary, one subcommand per job.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Synod: a distributed key-value store where each keyspace chooses its side of CAP"};
  app.require_subcommand(1);

  synod::cli::ClusterDemoOptions cluster_demo;
  CLI::App* demo_cmd = app.add_subcommand(
      "demo", "Run a local cluster in this process, real TCP between its nodes; point redis-cli "
              "at any node. Ctrl-C stops it.");
  demo_cmd->add_option("--nodes", cluster_demo.nodes, "Number of nodes")->check(CLI::Range(1, 9));
  demo_cmd->add_option("--data-dir", cluster_demo.data_dir, "Where the nodes keep their data");
  demo_cmd->add_option("--port", cluster_demo.base_port,
                       "Client port of node 1; node i uses port + 100 (i - 1), peers that + 1");

  synod::cli::DemoOptions demo;
  CLI::App* tour_cmd = app.add_subcommand(
      "tour", "Walk through what the Raft core guarantees: real Raft nodes in one process over "
              "a simulated network, in simulated time");
  tour_cmd->add_option("--seed", demo.seed, "Seed of the simulated network and timeouts");
  tour_cmd->add_option("--nodes", demo.nodes, "Number of nodes (3 or 5)")
      ->check(CLI::IsMember({3, 5}));

  synod::cli::StartOptions start;
  CLI::App* start_cmd = app.add_subcommand("start", "Run one node of a Synod cluster");
  start_cmd->add_option("--id", start.id, "This node's id (1, 2, ...)");
  start_cmd->add_option("--data-dir", start.data_dir, "Where this node keeps its data");
  start_cmd->add_option("--client-addr", start.client_addr, "HOST:PORT for Redis clients")
      ->capture_default_str();
  start_cmd->add_option("--peer-addr", start.peer_addr, "HOST:PORT to listen on for peers")
      ->capture_default_str();
  start_cmd->add_option("--admin-addr", start.admin_addr, "HOST:PORT for the HTTP admin API")
      ->capture_default_str();
  start_cmd->add_option("--initial-cluster", start.initial_cluster,
                        "Every member's peer address, 1=HOST:PORT,2=HOST:PORT,... (first start "
                        "only: a node with data ignores it)");
  start_cmd->add_option("--cluster-id", start.cluster_id,
                        "Name of the cluster; peers from another cluster are refused")
      ->capture_default_str();
  start_cmd->add_option("--zone", start.zone, "Failure zone of this node (placement)");
  start_cmd->add_option("--region", start.region, "Region of this node (placement)");
  start_cmd->add_option("--max-clients", start.max_clients,
                        "Client connections at once; more are refused")
      ->capture_default_str();
  start_cmd->add_option("--incomplete-request-timeout-ms", start.incomplete_request_timeout_ms,
                        "A client that leaves a request incomplete this long is disconnected")
      ->capture_default_str();
  start_cmd->add_option("--request-timeout-ms", start.request_timeout_ms,
                        "How long a request may wait for the cluster before -TRYAGAIN")
      ->capture_default_str();
  start_cmd->add_option("--partitions", start.partitions,
                        "Raft groups of the default keyspace (first start only)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  start_cmd->add_option("--compact-every", start.compact_every_entries,
                        "Applied entries between log compactions (per group)")
      ->check(CLI::Range(uint64_t{10}, uint64_t{100000000}))
      ->capture_default_str();
  start_cmd->add_option("--phi-threshold", start.phi_threshold,
                        "Suspicion level at which a silent peer is reported suspected "
                        "(phi-accrual; 8: a one-in-10^8 chance it is merely slow)")
      ->check(CLI::Range(1.0, 100.0))
      ->capture_default_str();
  start_cmd->add_option("--config", start.config_file,
                        "A TOML file with the same keys as these flags (id, data-dir, ...)");

  synod::cli::SimCommandOptions sim;
  CLI::App* sim_cmd = app.add_subcommand(
      "sim", "Run the deterministic simulator: real nodes, simulated network, disks, processes "
             "and clocks, with faults, under a checked client workload");
  sim_cmd->add_option("--seed", sim.seed, "Run this one seed");
  sim_cmd->add_option("--seeds", sim.seeds, "Run this many seeds, from --first-seed (default 1)");
  sim_cmd->add_option("--first-seed", sim.first_seed, "First seed of --seeds");
  sim_cmd->add_option("--replay", sim.replay, "Rerun one seed and print its whole trace");
  sim_cmd->add_option("--nodes", sim.nodes, "Nodes in the cluster")->check(CLI::Range(1, 9));
  sim_cmd->add_option("--partitions", sim.partitions,
                      "Raft groups of the default keyspace (besides the meta group)")
      ->check(CLI::Range(1, 64));
  sim_cmd->add_flag("--no-keyspace", sim.no_keyspace,
                    "Do not create and drop a keyspace during the fault phase");
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
  synod::cli::BenchOptions bench;
  CLI::App* bench_cmd = app.add_subcommand(
      "bench", "Load a RESP server (Synod or Redis): throughput and latency percentiles");
  bench_cmd->add_option("--target", bench.target,
                        "HOST:PORT of the server; a comma-separated list spreads the connections")
      ->capture_default_str();
  bench_cmd->add_option("--protocol", bench.protocol,
                        "resp (Synod, Redis) or etcd (etcd's v3 JSON gateway: put, and "
                        "linearizable range for reads)")
      ->capture_default_str();
  bench_cmd->add_option("-c,--connections", bench.connections, "Connections, each one client")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  bench_cmd->add_option("-P,--pipeline", bench.pipeline, "Requests in flight per connection")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  bench_cmd->add_option("--value-size", bench.value_bytes, "Bytes per value")
      ->check(CLI::Range(size_t{1}, size_t{64} << 20))
      ->capture_default_str();
  bench_cmd->add_option("--keys", bench.keys, "Distinct keys")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}))
      ->capture_default_str();
  bench_cmd->add_option("--distribution", bench.distribution, "uniform or zipfian (theta 0.99)")
      ->capture_default_str();
  bench_cmd->add_option("--reads", bench.read_percent, "Percent of requests that are GETs")
      ->capture_default_str();
  bench_cmd->add_option("--cas", bench.cas_percent, "Percent that are CAS (Synod only)")
      ->capture_default_str();
  bench_cmd->add_option("-d,--duration", bench.duration_seconds, "Seconds to run")
      ->capture_default_str();
  bench_cmd->add_option("-n,--requests", bench.requests, "Stop after this many requests instead");
  bench_cmd->add_option("--seed", bench.seed, "Seed of the key choices (0: random)");
  bench_cmd->add_flag("--json", bench.json, "Print the result as one JSON object");

  synod::cli::CtlOptions ctl;
  CLI::App* ctl_cmd = app.add_subcommand("ctl", "Ask a running node about the cluster");
  ctl_cmd->add_option("--admin", ctl.admin, "The node's admin address, HOST:PORT")
      ->capture_default_str();
  ctl_cmd->add_option("command", ctl.command,
                      "status (the node, its groups and its peers), metrics (Prometheus text), "
                      "locate KEY (the key's keyspace, partition and leader), or keyspace "
                      "create NAME | list | describe NAME | drop NAME")
      ->required();
  ctl_cmd->add_option("args", ctl.args,
                      "The command's arguments (locate: the key; keyspace: the verb and name)");
  ctl_cmd->add_flag("--json", ctl.json, "Print the JSON the node returned, for scripts");
  ctl_cmd->add_option("--mode", ctl.mode, "keyspace create: strong (eventual: not yet served)");
  ctl_cmd->add_option("--replicas", ctl.replicas, "keyspace create: replicas per partition, 1-7 (3)");
  ctl_cmd->add_option("--partitions", ctl.partitions,
                      "keyspace create: partitions, a power of two up to 4096 (4)");
  ctl_cmd->add_option("--zone-policy", ctl.zone_policy, "keyspace create: spread or any (spread)");
  ctl_cmd->add_flag("--no-wait", ctl.no_wait,
                    "keyspace create/drop: return once the meta group committed it, not when "
                    "the keyspace is active (or gone)");
  CLI11_PARSE(app, argc, argv);
  if (ctl_cmd->parsed()) return synod::cli::run_ctl(ctl);
  if (bench_cmd->parsed()) return synod::cli::run_bench(bench);
  if (check_cmd->parsed()) return synod::cli::run_check(check_path);
  if (demo_cmd->parsed()) return synod::cli::run_cluster_demo(cluster_demo);
  if (tour_cmd->parsed()) return synod::cli::run_demo(demo);
  if (start_cmd->parsed()) return synod::cli::run_start(start);
  if (sim_cmd->parsed()) return synod::cli::run_sim(sim);
  return 0;
}
