// `synod ctl`: asks a node's admin API and prints the answer for a person
// (a table) or a script (--json).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <string>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "runtime/admin_server.h"

namespace synod::cli {

namespace {

// GETs `path` from the node. On failure prints why and returns 1; with
// --json prints the body as the node sent it and returns 0; otherwise
// leaves the body in `body` and returns nothing (the caller formats it).
std::optional<int> fetch(const CtlOptions& options, const std::string& path, std::string* body) {
  auto got = runtime::http_get(options.admin, path);
  if (!got) {
    std::fprintf(stderr, "synod ctl: %s\n", got.error().message().c_str());
    return 1;
  }
  if (options.json) {
    std::fwrite(got->data(), 1, got->size(), stdout);
    return 0;
  }
  *body = std::move(*got);
  return std::nullopt;
}

int locate(const CtlOptions& options) {
  if (options.args.size() != 1) {
    std::fprintf(stderr, "synod ctl: usage: synod ctl --admin HOST:PORT locate KEY\n");
    return 2;
  }
  std::string path = "/locate?key=";
  for (unsigned char c : options.args[0]) {  // percent-encode all but unreserved
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      path += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      path += hex;
    }
  }
  std::string body;
  if (std::optional<int> done = fetch(options, path, &body)) return *done;
  try {
    const nlohmann::json json = nlohmann::json::parse(body);
    const uint64_t leader = json.at("leader").get<uint64_t>();
    std::printf("partition %llu (group %llu), leader %s\n",
                static_cast<unsigned long long>(json.at("partition").get<uint64_t>()),
                static_cast<unsigned long long>(json.at("group").get<uint64_t>()),
                leader == 0 ? "unknown" : ("node " + std::to_string(leader)).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "synod ctl: %s answered something unexpected: %s\n",
                 options.admin.c_str(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int run_ctl(const CtlOptions& options) {
  if (options.command == "metrics") {
    auto text = runtime::http_get(options.admin, "/metrics");
    if (!text) {
      std::fprintf(stderr, "synod ctl: %s\n", text.error().message().c_str());
      return 1;
    }
    std::fwrite(text->data(), 1, text->size(), stdout);
    return 0;
  }
  if (options.command == "locate") return locate(options);
  if (options.command != "status") {
    std::fprintf(stderr, "synod ctl: unknown command \"%s\" (try: status, metrics, locate KEY)\n",
                 options.command.c_str());
    return 2;
  }
  std::string body;
  if (std::optional<int> done = fetch(options, "/status", &body)) return *done;
  nlohmann::json status;
  try {
    status = nlohmann::json::parse(body);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "synod ctl: %s answered something that is not JSON: %s\n",
                 options.admin.c_str(), e.what());
    return 1;
  }
  std::printf("node %llu of cluster \"%s\"%s\n",
              static_cast<unsigned long long>(status.value("node_id", 0ull)),
              status.value("cluster_id", std::string()).c_str(),
              status.value("failure", std::string()).empty()
                  ? ""
                  : (" STOPPED: " + status.value("failure", std::string())).c_str());
  std::printf("\n%-6s %-10s %-6s %-7s %-10s %-10s\n", "GROUP", "ROLE", "TERM", "LEADER", "COMMIT",
              "APPLIED");
  for (const auto& g : status["groups"]) {
    std::printf("%-6llu %-10s %-6llu %-7llu %-10llu %-10llu\n",
                static_cast<unsigned long long>(g.value("group", 0ull)),
                g.value("role", std::string()).c_str(),
                static_cast<unsigned long long>(g.value("term", 0ull)),
                static_cast<unsigned long long>(g.value("leader", 0ull)),
                static_cast<unsigned long long>(g.value("commit", 0ull)),
                static_cast<unsigned long long>(g.value("applied", 0ull)));
  }
  std::printf("\n%-5s %-22s %-8s %-14s %-7s %s\n", "PEER", "ADDRESS", "HEALTH", "LAST CONTACT",
              "PHI", "LAST ERROR");
  for (const auto& p : status["peers"]) {
    const int64_t ago = p.value("last_contact_ms_ago", int64_t{-1});
    const std::string contact = ago < 0 ? "never" : std::to_string(ago) + " ms ago";
    const double phi = p.value("phi", 0.0);
    const std::string health = !p.value("connected", false)    ? "DOWN"
                               : p.value("suspected", false) ? "SUSPECT"
                                                             : "up";
    std::printf("%-5llu %-22s %-8s %-14s %-7.1f %s\n",
                static_cast<unsigned long long>(p.value("id", 0ull)),
                p.value("address", std::string()).c_str(), health.c_str(), contact.c_str(),
                std::min(phi, 9999.9), p.value("last_error", std::string()).c_str());
  }
  return 0;
}

}  // namespace synod::cli
