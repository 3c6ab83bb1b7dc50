#include "agent/wt_client.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>

#include "agent/h2_wt_client.h"
#include "h3/error_codes.h"

namespace wtmesh::agent {

namespace asio = boost::asio;
using asio::ip::udp;

// The client's per-connection stack, owned by the quic::Connection.
struct WtClient::App final : quic::Connection::AppState {
  App(asio::io_context& io, quic::Connection& quic, const wt::ClientConfig& config)
      : h3(quic, h3::Role::kClient, wt::webtransport_h3_config(h3::Role::kClient)),
        client(h3, config),
        tick(io) {
    quic.set_handler(&h3);
  }
  void arm_tick() {
    const auto now = std::chrono::steady_clock::now();
    auto when = now + std::chrono::seconds(1);
    if (auto d = client.next_deadline()) when = std::min(when, std::max(*d, now));
    tick.expires_at(when);
    tick.async_wait([this, alive = std::weak_ptr<int>(alive)](const boost::system::error_code& ec) {
      if (ec || alive.expired()) return;
      client.on_tick(std::chrono::steady_clock::now());
      arm_tick();
    });
  }
  h3::Connection h3;
  wt::H3Client client;
  asio::steady_timer tick;
  std::shared_ptr<int> alive = std::make_shared<int>(0);
};

WtClient::WtClient(asio::io_context& io, quic::TlsClientContext tls, quic::TransportLimits limits,
                   wt::ClientConfig config)
    : WtClient(io, std::make_shared<const quic::TlsClientContext>(std::move(tls)), limits,
               std::move(config)) {}

WtClient::WtClient(asio::io_context& io, std::shared_ptr<const quic::TlsClientContext> tls,
                   quic::TransportLimits limits, wt::ClientConfig config)
    : io_(io), tls_(std::move(tls)), limits_(limits), config_(std::move(config)) {}

WtClient::~WtClient() {
  // The endpoint may report its connections removed as it goes: with every member still here, and
  // nobody told.
  on_change_ = nullptr;
  h2_.reset();
  endpoint_.reset();
}

const std::string& WtClient::close_reason() const { return h2_ ? h2_->close_reason() : close_reason_; }

std::string WtClient::tls_summary() const { return h2_ ? h2_->tls_summary() : std::string(); }

bool WtClient::dial(const EdgeUrl& edge, std::string* error, const udp::endpoint* fixed_remote) {
  edge_ = edge;
  if (transport_ == EdgeTransport::kH2) {
    h2_ = std::make_unique<H2WtClient>(io_, tls_, limits_.handshake_timeout);
    if (on_change_) h2_->set_on_change(on_change_);
    if (fixed_remote == nullptr) return h2_->dial(edge, error);
    const asio::ip::tcp::endpoint tcp(fixed_remote->address(), fixed_remote->port());
    return h2_->dial(edge, error, &tcp);
  }
  udp::endpoint remote;
  if (fixed_remote != nullptr) {
    remote = *fixed_remote;
  } else {
    boost::system::error_code ec;
    udp::resolver resolver(io_);
    auto results = resolver.resolve(edge.host, std::to_string(edge.port), ec);
    if (ec || results.empty()) {
      if (error) *error = "cannot resolve " + edge.host + ": " + ec.message();
      return false;
    }
    remote = *results.begin();
  }
  const udp::endpoint local(remote.address().is_v4() ? asio::ip::address(asio::ip::address_v4::any())
                                                     : asio::ip::address(asio::ip::address_v6::any()),
                            0);
  try {
    endpoint_ = std::make_unique<quic::Endpoint>(io_, local);
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return false;
  }
  endpoint_->set_on_removed([this](quic::Connection& c) {
    if (&c != conn_) return;
    closed_ = true;
    // The edge refused the ticket's early data: the next dial makes a full handshake.
    early_rejected_ = c.early_data_rejected();
    if (early_rejected_) forget_resumption();
    if (close_reason_.empty())
      close_reason_ = c.close_reason().empty() ? "connection closed" : c.close_reason();
    conn_ = nullptr;
    app_ = nullptr;
    post_change();
  });
  std::optional<EdgeResumption> resume;
  if (resumption_) resume = resumption_->get(resumption_key());
  conn_ = endpoint_->connect(remote, edge.host, *tls_, limits_, error, resume ? &resume->ticket : nullptr);
  if (!conn_) return false;
  conn_->set_handshake_hook([this] { post_change(); });
  if (resumption_) conn_->set_ticket_hook([this](quic::ResumptionTicket t) { keep_ticket(std::move(t)); });
  auto app = std::make_unique<App>(io_, *conn_, config_);
  app_ = app.get();
  app_->arm_tick();
  conn_->set_app_state(std::move(app));
  if (conn_->early_data_attempted()) {
    // 0-RTT: HTTP/3 starts now with the edge's remembered SETTINGS, and the owner may send its
    // session request before the handshake (it goes in the first flight).
    app_->h3.remember_peer_settings(resume->settings);
    app_->h3.start();
    post_change();
  }
  return true;
}

std::string WtClient::resumption_key() const { return edge_ ? edge_->authority() : std::string(); }

void WtClient::keep_ticket(quic::ResumptionTicket ticket) {
  // The SETTINGS of this connection go with its ticket (they arrive before the ticket, which the
  // edge sends once the handshake is done).
  if (!resumption_ || app_ == nullptr || !app_->h3.peer_settings() || !ticket.usable()) return;
  resumption_->put(resumption_key(), EdgeResumption{std::move(ticket), *app_->h3.peer_settings()});
}

bool WtClient::forget_resumption() { return resumption_ && resumption_->forget(resumption_key()); }

bool WtClient::resumed_with_early_data() const { return conn_ != nullptr && conn_->early_data_accepted(); }

void WtClient::post_change() {
  if (!on_change_) return;
  asio::post(io_, [fn = on_change_, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) fn();
  });
}

bool WtClient::handshake_completed() const {
  if (h2_) return h2_->handshake_completed();
  return conn_ && conn_->handshake_completed();
}

bool WtClient::closed() const {
  if (h2_) return h2_->closed();
  return closed_ || (conn_ && conn_->state() != quic::Connection::State::kOpen &&
                     conn_->state() != quic::Connection::State::kHandshaking);
}

wt::Session* WtClient::open_session(const std::string& path, const wt::HeaderPairs& extra,
                                    wt::SessionHandler* handler, std::string* error) {
  if (h2_) return h2_->open_session(path, extra, handler, error);
  if (!app_ || !edge_) {
    if (error) *error = "not connected";
    return nullptr;
  }
  h3::HeaderList headers;
  headers.reserve(extra.size());
  for (const auto& [name, value] : extra) headers.push_back({name, value});
  wt::Session* s = app_->client.connect(edge_->authority(), path, headers, handler);
  if (!s && error) *error = app_->client.last_error();
  return s;
}

void WtClient::close(std::string_view reason) {
  if (h2_) return h2_->close(reason);
  if (app_) app_->h3.close(h3::kH3NoError, reason);
}

}  // namespace wtmesh::agent
