#include "wt/h2_capsules.h"

#include <algorithm>
#include <limits>

#include "common/varint.h"

namespace wtmesh::wt {
namespace {

constexpr size_t kSkipCapsule = std::numeric_limits<size_t>::max();
constexpr uint64_t kMaxAppErrorCode = 0xffffffff;

bool is_h2_stream_control_type(uint64_t type) {
  return type == kCapsuleResetStream || type == kCapsuleStopSending || type == kCapsuleMaxStreamData ||
         type == kCapsuleStreamDataBlocked;
}

bool is_session_flow_control_type(uint64_t type) {
  return type == kCapsuleMaxData || type == kCapsuleMaxStreamsBidi || type == kCapsuleMaxStreamsUni ||
         type == kCapsuleDataBlocked || type == kCapsuleStreamsBlockedBidi ||
         type == kCapsuleStreamsBlockedUni;
}

void append_capsule(std::vector<uint8_t>& out, uint64_t type, std::span<const uint64_t> fields) {
  size_t length = 0;
  for (uint64_t f : fields) length += varint_size(std::min(f, kVarintMax));
  append_varint(out, type);
  append_varint(out, length);
  for (uint64_t f : fields) append_varint(out, std::min(f, kVarintMax));
}

// Reads exactly `n` varints that fill `value`; false if the value is shorter or longer.
bool read_fields(std::span<const uint8_t> value, uint64_t* fields, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const auto v = read_varint(value);
    if (!v) return false;
    fields[i] = v->value;
    value = value.subspan(v->length);
  }
  return value.empty();
}

struct H2Writer {
  std::vector<uint8_t>& out;
  void operator()(const WtResetStreamCapsule& c) {
    const uint64_t f[] = {static_cast<uint64_t>(c.id), c.code, c.reliable_size};
    append_capsule(out, kCapsuleResetStream, f);
  }
  void operator()(const WtStopSendingCapsule& c) {
    const uint64_t f[] = {static_cast<uint64_t>(c.id), c.code};
    append_capsule(out, kCapsuleStopSending, f);
  }
  void operator()(const WtMaxStreamDataCapsule& c) {
    const uint64_t f[] = {static_cast<uint64_t>(c.id), c.max_stream_data};
    append_capsule(out, kCapsuleMaxStreamData, f);
  }
  void operator()(const WtStreamDataBlockedCapsule& c) {
    const uint64_t f[] = {static_cast<uint64_t>(c.id), c.limit};
    append_capsule(out, kCapsuleStreamDataBlocked, f);
  }
};

}  // namespace

bool H2WtSettings::apply(uint16_t id, uint32_t value) {
  switch (id) {
    case kSettingsWtEnabled:
      wt_enabled = value;
      return true;
    case kSettingsWtInitialMaxData:
      initial_max_data = value;
      return true;
    case kSettingsWtInitialMaxStreamDataUni:
      initial_max_stream_data_uni = value;
      return true;
    case kSettingsWtInitialMaxStreamDataBidiLocal:
      initial_max_stream_data_bidi_local = value;
      return true;
    case kSettingsWtInitialMaxStreamDataBidiRemote:
      initial_max_stream_data_bidi_remote = value;
      return true;
    case kSettingsWtInitialMaxStreamsUni:
      initial_max_streams_uni = value;
      return true;
    case kSettingsWtInitialMaxStreamsBidi:
      initial_max_streams_bidi = value;
      return true;
    default:
      return false;
  }
}

std::vector<std::pair<uint16_t, uint32_t>> H2WtSettings::entries() const {
  const std::pair<uint16_t, uint32_t> all[] = {
      {kSettingsWtEnabled, wt_enabled},
      {kSettingsWtInitialMaxData, initial_max_data},
      {kSettingsWtInitialMaxStreamDataUni, initial_max_stream_data_uni},
      {kSettingsWtInitialMaxStreamDataBidiLocal, initial_max_stream_data_bidi_local},
      {kSettingsWtInitialMaxStreamsUni, initial_max_streams_uni},
      {kSettingsWtInitialMaxStreamsBidi, initial_max_streams_bidi},
      {kSettingsWtInitialMaxStreamDataBidiRemote, initial_max_stream_data_bidi_remote},
  };
  std::vector<std::pair<uint16_t, uint32_t>> out;
  for (const auto& e : all) {
    if (e.second != 0) out.push_back(e);
  }
  return out;
}

