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

// Runs the in-process Raft walkthrough (simulated network); returns the
// process exit status.
int run_demo(const DemoOptions& options);

// `synod start`: one node of a real cluster.
struct StartOptions {
  uint64_t id = 0;
  std::string data_dir;
  std::string client_addr = "127.0.0.1:7379";
  std::string peer_addr = "127.0.0.1:7380";
  std::string admin_addr = "127.0.0.1:7381";
  std::string initial_cluster;  // 1=HOST:PORT,2=HOST:PORT,...
  std::string cluster_id = "synod";
  std::string zone;
  std::string region;
  std::string config_file;
  // Client limits (README, "Limits").
  uint64_t max_clients = 10000;
  uint64_t incomplete_request_timeout_ms = 30000;
  uint64_t request_timeout_ms = 3000;
  uint32_t partitions = 4;  // of the default keyspace; first start only
  uint64_t compact_every_entries = 10000;
  double phi_threshold = 8.0;  // peers' failure detector (logs, /status, /metrics)
};
int run_start(StartOptions options);

// `synod demo`: a local cluster in one process, real TCP between its nodes.
struct ClusterDemoOptions {
  int nodes = 3;
  std::string data_dir = "synod-data";
  int base_port = 7379;  // node i serves clients on base + 100 (i - 1), peers on that + 1
};
int run_cluster_demo(const ClusterDemoOptions& options);

// `synod bench`: a RESP load generator.
struct BenchOptions {
  std::string target = "127.0.0.1:7379";  // HOST:PORT[,HOST:PORT...]: connections round-robin
  std::string protocol = "resp";          // or etcd (its v3 JSON gateway)
  int connections = 64;
  int pipeline = 1;
  size_t value_bytes = 256;
  uint64_t keys = 10000;
  std::string distribution = "uniform";  // or zipfian
  int read_percent = 0;  // GETs; the rest are SETs, less --cas
  int cas_percent = 0;   // CAS key v v (Synod's extension)
  double duration_seconds = 10;
  uint64_t requests = 0;  // stop after this many instead of the duration
  uint64_t seed = 0;      // 0: random
  bool json = false;
};
// 0 when every request succeeded, 1 on errors, 2 on bad arguments.
int run_bench(const BenchOptions& options);

// `synod ctl --admin HOST:PORT status [--json]`.
struct CtlOptions {
  std::string admin = "127.0.0.1:7381";
  std::string command;
  std::vector<std::string> args;  // locate: the key; keyspace: the verb and the name
  bool json = false;
  // keyspace create (empty: the node's default)
  std::string mode, replicas, partitions, zone_policy;
  bool no_wait = false;  // keyspace create/drop: return once committed
};
int run_ctl(const CtlOptions& options);

struct SimCommandOptions {
  uint64_t seed = 1;
  uint64_t seeds = 0;  // run first_seed .. first_seed + seeds - 1 when set
  uint64_t first_seed = 1;
  uint64_t replay = 0;  // rerun this seed, printing its whole trace
  int nodes = 5;
  int clients = 10;
  int partitions = 2;     // of the default keyspace
  bool no_keyspace = false;  // no keyspace created and dropped during the run
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
