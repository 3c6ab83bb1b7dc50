#include "edge/tcp_tunnels.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <set>
#include <vector>

#include "tunnel/control.h"
#include "tunnel/tcp_relay.h"

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
  std::set<std::shared_ptr<Relay>> relays;
};

// One accepted connection and its tcp-stream. Owned by its Listener's set; every handler holds it.
class TcpTunnels::Relay final : public RequestStreamEvents, public std::enable_shared_from_this<Relay> {
 public:
  Relay(TcpTunnels& owner, const std::shared_ptr<Listener>& l, tcp::socket socket)
      : owner_(owner), alive_(owner.alive_), listener_(l), socket_(std::move(socket)) {}

  void start() {
    boost::system::error_code ec;
    const auto peer = socket_.remote_endpoint(ec);
    const auto local = socket_.local_endpoint(ec);
    socket_.set_option(tcp::no_delay(true), ec);
    auto l = listener_.lock();
    RouteLookup route;
    route.kind = RouteLookup::Kind::kFound;
    route.session = l->request.session;
    route.tunnel_id = l->request.tunnel_id;
    route.pattern = l->request.hostname;
    // The per-client stream cap is for public HTTP clients; a TCP tunnel has its own connection cap
    // (TcpTunnelOptions::max_connections_per_tunnel), so each connection is its own "client" here.
    const std::string client = "tcp " + peer.address().to_string() + " " + std::to_string(peer.port());
    const auto st = owner_.directory_.open_request(route, client, this, &ref_);
    if (st != TunnelDirectory::OpenStatus::kOpened) {
      const char* why = "the agent's session has no stream to spare";
      if (st == TunnelDirectory::OpenStatus::kGone) why = "the agent's session is gone";
      spdlog::info("tcp {}: connection from {} reset: {}", l->request.hostname, peer.address().to_string(),
                   why);
      return reset_client();
    }
    relay_.queue_up(
        tunnel::encode_tcp_stream_head({l->request.tunnel_id, to_tcp_address(peer), to_tcp_address(local)}));
    pump_up();
  }

  // Ends everything at once: the stream cancelled, the client reset.
  void abort() {
    if (done_) return;
    if (ref_.valid()) owner_.directory_.cancel(ref_, tunnel::kStreamCancelled);
    reset_client();
  }

  // --- RequestStreamEvents ---
  void on_response_data(std::span<const uint8_t> data, bool fin) override {
    if (done_) return owner_.directory_.consume(ref_, data.size());
    relay_.down_data(data, fin, data.size());
    pump_down();
  }
  void on_request_writable() override { pump_up(); }
  void on_stream_aborted(std::optional<uint32_t> /*code*/, std::string_view /*reason*/) override {
    reset_client();
  }
  void on_request_stopped(std::optional<uint32_t> /*code*/) override { abort(); }

 private:
  bool gone() const { return done_ || alive_.expired(); }

  // Client → stream (tunnel::TcpRelay says what is due).
  void pump_up() {
    if (gone() || !ref_.valid()) return;
    for (auto p = relay_.up_pending(); !p.empty(); p = relay_.up_pending()) {
      const size_t n = owner_.directory_.write(ref_, p, false);
      if (n == 0) return;  // on_request_writable follows
      relay_.up_taken(n);
    }
    if (relay_.up_fin_due()) {
      owner_.directory_.write(ref_, {}, true);
      relay_.up_fin_sent();
      return maybe_finish();
    }
    if (!relay_.read_wanted()) return;
    const auto buf = relay_.start_read();
    socket_.async_read_some(asio::buffer(buf.data(), buf.size()),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (self->gone()) return;
                              // A reset from the client, or a socket error: the stream is cancelled.
                              if (ec && ec != asio::error::eof) return self->abort();
                              self->relay_.read_done(n, ec == asio::error::eof);
                              self->pump_up();
                            });
  }

  // Stream → client: credit goes back once the bytes are written to the socket.
  void pump_down() {
    if (gone()) return;
    const auto out = relay_.start_write();
    if (out.empty()) {
      if (!relay_.shutdown_due()) return;
      boost::system::error_code ec;
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      relay_.shutdown_done();
      return maybe_finish();
    }
    asio::async_write(socket_, asio::buffer(out.data(), out.size()),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (self->gone()) return;
                        if (ec) return self->abort();
                        self->owner_.directory_.consume(self->ref_, self->relay_.write_done());
                        self->pump_down();
                      });
  }

  void maybe_finish() {
    if (!relay_.finished() || done_) return;
    owner_.directory_.release(ref_);
    boost::system::error_code ec;
    socket_.close(ec);
    finish();
  }

  void reset_client() {
    if (done_) return;
    // The stream's bytes not written yet still owe the connection its flow-control credit.
    if (ref_.valid()) owner_.directory_.consume(ref_, relay_.held_credit());
    boost::system::error_code ec;
    socket_.set_option(asio::socket_base::linger(true, 0), ec);  // close() sends RST
    socket_.close(ec);
    finish();
  }

  void finish() {
    done_ = true;
    if (alive_.expired()) return;
    // Removed from the listener later: this may run inside one of its own calls.
    asio::post(owner_.io_, [self = shared_from_this()] {
      if (auto l = self->listener_.lock()) l->relays.erase(self);
    });
  }

  TcpTunnels& owner_;
  std::weak_ptr<int> alive_;
  std::weak_ptr<Listener> listener_;
  tcp::socket socket_;
  StreamRef ref_;
  tunnel::TcpRelay relay_{owner_.options_.read_chunk};
  bool done_ = false;
};

TcpTunnels::TcpTunnels(asio::io_context& io, TunnelDirectory& directory, TcpTunnelOptions options)
    : io_(io),
      directory_(directory),
      options_(std::move(options)),
      ports_(options_.port_min, options_.port_max, "TCP") {
  if (options_.public_host.empty()) options_.public_host = options_.listen_address.to_string();
  if (options_.listen_address.is_v6() && options_.public_host.find(':') != std::string::npos)
    options_.public_host = "[" + options_.public_host + "]";
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
  const PortPick pick = ports_.take(request.remote_port, request.private_only,
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
  if (l->port != 0) ports_.give_back(l->port);
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
  auto relay = std::make_shared<Relay>(*this, l, std::move(socket));
  l->relays.insert(relay);
  relay->start();
}

}  // namespace wtmesh::edge
