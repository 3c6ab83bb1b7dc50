// The edge's UDP tunnels (edge/udp_tunnels.h) with real loopback sockets and a fake session link:
// one flow per client address with an even id from 2^30, answers back to that address, and every
// drop counted: too big for the session's datagrams, no room in it, a client past the flow cap, a
// datagram for a flow or tunnel that is gone; idle flows expire; refusals of the port rules.
#include "edge/udp_tunnels.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <functional>
#include <vector>

#include "tunnel/control.h"

namespace wtmesh::edge {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using namespace std::chrono_literals;

struct FakeLink final : UdpFlowLink {
  size_t max_datagram_size() const override { return max; }
  bool send_datagram(std::span<const uint8_t> d) override {
    if (sent.size() >= room) return false;
    sent.emplace_back(d.begin(), d.end());
    return true;
  }
  size_t max = 1200;
  size_t room = 1000;
  std::vector<std::vector<uint8_t>> sent;
};

class UdpTunnelsTest : public ::testing::Test {
 protected:
  void make(size_t max_flows, std::chrono::milliseconds idle, std::string public_host = "") {
    UdpTunnelOptions o;
    o.public_host = std::move(public_host);
    o.port_min = 0;  // set below: a free range found by binding
    o.flows.max_flows = max_flows;
    o.flows.idle_timeout = idle;
    // A port the kernel says is free, as a one-port range.
    udp::socket probe(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port_ = probe.local_endpoint().port();
    probe.close();
    o.port_min = o.port_max = port_;
    tunnels_ = std::make_unique<UdpTunnels>(
        io_, [this](uint64_t s) -> UdpFlowLink* { return s == 1 ? &link_ : nullptr; }, o);
  }
  udp::socket client() { return udp::socket(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)); }
  void send(udp::socket& s, std::vector<uint8_t> payload) {
    s.send_to(asio::buffer(payload), udp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  }
  // Runs the loop until `done` or 2 s.
  bool run_until(const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < end) {
      if (done()) return true;  // asked once per turn: `done` may consume what it checks
      io_.restart();
      io_.run_for(5ms);
    }
    return done();
  }
  asio::io_context io_;
  FakeLink link_;
  uint16_t port_ = 0;
  std::unique_ptr<UdpTunnels> tunnels_;
};

TEST_F(UdpTunnelsTest, FlowsPerClientAndAnswersBack) {
  make(8, 60s);
  const auto r = tunnels_->publish({1, 7, "dns.localhost", 0, false});
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.url, "udp://127.0.0.1:" + std::to_string(port_));
  auto a = client(), b = client();
  send(a, {'a', '1'});
  send(b, {'b'});
  send(a, {'a', '2'});
  ASSERT_TRUE(run_until([&] { return link_.sent.size() == 3; }));
  std::vector<tunnel::UdpDatagram> got;
  for (const auto& d : link_.sent) got.push_back(*tunnel::decode_udp_datagram(d));
  EXPECT_EQ(got[0].flow_id, uint64_t{1} << 30) << "the first edge flow";
  EXPECT_EQ(got[0].tunnel_id, 7u);
  EXPECT_EQ(got[1].flow_id, (uint64_t{1} << 30) + 2) << "the next client, the next even id";
  EXPECT_EQ(got[2].flow_id, got[0].flow_id) << "same client, same flow";
  EXPECT_EQ(tunnels_->flow_count(), 2u);
  // The agent answers on b's flow: b gets it from the tunnel's port.
  const std::vector<uint8_t> answer = {'o', 'k'};
  tunnels_->on_agent_datagram(1, {got[1].flow_id, 7, answer});
  std::array<uint8_t, 16> buf{};
  udp::endpoint from;
  b.non_blocking(true);
  size_t n = 0;
  ASSERT_TRUE(run_until([&] {
    boost::system::error_code ec;
    n = b.receive_from(asio::buffer(buf), from, 0, ec);
    return !ec;
  }));
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(from.port(), port_);
  // Unknown flows and tunnels are counted, nothing is sent.
  tunnels_->on_agent_datagram(1, {(uint64_t{1} << 30) + 40, 7, answer});
  tunnels_->on_agent_datagram(1, {got[1].flow_id, 8, answer});
  EXPECT_EQ(tunnels_->drops(1, 7)->unknown_flow, 1u);
  EXPECT_EQ(tunnels_->total_drops().unknown_flow, 2u);
}

