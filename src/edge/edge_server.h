// The edge process: one UDP endpoint serving HTTP/3 + WebTransport, certificates from its state
// directory, and the services mounted on WebTransport paths (today: /echo).
//
// Per QUIC connection it builds the stack quic::Connection → h3::Connection → wt::H3Server and a
// timer that drives the WebTransport layer's deadlines (buffered streams, deferred CONNECTs).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
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

 private:
  struct ConnApp;
  void on_connection(quic::Connection& conn);

  boost::asio::io_context& io_;
  EdgeOptions options_;
  quic::CertFiles certs_;
  std::optional<quic::TlsServerContext> tls_;
  std::unique_ptr<quic::Endpoint> endpoint_;
};

}  // namespace wtmesh::edge
