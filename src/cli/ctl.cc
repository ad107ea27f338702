// `synod ctl`: asks a node's admin API and prints the answer for a person
// (a table) or a script (--json).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
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

// Percent-encodes all but the unreserved characters.
std::string url_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

int locate(const CtlOptions& options) {
  if (options.args.size() != 1) {
    std::fprintf(stderr, "synod ctl: usage: synod ctl --admin HOST:PORT locate KEY\n");
    return 2;
  }
  const std::string path = "/locate?key=" + url_encode(options.args[0]);
  std::string body;
  if (std::optional<int> done = fetch(options, path, &body)) return *done;
  try {
    const nlohmann::json json = nlohmann::json::parse(body);
    const uint64_t leader = json.at("leader").get<uint64_t>();
    std::printf("keyspace %s, partition %llu (group %llu), leader %s%s\n",
                json.value("keyspace", std::string("default")).c_str(),
                static_cast<unsigned long long>(json.at("partition").get<uint64_t>()),
                static_cast<unsigned long long>(json.at("group").get<uint64_t>()),
                leader == 0 ? "unknown" : ("node " + std::to_string(leader)).c_str(),
                json.contains("not_served")
                    ? (" (not served now: " + json["not_served"].get<std::string>() + ")").c_str()
                    : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "synod ctl: %s answered something unexpected: %s\n",
                 options.admin.c_str(), e.what());
    return 1;
  }
  return 0;
}

int print_keyspaces(const std::string& body) {
  const nlohmann::json list = nlohmann::json::parse(body);
  std::printf("%-24s %-9s %-9s %-11s %-9s\n", "KEYSPACE", "MODE", "REPLICAS", "PARTITIONS",
              "STATE");
  for (const nlohmann::json& k : list) {
    std::printf("%-24s %-9s %-9llu %-11llu %-9s\n", k.at("name").get<std::string>().c_str(),
                k.at("mode").get<std::string>().c_str(),
                static_cast<unsigned long long>(k.at("replicas").get<uint64_t>()),
                static_cast<unsigned long long>(k.at("partitions").get<uint64_t>()),
                k.at("state").get<std::string>().c_str());
  }
  return 0;
}

int print_keyspace(const std::string& body) {
  const nlohmann::json k = nlohmann::json::parse(body);
  std::printf("keyspace %s: %s, %llu partitions x %llu replicas, zones %s, %s\n",
              k.at("name").get<std::string>().c_str(), k.at("mode").get<std::string>().c_str(),
              static_cast<unsigned long long>(k.at("partitions").get<uint64_t>()),
              static_cast<unsigned long long>(k.at("replicas").get<uint64_t>()),
              k.at("zone_policy").get<std::string>().c_str(), k.at("state").get<std::string>().c_str());
  std::printf("\n%-10s %-10s %-16s %-8s %s\n", "PARTITION", "GROUP", "REPLICAS", "LEADER",
              "CONFIGURATION (here)");
  for (const nlohmann::json& p : k.at("placement")) {
    std::string replicas;
    for (const nlohmann::json& r : p.at("replicas")) {
      replicas += (replicas.empty() ? "" : ",") + std::to_string(r.get<uint64_t>());
    }
    const uint64_t leader = p.at("leader").get<uint64_t>();
    std::string conf = "-";
    if (p.contains("voters")) {
      conf = "voters";
      for (const nlohmann::json& v : p.at("voters")) conf += " " + std::to_string(v.get<uint64_t>());
      if (!p.at("learners").empty()) {
        conf += ", learners";
        for (const nlohmann::json& l : p.at("learners")) conf += " " + std::to_string(l.get<uint64_t>());
      }
      if (p.value("joint", false)) conf += " (joint)";
    }
    std::printf("%-10llu %-10llu %-16s %-8s %s\n",
                static_cast<unsigned long long>(p.at("partition").get<uint64_t>()),
                static_cast<unsigned long long>(p.at("group").get<uint64_t>()), replicas.c_str(),
                leader == 0 ? "-" : std::to_string(leader).c_str(), conf.c_str());
  }
  return 0;
}

