// The Redis commands Synod serves, over any store that runs node::Requests.
// Replies follow Redis's texts, so clients and redis-cli behave as with
// Redis; intended differences are listed in the README.
//
// Each connection has a Session. Writes carry the session's dedupe id and a
// sequence number, so a write the cluster retries internally (a lost
// forwarded reply, a leader change mid-flight) applies once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/resp.h"
#include "node/node.h"
#include "placement/keyspace.h"

namespace synod::api {

class Store {
 public:
  virtual ~Store() = default;
  // Runs `request`; `done` is called exactly once, on the caller's loop.
  virtual void submit(node::Request request, std::function<void(node::Response)> done) = 0;
  // Lines for INFO's "# Synod" section ("key:value\r\n" each).
  virtual std::string info() = 0;
  // KEYSPACE: `done` (on the caller's loop) gets the answer as JSON, or an
  // error (runtime::NodeHost::keyspace_call).
  virtual void keyspace(placement::KeyspaceCall call,
                        std::function<void(base::Result<std::string>)> done) = 0;
};

struct Session {
  uint64_t id = 0;          // CLIENT ID
  uint64_t dedupe_id = 0;   // the writes' client id: unique in the cluster
  uint64_t sequence = 0;    // of the last write sent
  std::string name;         // CLIENT SETNAME
  bool quit = false;        // close after the reply
};

// The name a command is counted under in metrics: its lower-case name if
// Synod knows it, else "unknown" (so clients cannot create label values).
std::string metric_name(std::string_view command);

// Runs one command: writes its reply to `out`, then calls `done` (at once
// for commands that need no store).
void execute(Session& session, std::vector<std::string> args, RespWriter& out, Store& store,
             std::function<void()> done);

}  // namespace synod::api
