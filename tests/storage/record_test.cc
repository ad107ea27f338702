// WAL records: every type survives encode → frame → decode unchanged, and
// every kind of damage a disk can do is refused, never decoded into data.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "base/codec.h"
#include "storage/record.h"

namespace synod::storage {
namespace {

using base::Errc;
using raft::ConfState;
using raft::Entry;
using raft::EntryType;
using raft::GroupId;
using raft::HardState;
using raft::LogIndex;
using raft::NodeId;
using raft::SnapshotMeta;
using raft::Term;

constexpr uint32_t kCap = 1u << 20;
constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();

Entry entry(uint64_t term, uint64_t index, std::string data,
            EntryType type = EntryType::kNormal) {
  return Entry{Term{term}, LogIndex{index}, type, base::Bytes(std::move(data))};
}

std::string all_byte_values() {
  std::string data;
  for (int i = 0; i < 256; ++i) data.push_back(static_cast<char>(i));
  return data;
}

WalRecord entries_record(uint64_t group, std::vector<Entry> entries) {
  WalRecord record;
  record.type = RecordType::kEntries;
  record.group = GroupId{group};
  record.entries = std::move(entries);
  return record;
}

WalRecord hard_state_record(uint64_t group, HardState state) {
  WalRecord record;
  record.type = RecordType::kHardState;
  record.group = GroupId{group};
  record.hard_state = state;
  return record;
}

WalRecord snapshot_record(uint64_t group, SnapshotMeta meta, SnapshotMode mode) {
  WalRecord record;
  record.type = RecordType::kSnapshot;
  record.group = GroupId{group};
  record.snapshot = std::move(meta);
  record.snapshot_mode = mode;
  return record;
}

WalRecord segment_header_record(uint64_t segment) {
  WalRecord record;
  record.type = RecordType::kSegmentHeader;
  record.segment = segment;
  return record;
}

ConfState full_conf_state() {
  ConfState conf;
  conf.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  conf.learners = {NodeId{7}};
  conf.voters_outgoing = {NodeId{1}, NodeId{2}, NodeId{kMax64}};
  conf.learners_next = {NodeId{9}, NodeId{300}};
  conf.auto_leave = true;
  return conf;
}

std::string encode(const WalRecord& record) {
  std::string out;
  encode_wal_record(out, record);
  return out;
}

// The payload of a framed record.
std::string payload_of(const WalRecord& record) { return encode(record).substr(kRecordHeaderBytes); }

void expect_same(const WalRecord& a, const WalRecord& b) {
  ASSERT_EQ(a.type, b.type);
  switch (a.type) {
    case RecordType::kSegmentHeader: EXPECT_EQ(a.segment, b.segment); break;
    case RecordType::kEntries:
      EXPECT_EQ(a.group, b.group);
      EXPECT_EQ(a.entries, b.entries);
      break;
    case RecordType::kHardState:
      EXPECT_EQ(a.group, b.group);
      EXPECT_EQ(a.hard_state, b.hard_state);
      break;
    case RecordType::kSnapshot:
      EXPECT_EQ(a.group, b.group);
      EXPECT_EQ(a.snapshot, b.snapshot);
      EXPECT_EQ(a.snapshot_mode, b.snapshot_mode);
      break;
  }
}

WalRecord round_trip(const WalRecord& record) {
  const std::string framed = encode(record);
  const Frame frame = read_frame(framed, kCap);
  EXPECT_EQ(frame.status, FrameStatus::kOk) << describe_frame_problem(frame, kCap);
  EXPECT_EQ(frame.frame_bytes, framed.size());
  EXPECT_EQ(frame.type, static_cast<uint8_t>(record.type));
  auto decoded = decode_wal_record(static_cast<RecordType>(frame.type), frame.payload, kCap);
  EXPECT_TRUE(decoded.ok()) << decoded.error().to_string();
  if (!decoded) return {};
  return *decoded;
}

std::vector<WalRecord> sample_records() {
  return {
      segment_header_record(1),
      entries_record(1, {entry(1, 1, "a")}),
      entries_record(2, {entry(3, 10, ""), entry(3, 11, all_byte_values()),
                         entry(4, 12, "conf", EntryType::kConfChange), entry(4, 13, "")}),
      hard_state_record(1, HardState{Term{5}, NodeId{2}, LogIndex{17}}),
      snapshot_record(1, SnapshotMeta{LogIndex{40}, Term{3}, full_conf_state()},
                      SnapshotMode::kCompact),
      snapshot_record(3, SnapshotMeta{LogIndex{41}, Term{4}, ConfState{}}, SnapshotMode::kInstall),
  };
}

TEST(WalRecord, EveryTypeRoundTrips) {
  for (const WalRecord& record : sample_records()) {
    SCOPED_TRACE(static_cast<int>(record.type));
    expect_same(round_trip(record), record);
  }
}

TEST(WalRecord, EntriesKeepEmptyBinaryAndConfChangeData) {
  const WalRecord record =
      entries_record(9, {entry(2, 5, ""), entry(2, 6, all_byte_values()),
                         entry(2, 7, std::string(5000, '\0')),
                         entry(3, 8, "change", EntryType::kConfChange)});
  const WalRecord back = round_trip(record);
  ASSERT_EQ(back.entries.size(), 4u);
  EXPECT_TRUE(back.entries[0].data.empty());
  EXPECT_EQ(back.entries[1].data.view(), all_byte_values());
  EXPECT_EQ(back.entries[2].data.size(), 5000u);
  EXPECT_EQ(back.entries[3].type, EntryType::kConfChange);
  EXPECT_EQ(back.entries[3].index, LogIndex{8});
  EXPECT_EQ(back.entries[3].term, Term{3});
  EXPECT_EQ(back.group, GroupId{9});
}

TEST(WalRecord, LargestNumbersRoundTrip) {
  expect_same(round_trip(entries_record(kMax64, {entry(kMax64, kMax64 - 1, "x"),
                                                 entry(kMax64, kMax64, "y")})),
              entries_record(kMax64, {entry(kMax64, kMax64 - 1, "x"), entry(kMax64, kMax64, "y")}));
  const WalRecord hard = hard_state_record(kMax64, HardState{Term{kMax64}, NodeId{kMax64}, LogIndex{kMax64}});
  expect_same(round_trip(hard), hard);
  const WalRecord header = segment_header_record(kMax64);
  expect_same(round_trip(header), header);
  const WalRecord marker =
      snapshot_record(kMax64, SnapshotMeta{LogIndex{kMax64}, Term{kMax64}, full_conf_state()},
                      SnapshotMode::kInstall);
  expect_same(round_trip(marker), marker);
}

TEST(WalRecord, HardStateOfZerosRoundTrips) {
  const WalRecord record = hard_state_record(1, HardState{});
  expect_same(round_trip(record), record);
}

TEST(WalRecord, ConsecutiveFramesReadOneAfterAnother) {
  std::string log;
  const std::vector<WalRecord> records = sample_records();
  for (const WalRecord& record : records) encode_wal_record(log, record);
  std::string_view rest = log;
  for (const WalRecord& record : records) {
    const Frame frame = read_frame(rest, kCap);
    ASSERT_EQ(frame.status, FrameStatus::kOk);
    auto decoded = decode_wal_record(static_cast<RecordType>(frame.type), frame.payload, kCap);
    ASSERT_TRUE(decoded.ok());
    expect_same(*decoded, record);
    rest.remove_prefix(frame.frame_bytes);
  }
  EXPECT_TRUE(rest.empty());
}

// ---------------------------------------------------------------------------
// read_frame: damage is refused.

TEST(WalRecordFrame, TruncatedHeaderIsTruncated) {
  const std::string framed = encode(hard_state_record(1, HardState{Term{1}, NodeId{1}, LogIndex{1}}));
  for (size_t size = 0; size < kRecordHeaderBytes; ++size) {
    EXPECT_EQ(read_frame(std::string_view(framed).substr(0, size), kCap).status,
              FrameStatus::kTruncated)
        << size;
  }
}

TEST(WalRecordFrame, TruncatedPayloadIsTruncated) {
  const std::string framed = encode(sample_records()[2]);
  for (size_t size = kRecordHeaderBytes; size < framed.size(); ++size) {
    const Frame frame = read_frame(std::string_view(framed).substr(0, size), kCap);
    EXPECT_EQ(frame.status, FrameStatus::kTruncated) << size;
  }
  EXPECT_EQ(read_frame(framed, kCap).status, FrameStatus::kOk);
}

std::string header_with_length(uint32_t length, uint8_t type) {
  std::string header;
  base::Encoder encoder(header);
  encoder.fixed32(length);
  encoder.fixed64(0x1234);
  encoder.byte(type);
  return header;
}

TEST(WalRecordFrame, LengthOverTheCapIsRefusedBeforeReading) {
  // Only a header: were the length believed, this would read (or allocate)
  // 4 GiB; the cap is checked first.
  const Frame huge = read_frame(header_with_length(0xffffffffu, 2), kCap);
  EXPECT_EQ(huge.status, FrameStatus::kLengthOverCap);
  EXPECT_EQ(huge.length, 0xffffffffu);
  EXPECT_NE(describe_frame_problem(huge, kCap).find("over the cap"), std::string::npos);

  EXPECT_EQ(read_frame(header_with_length(101, 2), 100).status, FrameStatus::kLengthOverCap);
  EXPECT_EQ(read_frame(header_with_length(100, 2), 100).status, FrameStatus::kTruncated);

  // A caller's cap above the WAL's hard cap is clamped to it.
  EXPECT_EQ(read_frame(header_with_length(kRecordPayloadBytesCap + 1, 2),
                       std::numeric_limits<uint32_t>::max())
                .status,
            FrameStatus::kLengthOverCap);
  // The real record, with a cap just below its payload.
  const std::string framed = encode(sample_records()[2]);
  const auto payload_bytes = static_cast<uint32_t>(framed.size() - kRecordHeaderBytes);
  EXPECT_EQ(read_frame(framed, payload_bytes - 1).status, FrameStatus::kLengthOverCap);
  EXPECT_EQ(read_frame(framed, payload_bytes).status, FrameStatus::kOk);
}

TEST(WalRecordFrame, AnySingleFlippedBitIsNeverOk) {
  for (const WalRecord& record :
       {hard_state_record(1, HardState{Term{2}, NodeId{3}, LogIndex{4}}),
        entries_record(1, {entry(1, 1, "ab"), entry(1, 2, "", EntryType::kConfChange)}),
        snapshot_record(2, SnapshotMeta{LogIndex{5}, Term{1}, full_conf_state()},
                        SnapshotMode::kCompact),
        segment_header_record(3)}) {
    const std::string framed = encode(record);
    for (size_t offset = 0; offset < framed.size(); ++offset) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string damaged = framed;
        damaged[offset] = static_cast<char>(damaged[offset] ^ (1 << bit));
        const Frame frame = read_frame(damaged, kCap);
        ASSERT_NE(frame.status, FrameStatus::kOk)
            << "type " << static_cast<int>(record.type) << " offset " << offset << " bit " << bit;
      }
    }
  }
}

