// TunnelAgent's local listeners for `wtmesh connect` (the mesh, docs/protocol.md): one TCP acceptor
// or UDP port per ConnectSpec, opened before the first dial so a taken port fails the start; each
// accepted connection becomes a CONNECT stream on the current session, or is reset when there is
// none. The addresses are announced once the first session is ready.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include "agent/edge_session.h"
#include "agent/tunnel_agent.h"
#include "agent/udp_connect.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

bool TunnelAgent::listen_connects(std::string* error) {
  for (size_t i = connect_acceptors_.size(); i < options_.connects.size(); ++i) {
    const ConnectSpec& c = options_.connects[i];
    boost::system::error_code ec;
    if (c.udp) {
      auto refused = [this, i](const std::string& code, const std::string& message) {
        if (events_.on_connect_refused) events_.on_connect_refused(options_.connects[i], code, message);
      };
      auto port = std::make_unique<UdpConnectPort>(io_, c.name, options_.udp, std::move(refused));
      const asio::ip::udp::endpoint ep(asio::ip::make_address(c.listen_host, ec), c.listen_port);
      std::string why = ec ? ec.message() : "";
      if (ec || !port->listen(ep, &why)) {
        *error = "connect " + c.name + " --udp: cannot listen on " + c.listen() + ": " + why;
        return false;
      }
      connect_acceptors_.push_back(nullptr);
      udp_ports_.push_back(std::move(port));
      continue;
    }
    auto a = std::make_unique<asio::ip::tcp::acceptor>(io_);
    const asio::ip::tcp::endpoint ep(asio::ip::make_address(c.listen_host, ec), c.listen_port);
    if (!ec) a->open(ep.protocol(), ec);
    if (!ec) a->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    if (!ec) a->bind(ep, ec);
    if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      *error = "connect " + c.name + ": cannot listen on " + c.listen() + ": " + ec.message();
      return false;
    }
    connect_acceptors_.push_back(std::move(a));
    udp_ports_.push_back(nullptr);
    accept_connect(i);
  }
  return true;
}

std::optional<asio::ip::tcp::endpoint> TunnelAgent::connect_endpoint(size_t index) const {
  if (index >= connect_acceptors_.size()) return std::nullopt;
  if (udp_ports_[index]) {
    const auto u = udp_ports_[index]->local_endpoint();
    return asio::ip::tcp::endpoint(u.address(), u.port());
  }
  boost::system::error_code ec;
  const auto ep = connect_acceptors_[index]->local_endpoint(ec);
  if (ec) return std::nullopt;
  return ep;
}

void TunnelAgent::accept_connect(size_t index) {
  connect_acceptors_[index]->async_accept([this, index, alive = std::weak_ptr<int>(alive_)](
                                              boost::system::error_code ec, asio::ip::tcp::socket s) {
    if (alive.expired() || stopped_ || ec == asio::error::operation_aborted) return;
    const ConnectSpec& c = options_.connects[index];
    if (!ec && !(connected() && session_->open_connect(c.name, std::move(s)))) {
      notice("connect " + c.name + ": no session to the edge right now; connection reset");
    }
    accept_connect(index);  // a failed accept (EMFILE, ...) does not end the listener
  });
}

void TunnelAgent::announce_connects() {
  if (connects_announced_) return;
  connects_announced_ = true;
  for (size_t i = 0; i < options_.connects.size(); ++i) {
    const auto ep = connect_endpoint(i);
    if (!ep || !events_.on_connect_ready) continue;
    const std::string host =
        ep->address().is_v6() ? "[" + ep->address().to_string() + "]" : ep->address().to_string();
    events_.on_connect_ready(options_.connects[i], host + ":" + std::to_string(ep->port()));
  }
}

}  // namespace wtmesh::agent
