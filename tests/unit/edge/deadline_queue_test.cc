// DeadlineQueue: the edge's per-session tick schedule (a lazy min-heap, one live entry per key).
#include "edge/deadline_queue.h"

#include <gtest/gtest.h>

namespace wtmesh::edge {
namespace {

using namespace std::chrono_literals;

const SteadyTime t0 = SteadyTime() + 1000s;

TEST(DeadlineQueue, DueKeysComeOutEarliestFirstAndLeave) {
  DeadlineQueue q;
  EXPECT_FALSE(q.next());
  q.schedule(1, t0 + 3s);
  q.schedule(2, t0 + 1s);
  q.schedule(3, t0 + 2s);
  EXPECT_EQ(q.next(), t0 + 1s);
  EXPECT_TRUE(q.take_due(t0 + 500ms).empty());
  EXPECT_EQ(q.take_due(t0 + 2s), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.next(), t0 + 3s);
  EXPECT_EQ(q.take_due(t0 + 10s), std::vector<uint64_t>{1});
  EXPECT_FALSE(q.next());
}

TEST(DeadlineQueue, AKeyKeepsItsEarliestTickOnly) {
  DeadlineQueue q;
  EXPECT_TRUE(q.schedule(7, t0 + 5s));
  EXPECT_FALSE(q.schedule(7, t0 + 9s)) << "later: the owner finds out when 5 s comes";
  EXPECT_TRUE(q.schedule(7, t0 + 2s)) << "earlier: kept, the 5 s entry is stale";
  EXPECT_EQ(q.next(), t0 + 2s);
  EXPECT_EQ(q.take_due(t0 + 6s), std::vector<uint64_t>{7}) << "once, not once per entry";
  EXPECT_FALSE(q.next());
  EXPECT_EQ(q.entries(), 0u);
}

TEST(DeadlineQueue, AForgottenKeyNeverComesDue) {
  DeadlineQueue q;
  q.schedule(1, t0 + 1s);
  q.schedule(2, t0 + 2s);
  q.forget(1);
  EXPECT_EQ(q.next(), t0 + 2s);
  EXPECT_EQ(q.take_due(t0 + 3s), std::vector<uint64_t>{2});
}

TEST(DeadlineQueue, StaleEntriesDoNotPileUp) {
  // A key moved earlier again and again (a request stream per tick) leaves stale entries behind;
  // the heap is rebuilt before they outnumber the live keys by much.
  DeadlineQueue q;
  for (uint64_t k = 0; k < 10; ++k) q.schedule(k, t0 + 1h);
  for (int i = 0; i < 10000; ++i) q.schedule(3, t0 + 1h - std::chrono::milliseconds(i + 1));
  EXPECT_LE(q.entries(), 2 * q.size() + 64 + 1);
  EXPECT_EQ(q.next(), t0 + 1h - 10000ms);
  EXPECT_EQ(q.take_due(t0 + 1h - 10000ms), std::vector<uint64_t>{3});
  EXPECT_EQ(q.size(), 9u);
}

}  // namespace
}  // namespace wtmesh::edge
