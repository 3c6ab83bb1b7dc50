// Interim heads, the `framed` flag and framed bodies with trailer sections (docs/protocol.md §4.1).
#include "tunnel/framed_body.h"

#include <gtest/gtest.h>

#include <string>

#include "common/varint.h"

namespace wtmesh::tunnel {
namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}

std::string text(const std::vector<std::span<const uint8_t>>& pieces) {
  std::string out;
  for (auto p : pieces) out.append(reinterpret_cast<const char*>(p.data()), p.size());
  return out;
}

TEST(FramedBody, EncodesChunksAndEndByteVector) {
  std::vector<uint8_t> out;
  const std::string hi = "hi";
  append_body_chunk(out, {reinterpret_cast<const uint8_t*>(hi.data()), hi.size()});
  append_body_chunk(out, {});  // nothing for an empty chunk: 0 is the end marker
  ASSERT_TRUE(append_body_end(out, {{"grpc-status", "0"}}));
  EXPECT_EQ(out, bytes({0x02, 'h',  'i',  // chunk
                        0x00, 0x0f,       // end, trailer_length 15
                        0x01, 0x0b, 'g', 'r', 'p', 'c', '-', 's', 't', 'a', 't', 'u', 's', 0x01, '0'}));
  std::vector<uint8_t> empty;
  ASSERT_TRUE(append_body_end(empty, {}));
  EXPECT_EQ(empty, bytes({0x00, 0x01, 0x00}));
}

TEST(FramedBody, ReaderTakesAnyFragmentation) {
  std::vector<uint8_t> wire;
  std::string big(300, 'x');  // a two-byte length varint
  append_body_chunk(wire, {reinterpret_cast<const uint8_t*>(big.data()), big.size()});
  const std::string b = "end";
  append_body_chunk(wire, {reinterpret_cast<const uint8_t*>(b.data()), b.size()});
  ASSERT_TRUE(append_body_end(wire, {{"grpc-status", "3"}, {"grpc-message", "bad arg"}}));
  for (size_t step : {size_t{1}, size_t{2}, size_t{7}, wire.size()}) {
    FramedBodyReader r;
    std::string got;
    for (size_t off = 0; off < wire.size(); off += step) {
      std::vector<std::span<const uint8_t>> data;
      ASSERT_EQ(r.feed(std::span<const uint8_t>(wire).subspan(off, std::min(step, wire.size() - off)), data),
                WireError::kNone);
      got += text(data);
      EXPECT_LE(r.buffered_bytes(), kMaxTrailerLength);
    }
    EXPECT_TRUE(r.done());
    EXPECT_EQ(got, big + b);
    const auto t = r.take_trailers();
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[0], (std::pair<std::string, std::string>{"grpc-status", "3"}));
    EXPECT_EQ(t[1].second, "bad arg");
  }
}

TEST(FramedBody, NothingMayFollowTheTrailers) {
  FramedBodyReader r;
  std::vector<std::span<const uint8_t>> data;
  EXPECT_EQ(r.feed(bytes({0x00, 0x01, 0x00, 0x05}), data), WireError::kMalformed);
  EXPECT_EQ(r.feed(bytes({0x01}), data), WireError::kMalformed);  // stays failed
}

