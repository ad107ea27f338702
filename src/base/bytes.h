// An immutable, shared byte string.
//
// Log entries and snapshots travel through many hands (the leader's log, one
// message per follower, the persistence queue, the apply queue). Copying a
// `Bytes` shares one buffer instead of copying the payload; nobody may change
// the payload after it is made, so sharing is safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace synod::base {

class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(std::string data)
      : data_(data.empty() ? nullptr : std::make_shared<const std::string>(std::move(data))) {}
  explicit Bytes(std::string_view data) : Bytes(std::string(data)) {}
  explicit Bytes(const char* data) : Bytes(std::string(data)) {}

  std::string_view view() const { return data_ ? std::string_view(*data_) : std::string_view(); }
  std::string str() const { return std::string(view()); }
  size_t size() const { return data_ ? data_->size() : 0; }
  bool empty() const { return size() == 0; }
  const char* data() const { return view().data(); }

  friend bool operator==(const Bytes& a, const Bytes& b) { return a.view() == b.view(); }

 private:
  std::shared_ptr<const std::string> data_;
};

}  // namespace synod::base
