// WebTransport over HTTP/2 (draft-ietf-webtrans-http2-15, July 2026): the HTTP/2 SETTINGS it defines,
// the typed values of its stream capsules, and a streaming, bounded parser for the whole capsule
// sequence of a CONNECT stream. Sans-I/O. The session on top is wt/h2_session.h; the capsules that
// HTTP/3 shares (DATAGRAM, WT_CLOSE_SESSION, WT_DRAIN_SESSION, WT_MAX_DATA, WT_MAX_STREAMS,
// WT_*_BLOCKED) keep their codec in wt/capsule.h and are reused here.
//
// Every codepoint below was checked against the -15 text (the ietf-wg-webtrans/draft-ietf-webtrans-http2
// repository at tag draft-ietf-webtrans-http2-15, commit 9d820ff); the section of the draft is given
// with each. WT_STREAM's FIN codepoint changed meaning in -15: see WtStreamFin.
//
// Bounds: WT_STREAM data is never buffered: it is handed on as it arrives (a capsule's length is still
// capped, H2CapsuleLimits::max_stream_capsule). Every other known type is buffered whole, with a
// per-type cap checked from its header before a value byte is kept. PADDING, GREASE and unknown types
// are skipped by counting. Memory held: at most one non-stream capsule (<= max(max_datagram, 1028)
// bytes plus its 16-byte header).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include "wt/capsule.h"
#include "wt/session.h"

namespace wtmesh::wt {

// --- HTTP/2 SETTINGS (-15 §3.1 and §4.3.1; registered in §11.2) ---
inline constexpr uint16_t kSettingsWtEnabled = 0x2b60;
inline constexpr uint16_t kSettingsWtInitialMaxData = 0x2b61;
inline constexpr uint16_t kSettingsWtInitialMaxStreamDataUni = 0x2b62;
inline constexpr uint16_t kSettingsWtInitialMaxStreamDataBidiLocal = 0x2b63;
inline constexpr uint16_t kSettingsWtInitialMaxStreamsUni = 0x2b64;
inline constexpr uint16_t kSettingsWtInitialMaxStreamsBidi = 0x2b65;
inline constexpr uint16_t kSettingsWtInitialMaxStreamDataBidiRemote = 0x2b66;
// RFC 8441 §3.
inline constexpr uint16_t kSettingsEnableConnectProtocol = 0x08;

// One endpoint's WebTransport SETTINGS. Every value defaults to 0 (-15 §11.2), which for the limits
// means "nothing may be sent until a capsule raises it". The stream-data limits are what the sender of
// the setting accepts on: UNI, the peer's unidirectional streams; BIDI_LOCAL, bidirectional streams the
// sender opened; BIDI_REMOTE, bidirectional streams the receiver of the setting opened.
struct H2WtSettings {
  uint32_t wt_enabled = 0;  // server only; a client MUST treat a value > 1 as PROTOCOL_ERROR (§3.1)
  uint32_t initial_max_data = 0;
  uint32_t initial_max_stream_data_uni = 0;
  uint32_t initial_max_stream_data_bidi_local = 0;
  uint32_t initial_max_stream_data_bidi_remote = 0;
  uint32_t initial_max_streams_uni = 0;
  uint32_t initial_max_streams_bidi = 0;