TEST(WalRecordFrame, UnknownTypeWithAValidChecksumIsUnknownType) {
  for (const uint8_t type : {uint8_t{0}, uint8_t{5}, uint8_t{200}, uint8_t{255}}) {
    std::string framed;
    base::append_frame(framed, type, "payload");
    EXPECT_EQ(base::read_frame(framed, kCap).status, FrameStatus::kOk);
    const Frame frame = read_frame(framed, kCap);
    EXPECT_EQ(frame.status, FrameStatus::kUnknownType) << static_cast<int>(type);
    EXPECT_NE(describe_frame_problem(frame, kCap).find("unknown type"), std::string::npos);
  }
  for (uint8_t type = 1; type <= 4; ++type) EXPECT_TRUE(is_known_record_type(type));
  EXPECT_FALSE(is_known_record_type(0));
  EXPECT_FALSE(is_known_record_type(5));
}

TEST(WalRecordFrame, ChecksumMismatchIsDescribed) {
  std::string framed = encode(sample_records()[1]);
  framed.back() = static_cast<char>(framed.back() ^ 1);
  const Frame frame = read_frame(framed, kCap);
  ASSERT_EQ(frame.status, FrameStatus::kBadChecksum);
  EXPECT_NE(describe_frame_problem(frame, kCap).find("checksum mismatch"), std::string::npos);
}

