// `wtmesh connect NAME --udp` on the agent (agent/udp_connect.h over EdgeSession, an in-memory session
// to the edge, real loopback UDP clients): a new client address opens a connect stream with flag `udp`
// and the next odd flow id (byte vector), its first packet waits for the reply, then packets go as
// `flow_id 0 payload` datagrams and the edge's answers come back to that client; a refusal is reported
// and the client's packets dropped for a while; the cap, too big and early packets are counted; the
// edge's FIN, the agent's idle expiry and the session's end close flows.
#include "agent/udp_connect.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/udp.hpp>
#include <functional>

#include "../../support/run_until.h"
#include "fake_session.h"
#include "tunnel/connect_stream.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using namespace std::chrono_literals;
constexpr uint64_t kFirstFlow = (uint64_t{1} << 30) + 1;

class UdpConnectTest : public ::testing::Test {
 protected:
  void make(size_t max_flows = 8, std::chrono::milliseconds idle = 60s) {
    fake_.max_datagram = 1200;
    session_ = std::make_unique<EdgeSession>(io_, std::vector<TunnelRoute>{}, ControlOptions{},
                                             ExchangeLimits{}, EdgeSession::Callbacks{});
    session_->on_attached(fake_);
    session_->on_ready();
    control_ = fake_.streams.begin()->first;
    port_ = std::make_unique<UdpConnectPort>(io_, "dns", tunnel::UdpFlowOptions{max_flows, idle},
                                             [this](const std::string& code, const std::string& message) {
                                               refusals_.push_back(code + ": " + message);
                                             });
    std::string error;
    ASSERT_TRUE(port_->listen(udp::endpoint(asio::ip::make_address("127.0.0.1"), 0), &error)) << error;
    port_->set_session(session_.get());
  }
  void TearDown() override {
    port_.reset();
    session_.reset();
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3s) {
    return test::run_io_until(io_, done, limit, test::Turn::kOneHandler);
  }
  udp::socket client() { return udp::socket(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)); }
  void send(udp::socket& s, std::string_view payload) {
    s.send_to(asio::buffer(payload.data(), payload.size()), port_->local_endpoint());
  }
  // The streams other than the control stream, in the order they were opened.
  std::vector<wt::StreamId> flow_streams() {
    std::vector<wt::StreamId> ids;
    for (const auto& [id, s] : fake_.streams)
      if (id != control_) ids.push_back(id);
    return ids;
  }
  void edge_replies(wt::StreamId id, tunnel::ConnectStatus status, std::string_view message = "") {
    session_->on_stream_data(id, tunnel::encode_connect_reply(status, message), false);
  }
  void edge_answers(uint64_t flow, std::string_view payload) {
    session_->on_datagram(tunnel::encode_udp_datagram(
        flow, 0, {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()}));
  }
  std::optional<std::string> receive(udp::socket& s) {
    s.non_blocking(true);
    std::array<char, 2048> buf{};
    std::optional<std::string> got;
    run_until(
        [&] {
          boost::system::error_code ec;
          const size_t n = s.receive(asio::buffer(buf), 0, ec);
          if (!ec) got = std::string(buf.data(), n);
          return got.has_value();
        },
        1s);
    return got;
  }

  asio::io_context io_;
  testing::FakeSession fake_;
  std::unique_ptr<EdgeSession> session_;
  std::unique_ptr<UdpConnectPort> port_;
  wt::StreamId control_ = 0;
  std::vector<std::string> refusals_;
};

TEST_F(UdpConnectTest, AFlowPerClientBothWays) {
  make();
  auto a = client();
  send(a, "q1");
  send(a, "q2");  // before the reply: dropped (only the first packet waits)
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 1 && port_->drops().queue_full == 1; }));
  const wt::StreamId id = flow_streams()[0];
  EXPECT_EQ(fake_.streams[id].out,
            (std::vector<uint8_t>{0x05, 0x0d, 0x01, 0x03, 'd', 'n', 's', 0xc0, 0, 0, 0, 0x40, 0, 0, 0x01}))
      << "kind, head_length, flag udp, name, flow id 2^30+1";
  EXPECT_TRUE(fake_.datagrams.empty()) << "nothing is sent before the reply";
  edge_replies(id, tunnel::ConnectStatus::kConnected);
  ASSERT_EQ(fake_.datagrams.size(), 1u) << "the held first packet goes out";
  EXPECT_EQ(fake_.datagrams[0], (std::vector<uint8_t>{0xc0, 0, 0, 0, 0x40, 0, 0, 0x01, 0x00, 'q', '1'}));
  send(a, "q3");
  ASSERT_TRUE(run_until([&] { return fake_.datagrams.size() == 2; }));
  edge_answers(kFirstFlow, "r1");
  EXPECT_EQ(receive(a), "r1");
  // A second client: its own flow, the next odd id.
  auto b = client();
  send(b, "b");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 2; }));
  const auto head = tunnel::encode_connect_stream_head({"dns", kFirstFlow + 2});
  EXPECT_EQ(fake_.streams[flow_streams()[1]].out, head);
  EXPECT_EQ(port_->flow_count(), 2u);
  // A datagram of a flow not open here is dropped.
  edge_answers(kFirstFlow + 40, "x");
  EXPECT_EQ(session_->udp_connect_unknown(), 1u);
}

