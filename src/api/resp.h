// RESP, the Redis protocol: a bounded, incremental request parser and a
// reply writer for RESP2 and RESP3.
//
// The parser takes bytes as they arrive and hands out one command (its
// arguments) at a time. It accepts what Redis accepts: multibulk requests
// (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline ones (`GET k\r\n`, with
// Redis's quoting rules). Every length is checked against its limit before
// anything is allocated; a protocol error is final for the connection (the
// server answers `-ERR Protocol error: ...` and closes it), with Redis's
// own wording so clients recognise it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace synod::api {

struct RespLimits {
  // Redis's proto-max-bulk-len is 512 MiB; a Synod value is at most 64 MiB
  // (node::kMaxValueBytes) and a bulk argument is bounded the same.
  size_t bulk_bytes_max = 64u << 20;
  // Arguments in one multibulk request (Redis: 1024 * 1024).
  size_t arguments_max = 1024 * 1024;
  // An inline request's line (Redis: 64 KiB).
  size_t inline_bytes_max = 64 * 1024;
  // Bytes buffered for one client before its request is complete (Redis's
  // client-query-buffer-limit is 1 GiB; ours bounds memory per client).
  size_t query_buffer_bytes_max = 256u << 20;
};

class RespParser {
 public:
  enum class Status : uint8_t { kCommand, kNeedMore, kError };

  explicit RespParser(RespLimits limits = {}) : limits_(limits) {}

  // Adds received bytes. A protocol error (the buffer is over its limit)
  // shows up in the next call to `next`.
  void feed(std::string_view bytes);
  // The next complete command into `args` (kCommand; empty inline lines are
  // skipped), kNeedMore, or kError with the reply text in `error` (without
  // the leading '-' and trailing CRLF). After kError the parser stays failed.
  Status next(std::vector<std::string>* args, std::string* error);

  size_t buffered() const { return buffer_.size() - consumed_; }
  // Whether part of a request has arrived (bytes, or arguments of an
  // unfinished multibulk request).
  bool in_request() const { return buffered() > 0 || pending_count_ >= 0; }

 private:
  Status fail(std::string message, std::string* error);
  Status parse_inline(std::vector<std::string>* args, std::string* error);
  Status parse_multibulk(std::vector<std::string>* args, std::string* error);
  void compact();

  RespLimits limits_;
  std::string buffer_;
  size_t consumed_ = 0;
  std::optional<std::string> failed_;
  // A multibulk request in progress: how many arguments it has, and those
  // read so far (kept across calls, so a huge value is parsed once).
  int64_t pending_count_ = -1;
  std::vector<std::string> pending_args_;
  int64_t pending_bulk_ = -1;  // length of the bulk being waited for
  size_t pending_bytes_ = 0;   // in pending_args_, counted against the query buffer
};

// Splits an inline request as Redis's sdssplitargs does: whitespace
// separates arguments; "double quotes" take \n \r \t \b \a \\ \" and \xHH
// escapes; 'single quotes' take \'; a closing quote must be followed by
// whitespace or the end. nullopt for unbalanced quotes.
std::optional<std::vector<std::string>> split_inline(std::string_view line);

// Builds replies. `protocol` 2 or 3 (HELLO 3 switches a connection).
class RespWriter {
 public:
  explicit RespWriter(int protocol = 2) : protocol_(protocol) {}
  int protocol() const { return protocol_; }
  void set_protocol(int protocol) { protocol_ = protocol; }

  void simple(std::string_view text);  // +OK
  // -ERR ...: `text` without '-' or CRLF; any CR or LF in it becomes a space
  // (as Redis does), so an echoed argument cannot forge a reply.
  void error(std::string_view text);
  void integer(int64_t value);
  void bulk(std::string_view value);
  void null();                     // RESP2 $-1, RESP3 _
  void null_array();               // RESP2 *-1, RESP3 _
  void array(size_t count);        // header; the elements follow
  void map(size_t pairs);          // RESP3 %n; RESP2 a flat array of 2n
  void set(size_t count);          // RESP3 ~n; RESP2 an array
  void boolean(bool value);        // RESP3 #t/#f; RESP2 :1/:0

  std::string& buffer() { return out_; }
  std::string take() { return std::exchange(out_, std::string()); }

 private:
  void line(char type, std::string_view text);

  int protocol_;
  std::string out_;
};

}  // namespace synod::api
