#include "base/frame.h"

#include <xxhash.h>

#include <cinttypes>
#include <cstdio>

#include "base/assert.h"
#include "base/codec.h"

namespace synod::base {

namespace {

uint64_t frame_checksum(uint32_t length, uint8_t type, std::string_view payload) {
  return checksum64(payload, (static_cast<uint64_t>(length) << 8) | type);
}

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%016" PRIx64, value);
  return text;
}

}  // namespace

uint64_t checksum64(std::string_view data, uint64_t seed) {
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

void append_frame(std::string& out, uint8_t type, std::string_view payload) {
  const auto length = static_cast<uint32_t>(payload.size());
  SYNOD_ASSERT(length == payload.size(), "frame payload over 4 GiB");
  Encoder encoder(out);
  encoder.fixed32(length);
  encoder.fixed64(frame_checksum(length, type, payload));
  encoder.byte(type);
  encoder.raw(payload);
}

Frame read_frame(std::string_view data, uint32_t payload_bytes_max) {
  Frame frame;
  Decoder decoder(data);
  if (!decoder.fixed32(&frame.length) || !decoder.fixed64(&frame.stored_checksum) ||
      !decoder.byte(&frame.type)) {
    frame.status = FrameStatus::kTruncated;
    return frame;
  }
  if (frame.length > payload_bytes_max) {
    frame.status = FrameStatus::kLengthOverCap;
    return frame;
  }
  if (!decoder.raw(frame.length, &frame.payload)) {
    frame.status = FrameStatus::kTruncated;
    return frame;
  }
  frame.computed_checksum = frame_checksum(frame.length, frame.type, frame.payload);
  if (frame.computed_checksum != frame.stored_checksum) {
    frame.status = FrameStatus::kBadChecksum;
    return frame;
  }
  frame.frame_bytes = kFrameHeaderBytes + frame.length;
  frame.status = FrameStatus::kOk;
  return frame;
}

std::string describe_frame_problem(const Frame& frame, uint32_t payload_bytes_max) {
  switch (frame.status) {
    case FrameStatus::kOk: return "a valid record";
    case FrameStatus::kTruncated:
      return "record cut short (expected a " + std::to_string(kFrameHeaderBytes) +
             "-byte header and a " + std::to_string(frame.length) + "-byte payload)";
    case FrameStatus::kLengthOverCap:
      return "record length " + std::to_string(frame.length) + " over the cap of " +
             std::to_string(payload_bytes_max) + " bytes";
    case FrameStatus::kBadChecksum:
      return "checksum mismatch (stored " + hex(frame.stored_checksum) + ", computed " +
             hex(frame.computed_checksum) + " over " + std::to_string(frame.length) +
             " payload bytes)";
    case FrameStatus::kUnknownType:
      return "record of unknown type " + std::to_string(frame.type);
  }
  return "unknown problem";
}

}  // namespace synod::base
