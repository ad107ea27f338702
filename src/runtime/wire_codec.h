// The peer protocol's messages in bytes: node::PeerMessage to and from the
// protobuf Envelope of wire.proto. Protobuf headers stay in wire_codec.cc.
//
// Decoding trusts nothing: the version must be ours, every enum must name a
// value that exists, ids must be set. (The frame around the bytes, with its
// length cap and checksum, is the transport's: base/frame.h.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "node/node.h"

namespace synod::runtime {

inline constexpr uint32_t kWireVersion = 1;

// Frame types on a peer connection.
enum class PeerFrame : uint8_t { kHello = 1, kRefusal = 2, kEnvelope = 3 };

struct Hello {
  uint32_t version = kWireVersion;
  std::string cluster_id;
  uint64_t node_id = 0;
  uint64_t expect_node = 0;
};

struct DecodedEnvelope {
  uint64_t from = 0;
  uint64_t to = 0;
  std::vector<node::PeerMessage> messages;
};

std::string encode_envelope(uint64_t from, uint64_t to,
                            const std::vector<node::PeerMessage>& messages);
std::string encode_envelope(uint64_t from, uint64_t to, const node::PeerMessage& message);
base::Result<DecodedEnvelope> decode_envelope(std::string_view bytes);

std::string encode_hello(const Hello& hello);
base::Result<Hello> decode_hello(std::string_view bytes);

std::string encode_refusal(const std::string& reason);
base::Result<std::string> decode_refusal(std::string_view bytes);

}  // namespace synod::runtime
