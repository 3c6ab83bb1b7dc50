#include "edge/public_listener.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "edge/first_bytes.h"
#include "edge/public_listener_connection.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

PublicListener::PublicListener(asio::io_context& io, TunnelDirectory& directory,
                               PublicListenerOptions options,
                               std::function<std::shared_ptr<const TlsServerConfig>()> tls_config)
    : directory_(directory),
      options_(std::move(options)),
      tls_config_(std::move(tls_config)),
      acceptor_(io),
      retry_timer_(io),
      refusal_log_timer_(io),
      shared_(options_.shared ? options_.shared : std::make_shared<PublicListenerShared>(options_.limits)) {
  acceptor_.open(options_.bind.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  if (options_.reuse_port) {
    const int on = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
      throw boost::system::system_error(errno, boost::system::system_category(), "SO_REUSEPORT");
  }
  // "::" takes IPv4 too; a specific IPv6 address (::1) only itself, so another edge may hold the
  // same port on 127.0.0.1 (a pair of edges on one host, tests/peers/edge_drain.sh).
  if (options_.bind.address().is_v6())
    acceptor_.set_option(asio::ip::v6_only(!options_.bind.address().is_unspecified()));
  acceptor_.bind(options_.bind);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  local_ = acceptor_.local_endpoint();
  if (options_.steering) options_.steering->attach(options_.worker, *this, io);
  start_accept();
}

PublicListener::~PublicListener() {
  alive_.reset();
  close();
}

std::optional<unsigned> PublicListener::steer_target(bool tls, std::span<const uint8_t> first) {
  if (!options_.steering || !acceptor_.is_open()) return std::nullopt;  // draining: serve it here
  const std::optional<std::string> name = tls ? client_hello_server_name(first) : request_head_host(first);
  if (!name) return std::nullopt;
  return options_.steering->owner(*name, options_.worker);
}

void PublicListener::steered_out(Connection* conn, unsigned to, SteeredConnection c) {
  conns_.erase(conn);
  ++steered_out_;
  options_.steering->hand_over(to, std::move(c));
}

void PublicListener::adopt(SteeredConnection c) {
  tcp::socket socket(acceptor_.get_executor());
  boost::system::error_code ec;
  socket.assign(c.protocol, c.take_fd(), ec);
  std::shared_ptr<const TlsServerConfig> tls;
  if (options_.tls && tls_config_) tls = tls_config_();
  if (ec || closed_ || (options_.tls && !tls)) {
    socket.set_option(asio::socket_base::linger(true, 0), ec);
    socket.close(ec);
    shared_->closed(c.limit_key);
    return;
  }
  auto conn = std::make_shared<Connection>(*this, std::move(socket), std::move(tls), c.limit_key, c.address);
  conns_.insert(conn.get());
  conn->start_with(c.bytes);
  // Accepted by another worker just before this one's drain began: served like a connection accepted
  // here then (its first request gets an answer that closes it).
  if (draining_) conn->drain();
}

void PublicListener::close() {
  closed_ = true;
  if (options_.steering) options_.steering->detach(options_.worker, *this);
  boost::system::error_code ec;
  acceptor_.close(ec);
  retry_timer_.cancel();
  refusal_log_timer_.cancel();
  auto conns = std::exchange(conns_, {});
  for (Connection* c : conns) {
    shared_->closed(c->limit_key());  // detached: it will not forget() itself
    c->detach();
  }
}

void PublicListener::drain() {
  draining_ = true;
  boost::system::error_code ec;
  // The connections the kernel completed but nobody accepted yet would be reset by the close: take
  // them first (bounded by the backlog), to be served like any connection accepted before the drain.
  acceptor_.non_blocking(true, ec);
  for (size_t i = 0; !ec && i < kMaxDrainAccepts; ++i) {
    tcp::socket socket(acceptor_.get_executor());
    acceptor_.accept(socket, ec);
    if (!ec) on_accepted(std::move(socket));
  }
  acceptor_.close(ec);  // new connections are refused by the kernel from now on
  retry_timer_.cancel();
  // drain() may end a connection (forget() edits conns_): walk a copy.
  const std::vector<Connection*> conns(conns_.begin(), conns_.end());
  for (Connection* c : conns) {
    if (conns_.contains(c)) c->drain();
  }
}

size_t PublicListener::busy_count() const {
  size_t n = 0;
  for (const Connection* c : conns_) n += c->busy() ? 1 : 0;
  return n;
}

size_t PublicListener::connection_count(const std::string& limit_key) const {
  return shared_->connections(limit_key);
}

void PublicListener::forget(Connection* conn, const std::string& key) {
  if (conns_.erase(conn) != 0) shared_->closed(key);
}

PublicListenerShared::PublicListenerShared(const PublicLimits& limits)
    : handshakes(quic::AddressLimitOptions{.max_connections_per_address = 0,
                                           .handshake_burst = limits.tls_handshake_burst,
                                           .handshakes_per_second = limits.tls_handshakes_per_ip}) {}

PublicListenerShared::Open PublicListenerShared::try_open(const std::string& key, size_t max_total,
                                                          size_t max_per_address) {
  std::lock_guard lock(mutex_);
  if (total_ >= max_total) return Open::kFull;
  auto it = per_ip_.find(key);
  const size_t n = it == per_ip_.end() ? 0 : it->second;
  if (max_per_address > 0 && n >= max_per_address) return Open::kAddressFull;
  if (it == per_ip_.end()) it = per_ip_.emplace(key, 0).first;
  ++it->second;
  ++total_;
  return Open::kOpened;
}

void PublicListenerShared::closed(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = per_ip_.find(key);
  if (it == per_ip_.end()) return;
  --total_;
  if (--it->second == 0) per_ip_.erase(it);
}

size_t PublicListenerShared::total() const {
  std::lock_guard lock(mutex_);
  return total_;
}

size_t PublicListenerShared::connections(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = per_ip_.find(key);
  return it == per_ip_.end() ? 0 : it->second;
}

void PublicListener::on_accepted(tcp::socket socket) {
  boost::system::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  std::string key = client_limit_key(peer.address());
  std::shared_ptr<const TlsServerConfig> tls;
  if (options_.tls && tls_config_) tls = tls_config_();
  if (options_.tls && !tls) {
    socket.close(ec);
    return;
  }
  switch (shared_->try_open(key, options_.limits.max_connections, options_.limits.max_connections_per_ip)) {
    case PublicListenerShared::Open::kOpened:
      break;
    case PublicListenerShared::Open::kFull:
      refuse(socket, key, false);
      return;
    case PublicListenerShared::Open::kAddressFull:
      refuse(socket, key, true);
      return;
  }
  auto conn =
      std::make_shared<Connection>(*this, std::move(socket), std::move(tls), key,
                                   quic::address_key(peer.data(), static_cast<socklen_t>(peer.size())));
  conns_.insert(conn.get());
  conn->start();
}

void PublicListener::refuse(tcp::socket& socket, const std::string& key, bool per_ip) {
  boost::system::error_code ignored;
  // A reset, not a FIN: the client learns at once and no TIME_WAIT is left here.
  socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
  ++refused_total_;
  if (options_.metrics != nullptr)
    options_.metrics->on_public_shed(per_ip ? PublicShed::kAddressConnections : PublicShed::kConnectionLimit);
  if (per_ip) {
    ++refused_per_ip_;
    refused_example_ = key;
  } else {
    ++refused_global_;
  }
  // The first refusal is logged at once, later ones summed up every kRefusalLogInterval: a flood
  // costs a line per interval, not one per connection.
  if (refusal_log_armed_) return;
  log_refusals();
  arm_refusal_log();
}

bool PublicListener::admit_handshake(const std::optional<quic::AddressKey>& key,
                                     const std::string& limit_key) {
  if (!key) return true;
  if (shared_->handshakes.admit(*key, quic::now_ts()) == quic::AddressLimits::Verdict::kAdmit) return true;
  ++refused_total_;
  ++refused_handshakes_total_;
  ++refused_handshakes_;
  refused_handshake_example_ = limit_key;
  if (options_.metrics != nullptr) options_.metrics->on_public_shed(PublicShed::kHandshakeRate);
  if (!refusal_log_armed_) {
    log_refusals();
    arm_refusal_log();
  }
  return false;
}

void PublicListener::arm_refusal_log() {
  refusal_log_armed_ = true;
  refusal_log_timer_.expires_after(kRefusalLogInterval);
  refusal_log_timer_.async_wait(
      [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& e) {
        if (e || alive.expired()) return;
        refusal_log_armed_ = false;
        if (refused_global_ + refused_per_ip_ + refused_handshakes_ == 0) return;  // the flood is over
        log_refusals();
        arm_refusal_log();
      });
}

void PublicListener::log_refusals() {
  if (refused_global_ > 0) {
    spdlog::warn("edge: refused {} public connection(s) on port {}: {} open, the most the edge takes ({})",
                 refused_global_, local_.port(), shared_->total(), options_.limits.max_connections);
  }
  if (refused_per_ip_ > 0) {
    spdlog::warn(
        "edge: refused {} public connection(s) on port {} from addresses at their cap of {} (e.g. {})",
        refused_per_ip_, local_.port(), options_.limits.max_connections_per_ip, refused_example_);
  }
  if (refused_handshakes_ > 0) {
    spdlog::warn(
        "edge: reset {} TLS handshake(s) on port {} from addresses over {} per second (burst {}; e.g. {})",
        refused_handshakes_, local_.port(), options_.limits.tls_handshakes_per_ip,
        options_.limits.tls_handshake_burst, refused_handshake_example_);
  }
  refused_global_ = refused_per_ip_ = refused_handshakes_ = 0;
}

void PublicListener::start_accept() {
  if (!acceptor_.is_open()) return;
  acceptor_.async_accept(
      [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec, tcp::socket socket) {
        if (alive.expired() || !acceptor_.is_open()) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          // e.g. out of file descriptors: back off instead of spinning.
          spdlog::warn("edge: accept failed on {}: {}", local_.port(), ec.message());
          retry_timer_.expires_after(std::chrono::milliseconds(100));
          retry_timer_.async_wait([this, alive](const boost::system::error_code& e) {
            if (!e && !alive.expired()) start_accept();
          });
          return;
        }
        on_accepted(std::move(socket));
        start_accept();
      });
}

}  // namespace wtmesh::edge
