// Wire formats of the tunnel protocol (docs/protocol.md): control-stream frames, the compact
// request/response heads that open each request stream, and datagram framing. Sans-I/O and bounded:
// readers take bytes in any fragmentation and report either a value, "need more", or a protocol error.
// Stream kinds and REGISTER types are in registry.h, the control messages themselves in control.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tunnel/registry.h"

namespace wtmesh::tunnel {

inline constexpr std::string_view kSessionPath = "/ingress-mesh";
inline constexpr std::string_view kProtocolHeader = "wtmesh-protocol";
inline constexpr std::string_view kErrorHeader = "wtmesh-error";
inline constexpr int kProtocolVersion = 1;
// Session features (§4.1): the agent lists the ones it speaks in `wtmesh-features` on its CONNECT, the
// edge answers with the ones both use. `trailers`: interim (1xx) heads and framed response bodies
// that end with a trailer section; `request-trailers`: framed request bodies, the same way.
inline constexpr std::string_view kFeaturesHeader = "wtmesh-features";
// The agent process's instance id on its CONNECT (§3.5): 16 to 64 of [A-Za-z0-9_-], random per
// process. A REGISTER of a name held on this edge by another live session of the same token subject
// and the same instance moves the name to the new session (a handover) instead of `taken`.
inline constexpr std::string_view kInstanceHeader = "wtmesh-agent-instance";
bool valid_instance_id(std::string_view id);
inline constexpr std::string_view kFeatureTrailers = "trailers";
inline constexpr std::string_view kFeatureRequestTrailers = "request-trailers";
// True when the comma-separated `list` names `feature` (case-sensitive, spaces around items ignored).
bool has_feature(std::string_view list, std::string_view feature);

// Session close codes (§1) and stream error codes (§4).
enum SessionCloseCode : uint32_t {
  kCloseNormal = 0,
  kCloseProtocolError = 1,
  kCloseHeartbeatTimeout = 2,
  kCloseTokenExpired = 3,
  kCloseDraining = 4,
  kCloseCredentialRevoked = 5,
};
enum StreamErrorCode : uint32_t {
  kStreamUpstreamFailed = 1,
  kStreamProtocolError = 2,
  kStreamCancelled = 3,
};

enum class ControlType : uint64_t {
  kRegister = 0x01,
  kRegistered = 0x02,
  kRefused = 0x03,
  kUnregister = 0x04,
  kPing = 0x05,
  kPong = 0x06,
  kRenew = 0x07,    // agent→edge: a fresh session token for the live session (§3.3)
  kRenewed = 0x08,  // edge→agent: the answer to a RENEW
};

inline constexpr size_t kMaxControlPayload = 16 * 1024;
inline constexpr size_t kMaxHeadLength = 64 * 1024;
inline constexpr size_t kMaxHeaderCount = 256;
inline constexpr size_t kMaxTrailerLength = 64 * 1024;  // a trailer section (§4.1)
inline constexpr size_t kMaxInterimHeads = 8;           // 1xx heads before one final head (§4.1)

enum class WireError {
  kNone,
  kNeedMore,      // not an error: feed more bytes
  kTooLarge,      // a length over its cap
  kMalformed,     // bytes that do not decode
  kUnknownFlags,  // flag bits this version does not define
};
const char* to_string(WireError e);

// --- control stream -------------------------------------------------------------------------

struct ControlFrame {
  uint64_t type = 0;
  std::string payload;  // JSON text
};

std::vector<uint8_t> encode_control_frame(ControlType type, std::string_view json);

// Incremental reader. Frames of unknown type are skipped without being buffered.
class ControlReader {
 public:
  // Consumes all of `data`, appending complete frames of known types to `out`. Returns kNone or a
  // protocol error (after which the reader stays failed).
  WireError feed(std::span<const uint8_t> data, std::vector<ControlFrame>& out);
  size_t buffered_bytes() const { return header_.size() + frame_.payload.size(); }

