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

constexpr auto kAdded = SubjectLedger::Added::kAdded;
constexpr size_t kAll = 1000;  // the edge's sessions: out of the way

TEST(SubjectLedger, SessionsAreCappedAndTunnelsFollowTheirSessions) {
  SubjectLedger l;
  size_t held = 0;
  EXPECT_EQ(l.add_session("alice", 2, kAll, &held), kAdded);
  EXPECT_EQ(held, 0u);
  EXPECT_EQ(l.add_session("alice", 2, kAll), kAdded);
  EXPECT_EQ(l.add_session("alice", 2, kAll, &held), SubjectLedger::Added::kSubjectFull)
      << "a third session over a cap of two";
  EXPECT_EQ(held, 2u);
  EXPECT_EQ(l.add_session("bob", 2, kAll), kAdded) << "subjects are counted apart";
  l.tunnels_changed("alice", 0, 3);
  l.tunnels_changed("alice", 0, 2);
  EXPECT_EQ(l.tunnels("alice"), 5u);
  l.tunnels_changed("alice", 3, 1);
  EXPECT_EQ(l.tunnels("alice"), 3u);
  l.remove_session("alice");
  EXPECT_EQ(l.sessions("alice"), 1u);
  EXPECT_EQ(l.add_session("alice", 2, kAll), kAdded) << "a slot came back";
  l.remove_session("alice");
  l.remove_session("alice");
  EXPECT_EQ(l.sessions("alice"), 0u);
  EXPECT_EQ(l.tunnels("alice"), 0u) << "the entry goes with the subject's last session";
  EXPECT_EQ(l.subjects(), 1u);
}

TEST(SubjectLedger, TheEdgesSessionsAreCappedWhicheverSubjectHoldsThem) {
  SubjectLedger l;
  EXPECT_EQ(l.add_session("alice", 5, 3), kAdded);
  EXPECT_EQ(l.add_session("bob", 5, 3), kAdded);
  EXPECT_EQ(l.add_session("carol", 5, 3), kAdded);
  EXPECT_EQ(l.add_session("dave", 5, 3), SubjectLedger::Added::kEdgeFull);
  EXPECT_EQ(l.sessions("dave"), 0u);
  EXPECT_EQ(l.total_sessions(), 3u);
  l.remove_session("nobody");  // unknown: nothing
  l.remove_session("bob");
  EXPECT_EQ(l.total_sessions(), 2u);
  EXPECT_EQ(l.add_session("dave", 5, 3), kAdded);
}

TEST(SubjectLedger, WorkersOnTheirOwnThreadsNeverPassTheCap) {
  SubjectLedger l;
  std::vector<std::thread> workers;
  std::atomic<int> taken{0};
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (l.add_session("s", 10, kAll) == kAdded) {
          ++taken;
          l.remove_session("s");
          --taken;
        }
      }
      for (int i = 0; i < 10; ++i) taken += l.add_session("s", 10, kAll) == kAdded ? 1 : 0;
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(taken.load(), 10);
  EXPECT_EQ(l.sessions("s"), 10u);
}

TEST(PublicListenerShared, AnAddresssConnectionsCountOnEveryListenerOfThePort) {
  using Open = PublicListenerShared::Open;
  PublicLimits limits;
  PublicListenerShared shared(limits);
  constexpr size_t kAll = 100;
  EXPECT_EQ(shared.try_open("192.0.2.1", kAll, 2), Open::kOpened);  // worker 0's listener
  EXPECT_EQ(shared.try_open("192.0.2.1", kAll, 2), Open::kOpened);  // worker 1's
  EXPECT_EQ(shared.try_open("192.0.2.1", kAll, 2), Open::kAddressFull);
  EXPECT_EQ(shared.connections("192.0.2.1"), 2u);
  EXPECT_EQ(shared.try_open("192.0.2.2", kAll, 2), Open::kOpened);
  shared.closed("192.0.2.1");
  EXPECT_EQ(shared.try_open("192.0.2.1", kAll, 2), Open::kOpened);
  EXPECT_EQ(shared.try_open("192.0.2.1", kAll, 0), Open::kOpened) << "0: no cap";
  EXPECT_EQ(shared.try_open("192.0.2.9", kAll, 0), Open::kOpened);
  shared.closed("nobody");  // unknown: nothing
  EXPECT_EQ(shared.connections("nobody"), 0u);
  EXPECT_EQ(shared.total(), 5u);
}

// --max-connections is the port's, not each worker listener's.
TEST(PublicListenerShared, ThePortsConnectionsCountOnEveryListener) {
  using Open = PublicListenerShared::Open;
  PublicListenerShared shared(PublicLimits{});
  EXPECT_EQ(shared.try_open("192.0.2.1", 3, 0), Open::kOpened);
  EXPECT_EQ(shared.try_open("192.0.2.2", 3, 0), Open::kOpened);
  EXPECT_EQ(shared.try_open("192.0.2.3", 3, 0), Open::kOpened);
  EXPECT_EQ(shared.try_open("192.0.2.4", 3, 0), Open::kFull);
  EXPECT_EQ(shared.try_open("192.0.2.1", 3, 1), Open::kFull) << "the port's cap is looked at first";
  EXPECT_EQ(shared.connections("192.0.2.4"), 0u) << "a refused address holds nothing";
  shared.closed("192.0.2.2");
  EXPECT_EQ(shared.try_open("192.0.2.4", 3, 0), Open::kOpened);
  EXPECT_EQ(shared.total(), 3u);
}

}  // namespace
}  // namespace wtmesh::edge
