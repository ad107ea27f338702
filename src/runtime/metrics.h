// Metrics in the Prometheus text format: counters, gauges and latency
// histograms keyed by name and labels. Updated and rendered on the node's
// event loop (no locks); the admin server asks the loop for a rendering.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace synod::runtime {

class Metrics {
 public:
  // Latency buckets (seconds): 50 µs doubling up to about 13 s.
  static constexpr size_t kBuckets = 19;
  static constexpr double kFirstBucketSeconds = 50e-6;

  void add(const std::string& name, const std::string& labels, uint64_t delta = 1);
  void set_gauge(const std::string& name, const std::string& labels, double value);
  void observe(const std::string& name, const std::string& labels, double seconds);

  // Declares a metric's help text and type ("counter", "gauge", "histogram").
  void describe(const std::string& name, const std::string& type, const std::string& help);

  uint64_t counter(const std::string& name, const std::string& labels) const;
  std::string render() const;

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  using Key = std::pair<std::string, std::string>;  // name, labels ("a=\"b\"")
  std::map<std::string, std::pair<std::string, std::string>> help_;  // name -> (type, help)
  std::map<Key, uint64_t> counters_;
  std::map<Key, double> gauges_;
  std::map<Key, Histogram> histograms_;
};

// A label value escaped for the text format.
std::string label_value(const std::string& value);

}  // namespace synod::runtime
