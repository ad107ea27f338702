// Errors as values. The core never throws across its boundary: a function that
// can fail returns `Result<T>` (a value or an `Error`), and the shell turns the
// error into a message for a person.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace synod::base {

enum class Errc {
  kOk = 0,
  // The requested log entries were compacted away (a snapshot covers them).
  kCompacted,
  // The requested entries are not (yet) in storage.
  kUnavailable,
  // A snapshot is being built; ask again later.
  kSnapshotTemporarilyUnavailable,
  // The snapshot is older than what the caller already has.
  kSnapshotOutOfDate,
  // A proposal was dropped (no leader, leader transferring, a limit reached).
  kProposalDropped,
  // The input was malformed or out of bounds; nothing was changed.
  kInvalidArgument,
  // A configuration or a state was rejected by validation.
  kFailedPrecondition,
  // The step was not taken because the peer is unknown or removed.
  kStepPeerNotFound,
  // Stored bytes failed a checksum or a structural check; nothing was
  // trusted past them.
  kCorruption,
  kIo,
  // The disk is full. What was already durable is intact.
  kNoSpace,
  // A durable write failed earlier; the store refuses writes until restarted
  // and recovered (a failed fsync leaves the page cache untrustworthy).
  kStoreFailed,
  // What was asked for does not exist (a keyspace name nobody created).
  kNotFound,
};

std::string_view errc_name(Errc code);

class Error {
 public:
  Error(Errc code, std::string message = {}) : code_(code), message_(std::move(message)) {}
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // "compacted: entries below 12 are in the snapshot"
  std::string to_string() const;
  bool operator==(Errc code) const { return code_ == code; }

 private:
  Errc code_;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}
  Result(Errc code) : state_(std::in_place_index<1>, Error(code)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    SYNOD_ASSERT(ok(), "value() of a failed Result");
    return std::get<0>(state_);
  }
  const T& value() const& {
    SYNOD_ASSERT(ok(), "value() of a failed Result");
    return std::get<0>(state_);
  }
  T&& value() && {
    SYNOD_ASSERT(ok(), "value() of a failed Result");
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    SYNOD_ASSERT(!ok(), "error() of a successful Result");
    return std::get<1>(state_);
  }
  Errc code() const { return ok() ? Errc::kOk : error().code(); }

 private:
  std::variant<T, Error> state_;
};

// Result of an operation that yields nothing but may fail.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), failed_(true) {}
  Status(Errc code) : error_(code), failed_(code != Errc::kOk) {}
  static Status ok_status() { return Status(); }

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  Errc code() const { return failed_ ? error_.code() : Errc::kOk; }
  const Error& error() const {
    SYNOD_ASSERT(failed_, "error() of a successful Status");
    return error_;
  }

 private:
  Error error_{Errc::kOk};
  bool failed_ = false;
};

}  // namespace synod::base
