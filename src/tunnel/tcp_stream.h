// TCP tunnels on the wire (docs/protocol.md §4.2): the head of a `tcp-stream` (kind 0x04), which the
// edge opens for every TCP connection it accepts on a tunnel's port, and the PROXY protocol v2 header
// the agent may put in front of the bytes toward its local service. Sans-I/O: bytes in, values out.
//
//   tcp_stream = kind:varint(0x04)  head_length:varint  tcp_head  bytes...
//   tcp_head   = tunnel_id:varint  flags:varint(0)  client:address  server:address
//   address    = family:varint  [addr:4|16 bytes  port:2 bytes big-endian]
//                family 0 = unknown (nothing follows), 4 = IPv4, 6 = IPv6
//
// head_length is at most kMaxTcpHeadLength; the head must be consumed exactly by its fields.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "tunnel/head_buffer.h"
#include "tunnel/wire.h"

namespace wtmesh::tunnel {

inline constexpr size_t kMaxTcpHeadLength = 128;

// An IP endpoint as the wire carries it.
struct TcpAddress {
  enum class Family : uint8_t { kUnknown = 0, kIpv4 = 4, kIpv6 = 6 };
  Family family = Family::kUnknown;
  std::array<uint8_t, 16> bytes{};  // the first 4 for IPv4, network order
  uint16_t port = 0;

  bool operator==(const TcpAddress&) const = default;
};

struct TcpStreamHead {
  uint32_t tunnel_id = 0;
  TcpAddress client;  // who connected to the edge's port (the PROXY header's source)
  TcpAddress server;  // the edge address it connected to (the PROXY header's destination)

  bool operator==(const TcpStreamHead&) const = default;
};

// kind 0x04 + head_length + head: what the edge writes first on a tcp-stream.
std::vector<uint8_t> encode_tcp_stream_head(const TcpStreamHead& head);

// Reads head_length + head after the kind (which StreamKindReader took), in any fragmentation.
// Holds at most kMaxTcpHeadLength + 8 bytes.
class TcpHeadReader {
 public:
  // Takes bytes from the front of `data`; kNone once the head is complete (then `used` says how many
  // bytes of `data` belonged to it: the rest is the stream's payload), kNeedMore, or an error.
  WireError feed(std::span<const uint8_t> data, size_t& used, TcpStreamHead& head);
  size_t buffered_bytes() const { return buf_.buffered_bytes(); }

 private:
  HeadBuffer buf_{kMaxTcpHeadLength};
  bool done_ = false;
};

// Decodes a complete tcp_head (without kind and length).
WireError decode_tcp_head(std::span<const uint8_t> in, TcpStreamHead& head);

// The PROXY protocol v2 header (binary, https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
// §2.2): PROXY over TCP4/TCP6 from client to server, or LOCAL when an address is unknown or the two
// families differ.
std::vector<uint8_t> proxy_v2_header(const TcpAddress& client, const TcpAddress& server);

}  // namespace wtmesh::tunnel
