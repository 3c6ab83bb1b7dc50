// The edge's metrics: a small registry of counters kept on the io thread (plain integers, no locks),
// gauges read from the live objects when /metrics is scraped, and the agents' latest telemetry
// reports (docs/protocol.md §2.2), rendered as Prometheus text exposition format 0.0.4. Sans-I/O:
// rendering takes values in and gives text out (edge/admin_listener.h serves it).
//
// Label cardinality is bounded: at most kMaxLabelValues distinct tunnel values and as many agent
// values are rendered; beyond that a sample is folded into the value "_other" (counters and additive
// gauges are summed there; per-agent values that do not add up, such as the RTT, are left out).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tunnel/telemetry.h"
#include "tunnel/udp_flow.h"

namespace wtmesh::edge {

// --- text exposition (format 0.0.4) ----------------------------------------------------------

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

struct MetricSample {
  MetricLabels labels;
  std::variant<uint64_t, double> value;
};

struct MetricFamily {
  enum class Type { kCounter, kGauge };
  std::string name;
  std::string help;
  Type type = Type::kGauge;
  std::vector<MetricSample> samples;  // a family without samples is not rendered
};

// `\` → `\\`, `"` → `\"`, newline → `\n` (label values); HELP text escapes `\` and newline only.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// HELP and TYPE lines, then one line per sample: name{label="value",...} value.
std::string render_metrics(const std::vector<MetricFamily>& families);

// At most `cap` distinct values; admit() answers a value already held or, while there is room, the
// value itself, else "_other".
class LabelCap {
 public:
  static constexpr std::string_view kOther = "_other";
  explicit LabelCap(size_t cap) : cap_(cap) {}
  std::string admit(std::string_view value);
  size_t size() const { return held_.size(); }

