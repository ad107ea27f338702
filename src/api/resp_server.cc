#include "api/resp_server.h"

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <random>
#include <set>

#include "base/result.h"
#include "runtime/listen.h"
#include "runtime/metrics.h"

namespace synod::api {

using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using asio::ip::tcp;

struct RespServer::Impl : std::enable_shared_from_this<RespServer::Impl> {
  Impl(asio::io_context& l, RespServerOptions o, Store& s, std::function<void(const std::string&)> g)
      : loop(l), options(std::move(o)), store(s), log(std::move(g)), acceptor(l) {
    std::random_device device;
    session_salt = (uint64_t{device()} << 32) ^ device();
  }

  asio::io_context& loop;
  RespServerOptions options;
  Store& store;
  std::function<void(const std::string&)> log;
  tcp::acceptor acceptor;
  std::set<std::shared_ptr<tcp::socket>> sockets;
  uint64_t next_client_id = 1;
  uint64_t session_salt = 0;
  bool stopped = false;

  base::Status start() {
    if (auto listening = runtime::listen_on(acceptor, options.listen_address, "clients");
        !listening) {
      return listening;
    }
    asio::co_spawn(loop, accept_loop(shared_from_this()), asio::detached);
    return {};
  }

  void stop() {
    stopped = true;
    asio::error_code ignored;
    acceptor.close(ignored);
    for (const auto& socket : sockets) socket->close(ignored);
  }

  static awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    asio::steady_timer pause(self->loop);
    while (!self->stopped) {
      auto [error, socket] = co_await self->acceptor.async_accept(as_tuple(use_awaitable));
      if (error) {
        if (self->stopped) co_return;
        // Out of file descriptors, most likely: wait rather than spin.
        pause.expires_after(std::chrono::milliseconds(100));
        co_await pause.async_wait(as_tuple(use_awaitable));
        continue;
      }
      auto shared = std::make_shared<tcp::socket>(std::move(socket));
      if (self->sockets.size() >= self->options.clients_max) {
        const std::string reply = "-ERR max number of clients reached\r\n";
        co_await asio::async_write(*shared, asio::buffer(reply), as_tuple(use_awaitable));
        asio::error_code ignored;
        shared->close(ignored);
        continue;
      }
      self->sockets.insert(shared);
      if (self->options.metrics) self->options.metrics->add("synod_client_connections_total", "");
      asio::co_spawn(self->loop, connection(self, shared),
                     [self, shared](std::exception_ptr e) {
                       // Whatever happened, the slot is given back.
                       self->sockets.erase(shared);
                       if (!e) return;
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         if (self->log) self->log(std::string("client connection failed: ") + ex.what());
                       }
                     });
    }
  }

  // Waits for `execute` to call its `done`.
  static awaitable<void> run(Session& session, std::vector<std::string> args, RespWriter& out,
                             Store& store) {
    co_await asio::async_initiate<decltype(use_awaitable), void()>(
        [&](auto handler) {
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          execute(session, std::move(args), out, store, [shared] {
            auto executor = asio::get_associated_executor(*shared);
            asio::post(executor, std::move(*shared));
          });
        },
        use_awaitable);
  }

  static awaitable<void> connection(std::shared_ptr<Impl> self, std::shared_ptr<tcp::socket> socket) {
    asio::error_code ignored;
    socket->set_option(tcp::no_delay(true), ignored);
    Session session;
    session.id = self->next_client_id++;
    // A dedupe id no other connection, on any node, before or after a
    // restart, will use: random bits with the connection number mixed in.
    session.dedupe_id = (self->session_salt ^ (session.id * 0x9e3779b97f4a7c15ULL)) | 1;
    RespParser parser(self->options.limits);
    RespWriter out;
    std::vector<char> buffer(16 * 1024);
    std::vector<std::string> args;
    std::string error;
    // A request left incomplete too long (a slow-loris) closes the connection.
    asio::steady_timer partial(self->loop);
    bool partial_armed = false;
    auto flush = [&]() -> awaitable<bool> {
      if (out.buffer().empty()) co_return true;
      std::string bytes = out.take();
      if (self->options.metrics) {
        self->options.metrics->add("synod_client_sent_bytes_total", "", bytes.size());
      }
      auto [e, n] = co_await asio::async_write(*socket, asio::buffer(bytes), as_tuple(use_awaitable));
      co_return !e;
    };
    bool open = true;
    while (open && !self->stopped) {
      auto [read_error, n] = co_await socket->async_read_some(asio::buffer(buffer),
                                                             as_tuple(use_awaitable));
      if (read_error) break;
      parser.feed(std::string_view(buffer.data(), n));
      if (self->options.metrics) self->options.metrics->add("synod_client_received_bytes_total", "", n);
      size_t completed = 0;
      while (open) {
        const auto status = parser.next(&args, &error);
        if (status == RespParser::Status::kNeedMore) break;
        if (status == RespParser::Status::kError) {
          out.error(error);
          co_await flush();
          open = false;
          break;
        }
        const size_t reply_start = out.buffer().size();
        const auto started = std::chrono::steady_clock::now();
        const std::string command = self->options.metrics ? metric_name(args[0]) : std::string();
        // A complete command is not a slow-loris, however long it runs.
        if (partial_armed) {
          partial.cancel();
          partial_armed = false;
        }
        co_await run(session, std::move(args), out, self->store);
        args.clear();
        ++completed;
        if (runtime::Metrics* m = self->options.metrics) {
          const bool error = out.buffer().size() > reply_start && out.buffer()[reply_start] == '-';
          const std::string labels = "command=\"" + command + "\"";
          m->add("synod_commands_total", labels + ",result=\"" + (error ? "error" : "ok") + "\"");
          m->observe("synod_command_duration_seconds", labels,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        }
        if (session.quit) {
          co_await flush();
          open = false;
          break;
        }
        if (out.buffer().size() >= self->options.reply_flush_bytes && !co_await flush()) {
          open = false;
        }
      }
      if (open && !co_await flush()) break;
      // The clock runs while a request stays incomplete and no command
      // completes: a busy pipeline that keeps finishing commands is fine.
      if (parser.in_request() && (!partial_armed || completed > 0)) {
        if (partial_armed) partial.cancel();
        partial_armed = true;
        partial.expires_after(std::chrono::milliseconds(self->options.partial_request_timeout_ms));
        partial.async_wait([socket](const asio::error_code& e) {
          if (!e) {
            asio::error_code ignored_close;
            socket->close(ignored_close);
          }
        });
      } else if (!parser.in_request() && partial_armed) {
        partial_armed = false;
        partial.cancel();
      }
    }
    partial.cancel();
    socket->close(ignored);
    self->sockets.erase(socket);
  }
};

RespServer::RespServer(asio::io_context& loop, RespServerOptions options, Store& store,
                       std::function<void(const std::string&)> log)
    : impl_(std::make_shared<Impl>(loop, std::move(options), store, std::move(log))) {}
RespServer::~RespServer() { impl_->stop(); }
base::Status RespServer::start() { return impl_->start(); }
void RespServer::stop() { impl_->stop(); }
size_t RespServer::clients() const { return impl_->sockets.size(); }
uint16_t RespServer::port() const {
  asio::error_code error;
  auto endpoint = impl_->acceptor.local_endpoint(error);
  return error ? 0 : endpoint.port();
}

}  // namespace synod::api
