// Distinct types for distinct numbers.
//
// `Id<Tag>` names things (a node, a group): it can be compared and hashed but
// not added. `Ordinal<Tag>` counts things that grow (a term, a log index): it
// supports the few arithmetic operations those need, and never mixes with an
// ordinal of another tag, so a term can never be passed where an index is due.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace synod::base {

template <class Tag>
class Id {
 public:
  constexpr Id() = default;
  constexpr explicit Id(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }
  constexpr bool is_none() const { return value_ == 0; }
  constexpr auto operator<=>(const Id&) const = default;

 private:
  uint64_t value_ = 0;
};

template <class Tag>
class Ordinal {
 public:
  constexpr Ordinal() = default;
  constexpr explicit Ordinal(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }
  constexpr auto operator<=>(const Ordinal&) const = default;

  constexpr Ordinal operator+(uint64_t delta) const { return Ordinal(value_ + delta); }
  constexpr Ordinal operator-(uint64_t delta) const { return Ordinal(value_ - delta); }
  // The distance between two ordinals is a plain count.
  constexpr uint64_t operator-(Ordinal other) const { return value_ - other.value_; }
  constexpr Ordinal& operator+=(uint64_t delta) {
    value_ += delta;
    return *this;
  }
  constexpr Ordinal& operator++() {
    ++value_;
    return *this;
  }
  constexpr Ordinal& operator--() {
    --value_;
    return *this;
  }
  constexpr Ordinal operator++(int) {
    Ordinal before = *this;
    ++value_;
    return before;
  }

 private:
  uint64_t value_ = 0;
};

template <class Tag>
std::ostream& operator<<(std::ostream& out, Id<Tag> id) {
  return out << id.value();
}
template <class Tag>
std::ostream& operator<<(std::ostream& out, Ordinal<Tag> ordinal) {
  return out << ordinal.value();
}

}  // namespace synod::base

template <class Tag>
struct std::hash<synod::base::Id<Tag>> {
  size_t operator()(synod::base::Id<Tag> id) const noexcept {
    return std::hash<uint64_t>{}(id.value());
  }
};
template <class Tag>
struct std::hash<synod::base::Ordinal<Tag>> {
  size_t operator()(synod::base::Ordinal<Tag> ordinal) const noexcept {
    return std::hash<uint64_t>{}(ordinal.value());
  }
};