// ---------------------------------------------------------------------------
// decode_wal_record: a payload whose checksum matches is still checked.

void expect_corrupt(RecordType type, std::string_view payload, const std::string& why) {
  auto decoded = decode_wal_record(type, payload, kCap);
  ASSERT_FALSE(decoded.ok()) << why;
  EXPECT_EQ(decoded.code(), Errc::kCorruption) << why;
}

TEST(WalRecordDecode, TrailingBytesAreRefused) {
  for (const WalRecord& record : sample_records()) {
    const std::string payload = payload_of(record) + std::string(1, '\0');
    expect_corrupt(record.type, payload, "trailing byte");
  }
}

TEST(WalRecordDecode, EveryProperPrefixOfAPayloadIsRefused) {
  for (const WalRecord& record : sample_records()) {
    const std::string payload = payload_of(record);
    for (size_t size = 0; size < payload.size(); ++size) {
      expect_corrupt(record.type, std::string_view(payload).substr(0, size),
                     "prefix of " + std::to_string(size) + " bytes of type " +
                         std::to_string(static_cast<int>(record.type)));
    }
  }
}

TEST(WalRecordDecode, GroupZeroIsRefused) {
  expect_corrupt(RecordType::kEntries, payload_of(entries_record(0, {entry(1, 1, "a")})),
                 "entries of group 0");
  expect_corrupt(RecordType::kHardState, payload_of(hard_state_record(0, HardState{})),
                 "hard state of group 0");
  expect_corrupt(RecordType::kSnapshot,
                 payload_of(snapshot_record(0, SnapshotMeta{LogIndex{1}, Term{1}, {}},
                                            SnapshotMode::kCompact)),
                 "snapshot of group 0");
}

