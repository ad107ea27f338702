// `synod start` (one node of a real cluster) and `synod demo` (a local
// cluster in one process, with real TCP between its nodes): the event loop,
// the node host, the RESP listener and the signals that stop them.
#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <cstdio>
#include <filesystem>
#include <toml++/toml.h>

#include "api/resp_server.h"
#include "cli/commands.h"
#include "runtime/admin_server.h"
#include "runtime/metrics.h"
#include "runtime/node_host.h"

namespace synod::cli {
namespace {

// The RESP commands' view of a node.
class HostStore final : public api::Store {
 public:
  explicit HostStore(runtime::NodeHost& host) : host_(host) {}
  void submit(node::Request request, std::function<void(node::Response)> done) override {
    host_.submit(std::move(request), std::move(done));
  }
  std::string info() override {
    const runtime::NodeHostStatus status = host_.status();
    std::string text = "node_id:" + std::to_string(status.node_id) + "\r\n" +
                       "cluster_id:" + status.cluster_id + "\r\n";
    for (const runtime::GroupStatus& group : status.groups) {
      text += "group_" + std::to_string(group.group) + ":role=" + group.role +
              ",term=" + std::to_string(group.term) + ",leader=" + std::to_string(group.leader) +
              ",commit=" + std::to_string(group.commit) + ",applied=" +
              std::to_string(group.applied) + "\r\n";
    }
    for (const runtime::PeerState& peer : status.peers) {
      text += "peer_" + std::to_string(peer.id) + ":address=" + peer.address +
              ",connected=" + (peer.connected ? "1" : "0") + "\r\n";
    }
    return text;
  }
  void keyspace(placement::KeyspaceCall call,
                std::function<void(base::Result<std::string>)> done) override {
    host_.keyspace_call(std::move(call), std::move(done));
  }

 private:
  runtime::NodeHost& host_;
};

base::Result<std::map<uint64_t, std::string>> parse_initial_cluster(const std::string& text) {
  std::map<uint64_t, std::string> members;
  size_t start = 0;
  while (start < text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    const size_t equals = item.find('=');
    if (equals == std::string::npos || equals == 0) {
      return base::Error(base::Errc::kInvalidArgument,
                         "--initial-cluster entry \"" + item + "\" is not ID=HOST:PORT");
    }
    uint64_t id = 0;
    try {
      id = std::stoull(item.substr(0, equals));
    } catch (...) {
      return base::Error(base::Errc::kInvalidArgument, "node id in \"" + item + "\" is not a number");
    }
    if (id == 0 || members.contains(id)) {
      return base::Error(base::Errc::kInvalidArgument,
                         "node id in \"" + item + "\" is 0 or appears twice");
    }
    auto address = runtime::split_address(item.substr(equals + 1));
    if (!address) return address.error();
    members[id] = item.substr(equals + 1);
    start = comma + 1;
  }
  return members;
}

struct Running {
  std::unique_ptr<runtime::Metrics> metrics;
  std::unique_ptr<runtime::NodeHost> host;
  std::unique_ptr<HostStore> store;
  std::unique_ptr<api::RespServer> server;
  std::unique_ptr<runtime::AdminServer> admin;

