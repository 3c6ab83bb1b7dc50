// UDP flows for clients that are not socket addresses (edge/udp_connects.h over edge/udp_tunnels.h):
// a real UdpTunnels with a fake session link (as udp_tunnels_test.cc), a route directory that answers
// `udp` lookups from a map (at once or later). A flow opens on the name's tunnel with an even flow id
// of that tunnel, packets go out framed for the tunnel, answers come back to the client; refusals
// (unknown, offline, flow cap), too big and no room counted, idle expiry and the tunnel's end told to
// the client, close() silences it, and the answer never comes inside open().
#include "edge/udp_connects.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "edge/route_table.h"
#include "udp_connect_fakes.h"

namespace wtmesh::edge {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::FakeLink;
using test::UdpRoutes;
using tunnel::ConnectStatus;

struct Client final : UdpConnectEvents {
  void on_udp_open(ConnectStatus s, std::string_view message) override {
    status = s;
    this->message = std::string(message);
  }
  void on_udp_packet(std::span<const uint8_t> payload) override {
    packets.emplace_back(payload.begin(), payload.end());
  }
  void on_udp_end(std::string_view why) override { ended = std::string(why); }
  std::optional<ConnectStatus> status;
  std::string message;
  std::vector<std::vector<uint8_t>> packets;
  std::optional<std::string> ended;
};

class UdpConnectsTest : public ::testing::Test {
 protected:
  void make(size_t max_flows, std::chrono::milliseconds idle) {
    UdpTunnelOptions o;
    o.port_min = 1;  // private tunnels only here: no port is taken
    o.port_max = 1;
    o.flows.max_flows = max_flows;
    o.flows.idle_timeout = idle;
    tunnels_ = std::make_unique<UdpTunnels>(
        io_, [this](uint64_t s) -> UdpFlowLink* { return s == 1 && !gone_ ? &link_ : nullptr; }, o);
    ASSERT_TRUE(tunnels_->publish({1, 9, "dns.localhost", 0, true}).ok);
    dir_.routes["dns.localhost"] = RouteLookup{RouteLookup::Kind::kFound, 1, 9, "dns.localhost"};
    dir_.routes["gone.localhost"] = RouteLookup{RouteLookup::Kind::kOffline, 0, 0, "gone.localhost"};
    connects_ = std::make_unique<UdpConnects>(io_, dir_, tunnels_.get());
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 2s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (done()) return true;
      io_.restart();
      io_.run_for(5ms);
    }
    return done();
  }
  static std::span<const uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }

  asio::io_context io_;
  FakeLink link_;
  bool gone_ = false;
  UdpRoutes dir_;
  std::unique_ptr<UdpTunnels> tunnels_;
  std::unique_ptr<UdpConnects> connects_;
};

TEST_F(UdpConnectsTest, FlowOnTheNamesTunnelBothWays) {
  make(8, 60s);
  Client a, b;
  const auto ha = connects_->open("dns.localhost", &a);
  const auto hb = connects_->open("dns.localhost", &b);
  EXPECT_NE(ha, hb);
  EXPECT_FALSE(a.status) << "never answered inside open()";
  EXPECT_EQ(connects_->send(ha, bytes("early")), UdpConnects::Send::kNotOpen) << "nothing is queued";
  ASSERT_TRUE(run_until([&] { return a.status && b.status; }));
  EXPECT_EQ(*a.status, ConnectStatus::kConnected);
  EXPECT_EQ(tunnels_->client_flow_count(), 2u);
  EXPECT_EQ(tunnels_->flow_count(), 2u) << "client flows are flows of the tunnel";
  EXPECT_EQ(connects_->send(ha, bytes("q1")), UdpConnects::Send::kSent);
  EXPECT_EQ(connects_->send(hb, bytes("q2")), UdpConnects::Send::kSent);
  ASSERT_EQ(link_.sent.size(), 2u);
  const auto da = *tunnel::decode_udp_datagram(link_.sent[0]);
  const auto db = *tunnel::decode_udp_datagram(link_.sent[1]);
  EXPECT_EQ(da.flow_id, uint64_t{1} << 30) << "an edge flow id of the tunnel";
  EXPECT_EQ(db.flow_id, (uint64_t{1} << 30) + 2);
  EXPECT_EQ(da.tunnel_id, 9u);
  // Byte vector: flow 2^30 (8-byte varint), tunnel 9, "q1".
  EXPECT_EQ(link_.sent[0], (std::vector<uint8_t>{0xc0, 0, 0, 0, 0x40, 0, 0, 0, 0x09, 'q', '1'}));
  // The agent answers on b's flow: b hears it, a does not.
  tunnels_->on_agent_datagram(1, {db.flow_id, 9, bytes("r2")});
  ASSERT_EQ(b.packets.size(), 1u);
  EXPECT_EQ(std::string(b.packets[0].begin(), b.packets[0].end()), "r2");
  EXPECT_TRUE(a.packets.empty());
  EXPECT_EQ(connects_->payload_limit(ha), 1200u - 9u);
  // close(): the flow is gone from the tunnel, its answers are unknown_flow, no end event.
  connects_->close(ha);
  EXPECT_EQ(tunnels_->client_flow_count(), 1u);
  tunnels_->on_agent_datagram(1, {da.flow_id, 9, bytes("late")});
  EXPECT_TRUE(a.packets.empty());
  EXPECT_EQ(tunnels_->drops(1, 9)->unknown_flow, 1u);
  EXPECT_FALSE(a.ended);
  EXPECT_EQ(connects_->send(ha, bytes("x")), UdpConnects::Send::kNotOpen);
}