 private:
  size_t cap_;
  std::set<std::string, std::less<>> held_;
};

// --- the edge's registry ---------------------------------------------------------------------

inline constexpr size_t kMaxLabelValues = 256;

// Why an agent's session request was refused (docs/protocol.md §1): a bounded set.
enum class SessionRefusal {
  kMissingToken,
  kMalformed,
  kUnsupportedAlg,
  kUnknownKey,
  kBadSignature,
  kExpired,
  kNotYetValid,
  kWrongAudience,
  kRevoked,          // a credential's session token after `wtmesh revoke`
  kReplayed,         // a session token whose jti was seen already
  kNoHost,           // 403: the token names no host under the edge's domain
  kProtocolVersion,  // 400
  kCapacity,         // 503
  kRateLimited,      // 429: the address has had too many authentication failures (edge/auth_failures.h)
  kSubjectSessions,  // 429: the token's subject holds TunnelServiceConfig::max_sessions_per_subject
  kDraining,         // 503: the edge drains (SIGTERM; docs/protocol.md §3.6)
  kCount,
};
const char* to_string(SessionRefusal r);

// Why a REGISTER was refused for a cap (docs/protocol.md §2): a bounded set.
enum class TunnelRefusal {
  kSessionCap,  // the session holds AgentSessionConfig::max_tunnels
  kSubjectCap,  // the token subject's sessions hold TunnelServiceConfig::max_tunnels_per_subject
  kTableFull,   // the route table is full
  kCount,
};
const char* to_string(TunnelRefusal r);

// Why the edge refused a stream an agent opened on its session (docs/protocol.md §2): a bounded set.
enum class StreamRefusal {
  kUni,        // unidirectional: not used in v1
  kKind,       // an unknown kind, or one only the edge may open
  kMalformed,  // the kind or the stream's head did not parse, or the stream ended inside it
  kRelay,      // a wt-stream for a relayed session that is gone, or at its stream cap
  kCount,
};
const char* to_string(StreamRefusal r);

// Why the edge closed (or never admitted) a QUIC connection to protect itself: a bounded set.
enum class ConnectionShed {
  kAuthFailures,  // too many refused session requests (bad tokens) on one connection
  kNoSession,     // handshake done, but no session or request within EdgeOptions::session_deadline
  kCount,
};
const char* to_string(ConnectionShed r);

// Why the edge closed or refused a public TCP (HTTPS / HTTP) connection to protect itself: a bounded
// set (wtmesh_public_connections_shed_total).
enum class PublicShed {
  kConnectionLimit,     // refused at accept: the listener held PublicLimits::max_connections
  kAddressConnections,  // refused at accept: the address held max_connections_per_ip
  kHandshakeRate,    // a ClientHello beyond the address's TLS handshakes per second (tls_handshakes_per_ip)
  kH2ResetRate,      // nghttp2 ended it with GOAWAY INTERNAL_ERROR (its rapid-reset rate limit)
  kH2Flood,          // nghttp2 found a flood (SETTINGS/PING ACKs it could not send, ...)
  kH2Continuations,  // a header block in more than H2Config::max_continuations CONTINUATION frames
  kH2LocalAnswers,   // GOAWAY after max_local_answers of the edge's own answers in a row (header bombs too)
  kH2ProtocolError,  // another HTTP/2 connection error (GOAWAY with an error code, bad frames)
  kCount,
};
const char* to_string(PublicShed r);

// Why the edge did not let a visitor through to a tunnel (edge/visitor_gate.h): a bounded set.
enum class VisitorRefusal {
  kForbidden,     // 403: address ranges, a failed or missing browser check
  kUnauthorized,  // 401: no or wrong password or visitor token
  kChallenged,    // 200: the interstitial page was served
  kRateLimited,   // 429: the address had too many wrong credentials
  kCount,
};
const char* to_string(VisitorRefusal r);

// Gauges the edge reads from its live objects at scrape time.
struct EdgeGauges {
  uint64_t agent_sessions = 0;
  uint64_t tunnel_streams = 0;  // request, tcp and relayed streams open on agent sessions
  uint64_t public_connections = 0;
  uint64_t quic_connections = 0;
  uint64_t tcp_connections = 0;       // TCP tunnel connections (TcpTunnels::connection_count)
  uint64_t udp_flows = 0;             // UDP tunnels' flows (client addresses) now (UdpTunnels::flow_count)
  tunnel::UdpDropCounters udp_drops;  // packets the edge's UDP tunnels dropped, since start (a counter)
  uint64_t udp_route_flows = 0;       // flows of the edge's UDP routes (--udp-route) now
  uint64_t udp_route_refused = 0;     // route flows refused (cap, no socket), since start (a counter)
  // New QUIC connections refused, since start (counters; quic::EndpointStats).
  uint64_t quic_refused_connection_limit = 0;     // the endpoint held max_connections
  uint64_t quic_refused_address_connections = 0;  // the address held its cap of connections
  uint64_t quic_refused_handshake_rate = 0;       // the address started handshakes too fast
  uint64_t quic_refused_invalid_token = 0;        // a Retry token that did not verify
  uint64_t quic_retries = 0;                      // Retry packets sent
  uint64_t quic_packets_in = 0, quic_packets_out = 0;  // QUIC packets read and written (all connections)
  // Connection timers that fired, and of those the ones that sent nothing (a deadline that had moved).
  uint64_t quic_timer_wakeups = 0, quic_timer_wakeups_empty = 0;
  // Among workers (edge/edge_workers.h): request streams relayed to another worker's agent session,
  // QUIC packets handed to the worker that owns their connection, and public TCP connections handed
  // to the worker holding their name (counters).
  uint64_t worker_hops = 0, worker_packets_forwarded = 0, worker_steered = 0;
};

// One live agent session's latest telemetry report.
struct AgentTelemetry {
  std::string agent;  // "SUBJECT#SERIAL" (the token's subject, the session's serial)
  tunnel::TelemetryReport report;
  double age_seconds = 0;  // since the report arrived
};

class EdgeMetrics {
 public:
  explicit EdgeMetrics(size_t max_label_values = kMaxLabelValues)
      : tunnels_(max_label_values), max_agents_(max_label_values) {}

