// `synod bench`: a load generator for anything that speaks RESP (Synod,
// Redis). Connections run on one event loop; each sends a pipeline of
// requests, waits for every reply, and records the round trip of each in a
// log-bucketed histogram (base/histogram.h).
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "base/histogram.h"
#include "base/rng.h"
#include "cli/commands.h"
#include "runtime/peer_transport.h"

namespace synod::cli {
namespace {

using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// YCSB's zipfian generator (Gray et al., "Quickly generating billion-record
// synthetic databases"): item 0 is the most popular.
class Zipfian {
 public:
  Zipfian(uint64_t items, double theta) : items_(items), theta_(theta) {
    for (uint64_t i = 1; i <= items; ++i) zeta_n_ += 1.0 / std::pow(static_cast<double>(i), theta);
    const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(items), 1.0 - theta)) / (1.0 - zeta2 / zeta_n_);
  }
  uint64_t next(base::Rng& rng) const {
    const double u = rng.unit();
    const double uz = u * zeta_n_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return 1;
    const auto value = static_cast<uint64_t>(static_cast<double>(items_) *
                                             std::pow(eta_ * u - eta_ + 1.0, alpha_));
    return std::min(value, items_ - 1);
  }

 private:
  uint64_t items_;
  double theta_;
  double zeta_n_ = 0;
  double alpha_ = 0;
  double eta_ = 0;
};

// Bytes of the first complete RESP reply in `data`, 0 if it is not all
// here; `error` is set for an error reply (at any depth).
size_t reply_bytes(std::string_view data, bool* error, int depth = 0) {
  if (data.empty() || depth > 8) return 0;
  const size_t line_end = data.find("\r\n");
  if (line_end == std::string_view::npos) return 0;
  const char type = data[0];
  const std::string_view rest = data.substr(1, line_end - 1);
  switch (type) {
    case '+': case ':': case '_': case '#': case ',': return line_end + 2;
    case '-': *error = true; return line_end + 2;
    case '$': {
      const long long length = std::atoll(std::string(rest).c_str());
      if (length < 0) return line_end + 2;
      const size_t total = line_end + 2 + static_cast<size_t>(length) + 2;
      return data.size() >= total ? total : 0;
    }
    case '*': case '%': case '~': {
      long long count = std::atoll(std::string(rest).c_str());
      if (type == '%') count *= 2;
      size_t used = line_end + 2;
      for (long long i = 0; i < count; ++i) {
        const size_t element = reply_bytes(data.substr(used), error, depth + 1);
        if (element == 0) return 0;
        used += element;
      }
      return used;
    }
    default: *error = true; return line_end + 2;
  }
}

