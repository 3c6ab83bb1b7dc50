// EdgeSession's telemetry reports (docs/protocol.md §2.2) on an in-memory session: one when the
// session is ready, then one per interval, on datagram flow 0; a report that does not fit is dropped
// and counted in the next one.
#include <gtest/gtest.h>

#include <functional>

#include "../../support/run_until.h"
#include "agent/edge_session.h"
#include "fake_session.h"
#include "local_http_server.h"
#include "tunnel/telemetry.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class Telemetry : public ::testing::Test {
 protected:
  Telemetry() : pool_(io_, {asio::ip::make_address("127.0.0.1"), server_.port()}) {}

  void make(std::chrono::milliseconds interval) {
    ControlOptions control;
    control.telemetry_interval = interval;
    control.agent_version = "9.8.7";
    control.started_at = std::chrono::steady_clock::now() - 3s;
    ts_ = std::make_unique<EdgeSession>(io_, std::vector<TunnelRoute>{{{7, "app.localhost", "http"}, &pool_}},
                                        control, ExchangeLimits{}, EdgeSession::Callbacks{});
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

TEST_F(Telemetry, IntervalZeroSendsNone) {
  fake_.max_datagram = 1200;
  make(0ms);
  EXPECT_FALSE(run_until([&] { return !fake_.datagrams.empty(); }, 300ms));
}

}  // namespace
}  // namespace wtmesh::agent
