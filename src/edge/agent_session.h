// AgentSession: the edge's side of one agent's WebTransport session at /ingress-mesh
// (docs/protocol.md), named for the peer it serves (the agent's side is agent::EdgeSession): the
// control stream (REGISTER → REGISTERED/REFUSED, UNREGISTER, PING/PONG), heartbeats and token expiry
// driven by on_tick(now), and the request streams the edge opens for public requests. Sans-I/O: it
// talks only to wt::Session, so tests drive it with a fake session and a fake clock. Two files: the
// streams, datagrams and timers in agent_session.cc, the control stream in agent_session_control.cc.
//
// Streams the agent opens start with a kind varint: the first 0x00 stream is the control stream, a
// second one is a protocol error (session closed with code 1); any other kind, and every
// unidirectional stream, is refused with STOP_SENDING + RESET_STREAM code 2 without ending the
// session. The session ends (close code per §1) on a control protocol error (1), 3 heartbeat
// intervals without control bytes (2), or the token's expiry (3), which a RENEW with a fresh session
// token of the same credential moves (§3.3). When it ends, its routes are
// released at once (the route table keeps them "offline" for its grace) and every open request
// stream is told its agent is gone.
//
// Routes are leases in the RouteTable held by owner(): claimed with a TTL of lease_ttl() and renewed
// at each heartbeat PING, so a session's routes outlive it by at most that TTL even if the edge dies
// without releasing them. A claim may complete later than the REGISTER that asked for it (a shared
// store): the REGISTERED or REFUSED answer goes out when it does, and a session that ended or was
// destroyed meanwhile ignores it (its release_all() was issued after the claim, so it takes effect
// after it too).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/log_text.h"
#include "common/time.h"
#include "edge/agent_udp_connects.h"
#include "edge/connect_broker.h"
#include "edge/metrics.h"
#include "edge/route_table.h"
#include "edge/tcp_publisher.h"
#include "edge/tunnel_directory.h"
#include "edge/udp_publisher.h"
#include "edge/visitor_gate.h"
#include "tunnel/connect_stream.h"
#include "tunnel/control.h"
#include "tunnel/heartbeat.h"
#include "tunnel/registry.h"
#include "tunnel/telemetry.h"
#include "tunnel/token.h"
#include "tunnel/wire.h"
#include "tunnel/wt_relay_wire.h"
#include "wt/session.h"

