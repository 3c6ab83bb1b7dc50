// edge::SubjectLedger (a token subject's sessions and tunnels across an edge's workers) and
// edge::PublicListenerShared (an address's public connections across the workers' listeners): the
// caps hold whichever thread counts.
#include "edge/subject_ledger.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "edge/public_listener.h"

namespace wtmesh::edge {
namespace {

TEST(SubjectLedger, SessionsAreCappedAndTunnelsFollowTheirSessions) {
  SubjectLedger l;
  size_t held = 0;
  EXPECT_TRUE(l.add_session("alice", 2, &held));
  EXPECT_EQ(held, 0u);
  EXPECT_TRUE(l.add_session("alice", 2));
  EXPECT_FALSE(l.add_session("alice", 2, &held)) << "a third session over a cap of two";
  EXPECT_EQ(held, 2u);
  EXPECT_TRUE(l.add_session("bob", 2)) << "subjects are counted apart";
  l.tunnels_changed("alice", 0, 3);
  l.tunnels_changed("alice", 0, 2);
  EXPECT_EQ(l.tunnels("alice"), 5u);
  l.tunnels_changed("alice", 3, 1);
  EXPECT_EQ(l.tunnels("alice"), 3u);
  l.remove_session("alice");
  EXPECT_EQ(l.sessions("alice"), 1u);
  EXPECT_TRUE(l.add_session("alice", 2)) << "a slot came back";
  l.remove_session("alice");
  l.remove_session("alice");
  EXPECT_EQ(l.sessions("alice"), 0u);
  EXPECT_EQ(l.tunnels("alice"), 0u) << "the entry goes with the subject's last session";
  EXPECT_EQ(l.subjects(), 1u);
}

TEST(SubjectLedger, WorkersOnTheirOwnThreadsNeverPassTheCap) {
  SubjectLedger l;
  std::vector<std::thread> workers;
  std::atomic<int> taken{0};
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (l.add_session("s", 10)) {
          ++taken;
          l.remove_session("s");
          --taken;
        }
      }
      for (int i = 0; i < 10; ++i) taken += l.add_session("s", 10) ? 1 : 0;
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(taken.load(), 10);
  EXPECT_EQ(l.sessions("s"), 10u);
}

TEST(PublicListenerShared, AnAddresssConnectionsCountOnEveryListenerOfThePort) {
  PublicLimits limits;
  PublicListenerShared shared(limits);
  EXPECT_TRUE(shared.try_open("192.0.2.1", 2));  // worker 0's listener
  EXPECT_TRUE(shared.try_open("192.0.2.1", 2));  // worker 1's
  EXPECT_FALSE(shared.try_open("192.0.2.1", 2));
  EXPECT_EQ(shared.connections("192.0.2.1"), 2u);
  EXPECT_TRUE(shared.try_open("192.0.2.2", 2));
  shared.closed("192.0.2.1");
  EXPECT_TRUE(shared.try_open("192.0.2.1", 2));
  EXPECT_TRUE(shared.try_open("192.0.2.1", 0)) << "0: no cap";
  EXPECT_TRUE(shared.try_open("192.0.2.9", 0));
  shared.closed("nobody");  // unknown: nothing
  EXPECT_EQ(shared.connections("nobody"), 0u);
}

}  // namespace
}  // namespace wtmesh::edge
