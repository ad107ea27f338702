// The HTTP admin API: GET /status (JSON: this node, its groups, its peers),
// GET /metrics (Prometheus text), GET /locate?key=K (the key's keyspace,
// partition and leader) and the keyspaces: GET /keyspaces (list),
// GET /keyspaces/NAME (describe, with the placement), POST
// /keyspaces/NAME?mode=strong&replicas=3&partitions=64 (create) and
// DELETE /keyspaces/NAME (drop). Errors are 400 (bad request, or refused
// by the meta group), 404 (no such keyspace) and 503 (no answer in time). cpp-httplib serves on its own thread;
// every answer is computed on the node's event loop, which the handler asks
// and waits for (up to 2 s, then 503), so no core state is read across
// threads. httplib's header stays in admin_server.cc.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "placement/keyspace.h"

namespace asio {
class io_context;
}

namespace synod::runtime {

struct AdminHandlers {
  std::function<std::string()> status_json;  // run on the loop
  std::function<std::string()> metrics_text;  // run on the loop
  // GET /locate?key=K: where the key lives (JSON); run on the loop.
  std::function<std::string(const std::string& key)> locate_json;
  // The /keyspaces calls; run on the loop, answering (JSON or an error)
  // through `done`, perhaps on a later turn.
  std::function<void(placement::KeyspaceCall, std::function<void(base::Result<std::string>)>)>
      keyspaces;
};

class AdminServer {
 public:
  AdminServer(asio::io_context& loop, std::string listen_address, AdminHandlers handlers);
  ~AdminServer();
  // Binds and starts serving on a thread of its own.
  base::Status start();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// GET http://HOST:PORT/PATH; the body, or an error (for `synod ctl`).
base::Result<std::string> http_get(const std::string& address, const std::string& path);
// GET, POST or DELETE; the body of a 2xx answer, else an error holding the
// status and the body the node sent (its reason).
base::Result<std::string> http_call(const std::string& address, const std::string& method,
                                    const std::string& path);

}  // namespace synod::runtime
