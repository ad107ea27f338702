// Pending ReadIndex requests at a leader (Raft thesis §6.4).
//
// A read is recorded with the commit index at the time it arrived. The leader
// then sends a heartbeat round carrying the request's context; once a quorum
// acknowledges that round the leader knows it was still the leader when the
// read arrived, so every read queued up to and including this one may be
// served at its recorded index.
#pragma once

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "raft/types.h"

namespace synod::raft {

class ReadOnly {
 public:
  struct Pending {
    Message request;  // the original kReadIndex (its `from` gets the answer)
    LogIndex index;
    std::map<NodeId, bool> acks;
  };

  void add_request(LogIndex index, const Message& request);
  // Records that `from` acknowledged the heartbeat carrying `context`.
  // Returns the acks so far (empty if the context is unknown).
  const std::map<NodeId, bool>* recv_ack(NodeId from, const Bytes& context);
  // Removes and returns every request up to and including `context`.
  std::vector<Pending> advance(const Bytes& context);
  // The context of the newest pending request ("" if none).
  Bytes last_pending_context() const;
  size_t size() const { return queue_.size(); }
  void clear() {
    pending_.clear();
    queue_.clear();
  }

 private:
  std::map<std::string, Pending> pending_;
  std::deque<std::string> queue_;
};

}  // namespace synod::raft
