// Node: one replica of one Raft group with its key-value state machine, the
// client requests waiting on it and the routing between nodes. Pure: the host
// (the simulator today, the asio server next) feeds it ticks, peer messages,
// client requests and "your write is durable", and carries out what it asks
// for in `take_output()`: messages to send, a write to make durable, replies.
//
// Request routing: any node accepts any request. A node that leads proposes
// writes and serves reads through ReadIndex; any other node forwards the
// request to the leader it knows and relays the reply. With no leader known
// it holds the request, retrying on every tick, until the request's deadline.
//
// Replies say what a client may conclude:
//   kOk           done; for a write `reply` is the state machine's answer;
//   kUnavailable  never proposed (no leader, the leader refused it): it took
//                 no effect and is safe to retry;
//   kTimeout      the deadline passed after the request left for a leader or
//                 was proposed: it may take effect later or never. Writes
//                 carry (client id, sequence), so a retry never applies
//                 twice (KvStateMachine's dedupe).
//
// Durability: one Ready at a time. The leader sends its appends at once and
// writes its own log in parallel (Raft thesis §10.2.1); votes and
// acknowledgements go out, and committed entries are applied, only after the
// host calls `persisted()`. Every `compact_every_entries` applied entries the
// node syncs the engine and asks the host to compact the log up to there.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/bugs.h"
#include "base/result.h"
#include "node/kv_state_machine.h"
#include "raft/config.h"
#include "raft/raw_node.h"

namespace synod::node {

struct Request {
  enum class Kind : uint8_t { kRead, kWrite };
  Kind kind = Kind::kRead;
  std::string key;  // kRead
  Command command;  // kWrite
  // kRead: wall-clock ms when it was received (expired keys read absent);
  // writes carry theirs in `command.now_ms`. 0: no expiry judged.
  uint64_t now_ms = 0;
};

struct Response {
  enum class Status : uint8_t { kOk, kUnavailable, kTimeout };
  Status status = Status::kOk;
  // kOk write: the state machine's answer. kOk read: `integer` is the log
  // index the read was served at (its ReadIndex), so a node that asked
  // another can wait until its own replica has applied that far.
  CommandReply reply;
  std::optional<std::string> value;  // kOk read
  std::string reason;                // kUnavailable, kTimeout: for a person
};

std::string_view response_status_name(Response::Status status);

// kUnavailable: never proposed, safe to retry; `reason` for a person.
Response unavailable(std::string reason);

// A request a node hands to the leader it knows, and the leader's answer.
// `incarnation` and `id` together name the request on the sender: handles
// restart with the process, so a reply meant for an earlier life of the
// sender must not match a new request that reuses its handle.
struct ForwardRequest {
  uint64_t incarnation = 0;
  uint64_t id = 0;  // the sender's, echoed in the reply
  Request request;
  uint64_t ticks_left = 0;  // the leader gives up after this many of its ticks
  uint64_t group = 0;       // the Raft group it is for (set by the sender)
};
struct ForwardReply {
  uint64_t incarnation = 0;
  uint64_t id = 0;
  Response response;
  uint64_t group = 0;
};


// Replica garbage collection (node::GroupHost): a node that holds a replica
// the placement no longer gives it, and that has not seen its own removal
// (it missed the entry), asks the group whether it is still a member; only
// the group's leader, with no configuration change pending, answers.
struct MembershipCheck {
  uint64_t group = 0;
  bool answer = false;  // false: the question; true: the leader's answer
  bool member = true;   // the answer
  friend bool operator==(const MembershipCheck&, const MembershipCheck&) = default;
};

using PeerMessage = std::variant<raft::Message, ForwardRequest, ForwardReply, MembershipCheck>;

// The Raft group a peer message is for.
uint64_t group_of(const PeerMessage& message);

struct Envelope {
  raft::NodeId to;
  PeerMessage message;
};

// A write the host must make durable (when `sync`) before calling
// `persisted()`. `snapshot`: the state machine already holds it (synced);
// the log now starts after it. `compact`: the log may drop entries up to it.
struct PersistRequest {
  std::optional<raft::HardState> hard_state;
  std::vector<raft::Entry> entries;
  std::optional<raft::SnapshotMeta> snapshot;
  std::optional<raft::SnapshotMeta> compact;
  bool sync = false;
};

struct NodeOutput {
  std::vector<Envelope> messages;
  std::vector<std::pair<uint64_t, Response>> responses;  // (request id, reply)
  std::optional<PersistRequest> persist;
  // Entries applied since the last take, when `report_applied` (checkers).
  std::vector<raft::Entry> applied;
};

struct NodeOptions {
  raft::Config raft;  // id, group, storage and tuning
  // Ticks a request may wait for its answer.
  uint64_t request_timeout_ticks = 100;
  // More ticks per MiB of a write's key and value: a 64 MiB value is
  // written to three disks and copied along the way, and on a slow or busy
  // machine that alone can take longer than the base timeout.
  uint64_t request_timeout_ticks_per_mib = 0;
  // Applied entries between log compactions; 0: never compact.
  uint64_t compact_every_entries = 1000;
  // Requests held at once (local and forwarded); beyond it, kUnavailable.
  size_t pending_requests_max = 10'000;
  bool report_applied = false;
  // Different on every start of the process (the host draws it at random):
  // replies and read states meant for an earlier life are told apart by it.
  uint64_t incarnation = 0;
  base::BugSet bugs;  // the simulator only (base/bugs.h)
};

class Node {
 public:
  // `engine` holds the state machine; `options.raft.storage` the log. The
  // state machine's applied position is read from the engine.
  static base::Result<std::unique_ptr<Node>> create(NodeOptions options, KvEngine* engine);

