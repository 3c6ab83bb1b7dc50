// REGISTERs of type "udp" on the edge's AgentSession (docs/protocol.md §3.2, §4.4): claimed under the
// route key udp/NAME, published by the UdpPublisher, unpublished on UNREGISTER and session end; UDP
// flow datagrams from the agent go to the publisher, other flows do not; the session is the
// publisher's UdpFlowLink (its max datagram size and room).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent_session_fixture.h"

namespace wtmesh::edge {
namespace {

struct FakeUdpPublisher final : UdpPublisher {
  UdpPublishResult publish(const UdpPublishRequest& r) override {
    requests.push_back(r);
    UdpPublishResult res = answer;
    if (res.ok && res.url.empty())
      res.url =
          r.private_only ? "udp://" + r.hostname : "udp://127.0.0.1:" + std::to_string(21000 + r.tunnel_id);
    return res;
  }
  void unpublish(uint64_t /*session*/, uint32_t tunnel_id) override { unpublished.push_back(tunnel_id); }
  void on_agent_datagram(uint64_t session, const tunnel::UdpDatagram& d) override {
    received.push_back(
        {session, d.flow_id, d.tunnel_id, std::vector<uint8_t>(d.payload.begin(), d.payload.end())});
  }
  struct Received {
    uint64_t session, flow;
    uint32_t tunnel;
    std::vector<uint8_t> payload;
  };
  UdpPublishResult answer{true, "", "", ""};
  std::vector<UdpPublishRequest> requests;
  std::vector<uint32_t> unpublished;
  std::vector<Received> received;
};

class AgentSessionUdpTest : public AgentSessionTest {
 protected:
  void SetUp() override {
    start({"dns.localhost", "app.localhost"}, 64, nullptr, &udp_);
    open_control();
  }
  std::pair<uint64_t, json> register_udp(uint32_t id, const std::string& host, const json& options) {
    send(tunnel::ControlType::kRegister,
         json{{"id", id}, {"type", "udp"}, {"hostname", host}, {"options", options}});
    auto r = replies();
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? std::pair<uint64_t, json>{} : r[0];
  }
  static constexpr uint64_t kRegistered = static_cast<uint64_t>(tunnel::ControlType::kRegistered);
  static constexpr uint64_t kRefused = static_cast<uint64_t>(tunnel::ControlType::kRefused);

  FakeUdpPublisher udp_;
};

TEST_F(AgentSessionUdpTest, RegisteredUnderItsOwnRouteType) {
  auto [type, j] = register_udp(4, "dns.localhost", json{{"remote_port", 21053}});
  EXPECT_EQ(type, kRegistered);
  EXPECT_EQ(j["url"], "udp://127.0.0.1:21004");
  ASSERT_EQ(udp_.requests.size(), 1u);
  EXPECT_EQ(udp_.requests[0].remote_port, 21053u);
  EXPECT_EQ(udp_.requests[0].hostname, "dns.localhost");
  EXPECT_TRUE(routes_.find(kUdp, "dns.localhost", clock_.t).live());
  EXPECT_FALSE(routes_.find(kTcp, "dns.localhost", clock_.t).live());
  // The same name as udp again on this session is taken; as http it is another route.
  EXPECT_EQ(register_udp(5, "dns.localhost", json::object()).second["code"], "taken");
  EXPECT_EQ(register_one(6, "dns.localhost").first, kRegistered);
}

TEST_F(AgentSessionUdpTest, RefusalForwardedPrivatePassedOn) {
  udp_.answer = UdpPublishResult{false, "", "port_taken", "port 21053 is held by another tunnel"};
  auto [type, j] = register_udp(1, "dns.localhost", json{{"remote_port", 21053}});
  EXPECT_EQ(type, kRefused);
  EXPECT_EQ(j["code"], "port_taken");
  EXPECT_FALSE(routes_.find(kUdp, "dns.localhost", clock_.t).live());
  udp_.answer = UdpPublishResult{true, "", "", ""};
  auto [type2, j2] = register_udp(1, "dns.localhost", json{{"private", true}});
  EXPECT_EQ(type2, kRegistered);
  EXPECT_EQ(j2["url"], "udp://dns.localhost");
  EXPECT_TRUE(udp_.requests.back().private_only);
}

TEST_F(AgentSessionUdpTest, UnregisterAndSessionEndUnpublish) {
  EXPECT_EQ(register_udp(1, "dns.localhost", json::object()).first, kRegistered);
  EXPECT_EQ(register_udp(2, "app.localhost", json::object()).first, kRegistered);
  send(tunnel::ControlType::kUnregister, json{{"id", 1}});
  EXPECT_EQ(udp_.unpublished, std::vector<uint32_t>{1});
  fake_->peer_closes(0, "bye");
  EXPECT_EQ(udp_.unpublished, (std::vector<uint32_t>{1, 2}));
}

TEST_F(AgentSessionUdpTest, UdpFlowDatagramsGoToThePublisherOthersDoNot) {
  const std::vector<uint8_t> payload = {'q'};
  const auto udp = tunnel::encode_udp_datagram((uint64_t{1} << 30) + 2, 3, payload);
  ts_->on_datagram(udp);
  ASSERT_EQ(udp_.received.size(), 1u);
  EXPECT_EQ(udp_.received[0].session, 1u);
  EXPECT_EQ(udp_.received[0].flow, (uint64_t{1} << 30) + 2);
  EXPECT_EQ(udp_.received[0].tunnel, 3u);
  EXPECT_EQ(udp_.received[0].payload, payload);
  ts_->on_datagram(tunnel::encode_datagram(0, payload));                 // telemetry: not a UDP flow
  ts_->on_datagram(tunnel::encode_datagram(17, payload));                // a relay id nobody holds
  ts_->on_datagram(std::vector<uint8_t>{0xc0, 0, 0, 0, 0x40, 0, 0, 0});  // UDP flow, no tunnel id
  EXPECT_EQ(udp_.received.size(), 1u);
}

TEST_F(AgentSessionUdpTest, IsTheLinkWithTheSessionsSizeAndRoom) {
  UdpFlowLink& link = *ts_;
  EXPECT_EQ(link.max_datagram_size(), 0u) << "datagrams unavailable";
  const std::vector<uint8_t> d = {1, 2, 3};
  EXPECT_FALSE(link.send_datagram(d));
  fake_->max_datagram = 1200;
  fake_->datagram_room = 1;
  EXPECT_EQ(link.max_datagram_size(), 1200u);
  EXPECT_TRUE(link.send_datagram(d));
  EXPECT_FALSE(link.send_datagram(d)) << "no room";
  ASSERT_EQ(fake_->datagrams.size(), 1u);
  fake_->peer_closes(0, "bye");
  EXPECT_EQ(link.max_datagram_size(), 0u);
  EXPECT_FALSE(link.send_datagram(d));
}

TEST_F(AgentSessionUdpTest, WithoutAPublisherUdpIsRefusedAsInvalid) {
  start({"dns.localhost"});
  open_control();
  auto [type, j] = register_udp(1, "dns.localhost", json::object());
  EXPECT_EQ(type, kRefused);
  EXPECT_EQ(j["code"], "invalid");
}

}  // namespace
}  // namespace wtmesh::edge
