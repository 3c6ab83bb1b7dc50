#include "tunnel/wt_relay_wire.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "tunnel/relay_pipe.h"
#include "wire_bytes.h"

namespace wtmesh::tunnel {
namespace {

using test::bytes;
void append(std::vector<uint8_t>& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }

WtSessionOpen sample_open() {
  WtSessionOpen o;
  o.relay_id = 1;
  o.request.tunnel_id = 7;
  o.request.method = "CONNECT";
  o.request.target = "/echo";
  o.request.authority = "a.localhost";
  o.request.has_body = true;
  o.request.headers = {{"origin", "x"}};
  return o;
}

std::vector<uint8_t> sample_wire() {
  // kind 0x02, relay id 1, head_length 38, then the §4 request head.
  std::vector<uint8_t> w = bytes({0x02, 0x01, 0x26, 0x07, 0x07});
  append(w, "CONNECT");
  w.push_back(0x05);
  append(w, "/echo");
  w.push_back(0x0b);
  append(w, "a.localhost");
  w.insert(w.end(), {0x01, 0x01, 0x06});  // flags: a body (capsules) follows; 1 header
  append(w, "origin");
  w.push_back(0x01);
  append(w, "x");
  return w;
}

TEST(WtRelayWire, SessionOpenByteVector) { EXPECT_EQ(encode_wt_session_open(sample_open()), sample_wire()); }

TEST(WtRelayWire, StreamOpenByteVectors) {
  EXPECT_EQ(encode_wt_stream_open({5, true}), bytes({0x03, 0x05, 0x01}));
  EXPECT_EQ(encode_wt_stream_open({1000, false}), bytes({0x03, 0x43, 0xe8, 0x00}));
  EXPECT_THROW(encode_wt_stream_open({0, false}), std::invalid_argument);
  EXPECT_THROW(encode_wt_stream_open({kMaxRelayId + 1, false}), std::invalid_argument);
  WtSessionOpen bad = sample_open();
  bad.relay_id = 0;
  EXPECT_THROW(encode_wt_session_open(bad), std::invalid_argument);
}

TEST(WtRelayWire, SessionOpenReaderOneByteAtATimeKeepsTheRest) {
  std::vector<uint8_t> w = sample_wire();
  w.erase(w.begin());  // the caller's StreamKindReader took the kind
  const std::vector<uint8_t> capsule = bytes({0x40, 0x17, 0x00});  // a GREASE capsule after the head
  w.insert(w.end(), capsule.begin(), capsule.end());
  WtSessionOpenReader r;
  WtSessionOpen got;
  WireError e = WireError::kNeedMore;
  size_t i = 0;
  for (; i < w.size() && e == WireError::kNeedMore; ++i)
    e = r.feed(std::span<const uint8_t>(w).subspan(i, 1), got);
  ASSERT_EQ(e, WireError::kNone);
  EXPECT_EQ(i, w.size() - capsule.size()) << "complete at the head's last byte";
  EXPECT_EQ(got.relay_id, 1u);
  EXPECT_EQ(got.request.tunnel_id, 7u);
  EXPECT_EQ(got.request.method, "CONNECT");
  EXPECT_EQ(got.request.target, "/echo");
  EXPECT_EQ(got.request.authority, "a.localhost");
  EXPECT_EQ(got.request.headers, (HeaderPairs{{"origin", "x"}}));
  EXPECT_EQ(r.feed(std::span<const uint8_t>(w).subspan(i), got), WireError::kNone);
  EXPECT_EQ(r.take_rest(), capsule) << "what follows the head is kept for the capsule parser";
}

TEST(WtRelayWire, SessionOpenErrors) {
  WtSessionOpen got;
  size_t used = 0;
  EXPECT_EQ(decode_wt_session_open(bytes({0x00, 0x00}), got, &used), WireError::kMalformed) << "relay id 0";
  // relay id 2^30 (8-byte varint): over kMaxRelayId.
  EXPECT_EQ(decode_wt_session_open(bytes({0xc0, 0, 0, 0, 0x40, 0, 0, 0, 0x00}), got, &used),
            WireError::kMalformed);
  // head_length 65537 > kMaxHeadLength: refused before anything is buffered.
  EXPECT_EQ(decode_wt_session_open(bytes({0x01, 0x80, 0x01, 0x00, 0x01}), got, &used), WireError::kTooLarge);
  EXPECT_EQ(decode_wt_session_open(bytes({0x01, 0x05, 0x07}), got, &used), WireError::kNeedMore);
  std::vector<uint8_t> w = sample_wire();
  EXPECT_EQ(decode_wt_session_open(std::span<const uint8_t>(w).subspan(1), got, &used), WireError::kNone);
  EXPECT_EQ(used, w.size() - 1);
}

TEST(WtRelayWire, StreamOpenReader) {
  WtStreamOpen got;
  size_t used = 0;
  const std::vector<uint8_t> w = bytes({0x43, 0xe8, 0x01, 'd', 'a', 't', 'a'});
  WtStreamOpenReader r;
  EXPECT_EQ(r.feed(std::span<const uint8_t>(w).first(1), got, &used), WireError::kNeedMore);
  EXPECT_EQ(used, 1u);
  EXPECT_EQ(r.feed(std::span<const uint8_t>(w).subspan(1), got, &used), WireError::kNone);
  EXPECT_EQ(used, 2u) << "stops after the flags: the rest is the stream's bytes";
  EXPECT_EQ(got.relay_id, 1000u);
  EXPECT_TRUE(got.uni);
  EXPECT_EQ(decode_wt_stream_open(bytes({0x05, 0x02}), got, &used), WireError::kUnknownFlags);
  EXPECT_EQ(decode_wt_stream_open(bytes({0x00, 0x00}), got, &used), WireError::kMalformed);
  EXPECT_EQ(decode_wt_stream_open(bytes({0xc0, 0, 0, 0, 0x40, 0, 0, 0, 0x00}), got, &used),
            WireError::kMalformed);
  EXPECT_EQ(decode_wt_stream_open(bytes({0x05}), got, &used), WireError::kNeedMore);
}

TEST(WtRelayWire, DatagramFlowIsTheRelayId) {
  const auto d = encode_datagram(1000, bytes({'h', 'i'}));
  EXPECT_EQ(d, bytes({0x43, 0xe8, 'h', 'i'}));
}

// --- RelayPipe: credit only for what the sink took --------------------------------------------------

struct Sink {
  size_t room = 0;
  std::vector<uint8_t> got;
  bool fin = false;
  size_t operator()(std::span<const uint8_t> b, bool f) {
    const size_t n = std::min(room, b.size());
    got.insert(got.end(), b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
    room -= n;
    if (f && n == b.size()) fin = true;
    return n;
  }
};

TEST(RelayPipe, PrefixFirstNeverCreditedThenSourceBytesAsTaken) {
  RelayPipe p(bytes({0x03, 0x05, 0x00}));
  Sink sink;
  size_t credited = 0;
  auto write = [&](std::span<const uint8_t> b, bool f) { return sink(b, f); };
  auto consume = [&](size_t n) { credited += n; };
  sink.room = 2;
  EXPECT_TRUE(p.push(bytes({'a', 'b', 'c', 'd'}), true, 16, write, consume));
  EXPECT_EQ(credited, 0u) << "only prefix bytes went out";
  EXPECT_EQ(p.held(), 5u);
  sink.room = 3;
  p.pump(write, consume);
  EXPECT_EQ(credited, 2u);
  EXPECT_FALSE(sink.fin);
  EXPECT_FALSE(p.finished());
  sink.room = 100;
  p.pump(write, consume);
  EXPECT_EQ(credited, 4u);
  EXPECT_TRUE(sink.fin);
  EXPECT_TRUE(p.finished());
  EXPECT_EQ(sink.got, bytes({0x03, 0x05, 0x00, 'a', 'b', 'c', 'd'}));
}

TEST(RelayPipe, CapIsHitByASourceThatIgnoresCredit) {
  RelayPipe p;
  Sink sink;  // no room at all
  size_t credited = 0;
  auto write = [&](std::span<const uint8_t> b, bool f) { return sink(b, f); };
  auto consume = [&](size_t n) { credited += n; };
  EXPECT_TRUE(p.push(std::vector<uint8_t>(8, 'x'), false, 8, write, consume));
  EXPECT_FALSE(p.push(bytes({'y'}), false, 8, write, consume)) << "9 bytes held over a cap of 8";
  EXPECT_EQ(p.abandon(), 9u) << "abandon hands back the source bytes to credit";
  EXPECT_TRUE(p.push(bytes({'z'}), true, 8, write, consume));
  EXPECT_EQ(credited, 1u) << "after abandon, bytes are credited and dropped";
}

}  // namespace
}  // namespace wtmesh::tunnel
