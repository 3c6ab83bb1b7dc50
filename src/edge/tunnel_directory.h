// The seam between the public HTTP side of the edge and its tunnel sessions: find the tunnel for a
// Host, open a request stream on the owning agent's session, and move bytes on it with backpressure.
// TunnelService implements it; the HTTP proxy tests fake it.
//
// Finding the tunnel may take a round trip to a route store shared by several edges
// (edge/route_table.h), so route() answers through RouteEvents: at once, before route() returns,
// with the in-process table, or later. A caller that goes away first calls cancel_route().
//
// Streams are named by StreamRef (session serial + stream id), never by pointer: a ref whose session
// is gone is simply ignored (writes take 0 bytes). Events for a stream go to the RequestStreamEvents
// given to open_request() until cancel() or release(), or until a terminal event (on_response_data
// with fin, on_stream_aborted). consume() is accepted even after release(), because the public side
// returns credit only once the bytes reached the client, which may be after the exchange ended.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "wt/session.h"

namespace wtmesh::edge {

class VisitorGate;

struct StreamRef {
  uint64_t session = 0;  // serial of the tunnel session on this edge (0 = none)
  wt::StreamId id = -1;
  // The session uses the feature `request-trailers` (docs/protocol.md §4.1): a request body may go
  // framed.
  bool request_trailers = false;
  bool valid() const { return session != 0 && id >= 0; }
};

// What TunnelDirectory::open_request() answers.
enum class OpenStatus {
  kOpened,
  kBusy,         // the session is at its stream limit: try again shortly
  kGone,         // the session ended
  kClientLimit,  // `client` holds as many of the session's streams as one client may: try again shortly
};

class RequestStreamEvents {
 public:
  virtual ~RequestStreamEvents() = default;
  // Bytes of the agent's answer (response head, then body), in order; `fin` ends it.
  virtual void on_response_data(std::span<const uint8_t> data, bool fin) = 0;
  // The request stream can take more bytes.
  virtual void on_request_writable() = 0;
  // The agent reset the stream (`code`), or the session ended (nullopt). `reason` is for people.
  virtual void on_stream_aborted(std::optional<uint32_t> code, std::string_view reason) = 0;
  // The agent will read no more of the request body (STOP_SENDING).
  virtual void on_request_stopped(std::optional<uint32_t> code) = 0;
  // A directory that answered kOpened before the session took the stream (a tunnel on another worker:
  // edge/worker_directory.h) could not open it after all: kBusy or kClientLimit past its retries, or
  // kGone, as open_request() would have answered. Terminal, like on_stream_aborted (its default).
  virtual void on_open_refused(OpenStatus /*status*/, std::string_view reason) {
    on_stream_aborted(std::nullopt, reason);
  }
};

// The edge's end of one relayed WebTransport session (docs/protocol.md §7, edge/wt_relay.h), as the
// tunnel session sees it: the streams the agent opens for it and its datagrams.
class WtRelayPeer {
 public:
  virtual ~WtRelayPeer() = default;
  // The agent opened a relayed stream (kind 0x03) for this relay, reached with `ref`. Returns where
  // its events go (the stream is then held like a request stream: write/consume/cancel/release by
  // ref), or nullptr to refuse it (reset with kStreamProtocolError).
  virtual RequestStreamEvents* on_agent_stream(const StreamRef& ref, bool uni) = 0;
  virtual void on_relay_datagram(std::span<const uint8_t> payload) = 0;
  // The session refused the relay id add_relay() gave (a multi-worker edge learns that later: the
  // session ended, or holds tunnel::kMaxRelayedSessions). No more events come.
  virtual void on_relay_refused(std::string_view reason) = 0;
};

struct RouteLookup {
  enum class Kind {
    kFound,    // a live tunnel on this edge serves the host
    kUnknown,  // nobody registered it: 404
    kOffline,  // registered recently (or elsewhere) but its agent is not reachable now: 502
  };
  Kind kind = Kind::kUnknown;
  uint64_t session = 0;
  uint32_t tunnel_id = 0;
  std::string pattern;  // the route that matched
  // kFound: the session uses the feature `request-trailers` (StreamRef::request_trailers), known
  // before a stream is opened (a multi-worker edge opens it on another thread: edge/worker_directory.h).
  bool request_trailers = false;
};

class RouteEvents {
 public:
  virtual ~RouteEvents() = default;
  // The answer to TunnelDirectory::route().
  virtual void on_route(const RouteLookup& route) = 0;
};

class TunnelDirectory {
 public:
  virtual ~TunnelDirectory() = default;