namespace wtmesh::edge {

struct AgentSessionConfig {
  std::string domain = "localhost";     // hostnames must be NAME.DOMAIN (or *.NAME.DOMAIN, *.DOMAIN)
  unsigned relay_id_block = 0;          // the edge worker's index (AgentSession::kRelayIdBlock)
  std::string public_scheme = "https";  // for REGISTERED urls
  uint16_t public_port = 443;           // for REGISTERED urls (omitted when the scheme's default)
  std::chrono::milliseconds ping_interval = tunnel::Heartbeat::kDefaultInterval;
  size_t max_tunnels = 64;                 // per session (REFUSED "limit")
  size_t max_control_backlog = 64 * 1024;  // control bytes the stream has not taken yet
  // Request streams one public client (TunnelDirectory's `client` key) may hold at once; 0 = no cap.
  // Agents grant 128 by default, so one address cannot take more than half of a tunnel. The edge sets
  // it from PublicLimits::max_streams_per_client.
  size_t max_streams_per_client = 64;
  std::function<SteadyTime()> clock;  // default: steady_clock::now
  std::string edge_id;                // in the route leases (TunnelService sets its own)
  TcpPublisher* tcp = nullptr;        // gives REGISTERs of type "tcp" their ports; null: tcp refused
  EdgeMetrics* metrics = nullptr;     // counts telemetry, refused streams (not owned; null: none)
  // Reaches the names of connect streams (§4.3); null: every connect is refused as `unknown`.
  ConnectBroker* connect = nullptr;
  // Connect streams one session may hold at once (§4.3); one more is refused as `limit`.
  size_t max_connect_streams = 100;
  UdpPublisher* udp = nullptr;  // gives REGISTERs of type "udp" their ports and flows; null: refused
  // Reaches the `udp` tunnels of connect streams with flag `udp` (§4.3, edge/agent_udp_connects.h);
  // null: they are refused as `unknown`.
  UdpConnects* udp_connects = nullptr;
  // An operator's bound (--require-visitor-auth = kAny, --visitor-auth-min): an http tunnel whose
  // visitor auth is weaker is refused as `invalid` (tunnel::visitor_auth_shortfall).
  bool require_visitor_auth = false;
  tunnel::VisitorAuthMin visitor_auth_min = tunnel::VisitorAuthMin::kNone;
  // What every tunnel's visitor gate shares (challenge secret, failure limiter); null: TunnelService
  // makes one (a lone AgentSession, in tests, gives each gate its own).
  std::shared_ptr<VisitorEnvironment> visitor_env;
};

class AgentSession;

// What the tunnel service made of a RENEW (docs/protocol.md §3.3): an error sentence, or the session's
// new claims and expiry.
struct RenewOutcome {
  std::string error;  // empty: accepted
  tunnel::TokenClaims claims;
  SteadyTime deadline{};
};

class AgentSession final : public wt::SessionHandler, public UdpFlowLink {
 public:
  enum class HandOver { kRefused, kDone, kAsked };
  struct Hooks {
    // The session ended (after its routes were released); `hostnames` were registered on it.
    std::function<void(uint64_t serial, const std::vector<std::string>& hostnames)> on_ended;
    // A REGISTER was refused as "taken" by `holder` (a route owner): the service may probe() the
    // holder, which may be a dead session that has not been noticed yet (an agent restarted at once).
    std::function<void(const std::string& holder)> on_name_contended;
    // Before a REGISTER is held: 0 while the token's subject may hold one more tunnel, else its cap
    // (the REGISTER is refused "limit"). Unset: no cap.
    std::function<size_t()> subject_full;
    // The session's tunnel count went from `before` to `after` (the subject's count across workers).
    std::function<void(size_t before, size_t after)> tunnels_changed;
    // A REGISTER's claim `claim` found `key` held by `holder` (another route owner): kDone when the
    // service handed the name over (the holder is a live session on this edge of the same agent
    // instance and token subject, and released it: docs/protocol.md §3.5); the claim is then made
    // again, once. kAsked: the holder is on another worker of the edge, which answers later through
    // hand_over_answered(claim, ...). kRefused: the REGISTER is refused "taken".
    std::function<HandOver(const std::string& holder, RouteKey key, uint64_t claim)> hand_over;
    // A RENEW arrived with `token`: the service verifies it against this session (null: refused).
    std::function<RenewOutcome(const AgentSession& session, const std::string& token)> on_renew;
    // next_deadline() may have moved earlier (the control stream opened, a request stream was
    // opened, the token was renewed): the service asks it again. Later moves need no call.
    std::function<void()> deadline_moved;
  };

  AgentSession(const AgentSessionConfig& config, RouteTable& routes, uint64_t serial, std::string owner,
               tunnel::TokenClaims claims, SteadyTime token_deadline, Hooks hooks);
  ~AgentSession() override;

