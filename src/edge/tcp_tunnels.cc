#include "edge/tcp_tunnels.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <set>
#include <vector>

#include "edge/tcp_bridge.h"
#include "tunnel/control.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using asio::ip::tcp;

tunnel::TcpAddress to_tcp_address(const tcp::endpoint& ep) {
  tunnel::TcpAddress a;
  asio::ip::address addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  if (addr.is_v4()) {
    a.family = tunnel::TcpAddress::Family::kIpv4;
    const auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), a.bytes.begin());
  } else {
    a.family = tunnel::TcpAddress::Family::kIpv6;
    const auto b = addr.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), a.bytes.begin());
  }
  a.port = ep.port();
  return a;
}

struct TcpTunnels::Listener {
  Listener(asio::io_context& io, TcpPublishRequest r) : acceptor(io), request(std::move(r)) {}
  tcp::acceptor acceptor;
  TcpPublishRequest request;
  uint16_t port = 0;  // 0: private (no acceptor)
  bool closed = false;
  std::set<std::shared_ptr<TcpBridge>> relays;  // client socket ↔ the agent's tcp-stream
};

TcpTunnels::TcpTunnels(asio::io_context& io, TunnelDirectory& directory, TcpTunnelOptions options)
    : io_(io),
      directory_(directory),
      options_(std::move(options)),
      ports_(options_.ports ? options_.ports
                            : std::make_shared<PortPool>(options_.port_min, options_.port_max, "TCP")) {
  options_.public_host = url_host(options_.public_host, options_.listen_address.to_string());
}

TcpTunnels::~TcpTunnels() {
  auto tunnels = std::move(tunnels_);
  for (auto& [key, l] : tunnels) {
    boost::system::error_code ec;
    l->acceptor.close(ec);
    for (const auto& r : std::set(l->relays)) r->abort();
  }
}

size_t TcpTunnels::connection_count() const {
  size_t n = 0;
  for (const auto& [key, l] : tunnels_) n += l->relays.size();
  return n;
}

bool TcpTunnels::bind(Listener& l, uint16_t port, std::string* error) {
  boost::system::error_code ec;
  const tcp::endpoint ep(options_.listen_address, port);
  l.acceptor.open(ep.protocol(), ec);
  if (!ec) l.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) l.acceptor.bind(ep, ec);
  if (!ec) l.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    l.acceptor.close(ignored);
    *error = ec.message();
    return false;
  }
  l.port = port;
  return true;
}

TcpPublishResult TcpTunnels::publish(const TcpPublishRequest& request) {
  TcpPublishResult r;
  const auto key = std::make_pair(request.session, request.tunnel_id);
  if (tunnels_.count(key) != 0) {
    r.code = tunnel::refusal::kDuplicateId;
    r.message = "tunnel id " + std::to_string(request.tunnel_id) + " has a port";
    return r;
  }
  auto l = std::make_shared<Listener>(io_, request);
  const PortPick pick =
      ports_->take(request.remote_port, request.private_only,
                   [&](uint16_t port, std::string* error) { return bind(*l, port, error); });
  if (!pick.ok) {
    r.code = pick.code;
    r.message = pick.message;
    return r;
  }
  tunnels_[key] = l;
  r.ok = true;
  if (l->port == 0) {
    r.url = "tcp://" + request.hostname;
  } else {
    r.url = "tcp://" + options_.public_host + ":" + std::to_string(l->port);
    accept(l);
  }
  spdlog::info("tcp {}: published {}", request.hostname, r.url);
  return r;
}

void TcpTunnels::unpublish(uint64_t session, uint32_t tunnel_id) {
  auto it = tunnels_.find({session, tunnel_id});
  if (it == tunnels_.end()) return;
  auto l = it->second;
  tunnels_.erase(it);
  if (l->port != 0) ports_->give_back(l->port);
  l->closed = true;
  boost::system::error_code ec;
  l->acceptor.close(ec);
  for (const auto& r : std::set(l->relays)) r->abort();
  spdlog::info("tcp {}: unpublished", l->request.hostname);
}

void TcpTunnels::accept(const std::shared_ptr<Listener>& l) {
  l->acceptor.async_accept(
      [this, alive = std::weak_ptr<int>(alive_), l](boost::system::error_code ec, tcp::socket socket) {
        if (alive.expired() || l->closed) return;
        if (!ec) start_relay(l, std::move(socket));
        if (ec == asio::error::operation_aborted) return;
        accept(l);  // a failed accept (EMFILE, ...) does not end the listener
      });
}

void TcpTunnels::start_relay(const std::shared_ptr<Listener>& l, tcp::socket socket) {
  boost::system::error_code ec;
  if (l->relays.size() >= options_.max_connections_per_tunnel) {
    spdlog::info("tcp {}: connection refused: at the cap of {} connections", l->request.hostname,
                 options_.max_connections_per_tunnel);
    socket.set_option(asio::socket_base::linger(true, 0), ec);
    socket.close(ec);
    return;
  }
  const auto peer = socket.remote_endpoint(ec);
  const auto local = socket.local_endpoint(ec);
  RouteLookup route;
  route.kind = RouteLookup::Kind::kFound;
  route.session = l->request.session;
  route.tunnel_id = l->request.tunnel_id;
  route.pattern = l->request.hostname;
  auto agent = std::make_unique<StreamEnd>(
      directory_, tunnel::encode_tcp_stream_head({l->request.tunnel_id, to_tcp_address(peer), to_tcp_address(local)}));
  // The per-client stream cap is for public HTTP clients; a TCP tunnel has its own connection cap
  // (TcpTunnelOptions::max_connections_per_tunnel), so each connection is its own "client" here.
  const std::string client = "tcp " + peer.address().to_string() + " " + std::to_string(peer.port());
  const auto st = directory_.open_request(route, client, agent.get(), agent->ref());
  if (st != TunnelDirectory::OpenStatus::kOpened) {
    spdlog::info("tcp {}: connection from {} reset: {}", l->request.hostname, peer.address().to_string(),
                 st == TunnelDirectory::OpenStatus::kGone ? "the agent's session is gone"
                                                          : "the agent's session has no stream to spare");
    socket.set_option(asio::socket_base::linger(true, 0), ec);
    socket.close(ec);
    return;
  }
  auto relay = std::make_shared<TcpBridge>(
      std::make_unique<SocketEnd>(std::move(socket), options_.read_chunk), std::move(agent),
      [this, alive = std::weak_ptr<int>(alive_), w = std::weak_ptr<Listener>(l)](bool) {
        // Removed later: this may run inside one of the bridge's own calls.
        if (alive.expired()) return;
        asio::post(io_, [w, alive] {
          auto listener = w.lock();
          if (alive.expired() || !listener) return;
          std::erase_if(listener->relays, [](const auto& r) { return r->done(); });
        });
      });
  l->relays.insert(relay);
  relay->start();
}

}  // namespace wtmesh::edge
