#include "tunnel/wire.h"

#include <stdexcept>
#include <type_traits>

#include "common/varint.h"

namespace wtmesh::tunnel {

const char* to_string(WireError e) {
  switch (e) {
    case WireError::kNone:
      return "ok";
    case WireError::kNeedMore:
      return "need more bytes";
    case WireError::kTooLarge:
      return "a length exceeds its limit";
    case WireError::kMalformed:
      return "malformed encoding";
    case WireError::kUnknownFlags:
      return "unknown flag bits";
  }
  return "?";
}

bool has_feature(std::string_view list, std::string_view feature) {
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    std::string_view item = list.substr(pos, comma - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item == feature) return true;
    pos = comma + 1;
  }
  return false;
}

bool valid_instance_id(std::string_view id) {
  if (id.size() < 16 || id.size() > 64) return false;
  for (const char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}

// --- control stream -------------------------------------------------------------------------

std::vector<uint8_t> encode_control_frame(ControlType type, std::string_view json) {
  std::vector<uint8_t> out;
  append_varint(out, static_cast<uint64_t>(type));
  append_varint(out, json.size());
  out.insert(out.end(), json.begin(), json.end());
  return out;
}

namespace {

bool known_control_type(uint64_t t) { return t >= 0x01 && t <= 0x08; }

}  // namespace

WireError ControlReader::feed(std::span<const uint8_t> data, std::vector<ControlFrame>& out) {
  if (error_ != WireError::kNone) return error_;
  while (!data.empty()) {
    switch (state_) {
      case State::kHeader: {
        // Two varints, at most 16 bytes: take one byte at a time until both decode.
        header_.push_back(data.front());
        data = data.subspan(1);
        auto type = read_varint(header_);
        if (!type) break;
        auto len = read_varint(std::span<const uint8_t>(header_).subspan(type->length));
        if (!len) break;
        header_.clear();
        if (!known_control_type(type->value)) {
          state_ = State::kSkip;  // extensibility: skip by counting, never buffer
          remaining_ = len->value;
        } else if (len->value > kMaxControlPayload) {
          return error_ = WireError::kTooLarge;
        } else {
          frame_ = ControlFrame{type->value, {}};
          frame_.payload.reserve(len->value);
          remaining_ = len->value;
          state_ = State::kPayload;
        }
        if (remaining_ == 0 && state_ != State::kHeader) {
          if (state_ == State::kPayload) out.push_back(std::move(frame_));
          state_ = State::kHeader;
        }
        break;
      }
      case State::kPayload:
      case State::kSkip: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        if (state_ == State::kPayload) frame_.payload.append(reinterpret_cast<const char*>(data.data()), n);
        data = data.subspan(n);
        remaining_ -= n;
        if (remaining_ == 0) {
          if (state_ == State::kPayload) out.push_back(std::move(frame_));
          state_ = State::kHeader;
        }
        break;
      }
    }
  }
  return WireError::kNone;
}

// --- heads ----------------------------------------------------------------------------------