// Polls the keyspace until `done` says so (up to 15 s); its last answer, if any.
std::optional<base::Result<std::string>> wait_for(
    const CtlOptions& options, const std::string& name,
    const std::function<bool(const base::Result<std::string>&)>& done) {
  std::optional<base::Result<std::string>> last;
  for (int i = 0; i < 60; ++i) {
    last = runtime::http_call(options.admin, "GET", "/keyspaces/" + url_encode(name));
    if (done(*last)) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return std::nullopt;
}

int keyspace(const CtlOptions& options) {
  const std::vector<std::string>& a = options.args;
  const std::string verb = a.empty() ? "" : a[0];
  const bool named = verb == "create" || verb == "drop" || verb == "describe";
  if ((named && a.size() != 2) || (verb == "list" && a.size() != 1) ||
      (verb == "move" && a.size() != 5) || (!named && verb != "list" && verb != "move")) {
    std::fprintf(stderr,
                 "synod ctl: usage: synod ctl --admin HOST:PORT keyspace create NAME [--mode strong] "
                 "[--replicas 3] [--partitions 64] [--zone-policy spread] [--no-wait]\n"
                 "                  keyspace list | describe NAME | drop NAME [--no-wait]\n"
                 "                  keyspace move NAME PARTITION FROM-NODE TO-NODE\n");
    return 2;
  }
  auto failed = [](const base::Error& error) {
    std::fprintf(stderr, "synod ctl: %s\n", error.message().c_str());
    return 1;
  };
  try {
    if (verb == "list") {
      auto got = runtime::http_call(options.admin, "GET", "/keyspaces");
      if (!got) return failed(got.error());
      if (options.json) return std::fwrite(got->data(), 1, got->size(), stdout), 0;
      return print_keyspaces(*got);
    }
    const std::string name = a[1];
    const std::string path = "/keyspaces/" + url_encode(name);
    if (verb == "move") {
      auto got = runtime::http_call(options.admin, "POST",
                                    path + "/move?partition=" + url_encode(a[2]) +
                                        "&from=" + url_encode(a[3]) + "&to=" + url_encode(a[4]));
      if (!got) return failed(got.error());
      if (options.json) return std::fwrite(got->data(), 1, got->size(), stdout), 0;
      std::printf("keyspace %s partition %s moves from node %s to node %s (the group's leader adds "
                  "it as a learner, then swaps it in by joint consensus; see keyspace describe)\n",
                  name.c_str(), a[2].c_str(), a[3].c_str(), a[4].c_str());
      return 0;
    }
    if (verb == "describe") {
      auto got = runtime::http_call(options.admin, "GET", path);
      if (!got) return failed(got.error());
      if (options.json) return std::fwrite(got->data(), 1, got->size(), stdout), 0;
      return print_keyspace(*got);
    }
    if (verb == "create") {
      std::string query;
      auto add = [&](const char* option, const std::string& value) {
        if (value.empty()) return;
        query += (query.empty() ? "?" : "&") + std::string(option) + "=" + url_encode(value);
      };
      add("mode", options.mode);
      add("replicas", options.replicas);
      add("partitions", options.partitions);
      add("zone-policy", options.zone_policy);
      auto got = runtime::http_call(options.admin, "POST", path + query);
      if (!got) return failed(got.error());
      if (!options.no_wait) {
        auto active = wait_for(options, name, [](const base::Result<std::string>& r) {
          return r && nlohmann::json::parse(*r).value("state", "") == "active";
        });
        if (!active) {
          std::fprintf(stderr, "synod ctl: keyspace %s was created but is not active after 15 s\n",
                       name.c_str());
          return 1;
        }
        got = std::move(**active);
      }
      if (options.json) return std::fwrite(got->data(), 1, got->size(), stdout), 0;
      return print_keyspace(*got);
    }
    // drop
    auto got = runtime::http_call(options.admin, "DELETE", path);
    if (!got) return failed(got.error());
    if (!options.no_wait) {
      auto gone = wait_for(options, name, [](const base::Result<std::string>& r) {
        return !r && r.error().code() == base::Errc::kNotFound;
      });
      if (!gone) {
        std::fprintf(stderr, "synod ctl: keyspace %s is dropping but not gone after 15 s\n",
                     name.c_str());
        return 1;
      }
    }
    std::printf("keyspace %s %s\n", name.c_str(),
                options.no_wait ? "is dropping (its keys are refused until it is gone)"
                                : "dropped; its keys belong to default again");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "synod ctl: %s answered something unexpected: %s\n",
                 options.admin.c_str(), e.what());
    return 1;
  }
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
  if (options.command == "keyspace") return keyspace(options);
  if (options.command != "status") {
    std::fprintf(stderr,
                 "synod ctl: unknown command \"%s\" (try: status, metrics, locate KEY, keyspace)\n",
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
  if (status.contains("placement")) {
    std::printf("\n%-24s %-9s %-11s %s\n", "KEYSPACE", "STATE", "PARTITIONS",
                "REPLICAS PER NODE");
    for (const auto& k : status["placement"]) {
      std::string loads;
      for (const auto& [node, count] : k["replicas_per_node"].items()) {
        loads += (loads.empty() ? "" : "  ") + std::string("node ") + node + ": " +
                 std::to_string(count.get<uint64_t>());
      }
      std::printf("%-24s %-9s %-11llu %s\n", k.value("keyspace", std::string()).c_str(),
                  k.value("state", std::string()).c_str(),
                  static_cast<unsigned long long>(k.value("partitions", 0ull)), loads.c_str());
    }
  }
  if (status.contains("moves") && !status["moves"].empty()) {
    auto ids = [](const nlohmann::json& list) {
      std::string text;
      for (const auto& id : list) text += (text.empty() ? "" : ",") + std::to_string(id.get<uint64_t>());
      return text.empty() ? std::string("-") : text;
    };
    std::printf("\nMOVES (driven by this node, the groups' leader)\n%-34s %-10s %-10s %-10s %s\n",
                "GROUP", "TARGET", "VOTERS", "LEARNERS", "PROGRESS");
    for (const auto& m : status["moves"]) {
      std::string progress = m.value("joint", false) ? "joint configuration" : "";
      if (m.value("learner", 0ull) != 0) {
        const uint64_t match = m.value("learner_match", 0ull), last = m.value("last_index", 0ull);
        progress = "node " + std::to_string(m.value("learner", 0ull)) + " catching up: " +
                   std::to_string(match) + "/" + std::to_string(last) + " (" +
                   std::to_string(last == 0 ? 100 : match * 100 / last) + "%)";
      }
      if (progress.empty()) progress = "changing configuration";
      std::printf("%-34s %-10s %-10s %-10s %s\n", m.value("name", std::string()).c_str(),
                  ids(m["target"]).c_str(), ids(m["voters"]).c_str(), ids(m["learners"]).c_str(),
                  progress.c_str());
    }
  }
  return 0;
}

}  // namespace synod::cli
