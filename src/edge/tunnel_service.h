// The edge's tunnel service: the acceptor for /ingress-mesh (token and protocol-version checks before
// any session exists), the registry of live AgentSessions, and the TunnelDirectory the public HTTP
// side uses to find a tunnel and open request streams on it. Sans-I/O: time comes from on_tick(now)
// (the edge's timer calls it at next_deadline()) and from the configured clocks.
//
// Acceptance (docs/protocol.md §1), in this order:
//   the client's address had too many authentication failures (edge/auth_failures.h)         → 429
//   no/invalid bearer token, bad signature, unknown kid, expired, not yet valid, wrong audience → 401
//   valid token naming no host under this edge's domain                                      → 403
//   no common wtmesh-protocol version                                                         → 400
//   otherwise 200 with `wtmesh-protocol: 1`.
// A kid the edge does not know makes it reload its verifier keys (at most every kKeyReloadInterval),
// so keys added by `wtmesh token` after the edge started are picked up.
//
// Session tokens minted from credentials (tunnel/credential.h, docs/protocol.md §6.1) are verified
// with the same keys, then against the revocation list (re-read when its file changes, checked every
// kRevocationCheck; live sessions of a revoked credential close with code 5) and the replay cache (a
// jti is accepted once, remembered until its token expires; at most max_replay_entries). A RENEW
// (§3.3) must carry a session token of the session's own credential with the same scope.
//
// Routes are found in the RouteTable (edge/route_table.h), which also keeps a departed tunnel's name
// "offline" (502 rather than 404) for its grace. A route held by an owner that is no live session of
// this edge (another edge's, or one that just ended) is offline too. The table may answer later than
// route() returns: such lookups wait in a map by ticket, and cancel_route() drops one.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "edge/agent_session.h"
#include "edge/auth_failures.h"
#include "edge/deadline_queue.h"
#include "edge/jti_cache.h"
#include "edge/returned_agents.h"
#include "edge/route_table.h"
#include "edge/subject_ledger.h"
#include "edge/tunnel_directory.h"
#include "tunnel/credential.h"
#include "tunnel/revocation.h"
#include "tunnel/token.h"
#include "wt/session.h"

namespace wtmesh::edge {

// "edge-" and 12 random hex digits: an edge's id in route leases when none is configured.
std::string random_edge_id();

struct TunnelServiceConfig {
  AgentSessionConfig session;
  std::string edge_id;  // prefix of route owners; empty = random
  std::chrono::seconds token_leeway = tunnel::kDefaultLeeway;
  size_t max_sessions = 10'000;  // live tunnel sessions on this edge, every worker's (503 beyond)
  std::function<std::chrono::system_clock::time_point()> wall_clock;  // default: system_clock::now
  // Fresh verifier keys (e.g. KeyStore::load_verifiers); empty = never reload.
  std::function<tunnel::VerifierKeySet()> reload_keys;
  // Authentication failures (401s) per client address before its requests get 429 unverified.
  AuthFailureLimits auth_failures;
  // The workers of one edge count an address's failures together (null: this service's own).
  std::shared_ptr<AuthFailureLimiter> shared_auth_failures;
  // ... and a subject's sessions and tunnels (null: this service's own).
  std::shared_ptr<SubjectLedger> subjects;
  // ... and the agents that came back to it while it drains (null: this service's own).
  std::shared_ptr<ReturnedAgents> returned;
  // One token subject (every agent with tokens for it) across this edge: live sessions (429 beyond)
  // and tunnels on them (REGISTER refused "limit" beyond), so one `*` token cannot fill the route
  // table (issue 14 6g). The per-session cap is AgentSessionConfig::max_tunnels.
  size_t max_sessions_per_subject = 100;
  size_t max_tunnels_per_subject = 1000;
  // 401/429 answers one QUIC connection may get before the edge closes it (EdgeServer counts them).
  size_t max_auth_failures_per_connection = 3;
  // The longest exp - iat a credential's session token may have (--session-token-ttl).
  std::chrono::seconds session_token_ttl = tunnel::kDefaultSessionTokenTtl;
  // Session-token jtis remembered against replay; a token past it (none expired) is refused.
  size_t max_replay_entries = 65'536;
  // The jti cache, shared by the workers of one edge (edge/jti_cache.h); null: the service's own.
  std::shared_ptr<JtiCache> jtis;
  // The revoked credential ids (tunnel/revocation.h); unset = none are.
  std::optional<std::filesystem::path> revocation_file;
};

class TunnelService final : public TunnelDirectory {
 public:
  static constexpr std::chrono::seconds kKeyReloadInterval{5};
  static constexpr std::chrono::seconds kRevocationCheck{2};

