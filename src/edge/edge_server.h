// The edge process: one UDP endpoint serving HTTP/3 + WebTransport, the public HTTPS listener on the
// same port number over TCP (and optionally plain HTTP on another), certificates from its state
// directory, and the services mounted on WebTransport paths: /echo (diagnostics, only with
// EdgeOptions::echo) and /ingress-mesh
// (agents' tunnel sessions, edge/tunnel_service.h).
//
// Per QUIC connection it builds the stack quic::Connection → h3::Connection → wt::H3Server and a
// timer that drives the WebTransport layer's deadlines (buffered streams, deferred CONNECTs). One
// more timer drives the tunnel service (heartbeats, token expiry).
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "edge/connect_bridges.h"
#include "edge/drain_plan.h"
#include "edge/metrics.h"
#include "edge/public_connection.h"
#include "edge/public_limits.h"
#include "edge/route_table.h"
#include "edge/tcp_tunnels.h"
#include "edge/udp_connects.h"
#include "edge/udp_tunnels.h"
#include "edge/visitor_challenge.h"
#include "quic/certs.h"
#include "quic/connection.h"
#include "quic/endpoint.h"
#include "quic/endpoint_group.h"
#include "quic/tls_context.h"
#include "tunnel/visitor_policy.h"
#include "wt/config.h"
#include "wt/session.h"

