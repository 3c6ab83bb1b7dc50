#include "agent/tunnel_agent.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "agent/edge_dialer.h"
#include "agent/wt_client.h"
#include "quic/tls_context.h"
#include "tunnel/wire.h"
#include "wt/session.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

namespace {

// Throws std::runtime_error for an unreadable CA file.
std::shared_ptr<const quic::TlsClientContext> upstream_tls_context(const TunnelSpec& t) {
  return std::make_shared<quic::TlsClientContext>(
      t.upstream_insecure ? quic::TlsClientContext::without_verification()
      : t.upstream_ca     ? quic::TlsClientContext::with_system_trust_and_ca_file(*t.upstream_ca)
                          : quic::TlsClientContext::with_system_trust());
}

H3UpstreamTarget h3_upstream_target(const TunnelSpec& t) {
  H3UpstreamTarget target;
  target.endpoint = asio::ip::udp::endpoint(asio::ip::make_address(t.upstream_host), t.upstream_port);
  target.tls = upstream_tls_context(t);
  target.tls_name = t.upstream_sni.empty() ? std::string("localhost") : t.upstream_sni;
  return target;
}

UpstreamTarget upstream_target(const TunnelSpec& t) {
  UpstreamTarget target;
  target.endpoint = asio::ip::tcp::endpoint(asio::ip::make_address(t.upstream_host), t.upstream_port);
  if (!t.upstream_tls) return target;
  target.tls = upstream_tls_context(t);
  target.tls_name = t.upstream_sni.empty() ? std::string("localhost") : t.upstream_sni;
  // The pool's connections speak HTTP/1.1 (the ALPN probe and the HTTP/2 client offer h2).
  target.alpn = {"http/1.1"};
  return target;
}

std::string seconds_text(std::chrono::milliseconds d) {
  return fmt::format("{:.1f} s", static_cast<double>(d.count()) / 1000.0);
}

std::string describe_close(uint32_t code, const std::string& reason) {
  // Not a close capsule from the edge: the stream or the connection went away; the reason says how.
  if (code == wt::kSessionGoneCode && !reason.empty()) return reason;
  std::string what;
  switch (code) {
    case tunnel::kCloseNormal:
      what = "closed by the edge";
      break;
    case tunnel::kCloseProtocolError:
      what = "protocol error";
      break;
    case tunnel::kCloseHeartbeatTimeout:
      what = "heartbeat timeout";
      break;
    case tunnel::kCloseTokenExpired:
      what = "the token expired";
      break;
    case tunnel::kCloseDraining:
      what = "the edge is draining";
      break;
    case tunnel::kCloseCredentialRevoked:
      what = "the credential was revoked";
      break;
    default:
      what = "code " + std::to_string(code);
      break;
  }
  return reason.empty() ? what : what + " (" + reason + ")";
}

}  // namespace

TunnelAgent::TunnelAgent(asio::io_context& io, AgentOptions options, AgentEvents events)
    : io_(io),
      options_(std::move(options)),
      events_(std::move(events)),
      backoff_(options_.backoff),
      probe_timer_(io),
      drain_timer_(io),
      retry_timer_(io),
      watchdog_(io),
      early_watch_(io) {
  instance_id_ = fmt::format("{:016x}{:016x}", rng_(), rng_());
  if (options_.control.agent_version.empty()) options_.control.agent_version = std::string(kAgentVersion);
  if (options_.control.started_at == SteadyTime{})
    options_.control.started_at = std::chrono::steady_clock::now();
  for (const auto& t : options_.tunnels) {
    pools_.push_back(std::make_unique<UpstreamPool>(io_, upstream_target(t), options_.pool));
    const bool alpn = t.upstream_tls && t.upstream_protocol.empty();
    std::unique_ptr<H2UpstreamClient> h2;
    if (t.upstream_protocol == "h2c" || alpn) {
      auto target = upstream_target(t);
      if (alpn) target.alpn = {"h2"};
      h2 = std::make_unique<H2UpstreamClient>(io_, std::move(target), options_.h2);
    }
    selectors_.push_back(
        alpn ? std::make_unique<UpstreamSelector>(io_, upstream_target(t), *pools_.back(), *h2) : nullptr);
    if (t.upstream_protocol == "h3") {
      // Requests go to the service's HTTP/3 server; WebTransport sessions are relayed to it (§7).
      mux_.push_back(std::make_unique<H3UpstreamClient>(io_, h3_upstream_target(t), options_.h3));
      wt_.push_back(std::make_unique<H3UpstreamTarget>(h3_upstream_target(t)));
    } else {
      mux_.push_back(std::move(h2));
      wt_.push_back(nullptr);
    }
  }
}

