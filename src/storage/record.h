// The write-ahead log's on-disk records.
//
// Framing: base/frame.h ([u32 length][u64 checksum][u8 type][payload]);
// docs/storage.md has the full layout. `length` is compared with a cap
// before anything is read or allocated.
//
// Payloads (varints unless said otherwise):
//   kSegmentHeader  "SYNODWAL" (8 raw bytes), format version, segment number
//   kEntries        group, count, first index, then per entry: term, type
//                   (1 byte), data (varint length + bytes); indexes are
//                   consecutive from `first index`
//   kHardState      group, term, vote, commit
//   kSnapshot       group, mode (1 byte), index, term, conf state
//                   (voters, learners, voters_outgoing, learners_next as
//                   counted lists of node ids, auto_leave as 1 byte)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/frame.h"
#include "base/result.h"
#include "raft/types.h"

namespace synod::storage {

inline constexpr size_t kRecordHeaderBytes = base::kFrameHeaderBytes;
// No record the WAL writes is larger; a length above it is damage.
inline constexpr uint32_t kRecordPayloadBytesCap = 256u << 20;
inline constexpr uint64_t kWalFormatVersion = 1;

enum class RecordType : uint8_t {
  kSegmentHeader = 1,
  kEntries = 2,
  kHardState = 3,
  kSnapshot = 4,
};
bool is_known_record_type(uint8_t type);

enum class SnapshotMode : uint8_t {
  // The state machine holds everything up to `index`: drop entries up to it,
  // keep those after.
  kCompact = 0,
  // A snapshot from the leader replaced this replica's state: drop the
  // whole log; it continues after `index`.
  kInstall = 1,
};

struct WalRecord {
  RecordType type = RecordType::kEntries;
  raft::GroupId group;
  std::vector<raft::Entry> entries;  // kEntries
  raft::HardState hard_state;        // kHardState
  raft::SnapshotMeta snapshot;       // kSnapshot
  SnapshotMode snapshot_mode = SnapshotMode::kCompact;
  uint64_t segment = 0;              // kSegmentHeader
};

// Exact payload bytes `encode_wal_record` would write for `record`.
uint64_t encoded_payload_bytes(const WalRecord& record);
// Exact payload bytes one entry adds to an entries record.
uint64_t encoded_entry_bytes(const raft::Entry& entry);

// Appends the framed record to `out`.
void append_record(std::string& out, RecordType type, std::string_view payload);
void encode_wal_record(std::string& out, const WalRecord& record);

using base::Frame;
using base::FrameStatus;
// base::read_frame, plus kUnknownType for a type the WAL does not write.
Frame read_frame(std::string_view data, uint32_t payload_bytes_max);
using base::describe_frame_problem;

// Decodes a frame's payload. kCorruption if it does not parse (a checksum
// that matches over a payload that does not parse means a bug or a format
// this build does not know; either way it is not data to trust).
base::Result<WalRecord> decode_wal_record(RecordType type, std::string_view payload,
                                          uint32_t payload_bytes_max);

}  // namespace synod::storage
