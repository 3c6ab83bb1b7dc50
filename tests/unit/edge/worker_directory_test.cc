// edge::WorkerDirectory: two workers' directories over one SharedRouteTable, each in front of a
// scripted TunnelDirectory standing for its TunnelService. The two io_contexts are turned by the test
// (drive()), so every hop between them is seen in order; the threads of a real edge only change when
// the posts run. Checked: local routes pass through untouched, a route held on the other worker is
// answered by it and its stream relayed both ways with the request window, the open retried while
// the session is busy, credit returned for bytes nobody takes, a release that waits for the request's
// last bytes, visitor auth carried across, relayed WebTransport sessions on the other worker's
// session (ids, refusal, the agent's streams, datagrams and their cap), UDP flows of a udp tunnel on
// the other worker (the open answered later, packets both ways, the flow's end, a close), and the
// shared table under two threads.
#include "edge/worker_directory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "edge/agent_session.h"
#include "edge/shared_route_table.h"
#include "fakes.h"

namespace wtmesh::edge {
namespace {

using test::bytes;
using test::FakeDirectory;
using test::str;

constexpr std::string_view kEdge = "edge-1";

struct Events final : RouteEvents, RequestStreamEvents {
  void on_route(const RouteLookup& r) override { route = r; }
  void on_response_data(std::span<const uint8_t> data, bool f) override {
    response += str(data);
    fin = fin || f;
    if (consume_at_once && dir != nullptr) dir->consume(ref, data.size());
  }
  void on_request_writable() override { ++writable; }
  void on_stream_aborted(std::optional<uint32_t> c, std::string_view why) override {
    aborted = true;
    code = c;
    reason = std::string(why);
  }
  void on_request_stopped(std::optional<uint32_t> c) override { stopped = c; }
  void on_open_refused(OpenStatus s, std::string_view why) override {
    refused = s;
    on_stream_aborted(std::nullopt, why);
  }

  std::optional<RouteLookup> route;
  std::optional<OpenStatus> refused;
  std::string response;
  bool fin = false;
  int writable = 0;
  bool aborted = false;
  std::optional<uint32_t> code, stopped;
  std::string reason;
  bool consume_at_once = false;
  TunnelDirectory* dir = nullptr;
  StreamRef ref;
};

class WorkerDirectoryTest : public ::testing::Test {
 protected:
  WorkerDirectoryTest() {
    env_ = std::make_shared<VisitorEnvironment>();
    for (unsigned i = 0; i < 2; ++i)
      dirs_[i] = std::make_unique<WorkerDirectory>(io_[i], i, std::string(kEdge), fake_[i], table_, env_);
    for (auto& d : dirs_) d->set_workers({dirs_[0].get(), dirs_[1].get()});
  }

  // A tunnel `host` held by a session on worker `w` (its fake answers the route as session 1).
  void hold(const std::string& host, unsigned w) {
    const std::string owner = worker_edge_id(kEdge, w) + "/1";
    const std::string edge_id = worker_edge_id(kEdge, w);
    table_.claim({kHttp, host}, RouteLease{owner, edge_id, std::chrono::seconds(30)}, 7,
                 std::chrono::steady_clock::now(),
                 [](const ClaimReply& r) { ASSERT_EQ(r.result, ClaimResult::kOk); });
    fake_[w].add_route(host);
  }
  // Runs both loops until neither has anything ready.
  void drive() {
    for (int round = 0; round < 100; ++round) {
      size_t n = 0;
      for (auto& io : io_) {
        n += io.poll();
        io.restart();
      }
      if (n == 0) return;
    }
  }
  // A stream from worker 0 to `host` (held on worker 1), opened.
  StreamRef open_remote(const std::string& host, Events& ev) {
    hold(host, 1);
    const uint64_t ticket = dirs_[0]->route(host, &ev);
    EXPECT_NE(ticket, 0u) << "answered by another thread: not inline";
    drive();
    EXPECT_TRUE(ev.route && ev.route->kind == RouteLookup::Kind::kFound);
    StreamRef ref;
    EXPECT_EQ(dirs_[0]->open_request(*ev.route, "203.0.113.9", &ev, &ref),
              TunnelDirectory::OpenStatus::kOpened);
    ev.dir = dirs_[0].get();
    ev.ref = ref;
    return ref;
  }
  FakeDirectory::Stream& far_stream() {
    EXPECT_EQ(fake_[1].streams.size(), 1u);
    return fake_[1].streams.begin()->second;
  }

