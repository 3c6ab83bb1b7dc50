// The tunnel agent: keeps one WebTransport session to the edge at /ingress-mesh (Bearer token,
// wtmesh-protocol: 1), registers its tunnels on it, relays the edge's requests to the local
// services (EdgeSession + UpstreamExchange), and when the session ends reconnects with
// exponential backoff and jitter, registering the same hostnames again. A 401/403 is reported as a
// sentence and retried only at the longest backoff (never in a tight loop), or ends the agent when
// the very first attempt fails that way and exit_on_first_auth_failure is set (`wtmesh http`). With a
// credential it mints a session token per attempt and renews it inside the session; a session closed
// because the credential was revoked (code 5) ends the agent.
// Single-threaded: everything runs on the io_context given.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/edge_session.h"
#include "agent/edge_url.h"
#include "agent/h2_upstream_driver.h"
#include "agent/h3_upstream_driver.h"
#include "agent/resumption_store.h"
#include "agent/tunnel_backoff.h"
#include "agent/tunnel_config.h"
#include "agent/tunnel_control.h"
#include "agent/udp_connect.h"
#include "agent/upstream_exchange.h"
#include "agent/upstream_pool.h"
#include "agent/upstream_select.h"
#include "quic/connection.h"
#include "tunnel/credential.h"

namespace wtmesh::wt {
class Session;
}
namespace wtmesh::quic {
class TlsClientContext;
}