  TunnelService(TunnelServiceConfig config, RouteTable& routes, tunnel::VerifierKeySet keys);
  ~TunnelService() override;
  TunnelService(const TunnelService&) = delete;
  TunnelService& operator=(const TunnelService&) = delete;

  // The wt acceptor for kSessionPath.
  wt::Accept accept(const wt::SessionInfo& info);
  // Verifies a token with this edge's keys (reloaded when its key is unknown, at most every
  // kKeyReloadInterval).
  // A session token (tunnel::is_session_token) is checked against the revocation list (re-read first
  // if its file changed) and the replay cache too, and its jti is then remembered.
  tunnel::VerifyResult verify(std::string_view token);
  // Re-reads the revocation file if it changed and closes the live sessions of revoked credentials
  // (on_tick does it every kRevocationCheck).
  void check_revocations();
  const tunnel::RevocationList& revoked() const { return revoked_; }
  size_t replay_entries() const { return config_.jtis->size(); }
  void set_verifiers(tunnel::VerifierKeySet keys) { keys_ = std::move(keys); }
  // Serves REGISTERs of type "tcp" on sessions accepted afterwards (not owned; outlives them).
  void set_tcp_publisher(TcpPublisher* tcp) { config_.session.tcp = tcp; }
  // Serves connect streams on sessions accepted afterwards (not owned; outlives them).
  void set_connect_broker(ConnectBroker* broker) { config_.session.connect = broker; }
  // Serves REGISTERs of type "udp" likewise.
  void set_udp_publisher(UdpPublisher* udp) { config_.session.udp = udp; }
  // A multi-worker edge (edge/worker_directory.h): asks the worker holding `holder`'s session to
  // hand the route over to a session of the agent `instance` with token subject `subject`
  // (hand_over_to below, there); `done` runs here with its answer. False (and `done` never runs)
  // when `holder` is no session of another worker of this edge.
  using RemoteHandOver = std::function<bool(const std::string& holder, const std::string& type,
                                            const std::string& name, const std::string& instance,
                                            const std::string& subject, std::function<void(bool)> done)>;
  void set_remote_hand_over(RemoteHandOver fn) { remote_hand_over_ = std::move(fn); }
  // The session `holder` of this service hands route {type, name} over to the agent's newer session
  // (docs/protocol.md §3.5) if it is live and of the same agent `instance` and token `subject`.
  bool hand_over_to(const std::string& holder, RouteKey key, const std::string& instance,
                    const std::string& subject);
  // Reaches udp tunnels for connect streams with flag `udp` likewise.
  void set_udp_connects(UdpConnects* connects) { config_.session.udp_connects = connects; }
  // Where the public listener is, for REGISTERED urls (sessions accepted afterwards).
  void set_public_url(std::string scheme, uint16_t port) {
    config_.session.public_scheme = std::move(scheme);
    config_.session.public_port = port;
  }

  std::optional<SteadyTime> next_deadline() const;
  void on_tick(SteadyTime now);
  // Called when next_deadline() may have moved earlier (a session was accepted, or one's own
  // deadline moved earlier).
  void set_wakeup(std::function<void()> fn) { wakeup_ = std::move(fn); }
  // Ends every live session with `code` (e.g. kCloseDraining at shutdown).
  void close_all(uint32_t code, std::string_view reason);
  // The edge drains (docs/protocol.md §3.6): session requests are refused from now on (503, header
  // wtmesh-error "draining"), and every live session gets DRAIN_WEBTRANSPORT_SESSION; its agent opens
  // a session elsewhere, registers there, and answers with a DRAIN of its own (AgentSession::moved).
  void drain();
  bool draining() const { return draining_; }
  // Live sessions holding tunnels whose agent has not said it moved yet and has not come back to
  // this edge (on any of its workers: ReturnedAgents); what the handoff waits for.
  size_t sessions_to_move() const;

  size_t session_count() const;
  // Streams open on live sessions (request, tcp and relayed ones).
  size_t stream_count() const;
  // The latest telemetry report of each live session that sent one, oldest session first.
  std::vector<AgentTelemetry> telemetry(SteadyTime now) const;
  AgentSession* find_session(uint64_t serial) const;
  AgentSession* find_owner(std::string_view owner) const;
  const TunnelServiceConfig& config() const { return config_; }