TEST_F(UdpConnectsTest, RefusalsUnknownOfflineAndFlowCap) {
  make(1, 60s);
  Client unknown, offline, first, second, session_gone;
  connects_->open("nope.localhost", &unknown);
  connects_->open("gone.localhost", &offline);
  connects_->open("dns.localhost", &first);
  connects_->open("dns.localhost", &second);
  ASSERT_TRUE(run_until([&] { return unknown.status && offline.status && first.status && second.status; }));
  EXPECT_EQ(*unknown.status, ConnectStatus::kUnknown);
  EXPECT_EQ(unknown.message, "no udp tunnel is named nope.localhost");
  EXPECT_EQ(*offline.status, ConnectStatus::kOffline);
  EXPECT_EQ(*first.status, ConnectStatus::kConnected);
  EXPECT_EQ(*second.status, ConnectStatus::kLimit) << "the tunnel's flow cap of 1";
  EXPECT_EQ(tunnels_->drops(1, 9)->flow_cap, 1u);
  EXPECT_EQ(connects_->open_count(), 1u) << "refused handles are gone";
  // A route whose session is not here any more: offline.
  gone_ = true;
  connects_->open("dns.localhost", &session_gone);
  ASSERT_TRUE(run_until([&] { return session_gone.status.has_value(); }));
  EXPECT_EQ(*session_gone.status, ConnectStatus::kOffline);
}

TEST_F(UdpConnectsTest, TooBigAndNoRoomAreDroppedAndCounted) {
  make(8, 60s);
  Client c;
  const auto h = connects_->open("dns.localhost", &c);
  ASSERT_TRUE(run_until([&] { return c.status.has_value(); }));
  link_.max = 100;
  EXPECT_EQ(connects_->send(h, std::vector<uint8_t>(92, 'x')), UdpConnects::Send::kTooBig) << "9 + 92 > 100";
  EXPECT_EQ(connects_->send(h, std::vector<uint8_t>(91, 'x')), UdpConnects::Send::kSent) << "exactly 100";
  link_.room = 1;
  EXPECT_EQ(connects_->send(h, bytes("y")), UdpConnects::Send::kNoRoom);
  const auto* d = tunnels_->drops(1, 9);
  EXPECT_EQ(d->too_big, 1u);
  EXPECT_EQ(d->queue_full, 1u);
  ASSERT_EQ(link_.sent.size(), 1u);
  EXPECT_EQ(link_.sent[0].size(), 100u) << "never fragmented";
  // The way back is the caller's: it counts its drops here.
  connects_->count_client_drop(&tunnel::UdpDropCounters::too_big);
  connects_->count_client_drop(&tunnel::UdpDropCounters::too_big);
  connects_->count_client_drop(&tunnel::UdpDropCounters::queue_full);
  EXPECT_EQ(connects_->client_drops().too_big, 2u);
  EXPECT_EQ(connects_->client_drops().total(), 3u);
}

TEST_F(UdpConnectsTest, IdleExpiryAndTheTunnelsEndAreTold) {
  make(8, 100ms);
  Client idle, busy;
  const auto hi = connects_->open("dns.localhost", &idle);
  const auto hb = connects_->open("dns.localhost", &busy);
  ASSERT_TRUE(run_until([&] { return idle.status && busy.status; }));
  // busy keeps sending; idle sends nothing and expires.
  ASSERT_TRUE(run_until([&] {
    connects_->send(hb, bytes("k"));
    return idle.ended.has_value();
  }));
  EXPECT_NE(idle.ended->find("idle"), std::string::npos) << *idle.ended;
  EXPECT_FALSE(busy.ended);
  EXPECT_EQ(connects_->send(hi, bytes("x")), UdpConnects::Send::kNotOpen);
  EXPECT_EQ(connects_->open_count(), 1u);
  // The tunnel unregisters: its client flows end.
  tunnels_->unpublish(1, 9);
  ASSERT_TRUE(busy.ended.has_value());
  EXPECT_EQ(*busy.ended, "the tunnel dns.localhost ended");
  EXPECT_EQ(connects_->open_count(), 0u);
}

TEST_F(UdpConnectsTest, ASharedTableAnswersLaterAndCloseCancelsTheLookup) {
  make(8, 60s);
  dir_.later = true;
  Client waits, leaves;
  connects_->open("dns.localhost", &waits);
  const auto h = connects_->open("dns.localhost", &leaves);
  ASSERT_TRUE(run_until([&] { return dir_.waiting.size() == 2; }));
  connects_->close(h);
  EXPECT_EQ(dir_.waiting.size(), 1u) << "the lookup is cancelled";
  dir_.answer();
  EXPECT_EQ(waits.status, ConnectStatus::kConnected);
  EXPECT_FALSE(leaves.status);
  // Closed before its lookup even started: nothing is asked, nothing heard.
  Client never;
  connects_->close(connects_->open("dns.localhost", &never));
  run_until([] { return false; }, 50ms);
  EXPECT_TRUE(dir_.waiting.empty());
  EXPECT_FALSE(never.status);
}

TEST_F(UdpConnectsTest, NoUdpTunnelsOnThisEdge) {
  UdpConnects none(io_, dir_, nullptr);
  Client c;
  none.open("dns.localhost", &c);
  ASSERT_TRUE(run_until([&] { return c.status.has_value(); }));
  EXPECT_EQ(*c.status, ConnectStatus::kUnknown);
}

}  // namespace
}  // namespace wtmesh::edge
