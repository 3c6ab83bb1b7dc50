#include "tunnel/registry.h"

#include "common/varint.h"

namespace wtmesh::tunnel {

const StreamKindInfo* find_stream_kind(uint64_t value) {
  for (const auto& k : kStreamKinds) {
    if (static_cast<uint64_t>(k.kind) == value) return &k;
  }
  return nullptr;
}

std::string_view to_string(StreamKind kind) {
  const StreamKindInfo* k = find_stream_kind(static_cast<uint64_t>(kind));
  return k ? k->name : std::string_view("?");
}

std::optional<StreamKind> accept_stream_kind(uint64_t value, Peer self) {
  const StreamKindInfo* k = find_stream_kind(value);
  if (k == nullptr || (k->opener == self && !k->either)) return std::nullopt;
  return k->kind;
}

size_t StreamKindReader::feed(std::span<const uint8_t> data) {
  size_t used = 0;
  while (!kind_ && used < data.size()) {
    buf_[size_++] = data[used++];
    if (auto v = read_varint(std::span<const uint8_t>(buf_.data(), size_))) kind_ = v->value;
  }
  return used;
}

const TunnelTypeInfo* find_tunnel_type(std::string_view name) {
  for (const auto& t : kTunnelTypes) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace wtmesh::tunnel