TEST_F(UdpTunnelsTest, TooBigNoRoomAndFlowCapAreDroppedAndCounted) {
  make(2, 60s);
  ASSERT_TRUE(tunnels_->publish({1, 1, "dns.localhost", 0, false}).ok);
  link_.max = 100;
  auto a = client(), b = client(), c = client();
  send(a, std::vector<uint8_t>(92, 'x'));  // 9 bytes of flow + tunnel id: 101 > 100
  send(a, std::vector<uint8_t>(91, 'x'));  // exactly 100: fits
  ASSERT_TRUE(run_until([&] { return tunnels_->drops(1, 1)->too_big == 1 && link_.sent.size() == 1; }));
  EXPECT_EQ(link_.sent[0].size(), 100u);
  send(b, {'b'});
  send(c, {'c'});  // a third client: past the cap of 2
  ASSERT_TRUE(run_until([&] { return tunnels_->drops(1, 1)->flow_cap == 1 && link_.sent.size() == 2; }));
  EXPECT_EQ(tunnels_->flow_count(), 2u);
  link_.room = 2;
  send(a, {'a'});
  ASSERT_TRUE(run_until([&] { return tunnels_->drops(1, 1)->queue_full == 1; }));
  EXPECT_EQ(tunnels_->total_drops().total(), 3u);
}

TEST_F(UdpTunnelsTest, IdleFlowsExpireAndRoomComesBack) {
  make(1, 100ms);
  ASSERT_TRUE(tunnels_->publish({1, 1, "dns.localhost", 0, false}).ok);
  auto a = client(), b = client();
  send(a, {'a'});
  ASSERT_TRUE(run_until([&] { return tunnels_->flow_count() == 1; }));
  send(b, {'b'});
  ASSERT_TRUE(run_until([&] { return tunnels_->drops(1, 1)->flow_cap == 1; }));
  ASSERT_TRUE(run_until([&] { return tunnels_->flow_count() == 0; })) << "a expired";
  send(b, {'b'});
  ASSERT_TRUE(run_until([&] { return tunnels_->flow_count() == 1 && link_.sent.size() == 2; }));
  const auto d = tunnel::decode_udp_datagram(link_.sent[1]);
  EXPECT_EQ(d->flow_id, (uint64_t{1} << 30) + 2) << "a new flow id, never reused";
}

TEST_F(UdpTunnelsTest, PortRulesAndUnpublish) {
  make(4, 60s);
  // Another process (here: a plain socket) holds the port: port_taken.
  udp::socket holder(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  auto r = tunnels_->publish({1, 1, "dns.localhost", port_, false});
  EXPECT_EQ(r.code, tunnel::refusal::kPortTaken);
  EXPECT_NE(r.message.find("in use on the edge's host"), std::string::npos) << r.message;
  holder.close();
  EXPECT_EQ(tunnels_->publish({1, 1, "dns.localhost", 53, false}).code, tunnel::refusal::kInvalid);
  ASSERT_TRUE(tunnels_->publish({1, 1, "dns.localhost", port_, false}).ok);
  EXPECT_EQ(tunnels_->publish({1, 2, "x.localhost", port_, false}).code, tunnel::refusal::kPortTaken);
  EXPECT_EQ(tunnels_->publish({1, 1, "dns.localhost", 0, true}).code, tunnel::refusal::kDuplicateId);
  r = tunnels_->publish({1, 3, "p.localhost", 0, true});
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.url, "udp://p.localhost");
  tunnels_->unpublish(1, 1);
  EXPECT_EQ(tunnels_->tunnel_count(), 1u);
  // The port is free again, on the host too.
  udp::socket again(io_);
  boost::system::error_code ec;
  again.open(udp::v4());
  again.bind(udp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
  EXPECT_FALSE(ec) << ec.message();
}

TEST_F(UdpTunnelsTest, PublicHostNamesTheUrl) {
  // `wtmesh edge --public-host`: the name clients use, not the address the edge listens on.
  make(4, 60s, "tunnels.example.test");
  const auto r = tunnels_->publish({1, 1, "dns.localhost", 0, false});
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.url, "udp://tunnels.example.test:" + std::to_string(port_));
}

}  // namespace
}  // namespace wtmesh::edge