  uint64_t serial() const { return serial_; }
  const std::string& owner() const { return owner_; }
  const tunnel::TokenClaims& claims() const { return claims_; }
  // The agent's instance id (CONNECT header wtmesh-agent-instance), "" when it sent none.
  const std::string& instance() const { return instance_; }
  void set_instance(std::string id) { instance_ = std::move(id); }
  // Gives the route `key` up for the agent's newer session (§3.5): released without a tombstone and,
  // for tcp/udp, its port unpublished (connections through it end: a byte stream cannot move between
  // sessions); requests already under way finish here. False when this session holds no such tunnel.
  bool hand_over(RouteKey key);
  // The answer to a hand_over hook that said kAsked for REGISTER claim `claim`: `handed` makes the
  // claim again (once), else the REGISTER is refused "taken". Nothing when the claim is gone
  // (UNREGISTERed, or the session closed meanwhile).
  void hand_over_answered(uint64_t claim, bool handed);
  // When the session closes with kCloseTokenExpired unless a RENEW moves it.
  SteadyTime token_deadline() const { return token_deadline_; }
  // RENEWs closer together than this are refused without being verified (each costs two ECDSA checks).
  static constexpr std::chrono::seconds kMinRenewInterval{2};
  bool closed() const { return closed_; }
  // Sends a PING now: bytes in flight make the QUIC layer notice a peer that is gone
  // (TransportLimits::unresponsive_*), which closes this session and releases its names. At most one
  // per kProbeInterval, so another agent repeating a contended REGISTER cannot flood this session.
  void probe();
  static constexpr std::chrono::seconds kProbeInterval{1};
  // While request streams are open and nothing at all has come from the agent for this long, the
  // session probe()s: an agent that died while the edge only receives (a streaming response, a slow
  // upstream) is then noticed in ~1.6 s instead of after the next heartbeat PING (up to 10 s later).
  static constexpr std::chrono::seconds kQuietProbeAfter{1};
  // REGISTERs accepted or waiting for the route table.
  size_t tunnel_count() const { return tunnels_.size(); }
  // The visitor auth of tunnel `id` (an http tunnel that asked for some), or null.
  VisitorGate* visitor_gate(uint32_t id) const;
  // How long a route lease lasts without a renewal: the heartbeat timeout plus one interval.
  std::chrono::milliseconds lease_ttl() const { return (kMissedPings + 1) * config_.ping_interval; }
  static constexpr int kMissedPings = 3;  // heartbeat intervals without control bytes that end a session
  size_t request_stream_count() const { return requests_.size(); }
  size_t connect_stream_count() const { return client_stream_count(kConnectClient); }
  // UDP connect flows open or being opened (each holds one connect stream).
  size_t udp_connect_count() const { return udp_connects_ ? udp_connects_->count() : 0; }
  // The per-client key connect streams are counted under (not a public client's).
  static constexpr std::string_view kConnectClient = "connect-stream";
  size_t control_backlog() const { return control_out_.size(); }
  bool has_control_stream() const { return control_.has_value(); }
  // The session uses the feature `request-trailers` (docs/protocol.md §4.1), as the CONNECT's answer
  // says: request bodies that may end with trailers go framed.
  void use_request_trailers() { request_trailers_ = true; }
  bool request_trailers() const { return request_trailers_; }
  const tunnel::Heartbeat& heartbeat() const { return heartbeat_; }

  // Ends the session with a close capsule (code per docs/protocol.md §1).
  void close(uint32_t code, std::string_view reason);
  // The edge drains (§3.6): DRAIN_WEBTRANSPORT_SESSION to the agent (once). The session goes on
  // serving: requests still come on it until the agent has moved and the public side stopped.
  void drain();
  bool drain_sent() const { return drain_sent_; }
  // The agent sent DRAIN_WEBTRANSPORT_SESSION: its tunnels are held by a newer session (elsewhere);
  // it finishes the streams under way here and waits for the edge to close this session.
  bool moved() const { return moved_; }

  // --- time ---
  std::optional<SteadyTime> next_deadline() const;
  void on_tick(SteadyTime now);

  // --- request streams (for the public side, through TunnelService) ---
  TunnelDirectory::OpenStatus open_request(std::string_view client, RequestStreamEvents* events,
                                           wt::StreamId* id);
  size_t client_stream_count(std::string_view client) const;
  size_t write(wt::StreamId id, std::span<const uint8_t> data, bool fin);
  size_t send_capacity(wt::StreamId id) const;
  void consume(wt::StreamId id, size_t n);
  void cancel(wt::StreamId id, uint32_t code);
  void release(wt::StreamId id);

