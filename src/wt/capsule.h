// Capsule Protocol (RFC 9297 §3.2) codec for WebTransport: value structs, serialize, and an
// incremental, bounded parser. Sans-I/O; shared by the HTTP/3 CONNECT stream (wt/h3_session.*) and
// later the HTTP/2 transport.
//
// Wire: Capsule { Type (i), Length (i), Value (..) }.
// Bounds (GHSA-g6x7-jq8p-6q9q): every known type has a maximum length that is checked from the
// header before a single value byte is buffered. Unknown and GREASE types are skipped by counting
// bytes, never buffered, whatever their length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace wtmesh::wt {

// Capsule type codepoints.
inline constexpr uint64_t kCapsuleDatagram = 0x00;  // RFC 9297
inline constexpr uint64_t kCapsuleCloseSession = 0x2843;  // CLOSE_WEBTRANSPORT_SESSION / WT_CLOSE_SESSION
inline constexpr uint64_t kCapsuleDrainSession = 0x78ae;  // DRAIN_WEBTRANSPORT_SESSION / WT_DRAIN_SESSION
// HTTP/2-only (draft-ietf-webtrans-http2-15 §6, IANA §11.4); prohibited over HTTP/3. The typed
// values and the HTTP/2 session's use of them are wt/h2_capsules.h.
inline constexpr uint64_t kCapsulePadding = 0x190b4d38;
inline constexpr uint64_t kCapsuleResetStream = 0x190b4d39;
inline constexpr uint64_t kCapsuleStopSending = 0x190b4d3a;
// WT_STREAM (-15 §6.4): the type's least significant bit is FIN, so 0x190b4d3b ends the stream and
// 0x190b4d3c does not. Drafts -00..-14 (and quiche) said the opposite in their example ("0x..3b
// capsules followed by a terminal 0x..3c"); -15 fixed that text (draft commit 9b2c9f5, issue #178).
inline constexpr uint64_t kCapsuleStreamFin = 0x190b4d3b;
inline constexpr uint64_t kCapsuleStreamNoFin = 0x190b4d3c;
inline constexpr uint64_t kCapsuleMaxStreamData = 0x190b4d3e;
inline constexpr uint64_t kCapsuleStreamDataBlocked = 0x190b4d42;
// Session flow control (draft-ietf-webtrans-http3 §5), valid over both transports.
inline constexpr uint64_t kCapsuleMaxData = 0x190b4d3d;
inline constexpr uint64_t kCapsuleMaxStreamsBidi = 0x190b4d3f;
inline constexpr uint64_t kCapsuleMaxStreamsUni = 0x190b4d40;
inline constexpr uint64_t kCapsuleDataBlocked = 0x190b4d41;
inline constexpr uint64_t kCapsuleStreamsBlockedBidi = 0x190b4d43;
inline constexpr uint64_t kCapsuleStreamsBlockedUni = 0x190b4d44;

// Close messages are at most this many bytes of UTF-8 (draft-ietf-webtrans-http3 §6).
inline constexpr size_t kMaxCloseMessage = 1024;

// Reserved capsule types 0x29 * N + 0x17 (RFC 9297 §5.4).
constexpr bool is_grease_capsule_type(uint64_t type) { return type >= 0x17 && (type - 0x17) % 0x29 == 0; }