TunnelAgent::~TunnelAgent() {
  stopped_ = true;
  retry_timer_.cancel();
  teardown();
  tearing_down_ = true;
  probe_.reset();
  for (auto& d : draining_) d.client.reset();  // the clients first: their sessions report to the handlers
  draining_.clear();
}

const TunnelSpec* TunnelAgent::spec(uint32_t id) const {
  for (const auto& t : options_.tunnels) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

void TunnelAgent::notice(const std::string& s) {
  if (events_.on_notice) {
    events_.on_notice(s);
  } else {
    spdlog::info("agent: {}", s);
  }
}

void TunnelAgent::fatal(const std::string& s) {
  if (events_.on_fatal) events_.on_fatal(s);
  stop();
}

bool TunnelAgent::connected() const { return session_ && session_->ready() && !session_->closed(); }

size_t TunnelAgent::active_requests() const { return session_ ? session_->active_requests() : 0; }

size_t TunnelAgent::idle_upstream_connections(uint32_t tunnel_id) const {
  for (size_t i = 0; i < options_.tunnels.size(); ++i) {
    if (options_.tunnels[i].id == tunnel_id) return pools_[i]->idle_count();
  }
  return 0;
}

uint64_t TunnelAgent::upstream_reuses(uint32_t tunnel_id) const {
  for (size_t i = 0; i < options_.tunnels.size(); ++i) {
    if (options_.tunnels[i].id == tunnel_id) return pools_[i]->reuses();
  }
  return 0;
}

void TunnelAgent::start() {
  if (stopped_ || client_) return;
  std::string error;
  if (!listen_connects(&error)) return fatal(error);
  attempt();
}

void TunnelAgent::stop() {
  if (stopped_) return;
  stopped_ = true;
  retry_timer_.cancel();
  watchdog_.cancel();
  dialer_.reset();
  for (auto& t : register_timers_) t->cancel();
  register_timers_.clear();
  for (auto& a : connect_acceptors_) {
    boost::system::error_code ec;
    if (a) a->close(ec);
  }
  for (auto& p : udp_ports_) {
    if (p) p->set_session(nullptr);
  }
  if (session_ && session_->ready() && !session_->closed())
    session_->close(tunnel::kCloseNormal, "agent stopping");
  probe_.reset();
  probe_timer_.cancel();
  for (auto& d : draining_) {
    if (d.session->ready() && !d.session->closed()) d.session->close(tunnel::kCloseNormal, "agent stopping");
  }
  // The connection close goes out from a fresh handler: stop() may run inside the stack's callbacks.
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired() && client_) client_->close("agent stopping");
  });
}

void TunnelAgent::teardown() {
  tearing_down_ = true;
  for (auto& t : register_timers_) t->cancel();
  register_timers_.clear();
  watchdog_.cancel();
  dialer_.reset();
  probe_.reset();
  probe_timer_.cancel();
  quic_lost_story_.clear();
  if (client_) client_->close("reconnecting");
  for (auto& p : udp_ports_) {
    if (p) p->set_session(nullptr);  // its flows were on the session that goes now
  }
  // The client (and the sessions it owns) first: a live session still reports to its handler.
  client_.reset();
  session_.reset();
  wt_session_ = nullptr;
  tearing_down_ = false;
}

