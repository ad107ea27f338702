#include "raft/read_only.h"

namespace synod::raft {

void ReadOnly::add_request(LogIndex index, const Message& request) {
  std::string key(request.context.view());
  if (pending_.count(key)) return;  // a retry of a read already queued
  pending_.emplace(key, Pending{request, index, {}});
  queue_.push_back(std::move(key));
}

const std::map<NodeId, bool>* ReadOnly::recv_ack(NodeId from, const Bytes& context) {
  auto it = pending_.find(std::string(context.view()));
  if (it == pending_.end()) return nullptr;
  it->second.acks[from] = true;
  return &it->second.acks;
}

std::vector<ReadOnly::Pending> ReadOnly::advance(const Bytes& context) {
  std::vector<Pending> released;
  const std::string key(context.view());
  if (!pending_.count(key)) return released;
  while (!queue_.empty()) {
    std::string front = std::move(queue_.front());
    queue_.pop_front();
    auto it = pending_.find(front);
    released.push_back(std::move(it->second));
    pending_.erase(it);
    if (front == key) break;
  }
  return released;
}

Bytes ReadOnly::last_pending_context() const {
  if (queue_.empty()) return Bytes();
  return Bytes(queue_.back());
}

}  // namespace synod::raft
