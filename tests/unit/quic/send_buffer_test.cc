#include "quic/send_buffer.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
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

TEST(SendBuffer, HoldsNoMemoryWhenNothingIsUnacked) {
  // Every open stream has one; an idle session's streams must cost nothing here (bench/idle.sh).
  SendBuffer b;
  EXPECT_EQ(b.memory(), 0u);
  auto d = pattern(3 * SendBuffer::kChunkSize + 10);
  ASSERT_EQ(b.append(d, false), d.size());
  EXPECT_GE(b.memory(), 4 * SendBuffer::kChunkSize);
  b.mark_sent(d.size(), false);
  b.ack(0, SendBuffer::kChunkSize + 1);  // the first chunk goes, the second stays
  EXPECT_GE(b.memory(), 3 * SendBuffer::kChunkSize);
  EXPECT_LT(b.memory(), 4 * SendBuffer::kChunkSize);
  b.ack(SendBuffer::kChunkSize + 1, d.size() - SendBuffer::kChunkSize - 1);
  EXPECT_TRUE(b.all_acked());
  EXPECT_EQ(b.memory(), 0u);
}

TEST(SendBuffer, UnsentMatchesAModelUnderRandomAppendsSendsAndAcks) {
  // unsent() locates the send cursor by arithmetic over the chunks; check it against a plain
  // byte-vector model through chunk boundaries, partial chunks and acks that empty the buffer.
  std::mt19937 rng(42);
  SendBuffer b(3 * SendBuffer::kChunkSize + 123);
  std::vector<uint8_t> model;  // every byte ever appended
  uint64_t sent = 0, acked = 0;
  uint8_t next = 0;
  for (int step = 0; step < 4000; ++step) {
    switch (rng() % 3) {
      case 0: {
        std::vector<uint8_t> d(rng() % 9000);
        for (auto& x : d) x = next++;
        const size_t n = b.append(d, false);
        model.insert(model.end(), d.begin(), d.begin() + static_cast<long>(n));
        break;
      }
      case 1: {
        const uint64_t n = rng() % (model.size() - sent + 1);
        b.mark_sent(n, false);
        sent += n;
        break;
      }
      case 2: {
        const uint64_t n = rng() % (sent - acked + 1);
        b.ack(acked, n);
        acked += n;
        break;
      }
    }
    const auto got = drain_unsent(b);
    const std::vector<uint8_t> want(model.begin() + static_cast<long>(sent), model.end());
    // The cap spans at most 5 chunks, so drain_unsent's 8 iovecs cover everything.
    ASSERT_EQ(got, want) << "step " << step;
    ASSERT_EQ(b.unacked_bytes(), model.size() - acked);
  }
}

}  // namespace
}  // namespace wtmesh::quic
