#include "storage/record.h"

#include <algorithm>
#include <limits>

#include "base/codec.h"

namespace synod::storage {

using base::Decoder;
using base::Encoder;
using base::Errc;
using base::Error;
using raft::ConfState;
using raft::Entry;
using raft::EntryType;
using raft::GroupId;
using raft::LogIndex;
using raft::NodeId;
using raft::Term;

namespace {

constexpr std::string_view kSegmentMagic = "SYNODWAL";

Error corrupt(RecordType type, const std::string& why) {
  return Error(Errc::kCorruption, "WAL record of type " +
                                      std::to_string(static_cast<int>(type)) + ": " + why);
}

}  // namespace

bool is_known_record_type(uint8_t type) {
  return type >= static_cast<uint8_t>(RecordType::kSegmentHeader) &&
         type <= static_cast<uint8_t>(RecordType::kSnapshot);
}

namespace {

uint64_t varint_bytes(uint64_t value) {
  uint64_t bytes = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++bytes;
  }
  return bytes;
}

}  // namespace

uint64_t encoded_entry_bytes(const Entry& entry) {
  return varint_bytes(entry.term.value()) + 1 + varint_bytes(entry.data.size()) + entry.data.size();
}

uint64_t encoded_payload_bytes(const WalRecord& record) {
  if (record.type == RecordType::kEntries && !record.entries.empty()) {
    uint64_t bytes = varint_bytes(record.group.value()) + varint_bytes(record.entries.size()) +
                     varint_bytes(record.entries.front().index.value());
    for (const Entry& entry : record.entries) bytes += encoded_entry_bytes(entry);
    return bytes;
  }
  std::string out;
  encode_wal_record(out, record);
  return out.size() - kRecordHeaderBytes;
}

void append_record(std::string& out, RecordType type, std::string_view payload) {
  SYNOD_ASSERT(payload.size() <= kRecordPayloadBytesCap, "WAL record over the hard cap");
  base::append_frame(out, static_cast<uint8_t>(type), payload);
}

void encode_wal_record(std::string& out, const WalRecord& record) {
  std::string payload;
  Encoder encoder(payload);
  switch (record.type) {
    case RecordType::kSegmentHeader:
      encoder.raw(kSegmentMagic);
      encoder.varint(kWalFormatVersion);
      encoder.varint(record.segment);
      break;
    case RecordType::kEntries: {
      SYNOD_ASSERT(!record.entries.empty(), "an entries record holds at least one entry");
      encoder.varint(record.group.value());
      encoder.varint(record.entries.size());
      const LogIndex first = record.entries.front().index;
      encoder.varint(first.value());
      for (size_t i = 0; i < record.entries.size(); ++i) {
        const Entry& entry = record.entries[i];
        SYNOD_ASSERT(entry.index.value() == first.value() + i, "entries must be consecutive");
        encoder.varint(entry.term.value());
        encoder.byte(static_cast<uint8_t>(entry.type));
        encoder.bytes(entry.data.view());
      }
      break;
    }
    case RecordType::kHardState:
      encoder.varint(record.group.value());
      encoder.varint(record.hard_state.term.value());
      encoder.varint(record.hard_state.vote.value());
      encoder.varint(record.hard_state.commit.value());
      break;
    case RecordType::kSnapshot: {
      encoder.varint(record.group.value());
      encoder.byte(static_cast<uint8_t>(record.snapshot_mode));
      encoder.varint(record.snapshot.index.value());
      encoder.varint(record.snapshot.term.value());
      raft::encode_conf_state(encoder, record.snapshot.conf_state);
      break;
    }
  }
  append_record(out, record.type, payload);
}

Frame read_frame(std::string_view data, uint32_t payload_bytes_max) {
  Frame frame = base::read_frame(data, std::min(payload_bytes_max, kRecordPayloadBytesCap));
  if (frame.status == FrameStatus::kOk && !is_known_record_type(frame.type)) {
    frame.status = FrameStatus::kUnknownType;
  }
  return frame;
}

base::Result<WalRecord> decode_wal_record(RecordType type, std::string_view payload,
                                          uint32_t payload_bytes_max) {
  WalRecord record;
  record.type = type;
  Decoder decoder(payload);
  uint64_t group = 0;
  switch (type) {
    case RecordType::kSegmentHeader: {
      std::string_view magic;
      uint64_t version = 0;
      if (!decoder.raw(kSegmentMagic.size(), &magic) || magic != kSegmentMagic) {
        return corrupt(type, "segment header without the SYNODWAL magic");
      }
      if (!decoder.varint(&version)) return corrupt(type, "truncated format version");
      if (version != kWalFormatVersion) {
        return corrupt(type, "WAL format version " + std::to_string(version) +
                                 " is not one this build reads (" +
                                 std::to_string(kWalFormatVersion) + ")");
      }
      if (!decoder.varint(&record.segment)) return corrupt(type, "truncated segment number");
      break;
    }
    case RecordType::kEntries: {
      uint64_t count = 0;
      uint64_t first = 0;
      if (!decoder.varint(&group) || !decoder.varint(&count) || !decoder.varint(&first)) {
        return corrupt(type, "truncated entries header");
      }
      // Each entry takes at least three bytes, which bounds a lying count.
      if (count == 0 || count > payload.size() / 3 || first == 0 ||
          count - 1 > std::numeric_limits<uint64_t>::max() - first) {
        return corrupt(type, "entry count " + std::to_string(count) + " impossible for " +
                                 std::to_string(payload.size()) + " bytes");
      }
      record.entries.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        uint64_t term = 0;
        uint8_t entry_type = 0;
        std::string_view data;
        if (!decoder.varint(&term) || !decoder.byte(&entry_type) ||
            !decoder.bytes(&data, payload_bytes_max)) {
          return corrupt(type, "truncated entry " + std::to_string(i));
        }
        if (entry_type > static_cast<uint8_t>(EntryType::kConfChange)) {
          return corrupt(type, "unknown entry type " + std::to_string(entry_type));
        }
        record.entries.push_back(
            Entry{Term{term}, LogIndex{first + i}, static_cast<EntryType>(entry_type), base::Bytes(data)});
      }
      break;
    }
    case RecordType::kHardState: {
      uint64_t term = 0, vote = 0, commit = 0;
      if (!decoder.varint(&group) || !decoder.varint(&term) || !decoder.varint(&vote) ||
          !decoder.varint(&commit)) {
        return corrupt(type, "truncated hard state");
      }
      record.hard_state = raft::HardState{Term{term}, NodeId{vote}, LogIndex{commit}};
      break;
    }
    case RecordType::kSnapshot: {
      uint8_t mode = 0;
      uint64_t index = 0, term = 0;
      if (!decoder.varint(&group) || !decoder.byte(&mode) || !decoder.varint(&index) ||
          !decoder.varint(&term) || !raft::decode_conf_state(decoder, &record.snapshot.conf_state)) {
        return corrupt(type, "truncated or malformed snapshot marker");
      }
      if (mode > static_cast<uint8_t>(SnapshotMode::kInstall)) {
        return corrupt(type, "unknown snapshot mode " + std::to_string(mode));
      }
      record.snapshot_mode = static_cast<SnapshotMode>(mode);
      record.snapshot.index = LogIndex{index};
      record.snapshot.term = Term{term};
      break;
    }
  }
  if (!decoder.done()) return corrupt(type, "trailing bytes after the payload");
  if (type != RecordType::kSegmentHeader) {
    if (group == 0) return corrupt(type, "group 0");
    record.group = GroupId{group};
  }
  return record;
}

}  // namespace synod::storage