namespace {

constexpr uint64_t kFlagBody = 0x1;
constexpr uint64_t kFlagLength = 0x2;
constexpr uint64_t kFlagFramed = 0x4;  // responses only (§4.1)

void put_string(std::vector<uint8_t>& out, std::string_view s) {
  append_varint(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

size_t string_size(std::string_view s) { return varint_size(s.size()) + s.size(); }

uint64_t common_flags(bool has_body, const std::optional<uint64_t>& length, bool framed) {
  return (has_body ? kFlagBody : 0) | (length ? kFlagLength : 0) | (framed ? kFlagFramed : 0);
}

void put_common(std::vector<uint8_t>& out, bool has_body, const std::optional<uint64_t>& length,
                const HeaderPairs& headers, bool framed = false) {
  append_varint(out, common_flags(has_body, length, framed));
  if (length) append_varint(out, *length);
  append_field_section(out, headers);
}

size_t common_size(bool has_body, const std::optional<uint64_t>& length, const HeaderPairs& headers,
                   bool framed = false) {
  return varint_size(common_flags(has_body, length, framed)) + (length ? varint_size(*length) : 0) +
         field_section_size(headers);
}

// The head's own bytes, without its kind and length prefix.
size_t request_head_size(const RequestHead& h) {
  return varint_size(h.tunnel_id) + string_size(h.method) + string_size(h.target) + string_size(h.authority) +
         common_size(h.has_body, h.content_length, h.headers, h.framed);
}

size_t response_head_body_size(const ResponseHead& h) {
  return varint_size(static_cast<uint64_t>(h.status)) +
         common_size(h.has_body, h.content_length, h.headers, h.framed);
}

// Cursor over a complete head.
struct Cursor {
  std::span<const uint8_t> in;
  bool ok = true;
  uint64_t varint() {
    auto r = ok ? read_varint(in) : std::nullopt;
    if (!r) {
      ok = false;
      return 0;
    }
    in = in.subspan(r->length);
    return r->value;
  }
  std::string string() {
    const uint64_t n = varint();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(in.data()), static_cast<size_t>(n));
    in = in.subspan(static_cast<size_t>(n));
    return s;
  }
};

WireError get_fields(Cursor& c, HeaderPairs& headers) {
  const uint64_t count = c.varint();
  if (!c.ok) return WireError::kMalformed;
  if (count > kMaxHeaderCount) return WireError::kTooLarge;
  headers.clear();
  headers.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = c.string();
    std::string value = c.string();
    if (!c.ok) return WireError::kMalformed;
    headers.emplace_back(std::move(name), std::move(value));
  }
  return c.in.empty() ? WireError::kNone : WireError::kMalformed;
}

WireError get_common(Cursor& c, bool& has_body, std::optional<uint64_t>& length, HeaderPairs& headers,
                     bool* framed = nullptr) {
  const uint64_t flags = c.varint();
  if (!c.ok) return WireError::kMalformed;
  if (flags & ~(kFlagBody | kFlagLength | (framed ? kFlagFramed : 0))) return WireError::kUnknownFlags;
  if (framed) {
    *framed = (flags & kFlagFramed) != 0;
    if (*framed && (flags & kFlagBody) == 0) return WireError::kMalformed;  // framing needs a body
  }
  has_body = (flags & kFlagBody) != 0;
  if (flags & kFlagLength) length = c.varint();
  return get_fields(c, headers);
}

}  // namespace

void append_field_section(std::vector<uint8_t>& out, const HeaderPairs& fields) {
  append_varint(out, fields.size());
  for (const auto& [n, v] : fields) {
    put_string(out, n);
    put_string(out, v);
  }
}

size_t field_section_size(const HeaderPairs& fields) {
  size_t n = varint_size(fields.size());
  for (const auto& [name, value] : fields) n += string_size(name) + string_size(value);
  return n;
}

WireError decode_field_section(std::span<const uint8_t> in, HeaderPairs& out) {
  Cursor c{in};
  return get_fields(c, out);
}

size_t request_open_size(const RequestHead& h) {
  const size_t head = request_head_size(h);
  return varint_size(static_cast<uint64_t>(StreamKind::kHttpRequest)) + varint_size(head) + head;
}

std::vector<uint8_t> encode_request_open(const RequestHead& h) {
  const size_t head = request_head_size(h);
  std::vector<uint8_t> out;
  out.reserve(varint_size(static_cast<uint64_t>(StreamKind::kHttpRequest)) + varint_size(head) + head);
  append_varint(out, static_cast<uint64_t>(StreamKind::kHttpRequest));
  append_varint(out, head);
  append_varint(out, h.tunnel_id);
  put_string(out, h.method);
  put_string(out, h.target);
  put_string(out, h.authority);
  put_common(out, h.has_body, h.content_length, h.headers, h.framed);
  return out;
}

size_t response_head_size(const ResponseHead& h) {
  const size_t head = response_head_body_size(h);
  return varint_size(head) + head;
}

