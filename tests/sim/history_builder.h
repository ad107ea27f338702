// Hand-written histories for the checker's tests, ids numbered from 1 in
// the order written: in code,
//
//   HistoryBuilder h;
//   h.set(1, "k", "a", 0, 10);
//   h.get(2, "k", "a", 20, 30);
//   h.set(3, "k", "b", 40, 50).unknown();
//
// or as a script, one operation per line:
//
//   <client> <kind> <key> <inputs> [-> <output>] <call_ns> <return_ns> [unknown|fail]
//
//   1 set k a               0 10      set: the value
//   2 get k -> a           20 30      get: the value read, or `absent`
//   3 cas k a b -> swapped 40 50      cas: expected (or `absent`), new; swapped|kept
//   4 incr k 2 -> 7        60 70      incr: the delta; the result
//   5 set k c              80 90 unknown
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/history.h"

namespace synod::sim::testing {

inline const std::optional<std::string> kAbsentValue = std::nullopt;

class HistoryBuilder {
 public:
  HistoryBuilder& get(uint64_t client, std::string key, std::optional<std::string> read,
                      uint64_t call_ns, uint64_t return_ns) {
    Operation& op = add(client, OpKind::kGet, std::move(key), call_ns, return_ns);
    op.read = std::move(read);
    return *this;
  }
  HistoryBuilder& set(uint64_t client, std::string key, std::string value, uint64_t call_ns,
                      uint64_t return_ns) {
    Operation& op = add(client, OpKind::kSet, std::move(key), call_ns, return_ns);
    op.value = std::move(value);
    return *this;
  }
  HistoryBuilder& cas(uint64_t client, std::string key, std::optional<std::string> expected,
                      std::string value, bool swapped, uint64_t call_ns, uint64_t return_ns) {
    Operation& op = add(client, OpKind::kCas, std::move(key), call_ns, return_ns);
    op.expected = std::move(expected);
    op.value = std::move(value);
    op.swapped = swapped;
    return *this;
  }
  HistoryBuilder& incr(uint64_t client, std::string key, int64_t delta, int64_t result,
                       uint64_t call_ns, uint64_t return_ns) {
    Operation& op = add(client, OpKind::kIncr, std::move(key), call_ns, return_ns);
    op.delta = delta;
    op.result = result;
    return *this;
  }

  // The last operation ended otherwise than ok: its outputs are dropped.
  HistoryBuilder& unknown() { return end_as(Outcome::kUnknown); }
  HistoryBuilder& fail() { return end_as(Outcome::kFail); }

  uint64_t last_id() const { return history_.back().id; }
  const History& history() const { return history_; }

  // Adds the operations of a script (see the top of this file).
  HistoryBuilder& script(std::string_view text) {
    std::istringstream lines{std::string(text)};
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::vector<std::string> tokens;
      for (std::string word; words >> word;) tokens.push_back(word);
      if (!tokens.empty()) add_script_line(tokens, line);
    }
    return *this;
  }

 private:
  Operation& add(uint64_t client, OpKind kind, std::string key, uint64_t call_ns,
                 uint64_t return_ns) {
    Operation& op = history_.emplace_back();
    op.id = history_.size();
    op.client = client;
    op.kind = kind;
    op.key = std::move(key);
    op.call_ns = call_ns;
    op.return_ns = return_ns;
    return op;
  }
  static std::optional<std::string> value_or_absent(const std::string& token) {
    return token == "absent" ? std::nullopt : std::optional(token);
  }

  void add_script_line(std::vector<std::string> tokens, const std::string& line) {
    Outcome outcome = Outcome::kOk;
    if (tokens.back() == "unknown" || tokens.back() == "fail") {
      outcome = tokens.back() == "unknown" ? Outcome::kUnknown : Outcome::kFail;
      tokens.pop_back();
    }
    if (tokens.size() < 5) {
      ADD_FAILURE() << "a script line needs client, kind, key, call and return: " << line;
      return;
    }
    const uint64_t return_ns = std::stoull(tokens.back());
    tokens.pop_back();
    const uint64_t call_ns = std::stoull(tokens.back());
    tokens.pop_back();
    std::string output;
    if (tokens.size() >= 2 && tokens[tokens.size() - 2] == "->") {
      output = tokens.back();
      tokens.resize(tokens.size() - 2);
    }
    const uint64_t client = std::stoull(tokens[0]);
    const std::string& kind = tokens[1];
    const std::string& key = tokens[2];
    const std::vector<std::string> inputs(tokens.begin() + 3, tokens.end());
    if (kind == "get" && inputs.empty()) {
      get(client, key, value_or_absent(output), call_ns, return_ns);
    } else if (kind == "set" && inputs.size() == 1) {
      set(client, key, inputs[0], call_ns, return_ns);
    } else if (kind == "cas" && inputs.size() == 2) {
      cas(client, key, value_or_absent(inputs[0]), inputs[1], output == "swapped", call_ns,
          return_ns);
    } else if (kind == "incr" && inputs.size() == 1) {
      incr(client, key, std::stoll(inputs[0]), output.empty() ? 0 : std::stoll(output), call_ns,
           return_ns);
    } else {
      ADD_FAILURE() << "not a script line: " << line;
      return;
    }
    end_as(outcome);
  }

  HistoryBuilder& end_as(Outcome outcome) {
    Operation& op = history_.back();
    op.outcome = outcome;
    if (outcome == Outcome::kOk) return *this;
    op.read.reset();
    op.swapped = false;
    op.result = 0;
    return *this;
  }

  History history_;
};

}  // namespace synod::sim::testing
