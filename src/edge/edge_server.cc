#include "edge/edge_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>

#include "common/allocator.h"
#include "edge/admin_listener.h"
#include "edge/browser_connect.h"
#include "edge/echo_service.h"
#include "edge/edge_quic_app.h"
#include "edge/http_codec.h"
#include "edge/name_certs.h"
#include "edge/public_listener.h"
#include "edge/shared_route_table.h"
#include "edge/ticket_key.h"
#include "edge/tls_server_stream.h"
#include "edge/tunnel_service.h"
#include "edge/worker_directory.h"
#include "h3/error_codes.h"
#include "tunnel/keystore.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

namespace asio = boost::asio;

EdgeServer::EdgeServer(asio::io_context& io, EdgeOptions options)
    : io_(io),
      options_(std::move(options)),
      routes_(LocalRouteTable::Limits{.offline_grace = options_.offline_grace}),
      renew_timer_(io),
      tunnel_timer_(io),
      shutdown_timer_(io),
      memory_timer_(io),
      drain_timer_(io) {
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
  load_name_certs();
  auto tls = quic_tls();
  options_.wt.allowed_origins = options_.allowed_origins;

  // Token keys: the signing key is created on first start so `wtmesh token --state-dir` signs with
  // a key this edge accepts.
  tunnel::VerifierKeySet keys = tunnel::KeyStore(options_.state_dir).load_verifiers();
  TunnelServiceConfig tc;
  tc.session.domain = options_.domain;
  tc.session.ping_interval = options_.heartbeat_interval;
  tc.session.max_streams_per_client = options_.public_limits.max_streams_per_client;
  tc.session.metrics = &metrics_;
  tc.session.max_connect_streams = options_.max_connect_streams;
  tc.session.require_visitor_auth = options_.require_visitor_auth;
  tc.session.visitor_auth_min = options_.visitor_auth_min;
  tc.session.visitor_env = std::make_shared<VisitorEnvironment>(tc.auth_failures);
  tc.session.visitor_env->challenge_bits = options_.challenge_bits;
  tc.session.visitor_env->metrics = &metrics_;
  tc.max_sessions_per_subject = options_.max_sessions_per_subject;
  tc.max_tunnels_per_subject = options_.max_tunnels_per_subject;
  tc.reload_keys = [dir = options_.state_dir] { return tunnel::KeyStore(dir).load_verifiers(); };
  tc.session_token_ttl = options_.session_token_ttl;
  tc.revocation_file = tunnel::RevocationList::file_in(options_.state_dir);
  RouteTable& table = options_.worker ? static_cast<RouteTable&>(*options_.worker->routes) : routes_;
  std::shared_ptr<VisitorEnvironment> visitor_env = tc.session.visitor_env;
  if (options_.worker) {
    const EdgeWorkerContext& w = *options_.worker;
    tc.edge_id = worker_edge_id(w.edge_id, w.index);
    tc.session.relay_id_block = w.index;
    tc.jtis = w.jtis;
    tc.shared_auth_failures = w.auth_failures;
    tc.subjects = w.subjects;
    tc.returned = w.returned;
    visitor_env->key = ChallengeKey(w.challenge_secret);
    if (w.visitor_failures) visitor_env->failures = w.visitor_failures;
  }
  tunnels_ = std::make_unique<TunnelService>(std::move(tc), table, std::move(keys));
  if (options_.worker) {
    directory_ = std::make_unique<WorkerDirectory>(io_, options_.worker->index, options_.worker->edge_id,
                                                   *tunnels_, *options_.worker->routes, visitor_env);
    directory_->set_open_timeout(options_.public_limits.open_timeout);
    // An agent's newer session may land on another worker than the one holding its names.
    directory_->set_local_hand_over([this](const std::string& holder, RouteKey key,
                                           const std::string& instance, const std::string& subject) {
      return tunnels_->hand_over_to(holder, key, instance, subject);
    });
    tunnels_->set_remote_hand_over([this](const std::string& holder, const std::string& type,
                                          const std::string& name, const std::string& instance,
                                          const std::string& subject, std::function<void(bool)> done) {
      return directory_->ask_hand_over(holder, type, name, instance, subject, std::move(done));
    });
  }
  tunnels_->set_wakeup([this] { arm_tunnel_timer(); });
  if (options_.tcp_tunnels) {
    TcpTunnelOptions to = options_.tcp;
    to.listen_address = options_.listen.address();
    if (options_.worker) to.ports = options_.worker->tcp_ports;
    tcp_ = std::make_unique<TcpTunnels>(io_, *tunnels_, std::move(to));
    tunnels_->set_tcp_publisher(tcp_.get());
  }
  std::map<std::string, asio::ip::tcp::endpoint> routes;
  for (const auto& r : options_.routes) routes[r.name] = r.target;
  connect_ = std::make_unique<ConnectBridges>(io_, directory(), std::move(routes), options_.tcp.read_chunk);
  tunnels_->set_connect_broker(connect_.get());
  BrowserConnectOptions bo;
  bo.domain = options_.domain;
  bo.max_streams = options_.max_connect_streams;
  bo.metrics = &metrics_;
  if (options_.udp_tunnels) {
    UdpTunnelOptions uo = options_.udp;
    uo.listen_address = options_.listen.address();
    if (options_.worker) uo.ports = options_.worker->udp_ports;
    auto link = [this](uint64_t serial) -> UdpFlowLink* { return tunnels_->find_session(serial); };
    udp_ = std::make_unique<UdpTunnels>(io_, std::move(link), std::move(uo));
    tunnels_->set_udp_publisher(udp_.get());
    if (directory_) directory_->set_udp(udp_.get());
  }
  if (udp_ || !options_.udp_routes.empty()) {
    UdpRoutes ur;
    for (const auto& r : options_.udp_routes)
      ur.targets[r.name] = asio::ip::udp::endpoint(r.target.address(), r.target.port());
    ur.flows = options_.udp.flows;
    // Among workers the directory reaches udp tunnels held on the others too.
    UdpClientFlows* flows = udp_ && directory_ ? static_cast<UdpClientFlows*>(directory_.get()) : udp_.get();
    udp_connects_ = std::make_unique<UdpConnects>(io_, directory(), flows, std::move(ur));
    tunnels_->set_udp_connects(udp_connects_.get());
  }
  browser_ =
      std::make_unique<BrowserConnect>(*tunnels_, directory(), *connect_, udp_connects_.get(), std::move(bo));
  load_public_tls();

  bind_sockets();
  quic::ServerOptions so;
  so.tls = std::move(tls);
  so.limits = options_.limits;
  so.address_limits = options_.quic_address_limits;
  so.retry_above = options_.quic_retry_above;
  so.max_connections = options_.quic_max_connections;
  so.on_connection = [this](quic::Connection& conn) { on_connection(conn); };
  endpoint_->set_on_removed([this](quic::Connection& conn) {
    if (!conn.handshake_completed()) metrics_.on_quic_handshake_failure();
  });
  endpoint_->listen(std::move(so));
  if (!options_.cert_file) schedule_renewal();
  arm_tunnel_timer();
  if (!options_.worker || options_.worker->index == 0) schedule_memory_check();  // one per process
  if (options_.admin_listen) {
    admin_ = std::make_unique<AdminListener>(
        io_, *options_.admin_listen,
        AdminSource{[this] { return ready(); }, [this] { return metrics_text(); }});
  }
  serving_ = true;
}