TEST_F(UdpConnectTest, TooBigIsDroppedAndCountedNeverFragmented) {
  make();
  auto a = client();
  send(a, "first");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 1; }));
  edge_replies(flow_streams()[0], tunnel::ConnectStatus::kConnected);
  send(a, std::string(1192, 'x'));  // 9 bytes of framing + 1192 > 1200
  send(a, std::string(1191, 'x'));  // exactly 1200: fits
  ASSERT_TRUE(run_until([&] { return port_->drops().too_big == 1 && fake_.datagrams.size() == 2; }));
  EXPECT_EQ(fake_.datagrams[1].size(), 1200u);
}

TEST_F(UdpConnectTest, ARefusalIsReportedAndTheClientHeldOffForASecond) {
  make();
  auto a = client();
  send(a, "q");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 1; }));
  const wt::StreamId id = flow_streams()[0];
  session_->on_stream_data(
      id, tunnel::encode_connect_reply(tunnel::ConnectStatus::kNotInScope, "not in token scope"), true);
  ASSERT_EQ(refusals_.size(), 1u);
  EXPECT_EQ(refusals_[0], "not_in_scope: not in token scope");
  EXPECT_TRUE(fake_.streams[id].fin) << "the agent finishes its side too";
  EXPECT_TRUE(fake_.datagrams.empty()) << "the held packet never went";
  EXPECT_EQ(port_->flow_count(), 0u);
  send(a, "again");
  run_until([] { return false; }, 100ms);
  EXPECT_EQ(flow_streams().size(), 1u) << "no new stream within the hold";
  run_until([] { return false; }, 1000ms);
  send(a, "later");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 2; })) << "asked again after the hold";
}

TEST_F(UdpConnectTest, FlowCapDropsNewClients) {
  make(2);
  auto a = client(), b = client(), c = client();
  send(a, "a");
  send(b, "b");
  send(c, "c");
  ASSERT_TRUE(run_until([&] { return port_->drops().flow_cap == 1; }));
  EXPECT_EQ(flow_streams().size(), 2u);
  EXPECT_EQ(port_->flow_count(), 2u);
}

TEST_F(UdpConnectTest, TheEdgesFinEndsTheFlowAndANewOneOpens) {
  make();
  auto a = client();
  send(a, "q");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 1; }));
  const wt::StreamId id = flow_streams()[0];
  edge_replies(id, tunnel::ConnectStatus::kConnected);
  session_->on_stream_data(id, {}, true);  // the serving tunnel's flow expired at the edge
  EXPECT_TRUE(fake_.streams[id].fin) << "FIN back";
  EXPECT_EQ(port_->flow_count(), 0u);
  EXPECT_EQ(session_->udp_connect_count(), 0u);
  send(a, "q2");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 2; }));
  EXPECT_EQ(fake_.streams[flow_streams()[1]].out, tunnel::encode_connect_stream_head({"dns", kFirstFlow + 2}))
      << "a new flow id, never reused";
}

TEST_F(UdpConnectTest, IdleExpiryFinsTheStream) {
  make(8, 60ms);
  auto a = client();
  send(a, "q");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 1; }));
  const wt::StreamId id = flow_streams()[0];
  edge_replies(id, tunnel::ConnectStatus::kConnected);
  ASSERT_TRUE(run_until([&] { return fake_.streams[id].fin; })) << "expired: FIN";
  EXPECT_EQ(port_->flow_count(), 0u);
  EXPECT_EQ(session_->udp_connect_count(), 0u);
}

TEST_F(UdpConnectTest, TheSessionsEndEndsEveryFlow) {
  make();
  auto a = client(), b = client();
  send(a, "a");
  send(b, "b");
  ASSERT_TRUE(run_until([&] { return flow_streams().size() == 2; }));
  session_->on_closed(0, "bye");
  EXPECT_EQ(port_->flow_count(), 0u);
  port_->set_session(nullptr);
  send(a, "a2");
  ASSERT_TRUE(run_until([&] { return port_->drops().queue_full >= 1; })) << "no session: dropped";
}

}  // namespace
}  // namespace wtmesh::agent