  // --- TunnelDirectory ---
  uint64_t route(std::string_view host, RouteEvents* events) override {
    return route_of(kHttp, host, events);
  }
  uint64_t route_of(std::string_view type, std::string_view host, RouteEvents* events) override;
  void cancel_route(uint64_t ticket) override;
  VisitorGate* visitor_gate(const RouteLookup& route) override;
  OpenStatus open_request(const RouteLookup& route, std::string_view client, RequestStreamEvents* events,
                          StreamRef* out) override;
  size_t write(const StreamRef& ref, std::span<const uint8_t> data, bool fin) override;
  size_t send_capacity(const StreamRef& ref) override;
  void consume(const StreamRef& ref, size_t n) override;
  void cancel(const StreamRef& ref, uint32_t code) override;
  void release(const StreamRef& ref) override;
  uint64_t add_relay(const RouteLookup& route, WtRelayPeer* peer) override;
  bool add_relay_as(const RouteLookup& route, uint64_t relay_id, WtRelayPeer* peer) override;
  void remove_relay(const RouteLookup& route, uint64_t relay_id) override;
  bool send_relay_datagram(const RouteLookup& route, uint64_t relay_id,
                           std::span<const uint8_t> payload) override;

 private:
  // Re-reads the revocation file if it changed; true when a new list was loaded.
  bool reload_revocations();
  // Closes the live sessions whose credential the list names (code 5).
  void close_revoked();
  SteadyTime steady_now() const;
  std::chrono::system_clock::time_point wall_now() const;
  void count_refusal(SessionRefusal why) {
    if (config_.session.metrics != nullptr) config_.session.metrics->on_session_refused(why);
  }
  // A 401 for `key` (the client's address key): counted, and logged when the address runs out.
  void auth_failed(const std::string& key, const std::string& from);
  // 0 while `subject`'s live sessions hold fewer than max_tunnels_per_subject tunnels, else the cap.
  size_t subject_full(const std::string& subject) const;
  void on_session_ended(uint64_t serial, const std::vector<std::string>& hostnames);
  RenewOutcome renew(const AgentSession& session, const std::string& token);
  tunnel::VerifyResult verify_with_keys(std::string_view token, bool session_token);
  // The steady time at which a token expiring at `exp` (wall clock) ends its session.
  SteadyTime deadline_of(std::chrono::system_clock::time_point exp) const;
  void collect();  // destroys sessions that ended (never from inside one of their calls)
  // Asks `serial`'s next_deadline() and queues it (wakes the timer when that is earlier).
  void schedule(uint64_t serial);
  void on_lookup(uint64_t ticket, const RouteMatch& match);

  TunnelServiceConfig config_;
  RouteTable& routes_;
  tunnel::VerifierKeySet keys_;
  std::optional<SteadyTime> last_key_reload_;
  std::shared_ptr<AuthFailureLimiter> auth_failures_;  // config_.shared_auth_failures, or its own
  tunnel::RevocationList revoked_;
  bool close_revoked_due_ = false;  // verify() loaded a new list: on_tick closes its sessions
  std::optional<SteadyTime> last_revocation_check_;
  std::optional<std::filesystem::file_time_type> revocation_mtime_;
  uintmax_t revocation_size_ = 0;
  std::function<void()> wakeup_;
  RemoteHandOver remote_hand_over_;
  bool draining_ = false;
  uint64_t next_serial_ = 0;
  std::map<uint64_t, std::unique_ptr<AgentSession>> sessions_;
  DeadlineQueue deadlines_;      // when each session wants its on_tick
  std::vector<uint64_t> ended_;  // sessions that ended, destroyed by the next collect()
  std::map<std::string, uint64_t, std::less<>> owners_;              // owner id → serial (live sessions)
  std::shared_ptr<SubjectLedger> subjects_;                          // config_.subjects, or its own
  std::shared_ptr<ReturnedAgents> returned_;                         // config_.returned, or its own
  // Lookups the table has not answered yet; the one being asked now is answered into `answered_`.
  uint64_t last_ticket_ = 0;
  uint64_t asking_ = 0;
  std::optional<RouteLookup> answered_;
  std::map<uint64_t, RouteEvents*> lookups_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // route table completions check it
};

}  // namespace wtmesh::edge
