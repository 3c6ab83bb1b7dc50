#include "tunnel/tcp_stream.h"

#include <algorithm>

#include "common/varint.h"
#include "tunnel/registry.h"

namespace wtmesh::tunnel {
namespace {

size_t address_bytes(TcpAddress::Family f) {
  switch (f) {
    case TcpAddress::Family::kIpv4:
      return 4;
    case TcpAddress::Family::kIpv6:
      return 16;
    case TcpAddress::Family::kUnknown:
      break;
  }
  return 0;
}

void append_address(std::vector<uint8_t>& out, const TcpAddress& a) {
  append_varint(out, static_cast<uint64_t>(a.family));
  const size_t n = address_bytes(a.family);
  if (n == 0) return;
  out.insert(out.end(), a.bytes.begin(), a.bytes.begin() + static_cast<ptrdiff_t>(n));
  out.push_back(static_cast<uint8_t>(a.port >> 8));
  out.push_back(static_cast<uint8_t>(a.port & 0xff));
}

// Reads one address at `in[pos]`; false when malformed or short (the head is complete, so short is
// malformed too).
bool read_address(std::span<const uint8_t> in, size_t& pos, TcpAddress& a) {
  const auto fam = read_varint(in.subspan(pos));
  if (!fam) return false;
  pos += fam->length;
  if (fam->value != 0 && fam->value != 4 && fam->value != 6) return false;
  a = TcpAddress{};
  a.family = static_cast<TcpAddress::Family>(fam->value);
  const size_t n = address_bytes(a.family);
  if (n == 0) return true;
  if (in.size() - pos < n + 2) return false;
  std::copy_n(in.begin() + static_cast<ptrdiff_t>(pos), n, a.bytes.begin());
  pos += n;
  a.port = static_cast<uint16_t>((in[pos] << 8) | in[pos + 1]);
  pos += 2;
  return true;
}

}  // namespace

std::vector<uint8_t> encode_tcp_stream_head(const TcpStreamHead& head) {
  std::vector<uint8_t> body;
  append_varint(body, head.tunnel_id);
  append_varint(body, 0);  // flags
  append_address(body, head.client);
  append_address(body, head.server);
  std::vector<uint8_t> out;
  append_varint(out, static_cast<uint64_t>(StreamKind::kTcpStream));
  append_varint(out, body.size());
  append_bytes(out, body);
  return out;
}

WireError decode_tcp_head(std::span<const uint8_t> in, TcpStreamHead& head) {
  size_t pos = 0;
  const auto id = read_varint(in);
  if (!id || id->value > UINT32_MAX) return WireError::kMalformed;
  pos += id->length;
  const auto flags = read_varint(in.subspan(pos));
  if (!flags) return WireError::kMalformed;
  pos += flags->length;
  if (flags->value != 0) return WireError::kUnknownFlags;
  TcpStreamHead h;
  h.tunnel_id = static_cast<uint32_t>(id->value);
  if (!read_address(in, pos, h.client) || !read_address(in, pos, h.server)) return WireError::kMalformed;
  if (pos != in.size()) return WireError::kMalformed;
  head = h;
  return WireError::kNone;
}

WireError TcpHeadReader::feed(std::span<const uint8_t> data, size_t& used, TcpStreamHead& head) {
  used = 0;
  if (done_) return WireError::kNone;
  const WireError got = buf_.feed(data, used);
  if (got != WireError::kNone) return got;
  const WireError e = decode_tcp_head(buf_.head(), head);
  buf_.release();
  if (e == WireError::kNone) done_ = true;
  return e;
}

std::vector<uint8_t> proxy_v2_header(const TcpAddress& client, const TcpAddress& server) {
  static constexpr uint8_t kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                             0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  std::vector<uint8_t> out(std::begin(kSignature), std::end(kSignature));
  const bool known = client.family != TcpAddress::Family::kUnknown && client.family == server.family;
  if (!known) {
    out.insert(out.end(), {0x20, 0x00, 0x00, 0x00});  // v2 LOCAL, AF_UNSPEC, no addresses
    return out;
  }
  const bool v4 = client.family == TcpAddress::Family::kIpv4;
  const size_t n = v4 ? 4 : 16;
  const uint16_t len = static_cast<uint16_t>(2 * n + 4);
  out.push_back(0x21);              // v2, PROXY
  out.push_back(v4 ? 0x11 : 0x21);  // TCP over IPv4 / IPv6
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len & 0xff));
  out.insert(out.end(), client.bytes.begin(), client.bytes.begin() + static_cast<ptrdiff_t>(n));
  out.insert(out.end(), server.bytes.begin(), server.bytes.begin() + static_cast<ptrdiff_t>(n));
  for (uint16_t p : {client.port, server.port}) {
    out.push_back(static_cast<uint8_t>(p >> 8));
    out.push_back(static_cast<uint8_t>(p & 0xff));
  }
  return out;
}

}  // namespace wtmesh::tunnel
