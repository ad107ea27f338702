// `synod ctl`: asks a node's admin API and prints the answer for a person
// (a table) or a script (--json).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "runtime/admin_server.h"

namespace synod::cli {

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
  if (options.command != "status") {
    std::fprintf(stderr, "synod ctl: unknown command \"%s\" (try: status, metrics)\n",
                 options.command.c_str());
    return 2;
  }
  auto body = runtime::http_get(options.admin, "/status");
  if (!body) {
    std::fprintf(stderr, "synod ctl: %s\n", body.error().message().c_str());
    return 1;
  }
  if (options.json) {
    std::fwrite(body->data(), 1, body->size(), stdout);
    return 0;
  }
  nlohmann::json status;
  try {
    status = nlohmann::json::parse(*body);
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
  std::printf("\n%-5s %-22s %-8s %-14s %s\n", "PEER", "ADDRESS", "HEALTH", "LAST CONTACT",
              "LAST ERROR");
  for (const auto& p : status["peers"]) {
    const int64_t ago = p.value("last_contact_ms_ago", int64_t{-1});
    const std::string contact = ago < 0 ? "never" : std::to_string(ago) + " ms ago";
    std::printf("%-5llu %-22s %-8s %-14s %s\n", static_cast<unsigned long long>(p.value("id", 0ull)),
                p.value("address", std::string()).c_str(),
                p.value("connected", false) ? "up" : "DOWN", contact.c_str(),
                p.value("last_error", std::string()).c_str());
  }
  return 0;
}

}  // namespace synod::cli