void TunnelAgent::attempt() {
  if (stopped_) return;
  teardown();
  pending_delay_ = std::chrono::milliseconds(0);
  taken_refusals_.clear();
  registered_.clear();
  const uint64_t n = ++attempt_;
  ++attempts_;

  std::string token = options_.token;
  std::string error;
  if (options_.credential) {
    try {
      token = options_.credential->mint(options_.session_token_ttl);
    } catch (const std::exception& e) {
      if (!ever_connected_ && attempts_ == 1 && options_.exit_on_first_auth_failure) return fatal(e.what());
      return schedule_retry(n, e.what(), true);
    }
  } else if (options_.token_file) {
    auto t = read_token_file(*options_.token_file, &error);
    if (!t) return schedule_retry(n, error, false);
    token = std::move(*t);
  }
  std::shared_ptr<const quic::TlsClientContext> tls = edge_trust(&error);
  if (!tls) return schedule_retry(n, "cannot set up TLS: " + error, false);
  attempt_token_ = std::move(token);
  transport_in_use_ =
      options_.edge_transport == EdgeTransport::kH2 ? EdgeTransport::kH2 : EdgeTransport::kQuic;
  attempt_started_ = std::chrono::steady_clock::now();
  DialOptions dial{options_.edge,           std::move(tls),         options_.transport,
                   options_.edge_transport, options_.h2_race_after, avoid_};
  if (options_.zero_rtt) dial.resumption = resumption_;
  dialer_ = std::make_unique<EdgeDialer>(io_, std::move(dial),
                                         [this, n](std::unique_ptr<WtClient> winner, const std::string& why) {
                                           on_dialed(n, std::move(winner), why);
                                         });
  if (!dialer_->start(&error)) return schedule_retry(n, "cannot dial the edge: " + error, false);
  arm_watchdog(n);
}

std::shared_ptr<const quic::TlsClientContext> TunnelAgent::edge_trust(std::string* error) const {
  try {
    return std::make_shared<const quic::TlsClientContext>(
        options_.ca_file ? quic::TlsClientContext::with_ca_file(*options_.ca_file)
                         : quic::TlsClientContext::with_system_trust());
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}

void TunnelAgent::arm_watchdog(uint64_t n) {
  watchdog_.expires_after(options_.connect_timeout);
  watchdog_.async_wait([this, n, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired() || n != attempt_ || connected()) return;
    std::string why = client_ && !client_->close_reason().empty() ? ": " + client_->close_reason() : "";
    if (dialer_ && !dialer_->quic_story().empty()) why += " (" + dialer_->quic_story() + ")";
    schedule_retry(
        n, "the edge did not accept a session within " + seconds_text(options_.connect_timeout) + why, false);
  });
}

