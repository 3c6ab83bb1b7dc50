// Everything the edge keeps for one QUIC connection, owned by that connection: agents' tunnel
// sessions and /echo as WebTransport (wt::H3Server), a public client's HTTP/3 requests as exchanges
// (H3Requests). One QUIC port serves both; what a connection carries tells them apart.
//
// EdgeServer makes one per connection (EdgeServer::on_connection) and keeps a set of them for the
// drain; each removes itself from that set when its connection goes.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "edge/edge_server.h"
#include "edge/h3_requests.h"
#include "h3/connection.h"
#include "quic/connection.h"
#include "wt/h3_server.h"

namespace wtmesh::edge {

class BrowserSession;
class EdgeWtRelay;

class EdgeQuicApp final : public quic::Connection::AppState {
 public:
  EdgeQuicApp(boost::asio::io_context& io, quic::Connection& quic, const EdgeOptions& options,
              TunnelService& tunnels, TunnelDirectory& directory, BrowserConnect& browser,
              std::function<void(const RequestLog&)> count, std::set<EdgeQuicApp*>& registry);
  ~EdgeQuicApp() override;
  EdgeQuicApp(const EdgeQuicApp&) = delete;
  EdgeQuicApp& operator=(const EdgeQuicApp&) = delete;

  // Drives the WebTransport layer's and the requests' deadlines; re-armed after each firing, and
  // sooner when a request's deadline moved up (the wake hook).
  void arm_tick();
  // The drain's handoff (DrainPlan): a connection carrying WebTransport sessions (an agent's) gets
  // GOAWAY after the last stream it opened: no new session on it, its sessions' streams go on.
  void drain_sessions();
  // The drain's public step: GOAWAY to everyone (a public HTTP/3 client's requests under way finish,
  // later ones are refused with H3_REQUEST_REJECTED and may be retried elsewhere).
  void drain_requests();

 private:
  static H3RequestsConfig requests_config(const quic::Connection& quic, const EdgeOptions& options);
  // Session requests refused for their credentials (401, 429) count against the connection: past
  // TunnelServiceConfig::max_auth_failures_per_connection it is closed, so one connection cannot
  // make the edge verify signatures without end (issue 14 6c; the per-address bucket is the
  // tunnel service's).
  wt::Accept accept(const wt::SessionInfo& request);
  // The bookkeeping of an answer, now or later (the auth failures above).
  wt::Accept counted(wt::Accept a);
  wt::Accept route_session(const wt::SessionInfo& request);
  // A session to a tunnel hostname is relayed to its agent (docs/protocol.md §7); nullopt when the
  // host is no tunnel's (the edge's own services answer). When the route's answer takes a round trip
  // (the tunnel is held by another worker, edge/worker_directory.h) the answer is put off
  // (wt::Accept::later()) and given by on_relay_route().
  std::optional<wt::Accept> relay(const wt::SessionInfo& info);
  std::optional<wt::Accept> relay_to(const RouteLookup& route, const wt::SessionInfo& info);
  // The edge's own WebTransport services (/connect, /echo), for a host no tunnel serves.
  wt::Accept own_service(const wt::SessionInfo& info);
  struct PendingRelay;
  void on_relay_route(PendingRelay* pending, const RouteLookup& route);
  // A connection that completed its handshake but opened no WebTransport session and sent no
  // request within EdgeOptions::session_deadline is closed (H3_NO_ERROR, "no session opened"): a
  // client may not hold one of the endpoint's connection slots for nothing (issue 14 6b). The clock
  // starts at the first tick that sees the handshake done (at most a second late). False once closed.
  bool check_session_deadline(std::chrono::steady_clock::time_point now);

  // Declaration order is destruction order in reverse: the server (which may still tell handlers
  // their sessions closed) goes before the echo handlers and the requests, and h3 last.
  std::set<EdgeQuicApp*>& registry_;  // the edge's list of live connections (drain)
  bool sessions_accepted_ = false;
  quic::Connection& quic_;
  TunnelService& tunnels_;
  TunnelDirectory& directory_;
  BrowserConnect& browser_;
  const bool echo_enabled_;                           // --echo
  const std::chrono::milliseconds session_deadline_;  // --session-deadline
  bool opened_ = false;  // a session or request arrived: the deadline no longer applies
  std::optional<std::chrono::steady_clock::time_point> established_at_;  // handshake seen done
  size_t auth_failures_ = 0;                                             // 401/429 answers on this connection
  bool shed_ = false;                                                    // closed for them
  h3::Connection h3_;
  std::vector<std::unique_ptr<EchoSession>> echo_;
  std::vector<std::unique_ptr<BrowserSession>> browsers_;
  std::vector<std::unique_ptr<EdgeWtRelay>> relays_;
  std::vector<std::unique_ptr<PendingRelay>>
      pending_relays_;  // at most wt max_sessions (H3Server counts them)
  H3Requests requests_;
  wt::H3Server server_;
  boost::asio::steady_timer tick_;
  std::optional<std::chrono::steady_clock::time_point> armed_at_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
