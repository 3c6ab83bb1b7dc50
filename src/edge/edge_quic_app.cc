#include "edge/edge_quic_app.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "edge/browser_connect.h"
#include "edge/echo_service.h"
#include "edge/http_codec.h"
#include "edge/tunnel_service.h"
#include "edge/wt_relay.h"
#include "h3/error_codes.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

namespace asio = boost::asio;

EdgeQuicApp::EdgeQuicApp(asio::io_context& io, quic::Connection& quic, const EdgeOptions& options,
                         TunnelService& tunnels, TunnelDirectory& directory, BrowserConnect& browser,
                         std::function<void(const RequestLog&)> count, std::set<EdgeQuicApp*>& registry)
    : registry_(registry),
      quic_(quic),
      tunnels_(tunnels),
      directory_(directory),
      browser_(browser),
      echo_enabled_(options.echo),
      session_deadline_(options.session_deadline),
      h3_(quic, h3::Role::kServer, wt::webtransport_h3_config(h3::Role::kServer)),
      requests_(directory, h3_, requests_config(quic, options),
                ConnectionHooks{[this] { arm_tick(); },
                                [&quic, count = std::move(count)](const RequestLog& l) {
                                  log_request(quic.remote_address(), l);
                                  count(l);
                                }}),
      server_(h3_, options.wt, [this](const wt::SessionInfo& info) { return accept(info); }),
      tick_(io) {
  quic_.set_handler(&h3_);
  if (options.http3) server_.set_request_handler(&requests_);
  registry_.insert(this);
}

// A relayed session's route lookup that did not answer inline.
struct EdgeQuicApp::PendingRelay final : RouteEvents {
  PendingRelay(EdgeQuicApp& a, wt::SessionInfo i) : app(a), info(std::move(i)) {}
  void on_route(const RouteLookup& r) override {
    if (ticket == 0) {
      answer = r;  // inline, before route() returned
    } else {
      app.on_relay_route(this, r);  // destroys *this
    }
  }
  EdgeQuicApp& app;
  wt::SessionInfo info;
  uint64_t ticket = 0;
  std::optional<RouteLookup> answer;
};

EdgeQuicApp::~EdgeQuicApp() {
  for (const auto& p : pending_relays_) directory_.cancel_route(p->ticket);
  registry_.erase(this);
}

void EdgeQuicApp::drain_sessions() {
  if (sessions_accepted_) h3_.send_goaway(h3_.next_peer_bidi_id());
}

void EdgeQuicApp::drain_requests() { requests_.goaway(); }

H3RequestsConfig EdgeQuicApp::requests_config(const quic::Connection& quic, const EdgeOptions& options) {
  H3RequestsConfig c;
  const std::string peer = quic.remote_address();
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(peer, ec);
  c.exchange.client = {peer, true, ec ? peer : client_limit_key(address)};
  c.exchange.limits = options.public_limits;
  return c;
}

wt::Accept EdgeQuicApp::accept(const wt::SessionInfo& request) {
  opened_ = true;
  return counted(route_session(request));
}

wt::Accept EdgeQuicApp::counted(wt::Accept a) {
  if (a.status >= 200 && a.status < 300 && a.handler != nullptr) sessions_accepted_ = true;
  if (a.status != 401 && a.status != 429) return a;
  if (++auth_failures_ < tunnels_.config().max_auth_failures_per_connection) return a;
  if (!shed_) {
    shed_ = true;
    spdlog::info("edge: closing the connection from {}: {} refused session requests", quic_.remote_address(),
                 auth_failures_);
    if (auto* m = tunnels_.config().session.metrics) m->on_connection_shed(ConnectionShed::kAuthFailures);
    // After this refusal has been answered (not from inside the WebTransport layer's call).
    asio::post(tick_.get_executor(), [this, alive = std::weak_ptr<int>(alive_)] {
      if (!alive.expired()) quic_.close(h3::kH3ExcessiveLoad, "too many authentication failures");
    });
  }
  return a;
}

wt::Accept EdgeQuicApp::route_session(const wt::SessionInfo& request) {
  wt::SessionInfo info = request;
  info.peer = quic_.remote_address();
  // In 0-RTT only an agent's session setup is taken: a replay of it verifies the token again and
  // opens a session that never registers anything (its handshake never completes, so nothing
  // follows in 1-RTT), and the replay store refuses a second sight on this edge. Every other
  // session may have effects: 425 Too Early, sent again after the handshake (RFC 8470 §5.2).
  if (info.path == tunnel::kSessionPath) return tunnels_.accept(info);  // owns its sessions
  if (quic_.in_early_data()) return {425, nullptr, {{"wtmesh-error", "sent in 0-RTT: try again"}}};
  if (auto relayed = relay(info)) return *relayed;
  return own_service(info);
}