void TunnelAgent::on_dialed(uint64_t n, std::unique_ptr<WtClient> winner, const std::string& why) {
  if (n != attempt_ || stopped_) return;
  const std::string story = dialer_ ? dialer_->quic_story() : std::string();
  const bool raced = dialer_ && dialer_->raced();
  if (dialer_) current_address_ = dialer_->remote().address();
  dialer_.reset();  // safe: it called us from a fresh handler and touches nothing after
  if (!winner) {
    const bool timeout = why.find("HANDSHAKE_TIMEOUT") != std::string::npos;
    return schedule_retry(n,
                          timeout ? "the edge at " + options_.edge.authority() +
                                        " did not answer (the QUIC handshake timed out: is it running, and "
                                        "does UDP get through?)"
                                  : "cannot reach the edge: " + why,
                          false);
  }
  client_ = std::move(winner);
  transport_in_use_ = client_->transport();
  if (!client_->handshake_completed()) watch_early_handshake(n);
  if (raced && transport_in_use_ == EdgeTransport::kH2) quic_lost_story_ = story;
  if (raced && transport_in_use_ == EdgeTransport::kQuic)
    spdlog::debug("agent: QUIC answered after the HTTP/2 dial started; keeping QUIC");
  std::string error;
  std::vector<TunnelRoute> routes;
  for (size_t i = 0; i < options_.tunnels.size(); ++i) {
    const auto& t = options_.tunnels[i];
    if (t.type == "tcp") {
      TcpTarget target{asio::ip::tcp::endpoint(asio::ip::make_address(t.upstream_host), t.upstream_port),
                       t.proxy_protocol};
      routes.push_back({TunnelRegistration{t.id, t.hostname, t.type, t.remote_port, t.private_only}, nullptr,
                        nullptr, nullptr, nullptr, target, std::nullopt});
      continue;
    }
    if (t.type == "udp") {
      UdpTarget target{asio::ip::udp::endpoint(asio::ip::make_address(t.upstream_host), t.upstream_port)};
      routes.push_back({TunnelRegistration{t.id, t.hostname, t.type, t.remote_port, t.private_only}, nullptr,
                        nullptr, nullptr, nullptr, std::nullopt, target});
      continue;
    }
    routes.push_back({TunnelRegistration{t.id, t.hostname, t.type, 0, false, t.visitor}, pools_[i].get(),
                      selectors_[i] ? nullptr : mux_[i].get(), selectors_[i].get(), wt_[i].get(),
                      std::nullopt, std::nullopt});
  }
  EdgeSession::Callbacks cb;
  cb.on_ready = [this, n] {
    if (n != attempt_ || tearing_down_) return;
    watchdog_.cancel();
    ++sessions_opened_;
    ever_connected_ = true;
    session_started_ = std::chrono::steady_clock::now();
    const bool early = client_ && client_->resumed_with_early_data();
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(session_started_ - attempt_started_);
    spdlog::info("agent: session ready {} ms after the dial started ({})", took.count(),
                 transport_in_use_ == EdgeTransport::kH2 ? "HTTP/2"
                 : early                                 ? "QUIC, 0-RTT"
                                                         : "QUIC");
    notice("connected to the edge " + options_.edge.authority() +
           (transport_in_use_ == EdgeTransport::kQuic
                ? std::string(early ? " over QUIC (resumed, 0-RTT)" : " over QUIC")
            : quic_lost_story_.empty() ? std::string(" over HTTP/2 (TCP)")
                                       : " over HTTP/2 (TCP): " + quic_lost_story_));
    for (auto& p : udp_ports_) {
      if (p) p->set_session(session_.get());
    }
    announce_connects();
    if (options_.edge_transport == EdgeTransport::kAuto && transport_in_use_ == EdgeTransport::kH2)
      arm_quic_probe(n);
  };
  cb.on_connect_refused = [this](const std::string& name, const tunnel::ConnectReply& reply) {
    if (!events_.on_connect_refused) return;
    for (const auto& c : options_.connects) {
      if (c.name != name) continue;
      const auto code = tunnel::to_string(static_cast<tunnel::ConnectStatus>(reply.status));
      events_.on_connect_refused(c, std::string(code), reply.message);
      return;
    }
  };
  cb.on_control = [this, n](const ControlEvent& ev) { on_control(n, ev); };
  cb.on_busy = [this, n](bool busy) {
    quic::Connection* conn = n == attempt_ && client_ ? client_->connection() : nullptr;
    if (conn != nullptr)
      conn->set_keep_alive(busy ? options_.transport.keep_alive : options_.idle_keep_alive);
  };
  cb.on_request = [this](uint32_t id, const ExchangeResult& r) {
    if (const TunnelSpec* s = spec(id); s && events_.on_request) events_.on_request(*s, r);
  };
  cb.on_closed = [this, n](uint32_t code, const std::string& reason) { on_session_closed(n, code, reason); };
  cb.on_drain = [this, n] {
    // Out of the WebTransport layer's call: the move destroys nothing, but dials.
    asio::post(io_, [this, n, alive = std::weak_ptr<int>(alive_)] {
      if (!alive.expired()) on_edge_drain(n);
    });
  };
  cb.on_renewed = [this, n](bool ok, const std::string& sentence) {
    if (n != attempt_ || tearing_down_) return;
    if (ok) {
      spdlog::debug("agent: {}", sentence);
      if (options_.log_renewals) notice(sentence);
    } else {
      notice(sentence);
    }
  };
  session_ = std::make_unique<EdgeSession>(io_, std::move(routes), options_.control, options_.exchange,
                                           std::move(cb), options_.udp);
  if (options_.credential) {
    TokenRenewal renewal;
    renewal.mint = [credential = options_.credential, ttl = options_.session_token_ttl] {
      return credential->mint(ttl);
    };
    renewal.every = std::chrono::duration_cast<std::chrono::milliseconds>(options_.session_token_ttl) * 2 / 3;
    session_->set_renewal(std::move(renewal));
  }

  const wt::HeaderPairs headers = {
      {"authorization", "Bearer " + attempt_token_},
      {std::string(tunnel::kProtocolHeader), std::to_string(tunnel::kProtocolVersion)},
      {"user-agent", options_.user_agent},
      {std::string(tunnel::kInstanceHeader), instance_id_},
      {std::string(tunnel::kFeaturesHeader),
       std::string(tunnel::kFeatureTrailers) + ", " + std::string(tunnel::kFeatureRequestTrailers)},
  };
  wt_session_ = client_->open_session(std::string(tunnel::kSessionPath), headers, session_.get(), &error);
  if (!wt_session_) return schedule_retry(n, "cannot open a session: " + error, false);
}

