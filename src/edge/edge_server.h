// The edge process: one UDP endpoint serving HTTP/3 + WebTransport, certificates from its state
// directory, and the services mounted on WebTransport paths (today: /echo).
//
// Per QUIC connection it builds the stack quic::Connection → h3::Connection → wt::H3Server and a
// timer that drives the WebTransport layer's deadlines (buffered streams, deferred CONNECTs).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quic/certs.h"
#include "quic/connection.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"
#include "wt/config.h"

namespace wtmesh::edge {

struct EdgeOptions {
  boost::asio::ip::udp::endpoint listen;
  std::string domain = "localhost";  // the tunnels' domain (NAME.DOMAIN)
  std::filesystem::path state_dir;
  // PEM files to use instead of the generated local CA + leaf (both or neither).
  std::optional<std::filesystem::path> cert_file;
  std::optional<std::filesystem::path> key_file;
  std::vector<std::string> allowed_origins;  // empty = any origin
  quic::TransportLimits limits;
  wt::ServerConfig wt;
};

class EdgeServer {
 public:
  // Prepares certificates and binds the socket; throws std::runtime_error with a clear sentence.
  EdgeServer(boost::asio::io_context& io, EdgeOptions options);
  ~EdgeServer();
  EdgeServer(const EdgeServer&) = delete;
  EdgeServer& operator=(const EdgeServer&) = delete;

  boost::asio::ip::udp::endpoint local_endpoint() const { return endpoint_->local_endpoint(); }
  const quic::CertFiles& certs() const { return certs_; }
  size_t connection_count() const { return endpoint_->connection_count(); }
  // Closes every connection (H3_NO_ERROR) and stops reading once they are gone.
  void shutdown();
  // Runs the renewal check now; true if a new leaf is in use. (The timer calls it hourly.)
  bool check_certificates();
  // How often generated certificates are checked for renewal.
  static constexpr std::chrono::minutes kRenewalCheck{60};

 private:
  struct ConnApp;
  void on_connection(quic::Connection& conn);
  // Generated certificates: checks hourly and, when ensure_state_certs issued a new leaf, new
  // connections use it (existing ones keep the context they started with).
  void schedule_renewal();

  boost::asio::io_context& io_;
  EdgeOptions options_;
  quic::CertFiles certs_;
  std::unique_ptr<quic::Endpoint> endpoint_;
  boost::asio::steady_timer renew_timer_;
};

}  // namespace wtmesh::edge
