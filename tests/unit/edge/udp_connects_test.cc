// UDP flows for clients that are not socket addresses (edge/udp_connects.h over edge/udp_tunnels.h):
// a real UdpTunnels with a fake session link (as udp_tunnels_test.cc), a route directory that answers
// `udp` lookups from a map (at once or later). A flow opens on the name's tunnel with an even flow id
// of that tunnel, packets go out framed for the tunnel, answers come back to the client; refusals
// (unknown, offline, flow cap), too big and no room counted, idle expiry and the tunnel's end told to
// the client, close() silences it, and the answer never comes inside open(). Edge UDP routes
// (--udp-route) against a real UDP echo service on loopback: a socket per flow, the route's flow cap,
// idle expiry, a service that is not up, and no UDP tunnels needed.
#include "edge/udp_connects.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "edge/route_table.h"
#include "udp_connect_fakes.h"

namespace wtmesh::edge {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::FakeLink;
using test::UdpDirectory;
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
  UdpDirectory dir_;
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
  // 300 ms: `busy` sends every few ms, but a loaded box can stall this process for more than 100 ms
  // (it failed so once with ctest -j2 beside two fuzzers), and then `busy` expired too.
  make(8, 300ms);
  Client idle, busy;
  const auto hi = connects_->open("dns.localhost", &idle);
  const auto hb = connects_->open("dns.localhost", &busy);
  ASSERT_TRUE(run_until([&] { return idle.status && busy.status; }));
  // busy keeps sending; idle sends nothing and expires.
  ASSERT_TRUE(run_until(
      [&] {
        connects_->send(hb, bytes("k"));
        return idle.ended.has_value();
      },
      5s));
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

// The flows of a tunnel held by another worker (edge/worker_directory.h): every open answers kLater,
// the real answer comes from a later turn of the loop.
struct LaterFlows final : UdpClientFlows {
  LaterFlows(asio::io_context& io, UdpTunnels& real) : io(io), real(real) {}
  ClientOpen open_client_flow(uint64_t session, uint32_t tunnel_id, UdpFlowClient* client,
                              UdpClientFlow* flow) override {
    const ClientOpen r = real.open_client_flow(session, tunnel_id, client, flow);
    // A refused flow gets an id of its own, so a close before the answer finds it too.
    if (r != ClientOpen::kOpened) *flow = UdpClientFlow{session, tunnel_id, (uint64_t{1} << 62) + ++refused};
    waiting.insert(flow->flow_id);
    asio::post(io, [this, client, r, id = flow->flow_id] {
      if (waiting.erase(id) != 0) client->on_udp_flow_opened(r);  // not after a close
    });
    return ClientOpen::kLater;
  }
  ClientSend send_client_packet(const UdpClientFlow& f, std::span<const uint8_t> p) override {
    return real.send_client_packet(f, p);
  }
  void close_client_flow(const UdpClientFlow& f) override {
    waiting.erase(f.flow_id);
    real.close_client_flow(f);
  }
  size_t client_payload_limit(const UdpClientFlow& f) const override { return real.client_payload_limit(f); }
  asio::io_context& io;
  UdpTunnels& real;
  std::set<uint64_t> waiting;  // flows whose answer is posted and not closed
  uint64_t refused = 0;
};

TEST_F(UdpConnectsTest, AFlowAnsweredLaterConnectsOnlyThenAndARefusalLaterIsARefusal) {
  make(1, 60s);
  LaterFlows later(io_, *tunnels_);
  connects_ = std::make_unique<UdpConnects>(io_, dir_, &later);
  Client a, b;
  const auto ha = connects_->open("dns.localhost", &a);
  const auto hb = connects_->open("dns.localhost", &b);
  ASSERT_TRUE(run_until([&] { return a.status && b.status; }));
  EXPECT_EQ(*a.status, ConnectStatus::kConnected);
  EXPECT_EQ(*b.status, ConnectStatus::kLimit) << "the tunnel's cap of one flow, told later";
  EXPECT_EQ(connects_->send(ha, bytes("q")), UdpConnects::Send::kSent);
  EXPECT_EQ(connects_->send(hb, bytes("q")), UdpConnects::Send::kNotOpen);
  // Closed while the answer is under way: nobody hears it, the tunnel's flow is closed.
  connects_->close(ha);
  Client c;
  const auto hc = connects_->open("dns.localhost", &c);
  io_.restart();
  ASSERT_EQ(io_.poll_one(), 1u);  // the lookup: the flow is asked for, its answer posted
  ASSERT_EQ(tunnels_->client_flow_count(), 1u);
  EXPECT_EQ(connects_->send(hc, bytes("q")), UdpConnects::Send::kNotOpen) << "asked, not answered yet";
  connects_->close(hc);
  io_.restart();
  io_.poll();
  EXPECT_FALSE(c.status);
  EXPECT_EQ(tunnels_->client_flow_count(), 0u);
}

TEST_F(UdpConnectsTest, NoUdpTunnelsOnThisEdge) {
  UdpConnects none(io_, dir_, nullptr);
  Client c;
  none.open("dns.localhost", &c);
  ASSERT_TRUE(run_until([&] { return c.status.has_value(); }));
  EXPECT_EQ(*c.status, ConnectStatus::kUnknown);
}

// A UDP echo service on loopback, answering each packet to its sender (so each flow hears only its
// own answers), in the test's io_context.
class EchoService {
 public:
  explicit EchoService(asio::io_context& io)
      : socket_(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    receive();
  }
  asio::ip::udp::endpoint endpoint() const { return socket_.local_endpoint(); }
  size_t received = 0;

