#include "tunnel/wt_relay_wire.h"

#include <stdexcept>

#include "common/varint.h"

namespace wtmesh::tunnel {

std::vector<uint8_t> encode_wt_session_open(const WtSessionOpen& open) {
  if (open.relay_id == 0 || open.relay_id > kMaxRelayId) throw std::invalid_argument("relay id out of range");
  std::vector<uint8_t> out;
  append_varint(out, static_cast<uint64_t>(StreamKind::kWtSession));
  append_varint(out, open.relay_id);
  // encode_request_open writes kind 0x01 + head_length + head: keep head_length + head.
  const std::vector<uint8_t> request = encode_request_open(open.request);
  out.insert(out.end(), request.begin() + 1, request.end());
  return out;
}

std::vector<uint8_t> encode_wt_stream_open(const WtStreamOpen& open) {
  if (open.relay_id == 0 || open.relay_id > kMaxRelayId) throw std::invalid_argument("relay id out of range");
  std::vector<uint8_t> out;
  append_varint(out, static_cast<uint64_t>(StreamKind::kWtStream));
  append_varint(out, open.relay_id);
  append_varint(out, open.uni ? kWtStreamFlagUni : 0);
  return out;
}

size_t VarintsReader::feed(std::span<const uint8_t> data) {
  size_t used = 0;
  while (!done() && used < data.size()) {
    buf_[size_++] = data[used++];
    if (auto v = read_varint(std::span<const uint8_t>(buf_.data(), size_))) {
      values_.push_back(v->value);
      size_ = 0;
    }
  }
  return used;
}

WireError WtSessionOpenReader::feed(std::span<const uint8_t> data, WtSessionOpen& out) {
  if (!relay_.done()) {
    data = data.subspan(relay_.feed(data));
    if (!relay_.done()) return WireError::kNeedMore;
    const uint64_t id = relay_.values()[0];
    if (id == 0 || id > kMaxRelayId) return WireError::kMalformed;
  }
  out.relay_id = relay_.values()[0];
  return head_.feed(data, out.request);
}

WireError WtStreamOpenReader::feed(std::span<const uint8_t> data, WtStreamOpen& out, size_t* used) {
  *used = fields_.feed(data);
  if (!fields_.done()) return WireError::kNeedMore;
  const uint64_t id = fields_.values()[0];
  const uint64_t flags = fields_.values()[1];
  if (id == 0 || id > kMaxRelayId) return WireError::kMalformed;
  if ((flags & ~kWtStreamFlagUni) != 0) return WireError::kUnknownFlags;
  out.relay_id = id;
  out.uni = (flags & kWtStreamFlagUni) != 0;
  return WireError::kNone;
}

WireError decode_wt_session_open(std::span<const uint8_t> bytes, WtSessionOpen& out, size_t* used) {
  WtSessionOpenReader reader;
  const WireError e = reader.feed(bytes, out);
  if (e == WireError::kNone) *used = bytes.size() - reader.take_rest().size();
  return e;
}

WireError decode_wt_stream_open(std::span<const uint8_t> bytes, WtStreamOpen& out, size_t* used) {
  WtStreamOpenReader reader;
  return reader.feed(bytes, out, used);
}

}  // namespace wtmesh::tunnel
