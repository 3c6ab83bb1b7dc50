// QUIC variable-length integers (RFC 9000 §16), used by every layer's wire format.
// Sans-I/O: pure functions over byte spans.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace wtmesh {

inline constexpr uint64_t kVarintMax = (uint64_t{1} << 62) - 1;

struct VarintRead {
  uint64_t value;
  size_t length;  // bytes consumed
};

// Decodes one varint from the front of `in`. nullopt when `in` is too short (need more bytes).
// Non-minimal encodings are accepted, as RFC 9000 allows.
inline std::optional<VarintRead> read_varint(std::span<const uint8_t> in) {
  if (in.empty()) return std::nullopt;
  const size_t len = size_t{1} << (in[0] >> 6);
  if (in.size() < len) return std::nullopt;
  uint64_t v = in[0] & 0x3f;
  for (size_t i = 1; i < len; ++i) v = (v << 8) | in[i];
  return VarintRead{v, len};
}

// Bytes needed to encode v minimally (v must be <= kVarintMax).
constexpr size_t varint_size(uint64_t v) {
  return v < 64 ? 1 : v < 16384 ? 2 : v < 1073741824 ? 4 : 8;
}

// Writes v minimally at `out` (which must have varint_size(v) bytes); returns bytes written.
inline size_t write_varint(uint8_t* out, uint64_t v) {
  const size_t len = varint_size(v);
  const uint8_t prefix = len == 1 ? 0x00 : len == 2 ? 0x40 : len == 4 ? 0x80 : 0xc0;
  for (size_t i = 0; i < len; ++i) out[len - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
  out[0] |= prefix;
  return len;
}

inline void append_varint(std::vector<uint8_t>& out, uint64_t v) {
  const size_t at = out.size();
  out.resize(at + varint_size(v));
  write_varint(out.data() + at, v);
}

inline void append_bytes(std::vector<uint8_t>& out, std::span<const uint8_t> b) {
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace wtmesh
