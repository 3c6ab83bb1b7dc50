// HTTP/3 frame reader and serializers.
#include "h3/frames.h"

#include <algorithm>

namespace wtmesh::h3 {

bool FrameReader::read_varint_piece(std::span<const uint8_t> in, size_t& consumed, uint64_t* out) {
  while (consumed < in.size()) {
    hdr_[hdr_len_++] = in[consumed++];
    const size_t need = size_t{1} << (hdr_[0] >> 6);
    if (hdr_len_ == need) {
      *out = read_varint(std::span<const uint8_t>(hdr_, hdr_len_))->value;
      hdr_len_ = 0;
      return true;
    }
  }
  return false;
}

FrameEvent FrameReader::fail(uint64_t error) {
  state_ = State::kError;
  error_ = error;
  buf_ = {};
  FrameEvent ev;
  ev.kind = FrameEvent::Kind::kError;
  ev.type = type_;
  ev.length = length_;
  ev.error = error;
  return ev;
}

FrameEvent FrameReader::next(std::span<const uint8_t> in, size_t& consumed) {
  consumed = 0;
  FrameEvent ev;
  while (true) {
    switch (state_) {
      case State::kError:
        consumed = in.size();
        ev.kind = FrameEvent::Kind::kError;
        ev.type = type_;
        ev.error = error_;
        return ev;
      case State::kType:
        if (!read_varint_piece(in, consumed, &type_)) return ev;  // kNeedMore
        state_ = State::kLength;
        break;
      case State::kLength: {
        if (!read_varint_piece(in, consumed, &length_)) return ev;
        remaining_ = length_;
        const FrameDisposition d = classify_(type_);
        switch (d.action) {
          case FrameDisposition::Action::kReject:
            return fail(d.error);
          case FrameDisposition::Action::kWhole:
            if (length_ > max_whole_) return fail(kH3ExcessiveLoad);
            buf_.clear();
            state_ = State::kWhole;
            break;
          case FrameDisposition::Action::kStream:
            state_ = State::kStream;
            begin_ = true;
            break;
          case FrameDisposition::Action::kSkip:
            state_ = State::kSkip;
            break;
        }
        // Empty frames complete here, without needing another input byte.
        if (length_ == 0 && state_ == State::kWhole) {
          state_ = State::kType;
          ev.kind = FrameEvent::Kind::kFrame;
          ev.type = type_;
          return ev;
        }
        if (length_ == 0 && state_ == State::kStream) {
          state_ = State::kType;
          ev.kind = FrameEvent::Kind::kChunk;
          ev.type = type_;
          ev.frame_begin = ev.frame_end = true;
          return ev;
        }
        if (length_ == 0) state_ = State::kType;
        break;
      }
      case State::kWhole: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - consumed));
        buf_.insert(buf_.end(), in.begin() + consumed, in.begin() + consumed + n);
        consumed += n;
        remaining_ -= n;
        if (remaining_ > 0) return ev;
        state_ = State::kType;
        ev.kind = FrameEvent::Kind::kFrame;
        ev.type = type_;
        ev.length = length_;
        ev.payload = buf_;
        return ev;
      }
      case State::kStream: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - consumed));
        if (n == 0) return ev;
        ev.kind = FrameEvent::Kind::kChunk;
        ev.type = type_;
        ev.length = length_;
        ev.payload = in.subspan(consumed, n);
        ev.frame_begin = begin_;
        begin_ = false;
        consumed += n;
        remaining_ -= n;
        ev.frame_end = remaining_ == 0;
        if (remaining_ == 0) state_ = State::kType;
        return ev;
      }
      case State::kSkip: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - consumed));
        consumed += n;
        remaining_ -= n;
        if (remaining_ > 0) return ev;
        state_ = State::kType;
        break;
      }
    }
  }
}

FrameDisposition classify_first_control_frame(uint64_t type) {
  if (type == kFrameSettings) return {FrameDisposition::Action::kWhole};
  return {FrameDisposition::Action::kReject, kH3MissingSettings};
}

FrameDisposition classify_control_frame(uint64_t type) {
  using A = FrameDisposition::Action;
  switch (type) {
    case kFrameSettings:  // a second one is rejected by the connection (H3_FRAME_UNEXPECTED)
    case kFrameGoaway:
    case kFrameMaxPushId:
    case kFrameCancelPush:
      return {A::kWhole};
    case kFrameData:
    case kFrameHeaders:
    case kFramePushPromise:
      return {A::kReject, kH3FrameUnexpected};
    default:
      if (is_http2_only_frame_type(type)) return {A::kReject, kH3FrameUnexpected};
      return {A::kSkip};
  }
}

FrameDisposition classify_request_frame(uint64_t type) {
  using A = FrameDisposition::Action;
  switch (type) {
    case kFrameHeaders:
      return {A::kWhole};
    case kFrameData:
      return {A::kStream};
    case kFrameSettings:
    case kFrameGoaway:
    case kFrameMaxPushId:
    case kFrameCancelPush:
    case kFramePushPromise:  // we never send MAX_PUSH_ID, so any push is an error
      return {A::kReject, kH3FrameUnexpected};
    default:
      if (is_http2_only_frame_type(type)) return {A::kReject, kH3FrameUnexpected};
      return {A::kSkip};
  }
}

void append_frame_header(std::vector<uint8_t>& out, uint64_t type, uint64_t length) {
  append_varint(out, type);
  append_varint(out, length);
}

void append_frame(std::vector<uint8_t>& out, uint64_t type, std::span<const uint8_t> payload) {
  append_frame_header(out, type, payload.size());
  append_bytes(out, payload);
}

void append_varint_frame(std::vector<uint8_t>& out, uint64_t type, uint64_t value) {
  append_frame_header(out, type, varint_size(value));
  append_varint(out, value);
}

std::optional<uint64_t> parse_varint_payload(std::span<const uint8_t> payload) {
  auto v = read_varint(payload);
  if (!v || v->length != payload.size()) return std::nullopt;
  return v->value;
}

}  // namespace wtmesh::h3
