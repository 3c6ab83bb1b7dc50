// The mesh's connect streams on the wire (docs/protocol.md §4.3): an agent that runs `wtmesh connect
// NAME` opens one `connect-stream` (kind 0x05) per local TCP connection, naming the service it wants;
// the edge answers with a reply before any byte of the service flows. Sans-I/O: bytes in, values out.
//
//   connect_stream = kind:varint(0x05)  head_length:varint  connect_head  bytes...   (agent → edge)
//   connect_head   = flags:varint  name:string  [flow_id:varint]   (flow_id iff flag bit 0: udp)
//   connect_reply  = status:varint  message:string  bytes...                          (edge → agent)
//
// Flag bit 0 (`udp`, `wtmesh connect --udp`): the stream asks for one UDP flow to the name's `udp`
// tunnel; `flow_id` is the agent's (odd, from 2^30: tunnel/udp_flow.h) and names the flow's datagrams.
// After a `connected` reply the stream carries no bytes; its FIN (either way) ends the flow.
//
// head_length is 1..kMaxConnectHeadLength and the head's fields fill it exactly; name is 1..253
// bytes; the reply's message is at most kMaxConnectMessage bytes. Status 0 is "connected": the
// service's bytes follow. Any other status is a refusal: the edge sends FIN after the reply and the
// stream reaches nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/head_buffer.h"
#include "tunnel/wire.h"

namespace wtmesh::tunnel {

inline constexpr size_t kMaxConnectHeadLength = 300;
inline constexpr size_t kMaxConnectName = 253;
inline constexpr size_t kMaxConnectMessage = 512;

struct ConnectHead {
  std::string name;  // the service asked for, as the agent wrote it
  // Set: a UDP connect (flag bit 0) for this agent-opened flow id (odd, >= 2^30).
  std::optional<uint64_t> udp_flow;
  bool operator==(const ConnectHead&) const = default;
};

// The reply's status (docs/protocol.md §4.3); values past kInvalid read as refusals too.
enum class ConnectStatus : uint64_t {
  kConnected = 0,
  kNotInScope = 1,   // the token's `connect` claim does not cover the name
  kUnknown = 2,      // no tunnel or edge route has the name
  kOffline = 3,      // the name's tunnel is registered (or was, recently) but its agent is gone
  kLimit = 4,        // this session holds as many connect streams as it may, or the target's session
                     // has no stream to spare
  kUnreachable = 5,  // the edge route's address did not accept the connection
  kInvalid = 6,      // not a name
};
// "connected", "not_in_scope", ...; "refused" for a status this version does not know.
std::string_view to_string(ConnectStatus s);

struct ConnectReply {
  uint64_t status = 0;
  std::string message;
  bool connected() const { return status == static_cast<uint64_t>(ConnectStatus::kConnected); }
  bool operator==(const ConnectReply&) const = default;
};

inline constexpr uint64_t kConnectFlagUdp = 1;

// kind 0x05 + head_length + head: what the agent writes first. Throws std::invalid_argument for a
// name that is empty or over kMaxConnectName, or a udp_flow that is no agent-opened UDP flow id.
std::vector<uint8_t> encode_connect_stream_head(const ConnectHead& head);
std::vector<uint8_t> encode_connect_reply(ConnectStatus status, std::string_view message);

// Decodes a complete connect_head (without kind and length). kUnknownFlags for a flag other than bit
// 0; kMalformed for a udp flow id that is not odd and in 2^30..2^62-1.
WireError decode_connect_head(std::span<const uint8_t> in, ConnectHead& head);

// Reads head_length + head after the kind, in any fragmentation; holds at most
// kMaxConnectHeadLength + 8 bytes.
class ConnectHeadReader {
 public:
  // kNone once the head is complete (`used` says how many bytes of `data` were its), kNeedMore, or
  // an error.
  WireError feed(std::span<const uint8_t> data, size_t& used, ConnectHead& head);

 private:
  HeadBuffer buf_{kMaxConnectHeadLength};
  bool done_ = false;
};

// Reads the edge's reply at the front of a connect stream, in any fragmentation; holds at most
// kMaxConnectMessage + 16 bytes.
class ConnectReplyReader {
 public:
  WireError feed(std::span<const uint8_t> data, size_t& used, ConnectReply& reply);
  bool done() const { return done_; }

 private:
  std::vector<uint8_t> buf_;
  bool done_ = false;
};

}  // namespace wtmesh::tunnel