std::string entries_payload(uint64_t group, uint64_t count, uint64_t first,
                            const std::vector<std::string>& datas, uint8_t entry_type = 0) {
  std::string payload;
  base::Encoder encoder(payload);
  encoder.varint(group);
  encoder.varint(count);
  encoder.varint(first);
  for (const std::string& data : datas) {
    encoder.varint(1);
    encoder.byte(entry_type);
    encoder.bytes(data);
  }
  return payload;
}

TEST(WalRecordDecode, ImpossibleEntryCountsAreRefused) {
  // The handmade payload is well formed when it tells the truth.
  ASSERT_TRUE(decode_wal_record(RecordType::kEntries, entries_payload(1, 2, 1, {"a", "b"}), kCap)
                  .ok());
  // More entries than the payload could hold: refused before reserving them.
  expect_corrupt(RecordType::kEntries, entries_payload(1, 1'000'000'000, 1, {"a"}), "huge count");
  expect_corrupt(RecordType::kEntries, entries_payload(1, kMax64, 1, {"a"}), "max count");
  // Plausible for the size, but the entries are not there.
  expect_corrupt(RecordType::kEntries, entries_payload(1, 3, 1, {"aaaaaaaaaaaa"}), "count 3 of 1");
  // Fewer than it says, leaving bytes over.
  expect_corrupt(RecordType::kEntries, entries_payload(1, 1, 1, {"a", "b"}), "count 1 of 2");
  expect_corrupt(RecordType::kEntries, entries_payload(1, 0, 1, {}), "count 0");
  expect_corrupt(RecordType::kEntries, entries_payload(1, 1, 0, {"a"}), "first index 0");
}

TEST(WalRecordDecode, UnknownEntryTypeIsRefused) {
  ASSERT_TRUE(decode_wal_record(RecordType::kEntries, entries_payload(1, 1, 1, {"a"}, 1), kCap).ok());
  expect_corrupt(RecordType::kEntries, entries_payload(1, 1, 1, {"a"}, 2), "entry type 2");
  expect_corrupt(RecordType::kEntries, entries_payload(1, 1, 1, {"a"}, 255), "entry type 255");
}

TEST(WalRecordDecode, EntryDataOverTheCallersCapIsRefused) {
  const std::string payload = entries_payload(1, 1, 1, {std::string(100, 'x')});
  EXPECT_TRUE(decode_wal_record(RecordType::kEntries, payload, 100).ok());
  EXPECT_EQ(decode_wal_record(RecordType::kEntries, payload, 99).code(), Errc::kCorruption);
}

TEST(WalRecordDecode, UnknownSnapshotModeIsRefused) {
  std::string payload = payload_of(
      snapshot_record(1, SnapshotMeta{LogIndex{1}, Term{1}, {}}, SnapshotMode::kInstall));
  // group (1 byte), then the mode byte.
  ASSERT_EQ(payload[1], 1);
  payload[1] = 2;
  expect_corrupt(RecordType::kSnapshot, payload, "mode 2");
}

TEST(WalRecordDecode, MalformedConfStateIsRefused) {
  std::string payload;
  base::Encoder encoder(payload);
  encoder.varint(1);     // group
  encoder.byte(0);       // mode
  encoder.varint(5);     // index
  encoder.varint(1);     // term
  encoder.varint(1);     // one voter...
  encoder.varint(0);     // ...node 0, which is nobody
  encoder.varint(0);
  encoder.varint(0);
  encoder.varint(0);
  encoder.byte(0);
  expect_corrupt(RecordType::kSnapshot, payload, "voter 0");

  std::string bad_auto_leave = payload_of(
      snapshot_record(1, SnapshotMeta{LogIndex{1}, Term{1}, {}}, SnapshotMode::kCompact));
  bad_auto_leave.back() = 2;
  expect_corrupt(RecordType::kSnapshot, bad_auto_leave, "auto_leave 2");
}

TEST(WalRecordDecode, SegmentHeaderNeedsMagicAndVersion) {
  std::string payload = payload_of(segment_header_record(4));
  ASSERT_EQ(payload.substr(0, 8), "SYNODWAL");
  std::string bad_magic = payload;
  bad_magic[0] = 'X';
  expect_corrupt(RecordType::kSegmentHeader, bad_magic, "magic");

  std::string other_version;
  base::Encoder encoder(other_version);
  encoder.raw("SYNODWAL");
  encoder.varint(kWalFormatVersion + 1);
  encoder.varint(4);
  auto decoded = decode_wal_record(RecordType::kSegmentHeader, other_version, kCap);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.code(), Errc::kCorruption);
  EXPECT_NE(decoded.error().message().find("version"), std::string::npos);
}

// NIT: indexes are `first + i` in 64 bits, so a (checksum-valid) entries
// record starting at 2^64-1 with two entries decodes its second entry at
// index 0. The decoder promises never to trust its input; it should refuse a
// count that runs past the largest index, as it refuses first index 0.
TEST(WalRecordDecode, IndexesThatWrapAroundAreRefused) {
  expect_corrupt(RecordType::kEntries, entries_payload(1, 2, kMax64, {"a", "b"}),
                 "indexes past 2^64-1");
}

}  // namespace
}  // namespace synod::storage
