#include "runtime/peer_transport.h"

#include <algorithm>
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <deque>
#include <random>

#include "base/frame.h"
#include "membership/phi_accrual.h"
#include "runtime/listen.h"
#include "runtime/wire_codec.h"

namespace synod::runtime {

using asio::awaitable;
using asio::experimental::as_tuple;
using asio::use_awaitable;
using asio::ip::tcp;

base::Result<std::pair<std::string, uint16_t>> split_address(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return base::Error(base::Errc::kInvalidArgument,
                       "address \"" + address + "\" is not HOST:PORT");
  }
  const std::string port_text = address.substr(colon + 1);
  if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), ::isdigit)) {
    return base::Error(base::Errc::kInvalidArgument, "port in \"" + address + "\" is not a number");
  }
  const unsigned long port = std::stoul(port_text);
  if (port > 65535) {
    return base::Error(base::Errc::kInvalidArgument, "port in \"" + address + "\" is over 65535");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::make_pair(host, static_cast<uint16_t>(port));
}

namespace {

struct Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  uint64_t peer = 0;
  std::deque<std::string> queue;
  uint64_t queued_bytes = 0;
  bool writing = false;
  bool open = true;
};

std::string frame(PeerFrame type, std::string_view payload) {
  std::string out;
  base::append_frame(out, static_cast<uint8_t>(type), payload);
  return out;
}

}  // namespace

struct PeerTransport::Impl : std::enable_shared_from_this<PeerTransport::Impl> {
  struct Peer {
    uint64_t id = 0;
    std::string address;
    std::shared_ptr<Connection> connection;
    PeerState state;
    std::unique_ptr<asio::steady_timer> retry;
    std::optional<std::chrono::steady_clock::time_point> last_contact;
    std::chrono::steady_clock::time_point last_sent;
    membership::PhiAccrualDetector detector;
    bool suspected = false;
  };

  Impl(asio::io_context& l, PeerTransportOptions o, OnMessage m, Log g)
      : loop(l), options(std::move(o)), on_message(std::move(m)), log(std::move(g)),
        acceptor(l), rng(std::random_device{}()), heartbeat_timer(l),
        started_at(std::chrono::steady_clock::now()) {}

  asio::io_context& loop;
  PeerTransportOptions options;
  OnMessage on_message;
  Log log;
  tcp::acceptor acceptor;
  std::map<uint64_t, Peer> peers;
  std::mt19937_64 rng;  // backoff jitter only
  bool stopped = false;
  size_t handshakes = 0;
  asio::steady_timer heartbeat_timer;
  std::chrono::steady_clock::time_point started_at;