 private:
  enum class State { kHeader, kPayload, kSkip };
  State state_ = State::kHeader;
  std::vector<uint8_t> header_;  // partial type+length varints (at most 16 bytes)
  ControlFrame frame_;
  uint64_t remaining_ = 0;
  WireError error_ = WireError::kNone;
};

// --- request streams ----------------------------------------------------------------------------

using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

struct RequestHead {
  uint32_t tunnel_id = 0;
  std::string method;
  std::string target;
  std::string authority;
  bool has_body = false;
  std::optional<uint64_t> content_length;
  // Flag bit 2 (feature `trailers`, §4.1): the request body is framed in chunks and ends with a trailer
  // section, as a framed response body; content_length, when present, counts the chunks' data.
  bool framed = false;
  HeaderPairs headers;
};

struct ResponseHead {
  int status = 200;
  bool has_body = false;
  std::optional<uint64_t> content_length;
  // Flag bit 2 (feature `trailers`, §4.1): the body is framed in chunks and ends with a trailer section
  // (FramedBodyReader); content_length, when present, counts the chunks' data.
  bool framed = false;
  HeaderPairs headers;
};

// An interim response (§4.1): 1xx other than 101 (which is the final head of an upgrade).
inline bool is_interim(int status) { return status >= 100 && status < 200 && status != 101; }

// The full opening of a request stream: kind + head_length + head, in one allocation of its exact
// size (request_open_size).
std::vector<uint8_t> encode_request_open(const RequestHead& head);
size_t request_open_size(const RequestHead& head);
// head_length + head (the agent's answer), likewise.
std::vector<uint8_t> encode_response_head(const ResponseHead& head);
size_t response_head_size(const ResponseHead& head);

// Reads `varint head_length` + head from the front of a stream's bytes, buffering at most
// kMaxHeadLength. After a head is returned, body() yields the bytes that came after it.
template <typename Head>
class HeadReader {
 public:
  HeadReader() = default;
  // `kind_read`: the caller already took the stream kind (StreamKindReader) and feeds what follows it.
  // Otherwise a RequestHead reader expects kind 0x01 first and calls any other kind malformed.
  explicit HeadReader(bool kind_read) : kind_read_(kind_read) {}

  // Returns kNone when `head` was filled, kNeedMore, or an error.
  WireError feed(std::span<const uint8_t> data, Head& head);
  // Bytes after the head that arrived in the same feed() calls.
  std::vector<uint8_t> take_body() { return std::exchange(rest_, {}); }
  size_t buffered_bytes() const { return buf_.size(); }

 private:
  std::vector<uint8_t> buf_;
  std::vector<uint8_t> rest_;
  bool done_ = false;
  bool kind_read_ = false;
};

// The header list of a head (`header_count (name value)*`), also the body of a trailer section (§4.1).
void append_field_section(std::vector<uint8_t>& out, const HeaderPairs& fields);
size_t field_section_size(const HeaderPairs& fields);
WireError decode_field_section(std::span<const uint8_t> in, HeaderPairs& out);

// Decoders on a complete head (exposed for tests and fuzzing).
WireError decode_request_head(std::span<const uint8_t> head, RequestHead& out);
WireError decode_response_head(std::span<const uint8_t> head, ResponseHead& out);

// --- datagrams -----------------------------------------------------------------------------------

// Every WebTransport datagram of a tunnel session is `flow_id:varint payload` (§2.1). Flow ids: 0
// telemetry, 1..2^30-1 relayed WebTransport sessions (§7), from 2^30 UDP flows (tunnel/udp_flow.h);
// a receiver drops datagrams of flows it does not know.
struct Datagram {
  uint64_t flow_id = 0;
  std::span<const uint8_t> payload;  // points into the decoded bytes
};

// Throws std::invalid_argument for a flow id over kVarintMax (2^62 - 1).
std::vector<uint8_t> encode_datagram(uint64_t flow_id, std::span<const uint8_t> payload);
// nullopt when the flow id is truncated (an empty datagram included): the datagram is dropped.
std::optional<Datagram> decode_datagram(std::span<const uint8_t> datagram);

extern template class HeadReader<RequestHead>;
extern template class HeadReader<ResponseHead>;

}  // namespace wtmesh::tunnel