 private:
  void receive() {
    socket_.async_receive_from(asio::buffer(buf_), from_, [this](boost::system::error_code ec, size_t n) {
      if (ec) return;
      ++received;
      boost::system::error_code ignored;
      socket_.send_to(asio::buffer(buf_.data(), n), from_, 0, ignored);
      receive();
    });
  }
  asio::ip::udp::socket socket_;
  asio::ip::udp::endpoint from_;
  std::array<uint8_t, 65536> buf_{};
};

std::string text_of(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

TEST_F(UdpConnectsTest, EdgeRouteFlowsReachTheServiceEachWithItsOwnSocket) {
  EchoService echo(io_);
  edge::UdpRoutes routes;
  routes.targets["echo.localhost"] = echo.endpoint();
  routes.flows.max_flows = 2;
  routes.flows.idle_timeout = 60s;
  UdpConnects connects(io_, dir_, nullptr, routes);  // no UDP tunnels: routes still work
  EXPECT_TRUE(connects.has_route("echo.localhost"));
  Client a, b, c, unknown;
  const auto ha = connects.open("echo.localhost", &a);
  const auto hb = connects.open("echo.localhost", &b);
  connects.open("echo.localhost", &c);
  connects.open("dns.localhost", &unknown);
  EXPECT_FALSE(a.status) << "never answered inside open()";
  ASSERT_TRUE(run_until([&] { return a.status && b.status && c.status && unknown.status; }));
  EXPECT_EQ(*a.status, ConnectStatus::kConnected);
  EXPECT_EQ(*b.status, ConnectStatus::kConnected);
  EXPECT_EQ(*c.status, ConnectStatus::kLimit) << c.message;
  EXPECT_NE(c.message.find("as many flows"), std::string::npos) << c.message;
  EXPECT_EQ(*unknown.status, ConnectStatus::kUnknown);
  EXPECT_EQ(connects.route_flow_count("echo.localhost"), 2u);
  EXPECT_EQ(connects.route_flow_count(), 2u);
  EXPECT_EQ(connects.route_refusals(), 1u) << "the cap, counted";

  EXPECT_EQ(connects.payload_limit(ha), 65507u);
  EXPECT_EQ(connects.send(ha, bytes("from a")), UdpConnects::Send::kSent);
  EXPECT_EQ(connects.send(hb, bytes("from b 1")), UdpConnects::Send::kSent);
  EXPECT_EQ(connects.send(hb, bytes("from b 2")), UdpConnects::Send::kSent);
  ASSERT_TRUE(run_until([&] { return a.packets.size() == 1 && b.packets.size() == 2; }));
  EXPECT_EQ(text_of(a.packets[0]), "from a");
  EXPECT_EQ(text_of(b.packets[0]), "from b 1");
  EXPECT_EQ(text_of(b.packets[1]), "from b 2");
  const std::vector<uint8_t> huge(70000, 'x');
  EXPECT_EQ(connects.send(ha, huge), UdpConnects::Send::kTooBig);

  // Closing a flow frees its place under the cap.
  connects.close(ha);
  EXPECT_EQ(connects.send(ha, bytes("x")), UdpConnects::Send::kNotOpen);
  EXPECT_EQ(connects.route_flow_count("echo.localhost"), 1u);
  Client d;
  connects.open("echo.localhost", &d);
  ASSERT_TRUE(run_until([&] { return d.status.has_value(); }));
  EXPECT_EQ(*d.status, ConnectStatus::kConnected);
  EXPECT_FALSE(a.ended) << "close() is not told";
}

TEST_F(UdpConnectsTest, EdgeRouteFlowsExpireWhenIdleAndSurviveAServiceThatIsNotUp) {
  // A port nobody listens on: its ICMP errors must not end the flow.
  asio::ip::udp::endpoint closed;
  {
    asio::ip::udp::socket probe(io_, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed = probe.local_endpoint();
  }
  EchoService echo(io_);
  edge::UdpRoutes routes;
  routes.targets["down.localhost"] = closed;
  routes.targets["echo.localhost"] = echo.endpoint();
  routes.flows.max_flows = 8;
  routes.flows.idle_timeout = 150ms;
  UdpConnects connects(io_, dir_, nullptr, routes);
  Client down, idle, busy;
  const auto hd = connects.open("down.localhost", &down);
  connects.open("echo.localhost", &idle);
  const auto hb = connects.open("echo.localhost", &busy);
  ASSERT_TRUE(run_until([&] { return down.status && idle.status && busy.status; }));
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(connects.send(hd, bytes("anyone?")), UdpConnects::Send::kNotOpen);
    run_until([] { return false; }, 20ms);
  }
  EXPECT_FALSE(down.ended) << "port unreachable is not the end of a UDP flow";
  EXPECT_TRUE(down.packets.empty());
  // busy keeps its flow alive; idle and down (no packet either way for 150 ms) end.
  ASSERT_TRUE(run_until([&] {
    connects.send(hb, bytes("k"));
    return idle.ended.has_value() && down.ended.has_value();
  }));
  EXPECT_NE(idle.ended->find("idle"), std::string::npos) << *idle.ended;
  EXPECT_FALSE(busy.ended);
  EXPECT_FALSE(busy.packets.empty());
  EXPECT_EQ(connects.route_flow_count("echo.localhost"), 1u);
  EXPECT_EQ(connects.route_flow_count("down.localhost"), 0u);
  EXPECT_EQ(connects.open_count(), 1u);
}

}  // namespace
}  // namespace wtmesh::edge
