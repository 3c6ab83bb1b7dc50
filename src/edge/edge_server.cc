#include "edge/edge_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>

#include "edge/echo_service.h"
#include "h3/connection.h"
#include "h3/error_codes.h"
#include "wt/h3_server.h"

namespace wtmesh::edge {

namespace asio = boost::asio;

// Everything the edge keeps for one QUIC connection, owned by that connection.
struct EdgeServer::ConnApp final : quic::Connection::AppState {
  ConnApp(asio::io_context& io, quic::Connection& quic, const EdgeOptions& options)
      : h3(quic, h3::Role::kServer, wt::webtransport_h3_config(h3::Role::kServer)),
        server(h3, options.wt, [this](const wt::SessionInfo& info) { return accept(info); }),
        tick(io) {
    quic.set_handler(&h3);
  }

  wt::Accept accept(const wt::SessionInfo& info) {
    if (info.path == "/echo") {
      // Sessions end before the connection does; keep finished handlers only until the next accept.
      std::erase_if(echo, [](const auto& e) { return e->closed(); });
      echo.push_back(std::make_unique<EchoSession>());
      spdlog::info("echo: session opened authority={} origin=\"{}\"", info.authority, info.origin);
      return {200, echo.back().get(), {}};
    }
    spdlog::info("edge: no WebTransport service at path {}", info.path);
    return {404, nullptr, {}};
  }

  // Drives the WebTransport layer's deadlines; re-armed after each firing.
  void arm_tick() {
    const auto now = std::chrono::steady_clock::now();
    auto when = now + std::chrono::seconds(1);
    if (auto d = server.next_deadline()) when = std::min(when, std::max(*d, now));
    tick.expires_at(when);
    tick.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
      if (ec || alive.expired()) return;
      server.on_tick(std::chrono::steady_clock::now());
      arm_tick();
    });
  }

  // Declaration order is destruction order in reverse: the server (which may still tell handlers
  // their sessions closed) goes before the echo handlers, and h3 last.
  h3::Connection h3;
  std::vector<std::unique_ptr<EchoSession>> echo;
  wt::H3Server server;
  asio::steady_timer tick;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

EdgeServer::EdgeServer(asio::io_context& io, EdgeOptions options)
    : io_(io), options_(std::move(options)), renew_timer_(io) {
  if (options_.cert_file.has_value() != options_.key_file.has_value()) {
    throw std::runtime_error("--cert and --key must be given together");
  }
  if (options_.cert_file) {
    certs_.cert = *options_.cert_file;
    certs_.key = *options_.key_file;
    certs_.sha256_hex = quic::sha256_hex_of_cert_file(certs_.cert);
  } else {
    certs_ = quic::ensure_state_certs(options_.state_dir, {options_.domain, "*." + options_.domain});
  }
  auto tls = std::make_shared<quic::TlsServerContext>(quic::TlsServerContext::from_files(certs_.cert, certs_.key));
  options_.wt.allowed_origins = options_.allowed_origins;
  try {
    endpoint_ = std::make_unique<quic::Endpoint>(io_, options_.listen);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error(e.what());
  }
  quic::ServerOptions so;
  so.tls = std::move(tls);
  so.limits = options_.limits;
  so.on_connection = [this](quic::Connection& conn) { on_connection(conn); };
  endpoint_->listen(std::move(so));
  if (!options_.cert_file) schedule_renewal();
}

void EdgeServer::schedule_renewal() {
  renew_timer_.expires_after(kRenewalCheck);
  renew_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    check_certificates();
    schedule_renewal();
  });
}

bool EdgeServer::check_certificates() {
  if (options_.cert_file) return false;  // operator-provided certificates are the operator's to renew
  try {
    auto fresh = quic::ensure_state_certs(options_.state_dir, {options_.domain, "*." + options_.domain});
    if (fresh.sha256_hex == certs_.sha256_hex) return false;
    endpoint_->set_server_tls(
        std::make_shared<quic::TlsServerContext>(quic::TlsServerContext::from_files(fresh.cert, fresh.key)));
    certs_ = fresh;
    spdlog::info("edge: certificate renewed, sha256 {}", certs_.sha256_hex);
    return true;
  } catch (const std::exception& e) {
    // Keep serving with the current certificate; the next check tries again.
    spdlog::error("edge: certificate renewal failed: {}", e.what());
    return false;
  }
}

EdgeServer::~EdgeServer() = default;

void EdgeServer::on_connection(quic::Connection& conn) {
  auto app = std::make_unique<ConnApp>(io_, conn, options_);
  app->arm_tick();
  conn.set_app_state(std::move(app));
}

void EdgeServer::shutdown() {
  renew_timer_.cancel();
  endpoint_->shutdown(h3::kH3NoError, "edge shutting down");
}

}  // namespace wtmesh::edge
