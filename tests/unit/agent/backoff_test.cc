#include <gtest/gtest.h>

#include "agent/tunnel_backoff.h"

namespace wtmesh::agent {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, DoublesFromHalfASecondToThirtySeconds) {
  Backoff b;
  std::vector<long long> got;
  for (int i = 0; i < 10; ++i) got.push_back(b.next(0.5).count());  // u = 0.5: no jitter
  EXPECT_EQ(got, (std::vector<long long>{500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000}));
  EXPECT_EQ(b.attempts(), 10);
}

TEST(Backoff, JitterStaysWithinQuarter) {
  Backoff lo, hi;
  EXPECT_EQ(lo.next(0.0), milliseconds(375));  // 500 * 0.75
  EXPECT_EQ(hi.next(0.999999), milliseconds(624));
  EXPECT_EQ(lo.next(0.0), milliseconds(750));
  std::mt19937_64 rng(42);
  Backoff r;
  for (int i = 0; i < 200; ++i) {
    const auto base = r.base();
    const auto d = r.next(rng);
    EXPECT_GE(d.count(), static_cast<long long>(static_cast<double>(base.count()) * 0.75) - 1);
    EXPECT_LE(d,
              std::min(milliseconds(30000), milliseconds(static_cast<long long>(base.count() * 1.25) + 1)));
  }
}

TEST(Backoff, CappedAtMaxEvenWithJitter) {
  Backoff b;
  for (int i = 0; i < 20; ++i) b.next(0.5);
  EXPECT_EQ(b.next(1.0), milliseconds(30000));  // 30 s * 1.25 is capped
  EXPECT_EQ(b.next(0.0), milliseconds(22500));
}

TEST(Backoff, StableSessionResets) {
  Backoff b;
  for (int i = 0; i < 5; ++i) b.next(0.5);
  b.on_session_ended(milliseconds(29000));  // short-lived: keep backing off
  EXPECT_EQ(b.next(0.5), milliseconds(16000));
  b.on_session_ended(milliseconds(31000));
  EXPECT_EQ(b.next(0.5), milliseconds(500));
  EXPECT_EQ(b.attempts(), 1);
}

TEST(Backoff, SaturateJumpsToMax) {
  Backoff b;
  b.saturate();
  EXPECT_EQ(b.next(0.5), milliseconds(30000));
  b.reset();
  EXPECT_EQ(b.next(0.5), milliseconds(500));
}

}  // namespace
}  // namespace wtmesh::agent
