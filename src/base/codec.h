// Little binary encoding used wherever a record crosses a disk or a wire.
//
// `Encoder` appends varints, fixed-width little-endian integers and
// length-prefixed byte strings to a std::string. `Decoder` reads them back
// and never trusts the input: every read says whether it succeeded, and a
// length prefix is compared with both the bytes that remain and a caller's
// cap before anything is allocated or sliced.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace synod::base {

class Encoder {
 public:
  explicit Encoder(std::string& out) : out_(out) {}

  void varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>(value | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }
  void fixed32(uint32_t value) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(value >> (8 * i)));
  }
  void fixed64(uint64_t value) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(value >> (8 * i)));
  }
  void byte(uint8_t value) { out_.push_back(static_cast<char>(value)); }
  // A varint length, then the bytes.
  void bytes(std::string_view value) {
    varint(value.size());
    out_.append(value);
  }
  void raw(std::string_view value) { out_.append(value); }

 private:
  std::string& out_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view data) : data_(data) {}

  [[nodiscard]] bool varint(uint64_t* value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return false;
      const auto next = static_cast<uint8_t>(data_[pos_++]);
      result |= static_cast<uint64_t>(next & 0x7f) << shift;
      if ((next & 0x80) == 0) {
        *value = result;
        return true;
      }
    }
    return false;  // more than 10 bytes: not a varint anyone wrote
  }
  [[nodiscard]] bool fixed32(uint32_t* value) {
    if (remaining() < 4) return false;
    uint32_t result = 0;
    for (int i = 0; i < 4; ++i) {
      result |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    }
    pos_ += 4;
    *value = result;
    return true;
  }
  [[nodiscard]] bool fixed64(uint64_t* value) {
    if (remaining() < 8) return false;
    uint64_t result = 0;
    for (int i = 0; i < 8; ++i) {
      result |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    }
    pos_ += 8;
    *value = result;
    return true;
  }
  [[nodiscard]] bool byte(uint8_t* value) {
    if (remaining() < 1) return false;
    *value = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  // A varint length no greater than `max_bytes` (nor than what remains), then
  // that many bytes, returned as a view into the input.
  [[nodiscard]] bool bytes(std::string_view* value, uint64_t max_bytes) {
    uint64_t size = 0;
    if (!varint(&size)) return false;
    if (size > max_bytes || size > remaining()) return false;
    return raw(size, value);
  }
  [[nodiscard]] bool raw(uint64_t count, std::string_view* value) {
    if (count > remaining()) return false;
    *value = data_.substr(pos_, count);
    pos_ += count;
    return true;
  }

  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace synod::base
