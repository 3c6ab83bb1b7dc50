// The edge's side of the mesh (docs/protocol.md §4.3): reaches the name of each connect stream an
// agent opens (edge/agent_session.h has read its head and checked the token's scope), or of each bidi
// stream a browser opens on /connect/NAME (edge/browser_connect.h), and bridges the stream
// (edge/tcp_bridge.h) onto
//   - an edge route (`wtmesh edge --route NAME=HOST:PORT`): a TCP connection the edge opens itself,
//     answered `connected` once it is established, `unreachable` when it is refused; or
//   - a `tcp` tunnel of that name in the route table (public or private, any agent's session on this
//     edge): a tcp-stream (0x04) on the serving agent's session, answered `connected` at once (a
//     local service that refuses resets the stream, as for a public TCP tunnel).
// Edge routes are looked at first. A name in neither is refused `unknown`; a tunnel whose agent is
// gone (the route table's offline grace, or a route held by no live session here) `offline`; a
// serving session without a stream to spare `limit`.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "edge/connect_broker.h"
#include "edge/tcp_bridge.h"
#include "edge/tunnel_directory.h"
#include "tunnel/connect_stream.h"

namespace wtmesh::edge {

// "NAME=HOST:PORT" (HOST an IP literal, [v6] or "localhost"); NAME without a dot means NAME.DOMAIN.
// nullopt with `error` set to a sentence.
struct EdgeRoute {
  std::string name;  // lower-case NAME.DOMAIN
  boost::asio::ip::tcp::endpoint target;
};
std::optional<EdgeRoute> parse_edge_route(std::string_view text, std::string_view domain, std::string* error);

// The client side of one connect while its name is being reached: an agent's connect stream (answered
// with a connect reply), or a browser's bidi stream (answered with a reset code).
class ConnectClient {
 public:
  virtual ~ConnectClient() = default;
  // The client went away meanwhile: nothing to answer.
  virtual bool gone() const = 0;
  // The name cannot be reached: answers the client its way and lets go of the stream.
  virtual void refuse(tunnel::ConnectStatus status, const std::string& message) = 0;
  // The name was reached: the client's end for the bridge (anything owed first, e.g. the `connected`
  // reply, set on it). Called once.
  virtual std::unique_ptr<BridgeEnd> connected() = 0;
};

class ConnectBridges final : public ConnectBroker {
 public:
  ConnectBridges(boost::asio::io_context& io, TunnelDirectory& directory,
                 std::map<std::string, boost::asio::ip::tcp::endpoint> routes, size_t read_chunk = 64 * 1024);
  ~ConnectBridges() override;
  ConnectBridges(const ConnectBridges&) = delete;
  ConnectBridges& operator=(const ConnectBridges&) = delete;

  // An agent's connect stream.
  RequestStreamEvents* on_connect(const StreamRef& ref, std::string_view name) override;
  // Any client: reaches `name` (lower-case NAME.DOMAIN, scope already checked) and bridges the
  // client onto it, or refuses it; either may happen before this returns.
  void connect(std::unique_ptr<ConnectClient> client, std::string name);

  // `name` is an edge route (--route).
  bool has_route(const std::string& name) const { return routes_.contains(name); }
  size_t bridge_count() const { return bridges_.size(); }
  size_t pending_count() const { return pending_.size(); }

  struct Pending;  // a connect waiting for its route lookup or its socket

 private:
  void on_route(const std::shared_ptr<Pending>& p, const RouteLookup& route);
  void dial(const std::shared_ptr<Pending>& p, const boost::asio::ip::tcp::endpoint& target);
  void refuse(const std::shared_ptr<Pending>& p, tunnel::ConnectStatus status, const std::string& message);
  void bridge(const std::shared_ptr<Pending>& p, std::unique_ptr<BridgeEnd> server);
  void drop_later(const std::shared_ptr<Pending>& p);

  boost::asio::io_context& io_;
  TunnelDirectory& directory_;
  std::map<std::string, boost::asio::ip::tcp::endpoint> routes_;
  size_t read_chunk_;
  std::set<std::shared_ptr<Pending>> pending_;
  uint64_t serial_ = 0;  // of connects, for the per-client key on the serving session
  std::set<std::shared_ptr<TcpBridge>> bridges_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