void serialize_h2_capsule(const H2StreamCapsule& capsule, std::vector<uint8_t>& out) {
  std::visit(H2Writer{out}, capsule);
}

CapsuleError decode_h2_capsule(uint64_t type, std::span<const uint8_t> value, H2StreamCapsule& out) {
  uint64_t f[3] = {};
  const size_t n = type == kCapsuleResetStream ? 3 : 2;
  if (!is_h2_stream_control_type(type) || !read_fields(value, f, n)) return CapsuleError::kMalformed;
  const auto id = static_cast<StreamId>(f[0]);  // a varint: at most 2^62 - 1
  switch (type) {
    case kCapsuleResetStream:
      if (f[1] > kMaxAppErrorCode) return CapsuleError::kBadErrorCode;
      out = WtResetStreamCapsule{id, static_cast<uint32_t>(f[1]), f[2]};
      break;
    case kCapsuleStopSending:
      if (f[1] > kMaxAppErrorCode) return CapsuleError::kBadErrorCode;
      out = WtStopSendingCapsule{id, static_cast<uint32_t>(f[1])};
      break;
    case kCapsuleMaxStreamData:
      out = WtMaxStreamDataCapsule{id, f[1]};
      break;
    default:
      out = WtStreamDataBlockedCapsule{id, f[1]};
      break;
  }
  return CapsuleError::kNone;
}

void append_wt_stream(std::vector<uint8_t>& out, StreamId id, std::span<const uint8_t> data, bool fin,
                      WtStreamFin convention) {
  const auto sid = static_cast<uint64_t>(std::clamp<StreamId>(id, 0, static_cast<StreamId>(kVarintMax)));
  append_varint(out, wt_stream_type(fin, convention));
  append_varint(out, varint_size(sid) + data.size());
  append_varint(out, sid);
  append_bytes(out, data);
}

size_t wt_stream_overhead(StreamId id, size_t data_size) {
  const auto sid = static_cast<uint64_t>(std::clamp<StreamId>(id, 0, static_cast<StreamId>(kVarintMax)));
  return varint_size(kCapsuleStreamNoFin) + varint_size(varint_size(sid) + data_size) + varint_size(sid);
}

H2CapsuleParser::H2CapsuleParser(H2CapsuleLimits limits)
    : limits_(limits), inner_(CapsuleLimits{limits.max_datagram, 0}) {}

CapsuleError H2CapsuleParser::on_header(uint64_t type, uint64_t length) {
  type_ = type;
  remaining_ = length;
  if (is_wt_stream_type(type)) {
    if (length == 0) return fail(CapsuleError::kMalformed);  // not even a stream id
    if (length > limits_.max_stream_capsule) return fail(CapsuleError::kTooLarge);
    id_len_ = 0;
    state_ = State::kStreamId;
    return CapsuleError::kNone;
  }
  size_t max = kSkipCapsule;  // PADDING (§6.1: not verified), GREASE, unknown
  if (type == kCapsuleDatagram) {
    max = limits_.max_datagram;
  } else if (type == kCapsuleCloseSession) {
    if (length < 4) return fail(CapsuleError::kMalformed);
    if (length > 4 + kMaxCloseMessage) return fail(CapsuleError::kMessageTooLong);
    max = 4 + kMaxCloseMessage;
  } else if (type == kCapsuleDrainSession) {
    if (length != 0) return fail(CapsuleError::kMalformed);
    max = 0;
  } else if (is_session_flow_control_type(type)) {
    if (length == 0) return fail(CapsuleError::kMalformed);
    max = 8;
  } else if (is_h2_stream_control_type(type)) {
    if (length < 2) return fail(CapsuleError::kMalformed);
    max = type == kCapsuleResetStream ? 24 : 16;
  }
  if (max == kSkipCapsule) {
    state_ = length == 0 ? State::kHeader : State::kSkip;
    return CapsuleError::kNone;
  }
  if (length > max) return fail(CapsuleError::kTooLarge);
  buffer_.assign(header_, header_ + header_len_);
  buffer_.reserve(header_len_ + static_cast<size_t>(length));
  state_ = State::kBuffer;
  return CapsuleError::kNone;
}

