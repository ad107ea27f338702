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
  auto parts = split_address(address);
  if (!parts) return parts.error();
  httplib::Client client(parts->first, parts->second);
  client.set_connection_timeout(3);
  client.set_read_timeout(5);
  auto result = client.Get(path);
  if (!result) {
    return base::Error(base::Errc::kIo, "cannot reach " + address + ": " +
                                            httplib::to_string(result.error()));
  }
  if (result->status != 200) {
    return base::Error(base::Errc::kIo, address + path + " answered " +
                                            std::to_string(result->status) + ": " + result->body);
  }
  return result->body;
}

}  // namespace synod::runtime
