// tcp-stream heads (kind 0x04) and PROXY v2 headers as byte vectors (docs/protocol.md §4.2).
#include "tunnel/tcp_stream.h"

#include <gtest/gtest.h>

#include <vector>

#include "tunnel/tcp_relay.h"

namespace wtmesh::tunnel {
namespace {

using Bytes = std::vector<uint8_t>;

TcpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  TcpAddress t;
  t.family = TcpAddress::Family::kIpv4;
  t.bytes[0] = a;
  t.bytes[1] = b;
  t.bytes[2] = c;
  t.bytes[3] = d;
  t.port = port;
  return t;
}

TcpAddress v6_loopback(uint16_t port) {
  TcpAddress t;
  t.family = TcpAddress::Family::kIpv6;
  t.bytes[15] = 1;
  t.port = port;
  return t;
}

TEST(TcpStream, HeadByteVectorIpv4) {
  const TcpStreamHead head{7, v4(192, 0, 2, 1, 50000), v4(127, 0, 0, 1, 20000)};
  const Bytes wire = encode_tcp_stream_head(head);
  // kind 0x04, length 16, id 7, flags 0, 4 + 192.0.2.1 + 50000, 4 + 127.0.0.1 + 20000
  EXPECT_EQ(wire,
            (Bytes{0x04, 0x10, 0x07, 0x00, 0x04, 192, 0, 2, 1, 0xc3, 0x50, 0x04, 127, 0, 0, 1, 0x4e, 0x20}));
  TcpStreamHead back;
  EXPECT_EQ(decode_tcp_head(std::span<const uint8_t>(wire).subspan(2), back), WireError::kNone);
  EXPECT_EQ(back, head);
}

TEST(TcpStream, ReaderInAnyFragmentationLeavesThePayload) {
  const TcpStreamHead head{0xfffffffe, v6_loopback(40000), v6_loopback(20001)};
  Bytes wire = encode_tcp_stream_head(head);
  ASSERT_EQ(wire[0], 0x04);
  wire.erase(wire.begin());  // the kind is StreamKindReader's
  wire.insert(wire.end(), {'S', 'S', 'H'});
  for (size_t step = 1; step <= wire.size(); ++step) {
    TcpHeadReader r;
    TcpStreamHead got;
    WireError e = WireError::kNeedMore;
    size_t off = 0, used = 0;
    while (e == WireError::kNeedMore && off < wire.size()) {
      const size_t n = std::min(step, wire.size() - off);
      e = r.feed(std::span<const uint8_t>(wire).subspan(off, n), used, got);
      off += used;
      EXPECT_LE(r.buffered_bytes(), kMaxTcpHeadLength + 8);
    }
    ASSERT_EQ(e, WireError::kNone) << "step " << step;
    EXPECT_EQ(got, head);
    EXPECT_EQ(Bytes(wire.begin() + static_cast<ptrdiff_t>(off), wire.end()), (Bytes{'S', 'S', 'H'}))
        << "step " << step;
  }
}

TEST(TcpStream, UnknownAddressesCarryNothing) {
  const TcpStreamHead head{1, TcpAddress{}, TcpAddress{}};
  EXPECT_EQ(encode_tcp_stream_head(head), (Bytes{0x04, 0x04, 0x01, 0x00, 0x00, 0x00}));
}

TEST(TcpStream, BadHeadsAreRefused) {
  TcpStreamHead h;
  auto decode = [&h](Bytes b) { return decode_tcp_head(b, h); };
  EXPECT_EQ(decode({0x01, 0x01, 0x00, 0x00}), WireError::kUnknownFlags);
  EXPECT_EQ(decode({0x01, 0x00, 0x05, 0x00}), WireError::kMalformed) << "family 5";
  EXPECT_EQ(decode({0x01, 0x00, 0x04, 1, 2, 3, 4, 0x00}), WireError::kMalformed) << "port cut short";
  EXPECT_EQ(decode({0x01, 0x00, 0x00, 0x00, 0x00}), WireError::kMalformed) << "a byte past the head";
  EXPECT_EQ(decode({0x01, 0x00, 0x00}), WireError::kMalformed) << "no server address";
  EXPECT_EQ(decode({0xc0, 0, 0, 1, 0, 0, 0, 0, 0x00, 0x00, 0x00}), WireError::kMalformed) << "id over 2^32-1";

  size_t used = 0;
  TcpHeadReader too_long;
  EXPECT_EQ(too_long.feed(Bytes{0x40, 0x81}, used, h), WireError::kTooLarge) << "129 > kMaxTcpHeadLength";
  TcpHeadReader empty;
  EXPECT_EQ(empty.feed(Bytes{0x00}, used, h), WireError::kMalformed);
  TcpHeadReader at_cap;
  EXPECT_EQ(at_cap.feed(Bytes{0x40, 0x80}, used, h), WireError::kNeedMore) << "128 is allowed";
  Bytes at_cap_head(128, 0x00);
  at_cap_head[1] = 0x01;  // read to the end, then judged: flags 1
  EXPECT_EQ(at_cap.feed(at_cap_head, used, h), WireError::kUnknownFlags);
  EXPECT_EQ(used, 128u);
}

TEST(TcpStream, ProxyV2Ipv4) {
  const Bytes sig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  Bytes want = sig;
  want.insert(want.end(), {0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 1, 127, 0, 0, 1, 0xc3, 0x50, 0x4e, 0x20});
  EXPECT_EQ(proxy_v2_header(v4(192, 0, 2, 1, 50000), v4(127, 0, 0, 1, 20000)), want);
}

TEST(TcpStream, ProxyV2Ipv6AndLocal) {
  const Bytes h6 = proxy_v2_header(v6_loopback(40000), v6_loopback(20001));
  ASSERT_EQ(h6.size(), 16u + 36u);
  EXPECT_EQ(Bytes(h6.begin() + 12, h6.begin() + 16), (Bytes{0x21, 0x21, 0x00, 0x24}));
  EXPECT_EQ(h6[16 + 15], 1);
  EXPECT_EQ(h6[16 + 31], 1);
  EXPECT_EQ(Bytes(h6.end() - 4, h6.end()), (Bytes{0x9c, 0x40, 0x4e, 0x21}));
  // Unknown, or families that differ: LOCAL with no addresses.
  const Bytes local = proxy_v2_header(TcpAddress{}, v4(127, 0, 0, 1, 1));
  EXPECT_EQ(Bytes(local.begin() + 12, local.end()), (Bytes{0x20, 0x00, 0x00, 0x00}));
  EXPECT_EQ(proxy_v2_header(v6_loopback(1), v4(127, 0, 0, 1, 1)), local);
}

TEST(TcpRelay, UpReadsAgainOnlyOnceTheStreamTookEverythingThenFin) {
  TcpRelay r(4);
  r.queue_up(Bytes{0x04, 0x00});  // e.g. a head
  EXPECT_FALSE(r.read_wanted()) << "the head goes first";
  EXPECT_EQ(r.up_pending().size(), 2u);
  r.up_taken(2);
  ASSERT_TRUE(r.read_wanted());
  auto buf = r.start_read();
  ASSERT_EQ(buf.size(), 4u) << "one read of at most read_chunk";
  EXPECT_FALSE(r.read_wanted()) << "one read at a time";
  buf[0] = 'a';
  buf[1] = 'b';
  buf[2] = 'c';
  r.read_done(3, false);
  EXPECT_EQ(Bytes(r.up_pending().begin(), r.up_pending().end()), (Bytes{'a', 'b', 'c'}));
  r.up_taken(1);  // the stream took only one byte
  EXPECT_FALSE(r.read_wanted());
  EXPECT_EQ(r.up_pending().size(), 2u);
  r.up_taken(2);
  EXPECT_TRUE(r.read_wanted());
  r.start_read();
  r.read_done(0, true);  // EOF
  EXPECT_TRUE(r.up_fin_due());
  EXPECT_FALSE(r.read_wanted());
  r.up_fin_sent();
  EXPECT_FALSE(r.up_fin_due());
  EXPECT_FALSE(r.finished()) << "the other direction is still open";
}

// Reads that fill the buffer double it, up to the ceiling; a short read keeps the size; the bytes of
// every read come out as they went in.
TEST(TcpRelay, ReadsGrowWhileTheyComeBackFull) {
  TcpRelay r(4, 16);
  std::vector<size_t> sizes;
  auto read = [&](size_t n) {
    auto buf = r.start_read();
    sizes.push_back(buf.size());
    for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(sizes.size() * 16 + i);
    r.read_done(n, false);
    const auto p = r.up_pending();
    ASSERT_EQ(p.size(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(p[i], static_cast<uint8_t>(sizes.size() * 16 + i));
    r.up_taken(n);
  };
  read(4);   // full: 4 -> 8
  read(8);   // full: 8 -> 16
  read(3);   // short: stays 16
  read(16);  // full at the ceiling: stays 16
  read(16);
  EXPECT_EQ(sizes, (std::vector<size_t>{4, 8, 16, 16, 16}));
  TcpRelay fixed(4);  // no ceiling given: read_chunk is the only size
  auto b = fixed.start_read();
  fixed.read_done(b.size(), false);
  fixed.up_taken(4);
  EXPECT_EQ(fixed.start_read().size(), 4u);
}

TEST(TcpRelay, DownReturnsCreditOnlyOnceWrittenAndShutsDownAfterTheLastByte) {
  TcpRelay r(4);
  r.down_data(Bytes{'P', 'P'}, false, 0);  // a PROXY header: no stream credit
  r.down_data(Bytes{'x', 'y', 'z'}, false, 3);
  EXPECT_EQ(r.held_credit(), 3u);
  auto out = r.start_write();
  EXPECT_EQ(Bytes(out.begin(), out.end()), (Bytes{'P', 'P', 'x', 'y', 'z'}));
  EXPECT_TRUE(r.start_write().empty()) << "one write at a time";
  r.down_data(Bytes{'!'}, true, 1);  // arrives while writing, with the FIN
  EXPECT_FALSE(r.shutdown_due()) << "bytes before the FIN are still pending";
  EXPECT_EQ(r.write_done(), 3u) << "the credit of the bytes written";
  EXPECT_EQ(r.held_credit(), 1u);
  out = r.start_write();
  EXPECT_EQ(Bytes(out.begin(), out.end()), (Bytes{'!'}));
  EXPECT_FALSE(r.shutdown_due());
  EXPECT_EQ(r.write_done(), 1u);
  EXPECT_TRUE(r.start_write().empty());
  EXPECT_TRUE(r.shutdown_due());
  r.shutdown_done();
  EXPECT_FALSE(r.shutdown_due());
  EXPECT_FALSE(r.finished());
  r.start_read();
  r.read_done(0, true);
  r.up_fin_sent();
  EXPECT_TRUE(r.finished());
  EXPECT_EQ(r.held_credit(), 0u);
}

}  // namespace
}  // namespace wtmesh::tunnel