namespace wtmesh::edge {

class AdminListener;
class JtiCache;
class SharedRouteTable;
class WorkerDirectory;
class BrowserConnect;
class EchoSession;
class EdgeQuicApp;
class NameCertIssuer;
class SharedNameCertIssuer;
class AuthFailureLimiter;
class SubjectLedger;
class ReturnedAgents;
class PublicListenerShared;
class PortSteering;
class PortPool;
class PublicListener;
struct PublicListenerOptions;
class TlsServerConfig;
class TunnelService;

// What the workers of one edge share (edge/edge_workers.h); an EdgeServer with it set is worker
// `index` of `count`: its route leases name it (worker_edge_id), public exchanges reach tunnels on the
// other workers through its WorkerDirectory, its QUIC endpoint joins `quic` and every socket it binds
// to the shared address has SO_REUSEPORT (the first worker picks the ports, the others take them).
struct EdgeWorkerContext {
  unsigned index = 0;
  unsigned count = 1;
  std::string edge_id;  // the edge's own, without the worker
  SharedRouteTable* routes = nullptr;
  quic::EndpointGroup* quic = nullptr;
  std::shared_ptr<JtiCache> jtis;              // session tokens are used once across the workers
  std::array<uint8_t, 32> challenge_secret{};  // the visitor challenge's key: a pass is good on every worker
  // The first worker's QUIC TLS context (null: this is the first), whose ticket key and 0-RTT replay
  // store every worker shares (TlsServerContext::share_resumption_across_threads): a ticket works,
  // and a replayed ClientHello is caught, on every worker.
  std::shared_ptr<const quic::TlsServerContext> resumption;
  // One leaf per tunnel name on every worker (edge/name_certs.h).
  std::shared_ptr<SharedNameCertIssuer> name_certs;
  // Limits that are the edge's, not a worker's: an address's failed session tokens and visitor
  // credentials, and a token subject's sessions and tunnels. (An address's QUIC connections are
  // counted by the EndpointGroup.)
  std::shared_ptr<AuthFailureLimiter> auth_failures;
  std::shared_ptr<AuthFailureLimiter> visitor_failures;
  std::shared_ptr<SubjectLedger> subjects;
  // The agents that came back to the draining edge, whichever worker their new session reached.
  std::shared_ptr<ReturnedAgents> returned;
  // The HTTPS and the plain HTTP listeners' per-address counts (edge/public_listener.h).
  std::shared_ptr<PublicListenerShared> https_counts;
  std::shared_ptr<PublicListenerShared> http_counts;
  // ... and hand a connection to the worker holding the name it asks for (edge/listener_steering.h).
  std::shared_ptr<PortSteering> https_steering;
  std::shared_ptr<PortSteering> http_steering;
  // The edge's drain: each worker's agents still to move (edge/drain_plan.h).
  std::shared_ptr<WorkerDrainCounts> drains;
  // The TCP and UDP tunnels' public ports: one held by a tunnel on any worker is held.
  std::shared_ptr<PortPool> tcp_ports;
  std::shared_ptr<PortPool> udp_ports;
  // The public TLS listeners' session-ticket key: a ticket works on every worker's listener.
  std::shared_ptr<const std::vector<uint8_t>> public_ticket_key;
};

struct EdgeOptions {
  // QUIC (UDP) and public HTTPS (TCP) share this address and port; port 0 picks one free for both.
  boost::asio::ip::udp::endpoint listen;
  std::string domain = "localhost";  // the tunnels' domain (NAME.DOMAIN)
  std::filesystem::path state_dir;   // certificates, and keys/ for tunnel tokens
  // PEM files to use instead of the generated local CA + leaf (both or neither).
  std::optional<std::filesystem::path> cert_file;
  std::optional<std::filesystem::path> key_file;
  std::vector<std::string> allowed_origins;  // empty = any origin
  // The diagnostic WebTransport echo at /echo (`wtmesh doctor`, browser checks): off unless asked
  // for (--echo), since it answers anyone; when on, allowed_origins applies to it as to every session.
  bool echo = false;
  // TransportLimits' defaults but for the unresponsive floor: 2 s, not 600 ms. An agent whose NAT
  // rebound while it was silent cannot be reached until it sends again (its 1 s keep-alive PING), so
  // the edge waits longer than that before it gives a peer up (docs/protocol.md §2).
  quic::TransportLimits limits = [] {
    quic::TransportLimits l;
    l.unresponsive_floor = std::chrono::milliseconds(2000);
    return l;
  }();
  // A QUIC connection whose handshake completed but that opened no WebTransport session and sent no
  // HTTP/3 request within this long is closed with H3_NO_ERROR (--session-deadline; issue 14 6b).
  std::chrono::milliseconds session_deadline{10'000};
  // New QUIC connections per client address (IPv6: one /64): live ones, and a handshake token
  // bucket (--quic-max-connections-per-ip, --quic-handshakes-per-ip; quic/address_limits.h).
  quic::AddressLimitOptions quic_address_limits;
  // Token-less Initials get a Retry (address validation) while this many QUIC connections are open;
  // 0: always (--quic-retry-above).
  size_t quic_retry_above = quic::ServerOptions{}.retry_above;
  // Live QUIC connections in all (agents, HTTP/3 visitors, handshakes); beyond, Initials are refused
  // (--quic-max-connections).
  size_t quic_max_connections = quic::ServerOptions{}.max_connections;
  wt::ServerConfig wt;

  // Public side.
  bool public_https = true;                                   // HTTPS on TCP at listen's port
  std::optional<boost::asio::ip::tcp::endpoint> http_listen;  // optional plain HTTP
  bool http2 = true;  // public HTTP/2: ALPN "h2" on HTTPS, prior knowledge on plain HTTP
  // With workers: a public TCP connection is handed to the worker whose agent holds its name
  // (edge/listener_steering.h; --no-steering turns it off).
  bool steer_connections = true;
  // Public HTTP/3 on the QUIC port (tunnel names' requests beside the agents' sessions), announced
  // by Alt-Svc on HTTPS responses.
  bool http3 = true;
  // Against unauthenticated clients: to both listeners, and max_streams_per_client to the sessions.
  PublicLimits public_limits;
  // Tunnels.
  std::chrono::milliseconds heartbeat_interval{10'000};
  std::chrono::seconds offline_grace{300};
  // The longest lifetime of a session token minted from a credential (--session-token-ttl). Revoked
  // credentials are listed in state_dir/revoked (`wtmesh revoke`).
  std::chrono::seconds session_token_ttl{300};  // a departed tunnel's name answers 502, not 404, this long
  // TCP tunnels (edge/tcp_tunnels.h): ports on listen's address; its listen_address is set from it.
  bool tcp_tunnels = true;
  TcpTunnelOptions tcp;
  // The admin listener (GET /metrics, GET /ready; edge/admin_listener.h): off unless set.
  std::optional<boost::asio::ip::tcp::endpoint> admin_listen;
  // The mesh (edge/connect_bridges.h): names the edge reaches itself over TCP (--route NAME=HOST:PORT)
  // and over UDP (--udp-route NAME=HOST:PORT, edge/udp_connects.h), and connect streams one agent
  // session may hold at once.
  std::vector<EdgeRoute> routes;
  std::vector<EdgeRoute> udp_routes;
  size_t max_connect_streams = 100;
  // Every http tunnel must bring visitor auth (basic auth or allowed ranges; tunnel/visitor_policy.h).
  bool require_visitor_auth = false;
  // The least visitor auth every http tunnel must bring (--visitor-auth-min; tunnel::VisitorAuthMin).
  tunnel::VisitorAuthMin visitor_auth_min = tunnel::VisitorAuthMin::kNone;
  unsigned challenge_bits = kDefaultChallengeBits;  // the --challenge page's work (edge/visitor_challenge.h)
  // One token subject across the edge (TunnelServiceConfig): live sessions and tunnels on them.
  size_t max_sessions_per_subject = 100;
  size_t max_tunnels_per_subject = 1000;
  // UDP tunnels (edge/udp_tunnels.h): ports on listen's address, likewise.
  bool udp_tunnels = true;
  UdpTunnelOptions udp;
  // Set by EdgeWorkers for each of its workers; unset: the edge runs alone on one thread.
  std::optional<EdgeWorkerContext> worker;
};

class EdgeServer {
 public:
  // Prepares certificates and keys and binds the sockets; throws std::runtime_error with a clear
  // sentence.
  EdgeServer(boost::asio::io_context& io, EdgeOptions options);
  ~EdgeServer();
  EdgeServer(const EdgeServer&) = delete;
  EdgeServer& operator=(const EdgeServer&) = delete;

  boost::asio::ip::udp::endpoint local_endpoint() const { return endpoint_->local_endpoint(); }
  // The public HTTPS listener (same port as local_endpoint()), if enabled.
  std::optional<boost::asio::ip::tcp::endpoint> https_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> http_endpoint() const;
  const quic::CertFiles& certs() const { return certs_; }
  size_t connection_count() const { return endpoint_->connection_count(); }
  size_t public_connection_count() const;
  TunnelService& tunnels() { return *tunnels_; }
  TcpTunnels* tcp_tunnels() { return tcp_.get(); }
  UdpTunnels* udp_tunnels() { return udp_.get(); }
  // UDP flows toward names for clients that are not sockets (null without UDP tunnels).
  UdpConnects* udp_connects() { return udp_connects_.get(); }
  const LocalRouteTable& routes() const { return routes_; }  // alone only (workers share theirs)
  // What the public side asks: the TunnelService alone, the worker's WorkerDirectory among workers.
  TunnelDirectory& directory();
  WorkerDirectory* worker_directory() { return directory_.get(); }
  // The QUIC TLS context in use (its resumption state is what the other workers share).
  std::shared_ptr<const quic::TlsServerContext> quic_tls_context() const { return quic_tls_; }
  std::optional<boost::asio::ip::tcp::endpoint> admin_endpoint() const;
  // True once every listener is up, false again from shutdown() on (GET /ready).
  bool ready() const { return serving_.load(); }
  // The /metrics text: the edge's counters, gauges read now, and the agents' latest telemetry.
  std::string metrics_text() const;
  const EdgeMetrics& metrics() const { return metrics_; }
  // Closes public connections and tunnel sessions (code 4, draining), then (after kDrainGrace when
  // there were sessions, so their close capsules leave first) every QUIC connection (H3_NO_ERROR);
  // stops reading once they are gone.
  void shutdown();
  static constexpr std::chrono::milliseconds kDrainGrace{100};
  // Graceful drain (SIGTERM; edge/drain_plan.h, docs/protocol.md §3.6): GET /ready 503; agents get
  // DRAIN (and GOAWAY on their QUIC connections) and new agent sessions 503; once the agents moved
  // (or options.handoff passed) the public side takes no new work and its requests finish; then, or
  // when options.grace ran out, shutdown(). `done` is called once the connections are closed.
  void drain(DrainPlan::Options options, std::function<void()> done);
  DrainPlan::Phase drain_phase() const { return drain_.phase(); }
  DrainCounts drain_counts() const;
  // How often the drain looks at its counts.
  static constexpr std::chrono::milliseconds kDrainPoll{50};
  // Runs the renewal check now; true if a new leaf is in use. (The timer calls it hourly.)
  bool check_certificates();
  // How often generated certificates are checked for renewal.
  static constexpr std::chrono::minutes kRenewalCheck{60};
  // How often free heap memory is given back (common/allocator.h), when at least kTrimAbove is free:
  // after a flood of connections the process returns to its working size instead of its peak.
  static constexpr std::chrono::seconds kMemoryCheck{5};
  static constexpr std::chrono::milliseconds kTunnelBatch{50};  // sessions' ticks: arm_tunnel_timer()
  static constexpr size_t kTrimAbove = 16u << 20;

 private:
  void on_connection(quic::Connection& conn);
  // Generated certificates: checks hourly and, when ensure_state_certs issued a new leaf, new
  // connections use it (existing ones keep the context they started with).
  void schedule_renewal();
  void bind_sockets();
  PublicListenerOptions listener_options(boost::asio::ip::tcp::endpoint bind, bool tls);
  // WebTransport over HTTP/2 on the HTTPS listener: agents' tunnel sessions (the same acceptance as
  // over HTTP/3, TunnelService::accept) and /echo (doctor); other paths 404.
  wt::Acceptor webtransport_acceptor();
  // The per-name certificate selector (generated certificates only), then the TLS contexts using it.
  void load_name_certs();
  // A QUIC TLS context for the current certificates; session tickets and their replay store carry
  // over from the previous one.
  std::shared_ptr<quic::TlsServerContext> quic_tls();
  void load_public_tls();
  void arm_tunnel_timer();
  void drain_step();
  void schedule_memory_check();
  // Counts a public exchange by the tunnel that serves its host ("_none" when none does).
  void count_request(const RequestLog& l);

  boost::asio::io_context& io_;
  EdgeOptions options_;
  quic::CertFiles certs_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  LocalRouteTable routes_;
  EdgeMetrics metrics_;  // outlives everything that counts into it
  std::atomic<bool> serving_{false};         // read by another thread among workers (EdgeWorkers::ready)
  std::unique_ptr<TunnelService> tunnels_;   // outlives the QUIC endpoint (sessions report to it)
  std::unique_ptr<WorkerDirectory> directory_;  // among workers: in front of tunnels_ for the public side
  std::unique_ptr<TcpTunnels> tcp_;          // between the two: sessions unpublish into it, it uses tunnels_
  std::unique_ptr<ConnectBridges> connect_;  // likewise: bridges connect streams on tunnels_
  std::unique_ptr<UdpTunnels> udp_;          // likewise
  std::unique_ptr<UdpConnects> udp_connects_;  // likewise: flows of `connect --udp` on udp_'s tunnels
  std::unique_ptr<BrowserConnect> browser_;  // /connect/NAME sessions: uses tunnels_, connect_, udp_connects_
  std::shared_ptr<NameCertIssuer> issuer_;
  quic::SniSelector name_certs_;
  std::shared_ptr<const TlsServerConfig> public_tls_;
  std::shared_ptr<quic::TlsServerContext> quic_tls_;  // the newest, for its session ticket state
  std::unique_ptr<quic::Endpoint> endpoint_;
  boost::asio::steady_timer renew_timer_;
  boost::asio::steady_timer tunnel_timer_;
  boost::asio::steady_timer shutdown_timer_;
  boost::asio::steady_timer memory_timer_;
  std::optional<std::chrono::steady_clock::time_point> tunnel_timer_at_;
  DrainPlan drain_{DrainPlan::Options{}};
  std::function<void()> drain_done_;
  boost::asio::steady_timer drain_timer_;
  std::set<EdgeQuicApp*> apps_;           // the QUIC connections' state (each removes itself)
  std::unique_ptr<AdminListener> admin_;  // destroyed before what it reads
  // /echo handlers of sessions over HTTP/2 (finished ones dropped at the next accept); after https_ in
  // destruction order is before it in declaration: the connections tell them their end first.
  std::vector<std::unique_ptr<EchoSession>> h2_echo_;
  // Destroyed first: public connections cancel their streams while the sessions still exist.
  std::unique_ptr<PublicListener> https_;
  std::unique_ptr<PublicListener> http_;
};

}  // namespace wtmesh::edge