void TunnelAgent::on_session_closed(uint64_t n, uint32_t code, const std::string& reason) {
  if (n != attempt_ || tearing_down_ || stopped_) return;
  const bool was_ready = session_ && session_->ready();
  std::string why;
  bool auth = false;
  if (!was_ready) {
    // A refusal is the edge's typed answer to the CONNECT, not something read out of the close.
    const wt::ConnectResponse* answer = wt_session_ ? &wt_session_->response() : nullptr;
    const bool http_status = answer && answer->status != 0 && !answer->accepted();
    const int status = http_status ? answer->status : 0;
    if (status == 401) {
      const std::string* detail = wt::find_header(answer->headers, tunnel::kErrorHeader);
      why =
          "the edge refused the token (HTTP 401): it is malformed, expired, not yet valid, revoked, or "
          "signed "
          "by a key the edge does not accept" +
          (detail ? " (" + *detail + ")" : std::string());
      auth = true;
    } else if (status == 403) {
      why = "the edge refused the token (HTTP 403): it does not cover any hostname";
      auth = true;
    } else if (http_status) {
      const std::string* detail = wt::find_header(answer->headers, tunnel::kErrorHeader);
      why = "the edge refused the tunnel session (HTTP " + std::to_string(status) + ")" +
            (detail          ? ": " + *detail
             : status == 404 ? ": it serves no tunnels at /ingress-mesh"
                             : "");
    } else if (reason.find("HANDSHAKE_TIMEOUT") != std::string::npos) {
      why = "the edge at " + options_.edge.authority() +
            " did not answer (the QUIC handshake timed out: is it running, and does UDP get through?)";
    } else {
      const std::string conn = client_ ? client_->close_reason() : std::string();
      why = "could not open a session with the edge: " + (reason.empty() ? "connection failed" : reason) +
            (conn.empty() || conn == reason ? "" : " (" + conn + ")");
    }
  } else {
    const auto lived = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - session_started_);
    backoff_.on_session_ended(lived);
    why = "the session to the edge ended: " + describe_close(code, reason);
    if (code == tunnel::kCloseCredentialRevoked) {
      wt_session_ = nullptr;
      return fatal(why + "; get a new credential (wtmesh credential)");
    }
  }
  wt_session_ = nullptr;
  if (auth && options_.exit_on_first_auth_failure && !ever_connected_ && attempts_ == 1) return fatal(why);
  schedule_retry(n, why, auth);
}

