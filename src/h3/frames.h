// HTTP/3 frame and stream-type codepoints (RFC 9114 §7, §6.2; WebTransport draft), a bounded
// incremental frame reader, and frame serializers. Sans-I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/varint.h"
#include "h3/error_codes.h"

namespace wtmesh::h3 {

// Frame types.
constexpr uint64_t kFrameData = 0x00;
constexpr uint64_t kFrameHeaders = 0x01;
constexpr uint64_t kFrameCancelPush = 0x03;
constexpr uint64_t kFrameSettings = 0x04;
constexpr uint64_t kFramePushPromise = 0x05;
constexpr uint64_t kFrameGoaway = 0x07;
constexpr uint64_t kFrameMaxPushId = 0x0d;
// First "frame type" of a WebTransport bidi stream (not a real frame: raw bytes follow).
constexpr uint64_t kWtBidiSignal = 0x41;

// Unidirectional stream types.
constexpr uint64_t kStreamControl = 0x00;
constexpr uint64_t kStreamPush = 0x01;
constexpr uint64_t kStreamQpackEncoder = 0x02;
constexpr uint64_t kStreamQpackDecoder = 0x03;
constexpr uint64_t kStreamWebTransport = 0x54;

// Reserved (GREASE) codepoints 0x1f * N + 0x21, for frame types, stream types and settings.
constexpr bool is_reserved_codepoint(uint64_t v) { return v >= 0x21 && (v - 0x21) % 0x1f == 0; }
// HTTP/2 frame types with no HTTP/3 meaning: receiving one is H3_FRAME_UNEXPECTED (RFC 9114 §7.2.8).
constexpr bool is_http2_only_frame_type(uint64_t t) {
  return t == 0x02 || t == 0x06 || t == 0x08 || t == 0x09;
}

// What a FrameReader does with a frame of a given type.
struct FrameDisposition {
  enum class Action {
    kWhole,   // buffer the payload (up to the reader's max) and deliver it at once
    kStream,  // deliver the payload in pieces as it arrives (DATA); never buffered
    kSkip,    // discard silently (unknown and reserved types)
    kReject,  // error `error` (e.g. H3_FRAME_UNEXPECTED)
  };
  Action action;
  uint64_t error = 0;
};
using FrameClassifier = FrameDisposition (*)(uint64_t type);

struct FrameEvent {
  enum class Kind {
    kNeedMore,  // all input consumed; feed more
    kFrame,     // a whole frame; `payload` is valid until the next call
    kChunk,     // piece of a streamed frame; `payload` points into the caller's input
    kError,     // `error` is an H3 error code; the reader stays in error
  };
  Kind kind = Kind::kNeedMore;
  uint64_t type = 0;
  std::span<const uint8_t> payload;
  bool frame_begin = false;  // kChunk: first piece of this frame (sent even for an empty frame)
  bool frame_end = false;    // kChunk: last piece of this frame
  uint64_t length = 0;       // declared payload length of the current frame
  uint64_t error = 0;
};

// Incremental, bounded frame reader for one stream. Frame headers are at most 16 bytes; whole
// frames are capped at `max_whole_payload` (larger: kError H3_EXCESSIVE_LOAD, before buffering).
class FrameReader {
 public:
  FrameReader(FrameClassifier classify, size_t max_whole_payload)
      : classify_(classify), max_whole_(max_whole_payload) {}

  // Reads from `in` and returns the next event. `consumed` is set to the bytes of `in` used; call
  // again with the rest until kNeedMore (which always means everything was consumed).
  FrameEvent next(std::span<const uint8_t> in, size_t& consumed);

  // Changes how frames from the next frame header on are handled (the control stream switches after
  // its first frame, SETTINGS).
  void set_classifier(FrameClassifier classify) { classify_ = classify; }

  // True between frames (a FIN here is clean; anywhere else the frame is truncated).
  bool at_frame_boundary() const { return state_ == State::kType && hdr_len_ == 0; }
  bool failed() const { return state_ == State::kError; }

 private:
  enum class State { kType, kLength, kWhole, kStream, kSkip, kError };
  // Collects one varint into hdr_; true when complete (value in *out).
  bool read_varint_piece(std::span<const uint8_t> in, size_t& consumed, uint64_t* out);
  FrameEvent fail(uint64_t error);

  FrameClassifier classify_;
  size_t max_whole_;
  State state_ = State::kType;
  uint8_t hdr_[8] = {};
  size_t hdr_len_ = 0;
  uint64_t type_ = 0;
  uint64_t length_ = 0;
  uint64_t remaining_ = 0;
  bool begin_ = false;
  uint64_t error_ = 0;
  std::vector<uint8_t> buf_;
};

// Classifiers for the two kinds of frame-carrying streams.
// Control stream before SETTINGS: anything but SETTINGS is H3_MISSING_SETTINGS.
FrameDisposition classify_first_control_frame(uint64_t type);
// Control stream: SETTINGS/GOAWAY/MAX_PUSH_ID/CANCEL_PUSH whole; DATA, HEADERS, PUSH_PROMISE and
// HTTP/2-only types rejected (H3_FRAME_UNEXPECTED); others skipped.
FrameDisposition classify_control_frame(uint64_t type);
// Request stream: HEADERS whole, DATA streamed; control-only, PUSH_PROMISE (we never allow push)
// and HTTP/2-only types rejected; others skipped.
FrameDisposition classify_request_frame(uint64_t type);

// Serializers (append to `out`).
void append_frame_header(std::vector<uint8_t>& out, uint64_t type, uint64_t length);
void append_frame(std::vector<uint8_t>& out, uint64_t type, std::span<const uint8_t> payload);
// GOAWAY, MAX_PUSH_ID, CANCEL_PUSH: a frame whose payload is one varint.
void append_varint_frame(std::vector<uint8_t>& out, uint64_t type, uint64_t value);
// Size of a frame header for a payload of `length` bytes.
constexpr size_t frame_header_size(uint64_t type, uint64_t length) {
  return varint_size(type) + varint_size(length);
}

// Parses the payload of GOAWAY/MAX_PUSH_ID/CANCEL_PUSH: exactly one varint, else nullopt
// (H3_FRAME_ERROR).
std::optional<uint64_t> parse_varint_payload(std::span<const uint8_t> payload);

}  // namespace wtmesh::h3
