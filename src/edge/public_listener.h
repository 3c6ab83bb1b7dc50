// The edge's public HTTP(S) listener: Asio glue that accepts TCP connections and, per connection,
// moves bytes between the socket, an optional TlsServerStream (HTTPS) and an Http1Connection (all the
// HTTP and tunnel logic lives in those sans-I/O classes). It also runs the connection's single
// timer: the idle timeout (no bytes read or written for idle_timeout closes the connection and
// cancels its request) and the proxy's own deadlines.
//
// Reading is driven by demand: the socket is read only while the TLS/plain input buffer has room,
// and that buffer drains only as fast as the proxy can forward request bytes, so a slow agent
// pushes back on the public client. A connection being closed after an error page lingers (reads
// and discards for up to kLinger, kLingerBytes at most) so the client sees the response instead of a
// reset.
//
// Limits against unauthenticated clients (the HTTP ones are Http1Connection's): at most max_connections on
// the port (every worker's listener counted) and max_connections_per_ip per client address (IPv6: per /64),
// further ones are closed at once and counted in one log line per kRefusalLogInterval; an address may start
// tls_handshake_burst TLS handshakes at once and tls_handshakes_per_ip per second (a ClientHello without a
// token: reset, counted the same way); a TLS handshake must finish handshake_timeout after the accept. Each
// refusal and each connection an HTTP/2 codec shed is counted in EdgeMetrics (PublicShed).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "edge/http1_connection.h"
#include "edge/listener_steering.h"
#include "edge/metrics.h"
#include "edge/public_limits.h"
#include "edge/tls_server_stream.h"
#include "edge/tunnel_directory.h"
#include "quic/address_limits.h"
#include "wt/session.h"

namespace wtmesh::edge {

// What the listeners on one port of a multi-worker edge count together (edge/edge_workers.h), so the
// caps are the edge's whichever worker's listener took a connection: the port's open connections
// (max_connections), an address's (max_connections_per_ip) and its TLS handshake bucket. Thread-safe.
class PublicListenerShared {
 public:
  enum class Open { kOpened, kFull, kAddressFull };
  explicit PublicListenerShared(const PublicLimits& limits);
  // Counts one more connection of `key` unless the port holds `max_total` or `key` holds
  // `max_per_address` (0: no cap).
  Open try_open(const std::string& key, size_t max_total, size_t max_per_address);
  void closed(const std::string& key);
  size_t connections(const std::string& key) const;
  size_t total() const;
  quic::AddressLimits handshakes;  // only its handshake buckets

 private:
  mutable std::mutex mutex_;
  std::map<std::string, size_t> per_ip_;  // client limit key → open connections
  size_t total_ = 0;
};

struct PublicListenerOptions {
  boost::asio::ip::tcp::endpoint bind;
  bool tls = true;
  bool http2 = true;  // HTTP/2 by ALPN "h2" (TLS; the TlsServerConfig must offer it) or prior knowledge
  // idle_timeout, max_connections, max_connections_per_ip, handshake_timeout here; the whole struct
  // goes on to each connection's Http1Config or H2Config.
  PublicLimits limits;
  std::string alt_svc;  // "": none; else every response carries Alt-Svc: this (HTTP/3 on the UDP port)
  // Counts socket bytes and TLS handshakes that did not complete (not owned; null: not counted).
  EdgeMetrics* metrics = nullptr;
  // Each exchange's log line also goes here (the edge counts it by tunnel and status class).
  std::function<void(const RequestLog&)> count_request;
  // WebTransport over HTTP/2 on the TLS listener (H2Config::webtransport_acceptor): empty = not offered.
  wt::Acceptor webtransport;
  // SO_REUSEPORT: the workers of one edge each listen on the same port (edge/edge_workers.h).
  bool reuse_port = false;
  // The counts the workers' listeners on this port share (null: this listener's own).
  std::shared_ptr<PublicListenerShared> shared;
  // The workers' listeners on this port steer connections to the worker holding their name
  // (edge/listener_steering.h); null: every connection is served where it landed. `worker`: this
  // listener's worker.
  std::shared_ptr<PortSteering> steering;
  unsigned worker = 0;
};

class PublicListener {
 public:
  static constexpr std::chrono::seconds kLinger{2};
  static constexpr size_t kLingerBytes = 256 * 1024;
  static constexpr std::chrono::seconds kRefusalLogInterval{10};
  static constexpr size_t kMaxDrainAccepts = 4096;  // queued connections drain() takes before closing

  // Binds and listens; throws boost::system::system_error. `tls_config` is asked for the current
  // TLS configuration for each new connection (certificate renewal); unused without TLS.
  PublicListener(boost::asio::io_context& io, TunnelDirectory& directory, PublicListenerOptions options,
                 std::function<std::shared_ptr<const TlsServerConfig>()> tls_config = {});
  // Closes every connection; their streams are cancelled while the directory is still alive.
  ~PublicListener();
  PublicListener(const PublicListener&) = delete;
  PublicListener& operator=(const PublicListener&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const { return local_; }
  size_t connection_count() const { return conns_.size(); }
  size_t connection_count(const std::string& limit_key) const;
  uint64_t refused_count() const { return refused_total_; }
  uint64_t handshakes_refused() const { return refused_handshakes_total_; }
  // Stops accepting and closes every connection.
  void close();
  // The edge drains: stops accepting (the port refuses connections) and drains every connection
  // (PublicConnection::drain): requests under way finish, then each connection closes by itself.
  void drain();
  // Connections with work a drain waits for (PublicConnection::busy).
  size_t busy_count() const;
  // Serves a connection another worker's listener accepted and steered here (on this thread), also
  // while draining (as one accepted just before); resets it once this listener is closed.
  void adopt(SteeredConnection c);
  // Connections this listener accepted and handed to another worker's.
  uint64_t steered_out_count() const { return steered_out_; }

 private:
  class Connection;
  void start_accept();
  void on_accepted(boost::asio::ip::tcp::socket socket);
  void refuse(boost::asio::ip::tcp::socket& socket, const std::string& key, bool per_ip);
  // May the connection from `key` start its TLS handshake now? Counts and logs a refusal.
  bool admit_handshake(const std::optional<quic::AddressKey>& key, const std::string& limit_key);
  void log_refusals();
  void arm_refusal_log();
  void forget(Connection* conn, const std::string& key);
  // The worker to hand a new connection to, by the name its first bytes ask for (nullopt: here).
  std::optional<unsigned> steer_target(bool tls, std::span<const uint8_t> first);
  // `conn` gave its socket up as `c`, for worker `to`: it leaves conns_ (its count goes with it).
  void steered_out(Connection* conn, unsigned to, SteeredConnection c);

  TunnelDirectory& directory_;
  PublicListenerOptions options_;
  std::function<std::shared_ptr<const TlsServerConfig>()> tls_config_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint local_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer refusal_log_timer_;
  std::set<Connection*> conns_;
  uint64_t refused_total_ = 0;
  uint64_t refused_global_ = 0, refused_per_ip_ = 0;  // since the last refusal log line
  uint64_t refused_handshakes_ = 0, refused_handshakes_total_ = 0;
  std::string refused_handshake_example_;
  std::shared_ptr<PublicListenerShared> shared_;      // per-address connections and handshakes
  std::string refused_example_;                       // an address refused for its own cap
  bool refusal_log_armed_ = false;
  uint64_t steered_out_ = 0;
  bool draining_ = false, closed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