  // --- relayed WebTransport sessions (§7) ---
  // Relay ids come in blocks of kRelayIdBlock, one per worker of the edge (AgentSessionConfig::
  // relay_id_block): a worker picks ids for another worker's sessions from its own block
  // (edge/worker_directory.h), so they never meet the ids a session picks for itself.
  static constexpr uint64_t kRelayIdBlock = uint64_t{1} << 24;  // 64 blocks fill 1..tunnel::kMaxRelayId
  // A relay id for `peer` from this session's block, or 0 at kMaxRelayedSessions. remove_relay()
  // before `peer` goes.
  uint64_t add_relay(WtRelayPeer* peer);
  // The same with `relay_id` (1..kMaxRelayId); false when full, closed or the id is in use.
  bool add_relay_as(uint64_t relay_id, WtRelayPeer* peer);
  void remove_relay(uint64_t relay_id);
  size_t relay_count() const { return relays_.size(); }
  // Sends a §2.1 datagram on flow `relay_id`; false when it was dropped (too big, no room).
  bool send_relay_datagram(uint64_t relay_id, std::span<const uint8_t> payload);
  uint64_t relay_datagrams_dropped() const { return relay_datagrams_dropped_; }

  // --- telemetry (§2.2) ---
  // The latest report that decoded (datagrams are lossy: only the newest is kept), and when it came.
  const std::optional<tunnel::TelemetryReport>& telemetry() const { return telemetry_; }
  SteadyTime telemetry_at() const { return telemetry_at_; }
  uint64_t telemetry_invalid() const { return telemetry_invalid_; }
  // --- UDP tunnels' datagrams (§4.4), for the UdpPublisher ---
  size_t max_datagram_size() const override;
  bool send_datagram(std::span<const uint8_t> datagram) override;

  // --- wt::SessionHandler ---
  void on_attached(wt::Session& session) override { session_ = &session; }
  void on_ready() override {}
  void on_incoming_stream(wt::StreamId id, bool bidi) override;
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stream_writable(wt::StreamId id) override;
  void on_stream_closed(wt::StreamId id) override;
  void on_datagram(std::span<const uint8_t> payload) override;
  void on_closed(uint32_t code, std::string_view reason) override;
  void on_drain() override { moved_ = true; }

 private:
  void deadline_moved() {
    if (hooks_.deadline_moved) hooks_.deadline_moved();
  }
  void refuse_stream(wt::StreamId id, StreamRefusal why);
  void on_relay_stream_bytes(wt::StreamId id, std::span<const uint8_t> data, bool fin);
  // After tunnels_ changed: tells hooks_.tunnels_changed.
  void count_tunnels();
  void on_connect_stream_bytes(wt::StreamId id, std::span<const uint8_t> data, bool fin);
  void refuse_connect(wt::StreamId id, const std::string& name, tunnel::ConnectStatus status,
                      const std::string& message);
  // A connect stream with flag `udp` whose name and scope passed: one flow (edge/agent_udp_connects.h).
  void open_udp_connect(wt::StreamId id, const std::string& name, uint64_t flow_id,
                        std::span<const uint8_t> rest, bool fin);
  // Lists `id` as a request stream held for `client` (counted toward its cap); forget_request undoes it.
  void hold_request(wt::StreamId id, std::string_view client, RequestStreamEvents* events);
  bool forget_request(wt::StreamId id);  // false when `id` was no request stream
  void on_control_bytes(std::span<const uint8_t> data, bool fin);
  void handle_frame(const tunnel::ControlFrame& frame);
  void handle_register(const tunnel::Register& reg);
  void on_claimed(uint64_t claim, const ClaimReply& reply);
  void handle_unregister(const tunnel::Unregister& unreg);
  void handle_renew(const tunnel::Renew& renew);
  void send_control(const tunnel::ControlMessage& message);
  void flush_control();
  void refuse(uint32_t id, const std::string& hostname, std::string_view code, const std::string& message);
  // Why `hostname` (lower-case) cannot be a tunnel of this edge, or "" when it can.
  std::string hostname_problem(const std::string& hostname) const;
  bool covered(const std::string& hostname) const;
  std::optional<SteadyTime> quiet_probe_deadline() const;
  SteadyTime now() const;

