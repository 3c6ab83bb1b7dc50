#include "edge/auth_failures.h"

#include <gtest/gtest.h>

#include <string>

namespace wtmesh::edge {
namespace {

using namespace std::chrono_literals;
using Time = AuthFailureLimiter::Time;

TEST(AuthFailureLimiter, AnAddressRunsOutAfterItsBurstAndComesBackAtTheRate) {
  AuthFailureLimiter l({.burst = 3, .per_second = 0.5, .max_addresses = 16});
  const Time t0{};
  EXPECT_TRUE(l.allowed("10.0.0.1", t0)) << "an address never seen may try";
  EXPECT_FALSE(l.on_failure("10.0.0.1", t0));
  EXPECT_FALSE(l.on_failure("10.0.0.1", t0));
  EXPECT_TRUE(l.allowed("10.0.0.1", t0));
  EXPECT_TRUE(l.on_failure("10.0.0.1", t0)) << "the third failure takes the last token: logged once";
  EXPECT_FALSE(l.allowed("10.0.0.1", t0));
  EXPECT_FALSE(l.on_failure("10.0.0.1", t0)) << "already out: not reported again";
  EXPECT_TRUE(l.allowed("10.0.0.2", t0)) << "other addresses are not affected";
  EXPECT_FALSE(l.allowed("10.0.0.1", t0 + 1s)) << "half a token back";
  EXPECT_TRUE(l.allowed("10.0.0.1", t0 + 2s)) << "one token back after 2 s";
  EXPECT_TRUE(l.on_failure("10.0.0.1", t0 + 2s));
  EXPECT_FALSE(l.allowed("10.0.0.1", t0 + 2s));
  EXPECT_TRUE(l.allowed("10.0.0.1", t0 + 1h)) << "refilled";
  EXPECT_FALSE(l.on_failure("10.0.0.1", t0 + 1h)) << "up to the burst, not beyond";
  EXPECT_FALSE(l.on_failure("10.0.0.1", t0 + 1h));
  EXPECT_TRUE(l.on_failure("10.0.0.1", t0 + 1h));
}

TEST(AuthFailureLimiter, TheTableIsBoundedAndEvictsTheLeastRecentlyFailing) {
  AuthFailureLimiter l({.burst = 1, .per_second = 0.001, .max_addresses = 3});
  const Time t{};
  for (int i = 0; i < 3; ++i) l.on_failure("a" + std::to_string(i), t);
  EXPECT_EQ(l.size(), 3u);
  l.on_failure("a0", t);  // a0 becomes the most recent; a1 is now the least recent
  l.on_failure("b", t);
  EXPECT_EQ(l.size(), 3u);
  EXPECT_EQ(l.evicted(), 1u);
  EXPECT_TRUE(l.allowed("a1", t)) << "evicted: starts again";
  EXPECT_FALSE(l.allowed("a0", t));
  EXPECT_FALSE(l.allowed("a2", t));
  EXPECT_FALSE(l.allowed("b", t));
  for (int i = 0; i < 10'000; ++i) l.on_failure("x" + std::to_string(i), t);
  EXPECT_EQ(l.size(), 3u);
}

}  // namespace
}  // namespace wtmesh::edge