namespace wtmesh::agent {

class EdgeDialer;
class WtClient;

inline constexpr std::string_view kAgentVersion = "0.1.0";

struct AgentOptions {
  EdgeUrl edge;
  // More edges (`--edge A,B`): when the current one drains (§3.6), the agent moves to the next.
  std::vector<EdgeUrl> edge_alternates;
  std::optional<std::filesystem::path> ca_file;     // trust only this CA; else the system store
  std::string token;                                // used when token_file is not set
  std::optional<std::filesystem::path> token_file;  // re-read before every connection attempt
  // Set: every attempt mints a session token from it (lifetime session_token_ttl), and the session
  // renews it at 2/3 of its life with a RENEW (docs/protocol.md §3.3). token/token_file are unused.
  std::shared_ptr<const tunnel::Credential> credential;
  std::chrono::seconds session_token_ttl = tunnel::kDefaultSessionTokenTtl;
  bool log_renewals = true;           // each accepted renewal is a notice (else debug); refusals always are
  std::vector<TunnelSpec> tunnels;    // ids must be unique
  std::vector<ConnectSpec> connects;  // `wtmesh connect`: local ports reaching names
  bool exit_on_first_auth_failure = false;
  // Give up when the edge refuses a hostname for good (not_covered, invalid, ...); `taken` is
  // always retried, since the previous holder may be our own dead session.
  bool exit_on_refusal = false;
  // A name refused as `taken` is asked for again after first_taken_retry, then every taken_retry.
  // The first is short because the edge probes the holder on that refusal, and a holder that is our
  // own killed process is gone within about two seconds (the edge's unresponsive floor, 2 s).
  std::chrono::milliseconds first_taken_retry{2500};
  std::chrono::milliseconds taken_retry{5000};
  std::chrono::milliseconds connect_timeout{15000};  // QUIC handshake + session acceptance
  // `--transport`: QUIC, WebTransport over HTTP/2 on TCP, or auto: each attempt races them
  // (agent/edge_dialer.h): QUIC first, HTTP/2 h2_race_after later or as soon as QUIC fails, and the
  // first handshake wins (each reconnect races again).
  EdgeTransport edge_transport = EdgeTransport::kAuto;
  std::chrono::milliseconds h2_race_after{300};
  // Reconnects over QUIC resume with the edge's session ticket and send the session request in
  // 0-RTT (docs/protocol.md §1.2): ready one round trip sooner. WTMESH_0RTT=0 turns it off.
  bool zero_rtt = true;
  // auto, on HTTP/2: how often QUIC is tried again; when its handshake completes, the agent opens a
  // new session over QUIC, its REGISTERs take the names over from the HTTP/2 session at the edge
  // (docs/protocol.md §3.5), and the HTTP/2 session ends once its requests finished and their last
  // bytes reached the edge (at most drain_grace later).
  std::chrono::milliseconds quic_probe_every{60'000};
  std::chrono::milliseconds drain_grace{30'000};
  // A session whose edge is draining (DRAIN_WEBTRANSPORT_SESSION) is the edge's to close, once the
  // requests under way there are relayed to the end or its --drain-grace (up to 1 h) cut them; our
  // drain_grace does not apply to it. This is the safety net for an edge that never closes it (then
  // the session closes with whatever is left on it; kMaxDraining caps how many wait).
  std::chrono::milliseconds edge_drain_limit{3'600'000};
  ControlOptions control;
  BackoffPolicy backoff;
  PoolLimits pool;
  H2ClientLimits h2;
  H3ClientLimits h3;
  ExchangeLimits exchange;
  // TransportLimits' defaults plus a 1 s keep-alive PING while the session is busy (a request, tcp
  // stream, connect, relayed session or UDP flow under way, and while it opens): a NAT that rebinds
  // while the agent is silent is repaired by the agent's next packet, before the edge's 2 s
  // unresponsive floor cuts what is under way.
  quic::TransportLimits transport = [] {
    quic::TransportLimits l;
    l.keep_alive = std::chrono::milliseconds(1000);
    return l;
  }();
  // The keep-alive of an idle session (nothing but the control stream; EdgeSession::busy()): its
  // heartbeat PING (every 10 s) keeps the NAT mapping warm, and this only backs it up below the 30 s
  // UDP timeouts of common NATs. A PING a second from 10k idle agents would be 10k packets a second
  // at the edge (bench/idle.sh; docs/protocol.md §3).
  std::chrono::milliseconds idle_keep_alive{15000};
  tunnel::UdpFlowOptions udp;  // udp tunnels' flows: cap per tunnel, idle expiry
  std::string user_agent = "wtmesh-agent/" + std::string(kAgentVersion);
};

struct AgentEvents {
  std::function<void(const TunnelSpec&, const std::string& url)> on_registered;
  std::function<void(const TunnelSpec&, const std::string& code, const std::string& message)> on_refused;
  std::function<void(const TunnelSpec&, const ExchangeResult&)> on_request;
  // A connect's local port listens and the session is up (once per ConnectSpec); `listen` is its
  // address ("127.0.0.1:15432").
  std::function<void(const ConnectSpec&, const std::string& listen)> on_connect_ready;
  // The edge refused one connection of a connect (`code` as tunnel::to_string(ConnectStatus)).
  std::function<void(const ConnectSpec&, const std::string& code, const std::string& message)>
      on_connect_refused;
  std::function<void(const std::string& sentence)> on_notice;  // connected, lost, retrying in ...
  std::function<void(const std::string& sentence)> on_fatal;   // the agent gave up (then stopped)
};

class TunnelAgent {
 public:
  TunnelAgent(boost::asio::io_context& io, AgentOptions options, AgentEvents events);
  ~TunnelAgent();
  TunnelAgent(const TunnelAgent&) = delete;
  TunnelAgent& operator=(const TunnelAgent&) = delete;

  void start();
  // The local address of connect `index` (its port is known once start() bound it; a UDP port for a
  // `udp` connect).
  std::optional<boost::asio::ip::tcp::endpoint> connect_endpoint(size_t index) const;
  // The UDP port of connect `index` when it is a `udp` one (tests: its flows and drops), else null.
  const UdpConnectPort* udp_connect_port(size_t index) const {
    return index < udp_ports_.size() ? udp_ports_[index].get() : nullptr;
  }
  // Closes the session normally (code 0) and stops reconnecting.
  void stop();

  bool connected() const;  // a session is open
  bool stopped() const { return stopped_; }
  uint64_t sessions_opened() const { return sessions_opened_; }
  // Each replaced session (a QUIC move, an edge's DRAIN) waits until its requests end; an edge that
  // answers every new session with DRAIN would grow them, so beyond this cap the oldest closes.
  static constexpr size_t kMaxDraining = 4;
  // Replaced sessions still finishing their requests (at most kMaxDraining + 1: one closing).
  size_t draining_sessions() const { return draining_.size(); }
  uint64_t attempts() const { return attempts_; }
  // What the current (or last) attempt dialled: kQuic or kH2.
  EdgeTransport transport_in_use() const { return transport_in_use_; }
  size_t active_requests() const;
  size_t idle_upstream_connections(uint32_t tunnel_id) const;
  uint64_t upstream_reuses(uint32_t tunnel_id) const;
  const std::vector<TunnelSpec>& tunnels() const { return options_.tunnels; }
  // The delay chosen for the pending reconnect (for tests and logs); zero when none is pending.
  std::chrono::milliseconds pending_retry_delay() const { return pending_delay_; }

 private:
  void attempt();
  // The dial of attempt `n` ended: open the session on the winner, or retry.
  void on_dialed(uint64_t n, std::unique_ptr<WtClient> winner, const std::string& why);
  // The trust for the edge's certificate (--ca or the system store); null with `error` when unreadable.
  std::shared_ptr<const quic::TlsClientContext> edge_trust(std::string* error) const;
  // The session of attempt `n` did not open within connect_timeout: retry.
  void arm_watchdog(uint64_t n);
  // --- moving to a better session (tunnel_agent_moves.cc) ---
  // auto, on HTTP/2: a QUIC dial quic_probe_every from now.
  void arm_quic_probe(uint64_t n);
  // QUIC's handshake completed (`quic` set): the current session starts draining, a new one opens
  // on `quic` as attempt n + 1.
  void on_quic_probe(uint64_t n, std::unique_ptr<WtClient> quic, const std::string& why);
  // The edge of attempt `n` drains (its DRAIN or GOAWAY; docs/protocol.md §3.6): the session moves to
  // draining_ (it goes on serving what the edge sends), and a new attempt dials, avoiding the draining
  // edge's address when the name has others. Once the new session holds every tunnel, the old one
  // tells the edge (DRAIN back) and waits for the edge to close it (at most drain_grace).
  void on_edge_drain(uint64_t n);
  void arm_drain();
  // Ends the draining sessions whose requests finished once the current session holds every tunnel
  // (or drain_grace passed), and forgets the closed ones.
  void drain_step();
  void teardown();
  // Ends this attempt/session and schedules the next one (once per attempt).
  // `now`: dial again at once, the backoff untouched (a 0-RTT attempt the edge refused or whose
  // handshake did not follow: the next dial is a plain one).
  void schedule_retry(uint64_t attempt, const std::string& why, bool auth_failure, bool now = false);
  // After a 0-RTT dial: the handshake must complete within early_handshake_limit(), or the ticket is
  // forgotten and the agent dials again (with the race to HTTP/2 that 0-RTT skipped: UDP may be
  // blocked since the ticket's connection).
  void watch_early_handshake(uint64_t attempt);
  std::chrono::milliseconds early_handshake_limit() const;
  void on_session_closed(uint64_t attempt, uint32_t code, const std::string& reason);
  void on_control(uint64_t attempt, const ControlEvent& ev);
  const TunnelSpec* spec(uint32_t id) const;
  void notice(const std::string& s);
  // The local ports of options_.connects; false (with `error`) when one cannot be bound.
  bool listen_connects(std::string* error);
  void accept_connect(size_t index);
  void announce_connects();
  void fatal(const std::string& s);

  boost::asio::io_context& io_;
  AgentOptions options_;
  AgentEvents events_;
  Backoff backoff_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::vector<std::unique_ptr<UpstreamPool>> pools_;  // parallel to options_.tunnels
  // Parallel too: the multiplexed client of h2c, ALPN (HTTP/2 part) and h3 tunnels.
  std::vector<std::unique_ptr<MuxUpstreamClient>> mux_;
  std::vector<std::unique_ptr<UpstreamSelector>> selectors_;  // parallel too; set for ALPN tunnels
  std::vector<std::unique_ptr<H3UpstreamTarget>> wt_;         // parallel too; set for h3 tunnels

  std::unique_ptr<EdgeDialer> dialer_;  // the attempt's dial, until its handshake completed
  std::unique_ptr<WtClient> client_;
  std::unique_ptr<EdgeDialer> probe_;  // auto, on HTTP/2: the QUIC dial that may move us back
  boost::asio::steady_timer probe_timer_;
  // Sessions replaced by a newer one: requests under way finish on them (their callbacks carry an
  // older attempt number, so only on_request is heard).
  struct Draining {
    std::unique_ptr<WtClient> client;
    std::unique_ptr<EdgeSession> session;
    std::chrono::steady_clock::time_point deadline;
    bool closing = false;
    bool edge_drained = false;  // the edge asked for the move: it closes the session, not us
    bool moved_told = false;    // DRAIN sent back: the new session holds every tunnel
    bool client_closing = false;  // its connection was told to close (after the session's close)
  };
  std::vector<Draining> draining_;
  void keep_draining(Draining d);  // into draining_; beyond kMaxDraining the oldest is closed
  boost::asio::steady_timer drain_timer_;
  std::set<uint32_t> registered_;  // tunnel ids REGISTERED on the current session
  std::string instance_id_;        // wtmesh-agent-instance: random per process (§3.5)
  // The edge address the current session dialled, and one a draining edge had (dials avoid it while
  // that session drains).
  boost::asio::ip::address current_address_;
  std::optional<boost::asio::ip::address> avoid_;
  std::unique_ptr<EdgeSession> session_;
  wt::Session* wt_session_ = nullptr;  // valid while session_ is open
  uint64_t attempt_ = 0;               // the current attempt's number
  uint64_t retry_scheduled_for_ = 0;   // attempt whose retry is already scheduled
  uint64_t attempts_ = 0;
  uint64_t sessions_opened_ = 0;
  bool ever_connected_ = false;
  bool stopped_ = false;
  bool tearing_down_ = false;  // callbacks from objects being destroyed are ignored
  std::chrono::steady_clock::time_point session_started_;
  std::chrono::steady_clock::time_point attempt_started_;  // the dial of the current attempt began
  std::chrono::milliseconds pending_delay_{0};
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer watchdog_;
  boost::asio::steady_timer early_watch_;
  std::shared_ptr<ResumptionStore> resumption_ = std::make_shared<ResumptionStore>();
  std::string attempt_token_;    // the bearer token of the current attempt's session
  std::string quic_lost_story_;  // auto, HTTP/2 won: why QUIC did not ("no QUIC handshake within 300 ms")
  EdgeTransport transport_in_use_ = EdgeTransport::kQuic;
  std::vector<std::shared_ptr<boost::asio::steady_timer>> register_timers_;
  std::map<uint32_t, int> taken_refusals_;  // per tunnel id, in the current attempt
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> connect_acceptors_;  // parallel to connects
  // Parallel too: the UDP ports of `connect --udp` entries (null for TCP ones, whose acceptor is set).
  // After session_: destroyed first, while the session they end their flows on still exists.
  std::vector<std::unique_ptr<UdpConnectPort>> udp_ports_;
  bool connects_announced_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
