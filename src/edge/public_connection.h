// One public client connection on the edge, whatever HTTP version it speaks, as the Asio glue
// (edge/public_listener.h) sees it: plaintext bytes from the client in, bytes for the client out,
// deadlines. Two codecs implement it, sans-I/O:
//   - edge/http1_connection.h: HTTP/1.1 (and 1.0), one exchange at a time;
//   - edge/h2_connection.h: HTTP/2 (ALPN "h2" on TLS, prior knowledge on the plain listener), one
//     exchange per stream.
// Each request becomes a version-neutral PublicExchange (edge/public_exchange.h); the codec only
// parses, serialises and enforces its own connection-level limits.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/time.h"
#include "edge/metrics.h"

namespace wtmesh::edge {

// One line of the request log.
struct RequestLog {
  std::string method, host, target;
  int status = 0;      // sent to the client; 499 when the client left before a response head
  uint64_t bytes = 0;  // response body bytes handed to the client
  std::chrono::microseconds duration{0};
  std::string note;     // why the edge answered itself, or how the exchange ended early; "" if normal
  std::string version;  // "HTTP/1.1", "HTTP/2", ...
};

// One exchange's line; an empty method, host or target is written "-".
RequestLog make_request_log(std::string_view method, std::string_view host, std::string_view target,
                            int status, uint64_t bytes, std::chrono::steady_clock::duration took,
                            std::string note, std::string version);

// Writes `l` to the edge's log as one line ("http PEER METHOD HOSTTARGET STATUS ...", with " h2" or
// " h3" for those versions).
void log_request(std::string_view peer, const RequestLog& l);

struct ConnectionHooks {
  // Output or state changed during a tunnel event (not during a call from the glue).
  std::function<void()> wake;
  std::function<void(const RequestLog&)> log;
};

class PublicConnection {
 public:
  virtual ~PublicConnection() = default;

  // Takes as much of `data` as the input buffer has room for and processes it; returns the count.
  virtual size_t on_client_bytes(std::span<const uint8_t> data) = 0;
  // The client closed its side or the socket failed: every exchange in progress is cancelled.
  virtual void on_client_eof() = 0;
  // The glue runs this before the pump that hooks.wake asked for: work that could not run where the
  // wake came from (e.g. inside a WebTransport session's own call) runs here.
  virtual void on_wake() {}
  // The glue gives up on the connection (idle timeout, shutdown): same as on_client_eof().
  virtual void abort(std::string_view why) = 0;
  // The next bytes for the client: the first contiguous run of the output (call again after
  // on_client_written() for the rest). Empty when there is nothing to send.
  virtual std::span<const uint8_t> client_output() const = 0;
  virtual void on_client_written(size_t n) = 0;
  // Close the connection once client_output() is empty.
  virtual bool finished() const = 0;
  // The connection carries an upgraded protocol (WebSocket): the glue's idle timeout is
  // PublicLimits::websocket_idle_timeout instead of idle_timeout.
  virtual bool upgraded() const { return false; }
  // The edge drains (SIGTERM, docs/protocol.md §3.6): no new request is taken on this connection, the
  // ones under way finish, then it closes. HTTP/1.1: `Connection: close` on the response under way (an
  // idle keep-alive connection closes at once); HTTP/2: GOAWAY with the last stream id taken.
  virtual void drain() {}
  // Work a drain waits for: an exchange under way or response bytes not yet handed to the client
  // (a WebTransport session of an agent is not: the edge ends those itself).
  virtual bool busy() const { return !finished(); }

  virtual std::optional<SteadyTime> next_deadline() const = 0;
  virtual void on_tick(SteadyTime now) = 0;

  // Why the connection ended itself to protect the edge (a flood, a protocol violation), for
  // wtmesh_public_connections_shed_total; nullopt while it runs or after an ordinary end.
  virtual std::optional<PublicShed> shed() const { return std::nullopt; }

  // Bytes held for the client / from the client (limits, tests).
  virtual size_t buffered_output() const = 0;
  virtual size_t buffered_input() const = 0;
};

}  // namespace wtmesh::edge
