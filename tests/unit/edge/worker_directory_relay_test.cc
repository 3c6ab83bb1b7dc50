// edge::WorkerDirectory (fixture: worker_directory_fixture.h): relayed WebTransport sessions on the
// other worker's session (ids from the near worker's block, a refusal there, the agent's streams,
// datagrams and their cap in flight) and UDP flows of a udp tunnel on the other worker (the open
// answered later, packets both ways, the flow's end, a close before the answer, refusals).
#include <gtest/gtest.h>

#include "edge/agent_session.h"
#include "edge/worker_directory.h"
#include "worker_directory_fixture.h"

namespace wtmesh::edge::workers_test {
namespace {

using WorkerDirectoryRelayTest = WorkerDirectoryTest;

struct RelayPeer final : WtRelayPeer {
  RequestStreamEvents* on_agent_stream(const StreamRef& ref, bool uni) override {
    refs.emplace_back(ref, uni);
    return refuse ? nullptr : &events;
  }
  void on_relay_datagram(std::span<const uint8_t> p) override { datagrams.push_back(str(p)); }
  void on_relay_refused(std::string_view why) override { refused = std::string(why); }
  std::vector<std::pair<StreamRef, bool>> refs;
  Events events;
  bool refuse = false;
  std::vector<std::string> datagrams;
  std::optional<std::string> refused;
};

TEST_F(WorkerDirectoryRelayTest, ARelayedSessionOnAnotherWorkersSessionCarriesStreamsAndDatagrams) {
  // Worker 1's public session relays to a tunnel held on worker 0.
  hold("r.test", 0);
  Events route;
  ASSERT_NE(dirs_[1]->route("r.test", &route), 0u);
  drive();
  ASSERT_TRUE(route.route && route.route->kind == RouteLookup::Kind::kFound);
  RelayPeer peer;
  const uint64_t id = dirs_[1]->add_relay(*route.route, &peer);
  EXPECT_EQ(id, AgentSession::kRelayIdBlock + 1) << "answered at once, from worker 1's block";
  EXPECT_TRUE(fake_[0].relays.empty()) << "not before worker 0 ran";
  drive();
  ASSERT_EQ(fake_[0].relays.count(id), 1u) << "registered on the session under the same id";
  EXPECT_EQ(dirs_[0]->far_relays(), 1u);
  EXPECT_EQ(dirs_[1]->near_relays(), 1u);

  // Datagrams both ways.
  EXPECT_TRUE(dirs_[1]->send_relay_datagram(*route.route, id, bytes("ping")));
  fake_[0].relays.at(id)->on_relay_datagram(bytes("pong"));
  drive();
  ASSERT_EQ(fake_[0].relay_datagrams.size(), 1u);
  EXPECT_EQ(fake_[0].relay_datagrams[0], std::make_pair(id, std::string("ping")));
  EXPECT_EQ(peer.datagrams, std::vector<std::string>{"pong"});

  // A bidi stream the agent opens for the relay: both directions, credit, release.
  const StreamRef agent = fake_[0].agent_stream(id, /*uni=*/false);
  ASSERT_TRUE(agent.valid());
  fake_[0].streams[agent.id].events->on_response_data(bytes("hello"), false);
  drive();
  ASSERT_EQ(peer.refs.size(), 1u);
  const StreamRef near = peer.refs[0].first;
  EXPECT_FALSE(peer.refs[0].second);
  EXPECT_NE(near.session, agent.session) << "the relay holds a hop, not the far stream";
  EXPECT_EQ(peer.events.response, "hello");
  EXPECT_EQ(fake_[0].streams[agent.id].consumed, 0u) << "credit goes back only when the relay consumed";
  dirs_[1]->consume(near, 5);
  EXPECT_EQ(dirs_[1]->write(near, bytes("world"), true), 5u);
  drive();
  EXPECT_EQ(fake_[0].streams[agent.id].consumed, 5u);
  EXPECT_EQ(str(fake_[0].streams[agent.id].written), "world");
  EXPECT_TRUE(fake_[0].streams[agent.id].fin);
  fake_[0].streams[agent.id].events->on_response_data({}, true);
  drive();
  EXPECT_TRUE(peer.events.fin);
  dirs_[1]->release(near);  // both directions done, as the relay does
  drive();
  EXPECT_TRUE(fake_[0].streams[agent.id].released);
  EXPECT_EQ(dirs_[1]->near_hops(), 0u);

  // A stream the relay refuses (at its stream cap) is reset, as a session refuses it.
  peer.refuse = true;
  const StreamRef refused = fake_[0].agent_stream(id, /*uni=*/true);
  drive();
  EXPECT_EQ(fake_[0].streams[refused.id].cancelled, tunnel::kStreamProtocolError);

  // Removed: the session forgets the id.
  dirs_[1]->remove_relay(*route.route, id);
  drive();
  EXPECT_TRUE(fake_[0].relays.empty());
  EXPECT_EQ(dirs_[0]->far_relays(), 0u);
  EXPECT_EQ(dirs_[1]->near_relays(), 0u);
  EXPECT_FALSE(dirs_[1]->send_relay_datagram(*route.route, id, bytes("late")));
}

TEST_F(WorkerDirectoryRelayTest, ARelayTheFarSessionRefusesHearsItAndDatagramsInFlightAreCapped) {
  hold("r.test", 0);
  Events route;
  dirs_[1]->route("r.test", &route);
  drive();
  ASSERT_TRUE(route.route);
  fake_[0].max_relays = 0;  // full
  RelayPeer full;
  const uint64_t id = dirs_[1]->add_relay(*route.route, &full);
  EXPECT_NE(id, 0u);
  drive();
  ASSERT_TRUE(full.refused);
  EXPECT_NE(full.refused->find("as many WebTransport sessions"), std::string::npos);
  EXPECT_EQ(dirs_[1]->near_relays(), 0u);

  fake_[0].max_relays = 64;
  RelayPeer peer;
  const uint64_t ok = dirs_[1]->add_relay(*route.route, &peer);
  drive();
  ASSERT_EQ(fake_[0].relays.count(ok), 1u);
  for (size_t i = 0; i < WorkerDirectory::kMaxDatagramsInFlight; ++i)
    ASSERT_TRUE(dirs_[1]->send_relay_datagram(*route.route, ok, bytes("d")));
  EXPECT_FALSE(dirs_[1]->send_relay_datagram(*route.route, ok, bytes("d"))) << "worker 0 has not taken any";
  EXPECT_EQ(dirs_[1]->relay_datagrams_dropped(), 1u);
  drive();
  EXPECT_EQ(fake_[0].relay_datagrams.size(), WorkerDirectory::kMaxDatagramsInFlight);
  EXPECT_TRUE(dirs_[1]->send_relay_datagram(*route.route, ok, bytes("d"))) << "room again once taken";
  dirs_[1]->remove_relay(*route.route, ok);
  drive();
}

// A worker's udp tunnels as WorkerDirectory sees them: flows of (session 1, tunnel 7), at most `cap`.
struct FakeUdpFlows final : UdpClientFlows {
  ClientOpen open_client_flow(uint64_t session, uint32_t tunnel_id, UdpFlowClient* client,
                              UdpClientFlow* flow) override {
    if (session != 1 || tunnel_id != 7) return ClientOpen::kNoTunnel;
    if (clients.size() >= cap) return ClientOpen::kFlowCap;
    *flow = UdpClientFlow{session, tunnel_id, next += 2};
    clients[flow->flow_id] = client;
    return ClientOpen::kOpened;
  }
  ClientSend send_client_packet(const UdpClientFlow& flow, std::span<const uint8_t> p) override {
    if (clients.count(flow.flow_id) == 0) return ClientSend::kGone;
    packets.emplace_back(flow.flow_id, str(p));
    return ClientSend::kSent;
  }
  void close_client_flow(const UdpClientFlow& flow) override { clients.erase(flow.flow_id); }
  size_t client_payload_limit(const UdpClientFlow& flow) const override {
    return clients.count(flow.flow_id) != 0 ? 1200 : 0;
  }
  std::map<uint64_t, UdpFlowClient*> clients;
  std::vector<std::pair<uint64_t, std::string>> packets;
  size_t cap = 8;
  uint64_t next = 0;
};

struct UdpClient final : UdpFlowClient {
  void on_udp_packet(std::span<const uint8_t> p) override { packets.push_back(str(p)); }
  void on_udp_flow_end(std::string_view why) override { ended = std::string(why); }
  void on_udp_flow_opened(UdpClientFlows::ClientOpen r) override { opened = r; }
  std::vector<std::string> packets;
  std::optional<std::string> ended;
  std::optional<UdpClientFlows::ClientOpen> opened;
};

TEST_F(WorkerDirectoryRelayTest, AUdpFlowOfATunnelOnAnotherWorkerOpensLaterAndCarriesPacketsBothWays) {
  FakeUdpFlows udp;
  dirs_[1]->set_udp(&udp);
  const std::string owner = worker_edge_id(kEdge, 1) + "/1";
  table_.claim({kUdp, "dns.test"}, RouteLease{owner, worker_edge_id(kEdge, 1), std::chrono::seconds(30)}, 7,
               std::chrono::steady_clock::now(), [](const ClaimReply&) {});
  fake_[1].add_route("dns.test");
  fake_[1].all_types = true;
  Events route;
  ASSERT_NE(dirs_[0]->route_of(kUdp, "dns.test", &route), 0u);
  drive();
  ASSERT_TRUE(route.route && route.route->kind == RouteLookup::Kind::kFound);

  UdpClient client;
  UdpClientFlow flow;
  const uint64_t hops = dirs_[0]->hops_opened();
  ASSERT_EQ(dirs_[0]->open_client_flow(route.route->session, route.route->tunnel_id, &client, &flow),
            UdpClientFlows::ClientOpen::kLater);
  EXPECT_EQ(dirs_[0]->hops_opened(), hops + 1);
  EXPECT_EQ(dirs_[0]->send_client_packet(flow, bytes("early")), UdpClientFlows::ClientSend::kGone)
      << "nothing before the answer";
  EXPECT_EQ(dirs_[0]->client_payload_limit(flow), 0u);
  drive();
  ASSERT_EQ(client.opened, UdpClientFlows::ClientOpen::kOpened);
  EXPECT_EQ(dirs_[0]->client_payload_limit(flow), 1200u) << "the far flow's limit";
  ASSERT_EQ(udp.clients.size(), 1u);
  EXPECT_EQ(dirs_[1]->far_udp_flows(), 1u);

  EXPECT_EQ(dirs_[0]->send_client_packet(flow, bytes("query")), UdpClientFlows::ClientSend::kSent);
  EXPECT_EQ(dirs_[0]->send_client_packet(flow, std::vector<uint8_t>(1201)),
            UdpClientFlows::ClientSend::kTooBig);
  udp.clients.begin()->second->on_udp_packet(bytes("answer"));
  drive();
  ASSERT_EQ(udp.packets.size(), 1u);
  EXPECT_EQ(udp.packets[0].second, "query");
  EXPECT_EQ(client.packets, std::vector<std::string>{"answer"});

  // The tunnel ends the flow (idle): the client hears it, both halves forget it.
  UdpFlowClient* far = udp.clients.begin()->second;
  udp.clients.clear();
  far->on_udp_flow_end("idle for 30 s");
  drive();
  EXPECT_EQ(client.ended, "idle for 30 s");
  EXPECT_EQ(dirs_[0]->near_udp_flows(), 0u);
  EXPECT_EQ(dirs_[1]->far_udp_flows(), 0u);

  // A flow closed before its answer: the far flow is closed right after it opened, nobody hears more.
  UdpClient quick;
  ASSERT_EQ(dirs_[0]->open_client_flow(route.route->session, 7, &quick, &flow),
            UdpClientFlows::ClientOpen::kLater);
  dirs_[0]->close_client_flow(flow);
  drive();
  EXPECT_FALSE(quick.opened);
  EXPECT_TRUE(udp.clients.empty());
  EXPECT_EQ(dirs_[1]->far_udp_flows(), 0u);

  // Refusals come back as the answer.
  udp.cap = 0;
  UdpClient capped;
  dirs_[0]->open_client_flow(route.route->session, 7, &capped, &flow);
  UdpClient unknown;
  dirs_[0]->open_client_flow(route.route->session, 8, &unknown, &flow);
  drive();
  EXPECT_EQ(capped.opened, UdpClientFlows::ClientOpen::kFlowCap);
  EXPECT_EQ(unknown.opened, UdpClientFlows::ClientOpen::kNoTunnel);
  EXPECT_EQ(dirs_[0]->near_udp_flows(), 0u);
  // This worker's flows on other workers' tunnels are capped, whatever the far tunnels allow.
  UdpClient many;
  for (size_t i = 0; i < WorkerDirectory::kMaxRemoteUdpFlows; ++i)
    ASSERT_EQ(dirs_[0]->open_client_flow(route.route->session, 7, &many, &flow),
              UdpClientFlows::ClientOpen::kLater);
  EXPECT_EQ(dirs_[0]->open_client_flow(route.route->session, 7, &many, &flow),
            UdpClientFlows::ClientOpen::kFlowCap);
  EXPECT_EQ(dirs_[0]->near_udp_flows(), WorkerDirectory::kMaxRemoteUdpFlows);
}

}  // namespace
}  // namespace wtmesh::edge::workers_test