  // Records one received setting. False for ids that are not WebTransport's (nothing changes).
  bool apply(uint16_t id, uint32_t value);
  // The (id, value) pairs to put in a SETTINGS frame: WT_ENABLED when set, and every non-zero limit.
  std::vector<std::pair<uint16_t, uint32_t>> entries() const;
  bool operator==(const H2WtSettings&) const = default;
};

// --- WT_STREAM's FIN bit (-15 §6.4) ---
// -15: "The least significant bit in the capsule type is the FIN bit", so 0x190B4D3B carries FIN and
// 0x190B4D3C does not. -00..-14 gave the opposite example and quiche names 0x190B4D3C
// WT_STREAM_WITH_FIN. kDraft14 speaks that older convention, for peers that follow it.
enum class WtStreamFin { kDraft15, kDraft14 };
constexpr uint64_t wt_stream_type(bool fin, WtStreamFin convention) {
  const bool fin_is_3b = convention == WtStreamFin::kDraft15;
  return fin == fin_is_3b ? kCapsuleStreamFin : kCapsuleStreamNoFin;
}
constexpr bool is_wt_stream_type(uint64_t type) {
  return type == kCapsuleStreamFin || type == kCapsuleStreamNoFin;
}
constexpr bool wt_stream_has_fin(uint64_t type, WtStreamFin convention) {
  return (type == kCapsuleStreamFin) == (convention == WtStreamFin::kDraft15);
}

// --- The stream capsules other than WT_STREAM, typed ---
// WT_RESET_STREAM (-15 §6.2): Stream ID (i), Application Protocol Error Code (i, <= 2^32-1),
// Reliable Size (i, which MUST equal the bytes sent on the stream).
struct WtResetStreamCapsule {
  StreamId id = 0;
  uint32_t code = 0;
  uint64_t reliable_size = 0;
  bool operator==(const WtResetStreamCapsule&) const = default;
};
// WT_STOP_SENDING (-15 §6.3): Stream ID (i), Application Protocol Error Code (i, <= 2^32-1).
struct WtStopSendingCapsule {
  StreamId id = 0;
  uint32_t code = 0;
  bool operator==(const WtStopSendingCapsule&) const = default;
};
// WT_MAX_STREAM_DATA (-15 §6.6): Stream ID (i), Maximum Stream Data (i).
struct WtMaxStreamDataCapsule {
  StreamId id = 0;
  uint64_t max_stream_data = 0;
  bool operator==(const WtMaxStreamDataCapsule&) const = default;
};
// WT_STREAM_DATA_BLOCKED (-15 §6.9): Stream ID (i), Maximum Stream Data (i).
struct WtStreamDataBlockedCapsule {
  StreamId id = 0;
  uint64_t limit = 0;
  bool operator==(const WtStreamDataBlockedCapsule&) const = default;
};
using H2StreamCapsule = std::variant<WtResetStreamCapsule, WtStopSendingCapsule, WtMaxStreamDataCapsule,
                                     WtStreamDataBlockedCapsule>;

void serialize_h2_capsule(const H2StreamCapsule& capsule, std::vector<uint8_t>& out);
// Decodes the value of an HTTP/2 stream capsule of `type` (not WT_STREAM): kMalformed unless the value
// is exactly its fields, kBadErrorCode for a code above 2^32-1 (a WT_ERROR session error, §6.2/§6.3).
CapsuleError decode_h2_capsule(uint64_t type, std::span<const uint8_t> value, H2StreamCapsule& out);

// WT_STREAM (-15 §6.4): Type (i), Length (i), Stream ID (i), Stream Data (..).
void append_wt_stream(std::vector<uint8_t>& out, StreamId id, std::span<const uint8_t> data, bool fin,
                      WtStreamFin convention);
// Bytes append_wt_stream adds besides the data.
size_t wt_stream_overhead(StreamId id, size_t data_size);

// What the parser found, in wire order. Each call returns false to stop the parser (the session
// ended): feed() returns kNone at once and the parser takes no more input.
class H2CapsuleVisitor {
 public:
  virtual ~H2CapsuleVisitor() = default;
  // DATAGRAM, WT_CLOSE_SESSION, WT_DRAIN_SESSION, WT_MAX_DATA, WT_MAX_STREAMS, WT_DATA_BLOCKED,
  // WT_STREAMS_BLOCKED (never Http2OnlyCapsule).
  virtual bool on_capsule(Capsule& capsule) = 0;
  virtual bool on_stream_capsule(const H2StreamCapsule& capsule) = 0;
  // A piece of one WT_STREAM capsule's data, in order. A capsule with no data gives one call with
  // empty `data`; otherwise `fin` is set only on the piece that ends a FIN capsule.
  virtual bool on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
};

struct H2CapsuleLimits {
  size_t max_datagram = 65535;                      // DATAGRAM payload (buffered)
  uint64_t max_stream_capsule = uint64_t{1} << 20;  // WT_STREAM length (streamed, not buffered)
  WtStreamFin fin_convention = WtStreamFin::kDraft15;
};

class H2CapsuleParser {
 public:
  explicit H2CapsuleParser(H2CapsuleLimits limits = {});

  // Parses `data`, telling `visitor` about each capsule (stream data as it arrives). Returns kNone or
  // the error; after an error the parser stays failed and ignores input.
  CapsuleError feed(std::span<const uint8_t> data, H2CapsuleVisitor& visitor);
  // The CONNECT stream ended: kTruncated if it stopped inside a capsule.
  CapsuleError finish();

  CapsuleError error() const { return error_; }
  bool at_boundary() const { return state_ == State::kHeader && header_len_ == 0; }
  // Bytes held for the capsule being read (the cap tests check this).
  size_t buffered_bytes() const { return header_len_ + buffer_.size() + id_len_; }
  uint64_t skipped_bytes() const { return skipped_bytes_; }

 private:
  enum class State { kHeader, kStreamId, kStreamData, kBuffer, kSkip, kStopped };

  CapsuleError on_header(uint64_t type, uint64_t length);
  // The whole buffered capsule (header + value) is in buffer_.
  CapsuleError on_buffered(H2CapsuleVisitor& visitor);
  CapsuleError fail(CapsuleError e) { return error_ = e; }

  H2CapsuleLimits limits_;
  State state_ = State::kHeader;
  uint8_t header_[16] = {};
  size_t header_len_ = 0;
  uint64_t type_ = 0;
  uint64_t remaining_ = 0;
  uint8_t id_[8] = {};
  size_t id_len_ = 0;
  StreamId stream_id_ = 0;
  std::vector<uint8_t> buffer_;
  CapsuleParser inner_;  // decodes the buffered capsules HTTP/3 shares
  uint64_t skipped_bytes_ = 0;
  CapsuleError error_ = CapsuleError::kNone;
};

}  // namespace wtmesh::wt