  AgentSessionConfig config_;
  RouteTable& routes_;
  uint64_t serial_;
  std::string owner_;
  tunnel::TokenClaims claims_;
  Hooks hooks_;
  wt::Session* session_ = nullptr;
  bool closed_ = false;
  bool drain_sent_ = false;
  bool moved_ = false;

  std::optional<wt::StreamId> control_;
  tunnel::ControlReader reader_;
  std::vector<uint8_t> control_out_;
  std::map<wt::StreamId, tunnel::StreamKindReader> undecided_;  // peer streams whose kind is still partial
  std::set<wt::StreamId> refused_;                              // peer streams refused (data is dropped)
  std::map<wt::StreamId, tunnel::WtStreamOpenReader> relay_heads_;   // kind 0x03 streams, opening partial
  std::map<wt::StreamId, tunnel::ConnectHeadReader> connect_heads_;  // kind 0x05, head partial
  std::unique_ptr<AgentUdpConnects> udp_connects_;                   // made at the first udp connect
  std::map<uint64_t, WtRelayPeer*> relays_;                          // relay id → its edge end
  uint64_t last_relay_id_ = 0;
  size_t counted_tunnels_ = 0;  // tunnels_.size() as hooks_.tunnels_changed last heard it
  uint64_t relay_datagrams_dropped_ = 0;
  std::optional<tunnel::TelemetryReport> telemetry_;
  SteadyTime telemetry_at_{};
  uint64_t telemetry_invalid_ = 0;
  struct Tunnel {
    std::string hostname;
    uint64_t claim = 0;  // the claim under way for it, 0 once the table answered
    // kHttp, kTcp or kUdp (the route key's type): tcp and udp get a port from config_.tcp / .udp
    // once claimed.
    std::string_view type = kHttp;
    std::shared_ptr<VisitorGate> visitor;  // http tunnels with visitor auth (REGISTER options.visitor)
  };
  struct PendingClaim {
    uint32_t id = 0;
    std::string hostname, raw_host;
    tunnel::Register reg;
    bool handed_over = false;  // made again after the holder handed the name over
  };
  static RouteKey route_key(const Tunnel& t) { return RouteKey{t.type, t.hostname}; }
  void unpublish(uint32_t id, const Tunnel& t);
  std::map<uint32_t, Tunnel> tunnels_;  // REGISTER id → hostname
  std::string instance_;
  std::map<uint64_t, PendingClaim> pending_claims_;  // the table has not answered them yet
  // Claims taken by a holder on another worker, waiting for its hand-over answer (with the holder).
  std::map<uint64_t, std::pair<PendingClaim, std::string>> awaiting_hand_over_;
  // on_claimed's ends: the claim is made again after a hand-over, or the REGISTER is refused.
  void claim_again(uint64_t claim, PendingClaim c, const std::string& holder);
  void refuse_claim(uint64_t claim, const PendingClaim& c, ClaimResult result, const std::string& holder);
  uint64_t last_claim_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // route table completions check it
  struct RequestStream {
    RequestStreamEvents* events = nullptr;
    std::string client;  // whose request it carries (a key of per_client_)
  };
  std::map<wt::StreamId, RequestStream> requests_;
  std::map<std::string, size_t, std::less<>> per_client_;  // client → request streams held
  // Refusal log lines (REGISTER, connect) an agent can repeat at will: 20 at once, then one a second.
  LogBudget refusal_log_{20, std::chrono::milliseconds(1000)};

  tunnel::Heartbeat heartbeat_;  // PINGs once the control stream exists; silence counted from the start
  SteadyTime last_heard_;        // last bytes or FIN on any stream of the session
  SteadyTime token_deadline_;
  std::optional<SteadyTime> last_probe_;
  std::optional<SteadyTime> last_renew_;
  bool request_trailers_ = false;
};

}  // namespace wtmesh::edge
