#include "runtime/metrics.h"

#include <cstdio>
#include <set>

namespace synod::runtime {

std::string label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void Metrics::add(const std::string& name, const std::string& labels, uint64_t delta) {
  counters_[{name, labels}] += delta;
}

void Metrics::set_gauge(const std::string& name, const std::string& labels, double value) {
  gauges_[{name, labels}] = value;
}

void Metrics::observe(const std::string& name, const std::string& labels, double seconds) {
  Histogram& h = histograms_[{name, labels}];
  double bound = kFirstBucketSeconds;
  for (size_t i = 0; i < kBuckets; ++i, bound *= 2) {
    if (seconds <= bound) {
      h.buckets[i]++;
      break;
    }
  }
  h.count++;
  h.sum += seconds;
}

void Metrics::describe(const std::string& name, const std::string& type, const std::string& help) {
  help_[name] = {type, help};
}

uint64_t Metrics::counter(const std::string& name, const std::string& labels) const {
  auto it = counters_.find({name, labels});
  return it == counters_.end() ? 0 : it->second;
}

std::string Metrics::render() const {
  std::string out;
  std::set<std::string> headed;
  auto head = [&](const std::string& name, const char* type) {
    if (!headed.insert(name).second) return;
    auto it = help_.find(name);
    if (it != help_.end()) out += "# HELP " + name + " " + it->second.second + "\n";
    out += "# TYPE " + name + " " + (it != help_.end() ? it->second.first : type) + "\n";
  };
  auto series = [](const std::string& name, const std::string& labels) {
    return labels.empty() ? name : name + "{" + labels + "}";
  };
  char number[64];
  for (const auto& [key, value] : counters_) {
    head(key.first, "counter");
    out += series(key.first, key.second) + " " + std::to_string(value) + "\n";
  }
  for (const auto& [key, value] : gauges_) {
    head(key.first, "gauge");
    std::snprintf(number, sizeof number, "%.17g", value);
    out += series(key.first, key.second) + " " + number + "\n";
  }
  for (const auto& [key, h] : histograms_) {
    head(key.first, "histogram");
    const std::string prefix = key.second.empty() ? "" : key.second + ",";
    uint64_t cumulative = 0;
    double bound = kFirstBucketSeconds;
    for (size_t i = 0; i < kBuckets; ++i, bound *= 2) {
      cumulative += h.buckets[i];
      std::snprintf(number, sizeof number, "%g", bound);
      out += key.first + "_bucket{" + prefix + "le=\"" + number + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    out += key.first + "_bucket{" + prefix + "le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    std::snprintf(number, sizeof number, "%.9g", h.sum);
    out += series(key.first + "_sum", key.second) + " " + number + "\n";
    out += series(key.first + "_count", key.second) + " " + std::to_string(h.count) + "\n";
  }
  return out;
}

}  // namespace synod::runtime