wt::Accept EdgeQuicApp::own_service(const wt::SessionInfo& info) {
  if (is_browser_connect_path(info.path)) return browser_.accept(info, browsers_);
  if (info.path == "/echo" && echo_enabled_) {
    // Sessions end before the connection does; keep finished handlers only until the next accept.
    std::erase_if(echo_, [](const auto& e) { return e->closed(); });
    echo_.push_back(std::make_unique<EchoSession>());
    spdlog::info("echo: session opened authority={} origin=\"{}\"", info.authority, info.origin);
    return {200, echo_.back().get(), {}};
  }
  // Without the query: a mistyped /connect URL may carry a token.
  spdlog::info("edge: no WebTransport service at path {}",
               info.path.substr(0, info.path.find('?')).substr(0, 128));
  return {404, nullptr, {}};
}

std::optional<wt::Accept> EdgeQuicApp::relay(const wt::SessionInfo& info) {
  const auto host = normalize_host(info.authority);
  if (!host) return std::nullopt;
  auto pending = std::make_unique<PendingRelay>(*this, info);
  const uint64_t ticket = directory_.route(*host, pending.get());
  if (ticket == 0) return pending->answer ? relay_to(*pending->answer, info) : std::nullopt;
  pending->ticket = ticket;
  pending_relays_.push_back(std::move(pending));
  return wt::Accept::later();
}

void EdgeQuicApp::on_relay_route(PendingRelay* pending, const RouteLookup& route) {
  auto it = std::find_if(pending_relays_.begin(), pending_relays_.end(),
                         [pending](const auto& p) { return p.get() == pending; });
  if (it == pending_relays_.end()) return;
  const std::unique_ptr<PendingRelay> p = std::move(*it);
  pending_relays_.erase(it);
  const wt::StreamId id = p->info.request_id;
  if (!server_.waiting(id)) return;  // the client gave up, or the request timed out: nothing started
  std::optional<wt::Accept> a = relay_to(route, p->info);
  server_.answer(id, counted(a ? std::move(*a) : own_service(p->info)));
}

std::optional<wt::Accept> EdgeQuicApp::relay_to(const RouteLookup& route, const wt::SessionInfo& info) {
  if (route.kind == RouteLookup::Kind::kUnknown) return std::nullopt;
  if (route.kind == RouteLookup::Kind::kOffline) {
    return wt::Accept{502, nullptr, {{"wtmesh-error", "the tunnel's agent is not connected"}}};
  }
  std::erase_if(relays_, [](const auto& r) { return r->finished(); });
  relays_.push_back(std::make_unique<EdgeWtRelay>(directory_, info.peer));
  wt::Accept a = relays_.back()->start(route, info);
  if (a.handler == nullptr) relays_.pop_back();
  return a;
}

void EdgeQuicApp::arm_tick() {
  const auto now = std::chrono::steady_clock::now();
  auto when = now + std::chrono::seconds(1);
  if (auto d = server_.next_deadline()) when = std::min(when, std::max(*d, now));
  if (auto d = requests_.next_deadline()) when = std::min(when, std::max(*d, now));
  if (established_at_ && !opened_) when = std::min(when, std::max(*established_at_ + session_deadline_, now));
  if (armed_at_ && *armed_at_ <= when && *armed_at_ > now) return;  // already due sooner
  armed_at_ = when;
  tick_.expires_at(when);
  tick_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    armed_at_.reset();
    const auto t = std::chrono::steady_clock::now();
    server_.on_tick(t);
    requests_.on_tick(t);
    const auto wall = std::chrono::system_clock::now();
    for (const auto& b : browsers_) b->on_tick(wall);
    if (!check_session_deadline(t)) return;
    arm_tick();
  });
}

bool EdgeQuicApp::check_session_deadline(std::chrono::steady_clock::time_point now) {
  if (opened_ || shed_) return true;
  if (server_.request_count() > 0 || server_.deferred_request_count() > 0 || requests_.stream_count() > 0 ||
      requests_.requests_completed() > 0) {
    opened_ = true;
    return true;
  }
  if (!quic_.handshake_completed()) return true;
  if (!established_at_) {
    established_at_ = now;
    return true;
  }
  if (now - *established_at_ < session_deadline_) return true;
  shed_ = true;
  spdlog::info("edge: closing the connection from {}: no session or request within {} ms",
               quic_.remote_address(), session_deadline_.count());
  if (auto* m = tunnels_.config().session.metrics) m->on_connection_shed(ConnectionShed::kNoSession);
  quic_.close(h3::kH3NoError, "no session opened");
  return false;
}

}  // namespace wtmesh::edge
