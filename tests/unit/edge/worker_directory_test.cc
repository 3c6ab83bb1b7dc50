// edge::WorkerDirectory (fixture: worker_directory_fixture.h). Checked: local routes pass through
// untouched, a route held on the other worker is answered by it and its stream relayed both ways with
// the request window, the open retried while the session is busy (and refused as the session's own
// worker refuses it), credit returned for bytes nobody takes, a release that waits for the request's
// last bytes, visitor auth carried across, and the shared table under two threads. Relayed
// WebTransport sessions and UDP flows: worker_directory_relay_test.cc.
#include "edge/worker_directory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "edge/shared_route_table.h"
#include "worker_directory_fixture.h"

namespace wtmesh::edge::workers_test {
namespace {

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

}  // namespace
// An agent's newer session on worker 0 takes a name over from its older one on worker 1
// (docs/protocol.md §3.5): the question goes to the holder's worker, whose service answers, and the
// answer comes back by post. A holder on this worker or of another edge is not asked.
TEST_F(WorkerDirectoryTest, AHandOverIsAskedOfTheHoldersWorkerAndAnsweredBack) {
  std::vector<std::string> asked;
  dirs_[1]->set_local_hand_over(
      [&](const std::string& holder, RouteKey key, const std::string& instance, const std::string& subject) {
        asked.push_back(holder + " " + std::string(key.type) + " " + std::string(key.name) + " " + instance +
                        " " + subject);
        return key.name == "app.localhost";
      });
  std::vector<bool> answers;
  const std::string holder = worker_edge_id(kEdge, 1) + "/3";
  EXPECT_TRUE(dirs_[0]->ask_hand_over(holder, "http", "app.localhost", "inst", "alice",
                                      [&](bool handed) { answers.push_back(handed); }));
  EXPECT_TRUE(dirs_[0]->ask_hand_over(holder, "tcp", "db.localhost", "inst", "alice",
                                      [&](bool handed) { answers.push_back(handed); }));
  EXPECT_TRUE(answers.empty()) << "answered by post, not inline";
  drive();
  EXPECT_EQ(asked, (std::vector<std::string>{holder + " http app.localhost inst alice",
                                             holder + " tcp db.localhost inst alice"}));
  EXPECT_EQ(answers, (std::vector<bool>{true, false}));
  EXPECT_FALSE(dirs_[0]->ask_hand_over(worker_edge_id(kEdge, 0) + "/3", "http", "a", "i", "s", [](bool) {}))
      << "this worker's own session: the service hands it over itself";
  EXPECT_FALSE(dirs_[0]->ask_hand_over("other-edge/w1/3", "http", "a", "i", "s", [](bool) {}));
  EXPECT_FALSE(dirs_[0]->ask_hand_over("nonsense", "http", "a", "i", "s", [](bool) {}));
}

}  // namespace wtmesh::edge::workers_test