  // A public exchange ended: `tunnel` is the route that served the host ("_none" if none did).
  void on_request(std::string_view tunnel, int status, uint64_t response_bytes);
  void add_public_bytes(uint64_t received, uint64_t sent) {
    public_received_ += received;
    public_sent_ += sent;
  }
  void on_tls_handshake_failure() { ++tls_handshake_failures_; }
  void on_quic_handshake_failure() { ++quic_handshake_failures_; }
  void on_session_refused(SessionRefusal why) { ++refusals_[static_cast<size_t>(why)]; }
  void on_tunnel_refused(TunnelRefusal why) { ++tunnel_refusals_[static_cast<size_t>(why)]; }
  uint64_t tunnels_refused(TunnelRefusal why) const { return tunnel_refusals_[static_cast<size_t>(why)]; }
  void on_stream_refused(StreamRefusal why) { ++stream_refusals_[static_cast<size_t>(why)]; }
  uint64_t streams_refused(StreamRefusal why) const { return stream_refusals_[static_cast<size_t>(why)]; }
  void on_connection_shed(ConnectionShed why) { ++shed_[static_cast<size_t>(why)]; }
  void on_public_shed(PublicShed why) { ++public_shed_[static_cast<size_t>(why)]; }
  uint64_t public_shed(PublicShed why) const { return public_shed_[static_cast<size_t>(why)]; }
  uint64_t connections_shed(ConnectionShed why) const { return shed_[static_cast<size_t>(why)]; }
  uint64_t sessions_refused(SessionRefusal why) const { return refusals_[static_cast<size_t>(why)]; }
  void on_visitor_refused(VisitorRefusal why) { ++visitor_refusals_[static_cast<size_t>(why)]; }
  uint64_t visitors_refused(VisitorRefusal why) const { return visitor_refusals_[static_cast<size_t>(why)]; }
  void on_telemetry(bool accepted) { ++(accepted ? telemetry_accepted_ : telemetry_invalid_); }

  // Every family, in a fixed order; `agents` in the order given (the first max_label_values get labels
  // of their own).
  std::vector<MetricFamily> collect(const EdgeGauges& gauges,
                                    const std::vector<AgentTelemetry>& agents) const;
  std::string render(const EdgeGauges& gauges, const std::vector<AgentTelemetry>& agents) const {
    return render_metrics(collect(gauges, agents));
  }

 private:
  struct Requests {
    std::array<uint64_t, 6> by_class{};  // 1xx..5xx, other
    uint64_t bytes = 0;
  };
  void collect_agents(const std::vector<AgentTelemetry>& agents, std::vector<MetricFamily>& out) const;

  LabelCap tunnels_;
  size_t max_agents_;
  std::map<std::string, Requests, std::less<>> requests_;  // by tunnel label
  uint64_t public_received_ = 0, public_sent_ = 0;
  uint64_t tls_handshake_failures_ = 0, quic_handshake_failures_ = 0;
  std::array<uint64_t, static_cast<size_t>(SessionRefusal::kCount)> refusals_{};
  std::array<uint64_t, static_cast<size_t>(ConnectionShed::kCount)> shed_{};
  std::array<uint64_t, static_cast<size_t>(PublicShed::kCount)> public_shed_{};
  std::array<uint64_t, static_cast<size_t>(TunnelRefusal::kCount)> tunnel_refusals_{};
  std::array<uint64_t, static_cast<size_t>(StreamRefusal::kCount)> stream_refusals_{};
  std::array<uint64_t, static_cast<size_t>(VisitorRefusal::kCount)> visitor_refusals_{};
  uint64_t telemetry_accepted_ = 0, telemetry_invalid_ = 0;
};

}  // namespace wtmesh::edge