TEST(FramedBody, TrailerLimitsAreEnforced) {
  FramedBodyReader r;
  std::vector<uint8_t> wire = {0x00};
  append_varint(wire, kMaxTrailerLength + 1);
  std::vector<std::span<const uint8_t>> data;
  EXPECT_EQ(r.feed(wire, data), WireError::kTooLarge);
  // 257 fields: the count check of a head applies.
  FramedBodyReader r2;
  std::vector<uint8_t> section;
  append_varint(section, kMaxHeaderCount + 1);
  for (size_t i = 0; i <= kMaxHeaderCount; ++i) section.insert(section.end(), {0x01, 'a', 0x00});
  std::vector<uint8_t> w2 = {0x00};
  append_varint(w2, section.size());
  w2.insert(w2.end(), section.begin(), section.end());
  EXPECT_EQ(r2.feed(w2, data), WireError::kTooLarge);
  // The encoder refuses what the reader would refuse.
  HeaderPairs many(kMaxHeaderCount + 1, {"a", ""});
  std::vector<uint8_t> out;
  EXPECT_FALSE(append_body_end(out, many));
  EXPECT_FALSE(append_body_end(out, {{"big", std::string(kMaxTrailerLength, 'v')}}));
  EXPECT_TRUE(out.empty());
  // A zero-length section (not even a count) and a section whose count lies are malformed.
  FramedBodyReader r3;
  EXPECT_EQ(r3.feed(bytes({0x00, 0x00}), data), WireError::kMalformed);
  FramedBodyReader r4;
  EXPECT_EQ(r4.feed(bytes({0x00, 0x01, 0x02}), data), WireError::kMalformed);
}

TEST(InterimHead, ByteVectorAndRules) {
  ResponseHead h;
  h.status = 103;
  h.headers = {{"link", "</a.css>; rel=preload"}};
  const auto enc = encode_response_head(h);
  // head_length, status 103 (2-byte varint 0x40 0x67), flags 0, one field.
  ASSERT_GE(enc.size(), 5u);
  EXPECT_EQ(enc[1], 0x40);
  EXPECT_EQ(enc[2], 0x67);
  EXPECT_EQ(enc[3], 0x00);
  HeadReader<ResponseHead> reader;
  ResponseHead back;
  ASSERT_EQ(reader.feed(enc, back), WireError::kNone);
  EXPECT_EQ(back.status, 103);
  EXPECT_TRUE(is_interim(back.status));
  EXPECT_FALSE(is_interim(101));
  EXPECT_FALSE(is_interim(200));
  // An interim head may not announce a body.
  EXPECT_EQ(decode_response_head(bytes({0x40, 0x64, 0x01, 0x00}), back), WireError::kMalformed);
}

TEST(FramedFlag, RoundTripsAndNeedsABody) {
  ResponseHead h;
  h.status = 200;
  h.has_body = true;
  h.framed = true;
  h.headers = {{"content-type", "application/grpc"}};
  const auto enc = encode_response_head(h);
  HeadReader<ResponseHead> reader;
  ResponseHead back;
  ASSERT_EQ(reader.feed(enc, back), WireError::kNone);
  EXPECT_TRUE(back.framed);
  EXPECT_TRUE(back.has_body);
  // status 200 = 0x40 0xc8; flags 0x05 = body | framed.
  EXPECT_EQ(decode_response_head(bytes({0x40, 0xc8, 0x05, 0x00}), back), WireError::kNone);
  EXPECT_TRUE(back.framed);
  // framed without a body, and an unknown bit (8), are refused.
  EXPECT_EQ(decode_response_head(bytes({0x40, 0xc8, 0x04, 0x00}), back), WireError::kMalformed);
  EXPECT_EQ(decode_response_head(bytes({0x40, 0xc8, 0x09, 0x00}), back), WireError::kUnknownFlags);
  // Requests do not have the bit.
  RequestHead rq;
  EXPECT_EQ(decode_request_head(bytes({0x01, 0x03, 'G', 'E', 'T', 0x01, '/', 0x00, 0x05, 0x00}), rq),
            WireError::kUnknownFlags);
}

TEST(Features, ListMatching) {
  EXPECT_TRUE(has_feature("trailers", kFeatureTrailers));
  EXPECT_TRUE(has_feature("x, trailers ,y", kFeatureTrailers));
  EXPECT_FALSE(has_feature("trailers2", kFeatureTrailers));
  EXPECT_FALSE(has_feature("", kFeatureTrailers));
}

}  // namespace
}  // namespace wtmesh::tunnel
