// The edge's metrics registry and its Prometheus text rendering (format 0.0.4), as exact text.
#include "edge/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wtmesh::edge {
namespace {

TEST(MetricsText, RendersASmallRegistryExactly) {
  std::vector<MetricFamily> f;
  f.push_back(
      {"wtmesh_things_total",
       "Things seen.",
       MetricFamily::Type::kCounter,
       {{{{"tunnel", "a.localhost"}, {"code", "2xx"}}, uint64_t{3}}, {{}, uint64_t{18446744073709551615u}}}});
  f.push_back({"wtmesh_empty", "Not rendered: no samples.", MetricFamily::Type::kGauge, {}});
  f.push_back({"wtmesh_rtt_seconds",
               "Round trip.",
               MetricFamily::Type::kGauge,
               {{{{"agent", "demo#1"}}, 0.00125}, {{{"agent", "x"}}, 2.0}}});
  EXPECT_EQ(render_metrics(f),
            "# HELP wtmesh_things_total Things seen.\n"
            "# TYPE wtmesh_things_total counter\n"
            "wtmesh_things_total{tunnel=\"a.localhost\",code=\"2xx\"} 3\n"
            "wtmesh_things_total 18446744073709551615\n"
            "# HELP wtmesh_rtt_seconds Round trip.\n"
            "# TYPE wtmesh_rtt_seconds gauge\n"
            "wtmesh_rtt_seconds{agent=\"demo#1\"} 0.00125\n"
            "wtmesh_rtt_seconds{agent=\"x\"} 2\n");
}

TEST(MetricsText, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");
  std::vector<MetricFamily> f;
  f.push_back({"wtmesh_x", "line\nbreak", MetricFamily::Type::kGauge, {{{{"v", "q\"uote"}}, uint64_t{1}}}});
  EXPECT_EQ(render_metrics(f),
            "# HELP wtmesh_x line\\nbreak\n# TYPE wtmesh_x gauge\nwtmesh_x{v=\"q\\\"uote\"} 1\n");
}

TEST(MetricsText, SpecialFloats) {
  std::vector<MetricFamily> f;
  f.push_back({"wtmesh_f",
               "f",
               MetricFamily::Type::kGauge,
               {{{{"k", "nan"}}, std::numeric_limits<double>::quiet_NaN()},
                {{{"k", "inf"}}, std::numeric_limits<double>::infinity()},
                {{{"k", "-inf"}}, -std::numeric_limits<double>::infinity()}}});
  EXPECT_EQ(render_metrics(f),
            "# HELP wtmesh_f f\n# TYPE wtmesh_f gauge\nwtmesh_f{k=\"nan\"} NaN\nwtmesh_f{k=\"inf\"} +Inf\n"
            "wtmesh_f{k=\"-inf\"} -Inf\n");
}

TEST(LabelCapTest, FoldsValuesPastTheCapIntoOther) {
  LabelCap cap(2);
  EXPECT_EQ(cap.admit("a"), "a");
  EXPECT_EQ(cap.admit("b"), "b");
  EXPECT_EQ(cap.admit("c"), "_other");
  EXPECT_EQ(cap.admit("a"), "a");  // held values stay
  EXPECT_EQ(cap.size(), 2u);
}

const MetricFamily* find(const std::vector<MetricFamily>& fs, std::string_view name) {
  for (const auto& f : fs) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

TEST(EdgeMetricsTest, RequestsByTunnelAndStatusClass) {
  EdgeMetrics m;
  m.on_request("a.localhost", 200, 10);
  m.on_request("a.localhost", 204, 0);
  m.on_request("a.localhost", 502, 5);
  m.on_request("_none", 404, 7);
  m.on_request("a.localhost", 99, 0);  // not an HTTP status: "other"
  const std::string text = m.render({}, {});
  EXPECT_NE(text.find("wtmesh_http_requests_total{tunnel=\"a.localhost\",code=\"2xx\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("wtmesh_http_requests_total{tunnel=\"a.localhost\",code=\"5xx\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("wtmesh_http_requests_total{tunnel=\"a.localhost\",code=\"other\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("wtmesh_http_requests_total{tunnel=\"_none\",code=\"4xx\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("wtmesh_http_response_bytes_total{tunnel=\"a.localhost\"} 15\n"), std::string::npos);
  EXPECT_EQ(text.find("code=\"3xx\""), std::string::npos);  // classes never seen are not rendered
}

TEST(EdgeMetricsTest, TunnelLabelCapIsHit) {
  EdgeMetrics m(3);
  for (int i = 0; i < 10; ++i) m.on_request("t" + std::to_string(i) + ".localhost", 200, 1);
  const auto fs = m.collect({}, {});
  const MetricFamily* req = find(fs, "wtmesh_http_requests_total");
  ASSERT_NE(req, nullptr);
  ASSERT_EQ(req->samples.size(), 4u);                     // three tunnels of their own, then _other
  EXPECT_EQ(req->samples[0].labels[0].second, "_other");  // sorted by label
  EXPECT_EQ(std::get<uint64_t>(req->samples[0].value), 7u);
}

TEST(EdgeMetricsTest, GaugesCountersAndRefusals) {
  EdgeMetrics m;
  m.add_public_bytes(100, 2000);
  m.on_tls_handshake_failure();
  m.on_quic_handshake_failure();
  m.on_quic_handshake_failure();
  m.on_session_refused(SessionRefusal::kExpired);
  m.on_telemetry(true);
  m.on_telemetry(false);
  EdgeGauges g{.agent_sessions = 2,
               .tunnel_streams = 5,
               .public_connections = 3,
               .quic_connections = 4,
               .tcp_connections = 1,
               .udp_flows = 6,
               .udp_drops = {.too_big = 7, .flow_cap = 8, .queue_full = 0, .unknown_flow = 9},
               .udp_route_flows = 10,
               .udp_route_refused = 11};
  const std::string text = m.render(g, {});
  for (const char* line : {"wtmesh_public_received_bytes_total 100\n",
                           "wtmesh_public_sent_bytes_total 2000\n",
                           "wtmesh_agent_sessions 2\n",
                           "wtmesh_tunnel_streams 5\n",
                           "wtmesh_public_connections 3\n",
                           "wtmesh_quic_connections 4\n",
                           "wtmesh_tcp_tunnel_connections 1\n",
                           "wtmesh_udp_tunnel_flows 6\n",
                           "wtmesh_udp_route_flows 10\n",
                           "wtmesh_udp_route_flows_refused_total 11\n",
                           "wtmesh_udp_packets_dropped_total{reason=\"too_big\"} 7\n",
                           "wtmesh_udp_packets_dropped_total{reason=\"flow_cap\"} 8\n",
                           "wtmesh_udp_packets_dropped_total{reason=\"queue_full\"} 0\n",
                           "wtmesh_udp_packets_dropped_total{reason=\"unknown_flow\"} 9\n",
                           "wtmesh_handshake_failures_total{transport=\"tls\"} 1\n",
                           "wtmesh_handshake_failures_total{transport=\"quic\"} 2\n",
                           "wtmesh_session_refusals_total{reason=\"expired\"} 1\n",
                           "wtmesh_session_refusals_total{reason=\"missing_token\"} 0\n",
                           "wtmesh_telemetry_reports_total{result=\"accepted\"} 1\n",
                           "wtmesh_telemetry_reports_total{result=\"invalid\"} 1\n",
                           "# TYPE wtmesh_agent_sessions gauge\n",
                           "# TYPE wtmesh_public_sent_bytes_total counter\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  EXPECT_EQ(text.find("wtmesh_agent_rtt_seconds"), std::string::npos);  // no agent reported
}

TEST(EdgeMetricsTest, AgentTelemetryGaugesExactly) {
  EdgeMetrics m;
  tunnel::TelemetryReport r;
  r.rtt_us = 1500;
  r.bytes_sent = 10;
  r.bytes_received = 20;
  r.open_streams = 2;
  r.datagrams_dropped = 0;
  r.uptime_s = 60;
  r.version = "0.1.0";
  std::vector<MetricFamily> fs = m.collect({}, {{"demo\"#1", r, 1.5}});
  std::vector<MetricFamily> agent;
  for (auto& f : fs) {
    if (f.name.starts_with("wtmesh_agent_") && f.name != "wtmesh_agent_sessions") agent.push_back(f);
  }
  EXPECT_EQ(
      render_metrics(agent),
      "# HELP wtmesh_agent_info Live agent sessions that reported telemetry, with the agent's version.\n"
      "# TYPE wtmesh_agent_info gauge\n"
      "wtmesh_agent_info{agent=\"demo\\\"#1\",version=\"0.1.0\"} 1\n"
      "# HELP wtmesh_agent_rtt_seconds Round-trip time between the agent and the edge, as the agent measures "
      "it.\n"
      "# TYPE wtmesh_agent_rtt_seconds gauge\n"
      "wtmesh_agent_rtt_seconds{agent=\"demo\\\"#1\"} 0.0015\n"
      "# HELP wtmesh_agent_sent_bytes_total Payload bytes the agent sent on its session.\n"
      "# TYPE wtmesh_agent_sent_bytes_total counter\n"
      "wtmesh_agent_sent_bytes_total{agent=\"demo\\\"#1\"} 10\n"
      "# HELP wtmesh_agent_received_bytes_total Payload bytes the agent received on its session.\n"
      "# TYPE wtmesh_agent_received_bytes_total counter\n"
      "wtmesh_agent_received_bytes_total{agent=\"demo\\\"#1\"} 20\n"
      "# HELP wtmesh_agent_open_streams Streams the agent holds open.\n"
      "# TYPE wtmesh_agent_open_streams gauge\n"
      "wtmesh_agent_open_streams{agent=\"demo\\\"#1\"} 2\n"
      "# HELP wtmesh_agent_datagrams_dropped_total Datagrams the agent dropped on its session.\n"
      "# TYPE wtmesh_agent_datagrams_dropped_total counter\n"
      "wtmesh_agent_datagrams_dropped_total{agent=\"demo\\\"#1\"} 0\n"
      "# HELP wtmesh_agent_uptime_seconds Seconds since the agent process started.\n"
      "# TYPE wtmesh_agent_uptime_seconds gauge\n"
      "wtmesh_agent_uptime_seconds{agent=\"demo\\\"#1\"} 60\n"
      "# HELP wtmesh_agent_report_age_seconds Seconds since the agent's latest telemetry report.\n"
      "# TYPE wtmesh_agent_report_age_seconds gauge\n"
      "wtmesh_agent_report_age_seconds{agent=\"demo\\\"#1\"} 1.5\n");
}

TEST(EdgeMetricsTest, AgentsPastTheCapAreFoldedIntoOther) {
  EdgeMetrics m(2);
  std::vector<AgentTelemetry> agents;
  for (int i = 0; i < 5; ++i) {
    tunnel::TelemetryReport r;
    r.rtt_us = 1000;
    r.open_streams = 1;
    r.bytes_sent = 100;
    agents.push_back({"a" + std::to_string(i), r, 0});
  }
  const auto fs = m.collect({}, agents);
  const MetricFamily* streams = find(fs, "wtmesh_agent_open_streams");
  ASSERT_NE(streams, nullptr);
  ASSERT_EQ(streams->samples.size(), 3u);
  EXPECT_EQ(streams->samples[2].labels[0].second, "_other");
  EXPECT_EQ(std::get<uint64_t>(streams->samples[2].value), 3u);
  EXPECT_EQ(std::get<uint64_t>(find(fs, "wtmesh_agent_sent_bytes_total")->samples[2].value), 300u);
  EXPECT_EQ(find(fs, "wtmesh_agent_rtt_seconds")->samples.size(), 2u);  // an RTT does not add up
}

}  // namespace
}  // namespace wtmesh::edge