  // The detectors' clock: milliseconds since this transport was made.
  uint64_t now_ms() const {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started_at)
                                     .count());
  }

  // Every interval: an empty envelope to each connected peer that has had
  // nothing from us for that long, and suspicion changes logged.
  void heartbeat() {
    if (stopped) return;
    const auto now = std::chrono::steady_clock::now();
    const auto interval = std::chrono::milliseconds(options.heartbeat_interval_ms);
    for (auto& [id, peer] : peers) {
      if (peer.connection && peer.connection->open && now - peer.last_sent >= interval) {
        send(id, {});
      }
      const double phi = peer.detector.phi(now_ms());
      const bool suspected = phi >= options.phi_threshold;
      if (suspected != peer.suspected) {
        char line[160];
        std::snprintf(line, sizeof line, "peer %llu %s (phi %.1f, threshold %.1f)",
                      static_cast<unsigned long long>(id),
                      suspected ? "suspected" : "trusted again", phi, options.phi_threshold);
        log(line);
        peer.suspected = suspected;
      }
    }
    heartbeat_timer.expires_after(interval);
    heartbeat_timer.async_wait([self = weak_from_this()](const asio::error_code& error) {
      auto impl = self.lock();
      if (!error && impl) impl->heartbeat();
    });
  }

  // Completion for detached coroutines: an exception is logged, not lost.
  std::function<void(std::exception_ptr)> logged(std::string what) {
    return [self = weak_from_this(), what](std::exception_ptr e) {
      if (!e) return;
      auto impl = self.lock();
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        if (impl) impl->log(what + " failed: " + ex.what());
      }
    };
  }

  base::Status start() {
    for (const auto& [id, address] : options.members) {
      if (id == options.node_id) continue;
      Peer& peer = peers[id];
      peer.id = id;
      peer.address = address;
      peer.state.id = id;
      peer.state.address = address;
      peer.retry = std::make_unique<asio::steady_timer>(loop);
      membership::PhiOptions phi;
      phi.threshold = options.phi_threshold;
      peer.detector = membership::PhiAccrualDetector(phi);
    }
    if (auto listening = listen_on(acceptor, options.listen_address, "peers"); !listening) {
      return listening;
    }
    auto self = shared_from_this();
    asio::co_spawn(loop, accept_loop(self), logged("accepting peers"));
    for (auto& [id, peer] : peers) {
      if (id > options.node_id) asio::co_spawn(loop, dial_loop(self, id), logged("dialing a peer"));
    }
    heartbeat();
    return {};
  }

  void stop() {
    stopped = true;
    heartbeat_timer.cancel();
    on_message = [](uint64_t, node::PeerMessage) {};  // nothing reaches the host after stop
    asio::error_code ignored;
    acceptor.close(ignored);
    for (auto& [id, peer] : peers) {
      if (peer.retry) peer.retry->cancel();
      if (peer.connection) close(peer.connection, "transport stopped");
    }
  }

  static awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    asio::steady_timer pause(self->loop);
    while (!self->stopped) {
      auto [error, socket] =
          co_await self->acceptor.async_accept(as_tuple(use_awaitable));
      if (error) {
        if (self->stopped) co_return;
        // Out of file descriptors, most likely: wait rather than spin.
        pause.expires_after(std::chrono::milliseconds(100));
        co_await pause.async_wait(as_tuple(use_awaitable));
        continue;
      }
      if (self->handshakes >= kHandshakesMax) {
        asio::error_code ignored;
        socket.close(ignored);
        continue;
      }
      asio::co_spawn(self->loop, inbound(self, std::move(socket)), self->logged("peer connection"));
    }
  }



  // Reads one whole frame; an empty optional (and `why`) when the
  // connection broke or sent something it should not have.
  // Frames before the handshake is done: a Hello or a Refusal is tiny, and
  // nobody unauthenticated gets to make us allocate more.
  static constexpr uint32_t kHandshakeFrameBytesMax = 64 * 1024;
  // Connections in their handshake at once; more are closed at once.
  static constexpr size_t kHandshakesMax = 64;

  static awaitable<std::optional<std::string>> read_frame(std::shared_ptr<Impl> self,
                                                          tcp::socket& socket,
                                                          std::string* why,
                                                          uint32_t cap = 0) {
    if (cap == 0) cap = self->options.frame_bytes_max;
    std::string buffer(base::kFrameHeaderBytes, '\0');
    auto [error, n] = co_await asio::async_read(socket, asio::buffer(buffer),
                                                as_tuple(use_awaitable));
    if (error) {
      *why = error == asio::error::eof ? "closed by the peer" : error.message();
      co_return std::nullopt;
    }
    uint32_t length = 0;
    for (int i = 0; i < 4; ++i) length |= uint32_t{static_cast<uint8_t>(buffer[i])} << (8 * i);
    if (length > cap) {
      *why = "frame of " + std::to_string(length) + " bytes is over the cap of " +
             std::to_string(cap);
      co_return std::nullopt;
    }
    buffer.resize(base::kFrameHeaderBytes + length);
    auto [error2, n2] = co_await asio::async_read(
        socket, asio::buffer(buffer.data() + base::kFrameHeaderBytes, length),
        as_tuple(use_awaitable));
    if (error2) {
      *why = error2.message();
      co_return std::nullopt;
    }
    co_return buffer;
  }

  // Checks a frame read by read_frame; the payload, or nullopt and `why`.
  std::optional<std::pair<PeerFrame, std::string_view>> check_frame(const std::string& bytes,
                                                                    std::string* why) {
    const base::Frame f = base::read_frame(bytes, options.frame_bytes_max);
    if (f.status != base::FrameStatus::kOk) {
      *why = "bad frame: " + base::describe_frame_problem(f, options.frame_bytes_max);
      return std::nullopt;
    }
    if (f.type < static_cast<uint8_t>(PeerFrame::kHello) ||
        f.type > static_cast<uint8_t>(PeerFrame::kEnvelope)) {
      *why = "unknown frame type " + std::to_string(f.type);
      return std::nullopt;
    }
    return std::make_pair(static_cast<PeerFrame>(f.type), f.payload);
  }

  std::string hello_problem(const Hello& hello, uint64_t expected_from) {
    if (hello.version != kWireVersion) {
      return "peer speaks protocol version " + std::to_string(hello.version) + ", this node " +
             std::to_string(kWireVersion);
    }
    if (hello.cluster_id != options.cluster_id) {
      return "peer belongs to cluster \"" + hello.cluster_id + "\", this node to \"" +
             options.cluster_id + "\"";
    }
    if (!peers.contains(hello.node_id)) {
      return "node " + std::to_string(hello.node_id) + " is not a member of this cluster";
    }
    if (expected_from != 0 && hello.node_id != expected_from) {
      return "expected node " + std::to_string(expected_from) + " at " +
             peers[expected_from].address + " but node " + std::to_string(hello.node_id) +
             " answered";
    }
    if (hello.expect_node != options.node_id) {
      return "peer expected node " + std::to_string(hello.expect_node) + " here, this is node " +
             std::to_string(options.node_id);
    }
    return {};
  }

  Hello our_hello(uint64_t to) const {
    return Hello{kWireVersion, options.cluster_id, options.node_id, to};
  }

  static awaitable<void> inbound(std::shared_ptr<Impl> self, tcp::socket accepted) {
    // Shared with the deadline's handler, which may run after this frame is
    // gone if both complete in one turn of the loop.
    auto socket = std::make_shared<tcp::socket>(std::move(accepted));
    ++self->handshakes;
    struct Done {
      Impl* impl;
      ~Done() { --impl->handshakes; }
    } counted{self.get()};
    asio::steady_timer deadline(self->loop);
    deadline.expires_after(std::chrono::milliseconds(self->options.handshake_timeout_ms));
    deadline.async_wait([socket](const asio::error_code& e) {
      if (!e) {
        asio::error_code ignored;
        socket->close(ignored);
      }
    });
    std::string why;
    auto bytes = co_await read_frame(self, *socket, &why, kHandshakeFrameBytesMax);
    if (!bytes) co_return;
    auto checked = self->check_frame(*bytes, &why);
    if (!checked || checked->first != PeerFrame::kHello) co_return;
    auto hello = decode_hello(checked->second);
    std::string problem = hello ? self->hello_problem(*hello, 0) : hello.error().message();
    if (problem.empty() && hello->node_id > self->options.node_id) {
      problem = "node " + std::to_string(hello->node_id) + " should be dialed by node " +
                std::to_string(self->options.node_id) + ", not dial it";
    }
    if (!problem.empty()) {
      self->log("refused a peer connection from " + remote(*socket) + ": " + problem);
      const std::string refusal = frame(PeerFrame::kRefusal, encode_refusal(problem));
      co_await asio::async_write(*socket, asio::buffer(refusal), as_tuple(use_awaitable));
      co_return;
    }
    const std::string answer = frame(PeerFrame::kHello, encode_hello(self->our_hello(hello->node_id)));
    auto [error, n] = co_await asio::async_write(*socket, asio::buffer(answer),
                                                 as_tuple(use_awaitable));
    deadline.cancel();
    if (error || self->stopped) co_return;
    co_await self->serve(self, hello->node_id, std::move(*socket));
  }

  static awaitable<void> dial_loop(std::shared_ptr<Impl> self, uint64_t id) {
    uint32_t attempt = 0;
    while (!self->stopped) {
      std::string why;
      bool refused = false;
      auto socket = co_await dial(self, id, &why, &refused);
      if (self->stopped) co_return;
      if (socket) {
        attempt = 0;
        co_await self->serve(self, id, std::move(*socket));
        if (self->stopped) co_return;
      } else {
        Peer& peer = self->peers[id];
        if (why != peer.state.last_error) {
          self->log("cannot reach node " + std::to_string(id) + " at " + peer.address + ": " + why);
        }
        peer.state.last_error = why;
      }
      // Full jitter: a uniform wait up to the exponential bound.
      const uint64_t bound = std::min<uint64_t>(
          self->options.backoff_max_ms,
          uint64_t{self->options.backoff_initial_ms} << std::min<uint32_t>(attempt, 16));
      ++attempt;
      const uint64_t wait = std::uniform_int_distribution<uint64_t>(0, bound)(self->rng);
      Peer& peer = self->peers[id];
      peer.retry->expires_after(std::chrono::milliseconds(wait + (refused ? 1000 : 0)));
      co_await peer.retry->async_wait(as_tuple(use_awaitable));
    }
  }

  static awaitable<std::optional<tcp::socket>> dial(std::shared_ptr<Impl> self, uint64_t id,
                                                    std::string* why, bool* refused) {
    Peer& peer = self->peers[id];
    auto address = split_address(peer.address);
    if (!address) {
      *why = address.error().message();
      co_return std::nullopt;
    }
    tcp::resolver resolver(self->loop);
    auto [resolve_error, endpoints] = co_await resolver.async_resolve(
        address->first, std::to_string(address->second), as_tuple(use_awaitable));
    if (resolve_error) {
      *why = resolve_error.message();
      co_return std::nullopt;
    }
    auto shared = std::make_shared<tcp::socket>(self->loop);
    tcp::socket& socket = *shared;
    asio::steady_timer deadline(self->loop);
    deadline.expires_after(std::chrono::milliseconds(self->options.handshake_timeout_ms));
    deadline.async_wait([shared](const asio::error_code& e) {
      if (!e) {
        asio::error_code ignored;
        shared->close(ignored);
      }
    });
    auto [connect_error, endpoint] =
        co_await asio::async_connect(socket, endpoints, as_tuple(use_awaitable));
    if (connect_error) {
      *why = connect_error.message();
      co_return std::nullopt;
    }
    asio::error_code option_error;
    socket.set_option(tcp::no_delay(true), option_error);
    const std::string hello = frame(PeerFrame::kHello, encode_hello(self->our_hello(id)));
    auto [write_error, n] = co_await asio::async_write(socket, asio::buffer(hello),
                                                       as_tuple(use_awaitable));
    if (write_error) {
      *why = write_error.message();
      co_return std::nullopt;
    }
    auto bytes = co_await read_frame(self, socket, why, kHandshakeFrameBytesMax);
    deadline.cancel();
    if (!bytes) co_return std::nullopt;
    auto checked = self->check_frame(*bytes, why);
    if (!checked) co_return std::nullopt;
    if (checked->first == PeerFrame::kRefusal) {
      auto reason = decode_refusal(checked->second);
      *why = "refused: " + (reason ? *reason : std::string("(unreadable reason)"));
      *refused = true;
      co_return std::nullopt;
    }
    auto answer = decode_hello(checked->second);
    if (!answer) {
      *why = answer.error().message();
      co_return std::nullopt;
    }
    const std::string problem = self->hello_problem(*answer, id);
    if (!problem.empty()) {
      *why = problem;
      co_return std::nullopt;
    }
    tcp::socket established = std::move(socket);
    co_return std::move(established);
  }

  // Owns an established connection until it breaks.
  static awaitable<void> serve(std::shared_ptr<Impl> self, uint64_t id, tcp::socket socket) {
    asio::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    // A peer that vanished without a FIN (a cut cable, a frozen VM) is
    // noticed in seconds, not after TCP's retransmission back-off.
    socket.set_option(asio::socket_base::keep_alive(true), ignored);
    const int fd = socket.native_handle();
    const int idle_s = 2, interval_s = 1, probes = 3;
    const unsigned user_timeout_ms = 10000;
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
    ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
    auto connection = std::make_shared<Connection>(std::move(socket));
    connection->peer = id;
    Peer& peer = self->peers[id];
    if (peer.connection) self->close(peer.connection, "replaced by a new connection");
    peer.connection = connection;
    peer.state.connected = true;
    peer.state.connects++;
    peer.state.last_error.clear();
    self->log("peer " + std::to_string(id) + " up (" + peer.address + ")");
    std::string why;
    while (connection->open) {
      auto bytes = co_await read_frame(self, connection->socket, &why);
      if (!bytes) break;
      auto checked = self->check_frame(*bytes, &why);
      if (!checked) break;
      if (checked->first != PeerFrame::kEnvelope) {
        why = "unexpected frame type mid-connection";
        break;
      }
      auto envelope = decode_envelope(checked->second);
      if (!envelope) {
        why = envelope.error().message();
        break;
      }
      if (envelope->from != id || envelope->to != self->options.node_id) {
        why = "message from " + std::to_string(envelope->from) + " to " +
              std::to_string(envelope->to) + " on the connection with node " + std::to_string(id);
        break;
      }
      peer.state.frames_received++;
      peer.state.bytes_received += bytes->size();
      peer.last_contact = std::chrono::steady_clock::now();
      peer.detector.heartbeat(self->now_ms());
      for (node::PeerMessage& message : envelope->messages) self->on_message(id, std::move(message));
    }
    self->close(connection, why.empty() ? "closed" : why);
  }

  void close(const std::shared_ptr<Connection>& connection, const std::string& why) {
    if (!connection->open) return;
    connection->open = false;
    asio::error_code ignored;
    connection->socket.close(ignored);
    auto it = peers.find(connection->peer);
    if (it != peers.end() && it->second.connection == connection) {
      it->second.connection.reset();
      it->second.state.connected = false;
      it->second.state.last_error = why;
      if (!stopped) log("peer " + std::to_string(connection->peer) + " down: " + why);
    }
  }

  void send(uint64_t to, const std::vector<node::PeerMessage>& messages) {
    auto it = peers.find(to);
    if (it == peers.end()) return;
    Peer& peer = it->second;
    if (!peer.connection || !peer.connection->open) {
      peer.state.dropped++;
      return;
    }
    std::string bytes = frame(PeerFrame::kEnvelope, encode_envelope(options.node_id, to, messages));
    Connection& c = *peer.connection;
    // The queue is bounded, but a frame larger than the bound (a 64 MiB value
    // in an append) still goes when nothing else is waiting, or it could
    // never be replicated.
    if (c.queued_bytes > 0 && c.queued_bytes + bytes.size() > options.send_queue_bytes_max) {
      peer.state.dropped++;
      return;
    }
    if (bytes.size() > options.frame_bytes_max) {
      peer.state.dropped++;
      peer.state.last_error = "a frame of " + std::to_string(bytes.size()) + " bytes is over the cap";
      return;
    }
    c.queued_bytes += bytes.size();
    c.queue.push_back(std::move(bytes));
    peer.last_sent = std::chrono::steady_clock::now();
    if (!c.writing) write(peer.connection);
  }

  void write(std::shared_ptr<Connection> connection) {
    // Everything queued goes out in one write.
    auto batch = std::make_shared<std::string>();
    size_t frames = 0;
    while (!connection->queue.empty()) {
      batch->append(connection->queue.front());
      connection->queue.pop_front();
      ++frames;
    }
    connection->queued_bytes = 0;
    connection->writing = true;
    auto self = shared_from_this();
    asio::async_write(connection->socket, asio::buffer(*batch),
                      [self, connection, batch, frames](const asio::error_code& error, size_t) {
                        connection->writing = false;
                        if (error) {
                          self->close(connection, error.message());
                          return;
                        }
                        auto it = self->peers.find(connection->peer);
                        if (it != self->peers.end()) {
                          it->second.state.frames_sent += frames;
                          it->second.state.bytes_sent += batch->size();
                        }
                        if (connection->open && !connection->queue.empty()) self->write(connection);
                      });
  }

  static std::string remote(const tcp::socket& socket) {
    asio::error_code error;
    auto endpoint = socket.remote_endpoint(error);
    if (error) return "(unknown)";
    return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  }
};

PeerTransport::PeerTransport(asio::io_context& loop, PeerTransportOptions options,
                             OnMessage on_message, Log log)
    : impl_(std::make_shared<Impl>(loop, std::move(options), std::move(on_message),
                                   std::move(log))) {}

PeerTransport::~PeerTransport() { impl_->stop(); }

base::Status PeerTransport::start() { return impl_->start(); }
void PeerTransport::stop() { impl_->stop(); }
void PeerTransport::send(uint64_t to, const std::vector<node::PeerMessage>& messages) {
  impl_->send(to, messages);
}

std::vector<PeerState> PeerTransport::peers() const {
  std::vector<PeerState> out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, peer] : impl_->peers) {
    PeerState state = peer.state;
    state.phi = peer.detector.phi(impl_->now_ms());
    state.suspected = state.phi >= impl_->options.phi_threshold;
    if (peer.last_contact) {
      state.last_contact_ms_ago =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - *peer.last_contact).count();
    }
    out.push_back(state);
  }
  return out;
}

}  // namespace synod::runtime
