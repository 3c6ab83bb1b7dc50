// Connect streams with flag `udp` on the edge's AgentSession (docs/protocol.md §4.3, §4.4): the
// connecting agent's session (a fake WebTransport session) asks for a flow to a private udp tunnel
// served by another session (a real UdpTunnels with a fake link, through a real UdpConnects). The
// reply comes on the stream; the agent's datagrams of its odd flow id reach the serving tunnel framed
// for it, and the answers come back on the odd flow; refusals (scope, unknown, cap, duplicate flow),
// FIN either way, idle expiry, too-big answers and the session's end.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "agent_session_fixture.h"
#include "edge/udp_connects.h"
#include "edge/udp_tunnels.h"
#include "tunnel/connect_stream.h"
#include "udp_connect_fakes.h"

namespace wtmesh::edge {
namespace {

using tunnel::ConnectStatus;
constexpr uint64_t kFlow = (uint64_t{1} << 30) + 1;  // the connecting agent's first flow id
constexpr uint64_t kServing = 2;                     // the serving agent's session
constexpr uint32_t kTunnel = 9;                      // its udp tunnel's REGISTER id

class AgentSessionUdpConnectTest : public AgentSessionTest {
 protected:
  void SetUp() override { make(8, 60s); }
  void make(size_t max_flows, std::chrono::milliseconds idle) {
    ts_.reset();
    connects_.reset();
    UdpTunnelOptions o;
    o.port_min = o.port_max = 1;  // private tunnels only: no port
    o.flows.max_flows = max_flows;
    o.flows.idle_timeout = idle;
    tunnels_ = std::make_unique<UdpTunnels>(
        io_, [this](uint64_t s) -> UdpFlowLink* { return s == kServing ? &link_ : nullptr; }, o);
    ASSERT_TRUE(tunnels_->publish({kServing, kTunnel, "dns.localhost", 0, true}).ok);
    dir_.routes["dns.localhost"] = RouteLookup{RouteLookup::Kind::kFound, kServing, kTunnel, "dns.localhost"};
    connects_ = std::make_unique<UdpConnects>(io_, dir_, tunnels_.get());
    cfg_.udp_connects = connects_.get();
    cfg_.max_connect_streams = 3;
    start({"b.localhost"}, 64, nullptr, nullptr, {"dns.localhost", "nope.localhost"});
    fake_->max_datagram = 1200;
    open_control();
  }
  void TearDown() override {
    ts_.reset();
    connects_.reset();
  }
  void agent_opens(wt::StreamId id, std::string name, uint64_t flow, bool fin = false) {
    ts_->on_incoming_stream(id, true);
    ts_->on_stream_data(id, tunnel::encode_connect_stream_head({std::move(name), flow}), fin);
    run();
  }
  void run() {
    io_.restart();
    io_.poll();
  }
  std::optional<tunnel::ConnectReply> reply_on(wt::StreamId id) {
    tunnel::ConnectReplyReader r;
    tunnel::ConnectReply reply;
    size_t used = 0;
    if (r.feed(fake_->streams[id].written, used, reply) != tunnel::WireError::kNone) return std::nullopt;
    return reply;
  }
  void agent_datagram(uint64_t flow, std::string_view payload, uint32_t tunnel_id = 0) {
    const auto d = tunnel::encode_udp_datagram(
        flow, tunnel_id, {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
    ts_->on_datagram(d);
  }

  boost::asio::io_context io_;
  test::FakeLink link_;
  test::UdpDirectory dir_;
  std::unique_ptr<UdpTunnels> tunnels_;
  std::unique_ptr<UdpConnects> connects_;
};

TEST_F(AgentSessionUdpConnectTest, ConnectedThenPacketsBothWays) {
  agent_opens(4, "dns", kFlow);  // NAME alone is NAME.DOMAIN
  const auto reply = reply_on(4);
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->connected());
  EXPECT_EQ(fake_->streams[4].written, (std::vector<uint8_t>{0x00, 0x00})) << "connected, no message";
  EXPECT_FALSE(fake_->streams[4].fin) << "the stream lives as long as the flow";
  EXPECT_EQ(ts_->connect_stream_count(), 1u) << "counted toward the connect cap";
  EXPECT_EQ(ts_->udp_connect_count(), 1u);
  // The agent's packet reaches the serving tunnel on an even flow of its own, with its tunnel id.
  agent_datagram(kFlow, "query");
  ASSERT_EQ(link_.sent.size(), 1u);
  const auto out = *tunnel::decode_udp_datagram(link_.sent[0]);
  EXPECT_EQ(out.flow_id, uint64_t{1} << 30);
  EXPECT_EQ(out.tunnel_id, kTunnel);
  EXPECT_EQ(std::string(out.payload.begin(), out.payload.end()), "query");
  // The service answers: back on the agent's odd flow id, tunnel id 0. Byte vector.
  const std::string answer = "ok";
  tunnels_->on_agent_datagram(kServing,
                              {out.flow_id, kTunnel, {reinterpret_cast<const uint8_t*>(answer.data()), 2}});
  ASSERT_EQ(fake_->datagrams.size(), 1u);
  EXPECT_EQ(fake_->datagrams[0], (std::vector<uint8_t>{0xc0, 0, 0, 0, 0x40, 0, 0, 0x01, 0x00, 'o', 'k'}));
  // Datagrams of a flow not open here, or with a tunnel id, are dropped and counted.
  agent_datagram(kFlow + 2, "x");
  agent_datagram(kFlow, "x", 3);
  EXPECT_EQ(link_.sent.size(), 1u);
  EXPECT_EQ(connects_->client_drops().unknown_flow, 2u);
}

TEST_F(AgentSessionUdpConnectTest, RefusalsAreRepliesWithFin) {
  agent_opens(4, "secret", kFlow);
  auto r = reply_on(4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, static_cast<uint64_t>(ConnectStatus::kNotInScope));
  EXPECT_EQ(r->message, "not in token scope");
  EXPECT_TRUE(fake_->streams[4].fin);
  agent_opens(8, "nope", kFlow);
  r = reply_on(8);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, static_cast<uint64_t>(ConnectStatus::kUnknown));
  EXPECT_EQ(r->message, "no udp tunnel is named nope.localhost");
  EXPECT_TRUE(fake_->streams[8].fin);
  EXPECT_EQ(ts_->connect_stream_count(), 0u);
  EXPECT_EQ(ts_->udp_connect_count(), 0u);
  // The same flow id twice at once: the second is invalid.
  agent_opens(12, "dns", kFlow);
  agent_opens(16, "dns", kFlow);
  r = reply_on(16);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, static_cast<uint64_t>(ConnectStatus::kInvalid));
  EXPECT_TRUE(reply_on(12)->connected());
  // The connect cap (3) counts udp flows: two more fill it, a third is refused.
  agent_opens(20, "dns", kFlow + 2);
  agent_opens(24, "dns", kFlow + 4);
  agent_opens(28, "dns", kFlow + 6);
  EXPECT_EQ(reply_on(28)->status, static_cast<uint64_t>(ConnectStatus::kLimit));
  EXPECT_EQ(ts_->udp_connect_count(), 3u);
  EXPECT_FALSE(fake_->closed) << "refusals never end the session";
}

TEST_F(AgentSessionUdpConnectTest, ServingTunnelAtItsFlowCapIsLimit) {
  make(1, 60s);
  agent_opens(4, "dns", kFlow);
  agent_opens(8, "dns", kFlow + 2);
  EXPECT_TRUE(reply_on(4)->connected());
  EXPECT_EQ(reply_on(8)->status, static_cast<uint64_t>(ConnectStatus::kLimit));
  EXPECT_EQ(tunnels_->drops(kServing, kTunnel)->flow_cap, 1u);
}

TEST_F(AgentSessionUdpConnectTest, AgentFinEndsTheFlowAndTheEdgeFinsBack) {
  agent_opens(4, "dns", kFlow);
  ASSERT_EQ(tunnels_->client_flow_count(), 1u);
  ts_->on_stream_data(4, {}, true);
  EXPECT_TRUE(fake_->streams[4].fin);
  EXPECT_EQ(tunnels_->client_flow_count(), 0u) << "the serving tunnel's flow is closed";
  EXPECT_EQ(ts_->udp_connect_count(), 0u);
  EXPECT_EQ(ts_->connect_stream_count(), 0u);
  agent_datagram(kFlow, "late");
  EXPECT_TRUE(link_.sent.empty());
  // The flow id may be used again once its stream ended.
  agent_opens(8, "dns", kFlow);
  EXPECT_TRUE(reply_on(8)->connected());
}

TEST_F(AgentSessionUdpConnectTest, AgentResetAndSessionEndCloseTheFlows) {
  agent_opens(4, "dns", kFlow);
  agent_opens(8, "dns", kFlow + 2);
  ts_->on_stream_reset(4, tunnel::kStreamCancelled);
  EXPECT_EQ(tunnels_->client_flow_count(), 1u);
  fake_->peer_closes(0, "bye");
  EXPECT_EQ(tunnels_->client_flow_count(), 0u);
  EXPECT_EQ(ts_->udp_connect_count(), 0u);
}

TEST_F(AgentSessionUdpConnectTest, IdleExpiryFinsTheStream) {
  make(8, 50ms);
  agent_opens(4, "dns", kFlow);
  ASSERT_TRUE(reply_on(4)->connected());
  const auto end = std::chrono::steady_clock::now() + 2s;
  while (!fake_->streams[4].fin && std::chrono::steady_clock::now() < end) {
    io_.restart();
    io_.run_for(10ms);
  }
  EXPECT_TRUE(fake_->streams[4].fin) << "the serving tunnel's flow expired: FIN";
  EXPECT_EQ(ts_->udp_connect_count(), 0u);
  EXPECT_EQ(ts_->connect_stream_count(), 0u);
}

TEST_F(AgentSessionUdpConnectTest, AnswersTooBigForTheConnectingSessionAreDroppedAndCounted) {
  agent_opens(4, "dns", kFlow);
  agent_datagram(kFlow, "q");
  const auto out = *tunnel::decode_udp_datagram(link_.sent[0]);
  fake_->max_datagram = 20;
  const std::vector<uint8_t> big(12, 'x');  // 9 bytes of framing + 12 > 20
  const std::vector<uint8_t> fits(11, 'x');
  tunnels_->on_agent_datagram(kServing, {out.flow_id, kTunnel, big});
  tunnels_->on_agent_datagram(kServing, {out.flow_id, kTunnel, fits});
  EXPECT_EQ(connects_->client_drops().too_big, 1u);
  ASSERT_EQ(fake_->datagrams.size(), 1u);
  EXPECT_EQ(fake_->datagrams[0].size(), 20u);
  fake_->datagram_room = 1;
  tunnels_->on_agent_datagram(kServing, {out.flow_id, kTunnel, fits});
  EXPECT_EQ(connects_->client_drops().queue_full, 1u);
}

TEST_F(AgentSessionUdpConnectTest, AnEdgeWithoutUdpRefusesUnknown) {
  cfg_.udp_connects = nullptr;
  start({"b.localhost"}, 64, nullptr, nullptr, {"dns.localhost"});
  open_control();
  agent_opens(4, "dns", kFlow);
  const auto r = reply_on(4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, static_cast<uint64_t>(ConnectStatus::kUnknown));
  EXPECT_EQ(r->message, "this edge has no UDP tunnels");
}

}  // namespace
}  // namespace wtmesh::edge
