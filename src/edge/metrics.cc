#include "edge/metrics.h"

#include <fmt/format.h>

#include <iterator>
#include <limits>

namespace wtmesh::edge {
namespace {

constexpr std::array<std::string_view, 6> kStatusClasses = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

size_t status_class(int status) {
  return status >= 100 && status < 600 ? static_cast<size_t>(status / 100 - 1) : 5;
}

MetricFamily family(std::string name, std::string help, MetricFamily::Type type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

MetricFamily single(std::string name, std::string help, MetricFamily::Type type, uint64_t value) {
  MetricFamily f = family(std::move(name), std::move(help), type);
  f.samples.push_back({{}, value});
  return f;
}

void append_value(std::string& out, const std::variant<uint64_t, double>& v) {
  if (const auto* i = std::get_if<uint64_t>(&v)) {
    fmt::format_to(std::back_inserter(out), "{}", *i);
    return;
  }
  const double d = std::get<double>(v);
  if (d != d) {
    out += "NaN";
  } else if (d == std::numeric_limits<double>::infinity()) {
    out += "+Inf";
  } else if (d == -std::numeric_limits<double>::infinity()) {
    out += "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", d);
  }
}

// Backslash and newline always; the double quote only inside a label value.
std::string escape_text(std::string_view v, bool quote) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escape_label_value(std::string_view v) { return escape_text(v, true); }

std::string escape_help(std::string_view v) { return escape_text(v, false); }

std::string render_metrics(const std::vector<MetricFamily>& families) {
  std::string out;
  for (const MetricFamily& f : families) {
    if (f.samples.empty()) continue;
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", f.name, escape_help(f.help),
                   f.name, f.type == MetricFamily::Type::kCounter ? "counter" : "gauge");
    for (const MetricSample& s : f.samples) {
      out += f.name;
      if (!s.labels.empty()) {
        out += '{';
        for (size_t i = 0; i < s.labels.size(); ++i) {
          if (i != 0) out += ',';
          fmt::format_to(std::back_inserter(out), "{}=\"{}\"", s.labels[i].first,
                         escape_label_value(s.labels[i].second));
        }
        out += '}';
      }
      out += ' ';
      append_value(out, s.value);
      out += '\n';
    }
  }
  return out;
}

std::string LabelCap::admit(std::string_view value) {
  if (held_.find(value) != held_.end()) return std::string(value);
  if (held_.size() >= cap_) return std::string(kOther);
  held_.emplace(value);
  return std::string(value);
}

const char* to_string(SessionRefusal r) {
  switch (r) {
    case SessionRefusal::kMissingToken:
      return "missing_token";
    case SessionRefusal::kMalformed:
      return "malformed";
    case SessionRefusal::kUnsupportedAlg:
      return "unsupported_alg";
    case SessionRefusal::kUnknownKey:
      return "unknown_key";
    case SessionRefusal::kBadSignature:
      return "bad_signature";
    case SessionRefusal::kExpired:
      return "expired";
    case SessionRefusal::kNotYetValid:
      return "not_yet_valid";
    case SessionRefusal::kWrongAudience:
      return "wrong_audience";
    case SessionRefusal::kRevoked:
      return "revoked";
    case SessionRefusal::kReplayed:
      return "replayed";
    case SessionRefusal::kNoHost:
      return "no_host";
    case SessionRefusal::kProtocolVersion:
      return "protocol_version";
    case SessionRefusal::kCapacity:
      return "capacity";
    case SessionRefusal::kRateLimited:
      return "rate_limited";
    case SessionRefusal::kSubjectSessions:
      return "subject_sessions";
    case SessionRefusal::kDraining:
      return "draining";
    case SessionRefusal::kCount:
      break;
  }
  return "other";
}

const char* to_string(TunnelRefusal r) {
  switch (r) {
    case TunnelRefusal::kSessionCap:
      return "session_cap";
    case TunnelRefusal::kSubjectCap:
      return "subject_cap";
    case TunnelRefusal::kTableFull:
      return "table_full";
    case TunnelRefusal::kCount:
      break;
  }
  return "other";
}

const char* to_string(StreamRefusal r) {
  switch (r) {
    case StreamRefusal::kUni:
      return "uni";
    case StreamRefusal::kKind:
      return "kind";
    case StreamRefusal::kMalformed:
      return "malformed";
    case StreamRefusal::kRelay:
      return "relay";
    case StreamRefusal::kCount:
      break;
  }
  return "other";
}

const char* to_string(ConnectionShed r) {
  switch (r) {
    case ConnectionShed::kNoSession:
      return "no_session";
    case ConnectionShed::kAuthFailures:
      return "auth_failures";
    case ConnectionShed::kCount:
      break;
  }
  return "other";
}

const char* to_string(PublicShed r) {
  switch (r) {
    case PublicShed::kConnectionLimit:
      return "connection_limit";
    case PublicShed::kAddressConnections:
      return "address_connections";
    case PublicShed::kHandshakeRate:
      return "handshake_rate";
    case PublicShed::kH2ResetRate:
      return "h2_reset_rate";
    case PublicShed::kH2Flood:
      return "h2_flood";
    case PublicShed::kH2Continuations:
      return "h2_continuations";
    case PublicShed::kH2LocalAnswers:
      return "h2_local_answers";
    case PublicShed::kH2ProtocolError:
      return "h2_protocol_error";
    case PublicShed::kCount:
      break;
  }
  return "other";
}

const char* to_string(VisitorRefusal r) {
  switch (r) {
    case VisitorRefusal::kForbidden:
      return "forbidden";
    case VisitorRefusal::kUnauthorized:
      return "unauthorized";
    case VisitorRefusal::kChallenged:
      return "challenged";
    case VisitorRefusal::kRateLimited:
      return "rate_limited";
    case VisitorRefusal::kCount:
      break;
  }
  return "other";
}

void EdgeMetrics::on_request(std::string_view tunnel, int status, uint64_t response_bytes) {
  const std::string label = tunnels_.admit(tunnel);
  auto it = requests_.find(label);
  if (it == requests_.end()) it = requests_.emplace(label, Requests{}).first;
  ++it->second.by_class[status_class(status)];
  it->second.bytes += response_bytes;
}

std::vector<MetricFamily> EdgeMetrics::collect(const EdgeGauges& g,
                                               const std::vector<AgentTelemetry>& agents) const {
  using T = MetricFamily::Type;
  std::vector<MetricFamily> out;
  MetricFamily req = family("wtmesh_http_requests_total",
                            "Public HTTP requests answered, by tunnel (the route that served the host, "
                            "_none: no tunnel) and status class.",
                            T::kCounter);
  MetricFamily bytes = family("wtmesh_http_response_bytes_total",
                              "Response body bytes sent to public HTTP clients, by tunnel.", T::kCounter);
  for (const auto& [tunnel, r] : requests_) {
    for (size_t c = 0; c < r.by_class.size(); ++c) {
      if (r.by_class[c] != 0)
        req.samples.push_back(
            {{{"tunnel", tunnel}, {"code", std::string(kStatusClasses[c])}}, r.by_class[c]});
    }
    bytes.samples.push_back({{{"tunnel", tunnel}}, r.bytes});
  }
  out.push_back(std::move(req));
  out.push_back(std::move(bytes));
  out.push_back(single("wtmesh_public_received_bytes_total",
                       "Bytes read from public TCP connections (HTTP and HTTPS listeners, TLS included).",
                       T::kCounter, public_received_));
  out.push_back(single("wtmesh_public_sent_bytes_total",
                       "Bytes written to public TCP connections (HTTP and HTTPS listeners, TLS included).",
                       T::kCounter, public_sent_));
  out.push_back(
      single("wtmesh_agent_sessions", "Agent tunnel sessions open now.", T::kGauge, g.agent_sessions));
  out.push_back(single("wtmesh_tunnel_streams",
                       "Streams open on agent sessions now (requests, tcp, relayed).", T::kGauge,
                       g.tunnel_streams));
  out.push_back(single("wtmesh_public_connections", "Public TCP connections open now (HTTP and HTTPS).",
                       T::kGauge, g.public_connections));
  out.push_back(single("wtmesh_quic_connections", "QUIC connections open now (agents and public HTTP/3).",
                       T::kGauge, g.quic_connections));
  out.push_back(single("wtmesh_tcp_tunnel_connections", "Connections open now on TCP tunnels' edge ports.",
                       T::kGauge, g.tcp_connections));
  out.push_back(single("wtmesh_udp_tunnel_flows", "UDP tunnels' flows (client addresses) open now.",
                       T::kGauge, g.udp_flows));
  out.push_back(single("wtmesh_udp_route_flows", "Flows of the edge's own UDP routes (--udp-route) open now.",
                       T::kGauge, g.udp_route_flows));
  out.push_back(single("wtmesh_udp_route_flows_refused_total",
                       "Flows to the edge's UDP routes refused: the route's flow cap, or no socket.",
                       T::kCounter, g.udp_route_refused));
  MetricFamily quic_refused = family(
      "wtmesh_quic_initials_refused_total",
      "Client Initials that opened no QUIC connection, by reason (connection_limit: the endpoint's "
      "slots, --quic-max-connections; address_connections: the address's live connections, "
      "--quic-max-connections-per-ip; "
      "handshake_rate: the address's handshakes per second, --quic-handshakes-per-ip; invalid_token: a "
      "Retry token that did not verify).",
      T::kCounter);
  quic_refused.samples.push_back({{{"reason", "connection_limit"}}, g.quic_refused_connection_limit});
  quic_refused.samples.push_back({{{"reason", "address_connections"}}, g.quic_refused_address_connections});
  quic_refused.samples.push_back({{{"reason", "handshake_rate"}}, g.quic_refused_handshake_rate});
  quic_refused.samples.push_back({{{"reason", "invalid_token"}}, g.quic_refused_invalid_token});
  out.push_back(std::move(quic_refused));
  out.push_back(single("wtmesh_quic_retries_total",
                       "Retry packets sent (address validation: --quic-retry-above connections open).",
                       T::kCounter, g.quic_retries));
  MetricFamily quic_packets = family(
      "wtmesh_quic_packets_total",
      "QUIC packets the edge read (in) and wrote (out), all connections: what idle agent sessions cost "
      "shows here (bench/idle.sh).",
      T::kCounter);
  quic_packets.samples.push_back({{{"direction", "in"}}, g.quic_packets_in});
  quic_packets.samples.push_back({{{"direction", "out"}}, g.quic_packets_out});
  out.push_back(std::move(quic_packets));
  MetricFamily quic_timers =
      family("wtmesh_quic_timer_wakeups_total",
             "QUIC connection timers that fired, by whether they sent a packet (sent) or found nothing to do "
             "(empty: a deadline that had moved; few are expected, bench/README.md).",
             T::kCounter);
  quic_timers.samples.push_back({{{"result", "sent"}}, g.quic_timer_wakeups - g.quic_timer_wakeups_empty});
  quic_timers.samples.push_back({{{"result", "empty"}}, g.quic_timer_wakeups_empty});
  out.push_back(std::move(quic_timers));
  out.push_back(single("wtmesh_worker_hops_total",
                       "Streams and UDP flows a worker relayed to the agent session of another worker "
                       "(--workers; 0 with one worker).",
                       T::kCounter, g.worker_hops));
  out.push_back(single("wtmesh_worker_connections_steered_total",
                       "Public TCP connections a worker accepted and handed, before TLS, to the worker whose "
                       "agent holds the name they ask for (SNI or Host; --workers).",
                       T::kCounter, g.worker_steered));
  out.push_back(single("wtmesh_worker_packets_forwarded_total",
                       "QUIC packets another worker's socket read and handed to the worker that owns their "
                       "connection (a client whose address changed; --workers).",
                       T::kCounter, g.worker_packets_forwarded));
  MetricFamily udp_drops =
      family("wtmesh_udp_packets_dropped_total",
             "Packets the edge's UDP tunnels dropped, by reason (docs/protocol.md §4.4).", T::kCounter);
  udp_drops.samples.push_back({{{"reason", "too_big"}}, g.udp_drops.too_big});
  udp_drops.samples.push_back({{{"reason", "flow_cap"}}, g.udp_drops.flow_cap});
  udp_drops.samples.push_back({{{"reason", "queue_full"}}, g.udp_drops.queue_full});
  udp_drops.samples.push_back({{{"reason", "unknown_flow"}}, g.udp_drops.unknown_flow});
  out.push_back(std::move(udp_drops));
  MetricFamily hs =
      family("wtmesh_handshake_failures_total",
             "Handshakes that did not complete, by transport (tls: public HTTPS; quic).", T::kCounter);
  hs.samples.push_back({{{"transport", "tls"}}, tls_handshake_failures_});
  hs.samples.push_back({{{"transport", "quic"}}, quic_handshake_failures_});
  out.push_back(std::move(hs));
  MetricFamily refused =
      family("wtmesh_session_refusals_total",
             "Agent session requests refused, by reason (token problems, no host, protocol "
             "version, capacity, rate_limited: the address had too many authentication failures, "
             "subject_sessions: the token's subject holds its cap of sessions).",
             T::kCounter);
  for (size_t i = 0; i < refusals_.size(); ++i) {
    refused.samples.push_back({{{"reason", to_string(static_cast<SessionRefusal>(i))}}, refusals_[i]});
  }
  out.push_back(std::move(refused));
  MetricFamily tunnels_refused =
      family("wtmesh_tunnel_refusals_total",
             "Tunnel registrations refused for a cap, by reason (session_cap: tunnels per session, "
             "subject_cap: tunnels per token subject, table_full: the route table).",
             T::kCounter);
  for (size_t i = 0; i < tunnel_refusals_.size(); ++i) {
    tunnels_refused.samples.push_back(
        {{{"reason", to_string(static_cast<TunnelRefusal>(i))}}, tunnel_refusals_[i]});
  }
  out.push_back(std::move(tunnels_refused));
  MetricFamily streams_refused =
      family("wtmesh_tunnel_stream_refusals_total",
             "Streams agents opened on their sessions that the edge refused, by reason (uni: "
             "unidirectional, kind: unknown or the edge's own kind, malformed: a bad or cut head, "
             "relay: a relayed session gone or at its stream cap).",
             T::kCounter);
  for (size_t i = 0; i < stream_refusals_.size(); ++i) {
    streams_refused.samples.push_back(
        {{{"reason", to_string(static_cast<StreamRefusal>(i))}}, stream_refusals_[i]});
  }
  out.push_back(std::move(streams_refused));
  MetricFamily shed =
      family("wtmesh_connections_shed_total",
             "QUIC connections the edge closed to protect itself, by reason "
             "(auth_failures: too many refused session requests on one connection, no_session: no "
             "session or request within the session deadline).",
             T::kCounter);
  for (size_t i = 0; i < shed_.size(); ++i) {
    shed.samples.push_back({{{"reason", to_string(static_cast<ConnectionShed>(i))}}, shed_[i]});
  }
  out.push_back(std::move(shed));
  MetricFamily public_shed = family(
      "wtmesh_public_connections_shed_total",
      "Public TCP (HTTPS/HTTP) connections the edge refused or closed to protect itself, by reason "
      "(connection_limit: --max-connections held; address_connections: --max-connections-per-ip held; "
      "handshake_rate: the address's TLS handshakes per second, --tls-handshakes-per-ip; h2_reset_rate: "
      "HTTP/2 rapid reset; h2_flood: HTTP/2 control frames whose answers piled up; h2_continuations: a "
      "CONTINUATION flood; h2_local_answers: too many of the edge's own answers in a row, header bombs "
      "included; h2_protocol_error: another HTTP/2 connection error).",
      T::kCounter);
  for (size_t i = 0; i < public_shed_.size(); ++i) {
    public_shed.samples.push_back({{{"reason", to_string(static_cast<PublicShed>(i))}}, public_shed_[i]});
  }
  out.push_back(std::move(public_shed));
  MetricFamily visitors =
      family("wtmesh_visitor_refusals_total",
             "Public requests visitor auth did not let through, by reason (forbidden: address ranges or "
             "a failed browser check, unauthorized: no or wrong password or visitor token, challenged: the "
             "browser check page was served, rate_limited: the address had too many wrong credentials).",
             T::kCounter);
  for (size_t i = 0; i < visitor_refusals_.size(); ++i) {
    visitors.samples.push_back(
        {{{"reason", to_string(static_cast<VisitorRefusal>(i))}}, visitor_refusals_[i]});
  }
  out.push_back(std::move(visitors));
  MetricFamily tele =
      family("wtmesh_telemetry_reports_total",
             "Telemetry datagrams received from agents, by result (accepted, invalid).", T::kCounter);
  tele.samples.push_back({{{"result", "accepted"}}, telemetry_accepted_});
  tele.samples.push_back({{{"result", "invalid"}}, telemetry_invalid_});
  out.push_back(std::move(tele));
  collect_agents(agents, out);
  return out;
}

void EdgeMetrics::collect_agents(const std::vector<AgentTelemetry>& agents,
                                 std::vector<MetricFamily>& out) const {
  using T = MetricFamily::Type;
  MetricFamily info =
      family("wtmesh_agent_info", "Live agent sessions that reported telemetry, with the agent's version.",
             T::kGauge);
  MetricFamily rtt = family("wtmesh_agent_rtt_seconds",
                            "Round-trip time between the agent and the edge, as the agent "
                            "measures it.",
                            T::kGauge);
  MetricFamily sent =
      family("wtmesh_agent_sent_bytes_total", "Payload bytes the agent sent on its session.", T::kCounter);
  MetricFamily received = family("wtmesh_agent_received_bytes_total",
                                 "Payload bytes the agent received on its session.", T::kCounter);
  MetricFamily streams = family("wtmesh_agent_open_streams", "Streams the agent holds open.", T::kGauge);
  MetricFamily drops = family("wtmesh_agent_datagrams_dropped_total",
                              "Datagrams the agent dropped on its session.", T::kCounter);
  MetricFamily uptime =
      family("wtmesh_agent_uptime_seconds", "Seconds since the agent process started.", T::kGauge);
  MetricFamily age = family("wtmesh_agent_report_age_seconds",
                            "Seconds since the agent's latest telemetry report.", T::kGauge);
  tunnel::TelemetryReport other;  // the sums of the agents past the label cap
  bool folded = false;
  const auto add = [](std::optional<uint64_t>& to, const std::optional<uint64_t>& v) {
    if (v) to = to.value_or(0) + *v;
  };
  for (size_t i = 0; i < agents.size(); ++i) {
    const tunnel::TelemetryReport& r = agents[i].report;
    if (i >= max_agents_) {
      folded = true;
      add(other.bytes_sent, r.bytes_sent);
      add(other.bytes_received, r.bytes_received);
      add(other.open_streams, r.open_streams);
      add(other.datagrams_dropped, r.datagrams_dropped);
      continue;
    }
    const MetricLabels a = {{"agent", agents[i].agent}};
    info.samples.push_back({{{"agent", agents[i].agent}, {"version", r.version.value_or("")}}, uint64_t{1}});
    if (r.rtt_us) rtt.samples.push_back({a, static_cast<double>(*r.rtt_us) / 1e6});
    if (r.bytes_sent) sent.samples.push_back({a, *r.bytes_sent});
    if (r.bytes_received) received.samples.push_back({a, *r.bytes_received});
    if (r.open_streams) streams.samples.push_back({a, *r.open_streams});
    if (r.datagrams_dropped) drops.samples.push_back({a, *r.datagrams_dropped});
    if (r.uptime_s) uptime.samples.push_back({a, *r.uptime_s});
    age.samples.push_back({a, agents[i].age_seconds});
  }
  if (folded) {
    const MetricLabels o = {{"agent", std::string(LabelCap::kOther)}};
    if (other.bytes_sent) sent.samples.push_back({o, *other.bytes_sent});
    if (other.bytes_received) received.samples.push_back({o, *other.bytes_received});
    if (other.open_streams) streams.samples.push_back({o, *other.open_streams});
    if (other.datagrams_dropped) drops.samples.push_back({o, *other.datagrams_dropped});
  }
  for (MetricFamily* f : {&info, &rtt, &sent, &received, &streams, &drops, &uptime, &age})
    out.push_back(std::move(*f));
}

}  // namespace wtmesh::edge
