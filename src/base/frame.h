// Checksummed frames: the unit of everything Synod writes to disk or streams
// in a snapshot.
//
//   [u32 length][u64 checksum][u8 type][payload: `length` bytes]
//
// little-endian; `checksum` is XXH3-64 of the payload seeded with
// (length << 8 | type), so a damaged length or type fails it too. A reader
// compares `length` with its cap before it reads or allocates anything.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace synod::base {

inline constexpr size_t kFrameHeaderBytes = 13;

uint64_t checksum64(std::string_view data, uint64_t seed = 0);

void append_frame(std::string& out, uint8_t type, std::string_view payload);

enum class FrameStatus {
  kOk,
  kTruncated,      // fewer bytes than the header, or than the length says
  kLengthOverCap,  // longer than the reader's cap
  kBadChecksum,
  kUnknownType,    // set by callers that know which types exist
};

struct Frame {
  FrameStatus status = FrameStatus::kTruncated;
  uint8_t type = 0;
  std::string_view payload;
  size_t frame_bytes = 0;  // header + payload, when kOk
  uint32_t length = 0;     // as stored
  uint64_t stored_checksum = 0;
  uint64_t computed_checksum = 0;
};

// Reads the frame at the start of `data`.
Frame read_frame(std::string_view data, uint32_t payload_bytes_max);
// "checksum mismatch (stored 0x..., computed 0x... over N payload bytes)".
std::string describe_frame_problem(const Frame& frame, uint32_t payload_bytes_max);

}  // namespace synod::base