std::chrono::milliseconds TunnelAgent::early_handshake_limit() const {
  // A handshake answers in one round trip; past this the path is likely not taking UDP any more.
  return std::max(std::chrono::milliseconds(1000), 4 * options_.h2_race_after);
}

void TunnelAgent::watch_early_handshake(uint64_t n) {
  early_watch_.expires_after(early_handshake_limit());
  early_watch_.async_wait([this, n, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired() || n != attempt_ || !client_ || client_->handshake_completed()) return;
    client_->forget_resumption();
    schedule_retry(n,
                   "the edge did not complete the handshake within " + seconds_text(early_handshake_limit()) +
                       " of a 0-RTT session request",
                   false, true);
  });
}

void TunnelAgent::schedule_retry(uint64_t n, const std::string& why, bool auth_failure, bool now) {
  if (stopped_ || n != attempt_ || retry_scheduled_for_ == n) return;
  retry_scheduled_for_ = n;
  watchdog_.cancel();
  early_watch_.cancel();
  // A refused token does not get better by retrying quickly: wait the longest delay.
  if (auth_failure) backoff_.saturate();
  // A refused 0-RTT costs no backoff: its ticket is forgotten, so the next dial is a plain one. Not a
  // reconnect to report: an edge process started after the ticket always refuses it (§1.2).
  const bool refused_early = client_ && client_->early_data_rejected();
  if (refused_early) {
    client_->forget_resumption();  // may be gone already (the connection was removed): the same
    now = true;
  }
  const auto delay = now ? std::chrono::milliseconds(0) : backoff_.next(rng_);
  pending_delay_ = delay;
  if (refused_early) {
    notice("the edge " + options_.edge.authority() +
           " refused our 0-RTT (0-RTT rejected by the server: restarted since our ticket, or "
           "other limits): dialling again with a full handshake");
  } else {
    notice(why + "; reconnecting in " + seconds_text(delay));
  }
  // Close the dead connection from a fresh handler (we may be inside its callbacks); the objects go
  // at the next attempt.
  asio::post(io_, [this, n, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired() && n == attempt_ && client_) client_->close("session ended");
  });
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired()) return;
    attempt();
  });
}

void TunnelAgent::on_control(uint64_t n, const ControlEvent& ev) {
  if (n != attempt_ || tearing_down_) return;
  const TunnelSpec* s = spec(ev.id);
  if (!s) {
    spdlog::warn("agent: the edge answered for tunnel id {}, which we never registered", ev.id);
    return;
  }
  if (ev.kind == ControlEvent::Kind::kRegistered) {
    registered_.insert(ev.id);
    if (events_.on_registered) events_.on_registered(*s, ev.url);
    return;
  }
  if (events_.on_refused) events_.on_refused(*s, ev.code, ev.message);
  if (ev.code == "taken") {
    // Possibly our own previous session, not yet timed out at the edge: ask again later.
    const bool first = taken_refusals_[ev.id]++ == 0;
    auto timer =
        std::make_shared<asio::steady_timer>(io_, first ? options_.first_taken_retry : options_.taken_retry);
    register_timers_.push_back(timer);
    timer->async_wait(
        [this, n, id = ev.id, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
          if (ec || alive.expired() || n != attempt_ || !session_) return;
          session_->register_again(id);
        });
    return;
  }
  if (options_.exit_on_refusal) {
    fatal("the edge refused " + s->hostname +
          (ev.message.empty() ? " (" + ev.code + ")" : ": " + ev.message));
  }
}

}  // namespace wtmesh::agent
