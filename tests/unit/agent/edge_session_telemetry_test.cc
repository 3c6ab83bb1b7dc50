// EdgeSession's telemetry reports (docs/protocol.md §2.2) on an in-memory session: one when the
// session is ready, then one per interval while it is busy and one per idle interval while it is not,
// on datagram flow 0; a report that does not fit is dropped and counted in the next one. And the
// busy/idle signal the agent sets its QUIC keep-alive by (EdgeSession::Callbacks::on_busy).
#include <gtest/gtest.h>

#include <array>
#include <functional>

#include "../../support/run_until.h"
#include "agent/edge_session.h"
#include "fake_session.h"
#include "local_http_server.h"
#include "tunnel/telemetry.h"
#include "tunnel/udp_flow.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class Telemetry : public ::testing::Test {
 protected:
  Telemetry() : pool_(io_, {asio::ip::make_address("127.0.0.1"), server_.port()}) {}

  // `idle`: the idle sessions' interval (default: the same as a busy one's).
  void make(std::chrono::milliseconds interval, std::optional<std::chrono::milliseconds> idle = std::nullopt,
            EdgeSession::Callbacks callbacks = {}, std::chrono::milliseconds ping = 10s,
            std::chrono::milliseconds idle_after = 0ms) {
    ControlOptions control;
    control.telemetry_interval = interval;
    control.telemetry_idle_interval = idle.value_or(interval);
    control.ping_interval = ping;
    control.missed_intervals = 1000;  // the fake never answers a PING
    control.idle_after = idle_after;
    control.agent_version = "9.8.7";
    control.started_at = std::chrono::steady_clock::now() - 3s;
    std::vector<TunnelRoute> routes{{{7, "app.localhost", "http"}, &pool_}};
    routes.insert(routes.end(), extra_routes_.begin(), extra_routes_.end());
    ts_ = std::make_unique<EdgeSession>(io_, std::move(routes), control, ExchangeLimits{}, std::move(callbacks));
    ts_->on_attached(fake_);
    ts_->on_ready();
  }
  tunnel::TelemetryReport report(size_t i) {
    const auto d = tunnel::decode_datagram(fake_.datagrams.at(i));
    EXPECT_TRUE(d.has_value());
    EXPECT_EQ(d->flow_id, tunnel::kTelemetryFlowId);
    tunnel::TelemetryReport r;
    EXPECT_EQ(tunnel::decode_telemetry(d->payload, r), tunnel::TelemetryError::kNone);
    return r;
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    return test::run_io_until(io_, done, limit, test::Turn::kOneHandler);
  }

  testing::LocalHttpServer server_;
  asio::io_context io_;
  UpstreamPool pool_;
  testing::FakeSession fake_;
  std::vector<TunnelRoute> extra_routes_;  // besides the http tunnel 7: set before make()
  std::unique_ptr<EdgeSession> ts_;
};

TEST_F(Telemetry, FirstReportWhenReadyThenEveryInterval) {
  fake_.max_datagram = 1200;
  make(50ms);
  ASSERT_EQ(fake_.datagrams.size(), 1u);
  const tunnel::TelemetryReport first = report(0);
  EXPECT_EQ(first.version, "9.8.7");
  EXPECT_GE(first.uptime_s.value_or(0), 3u);
  EXPECT_EQ(first.open_streams, 1u);            // the control stream
  EXPECT_GT(first.bytes_sent.value_or(0), 0u);  // its kind and REGISTER
  EXPECT_EQ(first.bytes_received, 0u);
  EXPECT_EQ(first.datagrams_dropped, 0u);
  EXPECT_FALSE(first.rtt_us.has_value());  // the fake measures no RTT, no PONG came yet
  const wt::StreamId control = fake_.streams.begin()->first;
  const auto pong = tunnel::encode_control_frame(tunnel::ControlType::kPong, R"({"seq":1})");
  ts_->on_stream_data(control, pong, false);
  ASSERT_TRUE(run_until([&] { return fake_.datagrams.size() >= 3; }));
  const tunnel::TelemetryReport later = report(2);
  EXPECT_EQ(later.bytes_received, pong.size());
  EXPECT_EQ(later.bytes_sent,
            first.bytes_sent.value() + fake_.datagrams[0].size() + fake_.datagrams[1].size());
}

TEST_F(Telemetry, ReportThatDoesNotFitIsDroppedAndCounted) {
  fake_.max_datagram = 4;  // smaller than any report
  make(50ms);
  EXPECT_TRUE(fake_.datagrams.empty());
  fake_.max_datagram = 1200;
  ASSERT_TRUE(run_until([&] { return !fake_.datagrams.empty(); }));
  EXPECT_EQ(report(0).datagrams_dropped, 1u);
}

