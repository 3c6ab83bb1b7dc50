#include "quic/send_buffer.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace wtmesh::quic {
namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed = 0) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), seed);
  return v;
}

std::vector<uint8_t> drain_unsent(SendBuffer& b, size_t limit = SIZE_MAX) {
  std::vector<uint8_t> out;
  ngtcp2_vec vecs[8];
  const size_t n = b.unsent(vecs, 8);
  for (size_t i = 0; i < n && out.size() < limit; ++i) {
    const size_t take = std::min(vecs[i].len, limit - out.size());
    out.insert(out.end(), vecs[i].base, vecs[i].base + take);
  }
  return out;
}

TEST(SendBuffer, CapIsBackpressure) {
  SendBuffer b(100);
  auto data = pattern(150);
  EXPECT_EQ(b.append(data, true), 100u);
  EXPECT_FALSE(b.fin_queued()) << "FIN must not be recorded when bytes were left over";
  EXPECT_EQ(b.capacity_left(), 0u);
  EXPECT_EQ(b.append(data, false), 0u);
  b.mark_sent(60, false);
  EXPECT_EQ(b.capacity_left(), 0u) << "sent but unacked bytes still count";
  b.ack(0, 60);
  EXPECT_EQ(b.capacity_left(), 60u);
}

TEST(SendBuffer, UnsentSpansChunksAndSurvivesAcks) {
  SendBuffer b(1 << 20);
  auto data = pattern(SendBuffer::kChunkSize * 2 + 100, 7);
  ASSERT_EQ(b.append(data, true), data.size());
  EXPECT_EQ(drain_unsent(b), data);
  b.mark_sent(SendBuffer::kChunkSize + 10, false);
  auto rest = drain_unsent(b);
  EXPECT_EQ(rest, std::vector<uint8_t>(data.begin() + SendBuffer::kChunkSize + 10, data.end()));
  b.ack(0, SendBuffer::kChunkSize + 5);
  EXPECT_EQ(drain_unsent(b), rest) << "acks before the cursor leave unsent bytes intact";
  EXPECT_TRUE(b.fin_pending());
  b.mark_sent(rest.size(), true);
  EXPECT_TRUE(b.fin_sent());
  EXPECT_FALSE(b.has_unsent());
  b.ack(SendBuffer::kChunkSize + 5, data.size());
  EXPECT_TRUE(b.all_acked());
}

TEST(SendBuffer, PointersStayValidWhileAppending) {
  SendBuffer b(1 << 20);
  auto first = pattern(100);
  b.append(first, false);
  ngtcp2_vec v;
  ASSERT_EQ(b.unsent(&v, 1), 1u);
  const uint8_t* p = v.base;
  for (int i = 0; i < 100; ++i) b.append(pattern(1000, static_cast<uint8_t>(i)), false);
  EXPECT_EQ(std::vector<uint8_t>(p, p + 100), first);
}

TEST(SendBuffer, NothingAfterFin) {
  SendBuffer b;
  auto d = pattern(10);
  EXPECT_EQ(b.append(d, true), 10u);
  EXPECT_EQ(b.append(d, false), 0u);
}

TEST(SendBuffer, FullAckThenAppendStartsClean) {
  SendBuffer b(64);
  auto d = pattern(40);
  b.append(d, false);
  b.mark_sent(40, false);
  b.ack(0, 40);
  EXPECT_EQ(b.capacity_left(), 64u);
  auto e = pattern(30, 50);
  EXPECT_EQ(b.append(e, false), 30u);
  EXPECT_EQ(drain_unsent(b), e);
}

}  // namespace
}  // namespace wtmesh::quic
