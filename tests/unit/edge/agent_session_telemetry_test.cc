// AgentSession and telemetry datagrams (docs/protocol.md §2.2): flow 0 carries the agent's reports;
// the latest that decodes is kept, bad ones are counted and change nothing.
#include "agent_session_fixture.h"
#include "edge/metrics.h"
#include "tunnel/telemetry.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {
namespace {

class AgentSessionTelemetryTest : public AgentSessionTest {
 protected:
  void SetUp() override {
    cfg_.metrics = &metrics_;
    AgentSessionTest::SetUp();
  }
  EdgeMetrics metrics_;
};

tunnel::TelemetryReport report(uint64_t rtt_us, uint64_t streams) {
  tunnel::TelemetryReport r;
  r.rtt_us = rtt_us;
  r.open_streams = streams;
  r.version = "0.1.0";
  return r;
}

TEST_F(AgentSessionTelemetryTest, KeepsTheLatestReport) {
  EXPECT_FALSE(ts_->telemetry().has_value());
  ts_->on_datagram(*tunnel::encode_telemetry_datagram(report(1500, 1), 1200));
  ASSERT_TRUE(ts_->telemetry().has_value());
  EXPECT_EQ(ts_->telemetry()->rtt_us, 1500u);
  const SteadyTime first = ts_->telemetry_at();
  clock_.t += 5s;
  ts_->on_datagram(*tunnel::encode_telemetry_datagram(report(900, 4), 1200));
  EXPECT_EQ(ts_->telemetry()->rtt_us, 900u);
  EXPECT_EQ(ts_->telemetry()->open_streams, 4u);
  EXPECT_EQ(ts_->telemetry_at() - first, 5s);
  EXPECT_NE(render_metrics(metrics_.collect({}, {}))
                .find("wtmesh_telemetry_reports_total{result=\"accepted\"} 2\n"),
            std::string::npos);
}

TEST_F(AgentSessionTelemetryTest, BadReportsAreCountedAndChangeNothing) {
  ts_->on_datagram(*tunnel::encode_telemetry_datagram(report(1500, 1), 1200));
  ts_->on_datagram(std::vector<uint8_t>{0x00, 0x02, 0x01, 0x01, 0x05});  // report version 2
  ts_->on_datagram(std::vector<uint8_t>{0x00, 0x01, 0x01, 0x05});        // truncated entry
  ts_->on_datagram(std::vector<uint8_t>{0x00});                          // no version at all
  EXPECT_EQ(ts_->telemetry_invalid(), 3u);
  ASSERT_TRUE(ts_->telemetry().has_value());
  EXPECT_EQ(ts_->telemetry()->rtt_us, 1500u);
  EXPECT_FALSE(ts_->closed());  // datagrams never end the session (§2.1)
  EXPECT_NE(
      render_metrics(metrics_.collect({}, {})).find("wtmesh_telemetry_reports_total{result=\"invalid\"} 3\n"),
      std::string::npos);
}

TEST_F(AgentSessionTelemetryTest, ReportsAfterTheSessionClosedAreIgnored) {
  ts_->close(tunnel::kCloseNormal, "bye");
  ts_->on_datagram(*tunnel::encode_telemetry_datagram(report(1500, 1), 1200));
  EXPECT_FALSE(ts_->telemetry().has_value());
}

}  // namespace
}  // namespace wtmesh::edge