std::string base64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const uint32_t n = (uint32_t{static_cast<uint8_t>(data[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(data[i + 1])} << 8) | static_cast<uint8_t>(data[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < data.size()) {
    uint32_t n = uint32_t{static_cast<uint8_t>(data[i])} << 16;
    if (i + 1 < data.size()) n |= uint32_t{static_cast<uint8_t>(data[i + 1])} << 8;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// etcd's JSON gateway (v3 API over HTTP/1.1, keep-alive): a put or a
// linearizable range.
void append_etcd(std::string& out, const std::string& host, bool read, std::string_view key,
                 std::string_view value) {
  const std::string body = read ? "{\"key\":\"" + base64(key) + "\"}"
                                : "{\"key\":\"" + base64(key) + "\",\"value\":\"" + base64(value) + "\"}";
  out += std::string("POST ") + (read ? "/v3/kv/range" : "/v3/kv/put") + " HTTP/1.1\r\nHost: " + host +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Bytes of the first complete HTTP response in `data`, 0 if not all here;
// `error` unless the status is 2xx. Handles Content-Length and chunked.
size_t http_response_bytes(std::string_view data, bool* error) {
  const size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return 0;
  const std::string_view head = data.substr(0, head_end);
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/" || head[9] != '2') *error = true;
  std::string lower(head);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t body_start = head_end + 4;
  const size_t length_at = lower.find("content-length:");
  if (length_at != std::string::npos) {
    const size_t length = static_cast<size_t>(std::atoll(lower.c_str() + length_at + 15));
    return data.size() >= body_start + length ? body_start + length : 0;
  }
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    size_t at = body_start;
    while (true) {
      const size_t line_end = data.find("\r\n", at);
      if (line_end == std::string_view::npos) return 0;
      const size_t size = std::strtoull(std::string(data.substr(at, line_end - at)).c_str(), nullptr, 16);
      at = line_end + 2 + size + 2;
      if (at > data.size()) return 0;
      if (size == 0) return at;
    }
  }
  return body_start;
}

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  out += "*" + std::to_string(args.size()) + "\r\n";
  for (std::string_view arg : args) {
    out += "$" + std::to_string(arg.size()) + "\r\n";
    out.append(arg);
    out += "\r\n";
  }
}

struct Shared {
  const BenchOptions* options = nullptr;
  std::optional<Zipfian> zipf;
  std::string value;
  Clock::time_point start;
  Clock::time_point deadline;
  uint64_t issued = 0;  // requests handed out (for --requests)
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t connect_failures = 0;
  base::LogHistogram latency;  // ns per request, the whole run
  base::LogHistogram window;   // since the last progress line
  bool stop = false;
};

awaitable<void> connection(asio::io_context& loop, Shared& shared, uint64_t seed,
                           std::string target) {
  const BenchOptions& options = *shared.options;
  const bool etcd = options.protocol == "etcd";
  base::Rng rng(seed);
  auto address = runtime::split_address(target);
  tcp::socket socket(loop);
  tcp::resolver resolver(loop);
  auto [resolve_error, endpoints] = co_await resolver.async_resolve(
      address->first, std::to_string(address->second), as_tuple(use_awaitable));
  if (resolve_error) {
    shared.connect_failures++;
    co_return;
  }
  auto [connect_error, endpoint] =
      co_await asio::async_connect(socket, endpoints, as_tuple(use_awaitable));
  if (connect_error) {
    shared.connect_failures++;
    co_return;
  }
  socket.set_option(tcp::no_delay(true));
  std::string request;
  std::string buffer;
  std::vector<char> chunk(64 * 1024);
  while (!shared.stop) {
    const uint64_t batch = options.requests == 0
                               ? static_cast<uint64_t>(options.pipeline)
                               : std::min<uint64_t>(options.pipeline, options.requests - shared.issued);
    if (batch == 0) break;
    shared.issued += batch;
    request.clear();
    for (uint64_t i = 0; i < batch; ++i) {
      const uint64_t item = shared.zipf ? shared.zipf->next(rng) : rng.uniform(options.keys);
      const std::string key = "key:" + std::to_string(item);
      const uint64_t dice = rng.uniform(100);
      if (etcd) {
        append_etcd(request, target, dice < static_cast<uint64_t>(options.read_percent), key,
                    shared.value);
      } else if (dice < static_cast<uint64_t>(options.read_percent)) {
        append_command(request, {"GET", key});
      } else if (dice < static_cast<uint64_t>(options.read_percent + options.cas_percent)) {
        append_command(request, {"CAS", key, shared.value, shared.value});
      } else {
        append_command(request, {"SET", key, shared.value});
      }
    }
    const Clock::time_point sent = Clock::now();
    auto [write_error, written] =
        co_await asio::async_write(socket, asio::buffer(request), as_tuple(use_awaitable));
    if (write_error) break;
    uint64_t replies = 0;
    while (replies < batch) {
      bool error = false;
      const size_t used = etcd ? http_response_bytes(buffer, &error) : reply_bytes(buffer, &error);
      if (used > 0) {
        buffer.erase(0, used);
        ++replies;
        if (error) shared.errors++;
        continue;
      }
      auto [read_error, n] = co_await socket.async_read_some(asio::buffer(chunk), as_tuple(use_awaitable));
      if (read_error) co_return;
      buffer.append(chunk.data(), n);
    }
    const uint64_t ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sent).count());
    for (uint64_t i = 0; i < batch; ++i) {
      shared.latency.record(ns);
      shared.window.record(ns);
    }
    shared.completed += batch;
    if (options.requests == 0 && Clock::now() >= shared.deadline) shared.stop = true;
  }
}

double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace

int run_bench(const BenchOptions& options) {
  std::vector<std::string> targets;
  for (size_t start = 0; start <= options.target.size();) {
    const size_t comma = std::min(options.target.find(',', start), options.target.size());
    targets.push_back(options.target.substr(start, comma - start));
    start = comma + 1;
  }
  for (const std::string& target : targets) {
    if (!runtime::split_address(target)) {
      std::fprintf(stderr, "synod bench: --target must be HOST:PORT[,HOST:PORT...]\n");
      return 2;
    }
  }
  if (options.protocol != "resp" && options.protocol != "etcd") {
    std::fprintf(stderr, "synod bench: --protocol is resp or etcd\n");
    return 2;
  }
  if (options.protocol == "etcd" && options.cas_percent > 0) {
    std::fprintf(stderr, "synod bench: --cas is for RESP targets (Synod's CAS command)\n");
    return 2;
  }
  if (options.read_percent + options.cas_percent > 100 || options.read_percent < 0 ||
      options.cas_percent < 0) {
    std::fprintf(stderr, "synod bench: --reads and --cas are percentages summing to at most 100\n");
    return 2;
  }
  Shared shared;
  shared.options = &options;
  if (options.distribution == "zipfian") {
    shared.zipf.emplace(options.keys, 0.99);
  } else if (options.distribution != "uniform") {
    std::fprintf(stderr, "synod bench: --distribution is uniform or zipfian\n");
    return 2;
  }
  shared.value.assign(options.value_bytes, 'v');
  asio::io_context loop(1);
  shared.start = Clock::now();
  shared.deadline = shared.start + std::chrono::milliseconds(
                                       static_cast<int64_t>(options.duration_seconds * 1000));
  std::random_device device;
  const uint64_t seed_base = options.seed != 0 ? options.seed : (uint64_t{device()} << 32 | device());
  for (int c = 0; c < options.connections; ++c) {
    asio::co_spawn(loop,
                   connection(loop, shared, seed_base + static_cast<uint64_t>(c),
                              targets[static_cast<size_t>(c) % targets.size()]),
                   asio::detached);
  }
  // A progress line a second, on stderr.
  asio::steady_timer progress(loop);
  uint64_t last_completed = 0;
  std::function<void()> tick = [&] {
    progress.expires_after(std::chrono::seconds(1));
    progress.async_wait([&](const asio::error_code& error) {
      if (error || shared.stop) return;
      const double elapsed = std::chrono::duration<double>(Clock::now() - shared.start).count();
      if (!options.json) {
        std::fprintf(stderr, "[%5.1fs] %8llu ops/s  p50 %.2f ms  p99 %.2f ms  errors %llu\n", elapsed,
                     static_cast<unsigned long long>(shared.completed - last_completed),
                     ms(shared.window.percentile(0.5)), ms(shared.window.percentile(0.99)),
                     static_cast<unsigned long long>(shared.errors));
      }
      last_completed = shared.completed;
      shared.window = base::LogHistogram();
      tick();
    });
  };
  tick();
  asio::co_spawn(
      loop,
      [&]() -> awaitable<void> {
        // When every connection has finished, stop the progress timer.
        asio::steady_timer poll(loop);
        while (!shared.stop || shared.completed < shared.issued) {
          poll.expires_after(std::chrono::milliseconds(20));
          co_await poll.async_wait(use_awaitable);
          if (options.requests != 0 && shared.completed >= options.requests) shared.stop = true;
          if (shared.connect_failures == static_cast<uint64_t>(options.connections)) break;
        }
        progress.cancel();
      },
      asio::detached);
  loop.run();
  const double seconds = std::chrono::duration<double>(Clock::now() - shared.start).count();
  const double throughput = static_cast<double>(shared.completed) / seconds;
  const base::LogHistogram& h = shared.latency;
  if (options.json) {
    nlohmann::json result = {
        {"target", options.target},          {"protocol", options.protocol},
        {"connections", options.connections},
        {"pipeline", options.pipeline},      {"value_bytes", options.value_bytes},
        {"keys", options.keys},              {"distribution", options.distribution},
        {"read_percent", options.read_percent}, {"cas_percent", options.cas_percent},
        {"seconds", seconds},                {"requests", shared.completed},
        {"errors", shared.errors},           {"connect_failures", shared.connect_failures},
        {"throughput", throughput},          {"p50_ms", ms(h.percentile(0.5))},
        {"p99_ms", ms(h.percentile(0.99))},  {"p999_ms", ms(h.percentile(0.999))},
        {"max_ms", ms(h.max())},             {"mean_ms", h.mean() / 1e6}};
    std::printf("%s\n", result.dump().c_str());
  } else {
    std::printf("%llu requests in %.2f s: %.0f requests/s; latency p50 %.3f ms, p99 %.3f ms, "
                "p99.9 %.3f ms, max %.3f ms; %llu errors\n",
                static_cast<unsigned long long>(shared.completed), seconds, throughput,
                ms(h.percentile(0.5)), ms(h.percentile(0.99)), ms(h.percentile(0.999)), ms(h.max()),
                static_cast<unsigned long long>(shared.errors));
  }
  if (shared.connect_failures > 0) {
    std::fprintf(stderr, "synod bench: %llu connections could not be made to %s\n",
                 static_cast<unsigned long long>(shared.connect_failures), options.target.c_str());
    return 1;
  }
  return shared.errors == 0 ? 0 : 1;
}

}  // namespace synod::cli
