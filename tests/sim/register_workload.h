// Linearizable register histories by construction, for testing the checker.
//
// Clients issue operations one at a time on a few hot keys, at random times
// with random durations, so their intervals overlap. Each operation that
// takes effect is given a true linearization point inside its interval (an
// unknown one: anywhere after its call, even after its client gave up, or
// not at all); applying the operations in the order of those points to a
// model register yields the outputs. The result is linearizable by
// construction, and `make_stale_read` turns it into one that is not.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/decimal.h"
#include "base/rng.h"
#include "sim/history.h"

namespace synod::sim::testing {

struct RegisterWorkload {
  uint64_t seed = 1;
  size_t operations = 1000;
  size_t clients = 10;
  size_t keys = 3;
  uint64_t unknown_percent = 3;
  uint64_t fail_percent = 2;
  // incr adds a delta drawn from [incr_delta_min, incr_delta_max].
  int64_t incr_delta_min = -2;
  int64_t incr_delta_max = 4;
  uint64_t duration_ns_max = 3000;
  uint64_t timeout_ns = 5000;
  // How long after its call an unknown operation may still take effect.
  uint64_t late_effect_ns_max = 20000;
};

namespace workload_detail {

inline std::optional<int64_t> parse_integer(const std::optional<std::string>& text) {
  if (!text) return 0;
  return base::parse_decimal_int64(*text);
}

struct Planned {
  Operation op;
  uint64_t effect_ns = 0;
  bool takes_effect = false;
};

// Applies one operation at its linearization point; returns false when it
// would have failed (an incr of a non-integer or past the 64-bit range).
inline bool apply(Operation& op, std::optional<std::string>& value) {
  switch (op.kind) {
    case OpKind::kGet: op.read = value; return true;
    case OpKind::kSet: value = op.value; return true;
    case OpKind::kCas:
      op.swapped = value == op.expected;
      if (op.swapped) value = op.value;
      return true;
    case OpKind::kIncr: {
      const std::optional<int64_t> current = parse_integer(value);
      int64_t sum = 0;
      if (!current || __builtin_add_overflow(*current, op.delta, &sum)) return false;
      op.result = sum;
      value = std::to_string(sum);
      return true;
    }
  }
  return false;
}

}  // namespace workload_detail

inline History generate_register_history(const RegisterWorkload& workload) {
  using workload_detail::Planned;
  base::Rng rng(workload.seed);
  std::vector<Planned> planned(workload.operations);
  std::vector<uint64_t> client_free_ns(workload.clients);
  for (uint64_t& time : client_free_ns) time = rng.uniform(1000);
  std::vector<std::vector<std::string>> recent_writes(workload.keys);
  uint64_t values_made = 0;
  // Half the values are integers (so incr has something to add to), half
  // text; every text value is written once in the whole history.
  const auto new_value = [&] {
    ++values_made;
    return rng.chance(1, 2) ? std::to_string(values_made * 7) : "v" + std::to_string(values_made);
  };

  for (size_t i = 0; i < planned.size(); ++i) {
    Planned& plan = planned[i];
    Operation& op = plan.op;
    const size_t client = i % workload.clients;
    const size_t key = rng.uniform(workload.keys);
    op.id = i + 1;
    op.client = client + 1;
    op.key = "key" + std::to_string(key);
    const uint64_t kind = rng.uniform(100);
    if (kind < 40) {
      op.kind = OpKind::kGet;
    } else if (kind < 65) {
      op.kind = OpKind::kSet;
      op.value = new_value();
    } else if (kind < 80) {
      op.kind = OpKind::kCas;
      const std::vector<std::string>& recent = recent_writes[key];
      if (!recent.empty() && !rng.chance(1, 10)) op.expected = recent[rng.uniform(recent.size())];
      op.value = new_value();
    } else {
      op.kind = OpKind::kIncr;
      op.delta = workload.incr_delta_min +
                 static_cast<int64_t>(rng.uniform(
                     static_cast<uint64_t>(workload.incr_delta_max - workload.incr_delta_min) + 1));
    }
    if (op.kind == OpKind::kSet || op.kind == OpKind::kCas) {
      std::vector<std::string>& recent = recent_writes[key];
      if (recent.size() == 4) recent.erase(recent.begin());
      recent.push_back(op.value);
    }

    op.call_ns = client_free_ns[client] + 1 + rng.uniform(2000);
    const uint64_t outcome = rng.uniform(100);
    if (outcome < workload.unknown_percent) {
      op.outcome = Outcome::kUnknown;
      op.return_ns = op.call_ns + workload.timeout_ns;
      plan.takes_effect = rng.chance(1, 2);
      plan.effect_ns = op.call_ns + rng.uniform(workload.late_effect_ns_max + 1);
    } else {
      op.outcome = outcome < workload.unknown_percent + workload.fail_percent ? Outcome::kFail
                                                                              : Outcome::kOk;
      op.return_ns = op.call_ns + rng.uniform(workload.duration_ns_max + 1);
      plan.takes_effect = op.outcome == Outcome::kOk;
      plan.effect_ns = op.call_ns + rng.uniform(op.return_ns - op.call_ns + 1);
    }
    client_free_ns[client] = op.return_ns;
  }

  std::vector<Planned*> by_effect;
  for (Planned& plan : planned) {
    if (plan.takes_effect) by_effect.push_back(&plan);
  }
  std::sort(by_effect.begin(), by_effect.end(), [](const Planned* a, const Planned* b) {
    return std::pair(a->effect_ns, a->op.id) < std::pair(b->effect_ns, b->op.id);
  });
  std::map<std::string, std::optional<std::string>> registers;
  for (Planned* plan : by_effect) {
    if (!workload_detail::apply(plan->op, registers[plan->op.key])) {
      if (plan->op.outcome == Outcome::kOk) plan->op.outcome = Outcome::kFail;
    }
  }

  History history;
  history.reserve(planned.size());
  for (Planned& plan : planned) {
    Operation& op = plan.op;
    if (op.outcome != Outcome::kOk) {
      op.read.reset();
      op.swapped = false;
      op.result = 0;
    }
    history.push_back(std::move(op));
  }
  return history;
}

// Changes what one ok get read into a value overwritten before it was
// called: an ok set w0 of a text value (written nowhere else) returned
// before an ok set w1 was called, and w1 returned before the get was called.
// No order can then give the get w0's value. Returns the get's index, or
// nullopt if no get fits within `attempts` random picks.
inline std::optional<size_t> make_stale_read(History& history, base::Rng& rng, int attempts = 200) {
  const auto is_ok_set = [](const Operation& op) {
    return op.kind == OpKind::kSet && op.outcome == Outcome::kOk;
  };
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const size_t g = history.size() / 2 + rng.uniform(history.size() - history.size() / 2);
    Operation& get = history[g];
    if (get.kind != OpKind::kGet || get.outcome != Outcome::kOk) continue;
    const Operation* w1 = nullptr;
    for (const Operation& op : history) {
      if (op.key == get.key && is_ok_set(op) && op.return_ns < get.call_ns &&
          (w1 == nullptr || op.return_ns > w1->return_ns)) {
        w1 = &op;
      }
    }
    if (w1 == nullptr) continue;
    const Operation* w0 = nullptr;
    for (const Operation& op : history) {
      if (op.key == get.key && is_ok_set(op) && op.value.starts_with("v") &&
          op.return_ns < w1->call_ns && op.value != get.read &&
          (w0 == nullptr || op.return_ns > w0->return_ns)) {
        w0 = &op;
      }
    }
    if (w0 == nullptr) continue;
    get.read = w0->value;
    return g;
  }
  return std::nullopt;
}

}  // namespace synod::sim::testing
