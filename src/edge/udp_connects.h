// UDP flows toward a name for clients that are not socket addresses (docs/protocol.md §4.3, §4.4):
// `wtmesh connect NAME --udp` (one flow per local client address, edge/agent_udp_connects.h) and
// browsers at /connect/NAME (one flow per WebTransport session's datagrams). The caller has checked
// its client may reach the name (a token's `connect` scope). UdpConnects then reaches, in this order:
//   - an edge UDP route (`wtmesh edge --udp-route NAME=HOST:PORT`): a UDP socket of the edge's own per
//     flow (edge/udp_route_flow.h), with the route's flow cap and idle expiry; or
//   - the name's `udp` tunnel in the route table (private or public, any agent session on this edge):
//     a flow of that tunnel for the client (UdpTunnels::open_client_flow: an even flow id on the serving
//     agent's session, the tunnel's flow cap, idle expiry and drop counters).
//
//   UdpConnects::Handle h = connects.open("dns.localhost", &events);   // answer: events.on_udp_open
//   connects.send(h, payload);            // one packet to the service: never queued, never fragmented
//   events.on_udp_packet(answer);         // each packet the service sends back
//   events.on_udp_end(why);               // the flow ended (idle, tunnel gone); or connects.close(h)
//
// The answer to open() never comes inside open() (it is posted, or waits for a shared route table),
// so the caller always holds the handle first. Refusals are ConnectStatus values with a sentence:
// `unknown` (no udp route or tunnel has the name), `offline` (its agent is gone), `limit` (the tunnel
// or route is at its flow cap), `unreachable` (the edge could not open a socket for a route). Nothing is
// queued: send() before `connected` or after the end is kNotOpen.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "edge/tunnel_directory.h"
#include "edge/udp_tunnels.h"
#include "tunnel/connect_stream.h"
#include "tunnel/udp_flow.h"

namespace wtmesh::edge {

// What a client of UdpConnects hears about its flow. Not owned; it must outlive its flow or close() it.
class UdpConnectEvents {
 public:
  virtual ~UdpConnectEvents() = default;
  // The answer to open(), exactly once: kConnected (send() works from now on), or a refusal with a
  // sentence for people (then nothing more is heard and the handle is gone).
  virtual void on_udp_open(tunnel::ConnectStatus status, std::string_view message) = 0;
  // A packet the service sent back (payload valid during the call).
  virtual void on_udp_packet(std::span<const uint8_t> payload) = 0;
  // The flow ended (idle for the tunnel's idle timeout, the tunnel unregistered, its agent gone): no
  // more events, and the handle is gone. Not called after close().
  virtual void on_udp_end(std::string_view why) = 0;
};

// The edge's own UDP routes (--udp-route): name (lower-case NAME.DOMAIN) -> address, and the limits of
// each route's flows (the same options as a UDP tunnel's: --udp-max-flows, the idle timeout).
struct UdpRoutes {
  std::map<std::string, boost::asio::ip::udp::endpoint> targets;
  tunnel::UdpFlowOptions flows;
};

class UdpConnects {
 public:
  using Handle = uint64_t;  // never 0
  // `tunnels` null: an edge without UDP tunnels; names that are not routes are refused `unknown`.
  // On a multi-worker edge `directory` and `tunnels` are the worker's directory (a tunnel on another
  // worker is reached through it).
  UdpConnects(boost::asio::io_context& io, TunnelDirectory& directory, UdpClientFlows* tunnels,
              UdpRoutes routes = {});
  ~UdpConnects();
  UdpConnects(const UdpConnects&) = delete;
  UdpConnects& operator=(const UdpConnects&) = delete;

  // Opens a flow toward `name` (lower-case NAME.DOMAIN) for `events`; the answer comes later.
  Handle open(std::string_view name, UdpConnectEvents* events);
  enum class Send {
    kSent,
    kTooBig,   // larger than the serving session's current max datagram size: dropped, counted (too_big)
    kNoRoom,   // no room in the QUIC send path now: dropped, counted (queue_full)
    kNotOpen,  // not connected yet, refused, ended or closed: dropped, not counted
  };
  Send send(Handle h, std::span<const uint8_t> payload);
  // The largest payload send() takes now (0 when not open).
  size_t payload_limit(Handle h) const;
  // Ends the flow (or the open still under way); no more events. Unknown handles: no-op.
  void close(Handle h);

  size_t open_count() const { return flows_.size(); }
  // `name` is an edge UDP route (--udp-route), and how many flows it has now.
  bool has_route(const std::string& name) const { return routes_.targets.contains(name); }
  size_t route_flow_count(const std::string& name) const;
  size_t route_flow_count() const;                             // all routes
  uint64_t route_refusals() const { return route_refusals_; }  // at a route's cap, or no socket
  // Expires when this object is destroyed (for holders of handles that may outlive it).
  std::weak_ptr<const int> lifetime() const { return alive_; }  // flows connected or being opened
  // Drops on the way back to the clients, which the callers count here (their client's own limits:
  // an answer too big for a browser's or an agent's session, no room there, a datagram of a flow they
  // do not know); the way to the service is counted per tunnel by UdpTunnels. Logged when they change
  // (at most once a second) and when this object goes.
  void count_client_drop(uint64_t tunnel::UdpDropCounters::*which);
  const tunnel::UdpDropCounters& client_drops() const { return client_drops_; }

  struct Flow;

 private:
  void on_route(const std::shared_ptr<Flow>& f, const RouteLookup& route);
  // The tunnel's answer to the flow's open (at once, or later: UdpClientFlows::ClientOpen::kLater).
  void on_opened(const std::shared_ptr<Flow>& f, UdpClientFlows::ClientOpen result);
  void open_route(const std::shared_ptr<Flow>& f, const boost::asio::ip::udp::endpoint& target);
  void release(Flow& f, bool close_tunnel_flow);
  void refuse(const std::shared_ptr<Flow>& f, tunnel::ConnectStatus status, const std::string& message);
  void ended(Handle h, std::string_view why);

  boost::asio::io_context& io_;
  TunnelDirectory& directory_;
  UdpClientFlows* tunnels_;
  UdpRoutes routes_;
  std::map<std::string, size_t, std::less<>> route_flows_;  // per route with flows: how many
  std::vector<uint8_t> route_buffer_;                       // answers of every route flow, one at a time
  uint64_t route_refusals_ = 0;
  std::map<Handle, std::shared_ptr<Flow>> flows_;
  Handle last_ = 0;
  tunnel::UdpDropCounters client_drops_;
  uint64_t logged_drops_ = 0;
  std::optional<SteadyTime> logged_at_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