  void stop() {
    if (admin) admin->stop();
    server->stop();
    host->stop();
  }
};

base::Result<Running> launch(asio::io_context& loop, runtime::NodeHostOptions host_options,
                             api::RespServerOptions server_options,
                             const std::string& admin_address) {
  const uint64_t id = host_options.node_id;
  host_options.log = [id](const std::string& line) { spdlog::info("[node {}] {}", id, line); };
  auto host = runtime::NodeHost::open(loop, std::move(host_options));
  if (!host) return host.error();
  Running running;
  running.metrics = std::make_unique<runtime::Metrics>();
  running.metrics->describe("synod_commands_total", "counter", "Client commands by name and result");
  running.metrics->describe("synod_command_duration_seconds", "histogram",
                            "Client command latency, from parsed to answered");
  server_options.metrics = running.metrics.get();
  running.host = std::move(*host);
  running.store = std::make_unique<HostStore>(*running.host);
  running.server = std::make_unique<api::RespServer>(
      loop, server_options, *running.store,
      [id](const std::string& line) { spdlog::info("[node {}] {}", id, line); });
  if (auto s = running.host->start(); !s) return s.error();
  if (auto s = running.server->start(); !s) return s.error();
  if (!admin_address.empty()) {
    runtime::NodeHost* node = running.host.get();
    runtime::Metrics* metrics = running.metrics.get();
    api::RespServer* server = running.server.get();
    runtime::AdminHandlers handlers;
    handlers.status_json = [node] { return node->status_json(); };
    handlers.locate_json = [node](const std::string& key) { return node->locate_json(key); };
    handlers.keyspaces = [node](placement::KeyspaceCall call,
                                std::function<void(base::Result<std::string>)> done) {
      node->keyspace_call(std::move(call), std::move(done));
    };
    handlers.metrics_text = [node, metrics, server] {
      node->export_metrics(*metrics);
      metrics->describe("synod_clients", "gauge", "Client connections open");
      metrics->set_gauge("synod_clients", "", static_cast<double>(server->clients()));
      return metrics->render();
    };
    running.admin = std::make_unique<runtime::AdminServer>(loop, admin_address, handlers);
    if (auto s = running.admin->start(); !s) return s.error();
  }
  return running;
}

// Applies `--config node.toml`: its keys are the flags' names.
base::Status apply_config_file(StartOptions& options) {
  if (options.config_file.empty()) return {};
  toml::table table;
  try {
    table = toml::parse_file(options.config_file);
  } catch (const toml::parse_error& e) {
    return base::Error(base::Errc::kInvalidArgument,
                       options.config_file + ": " + std::string(e.description()));
  }
  auto text = [&](const char* key, std::string& into) {
    if (auto value = table[key].value<std::string>()) into = *value;
  };
  if (auto id = table["id"].value<int64_t>()) options.id = static_cast<uint64_t>(*id);
  auto number = [&](const char* key, uint64_t& into) {
    if (auto value = table[key].value<int64_t>(); value && *value > 0) into = static_cast<uint64_t>(*value);
  };
  number("max-clients", options.max_clients);
  number("incomplete-request-timeout-ms", options.incomplete_request_timeout_ms);
  number("request-timeout-ms", options.request_timeout_ms);
  number("compact-every", options.compact_every_entries);
  if (auto value = table["phi-threshold"].value<double>(); value && *value >= 1 && *value <= 100) {
    options.phi_threshold = *value;
  }
  if (auto value = table["partitions"].value<int64_t>(); value && *value > 0 && *value <= 4096) {
    options.partitions = static_cast<uint32_t>(*value);
  }
  text("data-dir", options.data_dir);
  text("client-addr", options.client_addr);
  text("peer-addr", options.peer_addr);
  text("admin-addr", options.admin_addr);
  text("initial-cluster", options.initial_cluster);
  text("cluster-id", options.cluster_id);
  text("zone", options.zone);
  text("region", options.region);
  return {};
}

}  // namespace

int run_start(StartOptions options) {
  if (auto s = apply_config_file(options); !s) {
    std::fprintf(stderr, "synod start: %s\n", s.error().message().c_str());
    return 2;
  }
  if (options.id == 0 || options.data_dir.empty()) {
    std::fprintf(stderr, "synod start: --id and --data-dir are required\n");
    return 2;
  }
  runtime::NodeHostOptions host;
  host.node_id = options.id;
  host.cluster_id = options.cluster_id;
  host.data_dir = options.data_dir;
  host.peer_listen = options.peer_addr;
  if (!options.initial_cluster.empty()) {
    auto members = parse_initial_cluster(options.initial_cluster);
    if (!members) {
      std::fprintf(stderr, "synod start: %s\n", members.error().message().c_str());
      return 2;
    }
    host.initial_cluster = std::move(*members);
  }
  host.request_timeout_ms = static_cast<uint32_t>(options.request_timeout_ms);
  host.partitions = options.partitions;
  host.compact_every_entries = options.compact_every_entries;
  host.phi_threshold = options.phi_threshold;
  api::RespServerOptions server;
  server.listen_address = options.client_addr;
  server.clients_max = options.max_clients;
  server.partial_request_timeout_ms = static_cast<uint32_t>(options.incomplete_request_timeout_ms);
  asio::io_context loop(1);
  auto running = launch(loop, std::move(host), server, options.admin_addr);
  if (!running) {
    std::fprintf(stderr, "synod start: %s\n", running.error().to_string().c_str());
    return 1;
  }
  spdlog::info("[node {}] serving Redis clients on {} (peers on {}, admin on http://{})",
               options.id, options.client_addr, options.peer_addr, options.admin_addr);
  asio::signal_set signals(loop, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code&, int signal) {
    spdlog::info("[node {}] signal {}: stopping", options.id, signal);
    running->stop();
    loop.stop();
  });
  loop.run();
  return 0;
}

int run_cluster_demo(const ClusterDemoOptions& options) {
  const int nodes = options.nodes;
  std::map<uint64_t, std::string> members;
  for (int i = 1; i <= nodes; ++i) {
    members[static_cast<uint64_t>(i)] =
        "127.0.0.1:" + std::to_string(options.base_port + 100 * (i - 1) + 1);
  }
  asio::io_context loop(1);
  std::vector<Running> cluster;
  for (int i = 1; i <= nodes; ++i) {
    runtime::NodeHostOptions host;
    host.node_id = static_cast<uint64_t>(i);
    host.cluster_id = "synod-demo";
    host.data_dir = options.data_dir + "/node-" + std::to_string(i);
    host.initial_cluster = members;
    api::RespServerOptions server;
    const int port = options.base_port + 100 * (i - 1);
    server.listen_address = "127.0.0.1:" + std::to_string(port);
    auto running = launch(loop, host, server, "127.0.0.1:" + std::to_string(port + 2));
    if (!running) {
      std::fprintf(stderr, "synod demo: node %d: %s\n", i, running.error().to_string().c_str());
      return 1;
    }
    cluster.push_back(std::move(*running));
  }
  std::printf("Synod demo: %d nodes in this process, real TCP between them, data under %s\n",
              nodes, options.data_dir.c_str());
  for (int i = 1; i <= nodes; ++i) {
    const int port = options.base_port + 100 * (i - 1);
    std::printf("  node %d: redis-cli -p %d    admin: http://127.0.0.1:%d/status and /metrics\n", i,
                port, port + 2);
  }
  std::printf("Any node takes any command (followers forward to the leader). Ctrl-C stops.\n");
  std::fflush(stdout);
  asio::signal_set signals(loop, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code&, int) {
    spdlog::info("stopping the demo cluster");
    for (Running& r : cluster) r.stop();
    loop.stop();
  });
  loop.run();
  return 0;
}

}  // namespace synod::cli
