#include "common/byte_ring.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>
#include <vector>

namespace wtmesh {
namespace {

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Reads every byte out of the ring, run by run, as a writer would.
std::string drain(ByteRing& r) {
  std::string out;
  while (!r.empty()) {
    auto f = r.front();
    out.append(reinterpret_cast<const char*>(f.data()), f.size());
    r.consume(f.size());
  }
  return out;
}

TEST(ByteRing, StartsEmptyWithoutMemory) {
  ByteRing r;
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.capacity(), 0u);
  EXPECT_TRUE(r.front().empty());
  r.consume(10);  // more than it holds: nothing happens
  EXPECT_EQ(r.size(), 0u);
}

TEST(ByteRing, AppendThenReadInOrder) {
  ByteRing r;
  r.append(bytes("hello "));
  r.append(bytes("world"));
  EXPECT_EQ(r.size(), 11u);
  EXPECT_EQ(drain(r), "hello world");
}

TEST(ByteRing, WrapsWithoutMovingBytesAndShowsTwoRuns) {
  ByteRing r;
  const std::string a(3000, 'a');
  r.append(bytes(a));
  const size_t cap = r.capacity();
  ASSERT_EQ(cap, 4096u);
  r.consume(2500);  // 500 left at [2500, 3000)
  const std::string b(2000, 'b');
  r.append(bytes(b));  // 1096 to the end, 904 wrapped to the start
  EXPECT_EQ(r.capacity(), cap) << "fits: no growth";
  auto f = r.front();
  EXPECT_EQ(f.size(), 500u + 1096u) << "first run stops at the end of the buffer";
  EXPECT_EQ(drain(r), std::string(500, 'a') + b);
}

TEST(ByteRing, GrowingKeepsOrderAcrossTheWrap) {
  ByteRing r;
  r.append(bytes(std::string(4000, 'x')));
  r.consume(3900);
  std::string tail;
  for (int i = 0; i < 100; ++i) tail += static_cast<char>('0' + i % 10);
  r.append(bytes(tail));                     // wraps
  r.append(bytes(std::string(10000, 'y')));  // needs 10200: grows and linearises
  EXPECT_GE(r.capacity(), 10200u);
  EXPECT_EQ(r.front().size(), r.size()) << "one run after growing";
  EXPECT_EQ(drain(r), std::string(100, 'x') + tail + std::string(10000, 'y'));
}

TEST(ByteRing, KeepsItsBufferWhileDrainingAndReleasesALargeOneWhenAsked) {
  ByteRing r(8192);
  r.append(bytes(std::string(20000, 'z')));
  const size_t big = r.capacity();
  EXPECT_GE(big, 20000u);
  r.release_if_empty();
  EXPECT_EQ(r.capacity(), big) << "not empty: kept";
  r.consume(20000);
  EXPECT_EQ(r.capacity(), big) << "drained: kept for the next refill";
  r.append(bytes(std::string(20000, 'z')));
  EXPECT_EQ(r.capacity(), big) << "refilled without growing";
  r.consume(20000);
  r.release_if_empty();
  EXPECT_EQ(r.capacity(), 0u) << "above keep_capacity and empty: given back";

  r.append(bytes(std::string(5000, 'z')));
  const size_t small = r.capacity();
  r.clear();
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.capacity(), small) << "within keep_capacity: kept";
  r.append(bytes(std::string(9000, 'z')));
  r.clear();
  EXPECT_EQ(r.capacity(), 0u) << "clear() releases a large buffer";
}

TEST(ByteRing, MatchesADequeUnderRandomTraffic) {
  std::mt19937 rng(12345);
  ByteRing r(1 << 16);
  std::deque<uint8_t> ref;
  uint8_t next = 0;
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 2 == 0) {
      std::vector<uint8_t> chunk(rng() % 3000);
      for (auto& c : chunk) c = next++;
      r.append(chunk);
      ref.insert(ref.end(), chunk.begin(), chunk.end());
    } else {
      auto f = r.front();
      ASSERT_LE(f.size(), ref.size());
      for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(f[i], ref[i]) << "step " << step;
      const size_t n = f.empty() ? 0 : rng() % (f.size() + 1);
      r.consume(n);
      ref.erase(ref.begin(), ref.begin() + static_cast<ptrdiff_t>(n));
    }
    ASSERT_EQ(r.size(), ref.size());
  }
}

}  // namespace
}  // namespace wtmesh