TunnelDirectory& EdgeServer::directory() {
  if (directory_) return *directory_;
  return *tunnels_;
}

void EdgeServer::count_request(const RequestLog& l) {
  std::string tunnel = "_none";
  if (auto host = normalize_host(l.host)) {
    const auto now = std::chrono::steady_clock::now();
    if (options_.worker) {
      if (std::string p = options_.worker->routes->pattern(kHttp, *host, now); !p.empty())
        tunnel = std::move(p);
    } else if (const RouteMatch m = routes_.find(kHttp, *host, now); m.state != RouteMatch::State::kNone) {
      tunnel = std::string(m.pattern);
    }
  }
  metrics_.on_request(tunnel, l.status, l.bytes);
}

std::string EdgeServer::metrics_text() const {
  EdgeGauges g;
  g.agent_sessions = tunnels_->session_count();
  g.tunnel_streams = tunnels_->stream_count();
  g.public_connections = public_connection_count();
  g.quic_connections = endpoint_ ? endpoint_->connection_count() : 0;
  if (endpoint_) {
    const quic::EndpointStats q = endpoint_->stats();
    g.quic_refused_connection_limit = q.refused;
    g.quic_refused_address_connections = q.refused_address_connections;
    g.quic_refused_handshake_rate = q.refused_handshake_rate;
    g.quic_refused_invalid_token = q.invalid_tokens;
    g.quic_retries = q.retries;
    g.quic_packets_in = q.packets_in;
    g.quic_packets_out = q.packets_out;
    g.quic_timer_wakeups = q.timer_wakeups;
    g.quic_timer_wakeups_empty = q.empty_timer_wakeups;
    g.worker_packets_forwarded = q.forwarded_out - q.forwarded_dropped;
  }
  g.tcp_connections = tcp_ ? tcp_->connection_count() : 0;
  g.worker_hops = directory_ ? directory_->hops_opened() : 0;
  g.worker_steered = (https_ ? https_->steered_out_count() : 0) + (http_ ? http_->steered_out_count() : 0);
  if (udp_) {
    g.udp_flows = udp_->flow_count();
    g.udp_drops = udp_->total_drops();
  }
  if (udp_connects_) {
    g.udp_route_flows = udp_connects_->route_flow_count();
    g.udp_route_refused = udp_connects_->route_refusals();
  }
  const auto now = std::chrono::steady_clock::now();
  auto reports = tunnels_->telemetry(now);
  for (auto& b : browser_->telemetry(now)) reports.push_back(std::move(b));  // after the agents
  return metrics_.render(g, reports);
}