CapsuleError H2CapsuleParser::on_buffered(H2CapsuleVisitor& visitor) {
  std::vector<uint8_t> capsule = std::move(buffer_);
  buffer_.clear();
  state_ = State::kHeader;
  if (is_h2_stream_control_type(type_)) {
    const auto t = read_varint(capsule);
    const auto l = read_varint(std::span<const uint8_t>(capsule).subspan(t->length));
    const auto value = std::span<const uint8_t>(capsule).subspan(t->length + l->length);
    H2StreamCapsule c;
    if (const CapsuleError e = decode_h2_capsule(type_, value, c); e != CapsuleError::kNone) return fail(e);
    if (!visitor.on_stream_capsule(c)) state_ = State::kStopped;
    return CapsuleError::kNone;
  }
  std::vector<Capsule> out;
  if (const CapsuleError e = inner_.feed(capsule, out); e != CapsuleError::kNone) return fail(e);
  for (Capsule& c : out) {
    if (!visitor.on_capsule(c)) {
      state_ = State::kStopped;
      break;
    }
  }
  return CapsuleError::kNone;
}

CapsuleError H2CapsuleParser::feed(std::span<const uint8_t> data, H2CapsuleVisitor& visitor) {
  if (error_ != CapsuleError::kNone) return error_;
  size_t i = 0;
  while (i < data.size() && state_ != State::kStopped) {
    switch (state_) {
      case State::kHeader: {
        header_[header_len_++] = data[i++];
        const size_t type_len = size_t{1} << (header_[0] >> 6);
        if (header_len_ <= type_len) break;
        const size_t len_len = size_t{1} << (header_[type_len] >> 6);
        if (header_len_ < type_len + len_len) break;
        const std::span<const uint8_t> h(header_, header_len_);
        const uint64_t type = read_varint(h)->value;
        const uint64_t length = read_varint(h.subspan(type_len))->value;
        const CapsuleError e = on_header(type, length);
        header_len_ = 0;
        if (e != CapsuleError::kNone) return error_;
        if (state_ == State::kBuffer && remaining_ == 0 && on_buffered(visitor) != CapsuleError::kNone) {
          return error_;
        }
        break;
      }
      case State::kStreamId: {
        id_[id_len_++] = data[i++];
        --remaining_;
        const size_t need = size_t{1} << (id_[0] >> 6);
        if (id_len_ < need) {
          if (remaining_ == 0) return fail(CapsuleError::kMalformed);
          break;
        }
        stream_id_ = static_cast<StreamId>(read_varint(std::span<const uint8_t>(id_, id_len_))->value);
        id_len_ = 0;
        if (remaining_ == 0) {
          state_ = State::kHeader;
          if (!visitor.on_stream_data(stream_id_, {}, wt_stream_has_fin(type_, limits_.fin_convention))) {
            state_ = State::kStopped;
          }
        } else {
          state_ = State::kStreamData;
        }
        break;
      }
      case State::kStreamData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        remaining_ -= take;
        const bool last = remaining_ == 0;
        if (last) state_ = State::kHeader;
        const bool fin = last && wt_stream_has_fin(type_, limits_.fin_convention);
        const bool go_on = visitor.on_stream_data(stream_id_, data.subspan(i, take), fin);
        i += take;
        if (!go_on) state_ = State::kStopped;
        break;
      }
      case State::kBuffer: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        buffer_.insert(buffer_.end(), data.begin() + static_cast<ptrdiff_t>(i),
                       data.begin() + static_cast<ptrdiff_t>(i + take));
        i += take;
        remaining_ -= take;
        if (remaining_ == 0 && on_buffered(visitor) != CapsuleError::kNone) return error_;
        break;
      }
      case State::kSkip: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        i += take;
        remaining_ -= take;
        skipped_bytes_ += take;
        if (remaining_ == 0) state_ = State::kHeader;
        break;
      }
      case State::kStopped:
        break;
    }
  }
  return CapsuleError::kNone;
}

CapsuleError H2CapsuleParser::finish() {
  if (error_ != CapsuleError::kNone) return error_;
  if (state_ != State::kStopped && !at_boundary()) return fail(CapsuleError::kTruncated);
  return CapsuleError::kNone;
}

}  // namespace wtmesh::wt
