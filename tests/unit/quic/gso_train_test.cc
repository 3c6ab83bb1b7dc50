// GsoTrain flush rules and the GRO/segment helpers, without a socket.
#include "quic/gso_train.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "quic/udp_io.h"

namespace wtmesh::quic {
namespace {

// A path to 127.0.0.1:<port> from 127.0.0.1:4433.
struct TestPath {
  sockaddr_in local{}, remote{};
  ngtcp2_path path{};
  explicit TestPath(uint16_t port) {
    local.sin_family = remote.sin_family = AF_INET;
    local.sin_addr.s_addr = remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    local.sin_port = htons(4433);
    remote.sin_port = htons(port);
    path.local = {reinterpret_cast<sockaddr*>(&local), sizeof(local)};
    path.remote = {reinterpret_cast<sockaddr*>(&remote), sizeof(remote)};
  }
};

// Writes a packet of `len` bytes filled with `fill` at next(), as ngtcp2 would, and adds it.
GsoTrain::Added put(GsoTrain& t, const ngtcp2_path& path, size_t len, uint8_t fill, uint32_t ecn = 0) {
  auto buf = t.next();
  EXPECT_GE(buf.size(), len);
  std::memset(buf.data(), fill, len);
  return t.add(path, ecn, len);
}

TEST(GsoTrain, EqualPacketsFillUpToTheByteCap) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(64 * 1024, 1452, 1452);
  size_t n = 0;
  GsoTrain::Added r = GsoTrain::Added::kOpen;
  while (r == GsoTrain::Added::kOpen) {
    r = put(t, p.path, 1452, static_cast<uint8_t>(n));
    ++n;
  }
  EXPECT_EQ(r, GsoTrain::Added::kClosed);
  EXPECT_EQ(n, GsoTrain::kMaxBytes / 1452);  // 45: the 46th would pass 65507 bytes
  EXPECT_EQ(t.segments(), n);
  EXPECT_EQ(t.segment_size(), 1452u);
  EXPECT_EQ(t.data().size(), n * 1452);
  EXPECT_LE(t.data().size(), GsoTrain::kMaxBytes);
  EXPECT_TRUE(t.next().empty()) << "a closed train takes nothing more";
  EXPECT_EQ(t.data()[1452 * 3], 3) << "packets are laid out back to back";
}

TEST(GsoTrain, SegmentCapCloses) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 800, 800);  // 64 x 800 = 51200 bytes: the segment cap comes first
  size_t n = 0;
  while (put(t, p.path, 800, 1) == GsoTrain::Added::kOpen) ++n;
  EXPECT_EQ(n + 1, GsoTrain::kMaxSegments);
  EXPECT_EQ(t.segments(), GsoTrain::kMaxSegments);
  EXPECT_TRUE(t.closed());
}

TEST(GsoTrain, SendQuantumLimitsTheTrain) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(3000, 1452, 1452);
  EXPECT_EQ(put(t, p.path, 1452, 1), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 1452, 2), GsoTrain::Added::kClosed) << "96 bytes left: no room for a packet";
  // A quantum below one packet still lets one packet through.
  t.begin(100, 1452, 1452);
  EXPECT_EQ(t.next().size(), 1452u);
  EXPECT_EQ(put(t, p.path, 1452, 1), GsoTrain::Added::kClosed);
}

TEST(GsoTrain, ShorterPacketEndsTheTrainAndIsIncluded) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 1452, 1452);
  EXPECT_EQ(put(t, p.path, 1452, 1), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 1452, 2), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 300, 3), GsoTrain::Added::kClosed);
  EXPECT_EQ(t.segments(), 3u);
  EXPECT_EQ(t.segment_size(), 1452u);
  EXPECT_EQ(t.data().size(), 2 * 1452 + 300u);
  EXPECT_FALSE(t.holding());
}

TEST(GsoTrain, LongerPacketSplitsAndCarriesOver) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 1452, 1452);
  EXPECT_EQ(put(t, p.path, 60, 0xaa), GsoTrain::Added::kOpen);  // e.g. an ACK-only packet first
  EXPECT_EQ(put(t, p.path, 1452, 0xbb), GsoTrain::Added::kSplit);
  EXPECT_TRUE(t.holding());
  EXPECT_EQ(t.data().size(), 60u) << "the held-back packet is not part of the train being sent";
  EXPECT_EQ(t.segments(), 1u);
  EXPECT_TRUE(t.next().empty());
  EXPECT_EQ(t.carry_over(), GsoTrain::Added::kOpen);
  EXPECT_FALSE(t.holding());
  EXPECT_EQ(t.segments(), 1u);
  EXPECT_EQ(t.segment_size(), 1452u);
  ASSERT_EQ(t.data().size(), 1452u);
  EXPECT_EQ(t.data()[0], 0xbb);
  EXPECT_EQ(t.data()[1451], 0xbb);
  EXPECT_EQ(put(t, p.path, 1452, 0xcc), GsoTrain::Added::kOpen);
}

TEST(GsoTrain, PathChangeSplits) {
  TestPath a(1000), b(2000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 1452, 1452);
  EXPECT_EQ(put(t, a.path, 1452, 1), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, b.path, 1452, 2), GsoTrain::Added::kSplit);
  EXPECT_TRUE(ngtcp2_path_eq(&t.path(), &a.path));
  t.carry_over();
  EXPECT_TRUE(ngtcp2_path_eq(&t.path(), &b.path)) << "the carried packet keeps its own destination";
  EXPECT_EQ(t.data()[0], 2);
}

