#include "api/commands.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/decimal.h"

namespace synod::api {
namespace {

using node::Request;
using node::Response;
using Args = std::vector<std::string>;
using Done = std::function<void()>;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}


void wrong_arity(RespWriter& out, std::string_view name) {
  out.error("ERR wrong number of arguments for '" + lower(name) + "' command");
}

// As Redis words it: the name cut at 128 bytes, then arguments quoted while
// the list is under 128 bytes (each cut to what is left), C strings (so an
// argument ends at its first NUL).
void unknown_command(RespWriter& out, const Args& args) {
  auto c_string = [](const std::string& text, size_t max) {
    std::string_view view(text.c_str());
    return std::string(view.substr(0, max));
  };
  std::string listed;
  for (size_t i = 1; i < args.size() && listed.size() < 128; ++i) {
    listed += "'" + c_string(args[i], 128 - listed.size()) + "' ";
  }
  out.error("ERR unknown command '" + c_string(args[0], 128) +
            "', with args beginning with: " + listed);
}

// The reply for a request the cluster could not run; false if it ran.
bool unavailable(const Response& response, RespWriter& out) {
  switch (response.status) {
    case Response::Status::kOk: return false;
    case Response::Status::kUnavailable:  // never proposed
    case Response::Status::kTimeout:      // may still apply: the reason says which
      out.error("TRYAGAIN " + response.reason);
      return true;
  }
  return false;
}

// A state machine error (an INCR of a non-integer...) as Redis words it.
bool command_error(const Response& response, RespWriter& out) {
  if (response.reply.kind != node::CommandReply::Kind::kError) return false;
  out.error(response.reply.error);
  return true;
}

Request read(std::string key) {
  Request request;
  request.kind = Request::Kind::kRead;
  request.key = std::move(key);
  return request;
}

Request write(Session& session, node::CommandOp op, std::string key, std::string value = {}) {
  Request request;
  request.kind = Request::Kind::kWrite;
  request.command.client_id = session.dedupe_id;
  request.command.sequence = ++session.sequence;
  request.command.op = op;
  request.command.key = std::move(key);
  request.command.value = std::move(value);
  return request;
}

// Runs `requests` one after another (each sees the ones before), then
// `finish` with every response; stops at the first the cluster could not run.
void run_all(Store& store, std::vector<Request> requests,
             std::function<void(std::vector<Response>)> finish) {
  struct State {
    std::vector<Request> requests;
    std::vector<Response> responses;
    std::function<void(std::vector<Response>)> finish;
    size_t next = 0;
  };
  auto state = std::make_shared<State>();
  state->requests = std::move(requests);
  state->finish = std::move(finish);
  auto step = std::make_shared<std::function<void()>>();
  *step = [&store, state, step] {
    if (state->next == state->requests.size() ||
        (!state->responses.empty() && state->responses.back().status != Response::Status::kOk)) {
      auto finish = std::move(state->finish);
      auto responses = std::move(state->responses);
      *step = nullptr;  // break the cycle
      finish(std::move(responses));
      return;
    }
    Request request = std::move(state->requests[state->next++]);
    store.submit(std::move(request), [state, step](Response response) {
      state->responses.push_back(std::move(response));
      (*step)();
    });
  };
  (*step)();
}

void run_one(Store& store, Request request, std::function<void(Response)> finish) {
  store.submit(std::move(request), std::move(finish));
}

void hello(Session& session, const Args& args, RespWriter& out) {
  size_t i = 1;
  if (args.size() >= 2) {
    auto version = base::parse_decimal_int64(args[1]);
    if (!version) {
      out.error("ERR Protocol version is not an integer or out of range");
      return;
    }
    if (*version != 2 && *version != 3) {
      out.error("NOPROTO unsupported protocol version");
      return;
    }
    i = 2;
    for (; i < args.size(); ++i) {
      const std::string option = lower(args[i]);
      if (option == "auth" && i + 2 < args.size()) {
        out.error("ERR AUTH <password> called without any password configured for the default "
                  "user. Are you sure your configuration is correct?");
        return;
      }
      if (option == "setname" && i + 1 < args.size()) {
        session.name = args[++i];
        continue;
      }
      out.error("ERR Syntax error in HELLO option '" + args[i] + "'");
      return;
    }
    out.set_protocol(static_cast<int>(*version));
  }
  out.map(7);
  out.bulk("server");
  out.bulk("redis");
  out.bulk("version");
  out.bulk("7.0.15");
  out.bulk("proto");
  out.integer(out.protocol());
  out.bulk("id");
  out.integer(static_cast<int64_t>(session.id));
  out.bulk("mode");
  out.bulk("standalone");
  out.bulk("role");
  out.bulk("master");
  out.bulk("modules");
  out.array(0);
}

void client(Session& session, const Args& args, RespWriter& out) {
  const std::string sub = args.size() >= 2 ? lower(args[1]) : "";
  if (sub == "setname" && args.size() == 3) {
    if (args[2].find_first_of(" \n") != std::string::npos) {
      out.error("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    session.name = args[2];
    out.simple("OK");
  } else if (sub == "getname" && args.size() == 2) {
    if (session.name.empty()) {
      out.null();
    } else {
      out.bulk(session.name);
    }
  } else if (sub == "id" && args.size() == 2) {
    out.integer(static_cast<int64_t>(session.id));
  } else if (sub == "setinfo" && args.size() == 4) {
    out.simple("OK");
  } else if (sub == "setname" || sub == "getname" || sub == "id") {
    out.error("ERR wrong number of arguments for 'client|" + sub + "' command");
  } else {
    out.error("ERR unknown subcommand '" + (args.size() >= 2 ? args[1] : std::string()) +
              "'. Try CLIENT HELP.");
  }
}

void config(const Args& args, RespWriter& out) {
  const std::string sub = args.size() >= 2 ? lower(args[1]) : "";
  if (sub != "get" || args.size() < 3) {
    if (sub == "get") {
      out.error("ERR wrong number of arguments for 'config|get' command");
    } else {
      out.error("ERR unknown subcommand '" + (args.size() >= 2 ? args[1] : std::string()) +
                "'. Try CONFIG HELP.");
    }
    return;
  }
  // What clients and redis-benchmark ask about: Synod's durability is its
  // own (every acknowledged write is fsynced on a majority), so it reports
  // no RDB snapshots and no AOF.
  std::vector<std::pair<std::string, std::string>> found;
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string name = lower(args[i]);
    if (name == "save") found.emplace_back("save", "");
    if (name == "appendonly") found.emplace_back("appendonly", "no");
    if (name == "databases") found.emplace_back("databases", "1");
  }
  out.map(found.size());
  for (const auto& [name, value] : found) {
    out.bulk(name);
    out.bulk(value);
  }
}

void set(Session& session, const Args& args, RespWriter& out, Store& store, Done done) {
  uint8_t flags = 0;
  uint64_t expire_at_ms = 0;
  bool has_expiry = false;
  for (size_t i = 3; i < args.size(); ++i) {
    const std::string option = lower(args[i]);
    const bool timed = option == "ex" || option == "px" || option == "exat" || option == "pxat";
    if (option == "nx" && !(flags & node::kSetIfPresent)) {
      flags |= node::kSetIfAbsent;
    } else if (option == "xx" && !(flags & node::kSetIfAbsent)) {
      flags |= node::kSetIfPresent;
    } else if (option == "get") {
      flags |= node::kSetReturnOld;
    } else if (option == "keepttl" && !has_expiry) {
      flags |= node::kSetKeepTtl;
    } else if (timed && !has_expiry && !(flags & node::kSetKeepTtl) && i + 1 < args.size()) {
      const auto amount = base::parse_decimal_int64(args[++i]);
      if (!amount) {
        out.error("ERR value is not an integer or out of range");
        return done();
      }
      const bool seconds = option == "ex" || option == "exat";
      const bool relative = option == "ex" || option == "px";
      // Redis's bounds: positive, and the absolute time in ms must not overflow.
      constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
      if (*amount <= 0 || (seconds && *amount > kMax / 1000)) {
        out.error("ERR invalid expire time in 'set' command");
        return done();
      }
      const int64_t ms = seconds ? *amount * 1000 : *amount;
      const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      if (relative && ms > kMax - now) {
        out.error("ERR invalid expire time in 'set' command");
        return done();
      }
      expire_at_ms = static_cast<uint64_t>(relative ? now + ms : ms);
      has_expiry = true;
    } else {
      out.error("ERR syntax error");
      return done();
    }
  }
  Request request = write(session, node::CommandOp::kSet, args[1], args[2]);
  request.command.flags = flags;
  request.command.expire_at_ms = expire_at_ms;
  run_one(store, std::move(request), [&out, flags, done = std::move(done)](Response response) {
    if (!unavailable(response, out) && !command_error(response, out)) {
      if (flags & node::kSetReturnOld) {
        if (response.reply.value) {
          out.bulk(*response.reply.value);
        } else {
          out.null();
        }
      } else if (response.reply.integer == 0) {
        out.null();  // NX or XX said no
      } else {
        out.simple("OK");
      }
    }
    done();
  });
}

void incr_by(Session& session, const std::string& key, int64_t delta, RespWriter& out,
             Store& store, Done done) {
  run_one(store, write(session, node::CommandOp::kIncrBy, key, std::to_string(delta)),
          [&out, done = std::move(done)](Response response) {
            if (!unavailable(response, out) && !command_error(response, out)) {
              out.integer(response.reply.integer);
            }
            done();
          });
}

constexpr std::string_view kCommands[] = {
    "append", "auth",  "cas",   "client", "command", "config", "decr",   "decrby", "del",
    "echo",   "exists", "get",  "getdel", "hello",   "incr",   "incrby", "info",   "keyspace",
    "mget",   "mset",  "ping",  "quit",   "select",  "set",    "strlen"};

// KEYSPACE CREATE name [option value]... | LIST | DESCRIBE name | DROP name.
void keyspace(Args& args, RespWriter& out, Store& store, Done done) {
  using Op = placement::KeyspaceCall::Op;
  const size_t n = args.size();
  const std::string sub = n >= 2 ? lower(args[1]) : "";
  placement::KeyspaceCall call;
  if (sub == "list" && n == 2) {
    call.op = Op::kList;
  } else if ((sub == "describe" || sub == "drop") && n == 3) {
    call.op = sub == "drop" ? Op::kDrop : Op::kDescribe;
    call.name = args[2];
  } else if (sub == "move" && n == 6) {
    call.op = Op::kMove;
    call.name = args[2];
    call.options = {{"partition", args[3]}, {"from", args[4]}, {"to", args[5]}};
  } else if (sub == "create" && n >= 3 && n % 2 == 1) {
    call.op = Op::kCreate;
    call.name = args[2];
    for (size_t i = 3; i + 1 < n; i += 2) call.options.emplace_back(args[i], args[i + 1]);
  } else {
    out.error("ERR usage: KEYSPACE CREATE name [MODE strong] [REPLICAS n] [PARTITIONS n] "
              "[ZONE-POLICY spread|any] | KEYSPACE LIST | KEYSPACE DESCRIBE name | "
              "KEYSPACE DROP name | KEYSPACE MOVE name partition from-node to-node");
    return done();
  }
  const Op op = call.op;
  store.keyspace(std::move(call), [&out, op, done = std::move(done)](
                                      base::Result<std::string> answer) {
    if (!answer) {
      const bool retry = answer.error().code() == base::Errc::kUnavailable;
      out.error((retry ? "TRYAGAIN " : "ERR ") + answer.error().message());
    } else if (op == Op::kList) {
      // The names, as Redis lists things; DESCRIBE gives the rest.
      const nlohmann::json list = nlohmann::json::parse(*answer, nullptr, false);
      out.array(list.is_array() ? list.size() : 0);
      if (list.is_array()) {
        for (const nlohmann::json& k : list) out.bulk(k.value("name", std::string()));
      }
    } else if (op == Op::kDrop || op == Op::kMove) {
      out.simple("OK");
    } else {
      out.bulk(*answer);
    }
    done();
  });
}

}  // namespace

std::string metric_name(std::string_view command) {
  const std::string name = lower(command);
  for (std::string_view known : kCommands) {
    if (known == name) return name;
  }
  return "unknown";
}

void execute(Session& session, Args args, RespWriter& out, Store& store, Done done) {
  const std::string name = lower(args[0]);
  const size_t n = args.size();
  if (name == "ping") {
    if (n > 2) {
      wrong_arity(out, name);
    } else if (n == 2) {
      out.bulk(args[1]);
    } else {
      out.simple("PONG");
    }
    return done();
  }
  if (name == "echo") {
    if (n != 2) {
      wrong_arity(out, name);
    } else {
      out.bulk(args[1]);
    }
    return done();
  }
  if (name == "quit") {
    out.simple("OK");
    session.quit = true;
    return done();
  }
  if (name == "select") {
    if (n != 2) {
      wrong_arity(out, name);
    } else if (auto index = base::parse_decimal_int64(args[1]); !index) {
      out.error("ERR value is not an integer or out of range");
    } else if (*index != 0) {
      out.error("ERR DB index is out of range");
    } else {
      out.simple("OK");
    }
    return done();
  }
  if (name == "hello") {
    hello(session, args, out);
    return done();
  }
  if (name == "auth") {
    if (n < 2 || n > 3) {
      wrong_arity(out, name);
    } else if (n == 3) {
      out.error("WRONGPASS invalid username-password pair or user is disabled.");
    } else {
      out.error("ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?");
    }
    return done();
  }
  if (name == "client") {
    if (n < 2) {
      wrong_arity(out, name);
    } else {
      client(session, args, out);
    }
    return done();
  }
  if (name == "config") {
    if (n < 2) {
      wrong_arity(out, name);
    } else {
      config(args, out);
    }
    return done();
  }
  if (name == "command") {
    // Enough for redis-cli, which asks for COMMAND DOCS to offer hints.
    const std::string sub = n >= 2 ? lower(args[1]) : "";
    if (sub == "count") {
      out.integer(0);
    } else if (sub == "docs") {
      out.map(0);
    } else {
      out.array(0);
    }
    return done();
  }
  if (name == "keyspace") return keyspace(args, out, store, std::move(done));
  if (name == "info") {
    std::string text = "# Server\r\nredis_version:7.0.15\r\nsynod:1\r\nredis_mode:standalone\r\n"
                       "\r\n# Synod\r\n" + store.info();
    out.bulk(text);
    return done();
  }
  if (name == "get" || name == "strlen") {
    if (n != 2) {
      wrong_arity(out, name);
      return done();
    }
    const bool strlen = name == "strlen";
    return run_one(store, read(args[1]), [&out, strlen, done = std::move(done)](Response response) {
      if (!unavailable(response, out)) {
        if (strlen) {
          out.integer(response.value ? static_cast<int64_t>(response.value->size()) : 0);
        } else if (response.value) {
          out.bulk(*response.value);
        } else {
          out.null();
        }
      }
      done();
    });
  }
  if (name == "set") {
    if (n < 3) {
      wrong_arity(out, name);
      return done();
    }
    return set(session, args, out, store, std::move(done));
  }
  if (name == "getdel") {
    if (n != 2) {
      wrong_arity(out, name);
      return done();
    }
    return run_one(store, write(session, node::CommandOp::kGetDel, args[1]),
                   [&out, done = std::move(done)](Response response) {
                     if (!unavailable(response, out) && !command_error(response, out)) {
                       if (response.reply.value) {
                         out.bulk(*response.reply.value);
                       } else {
                         out.null();
                       }
                     }
                     done();
                   });
  }
  if (name == "cas") {
    if (n != 4) {
      wrong_arity(out, name);
      return done();
    }
    Request request = write(session, node::CommandOp::kCas, args[1], args[3]);
    request.command.expected = args[2];
    return run_one(store, std::move(request), [&out, done = std::move(done)](Response response) {
      if (!unavailable(response, out) && !command_error(response, out)) {
        out.integer(response.reply.integer);
      }
      done();
    });
  }
  if (name == "incr" || name == "decr") {
    if (n != 2) {
      wrong_arity(out, name);
      return done();
    }
    return incr_by(session, args[1], name == "incr" ? 1 : -1, out, store, std::move(done));
  }
  if (name == "incrby" || name == "decrby") {
    if (n != 3) {
      wrong_arity(out, name);
      return done();
    }
    auto delta = base::parse_decimal_int64(args[2]);
    if (!delta || (name == "decrby" && *delta == std::numeric_limits<int64_t>::min())) {
      out.error(name == "decrby" && delta ? "ERR decrement would overflow"
                                          : "ERR value is not an integer or out of range");
      return done();
    }
    return incr_by(session, args[1], name == "incrby" ? *delta : -*delta, out, store,
                   std::move(done));
  }
  if (name == "append") {
    if (n != 3) {
      wrong_arity(out, name);
      return done();
    }
    return run_one(store, write(session, node::CommandOp::kAppend, args[1], args[2]),
                   [&out, done = std::move(done)](Response response) {
                     if (!unavailable(response, out) && !command_error(response, out)) {
                       out.integer(response.reply.integer);
                     }
                     done();
                   });
  }
  if (name == "del" || name == "exists" || name == "mget") {
    if (n < 2) {
      wrong_arity(out, name);
      return done();
    }
    std::vector<Request> requests;
    for (size_t i = 1; i < n; ++i) {
      requests.push_back(name == "del" ? write(session, node::CommandOp::kDelete, args[i])
                                       : read(args[i]));
    }
    return run_all(store, std::move(requests),
                   [&out, name, count = n - 1, done = std::move(done)](std::vector<Response> rs) {
                     if (rs.size() < count || (!rs.empty() && rs.back().status != Response::Status::kOk)) {
                       unavailable(rs.back(), out);
                       return done();
                     }
                     if (name == "mget") {
                       out.array(rs.size());
                       for (const Response& r : rs) {
                         if (r.value) {
                           out.bulk(*r.value);
                         } else {
                           out.null();
                         }
                       }
                     } else {
                       int64_t total = 0;
                       for (const Response& r : rs) {
                         total += name == "del" ? r.reply.integer : (r.value ? 1 : 0);
                       }
                       out.integer(total);
                     }
                     done();
                   });
  }
  if (name == "mset") {
    if (n < 3 || n % 2 == 0) {
      wrong_arity(out, name);
      return done();
    }
    std::vector<Request> requests;
    for (size_t i = 1; i + 1 < n; i += 2) {
      requests.push_back(write(session, node::CommandOp::kPut, args[i], args[i + 1]));
    }
    return run_all(store, std::move(requests),
                   [&out, count = (n - 1) / 2, done = std::move(done)](std::vector<Response> rs) {
                     if (rs.size() < count || rs.back().status != Response::Status::kOk) {
                       unavailable(rs.back(), out);
                     } else {
                       out.simple("OK");
                     }
                     done();
                   });
  }
  unknown_command(out, args);
  done();
}

}  // namespace synod::api