  // Finds the tunnel for `host` (normalised: lower-case, no port) and tells `events` exactly once,
  // inline (before route() returns) or later, unless cancel_route() comes first. Returns the ticket
  // of a lookup still under way, or 0 when it was answered inline.
  virtual uint64_t route(std::string_view host, RouteEvents* events) = 0;
  // The same for a route of another type of the route table ("tcp": the mesh's connect). A directory
  // without such routes answers kUnknown.
  virtual uint64_t route_of(std::string_view type, std::string_view host, RouteEvents* events) {
    if (type == "http") return route(host, events);
    events->on_route(RouteLookup{});
    return 0;
  }
  // `events` of a route() still under way hears nothing of it. Unknown or answered tickets: no-op.
  virtual void cancel_route(uint64_t ticket) = 0;
  // The visitor auth of the http tunnel a kFound route names (edge/visitor_gate.h), or null when it
  // asked for none (or the route is not on this edge). Valid until the directory's next event.
  virtual VisitorGate* visitor_gate(const RouteLookup& /*route*/) { return nullptr; }

  using OpenStatus = edge::OpenStatus;
  // `client` names the public client for per-client limits (edge/http_codec.h client_limit_key).
  virtual OpenStatus open_request(const RouteLookup& route, std::string_view client,
                                  RequestStreamEvents* events, StreamRef* out) = 0;
  virtual size_t write(const StreamRef& ref, std::span<const uint8_t> data, bool fin) = 0;
  virtual size_t send_capacity(const StreamRef& ref) = 0;
  virtual void consume(const StreamRef& ref, size_t n) = 0;
  // Abandons the stream: RESET_STREAM + STOP_SENDING with `code`; no more events. Idempotent.
  virtual void cancel(const StreamRef& ref, uint32_t code) = 0;
  // The exchange completed (our FIN sent, theirs received); no more events. Idempotent.
  virtual void release(const StreamRef& ref) = 0;

  // --- relayed WebTransport sessions (docs/protocol.md §7) on the tunnel session a kFound route names ---
  // A relay id (1..tunnel::kMaxRelayId) for `peer`, or 0 when the session is gone or full. A directory
  // in front of the sessions' own thread answers at once and may hear the refusal later
  // (WtRelayPeer::on_relay_refused). remove_relay() before `peer` goes.
  virtual uint64_t add_relay(const RouteLookup& /*route*/, WtRelayPeer* /*peer*/) { return 0; }
  // The same with an id the caller chose (a directory in front of this one picks ids from a block of its
  // own, edge/worker_directory.h); false when the session is gone, full, or already uses the id.
  virtual bool add_relay_as(const RouteLookup& /*route*/, uint64_t /*relay_id*/, WtRelayPeer* /*peer*/) {
    return false;
  }
  virtual void remove_relay(const RouteLookup& /*route*/, uint64_t /*relay_id*/) {}
  // Sends one datagram of the relay to the agent; false when it was dropped (too big, no room, gone).
  virtual bool send_relay_datagram(const RouteLookup& /*route*/, uint64_t /*relay_id*/,
                                   std::span<const uint8_t> /*payload*/) {
    return false;
  }
};

}  // namespace wtmesh::edge
