#include "api/resp.h"

#include <cstring>

#include "base/decimal.h"

namespace synod::api {
namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f'; }

}  // namespace

std::optional<std::vector<std::string>> split_inline(std::string_view line) {
  std::vector<std::string> args;
  size_t p = 0;
  while (true) {
    while (p < line.size() && is_space(line[p])) ++p;
    if (p >= line.size()) return args;
    std::string current;
    bool in_double = false;
    bool in_single = false;
    bool done = false;
    while (!done) {
      if (in_double) {
        if (p >= line.size()) return std::nullopt;  // unterminated
        if (line[p] == '\\' && p + 3 < line.size() && line[p + 1] == 'x' && is_hex(line[p + 2]) &&
            is_hex(line[p + 3])) {
          current.push_back(static_cast<char>(hex_value(line[p + 2]) * 16 + hex_value(line[p + 3])));
          p += 3;
        } else if (line[p] == '\\' && p + 1 < line.size()) {
          ++p;
          char c = line[p];
          switch (c) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'a': c = '\a'; break;
            default: break;
          }
          current.push_back(c);
        } else if (line[p] == '"') {
          // The closing quote must be followed by a space or nothing.
          if (p + 1 < line.size() && !is_space(line[p + 1])) return std::nullopt;
          done = true;
        } else {
          current.push_back(line[p]);
        }
      } else if (in_single) {
        if (p >= line.size()) return std::nullopt;
        if (line[p] == '\\' && p + 1 < line.size() && line[p + 1] == '\'') {
          ++p;
          current.push_back('\'');
        } else if (line[p] == '\'') {
          if (p + 1 < line.size() && !is_space(line[p + 1])) return std::nullopt;
          done = true;
        } else {
          current.push_back(line[p]);
        }
      } else {
        if (p >= line.size()) {
          done = true;
          break;
        }
        switch (line[p]) {
          case ' ': case '\n': case '\r': case '\t': case '\0': done = true; break;
          case '"': in_double = true; break;
          case '\'': in_single = true; break;
          default: current.push_back(line[p]); break;
        }
      }
      if (p < line.size()) ++p;
    }
    args.push_back(std::move(current));
  }
}

void RespParser::feed(std::string_view bytes) {
  if (failed_) return;
  compact();
  // Arguments already taken out of the buffer for an unfinished request
  // count too: the limit is on what one client makes us hold.
  const size_t held = buffer_.size() - consumed_ + pending_bytes_ + bytes.size();
  if (held > limits_.query_buffer_bytes_max) {
    failed_ = "ERR Protocol error: query buffer of " + std::to_string(held) +
              " bytes is over the limit of " + std::to_string(limits_.query_buffer_bytes_max);
    return;
  }
  buffer_.append(bytes);
}

void RespParser::compact() {
  // Drop consumed bytes once they dominate, so the buffer does not grow
  // without bound while keeping appends cheap.
  if (consumed_ > 0 && (consumed_ == buffer_.size() || consumed_ > 64 * 1024)) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
}

RespParser::Status RespParser::fail(std::string message, std::string* error) {
  failed_ = "ERR Protocol error: " + message;
  *error = *failed_;
  return Status::kError;
}

RespParser::Status RespParser::next(std::vector<std::string>* args, std::string* error) {
  args->clear();
  while (true) {
    if (failed_) {
      *error = *failed_;
      return Status::kError;
    }
    if (consumed_ >= buffer_.size()) return Status::kNeedMore;
    Status status = (pending_count_ >= 0 || buffer_[consumed_] == '*')
                        ? parse_multibulk(args, error)
                        : parse_inline(args, error);
    if (status == Status::kCommand && args->empty()) continue;  // an empty request
    return status;
  }
}

