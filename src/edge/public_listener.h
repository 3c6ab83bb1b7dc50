// The edge's public HTTP(S) listener: Asio glue that accepts TCP connections and, per connection,
// moves bytes between the socket, an optional TlsServerStream (HTTPS) and an HttpProxy (all the
// HTTP and tunnel logic lives in those sans-I/O classes). It also runs the connection's single
// timer: the idle timeout (no bytes read or written for idle_timeout closes the connection and
// cancels its request) and the proxy's own deadlines.
//
// Reading is driven by demand: the socket is read only while the TLS/plain input buffer has room,
// and that buffer drains only as fast as the proxy can forward request bytes, so a slow agent
// pushes back on the public client. A connection being closed after an error page lingers (reads
// and discards for up to kLinger) so the client sees the response instead of a reset.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <set>

#include "edge/http_proxy.h"
#include "edge/tls_server_stream.h"
#include "edge/tunnel_directory.h"

namespace wtmesh::edge {

struct PublicListenerOptions {
  boost::asio::ip::tcp::endpoint bind;
  bool tls = true;
  std::chrono::milliseconds idle_timeout{120'000};
  size_t max_connections = 10'000;  // further connections are closed at once
};

class PublicListener {
 public:
  static constexpr std::chrono::seconds kLinger{2};

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
  // Stops accepting and closes every connection.
  void close();

 private:
  class Connection;
  void start_accept();

  TunnelDirectory& directory_;
  PublicListenerOptions options_;
  std::function<std::shared_ptr<const TlsServerConfig>()> tls_config_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint local_;
  boost::asio::steady_timer retry_timer_;
  std::set<Connection*> conns_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
