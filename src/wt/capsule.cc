#include "wt/capsule.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "common/varint.h"
#include "wt/utf8.h"

namespace wtmesh::wt {
namespace {

constexpr size_t kSkip = std::numeric_limits<size_t>::max();

bool is_flow_control_type(uint64_t type) {
  return type == kCapsuleMaxData || type == kCapsuleMaxStreamsBidi || type == kCapsuleMaxStreamsUni ||
         type == kCapsuleDataBlocked || type == kCapsuleStreamsBlockedBidi || type == kCapsuleStreamsBlockedUni;
}

bool is_http2_only_type(uint64_t type) {
  return type == kCapsuleResetStream || type == kCapsuleStopSending || type == kCapsuleStreamFin ||
         type == kCapsuleStreamNoFin || type == kCapsuleMaxStreamData || type == kCapsuleStreamDataBlocked;
}

void append_clamped_varint(std::vector<uint8_t>& out, uint64_t v) { append_varint(out, std::min(v, kVarintMax)); }

// Type + value for each alternative; the caller adds the length.
struct ValueWriter {
  std::vector<uint8_t>& value;
  uint64_t operator()(const DatagramCapsule& c) {
    append_bytes(value, c.payload);
    return kCapsuleDatagram;
  }
  uint64_t operator()(const CloseSessionCapsule& c) {
    // Sized once and filled in place: push_back()s followed by insert() on the empty vector made
    // GCC 12 at -O3 report a false -Wstringop-overflow through the inlined reallocation.
    const std::string msg = sanitize_utf8(c.message, kMaxCloseMessage);
    const size_t at = value.size();
    value.resize(at + 4 + msg.size());
    for (size_t i = 0; i < 4; ++i) value[at + i] = static_cast<uint8_t>(c.code >> (24 - 8 * i));
    std::copy(msg.begin(), msg.end(), value.begin() + static_cast<ptrdiff_t>(at + 4));
    return kCapsuleCloseSession;
  }
  uint64_t operator()(const DrainSessionCapsule&) { return kCapsuleDrainSession; }
  uint64_t operator()(const MaxDataCapsule& c) {
    append_clamped_varint(value, c.max_data);
    return kCapsuleMaxData;
  }
  uint64_t operator()(const MaxStreamsCapsule& c) {
    append_clamped_varint(value, c.max_streams);
    return c.bidi ? kCapsuleMaxStreamsBidi : kCapsuleMaxStreamsUni;
  }
  uint64_t operator()(const DataBlockedCapsule& c) {
    append_clamped_varint(value, c.limit);
    return kCapsuleDataBlocked;
  }
  uint64_t operator()(const StreamsBlockedCapsule& c) {
    append_clamped_varint(value, c.limit);
    return c.bidi ? kCapsuleStreamsBlockedBidi : kCapsuleStreamsBlockedUni;
  }
  uint64_t operator()(const Http2OnlyCapsule& c) {
    append_bytes(value, c.value);
    return c.type;
  }
};

}  // namespace

const char* to_string(CapsuleError error) {
  switch (error) {
    case CapsuleError::kNone: return "no error";
    case CapsuleError::kTooLarge: return "capsule longer than its type allows";
    case CapsuleError::kMalformed: return "malformed capsule value";
    case CapsuleError::kMessageTooLong: return "close message longer than 1024 bytes";
    case CapsuleError::kInvalidUtf8: return "close message is not valid UTF-8";
    case CapsuleError::kTruncated: return "stream ended inside a capsule";
    case CapsuleError::kBadErrorCode: return "application error code above 2^32-1";
  }
  return "unknown capsule error";
}

void serialize_capsule(const Capsule& capsule, std::vector<uint8_t>& out) {
  std::vector<uint8_t> value;
  const uint64_t type = std::visit(ValueWriter{value}, capsule);
  append_clamped_varint(out, type);
  append_varint(out, value.size());
  append_bytes(out, value);
}

std::vector<uint8_t> serialize_capsule(const Capsule& capsule) {
  std::vector<uint8_t> out;
  serialize_capsule(capsule, out);
  return out;
}

CapsuleParser::CapsuleParser(CapsuleLimits limits) : limits_(limits) {}

size_t CapsuleParser::max_length(uint64_t type) const {
  if (type == kCapsuleDatagram) return limits_.max_datagram;
  if (type == kCapsuleCloseSession) return 4 + kMaxCloseMessage;
  if (type == kCapsuleDrainSession) return 0;
  if (is_flow_control_type(type)) return 8;  // one varint
  if (is_http2_only_type(type)) return limits_.max_http2_only;
  return kSkip;  // unknown, GREASE, PADDING
}

CapsuleError CapsuleParser::on_header_done() {
  const size_t max = max_length(type_);
  if (max == kSkip) {
    state_ = remaining_ == 0 ? State::kType : State::kSkip;
    return CapsuleError::kNone;
  }
  if (type_ == kCapsuleCloseSession) {
    if (remaining_ < 4) return fail(CapsuleError::kMalformed);
    if (remaining_ > max) return fail(CapsuleError::kMessageTooLong);
  } else if (type_ == kCapsuleDrainSession) {
    if (remaining_ != 0) return fail(CapsuleError::kMalformed);
  } else if (is_flow_control_type(type_) && remaining_ == 0) {
    return fail(CapsuleError::kMalformed);
  } else if (remaining_ > max) {
    return fail(CapsuleError::kTooLarge);
  }
  value_.clear();
  value_.reserve(static_cast<size_t>(remaining_));
  state_ = State::kValue;
  return CapsuleError::kNone;
}

CapsuleError CapsuleParser::decode_value(std::vector<Capsule>& out) {
  std::vector<uint8_t> value = std::exchange(value_, {});
  state_ = State::kType;
  if (type_ == kCapsuleDatagram) {
    out.emplace_back(DatagramCapsule{std::move(value)});
  } else if (type_ == kCapsuleCloseSession) {
    CloseSessionCapsule c;
    c.code = (uint32_t{value[0]} << 24) | (uint32_t{value[1]} << 16) | (uint32_t{value[2]} << 8) | value[3];
    c.message.assign(value.begin() + 4, value.end());
    if (!is_valid_utf8(c.message)) return fail(CapsuleError::kInvalidUtf8);
    out.emplace_back(std::move(c));
  } else if (type_ == kCapsuleDrainSession) {
    out.emplace_back(DrainSessionCapsule{});
  } else if (is_flow_control_type(type_)) {
    const auto v = read_varint(value);
    if (!v || v->length != value.size()) return fail(CapsuleError::kMalformed);
    switch (type_) {
      case kCapsuleMaxData: out.emplace_back(MaxDataCapsule{v->value}); break;
      case kCapsuleMaxStreamsBidi: out.emplace_back(MaxStreamsCapsule{true, v->value}); break;
      case kCapsuleMaxStreamsUni: out.emplace_back(MaxStreamsCapsule{false, v->value}); break;
      case kCapsuleDataBlocked: out.emplace_back(DataBlockedCapsule{v->value}); break;
      case kCapsuleStreamsBlockedBidi: out.emplace_back(StreamsBlockedCapsule{true, v->value}); break;
      default: out.emplace_back(StreamsBlockedCapsule{false, v->value}); break;
    }
  } else {
    out.emplace_back(Http2OnlyCapsule{type_, std::move(value)});
  }
  return CapsuleError::kNone;
}

CapsuleError CapsuleParser::feed(std::span<const uint8_t> data, std::vector<Capsule>& out) {
  if (error_ != CapsuleError::kNone) return error_;
  size_t i = 0;
  while (i < data.size()) {
    switch (state_) {
      case State::kType:
      case State::kLength: {
        header_[header_len_++] = data[i++];
        const size_t need = size_t{1} << (header_[0] >> 6);
        if (header_len_ < need) break;
        const uint64_t v = read_varint(std::span<const uint8_t>(header_, header_len_))->value;
        header_len_ = 0;
        if (state_ == State::kType) {
          type_ = v;
          state_ = State::kLength;
          break;
        }
        remaining_ = v;
        if (on_header_done() != CapsuleError::kNone) return error_;
        if (state_ == State::kValue && remaining_ == 0 && decode_value(out) != CapsuleError::kNone) return error_;
        break;
      }
      case State::kValue: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        value_.insert(value_.end(), data.begin() + static_cast<ptrdiff_t>(i),
                      data.begin() + static_cast<ptrdiff_t>(i + take));
        i += take;
        remaining_ -= take;
        if (remaining_ == 0 && decode_value(out) != CapsuleError::kNone) return error_;
        break;
      }
      case State::kSkip: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        i += take;
        remaining_ -= take;
        skipped_bytes_ += take;
        if (remaining_ == 0) state_ = State::kType;
        break;
      }
    }
  }
  return CapsuleError::kNone;
}

CapsuleError CapsuleParser::finish() {
  if (error_ != CapsuleError::kNone) return error_;
  if (!at_boundary()) return fail(CapsuleError::kTruncated);
  return CapsuleError::kNone;
}

}  // namespace wtmesh::wt