std::vector<uint8_t> encode_response_head(const ResponseHead& h) {
  const size_t head = response_head_body_size(h);
  std::vector<uint8_t> out;
  out.reserve(varint_size(head) + head);
  append_varint(out, head);
  append_varint(out, static_cast<uint64_t>(h.status));
  put_common(out, h.has_body, h.content_length, h.headers, h.framed);
  return out;
}

WireError decode_request_head(std::span<const uint8_t> head, RequestHead& out) {
  Cursor c{head};
  const uint64_t tunnel = c.varint();
  out.method = c.string();
  out.target = c.string();
  out.authority = c.string();
  if (!c.ok || tunnel > UINT32_MAX || out.method.empty()) return WireError::kMalformed;
  out.tunnel_id = static_cast<uint32_t>(tunnel);
  return get_common(c, out.has_body, out.content_length, out.headers, &out.framed);
}

WireError decode_response_head(std::span<const uint8_t> head, ResponseHead& out) {
  Cursor c{head};
  const uint64_t status = c.varint();
  if (!c.ok || status < 100 || status > 599) return WireError::kMalformed;
  out.status = static_cast<int>(status);
  out.content_length.reset();
  const WireError e = get_common(c, out.has_body, out.content_length, out.headers, &out.framed);
  // An interim head carries fields only (§4.1).
  if (e == WireError::kNone && is_interim(out.status) && (out.has_body || out.content_length || out.framed))
    return WireError::kMalformed;
  return e;
}

template <typename Head>
WireError HeadReader<Head>::feed(std::span<const uint8_t> data, Head& head) {
  if (done_) {
    rest_.insert(rest_.end(), data.begin(), data.end());
    return WireError::kNone;
  }
  // Buffer only up to the cap: the prefix varints plus kMaxHeadLength.
  buf_.insert(buf_.end(), data.begin(), data.end());
  std::span<const uint8_t> in(buf_);
  if constexpr (std::is_same_v<Head, RequestHead>) {
    if (!kind_read_) {
      auto kind = read_varint(in);
      if (!kind) return WireError::kNeedMore;
      if (kind->value != static_cast<uint64_t>(StreamKind::kHttpRequest)) return WireError::kMalformed;
      in = in.subspan(kind->length);
    }
  }
  auto len = read_varint(in);
  if (!len) return WireError::kNeedMore;
  if (len->value > kMaxHeadLength) return WireError::kTooLarge;
  in = in.subspan(len->length);
  if (in.size() < len->value) {
    return buf_.size() > kMaxHeadLength + 16 ? WireError::kTooLarge : WireError::kNeedMore;
  }
  WireError e;
  if constexpr (std::is_same_v<Head, RequestHead>) {
    e = decode_request_head(in.first(static_cast<size_t>(len->value)), head);
  } else {
    e = decode_response_head(in.first(static_cast<size_t>(len->value)), head);
  }
  if (e != WireError::kNone) return e;
  const auto after = in.subspan(static_cast<size_t>(len->value));
  rest_.assign(after.begin(), after.end());
  buf_.clear();
  buf_.shrink_to_fit();
  done_ = true;
  return WireError::kNone;
}

template class HeadReader<RequestHead>;
template class HeadReader<ResponseHead>;

// --- datagrams -----------------------------------------------------------------------------------

std::vector<uint8_t> encode_datagram(uint64_t flow_id, std::span<const uint8_t> payload) {
  if (flow_id > kVarintMax) throw std::invalid_argument("datagram flow id over 2^62 - 1");
  std::vector<uint8_t> out;
  out.reserve(varint_size(flow_id) + payload.size());
  append_varint(out, flow_id);
  append_bytes(out, payload);
  return out;
}

std::optional<Datagram> decode_datagram(std::span<const uint8_t> datagram) {
  auto flow = read_varint(datagram);
  if (!flow) return std::nullopt;
  return Datagram{flow->value, datagram.subspan(flow->length)};
}

}  // namespace wtmesh::tunnel
