// The RESP listener: accepts Redis clients on the node's event loop and runs
// their commands against a Store, one command at a time per connection and
// in order (pipelined requests are answered in the order they came).
//
// Bounds (README, "Limits"): the parser's (bulk length, argument count,
// inline length, query buffer); at most `clients_max` connections (more get
// Redis's "-ERR max number of clients reached" and are closed); a client
// that leaves a request incomplete for `partial_request_timeout_ms` (a
// slow-loris) is disconnected. A protocol error answers
// `-ERR Protocol error: ...` and closes that connection only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/commands.h"
#include "api/resp.h"

namespace asio {
class io_context;
}
namespace synod::runtime {
class Metrics;
}

namespace synod::api {

struct RespServerOptions {
  std::string listen_address;  // host:port
  RespLimits limits;
  size_t clients_max = 10000;
  uint32_t partial_request_timeout_ms = 30000;
  // Replies buffered before they are flushed mid-pipeline.
  size_t reply_flush_bytes = 64 * 1024;
  // Commands by name and result, their latency, clients, bytes (optional).
  runtime::Metrics* metrics = nullptr;
};

class RespServer {
 public:
  RespServer(asio::io_context& loop, RespServerOptions options, Store& store,
             std::function<void(const std::string&)> log);
  ~RespServer();
  base::Status start();
  void stop();
  size_t clients() const;
  // The port actually bound (useful with port 0).
  uint16_t port() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace synod::api