  std::array<boost::asio::io_context, 2> io_;
  SharedRouteTable table_;
  std::array<FakeDirectory, 2> fake_;
  std::shared_ptr<VisitorEnvironment> env_;
  std::array<std::unique_ptr<WorkerDirectory>, 2> dirs_;
};

TEST(WorkerEdgeId, NamesTheWorkerAndReadsBack) {
  EXPECT_EQ(worker_edge_id("e1", 3), "e1/w3");
  EXPECT_EQ(worker_of("e1/w3", "e1"), 3u);
  EXPECT_EQ(worker_of("e1/w", "e1"), std::nullopt);
  EXPECT_EQ(worker_of("e1/w3x", "e1"), std::nullopt);
  EXPECT_EQ(worker_of("e2/w3", "e1"), std::nullopt) << "another edge's worker";
  EXPECT_EQ(worker_of("e1", "e1"), std::nullopt);
}

TEST_F(WorkerDirectoryTest, ARouteHeldOnThisWorkerPassesStraightThrough) {
  hold("a.test", 0);
  Events ev;
  EXPECT_EQ(dirs_[0]->route("a.test", &ev), 0u) << "answered inline, as the local service does";
  ASSERT_TRUE(ev.route);
  EXPECT_EQ(ev.route->kind, RouteLookup::Kind::kFound);
  EXPECT_EQ(ev.route->session, 1u);
  StreamRef ref;
  ASSERT_EQ(dirs_[0]->open_request(*ev.route, "c", &ev, &ref), TunnelDirectory::OpenStatus::kOpened);
  EXPECT_EQ(dirs_[0]->write(ref, bytes("hi"), true), 2u);
  EXPECT_EQ(str(fake_[0].streams[ref.id].written), "hi");
  EXPECT_EQ(dirs_[0]->hops_opened(), 0u);
  // Unknown names too: the local service's answer (404).
  Events none;
  EXPECT_EQ(dirs_[0]->route("nobody.test", &none), 0u);
  ASSERT_TRUE(none.route);
  EXPECT_EQ(none.route->kind, RouteLookup::Kind::kUnknown);
}

TEST_F(WorkerDirectoryTest, AStreamToAnotherWorkersSessionCarriesBothDirections) {
  fake_[1].request_trailers = true;
  fake_[1].routes.clear();
  Events ev;
  hold("b.test", 1);
  fake_[1].routes["b.test"].request_trailers = true;
  ASSERT_NE(dirs_[0]->route("b.test", &ev), 0u);
  EXPECT_FALSE(ev.route) << "not before worker 1 answered";
  drive();
  ASSERT_TRUE(ev.route);
  ASSERT_EQ(ev.route->kind, RouteLookup::Kind::kFound);
  EXPECT_EQ(ev.route->tunnel_id, 7u);
  EXPECT_EQ(dirs_[0]->visitor_gate(*ev.route), nullptr) << "the tunnel has no visitor auth";
  StreamRef ref;
  ASSERT_EQ(dirs_[0]->open_request(*ev.route, "203.0.113.9", &ev, &ref),
            TunnelDirectory::OpenStatus::kOpened);
  EXPECT_TRUE(ref.valid());
  EXPECT_TRUE(ref.request_trailers) << "the session's feature travels with the route";
  EXPECT_EQ(dirs_[0]->write(ref, bytes("GET /"), false), 5u);
  EXPECT_EQ(dirs_[0]->write(ref, bytes(" body"), true), 5u);
  EXPECT_EQ(dirs_[0]->send_capacity(ref), 0u) << "after the FIN nothing more";
  drive();
  FakeDirectory::Stream& s = far_stream();
  EXPECT_EQ(fake_[1].last_client, "203.0.113.9");
  EXPECT_EQ(str(s.written), "GET / body");
  EXPECT_TRUE(s.fin);
  // The agent answers in two pieces; credit goes back only as the exchange consumes.
  s.events->on_response_data(bytes("head"), false);
  s.events->on_response_data(bytes("tail"), true);
  drive();
  EXPECT_EQ(ev.response, "headtail");
  EXPECT_TRUE(ev.fin);
  EXPECT_EQ(s.consumed, 0u);
  dirs_[0]->consume(ref, 4);
  dirs_[0]->release(ref);
  drive();
  EXPECT_EQ(s.consumed, 4u);
  EXPECT_TRUE(s.released);
  EXPECT_EQ(dirs_[0]->near_hops(), 1u) << "4 bytes are still the exchange's to consume";
  dirs_[0]->consume(ref, 4);  // accepted after release
  drive();
  EXPECT_EQ(s.consumed, 8u);
  EXPECT_EQ(dirs_[0]->near_hops(), 0u);
  EXPECT_EQ(dirs_[1]->far_hops(), 0u);
}

TEST_F(WorkerDirectoryTest, RequestBytesWaitInTheWindowAndTheWriterHearsWhenThereIsRoom) {
  fake_[1].capacity = 100 * 1024;
  Events ev;
  const StreamRef ref = open_remote("c.test", ev);
  std::vector<uint8_t> body(1 << 20);
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<uint8_t>(i * 7);
  size_t sent = dirs_[0]->write(ref, body, true);
  EXPECT_EQ(sent, WorkerDirectory::kRequestWindow);
  EXPECT_EQ(dirs_[0]->send_capacity(ref), 0u);
  EXPECT_EQ(dirs_[0]->write(ref, std::span(body).subspan(sent), true), 0u);
  drive();
  FakeDirectory::Stream& s = far_stream();
  EXPECT_EQ(s.written.size(), 100u * 1024) << "what the stream could take";
  EXPECT_EQ(ev.writable, 1);
  EXPECT_EQ(dirs_[0]->send_capacity(ref), 100u * 1024);
  // The stream opens up bit by bit; the writer keeps filling the window.
  for (int round = 0; round < 100 && !s.fin; ++round) {
    sent += dirs_[0]->write(ref, std::span(body).subspan(sent), true);
    s.capacity += 64 * 1024;
    s.events->on_request_writable();
    drive();
  }
  EXPECT_TRUE(s.fin);
  EXPECT_EQ(sent, body.size());
  EXPECT_EQ(s.written, body) << "every byte, in order";
}

TEST_F(WorkerDirectoryTest, ABusySessionIsRetriedAndAGoneOneEndsTheExchange) {
  fake_[1].busy = 2;
  Events ev;
  const StreamRef ref = open_remote("d.test", ev);
  dirs_[0]->write(ref, bytes("x"), true);
  drive();
  EXPECT_EQ(fake_[1].open_calls, 1);
  EXPECT_TRUE(fake_[1].streams.empty());
  for (int i = 0; i < 50 && fake_[1].streams.empty(); ++i) {
    io_[1].run_for(std::chrono::milliseconds(5));
    io_[1].restart();
    drive();
  }
  EXPECT_EQ(fake_[1].open_calls, 3);
  ASSERT_EQ(fake_[1].streams.size(), 1u);
  EXPECT_EQ(str(far_stream().written), "x") << "bytes written before the open went out after it";

  fake_[1].gone = true;
  Events gone;
  const StreamRef ref2 = open_remote("e.test", gone);
  EXPECT_EQ(dirs_[0]->write(ref2, bytes("y"), false), 1u) << "taken before the far side knew";
  drive();
  EXPECT_TRUE(gone.aborted);
  EXPECT_EQ(gone.refused, OpenStatus::kGone) << "as open_request() would have answered";
  EXPECT_EQ(gone.code, std::nullopt);
  EXPECT_EQ(gone.reason, "the tunnel's session ended");
  EXPECT_EQ(dirs_[0]->write(ref2, bytes("z"), false), 0u);
  EXPECT_EQ(dirs_[0]->send_capacity(ref2), 0u);
}

TEST_F(WorkerDirectoryTest, AClientAtItsStreamLimitIsRefusedAsTheSessionsOwnWorkerWouldRefuseIt) {
  fake_[1].client_limited = 1 << 20;
  dirs_[1]->set_open_timeout(std::chrono::milliseconds(30));
  Events ev;
  open_remote("f.test", ev);
  for (int i = 0; i < 100 && !ev.refused; ++i) {
    io_[1].run_for(std::chrono::milliseconds(5));
    io_[1].restart();
    drive();
  }
  ASSERT_EQ(ev.refused, OpenStatus::kClientLimit) << "the exchange answers 429, not 502";
  EXPECT_GT(fake_[1].open_calls, 1) << "retried until the open timeout";
  EXPECT_EQ(fake_[1].last_client, "203.0.113.9");
  EXPECT_EQ(dirs_[0]->near_hops(), 0u);
  EXPECT_EQ(dirs_[1]->far_hops(), 0u);
}

TEST_F(WorkerDirectoryTest, ResponseBytesNobodyTakesAreCreditedBack) {
  Events ev;
  const StreamRef ref = open_remote("f.test", ev);
  drive();
  FakeDirectory::Stream& s = far_stream();
  s.events->on_response_data(bytes("12345"), false);  // in flight toward worker 0 ...
  dirs_[0]->cancel(ref, 0x10);                        // ... when the client leaves
  drive();
  EXPECT_EQ(ev.response, "") << "no event after cancel";
  EXPECT_EQ(s.cancelled, 0x10u);
  EXPECT_EQ(s.consumed, 5u) << "the connection's window gets them back";
  EXPECT_EQ(dirs_[0]->near_hops(), 0u);
  EXPECT_EQ(dirs_[1]->far_hops(), 0u);
}

TEST_F(WorkerDirectoryTest, AReleaseWaitsForTheRequestsLastBytes) {
  fake_[1].capacity = 10;
  Events ev;
  const StreamRef ref = open_remote("g.test", ev);
  EXPECT_EQ(dirs_[0]->write(ref, bytes("0123456789abcdef"), true), 16u);
  drive();
  FakeDirectory::Stream& s = far_stream();
  s.events->on_response_data(bytes("ok"), true);  // the agent answered before reading it all
  drive();
  EXPECT_TRUE(ev.fin);
  dirs_[0]->consume(ref, 2);
  dirs_[0]->release(ref);
  drive();
  EXPECT_FALSE(s.released) << "6 request bytes still to go";
  EXPECT_EQ(dirs_[1]->far_hops(), 1u);
  s.capacity = 100;
  s.events->on_request_writable();
  drive();
  EXPECT_EQ(str(s.written), "0123456789abcdef");
  EXPECT_TRUE(s.fin);
  EXPECT_TRUE(s.released);
  EXPECT_EQ(dirs_[1]->far_hops(), 0u);
}

TEST_F(WorkerDirectoryTest, AnAbortAndAStopReachTheExchange) {
  Events ev;
  const StreamRef ref = open_remote("h.test", ev);
  drive();
  FakeDirectory::Stream& s = far_stream();
  s.events->on_request_stopped(3);
  s.events->on_stream_aborted(9, "agent reset");
  drive();
  EXPECT_EQ(ev.stopped, 3u);
  EXPECT_TRUE(ev.aborted);
  EXPECT_EQ(ev.code, 9u);
  EXPECT_EQ(ev.reason, "agent reset");
  dirs_[0]->cancel(ref, 1);  // idempotent after the end
  drive();
  EXPECT_EQ(dirs_[0]->near_hops(), 0u);
  EXPECT_EQ(dirs_[1]->far_hops(), 0u);
}

TEST_F(WorkerDirectoryTest, AnotherWorkersTunnelKeepsItsVisitorAuth) {
  tunnel::VisitorPolicy policy;
  policy.challenge = true;
  fake_[1].gate = std::make_shared<VisitorGate>(policy);
  Events ev;
  hold("i.test", 1);
  dirs_[0]->route("i.test", &ev);
  drive();
  ASSERT_TRUE(ev.route);
  VisitorGate* g = dirs_[0]->visitor_gate(*ev.route);
  ASSERT_NE(g, nullptr) << "a tunnel with visitor auth must never look open";
  EXPECT_EQ(g->policy(), policy);
  // The same tunnel again: the same gate (what it remembered stays).
  Events again;
  dirs_[0]->route("i.test", &again);
  drive();
  EXPECT_EQ(dirs_[0]->visitor_gate(*again.route), g);
  // The tunnel changes its policy: a new gate with it.
  tunnel::VisitorPolicy other;
  other.challenge = true;
  other.allow.push_back(*tunnel::parse_cidr("10.0.0.0/8", nullptr));
  fake_[1].gate = std::make_shared<VisitorGate>(other);
  Events third;
  dirs_[0]->route("i.test", &third);
  drive();
  ASSERT_NE(dirs_[0]->visitor_gate(*third.route), nullptr);
  EXPECT_EQ(dirs_[0]->visitor_gate(*third.route)->policy(), other);
}

TEST_F(WorkerDirectoryTest, RemoteGatesAreCappedAndTheNewestIsAlwaysKept) {
  tunnel::VisitorPolicy policy;
  policy.challenge = true;
  fake_[1].gate = std::make_shared<VisitorGate>(policy);
  // Each name its own tunnel (tunnel id) of one session: one gate each on worker 0.
  for (uint32_t i = 0; i <= WorkerDirectory::kMaxRemoteGates; ++i) {
    const std::string host = "g" + std::to_string(i) + ".test";
    const std::string owner = worker_edge_id(kEdge, 1) + "/1";
    table_.claim({kHttp, host}, RouteLease{owner, worker_edge_id(kEdge, 1), std::chrono::seconds(30)}, i + 1,
                 std::chrono::steady_clock::now(), nullptr);
    fake_[1].routes[host] = RouteLookup{RouteLookup::Kind::kFound, 1, i + 1, host};
    Events ev;
    dirs_[0]->route(host, &ev);
    drive();
    ASSERT_TRUE(ev.route);
    ASSERT_NE(dirs_[0]->visitor_gate(*ev.route), nullptr) << "the gate just made is never the one dropped";
  }
  EXPECT_EQ(dirs_[0]->remote_gates(), WorkerDirectory::kMaxRemoteGates);
}

TEST_F(WorkerDirectoryTest, ACancelledLookupHearsNothing) {
  Events ev;
  hold("j.test", 1);
  const uint64_t ticket = dirs_[0]->route("j.test", &ev);
  dirs_[0]->cancel_route(ticket);
  drive();
  EXPECT_FALSE(ev.route);
}

TEST(SharedRouteTable, TwoThreadsClaimAndLookUpWithoutLosingARoute) {
  SharedRouteTable table;
  std::atomic<int> misses{0};
  auto worker = [&](unsigned w) {
    const std::string edge_id = worker_edge_id(kEdge, w);
    for (int i = 0; i < 2000; ++i) {
      const std::string name = "n" + std::to_string(i) + "-" + std::to_string(w) + ".test";
      const std::string owner = edge_id + "/" + std::to_string(i);
      const auto now = std::chrono::steady_clock::now();
      table.claim({kHttp, name}, RouteLease{owner, edge_id, std::chrono::seconds(30)}, 1, now, nullptr);
      table.lookup(kHttp, name, now, [&](const RouteMatch& m) {
        if (!m.live() || worker_of(m.edge_id, kEdge) != w) ++misses;
        // A completion may use the table again (the lock is not held).
        table.renew(m.owner, now);
      });
      if (i % 2 == 0) table.release_all(owner, now);
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  EXPECT_EQ(misses.load(), 0);
  EXPECT_EQ(table.size(), 2000u);
  EXPECT_EQ(table.offline_count(), 2000u);
  EXPECT_EQ(table.pattern(kHttp, "n1-0.test", std::chrono::steady_clock::now()), "n1-0.test");
}

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

TEST_F(WorkerDirectoryTest, ARelayedSessionOnAnotherWorkersSessionCarriesStreamsAndDatagrams) {
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

TEST_F(WorkerDirectoryTest, ARelayTheFarSessionRefusesHearsItAndDatagramsInFlightAreCapped) {
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

TEST_F(WorkerDirectoryTest, AUdpFlowOfATunnelOnAnotherWorkerOpensLaterAndCarriesPacketsBothWays) {
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
}

}  // namespace
}  // namespace wtmesh::edge
