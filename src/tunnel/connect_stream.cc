#include "tunnel/connect_stream.h"

#include <algorithm>
#include <stdexcept>

#include "common/varint.h"
#include "tunnel/registry.h"
#include "tunnel/udp_flow.h"

namespace wtmesh::tunnel {
namespace {

void append_string(std::vector<uint8_t>& out, std::string_view s) {
  append_varint(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace

std::string_view to_string(ConnectStatus s) {
  switch (s) {
    case ConnectStatus::kConnected:
      return "connected";
    case ConnectStatus::kNotInScope:
      return "not_in_scope";
    case ConnectStatus::kUnknown:
      return "unknown";
    case ConnectStatus::kOffline:
      return "offline";
    case ConnectStatus::kLimit:
      return "limit";
    case ConnectStatus::kUnreachable:
      return "unreachable";
    case ConnectStatus::kInvalid:
      return "invalid";
  }
  return "refused";
}

std::vector<uint8_t> encode_connect_stream_head(const ConnectHead& head) {
  if (head.name.empty() || head.name.size() > kMaxConnectName)
    throw std::invalid_argument("connect name must be 1.." + std::to_string(kMaxConnectName) + " bytes");
  if (head.udp_flow &&
      (!is_udp_flow(*head.udp_flow) || udp_flow_opener(*head.udp_flow) != FlowOpener::kAgent))
    throw std::invalid_argument("a udp connect's flow id must be an agent-opened UDP flow id");
  std::vector<uint8_t> body;
  append_varint(body, head.udp_flow ? kConnectFlagUdp : 0);  // flags
  append_string(body, head.name);
  if (head.udp_flow) append_varint(body, *head.udp_flow);
  std::vector<uint8_t> out;
  append_varint(out, static_cast<uint64_t>(StreamKind::kConnectStream));
  append_varint(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::vector<uint8_t> encode_connect_reply(ConnectStatus status, std::string_view message) {
  std::vector<uint8_t> out;
  append_varint(out, static_cast<uint64_t>(status));
  append_string(out, message.substr(0, kMaxConnectMessage));
  return out;
}

WireError decode_connect_head(std::span<const uint8_t> in, ConnectHead& head) {
  const auto flags = read_varint(in);
  if (!flags) return WireError::kMalformed;
  if ((flags->value & ~kConnectFlagUdp) != 0) return WireError::kUnknownFlags;
  size_t pos = flags->length;
  const auto len = read_varint(in.subspan(pos));
  if (!len) return WireError::kMalformed;
  pos += len->length;
  if (len->value == 0 || len->value > kMaxConnectName || len->value > in.size() - pos)
    return WireError::kMalformed;
  const auto name_end = pos + static_cast<size_t>(len->value);
  std::optional<uint64_t> flow;
  if (flags->value & kConnectFlagUdp) {
    const auto f = read_varint(in.subspan(name_end));
    if (!f || !is_udp_flow(f->value) || udp_flow_opener(f->value) != FlowOpener::kAgent)
      return WireError::kMalformed;
    if (in.size() - name_end != f->length) return WireError::kMalformed;  // the fields fill the head exactly
    flow = f->value;
  } else if (in.size() != name_end) {
    return WireError::kMalformed;  // the name fills the head exactly
  }
  head.name.assign(reinterpret_cast<const char*>(in.data() + pos), static_cast<size_t>(len->value));
  head.udp_flow = flow;
  return WireError::kNone;
}

WireError ConnectHeadReader::feed(std::span<const uint8_t> data, size_t& used, ConnectHead& head) {
  used = 0;
  if (done_) return WireError::kNone;
  const WireError got = buf_.feed(data, used);
  if (got != WireError::kNone) return got;
  const WireError e = decode_connect_head(buf_.head(), head);
  buf_.release();
  if (e == WireError::kNone) done_ = true;
  return e;
}

WireError ConnectReplyReader::feed(std::span<const uint8_t> data, size_t& used, ConnectReply& reply) {
  used = 0;
  if (done_) return WireError::kNone;
  // Byte by byte until the status and the message length are known, then the message in one go.
  while (used < data.size()) {
    const auto status = read_varint(buf_);
    std::optional<VarintRead> len;
    if (status) len = read_varint(std::span<const uint8_t>(buf_).subspan(status->length));
    if (!len) {
      buf_.push_back(data[used++]);
      continue;
    }
    if (len->value > kMaxConnectMessage) return WireError::kTooLarge;
    const size_t want = status->length + len->length + static_cast<size_t>(len->value);
    const size_t take = std::min(want - buf_.size(), data.size() - used);
    buf_.insert(buf_.end(), data.begin() + static_cast<ptrdiff_t>(used),
                data.begin() + static_cast<ptrdiff_t>(used + take));
    used += take;
    if (buf_.size() < want) return WireError::kNeedMore;
    reply.status = status->value;
    reply.message.assign(reinterpret_cast<const char*>(buf_.data()) + status->length + len->length,
                         static_cast<size_t>(len->value));
    buf_ = {};
    done_ = true;
    return WireError::kNone;
  }
  // All of `data` taken; the reply may be complete exactly at its end (a message of length 0).
  const auto status = read_varint(buf_);
  if (status) {
    const auto len = read_varint(std::span<const uint8_t>(buf_).subspan(status->length));
    if (len && len->value > kMaxConnectMessage) return WireError::kTooLarge;
    if (len && len->value == 0) {
      reply.status = status->value;
      reply.message.clear();
      buf_ = {};
      done_ = true;
      return WireError::kNone;
    }
  }
  return WireError::kNeedMore;
}

}  // namespace wtmesh::tunnel