  raft::NodeId id() const { return options_.raft.id; }

  void tick();
  void receive(raft::NodeId from, PeerMessage message);
  // A client's request; its reply comes back in `take_output()` under `id`,
  // which the host chooses (unique among this node's open requests).
  void submit(uint64_t id, Request request);
  // The host made the last PersistRequest durable.
  void persisted();

  // Writes submitted (or forwarded here) since the last call are proposed
  // now, as one Raft proposal: one append per follower however many clients
  // wrote. A host that takes output once per turn of its loop batches every
  // write of that turn.
  NodeOutput take_output();

  // Leader only: proposes a configuration change (Raft refuses one while
  // another is not yet applied, or on a follower: kProposalDropped).
  base::Status propose_conf_change(const raft::ConfChange& change);
  // Leader only: hands leadership to `to` (a caught-up voter).
  void transfer_leader(raft::NodeId to);

  // A failure the node cannot go on from (the engine refused a write): the
  // host must stop it and restart from disk.
  const std::optional<base::Error>& failed() const { return failed_; }

  const raft::RawNode& raw() const { return *raw_; }
  const KvStateMachine& machine() const { return *machine_; }
  raft::NodeId leader() const;
  bool persist_in_flight() const { return persist_outstanding_; }
  size_t pending_requests() const { return pending_.size(); }

 private:
  // Where a request stands on this node.
  enum class Stage : uint8_t {
    kWaiting,    // for a leader to send it to (never left this node)
    kQueued,     // a write this leader proposes with the others of this turn
    kForwarded,  // sent to the leader `forwarded_to`
    kProposed,   // in this leader's log (writes)
    kReading,    // ReadIndex asked (reads)
    kReadReady,  // ReadIndex answered; waiting for apply to reach `read_index`
  };
  struct Pending {
    raft::NodeId origin;       // kNone: a local client
    uint64_t origin_incarnation = 0;  // the forwarder's
    uint64_t origin_id = 0;    // the client's request id, or the forwarder's
    Request request;
    uint64_t deadline_tick = 0;
    Stage stage = Stage::kWaiting;
    bool left_node = false;  // forwarded or proposed at least once
    raft::NodeId forwarded_to;
    raft::LogIndex read_index;
  };

  Node(NodeOptions options, KvEngine* engine);
  base::Status start();

  // The ticks `request` may wait: the base timeout plus its size allowance.
  uint64_t timeout_ticks(const Request& request) const;
  void admit(raft::NodeId origin, uint64_t origin_incarnation, uint64_t origin_id,
             Request request, uint64_t ticks);
  void dispatch(uint64_t handle);
  void dispatch_waiting();
  void propose_queued();
  void finish(uint64_t handle, Response response);
  // Stops waiting for `handle`'s write to be applied here.
  void forget_write(uint64_t handle, const Request& request);
  void expire();
  void serve_reads();
  void pump();
  void take_ready();
  void finish_ready();
  void apply(const std::vector<raft::Entry>& entries);
  void maybe_compact();
  void fail(const base::Error& error);
  void send(raft::NodeId to, PeerMessage message);

  NodeOptions options_;
  KvEngine* engine_;
  std::unique_ptr<KvStateMachine> machine_;
  std::unique_ptr<raft::RawNode> raw_;
  NodeOutput output_;
  std::optional<raft::Ready> in_flight_;  // taken, waiting for persisted()
  bool persist_outstanding_ = false;
  std::optional<raft::SnapshotMeta> compact_wanted_;
  raft::LogIndex compacted_;
  std::optional<base::Error> failed_;

  uint64_t now_tick_ = 0;
  uint64_t next_handle_ = 1;
  std::map<uint64_t, Pending> pending_;  // by handle
  std::vector<uint64_t> queued_;         // kQueued handles, in arrival order
  // Writes proposed here, by (client id, sequence): the handles waiting.
  std::map<std::pair<uint64_t, uint64_t>, std::vector<uint64_t>> writes_;
};

}  // namespace synod::node
