// The typed control-stream messages of the tunnel protocol (docs/protocol.md §3): one struct per frame
// type, encode() to a complete frame (type varint + length varint + JSON) and decode() from a frame
// the ControlReader produced. Both sides (agent and edge) speak through these; nothing else builds or
// parses control JSON.
//
// Decoding follows v1 exactly: unknown members are ignored; `id` (u32) and `seq` (u64) must be
// present unsigned integers in range, else a typed error; a text member that is absent or not a string
// reads as "" (the receiver's own checks then refuse, e.g. REGISTER of an empty hostname is `invalid`).
// Encoding writes the members v1 writes, in nlohmann-json's (sorted) order, and cuts each text member
// to kMaxControlText bytes (at a UTF-8 boundary; invalid UTF-8 becomes U+FFFD), so every frame is
// within kMaxControlPayload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tunnel/visitor_policy.h"
#include "tunnel/wire.h"

namespace wtmesh::tunnel {

struct Register {  // agent → edge
  uint32_t id = 0;
  std::string type = "http";  // see registry.h: kTunnelTypes
  std::string hostname;
  // `options` (protocol.md §3.1), used by type "tcp": the public port asked for (0 = any from the
  // edge's range; kBadPort = present but not a port number 1..65535) and `private` (by name only).
  static constexpr uint32_t kBadPort = 0x10000;
  uint32_t remote_port = 0;
  bool private_only = false;
  // `visitor` (§3.4, type "http"): visitor auth the edge enforces; absent or empty: none. A member
  // that does not decode leaves `visitor_error` set, which the edge refuses as `invalid`.
  VisitorPolicy visitor;
  std::string visitor_error;
};
struct Registered {  // edge → agent
  uint32_t id = 0;
  std::string hostname;
  std::string url;
};
struct Refused {  // edge → agent
  uint32_t id = 0;
  std::string hostname;
  std::string code;  // refusal::k*
  std::string message;
};
struct Unregister {  // agent → edge
  uint32_t id = 0;
};
struct Ping {  // either way
  uint64_t seq = 0;
};
struct Pong {  // either way, echoing the PING's seq
  uint64_t seq = 0;
};

struct Renew {  // agent → edge (§3.3): a fresh session token minted from the session's credential
  uint64_t seq = 0;
  std::string token;  // sent whole (a token is at most kMaxTokenSize = 8 KiB), never clipped
};
struct Renewed {  // edge → agent: the answer to the RENEW with the same seq
  uint64_t seq = 0;
  uint64_t expires = 0;  // accepted: the session's new expiry (Unix seconds); 0 when refused
  std::string error;     // refused: a sentence; empty when accepted
};

using ControlMessage = std::variant<Register, Registered, Refused, Unregister, Ping, Pong, Renew, Renewed>;

// REFUSED codes (§3).
namespace refusal {
inline constexpr std::string_view kNotCovered = "not_covered";  // the token does not cover the hostname
inline constexpr std::string_view kTaken = "taken";             // another live agent holds it
inline constexpr std::string_view kInvalid =
    "invalid";                                       // not a hostname under the domain, or a type not served
inline constexpr std::string_view kLimit = "limit";  // too many tunnels (session or edge)
inline constexpr std::string_view kDuplicateId = "duplicate_id";
inline constexpr std::string_view kPortTaken = "port_taken";  // tcp: the asked port is held or in use
}  // namespace refusal

// Longest text member an encoder writes (bytes): 3 text members, even fully \u-escaped, stay far
// below kMaxControlPayload.
inline constexpr size_t kMaxControlText = 512;

ControlType type_of(const ControlMessage& message);
// "REGISTER", "PING", ...; "control frame 0x.." for a type v1 does not define.
std::string control_name(uint64_t type);

// Which side may send a frame type (the other side's frames are the receiver's business: the agent
// treats an agent-only frame from the edge as a protocol error, the edge ignores edge-only ones).
enum class ControlSender { kAgent, kEdge, kEither };
ControlSender sender_of(ControlType type);

// A complete frame.
std::vector<uint8_t> encode(const ControlMessage& message);

enum class ControlError {
  kNone,
  kUnknownType,    // a frame type v1 does not define (the ControlReader already skips those)
  kMalformedJson,  // the payload is not JSON (or not UTF-8)
  kNotAnObject,    // JSON, but not an object
  kMissingField,   // a required member is absent
  kWrongType,      // a required member is not an unsigned integer
  kOutOfRange,     // a required member is negative or too large (id over u32)
};
const char* to_string(ControlError e);

// decode()'s answer: the message, or the error and the member at fault.
class ControlDecode {
 public:
  explicit ControlDecode(ControlMessage message) : message_(std::move(message)) {}
  ControlDecode(uint64_t type, ControlError error, std::string_view field = {})
      : type_(type), error_(error), field_(field) {}

  bool ok() const { return message_.has_value(); }
  explicit operator bool() const { return ok(); }
  // Requires ok().
  const ControlMessage& message() const { return *message_; }
  // The message if it is a T, else nullptr (also when !ok()).
  template <typename T>
  const T* get() const& {
    return message_ ? std::get_if<T>(&*message_) : nullptr;
  }
  template <typename T>
  const T* get() const&& = delete;  // would point into a temporary
  ControlError error() const { return error_; }
  const std::string& field() const { return field_; }  // "id", "seq"; empty for payload-level errors
  // One line for logs and close reasons, e.g. `REGISTER: "id" is out of range`.
  std::string describe() const;

 private:
  std::optional<ControlMessage> message_;
  uint64_t type_ = 0;
  ControlError error_ = ControlError::kNone;
  std::string field_;
};

ControlDecode decode(const ControlFrame& frame);

}  // namespace wtmesh::tunnel