RespParser::Status RespParser::parse_inline(std::vector<std::string>* args, std::string* error) {
  const std::string_view rest(buffer_.data() + consumed_, buffer_.size() - consumed_);
  const size_t newline = rest.find('\n');
  if (newline == std::string_view::npos) {
    if (rest.size() > limits_.inline_bytes_max) return fail("too big inline request", error);
    return Status::kNeedMore;
  }
  if (newline > limits_.inline_bytes_max) return fail("too big inline request", error);
  std::string_view line = rest.substr(0, newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto split = split_inline(line);
  if (!split) return fail("unbalanced quotes in request", error);
  consumed_ += newline + 1;
  *args = std::move(*split);
  return Status::kCommand;
}

RespParser::Status RespParser::parse_multibulk(std::vector<std::string>* args, std::string* error) {
  if (pending_count_ < 0) {
    const std::string_view rest(buffer_.data() + consumed_, buffer_.size() - consumed_);
    const size_t crlf = rest.find("\r\n");
    if (crlf == std::string_view::npos) {
      if (rest.size() > limits_.inline_bytes_max) return fail("too big mbulk count string", error);
      return Status::kNeedMore;
    }
    if (crlf > limits_.inline_bytes_max) return fail("too big mbulk count string", error);
    const auto count = base::parse_decimal_int64(rest.substr(1, crlf - 1));
    if (!count || *count > static_cast<int64_t>(limits_.arguments_max)) {
      return fail("invalid multibulk length", error);
    }
    consumed_ += crlf + 2;
    if (*count <= 0) return Status::kCommand;  // "*0" or "*-1": nothing to run
    pending_count_ = *count;
    pending_args_.clear();
    // Reserve no more than a modest amount up front: the count is the
    // client's claim, the bytes are not here yet.
    pending_args_.reserve(static_cast<size_t>(std::min<int64_t>(*count, 1024)));
  }
  while (static_cast<int64_t>(pending_args_.size()) < pending_count_) {
    const std::string_view rest(buffer_.data() + consumed_, buffer_.size() - consumed_);
    if (pending_bulk_ < 0) {
      if (rest.empty()) return Status::kNeedMore;
      const size_t crlf = rest.find("\r\n");
      if (crlf == std::string_view::npos) {
        if (rest.size() > limits_.inline_bytes_max) return fail("too big bulk count string", error);
        return Status::kNeedMore;
      }
      if (crlf > limits_.inline_bytes_max) return fail("too big bulk count string", error);
      if (rest[0] != '$') {
        return fail(std::string("expected '$', got '") + rest[0] + "'", error);
      }
      const auto length = base::parse_decimal_int64(rest.substr(1, crlf - 1));
      if (!length || *length < 0 || static_cast<uint64_t>(*length) > limits_.bulk_bytes_max) {
        return fail("invalid bulk length", error);
      }
      consumed_ += crlf + 2;
      pending_bulk_ = *length;
      continue;
    }
    // The bulk and its CRLF (which Redis skips without looking at).
    const size_t needed = static_cast<size_t>(pending_bulk_) + 2;
    if (rest.size() < needed) return Status::kNeedMore;
    pending_args_.emplace_back(rest.substr(0, static_cast<size_t>(pending_bulk_)));
    pending_bytes_ += static_cast<size_t>(pending_bulk_);
    consumed_ += needed;
    pending_bulk_ = -1;
  }
  *args = std::move(pending_args_);
  pending_args_.clear();
  pending_bytes_ = 0;
  pending_count_ = -1;
  return Status::kCommand;
}

// ---- Writer -------------------------------------------------------------------

void RespWriter::line(char type, std::string_view text) {
  out_.push_back(type);
  out_.append(text);
  out_.append("\r\n");
}

void RespWriter::simple(std::string_view text) { line('+', text); }
void RespWriter::error(std::string_view text) {
  std::string clean(text);
  for (char& c : clean) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  line('-', clean);
}
void RespWriter::integer(int64_t value) { line(':', std::to_string(value)); }

void RespWriter::bulk(std::string_view value) {
  line('$', std::to_string(value.size()));
  out_.append(value);
  out_.append("\r\n");
}

void RespWriter::null() {
  if (protocol_ >= 3) {
    out_.append("_\r\n");
  } else {
    out_.append("$-1\r\n");
  }
}

void RespWriter::null_array() {
  if (protocol_ >= 3) {
    out_.append("_\r\n");
  } else {
    out_.append("*-1\r\n");
  }
}

void RespWriter::array(size_t count) { line('*', std::to_string(count)); }

void RespWriter::map(size_t pairs) {
  if (protocol_ >= 3) {
    line('%', std::to_string(pairs));
  } else {
    line('*', std::to_string(pairs * 2));
  }
}

void RespWriter::set(size_t count) {
  if (protocol_ >= 3) {
    line('~', std::to_string(count));
  } else {
    line('*', std::to_string(count));
  }
}

void RespWriter::boolean(bool value) {
  if (protocol_ >= 3) {
    out_.append(value ? "#t\r\n" : "#f\r\n");
  } else {
    out_.append(value ? ":1\r\n" : ":0\r\n");
  }
}

}  // namespace synod::api