std::optional<asio::ip::tcp::endpoint> EdgeServer::admin_endpoint() const {
  if (!admin_) return std::nullopt;
  return admin_->local_endpoint();
}

void EdgeServer::schedule_memory_check() {
  memory_timer_.expires_after(kMemoryCheck);
  memory_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (release_free_memory(kTrimAbove)) spdlog::debug("edge: gave free heap memory back to the system");
    schedule_memory_check();
  });
}

void EdgeServer::bind_sockets() {
  // With port 0 the UDP port is picked first and TCP must get the same number; if it is taken for
  // TCP, try another.
  constexpr int kAttempts = 20;
  for (int attempt = 0;; ++attempt) {
    try {
      endpoint_ = std::make_unique<quic::Endpoint>(io_, options_.listen, options_.worker.has_value());
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error(e.what());
    }
    if (options_.worker) endpoint_->join_group(*options_.worker->quic, options_.worker->index);
    const auto udp = endpoint_->local_endpoint();
    if (!options_.public_https) break;
    PublicListenerOptions po = listener_options(asio::ip::tcp::endpoint(udp.address(), udp.port()), true);
    try {
      https_ = std::make_unique<PublicListener>(io_, directory(), po, [this] { return public_tls_; });
      break;
    } catch (const boost::system::system_error& e) {
      endpoint_.reset();
      if (options_.listen.port() != 0 || attempt + 1 == kAttempts) {
        throw std::runtime_error("cannot listen for HTTPS on tcp " + po.bind.address().to_string() + ":" +
                                 std::to_string(po.bind.port()) + ": " + e.code().message());
      }
    }
  }
  tunnels_->set_public_url(options_.public_https ? "https" : "http",
                           options_.public_https  ? endpoint_->local_endpoint().port()
                           : options_.http_listen ? options_.http_listen->port()
                                                  : 0);
  if (options_.http_listen) {
    PublicListenerOptions po = listener_options(*options_.http_listen, false);
    try {
      http_ = std::make_unique<PublicListener>(io_, directory(), po);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("cannot listen for HTTP on tcp " + po.bind.address().to_string() + ":" +
                               std::to_string(po.bind.port()) + ": " + e.code().message());
    }
    if (!options_.public_https) tunnels_->set_public_url("http", http_->local_endpoint().port());
  }
}

PublicListenerOptions EdgeServer::listener_options(asio::ip::tcp::endpoint bind, bool tls) {
  // HTTP/3 is announced where it is served: HTTPS shares its port number with the QUIC endpoint.
  std::string alt_svc =
      tls && options_.http3 && endpoint_ ? alt_svc_h3(endpoint_->local_endpoint().port()) : "";
  PublicListenerOptions po{bind,
                           tls,
                           options_.http2,
                           options_.public_limits,
                           std::move(alt_svc),
                           &metrics_,
                           [this](const RequestLog& l) { count_request(l); },
                           tls ? wt::Acceptor(webtransport_acceptor()) : wt::Acceptor()};
  if (options_.worker) {
    const EdgeWorkerContext& w = *options_.worker;
    po.reuse_port = true;
    po.shared = tls ? w.https_counts : w.http_counts;
    po.steering = tls ? w.https_steering : w.http_steering;
    po.worker = w.index;
  }
  return po;
}

wt::Acceptor EdgeServer::webtransport_acceptor() {
  return [this](const wt::SessionInfo& info) -> wt::Accept {
    if (info.path == tunnel::kSessionPath) return tunnels_->accept(info);
    if (info.path == "/echo") {
      std::erase_if(h2_echo_, [](const auto& e) { return e->closed(); });
      h2_echo_.push_back(std::make_unique<EchoSession>());
      spdlog::info("echo: session opened over HTTP/2 authority={} from {}", info.authority.substr(0, 128),
                   info.peer);
      return {200, h2_echo_.back().get(), {}};
    }
    spdlog::info("edge: no WebTransport-over-HTTP/2 service at path {}",
                 info.path.substr(0, info.path.find('?')).substr(0, 128));
    return {404, nullptr, {}};
  };
}

