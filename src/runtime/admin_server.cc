#include "runtime/admin_server.h"

#include <httplib.h>

#include <asio.hpp>
#include <future>
#include <thread>

#include "runtime/peer_transport.h"

namespace synod::runtime {

struct AdminServer::Impl {
  asio::io_context& loop;
  std::string address;
  AdminHandlers handlers;
  httplib::Server server;
  std::thread thread;

  Impl(asio::io_context& l, std::string a, AdminHandlers h)
      : loop(l), address(std::move(a)), handlers(std::move(h)) {}

  // Runs `produce` on the loop and waits for its answer.
  std::optional<std::string> on_loop(const std::function<std::string()>& produce) {
    auto promise = std::make_shared<std::promise<std::string>>();
    std::future<std::string> future = promise->get_future();
    asio::post(loop, [promise, produce] { promise->set_value(produce()); });
    if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) return std::nullopt;
    return future.get();
  }

  // Runs a keyspace call on the loop and waits for its answer (creating
  // one waits for the meta group to commit it).
  void serve_keyspaces(placement::KeyspaceCall call, httplib::Response& response) {
    if (!handlers.keyspaces) {
      response.status = 404;
      response.set_content("this node serves no keyspace calls\n", "text/plain");
      return;
    }
    auto promise = std::make_shared<std::promise<base::Result<std::string>>>();
    auto future = promise->get_future();
    // The handler is copied in: the loop may run this after the wait below
    // gave up and the server went away.
    asio::post(loop, [handler = handlers.keyspaces, promise, call = std::move(call)]() mutable {
      handler(std::move(call), [promise](base::Result<std::string> answer) {
        promise->set_value(std::move(answer));
      });
    });
    if (future.wait_for(std::chrono::seconds(15)) != std::future_status::ready) {
      response.status = 503;
      response.set_content("the node did not answer within 15 s\n", "text/plain");
      return;
    }
    base::Result<std::string> answer = future.get();
    if (answer) {
      response.set_content(*answer, "application/json");
      return;
    }
    switch (answer.error().code()) {
      case base::Errc::kInvalidArgument: response.status = 400; break;
      case base::Errc::kNotFound: response.status = 404; break;
      case base::Errc::kUnavailable: response.status = 503; break;
      default: response.status = 500; break;
    }
    response.set_content(answer.error().message() + "\n", "text/plain");
  }

  void serve(const std::function<std::string()>& produce, const char* type,
             httplib::Response& response) {
    auto body = on_loop(produce);
    if (!body) {
      response.status = 503;
      response.set_content("the node's event loop did not answer within 2 s\n", "text/plain");
      return;
    }
    response.set_content(*body, type);
  }
};

AdminServer::AdminServer(asio::io_context& loop, std::string listen_address,
                         AdminHandlers handlers)
    : impl_(std::make_unique<Impl>(loop, std::move(listen_address), std::move(handlers))) {}

AdminServer::~AdminServer() { stop(); }

base::Status AdminServer::start() {
  auto parts = split_address(impl_->address);
  if (!parts) return parts.error();
  Impl* impl = impl_.get();
  impl->server.Get("/status", [impl](const httplib::Request&, httplib::Response& response) {
    impl->serve(impl->handlers.status_json, "application/json", response);
  });
  impl->server.Get("/metrics", [impl](const httplib::Request&, httplib::Response& response) {
    impl->serve(impl->handlers.metrics_text, "text/plain; version=0.0.4", response);
  });
  impl->server.Get("/locate", [impl](const httplib::Request& request, httplib::Response& response) {
    if (!request.has_param("key") || !impl->handlers.locate_json) {
      response.status = 400;
      response.set_content("usage: /locate?key=KEY\n", "text/plain");
      return;
    }
    const std::string key = request.get_param_value("key");
    impl->serve([impl, key] { return impl->handlers.locate_json(key); }, "application/json",
                response);
  });
  using Call = placement::KeyspaceCall;
  // A handler for `op` on the keyspace the path names (if it names one),
  // with the query's parameters as the call's options.
  auto keyspace_handler = [impl](Call::Op op) {
    return [impl, op](const httplib::Request& request, httplib::Response& response) {
      Call call{op, request.matches.size() > 1 ? std::string(request.matches[1]) : "", {}};
      for (const auto& [name, value] : request.params) call.options.emplace_back(name, value);
      impl->serve_keyspaces(std::move(call), response);
    };
  };
  impl->server.Get("/keyspaces", keyspace_handler(Call::Op::kList));
  impl->server.Get(R"(/keyspaces/([^/]+))", keyspace_handler(Call::Op::kDescribe));
  impl->server.Post(R"(/keyspaces/([^/]+))", keyspace_handler(Call::Op::kCreate));
  impl->server.Post(R"(/keyspaces/([^/]+)/move)", keyspace_handler(Call::Op::kMove));
  impl->server.Delete(R"(/keyspaces/([^/]+))", keyspace_handler(Call::Op::kDrop));
  if (!impl->server.bind_to_port(parts->first, parts->second)) {
    return base::Error(base::Errc::kIo, "cannot listen for the admin API on " + impl->address);
  }
  impl->thread = std::thread([impl] { impl->server.listen_after_bind(); });
  return {};
}

void AdminServer::stop() {
  if (!impl_) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

base::Result<std::string> http_get(const std::string& address, const std::string& path) {
  return http_call(address, "GET", path);
}

base::Result<std::string> http_call(const std::string& address, const std::string& method,
                                    const std::string& path) {
  auto parts = split_address(address);
  if (!parts) return parts.error();
  httplib::Client client(parts->first, parts->second);
  client.set_connection_timeout(3);
  client.set_read_timeout(20);  // a create waits for the meta group
  httplib::Result result = method == "POST"     ? client.Post(path)
                           : method == "DELETE" ? client.Delete(path)
                                                : client.Get(path);
  if (!result) {
    return base::Error(base::Errc::kIo, "cannot reach " + address + ": " +
                                            httplib::to_string(result.error()));
  }
  if (result->status / 100 != 2) {
    std::string body = result->body;
    while (!body.empty() && body.back() == '\n') body.pop_back();
    const base::Errc code = result->status == 404   ? base::Errc::kNotFound
                            : result->status == 400 ? base::Errc::kInvalidArgument
                                                    : base::Errc::kIo;
    return base::Error(code, address + " answered " + std::to_string(result->status) + ": " + body);
  }
  return result->body;
}

}  // namespace synod::runtime
