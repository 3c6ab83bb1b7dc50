// The WebTransport session API that everything above wt/ uses (tunnel, edge, agent, doctor).
//
// One interface, several transports: HTTP/3 (wt/h3_session.*) and HTTP/2 (wt/h2_session.*, sans-I/O; the
// nghttp2 glue that carries it comes with the fallback issue).
// Nothing here names QUIC, HTTP/3, ngtcp2 or Asio.
//
// Contract (after quiche's web_transport.h):
//  - Streams are named by id; never keep pointers into a session's stream table. Calls with an id
//    the session no longer knows are ignored (writes accept 0 bytes).
//  - Reads are pushed: on_stream_data delivers bytes in order. The receiver returns flow-control
//    credit with consume(id, n) once it has really disposed of them (written them onward), so a slow
//    consumer slows the sender instead of growing a buffer.
//  - Writes are bounded: write() returns how many bytes it took; if fewer than offered,
//    on_stream_writable(id) follows when there is room.
//  - Error codes are WebTransport application codes (32-bit); the HTTP/3 mapping is wt/errors.h.
//  - close() never blocks: if the close capsule cannot be written promptly the CONNECT stream is
//    reset instead (CVE-2026-21435).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wtmesh::wt {

using StreamId = int64_t;

enum class Transport { kHttp3, kHttp2 };

// Header fields as (lower-case name, value) pairs, whatever the transport's own representation.
using HeaderPairs = std::vector<std::pair<std::string, std::string>>;
// The value of the first field named `name` (lower-case), or nullptr.
inline const std::string* find_header(const HeaderPairs& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

// What the session was opened with (the extended CONNECT request).
struct SessionInfo {
  std::string authority;
  std::string path;
  std::string origin;   // empty if none was sent
  HeaderPairs headers;  // all request headers, lower-case names
  Transport transport = Transport::kHttp3;
  std::string peer;  // the client's address, for logs; set by the server's glue ("" if unknown)
  StreamId request_id = -1;  // HTTP/3: the CONNECT stream, which H3Server::answer() names
};

// The server's answer to the session request. Client: what arrived (status 0 until then). Server:
// what was sent.
struct ConnectResponse {
  int status = 0;
  HeaderPairs headers;  // lower-case names, no pseudo-headers
  bool accepted() const { return status >= 200 && status < 300; }
};

class Session;
class SessionHandler;

// Server side: the application's decision on a session request (see the transport's server).
struct Accept {
  // An acceptor that cannot decide yet (its answer takes a round trip: another worker's route, a
  // shared route store) returns later(), and answers with H3Server::answer() (HTTP/3 only: over
  // HTTP/2 it is a 500).
  static constexpr int kLater = 1;
  static Accept later() { return Accept{kLater, nullptr, {}}; }
  int status = 404;                   // 2xx accepts (then `handler` must be set)
  SessionHandler* handler = nullptr;  // not owned; must outlive the session (until on_closed)
  HeaderPairs headers;                // extra response headers, e.g. wt-protocol or an error detail
};
using Acceptor = std::function<Accept(const SessionInfo&)>;

class SessionHandler {
 public:
  virtual ~SessionHandler() = default;

  // The session this handler serves, before any other call on it (server: once the acceptor has
  // accepted it; client: inside connect()). The reference is valid until on_closed returns.
  virtual void on_attached(Session& /*session*/) {}
  // Client: the server answered 2xx. Server: the session was accepted.
  virtual void on_ready() {}
  // Client: the server answered with a final status other than 2xx: the session was refused.
  // on_closed(0, "HTTP <status>") follows. The typed answer is here; nothing needs to be read back
  // out of the close code or reason.
  virtual void on_refused(const ConnectResponse& /*response*/) {}
  // The peer opened a stream (bidi or uni). Data follows via on_stream_data.
  virtual void on_incoming_stream(StreamId id, bool bidi) = 0;
  virtual void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
  // Peer reset its sending side (code: WebTransport code, or nullopt if the H3 code is outside the
  // WebTransport range, e.g. Chromium's H3_CONNECT_ERROR when a session dies).
  virtual void on_stream_reset(StreamId id, std::optional<uint32_t> code) = 0;
  virtual void on_stop_sending(StreamId /*id*/, std::optional<uint32_t> /*code*/) {}
  virtual void on_stream_writable(StreamId /*id*/) {}
  // Both directions of the stream are finished; forget the id.
  virtual void on_stream_closed(StreamId /*id*/) {}
  virtual void on_datagram(std::span<const uint8_t> payload) = 0;
  // Stream credit came back after open_*_stream returned nullopt (the peer raised its limit or
  // streams closed): a good moment to retry.
  virtual void on_streams_available() {}
  // The peer asked us to wind down (DRAIN capsule / GOAWAY).
  virtual void on_drain() {}
  // The session is over. No calls follow. `code`/`reason` come from the peer's close capsule, or
  // are 0/"" for a clean FIN, or describe a local failure.
  virtual void on_closed(uint32_t code, std::string_view reason) = 0;
};

class Session {
 public:
  virtual ~Session() = default;

  virtual void set_handler(SessionHandler* handler) = 0;
  virtual const SessionInfo& info() const = 0;
  virtual const ConnectResponse& response() const = 0;

  // nullopt when the stream limit (session's or QUIC's) is reached.
  virtual std::optional<StreamId> open_bidi_stream() = 0;
  virtual std::optional<StreamId> open_uni_stream() = 0;
  virtual size_t write(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
  virtual size_t send_capacity(StreamId id) const = 0;
  virtual void consume(StreamId id, size_t n) = 0;
  virtual void reset_stream(StreamId id, uint32_t code) = 0;
  virtual void stop_sending(StreamId id, uint32_t code) = 0;

  // Largest datagram payload that can be sent now (0: datagrams unavailable).
  virtual size_t max_datagram_size() const = 0;
  virtual bool send_datagram(std::span<const uint8_t> payload) = 0;
  // The connection's smoothed round-trip time; 0 when the transport does not tell.
  virtual std::chrono::nanoseconds smoothed_rtt() const { return std::chrono::nanoseconds(0); }

  // Whether everything written on the session's streams so far has reached the peer, so that
  // close() now cannot cut it off: HTTP/3, every byte acknowledged (a FIN counts with the bytes
  // before it); HTTP/2, nothing left in the session's own buffer (the HTTP/2 layer below sends it,
  // in order, before the close capsule).
  virtual bool delivered() const = 0;
  // Sends the close capsule (message truncated to 1024 bytes on a UTF-8 boundary) and FIN. Streams
  // still open are reset: what they had not delivered is lost (see delivered()).
  virtual void close(uint32_t code, std::string_view reason) = 0;
  // Sends DRAIN_WEBTRANSPORT_SESSION.
  virtual void drain() = 0;
};

}  // namespace wtmesh::wt
