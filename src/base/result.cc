#include "base/result.h"

namespace synod::base {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::kOk: return "ok";
    case Errc::kCompacted: return "compacted";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kSnapshotTemporarilyUnavailable: return "snapshot temporarily unavailable";
    case Errc::kSnapshotOutOfDate: return "snapshot out of date";
    case Errc::kProposalDropped: return "proposal dropped";
    case Errc::kInvalidArgument: return "invalid argument";
    case Errc::kFailedPrecondition: return "failed precondition";
    case Errc::kStepPeerNotFound: return "peer not found";
    case Errc::kCorruption: return "corruption";
    case Errc::kIo: return "i/o error";
    case Errc::kNoSpace: return "no space left on device";
    case Errc::kStoreFailed: return "store failed";
    case Errc::kNotFound: return "not found";
  }
  return "unknown error";
}

std::string Error::to_string() const {
  std::string text(errc_name(code_));
  if (!message_.empty()) {
    text += ": ";
    text += message_;
  }
  return text;
}

}  // namespace synod::base
