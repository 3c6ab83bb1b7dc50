// The tunnel protocol's extension points (docs/protocol.md §2, §3): the registry of stream kinds (who
// opens each, and how a peer's stream is dispatched by its kind) and the registry of REGISTER types
// (which ones this version serves). New kinds and types are added here and in protocol.md together.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace wtmesh::tunnel {

// The two ends of a tunnel session.
enum class Peer { kAgent, kEdge };

// The varint that opens every bidirectional stream (§2).
enum class StreamKind : uint64_t {
  kControl = 0x00,
  kHttpRequest = 0x01,
  kWtSession = 0x02,
  kWtStream = 0x03,
  kTcpStream = 0x04,
  kConnectStream = 0x05,
};

struct StreamKindInfo {
  StreamKind kind;
  std::string_view name;
  Peer opener;         // the only side that may open streams of this kind (unless `either`)
  bool either = false;  // both sides open streams of this kind
};

inline constexpr std::array<StreamKindInfo, 6> kStreamKinds{{
    {StreamKind::kControl, "control", Peer::kAgent},
    {StreamKind::kHttpRequest, "http-request", Peer::kEdge},
    {StreamKind::kWtSession, "wt-session", Peer::kEdge},      // a relayed WebTransport session (§7)
    {StreamKind::kWtStream, "wt-stream", Peer::kEdge, true},  // one stream of a relayed session (§7)
    {StreamKind::kTcpStream, "tcp-stream", Peer::kEdge},      // one TCP connection (§4.2)
    {StreamKind::kConnectStream, "connect-stream", Peer::kAgent},  // one mesh connection (§4.3)
}};

// The registered kind `value` names, or nullptr for a kind this version does not know.
const StreamKindInfo* find_stream_kind(uint64_t value);
std::string_view to_string(StreamKind kind);

// How `self` dispatches a stream its peer opened with kind `value`: the kind when it is registered
// and opened by the peer, else nullopt, and the stream is refused with STOP_SENDING/RESET_STREAM
// kStreamProtocolError without ending the session (so later versions can add kinds).
std::optional<StreamKind> accept_stream_kind(uint64_t value, Peer self);

// Reads the kind varint at the front of a peer's stream, in any fragmentation (keeps at most 8 bytes).
class StreamKindReader {
 public:
  // Takes bytes from the front of `data` until the kind is complete; returns how many it took (0 once
  // the kind is known).
  size_t feed(std::span<const uint8_t> data);
  std::optional<uint64_t> kind() const { return kind_; }

 private:
  std::array<uint8_t, 8> buf_{};
  size_t size_ = 0;
  std::optional<uint64_t> kind_;
};

// The `type` of a REGISTER (§3): what a tunnel carries.
enum class TunnelType { kHttp, kTcp, kUdp };

struct TunnelTypeInfo {
  TunnelType type;
  std::string_view name;  // as on the wire, compared exactly
  bool served;            // false: reserved name, refused until its issue lands
};

inline constexpr std::array<TunnelTypeInfo, 3> kTunnelTypes{{
    {TunnelType::kHttp, "http", true},
    {TunnelType::kTcp, "tcp", true},
    {TunnelType::kUdp, "udp", true},
}};

// The registered type named `name`, or nullptr.
const TunnelTypeInfo* find_tunnel_type(std::string_view name);

}  // namespace wtmesh::tunnel
