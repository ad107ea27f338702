// The peer protocol's codec: every message kind survives a round trip, and
// bytes from a confused or hostile peer are refused with a reason.
#include <gtest/gtest.h>

#include "runtime/wire.pb.h"
#include "runtime/wire_codec.h"

namespace synod::runtime {
namespace {

using namespace synod::raft;

Message full_raft_message() {
  Message m;
  m.group = GroupId{9};
  m.type = MessageType::kSnap;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{7};
  m.log_term = Term{6};
  m.index = LogIndex{100};
  m.entries = {Entry{Term{6}, LogIndex{101}, EntryType::kNormal, base::Bytes("a\0b")},
               Entry{Term{7}, LogIndex{102}, EntryType::kConfChange, base::Bytes("cc")}};
  m.commit = LogIndex{99};
  m.reject = true;
  m.reject_hint = LogIndex{50};
  m.context = base::Bytes(std::string("\x00\x01\x02", 3));
  SnapshotChunk chunk;
  chunk.meta.index = LogIndex{90};
  chunk.meta.term = Term{5};
  chunk.meta.conf_state.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  chunk.meta.conf_state.learners = {NodeId{4}};
  chunk.meta.conf_state.auto_leave = true;
  chunk.offset = 4096;
  chunk.total_bytes = 10000;
  chunk.data = base::Bytes("chunk bytes");
  chunk.checksum = 0xdeadbeef;
  chunk.last = false;
  m.snapshot = chunk;
  m.lease_stamp = 12345;
  m.campaign = CampaignKind::kTransfer;
  return m;
}

TEST(WireCodec, RaftMessageRoundTripsExactly) {
  const Message m = full_raft_message();
  auto decoded = decode_envelope(encode_envelope(1, 2, m));
  ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
  EXPECT_EQ(decoded->from, 1u);
  EXPECT_EQ(decoded->to, 2u);
  EXPECT_EQ(std::get<Message>(decoded->messages.at(0)), m);
  Message plain;
  plain.type = MessageType::kHeartbeat;
  plain.from = NodeId{3};
  plain.to = NodeId{1};
  auto decoded_plain = decode_envelope(encode_envelope(3, 1, plain));
  ASSERT_TRUE(decoded_plain.ok());
  EXPECT_EQ(std::get<Message>(decoded_plain->messages.at(0)), plain);
}

TEST(WireCodec, ForwardedRequestAndReplyRoundTrip) {
  node::Request request;
  request.kind = node::Request::Kind::kWrite;
  request.command = node::Command{.client_id = 4, .sequence = 8, .op = node::CommandOp::kCas,
                                  .key = std::string("k\0", 2), .value = "new",
                                  .expected = "old", .expect_absent = false};
  auto forward = decode_envelope(encode_envelope(2, 1, node::ForwardRequest{77, 5, request, 40}));
  ASSERT_TRUE(forward.ok());
  const auto& f = std::get<node::ForwardRequest>(forward->messages.at(0));
  EXPECT_EQ(f.incarnation, 77u);
  EXPECT_EQ(f.id, 5u);
  EXPECT_EQ(f.ticks_left, 40u);
  EXPECT_EQ(f.request.command.key, std::string("k\0", 2));
  EXPECT_EQ(f.request.command.expected, "old");

  node::Response response;
  response.value = std::string("v\xff", 2);
  response.reply.kind = node::CommandReply::Kind::kInteger;
  response.reply.integer = -3;
  auto reply = decode_envelope(encode_envelope(1, 2, node::ForwardReply{77, 5, response}));
  ASSERT_TRUE(reply.ok());
  const auto& r = std::get<node::ForwardReply>(reply->messages.at(0));
  EXPECT_EQ(r.response.value, response.value);
  EXPECT_EQ(r.response.reply, response.reply);
  node::Response absent;
  auto reply_absent = decode_envelope(encode_envelope(1, 2, node::ForwardReply{1, 1, absent}));
  EXPECT_FALSE(std::get<node::ForwardReply>(reply_absent->messages.at(0)).response.value.has_value());
}

TEST(WireCodec, ConfusedOrHostileBytesAreRefused) {
  EXPECT_FALSE(decode_envelope("\xff\xff\xff garbage").ok());
  EXPECT_FALSE(decode_envelope("").ok());  // an empty envelope

  wire::Envelope newer;
  newer.set_version(kWireVersion + 1);
  newer.set_from(1);
  newer.set_to(2);
  newer.add_bodies()->mutable_raft()->set_type(static_cast<uint32_t>(MessageType::kApp));
  auto refused = decode_envelope(newer.SerializeAsString());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("protocol version 2"), std::string::npos);

  auto with = [](auto edit) {
    wire::Envelope e;
    e.set_version(kWireVersion);
    e.set_from(1);
    e.set_to(2);
    e.add_bodies()->mutable_raft()->set_type(static_cast<uint32_t>(MessageType::kApp));
    edit(e);
    return decode_envelope(e.SerializeAsString());
  };
  EXPECT_FALSE(with([](wire::Envelope& e) { e.mutable_bodies(0)->mutable_raft()->set_type(200); }).ok());
  EXPECT_FALSE(with([](wire::Envelope& e) {
                 e.mutable_bodies(0)->mutable_raft()->set_type(static_cast<uint32_t>(MessageType::kHup));
               }).ok());
  EXPECT_FALSE(with([](wire::Envelope& e) { e.mutable_bodies(0)->mutable_raft()->add_entries()->set_type(9); }).ok());
  EXPECT_FALSE(with([](wire::Envelope& e) { e.set_from(0); }).ok());
  EXPECT_FALSE(with([](wire::Envelope& e) {
                 e.mutable_bodies(0)->mutable_raft()->mutable_snapshot()->mutable_meta()->mutable_conf_state()->add_voters(0);
               }).ok());
  EXPECT_FALSE(with([](wire::Envelope& e) {
                 e.mutable_bodies(0)->mutable_forward()->mutable_request()->set_kind(1);
                 e.mutable_bodies(0)->mutable_forward()->mutable_request()->mutable_command()->set_op(99);
               }).ok());
  EXPECT_TRUE(with([](wire::Envelope&) {}).ok());
}

TEST(WireCodec, OneEnvelopeCarriesEveryMessageForAPeer) {
  Message heartbeat;
  heartbeat.type = MessageType::kHeartbeat;
  heartbeat.from = NodeId{1};
  heartbeat.to = NodeId{2};
  std::vector<node::PeerMessage> batch;
  for (uint64_t group = 1; group <= 5; ++group) {
    heartbeat.group = GroupId{group};
    batch.push_back(heartbeat);
  }
  batch.push_back(node::ForwardReply{7, 3, node::Response{}, 4});
  auto decoded = decode_envelope(encode_envelope(1, 2, batch));
  ASSERT_TRUE(decoded.ok());
  ASSERT_EQ(decoded->messages.size(), 6u);
  for (uint64_t group = 1; group <= 5; ++group) {
    EXPECT_EQ(node::group_of(decoded->messages[group - 1]), group);
  }
  EXPECT_EQ(node::group_of(decoded->messages[5]), 4u);
}

TEST(WireCodec, HelloAndRefusalRoundTrip) {
  Hello hello{kWireVersion, "cluster-a", 3, 1};
  auto decoded = decode_hello(encode_hello(hello));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->cluster_id, "cluster-a");
  EXPECT_EQ(decoded->node_id, 3u);
  EXPECT_EQ(decoded->expect_node, 1u);
  EXPECT_EQ(*decode_refusal(encode_refusal("wrong cluster")), "wrong cluster");
}

}  // namespace
}  // namespace synod::runtime