TEST_F(Telemetry, AnIdleSessionReportsSeldomAndABusyOneEveryInterval) {
  fake_.max_datagram = 1200;
  std::vector<bool> busy;
  EdgeSession::Callbacks cb;
  cb.on_busy = [&busy](bool b) { busy.push_back(b); };
  make(20ms, 400ms, std::move(cb), 50ms);
  EXPECT_EQ(busy, std::vector<bool>{false});  // ready, with only the control stream: idle
  EXPECT_FALSE(ts_->busy());
  ASSERT_EQ(fake_.datagrams.size(), 1u);  // the report at ready
  EXPECT_FALSE(run_until([&] { return fake_.datagrams.size() > 1; }, 250ms)) << "idle: one per 400 ms";

  // The edge opens a request stream: busy at once, and a report every 20 ms.
  const wt::StreamId request = 4004;
  ts_->on_incoming_stream(request, true);
  EXPECT_EQ(busy, (std::vector<bool>{false, true}));
  EXPECT_TRUE(ts_->busy());
  const size_t before = fake_.datagrams.size();
  ASSERT_TRUE(run_until([&] { return fake_.datagrams.size() >= before + 3; }, 1s));
  EXPECT_EQ(report(fake_.datagrams.size() - 1).open_streams, 2u);  // control + the request's

  // It ends: idle again at the next heartbeat tick (50 ms), one last report says so, then quiet.
  ts_->on_stream_closed(request);
  ASSERT_TRUE(run_until([&] { return busy.size() == 3; }, 1s));
  EXPECT_FALSE(busy.back());
  ASSERT_TRUE(run_until(
      [&] { return report(fake_.datagrams.size() - 1).open_streams == std::optional<uint64_t>(1); }, 1s));
  const size_t settled = fake_.datagrams.size();
  EXPECT_FALSE(run_until([&] { return fake_.datagrams.size() > settled; }, 250ms));
  // The idle interval still reports.
  EXPECT_TRUE(run_until([&] { return fake_.datagrams.size() > settled; }, 1s));

  // A request that comes and goes between two ticks is reported at the next one, not a minute on.
  const size_t quiet = fake_.datagrams.size();
  ts_->on_incoming_stream(request + 4, true);
  ts_->on_stream_closed(request + 4);
  EXPECT_FALSE(ts_->busy());
  EXPECT_TRUE(run_until([&] { return fake_.datagrams.size() > quiet; }, 200ms));
}

TEST_F(Telemetry, IdleIsToldOnlyOnceNothingWasUnderWayForIdleAfter) {
  fake_.max_datagram = 1200;
  std::vector<bool> busy;
  std::vector<std::chrono::steady_clock::time_point> at;
  EdgeSession::Callbacks cb;
  cb.on_busy = [&](bool b) {
    busy.push_back(b);
    at.push_back(std::chrono::steady_clock::now());
  };
  const auto start = std::chrono::steady_clock::now();
  make(1s, std::nullopt, std::move(cb), 20ms, 200ms);
  EXPECT_TRUE(busy.empty()) << "a new session keeps the fast keep-alive for idle_after";
  ASSERT_TRUE(run_until([&] { return !busy.empty(); }, 2s));
  EXPECT_EQ(busy, std::vector<bool>{false});
  EXPECT_GE(at.back() - start, 200ms);

  const wt::StreamId request = 4004;
  ts_->on_incoming_stream(request, true);
  EXPECT_EQ(busy, (std::vector<bool>{false, true}));
  // Busy for 100 ms (heartbeat ticks see it), then idle_after more before the slow keep-alive.
  EXPECT_FALSE(run_until([&] { return busy.size() > 2; }, 100ms));
  ts_->on_stream_closed(request);
  const auto ended = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return busy.size() == 3; }, 2s));
  EXPECT_FALSE(busy.back());
  EXPECT_GE(at.back() - ended, 200ms - 20ms)
      << "the last tick that saw it busy is at most one interval earlier";
}

TEST_F(Telemetry, ANewUdpFlowMakesTheSessionBusyAndItStaysSoWhileTheFlowLives) {
  // The udp tunnel 8's local service: a socket here, to see the flow's packets arrive.
  asio::ip::udp::socket service(io_, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  TunnelRoute udp{{8, "dns", "udp"}, nullptr};
  udp.udp = UdpTarget{service.local_endpoint()};
  extra_routes_.push_back(udp);
  fake_.max_datagram = 1200;
  std::vector<bool> busy;
  EdgeSession::Callbacks cb;
  cb.on_busy = [&busy](bool b) { busy.push_back(b); };
  make(1s, std::nullopt, std::move(cb), 20ms, 100ms);
  ASSERT_TRUE(run_until([&] { return !busy.empty(); }, 2s));
  ASSERT_EQ(busy, std::vector<bool>{false});

  // The edge opens a flow on tunnel 8 (an even flow id is the edge's): busy at once, with no request
  // or stream under way, and the packet reaches the service.
  const uint64_t flow = *tunnel::udp_flow_id(tunnel::FlowOpener::kEdge, 0);
  const std::vector<uint8_t> packet{'q', '1'};
  ts_->on_datagram(tunnel::encode_udp_datagram(flow, 8, packet));
  EXPECT_EQ(busy, (std::vector<bool>{false, true}));
  EXPECT_TRUE(ts_->busy());
  std::array<uint8_t, 16> got{};
  asio::ip::udp::endpoint from;
  size_t n = 0;
  service.async_receive_from(asio::buffer(got), from, [&](boost::system::error_code ec, size_t len) {
    if (!ec) n = len;
  });
  ASSERT_TRUE(run_until([&] { return n > 0; }, 1s));
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(n)), packet);

  // More packets on the same flow tell nothing new, and while the flow lives the heartbeat ticks
  // (every 20 ms) keep seeing the session busy: no idle after idle_after (100 ms).
  ts_->on_datagram(tunnel::encode_udp_datagram(flow, 8, packet));
  EXPECT_FALSE(run_until([&] { return busy.size() > 2; }, 300ms));
  EXPECT_EQ(busy, (std::vector<bool>{false, true}));
  EXPECT_TRUE(ts_->busy());
}

TEST_F(Telemetry, IntervalZeroSendsNone) {
  fake_.max_datagram = 1200;
  make(0ms);
  EXPECT_FALSE(run_until([&] { return !fake_.datagrams.empty(); }, 300ms));
}

}  // namespace
}  // namespace wtmesh::agent