void EdgeServer::load_name_certs() {
  name_certs_ = {};
  if (options_.cert_file) return;
  // Generated certificates: "*.localhost" does not verify for NAME.localhost in OpenSSL or GnuTLS,
  // so every name under the domain gets a leaf of its own from the local CA (one ECDSA signature,
  // cached; cheaper than the handshake that asks for it), and even a 404 page is reachable. The same
  // leaves serve TLS on TCP and HTTP/3 on QUIC.
  issuer_ = options_.worker && options_.worker->name_certs
                ? options_.worker->name_certs->issuer_for(options_.state_dir, certs_.sha256_hex)
                : std::make_shared<NameCertIssuer>(options_.state_dir);
  // append(), not "." + string: GCC 12 at -O3 reports a false -Wrestrict for "lit" + string&&.
  name_certs_ = [suffix = std::string(".").append(lower_ascii(options_.domain)),
                 issuer = issuer_](std::string_view sni) -> std::shared_ptr<const TlsCredentials> {
    const std::string name = lower_ascii(sni);
    if (name.size() <= suffix.size() || !name.ends_with(suffix)) return nullptr;
    return issuer->credentials_for(name);
  };
}

std::shared_ptr<quic::TlsServerContext> EdgeServer::quic_tls() {
  auto tls =
      std::make_shared<quic::TlsServerContext>(quic::TlsServerContext::from_files(certs_.cert, certs_.key));
  tls->set_sni_selector(name_certs_);
  if (quic_tls_) {
    tls->share_resumption(*quic_tls_);
  } else if (options_.worker && options_.worker->resumption) {
    tls->share_resumption_across_threads(*options_.worker->resumption);
  } else {
    tls->enable_resumption(edge_ticket_key(options_.state_dir, options_.limits));
  }
  quic_tls_ = tls;
  return tls;
}

void EdgeServer::load_public_tls() {
  std::span<const uint8_t> ticket_key;
  if (options_.worker && options_.worker->public_ticket_key) ticket_key = *options_.worker->public_ticket_key;
  public_tls_ = TlsServerConfig::from_files(certs_.cert, certs_.key, name_certs_, options_.http2, ticket_key);
}

void EdgeServer::arm_tunnel_timer() {
  const auto now = std::chrono::steady_clock::now();
  auto when = now + std::chrono::seconds(1);
  if (auto d = tunnels_->next_deadline()) when = std::min(when, std::max(*d, now));
  // Sessions' deadlines are served in batches on a 50 ms grid: 10k sessions PING on their own
  // schedules, and one wake-up per deadline would be ~1000 a second.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(when.time_since_epoch());
  when = std::chrono::steady_clock::time_point((ms + kTunnelBatch - std::chrono::milliseconds(1)) /
                                               kTunnelBatch * kTunnelBatch);
  if (tunnel_timer_at_ && *tunnel_timer_at_ <= when && *tunnel_timer_at_ > now) return;  // already sooner
  tunnel_timer_at_ = when;
  tunnel_timer_.expires_at(when);
  tunnel_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    tunnel_timer_at_.reset();
    tunnels_->on_tick(std::chrono::steady_clock::now());
    arm_tunnel_timer();
  });
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
    certs_ = fresh;
    load_name_certs();  // name certificates signed for the new leaf's key
    endpoint_->set_server_tls(quic_tls());
    load_public_tls();  // new public connections: the new leaf, and name certificates with its key
    spdlog::info("edge: certificate renewed, sha256 {}", certs_.sha256_hex);
    return true;
  } catch (const std::exception& e) {
    // Keep serving with the current certificate; the next check tries again.
    spdlog::error("edge: certificate renewal failed: {}", e.what());
    return false;
  }
}

EdgeServer::~EdgeServer() {
  admin_.reset();
  // Public connections first (they cancel their streams on live sessions), then the QUIC side
  // (sessions end and release their routes), then the tunnel service.
  http_.reset();
  https_.reset();
  endpoint_.reset();
  // What uses the directory, before it; it before the services it stands in front of.
  browser_.reset();
  udp_connects_.reset();
  connect_.reset();
  directory_.reset();
  alive_.reset();
}

std::optional<asio::ip::tcp::endpoint> EdgeServer::https_endpoint() const {
  if (!https_) return std::nullopt;
  return https_->local_endpoint();
}