TEST(GsoTrain, EcnChangeSplits) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 1452, 1452);
  EXPECT_EQ(put(t, p.path, 1452, 1, NGTCP2_ECN_ECT_0), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 1452, 2, NGTCP2_ECN_NOT_ECT), GsoTrain::Added::kSplit);
  EXPECT_EQ(t.ecn(), static_cast<uint32_t>(NGTCP2_ECN_ECT_0));
  t.carry_over();
  EXPECT_EQ(t.ecn(), static_cast<uint32_t>(NGTCP2_ECN_NOT_ECT));
}

TEST(GsoTrain, ProbeTravelsAlone) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 1452, 16384);
  // An empty train offers room for a probe.
  EXPECT_EQ(t.next().size(), 16384u);
  EXPECT_EQ(put(t, p.path, 16384, 9), GsoTrain::Added::kClosed) << "a probe is never followed";
  EXPECT_EQ(t.segments(), 1u);

  // A probe written mid-train splits off and then closes its own train.
  t.begin(GsoTrain::kMaxBytes, 1452, 16384);
  EXPECT_EQ(put(t, p.path, 1452, 1), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 16384, 2), GsoTrain::Added::kSplit);
  EXPECT_EQ(t.data().size(), 1452u);
  EXPECT_EQ(t.carry_over(), GsoTrain::Added::kClosed);
  EXPECT_EQ(t.data().size(), 16384u);
}

TEST(GsoTrain, OffersOnlyRegularSizeWhenAProbeNoLongerFits) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 1452, 16384);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(put(t, p.path, 1452, 1), GsoTrain::Added::kOpen);
  // 58080 bytes used, 7427 left: not enough for a 16384-byte probe.
  EXPECT_EQ(t.next().size(), 1452u);
}

TEST(GsoTrain, LargeDatagramsMakeShortTrains) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 16384, 16384);
  EXPECT_EQ(put(t, p.path, 16384, 1), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 16384, 2), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 16384, 3), GsoTrain::Added::kClosed) << "16355 bytes left: a 4th would pass 65507";
  EXPECT_EQ(t.data().size(), 3 * 16384u);
}

TEST(GsoTrain, CapacityBelowTheMaximumIsRespected) {
  TestPath p(1000);
  GsoTrain t(4000);
  EXPECT_EQ(t.capacity(), 4000u);
  t.begin(64 * 1024, 1452, 1452);
  EXPECT_EQ(put(t, p.path, 1452, 1), GsoTrain::Added::kOpen);
  EXPECT_EQ(put(t, p.path, 1452, 1), GsoTrain::Added::kClosed);
  EXPECT_TRUE(t.next().empty());
}

TEST(GsoTrain, ClearAndBeginForgetEverything) {
  TestPath p(1000);
  GsoTrain t;
  t.begin(GsoTrain::kMaxBytes, 1452, 1452);
  put(t, p.path, 100, 1);
  put(t, p.path, 1452, 1);  // split
  ASSERT_TRUE(t.holding());
  t.clear();
  EXPECT_TRUE(t.empty());
  EXPECT_FALSE(t.holding());
  EXPECT_FALSE(t.closed());
  EXPECT_EQ(t.data().size(), 0u);
  EXPECT_EQ(t.add(p.path, 0, 0), GsoTrain::Added::kOpen) << "an empty write adds nothing";
  EXPECT_TRUE(t.empty());
}

TEST(ForEachSegment, SplitsIntoSegmentsWithAShorterLast) {
  std::vector<uint8_t> data(10);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
  std::vector<std::vector<uint8_t>> out;
  auto collect = [&](std::span<const uint8_t> s) { out.emplace_back(s.begin(), s.end()); };
  for_each_segment(data, 4, collect);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], (std::vector<uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(out[2], (std::vector<uint8_t>{8, 9}));
  out.clear();
  for_each_segment(data, 5, collect);
  EXPECT_EQ(out.size(), 2u) << "an exact multiple has no short tail";
  out.clear();
  for_each_segment(data, 0, collect);
  EXPECT_EQ(out.size(), 1u) << "no segment size: one datagram";
  out.clear();
  for_each_segment(data, 64, collect);
  EXPECT_EQ(out.size(), 1u);
  out.clear();
  for_each_segment(std::span<const uint8_t>(), 4, collect);
  EXPECT_TRUE(out.empty());
}

TEST(GroCmsg, SegmentSizeIsReadFromTheControlData) {
  union {
    cmsghdr align;
    uint8_t bytes[CMSG_SPACE(sizeof(int)) * 2];
  } ctrl{};
  msghdr msg{};
  EXPECT_EQ(gro_segment_size(msg), 0u) << "no control data";
  msg.msg_control = ctrl.bytes;
  msg.msg_controllen = sizeof(ctrl.bytes);
  // First an unrelated cmsg, then UDP_GRO.
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = IPPROTO_IP;
  c->cmsg_type = IP_TOS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  c = CMSG_NXTHDR(&msg, c);
  ASSERT_NE(c, nullptr);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_GRO;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  const int seg = 1452;
  std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
  EXPECT_EQ(gro_segment_size(msg), 1452u);
  // Only the unrelated one.
  msg.msg_controllen = CMSG_SPACE(sizeof(int));
  EXPECT_EQ(gro_segment_size(msg), 0u);
}

}  // namespace
}  // namespace wtmesh::quic