struct DatagramCapsule {
  std::vector<uint8_t> payload;
  bool operator==(const DatagramCapsule&) const = default;
};
struct CloseSessionCapsule {
  uint32_t code = 0;
  std::string message;  // valid UTF-8, <= kMaxCloseMessage bytes
  bool operator==(const CloseSessionCapsule&) const = default;
};
struct DrainSessionCapsule {
  bool operator==(const DrainSessionCapsule&) const = default;
};
struct MaxDataCapsule {
  uint64_t max_data = 0;
  bool operator==(const MaxDataCapsule&) const = default;
};
struct MaxStreamsCapsule {
  bool bidi = true;
  uint64_t max_streams = 0;
  bool operator==(const MaxStreamsCapsule&) const = default;
};
struct DataBlockedCapsule {
  uint64_t limit = 0;
  bool operator==(const DataBlockedCapsule&) const = default;
};
struct StreamsBlockedCapsule {
  bool bidi = true;
  uint64_t limit = 0;
  bool operator==(const StreamsBlockedCapsule&) const = default;
};
// The HTTP/2-only types other than PADDING (which is skipped like an unknown type). Their value
// is handed over unparsed for the HTTP/2 transport to interpret; over HTTP/3 receiving one is a
// session error.
struct Http2OnlyCapsule {
  uint64_t type = 0;
  std::vector<uint8_t> value;
  bool operator==(const Http2OnlyCapsule&) const = default;
};

using Capsule = std::variant<DatagramCapsule, CloseSessionCapsule, DrainSessionCapsule, MaxDataCapsule,
                             MaxStreamsCapsule, DataBlockedCapsule, StreamsBlockedCapsule, Http2OnlyCapsule>;

// Appends the wire form of `capsule` to `out`. A close message is made valid UTF-8 and truncated
// to kMaxCloseMessage bytes on a character boundary; varint fields above 2^62-1 are clamped.
void serialize_capsule(const Capsule& capsule, std::vector<uint8_t>& out);
std::vector<uint8_t> serialize_capsule(const Capsule& capsule);

// Maximum value lengths the parser accepts for the types it buffers.
struct CapsuleLimits {
  size_t max_datagram = 65535;         // DATAGRAM capsule payload
  size_t max_http2_only = 16384 + 32;  // HTTP/2-only capsule value (one WT_STREAM chunk + header)
};

enum class CapsuleError {
  kNone,
  kTooLarge,        // a known type's length exceeds its maximum (checked before buffering)
  kMalformed,       // value does not match the type's layout
  kMessageTooLong,  // close message longer than 1024 bytes
  kInvalidUtf8,     // close message is not valid UTF-8
  kTruncated,       // the stream ended inside a capsule
  kBadErrorCode,    // an application error code above 2^32 - 1 (HTTP/2 WT_RESET_STREAM / WT_STOP_SENDING)
};
const char* to_string(CapsuleError error);

// Incremental parser: feed() takes arbitrary fragments. After an error it stays failed and
// ignores further input. Memory held: at most one capsule value, bounded by the per-type limits.
class CapsuleParser {
 public:
  explicit CapsuleParser(CapsuleLimits limits = {});

  // Parses `data`, appending each completed capsule to `out`. Returns kNone or the error.
  CapsuleError feed(std::span<const uint8_t> data, std::vector<Capsule>& out);
  // The byte stream ended: an error (kTruncated) if it stopped inside a capsule.
  CapsuleError finish();

  CapsuleError error() const { return error_; }
  // True between capsules (nothing partially read).
  bool at_boundary() const { return state_ == State::kType && header_len_ == 0; }
  // Number of value bytes skipped (unknown, GREASE, PADDING) so far.
  uint64_t skipped_bytes() const { return skipped_bytes_; }
  // Bytes currently buffered for the capsule being read (for cap tests).
  size_t buffered_bytes() const { return value_.size() + header_len_; }

 private:
  enum class State { kType, kLength, kValue, kSkip };

  // Max value length for `type`; SIZE_MAX means "skip, do not buffer".
  size_t max_length(uint64_t type) const;
  CapsuleError on_header_done();
  CapsuleError decode_value(std::vector<Capsule>& out);
  CapsuleError fail(CapsuleError e) { return error_ = e; }

  CapsuleLimits limits_;
  State state_ = State::kType;
  uint8_t header_[8] = {};
  size_t header_len_ = 0;
  uint64_t type_ = 0;
  uint64_t remaining_ = 0;  // value bytes still to buffer or skip
  std::vector<uint8_t> value_;
  uint64_t skipped_bytes_ = 0;
  CapsuleError error_ = CapsuleError::kNone;
};

}  // namespace wtmesh::wt