std::optional<asio::ip::tcp::endpoint> EdgeServer::http_endpoint() const {
  if (!http_) return std::nullopt;
  return http_->local_endpoint();
}

size_t EdgeServer::public_connection_count() const {
  return (https_ ? https_->connection_count() : 0) + (http_ ? http_->connection_count() : 0);
}

void EdgeServer::on_connection(quic::Connection& conn) {
  auto app = std::make_unique<EdgeQuicApp>(
      io_, conn, options_, *tunnels_, directory(), *browser_,
      [this](const RequestLog& l) { count_request(l); }, apps_);
  app->arm_tick();
  conn.set_app_state(std::move(app));
}

void EdgeServer::drain(DrainPlan::Options options, std::function<void()> done) {
  if (drain_.started()) return;
  drain_ = DrainPlan(options);
  drain_done_ = std::move(done);
  serving_ = false;  // GET /ready answers 503 from now on: a load balancer takes the edge out
  renew_timer_.cancel();
  memory_timer_.cancel();
  drain_.start(std::chrono::steady_clock::now());
  spdlog::info("edge: draining: {} agent session(s) asked to move; public requests finish within {} ms",
               tunnels_->session_count(), options.grace.count());
  tunnels_->drain();
  for (EdgeQuicApp* a : apps_) a->drain_sessions();
  drain_step();
}

DrainCounts EdgeServer::drain_counts() const {
  DrainCounts c;
  c.agents_to_move = tunnels_->sessions_to_move();
  if (options_.worker && options_.worker->drains) {
    // The edge's handoff: every worker's agents (WorkerDrainCounts).
    options_.worker->drains->publish(options_.worker->index, c.agents_to_move);
    c.agents_to_move = options_.worker->drains->agents_to_move();
  }
  c.public_busy = (https_ ? https_->busy_count() : 0) + (http_ ? http_->busy_count() : 0);
  // Requests this worker's public connections relay to another worker's agent count here too: the
  // worker holding the public connection must not close it under them.
  c.streams = tunnels_->stream_count() + (directory_ ? directory_->near_hops() : 0);
  return c;
}

void EdgeServer::drain_step() {
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const DrainCounts c = drain_counts();
    const DrainPlan::Step step = drain_.advance(now, c);
    if (step == DrainPlan::Step::kNone) break;
    if (step == DrainPlan::Step::kStopPublic) {
      spdlog::info("edge: draining: {}; the public side takes no new work, {} request(s) under way finish",
                   c.agents_to_move == 0 ? "every agent moved" : "handoff time over", c.streams);
      if (https_) https_->drain();
      if (http_) http_->drain();
      endpoint_->refuse_new_connections();
      for (EdgeQuicApp* a : apps_) a->drain_requests();
      continue;
    }
    if (drain_.expired()) {
      spdlog::warn("edge: drain grace over: cutting {} stream(s) and {} public connection(s)", c.streams,
                   c.public_busy);
    } else {
      spdlog::info("edge: drained: every request finished");
    }
    shutdown();
    if (drain_done_) {
      // After shutdown's own grace, so the close capsules and CONNECTION_CLOSEs leave first.
      drain_timer_.expires_after(kDrainGrace * 2);
      drain_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && drain_done_) std::exchange(drain_done_, {})();
      });
    }
    return;
  }
  // Counts change with every request: look again every kDrainPoll (and at the phase's limit).
  auto when = std::chrono::steady_clock::now() + kDrainPoll;
  if (auto d = drain_.next_deadline()) when = std::min(when, *d);
  drain_timer_.expires_at(when);
  drain_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    drain_step();
  });
}

void EdgeServer::shutdown() {
  serving_ = false;  // GET /ready answers 503 while the edge drains
  renew_timer_.cancel();
  memory_timer_.cancel();
  tunnel_timer_.cancel();
  drain_timer_.cancel();
  if (https_) https_->close();
  if (http_) http_->close();
  const bool had_sessions = tunnels_->session_count() > 0;
  tunnels_->close_all(tunnel::kCloseDraining, "edge shutting down");
  if (!had_sessions) {
    if (admin_) admin_->close();
    endpoint_->shutdown(h3::kH3NoError, "edge shutting down");
    return;
  }
  // Let the close capsules (code 4: reconnect elsewhere) leave before CONNECTION_CLOSE, which would
  // otherwise overtake them and the agents would only see their connection drop.
  shutdown_timer_.expires_after(kDrainGrace);
  shutdown_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (admin_) admin_->close();
    endpoint_->shutdown(h3::kH3NoError, "edge shutting down");
  });
}

}  // namespace wtmesh::edge
