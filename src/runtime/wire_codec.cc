#include "runtime/wire_codec.h"

#include "runtime/wire.pb.h"

namespace synod::runtime {
namespace {

using base::Errc;
using base::Error;

Error malformed(const std::string& why) {
  return Error(Errc::kCorruption, "malformed peer message: " + why);
}

void to_proto(const raft::ConfState& conf, wire::ConfState* out) {
  for (raft::NodeId id : conf.voters) out->add_voters(id.value());
  for (raft::NodeId id : conf.learners) out->add_learners(id.value());
  for (raft::NodeId id : conf.voters_outgoing) out->add_voters_outgoing(id.value());
  for (raft::NodeId id : conf.learners_next) out->add_learners_next(id.value());
  out->set_auto_leave(conf.auto_leave);
}

base::Result<raft::ConfState> from_proto(const wire::ConfState& in) {
  raft::ConfState conf;
  auto copy = [](const auto& ids, std::vector<raft::NodeId>* out) {
    if (static_cast<uint64_t>(ids.size()) > raft::kConfStateNodesMax) return false;
    for (uint64_t id : ids) {
      if (id == 0) return false;
      out->push_back(raft::NodeId{id});
    }
    return true;
  };
  if (!copy(in.voters(), &conf.voters) || !copy(in.learners(), &conf.learners) ||
      !copy(in.voters_outgoing(), &conf.voters_outgoing) ||
      !copy(in.learners_next(), &conf.learners_next)) {
    return malformed("configuration with node id 0 or too many nodes");
  }
  conf.auto_leave = in.auto_leave();
  return conf;
}

void to_proto(const raft::Message& m, wire::RaftMessage* out) {
  out->set_group(m.group.value());
  out->set_type(static_cast<uint32_t>(m.type));
  out->set_from(m.from.value());
  out->set_to(m.to.value());
  out->set_term(m.term.value());
  out->set_log_term(m.log_term.value());
  out->set_index(m.index.value());
  for (const raft::Entry& e : m.entries) {
    wire::Entry* entry = out->add_entries();
    entry->set_term(e.term.value());
    entry->set_index(e.index.value());
    entry->set_type(static_cast<uint32_t>(e.type));
    entry->set_data(std::string(e.data.view()));
  }
  out->set_commit(m.commit.value());
  out->set_reject(m.reject);
  out->set_reject_hint(m.reject_hint.value());
  out->set_context(std::string(m.context.view()));
  if (m.snapshot) {
    wire::SnapshotChunk* chunk = out->mutable_snapshot();
    chunk->mutable_meta()->set_index(m.snapshot->meta.index.value());
    chunk->mutable_meta()->set_term(m.snapshot->meta.term.value());
    to_proto(m.snapshot->meta.conf_state, chunk->mutable_meta()->mutable_conf_state());
    chunk->set_offset(m.snapshot->offset);
    chunk->set_total_bytes(m.snapshot->total_bytes);
    chunk->set_data(std::string(m.snapshot->data.view()));
    chunk->set_checksum(m.snapshot->checksum);
    chunk->set_last(m.snapshot->last);
  }
  out->set_lease_stamp(m.lease_stamp);
  out->set_campaign(static_cast<uint32_t>(m.campaign));
}

base::Result<raft::Message> from_proto(const wire::RaftMessage& in) {
  raft::Message m;
  if (in.type() > static_cast<uint32_t>(raft::MessageType::kReadIndexResp)) {
    return malformed("unknown raft message type " + std::to_string(in.type()));
  }
  m.type = static_cast<raft::MessageType>(in.type());
  if (raft::is_local_message(m.type)) {
    return malformed(std::string("local message type ") +
                     std::string(raft::message_type_name(m.type)) + " on the wire");
  }
  if (in.campaign() > static_cast<uint32_t>(raft::CampaignKind::kTransfer)) {
    return malformed("unknown campaign kind " + std::to_string(in.campaign()));
  }
  m.group = raft::GroupId{in.group()};
  m.from = raft::NodeId{in.from()};
  m.to = raft::NodeId{in.to()};
  m.term = raft::Term{in.term()};
  m.log_term = raft::Term{in.log_term()};
  m.index = raft::LogIndex{in.index()};
  m.entries.reserve(static_cast<size_t>(in.entries_size()));
  for (const wire::Entry& e : in.entries()) {
    if (e.type() > static_cast<uint32_t>(raft::EntryType::kConfChange)) {
      return malformed("unknown entry type " + std::to_string(e.type()));
    }
    m.entries.push_back(raft::Entry{raft::Term{e.term()}, raft::LogIndex{e.index()},
                                    static_cast<raft::EntryType>(e.type()),
                                    base::Bytes(e.data())});
  }
  m.commit = raft::LogIndex{in.commit()};
  m.reject = in.reject();
  m.reject_hint = raft::LogIndex{in.reject_hint()};
  m.context = base::Bytes(in.context());
  if (in.has_snapshot()) {
    const wire::SnapshotChunk& c = in.snapshot();
    raft::SnapshotChunk chunk;
    chunk.meta.index = raft::LogIndex{c.meta().index()};
    chunk.meta.term = raft::Term{c.meta().term()};
    auto conf = from_proto(c.meta().conf_state());
    if (!conf) return conf.error();
    chunk.meta.conf_state = std::move(*conf);
    chunk.offset = c.offset();
    chunk.total_bytes = c.total_bytes();
    chunk.data = base::Bytes(c.data());
    chunk.checksum = c.checksum();
    chunk.last = c.last();
    m.snapshot = std::move(chunk);
  }
  m.lease_stamp = in.lease_stamp();
  m.campaign = static_cast<raft::CampaignKind>(in.campaign());
  return m;
}

void to_proto(const node::Request& request, wire::Request* out) {
  out->set_kind(static_cast<uint32_t>(request.kind));
  out->set_key(request.key);
  const node::Command& c = request.command;
  wire::Command* command = out->mutable_command();
  command->set_client_id(c.client_id);
  command->set_sequence(c.sequence);
  command->set_op(static_cast<uint32_t>(c.op));
  command->set_key(c.key);
  command->set_value(c.value);
  command->set_expected(c.expected);
  command->set_expect_absent(c.expect_absent);
  command->set_flags(c.flags);
  command->set_now_ms(c.now_ms);
  command->set_expire_at_ms(c.expire_at_ms);
  out->set_now_ms(request.now_ms);
}

base::Result<node::Request> from_proto(const wire::Request& in) {
  node::Request request;
  if (in.kind() > static_cast<uint32_t>(node::Request::Kind::kWrite)) {
    return malformed("unknown request kind " + std::to_string(in.kind()));
  }
  request.kind = static_cast<node::Request::Kind>(in.kind());
  request.key = in.key();
  const wire::Command& c = in.command();
  if (request.kind == node::Request::Kind::kWrite &&
      (c.op() < static_cast<uint32_t>(node::CommandOp::kPut) ||
       c.op() > static_cast<uint32_t>(node::CommandOp::kSetPlacement))) {
    return malformed("unknown command op " + std::to_string(c.op()));
  }
  request.command.client_id = c.client_id();
  request.command.sequence = c.sequence();
  request.command.op = static_cast<node::CommandOp>(c.op());
  request.command.key = c.key();
  request.command.value = c.value();
  request.command.expected = c.expected();
  request.command.expect_absent = c.expect_absent();
  if (c.flags() > 0xff) return malformed("command flags out of range");
  request.command.flags = static_cast<uint8_t>(c.flags());
  request.command.now_ms = c.now_ms();
  request.command.expire_at_ms = c.expire_at_ms();
  request.now_ms = in.now_ms();
  return request;
}

void to_proto(const node::Response& response, wire::Response* out) {
  out->set_status(static_cast<uint32_t>(response.status));
  out->set_reply_kind(static_cast<uint32_t>(response.reply.kind));
  out->set_integer(response.reply.integer);
  out->set_error(response.reply.error);
  out->set_has_value(response.value.has_value());
  if (response.value) out->set_value(*response.value);
  out->set_reason(response.reason);
  out->set_reply_has_value(response.reply.value.has_value());
  if (response.reply.value) out->set_reply_value(*response.reply.value);
}

base::Result<node::Response> from_proto(const wire::Response& in) {
  node::Response response;
  if (in.status() > static_cast<uint32_t>(node::Response::Status::kTimeout)) {
    return malformed("unknown response status " + std::to_string(in.status()));
  }
  if (in.reply_kind() > static_cast<uint32_t>(node::CommandReply::Kind::kError)) {
    return malformed("unknown reply kind " + std::to_string(in.reply_kind()));
  }
  response.status = static_cast<node::Response::Status>(in.status());
  response.reply.kind = static_cast<node::CommandReply::Kind>(in.reply_kind());
  response.reply.integer = in.integer();
  response.reply.error = in.error();
  if (in.has_value()) response.value = in.value();
  response.reason = in.reason();
  if (in.reply_has_value()) response.reply.value = in.reply_value();
  return response;
}

}  // namespace

std::string encode_envelope(uint64_t from, uint64_t to,
                            const std::vector<node::PeerMessage>& messages) {
  wire::Envelope envelope;
  envelope.set_version(kWireVersion);
  envelope.set_from(from);
  envelope.set_to(to);
  for (const node::PeerMessage& message : messages) {
    wire::Body* body = envelope.add_bodies();
    if (const auto* m = std::get_if<raft::Message>(&message)) {
      to_proto(*m, body->mutable_raft());
    } else if (const auto* f = std::get_if<node::ForwardRequest>(&message)) {
      wire::ForwardRequest* forward = body->mutable_forward();
      forward->set_incarnation(f->incarnation);
      forward->set_id(f->id);
      forward->set_ticks_left(f->ticks_left);
      forward->set_group(f->group);
      to_proto(f->request, forward->mutable_request());
    } else if (const auto* r = std::get_if<node::ForwardReply>(&message)) {
      wire::ForwardReply* reply = body->mutable_forward_reply();
      reply->set_incarnation(r->incarnation);
      reply->set_id(r->id);
      reply->set_group(r->group);
      to_proto(r->response, reply->mutable_response());
    } else if (const auto* c = std::get_if<node::MembershipCheck>(&message)) {
      wire::MembershipCheck* check = body->mutable_membership();
      check->set_group(c->group);
      check->set_answer(c->answer);
      check->set_member(c->member);
    }
  }
  return envelope.SerializeAsString();
}

std::string encode_envelope(uint64_t from, uint64_t to, const node::PeerMessage& message) {
  return encode_envelope(from, to, std::vector<node::PeerMessage>{message});
}

base::Result<DecodedEnvelope> decode_envelope(std::string_view bytes) {
  wire::Envelope envelope;
  if (!envelope.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return malformed("not a protobuf Envelope");
  }
  if (envelope.version() != kWireVersion) {
    return Error(Errc::kInvalidArgument,
                 "peer speaks protocol version " + std::to_string(envelope.version()) +
                     ", this node " + std::to_string(kWireVersion));
  }
  if (envelope.from() == 0 || envelope.to() == 0) return malformed("node id 0");
  // No bodies: a heartbeat (PeerTransport sends one when it has had nothing
  // else to send to the peer for a heartbeat interval).
  DecodedEnvelope out;
  out.from = envelope.from();
  out.to = envelope.to();
  out.messages.reserve(static_cast<size_t>(envelope.bodies_size()));
  for (const wire::Body& body : envelope.bodies()) {
    switch (body.kind_case()) {
      case wire::Body::kRaft: {
        auto m = from_proto(body.raft());
        if (!m) return m.error();
        out.messages.push_back(std::move(*m));
        break;
      }
      case wire::Body::kForward: {
        auto request = from_proto(body.forward().request());
        if (!request) return request.error();
        out.messages.push_back(node::ForwardRequest{body.forward().incarnation(), body.forward().id(),
                                                    std::move(*request), body.forward().ticks_left(),
                                                    body.forward().group()});
        break;
      }
      case wire::Body::kForwardReply: {
        auto response = from_proto(body.forward_reply().response());
        if (!response) return response.error();
        out.messages.push_back(node::ForwardReply{body.forward_reply().incarnation(),
                                                  body.forward_reply().id(), std::move(*response),
                                                  body.forward_reply().group()});
        break;
      }
      case wire::Body::kMembership: {
        const wire::MembershipCheck& check = body.membership();
        out.messages.push_back(node::MembershipCheck{check.group(), check.answer(), check.member()});
        break;
      }
      default: return malformed("a message of no known kind");
    }
  }
  return out;
}

std::string encode_hello(const Hello& hello) {
  wire::Hello proto;
  proto.set_version(hello.version);
  proto.set_cluster_id(hello.cluster_id);
  proto.set_node_id(hello.node_id);
  proto.set_expect_node(hello.expect_node);
  return proto.SerializeAsString();
}

base::Result<Hello> decode_hello(std::string_view bytes) {
  wire::Hello proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return malformed("not a protobuf Hello");
  }
  Hello hello;
  hello.version = proto.version();
  hello.cluster_id = proto.cluster_id();
  hello.node_id = proto.node_id();
  hello.expect_node = proto.expect_node();
  return hello;
}

std::string encode_refusal(const std::string& reason) {
  wire::Refusal proto;
  proto.set_reason(reason);
  return proto.SerializeAsString();
}

base::Result<std::string> decode_refusal(std::string_view bytes) {
  wire::Refusal proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return malformed("not a protobuf Refusal");
  }
  return proto.reason();
}

}  // namespace synod::runtime
