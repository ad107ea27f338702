// PeerTransport: TCP between the nodes of a cluster, on the node's event loop.
//
// One connection per pair of nodes: the node with the smaller id dials, the
// other accepts, and both send on it. A connection starts with a handshake
// (a Hello each way, wire.proto): a peer from another cluster, one that is
// not in our member list, one that expected a different node at this
// address, or one speaking another protocol version is refused with a
// Refusal saying why, and the reason is logged on both sides.
//
// Frames are base/frame.h (length, XXH3 checksum, type); the length is
// checked against `frame_bytes_max` before the payload is read, and a bad
// checksum or an undecodable message closes the connection. A dialer whose
// connection fails retries with exponential backoff and full jitter.
// Every frame received is a heartbeat for a per-peer phi-accrual detector;
// a peer's suspicion rising past the threshold, and falling back, is logged.
// Sends never block: each peer has a bounded queue (`send_queue_bytes_max`);
// a message that does not fit, or for a peer not connected, is dropped and
// counted (Raft retransmits what matters), so a slow peer cannot eat memory.
//
// asio stays inside peer_transport.cc; callers see only this header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/node.h"

namespace asio {
class io_context;
}

namespace synod::runtime {

struct PeerTransportOptions {
  uint64_t node_id = 0;
  std::string cluster_id;
  std::string listen_address;  // host:port for peers to dial
  // Every member's peer address (ours included), by node id.
  std::map<uint64_t, std::string> members;
  uint32_t frame_bytes_max = 80u << 20;  // a full append or snapshot chunk, and room
  uint64_t send_queue_bytes_max = 64u << 20;
  uint32_t handshake_timeout_ms = 5000;
  uint32_t backoff_initial_ms = 50;
  uint32_t backoff_max_ms = 2000;
  // A frame goes to each connected peer at least this often (an empty
  // envelope when there is nothing else), and every frame received feeds
  // that peer's phi-accrual failure detector.
  uint32_t heartbeat_interval_ms = 100;
  double phi_threshold = 8.0;
};

struct PeerState {
  uint64_t id = 0;
  std::string address;
  bool connected = false;
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t dropped = 0;  // queue full or not connected
  uint64_t connects = 0;
  std::string last_error;
  // Milliseconds since the last frame from this peer; -1 if none yet.
  int64_t last_contact_ms_ago = -1;
  // The failure detector's suspicion now (membership/phi_accrual.h), and
  // whether it is at or above the threshold. Local: no one else acts on it.
  double phi = 0;
  bool suspected = false;
};

class PeerTransport {
 public:
  using OnMessage = std::function<void(uint64_t from, node::PeerMessage message)>;
  using Log = std::function<void(const std::string& line)>;

  PeerTransport(asio::io_context& loop, PeerTransportOptions options, OnMessage on_message,
                Log log);
  ~PeerTransport();
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Listens and starts dialing; an error if the address cannot be bound.
  base::Status start();
  // Closes every connection and stops dialing.
  void stop();
  // Sends `messages` to `to` in one frame.
  void send(uint64_t to, const std::vector<node::PeerMessage>& messages);
  std::vector<PeerState> peers() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// "host:port" into its parts; an error names what is wrong.
base::Result<std::pair<std::string, uint16_t>> split_address(const std::string& address);

}  // namespace synod::runtime
