// QPACK wrapper tests: round trips, zero-capacity dynamic table, decoded-size cap.
#include "h3/qpack.h"

#include <gtest/gtest.h>

#include "h3/error_codes.h"

namespace wtmesh::h3 {
namespace {

using Bytes = std::vector<uint8_t>;

HeaderList chromium_connect() {
  return {{":method", "CONNECT"},
          {":scheme", "https"},
          {":authority", "localhost:4433"},
          {":path", "/wt?x=1"},
          {":protocol", "webtransport"},
          {"sec-webtransport-http3-draft02", "1"},
          {"origin", "https://localhost:8443"},
          {"user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0"}};
}

void expect_same(const HeaderList& a, const HeaderList& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].value, b[i].value);
  }
}

TEST(Qpack, RoundTripChromiumConnect) {
  QpackEncoder enc;
  QpackDecoder dec(16 * 1024);
  Bytes block;
  ASSERT_TRUE(enc.encode(0, chromium_connect(), block));
  ASSERT_GE(block.size(), 2u);
  EXPECT_EQ(block[0], 0x00);  // Required Insert Count 0: static table and literals only
  EXPECT_EQ(block[1], 0x00);
  DecodedHeaders d = dec.decode(0, block);
  ASSERT_EQ(d.status, DecodedHeaders::Status::kOk) << d.reason;
  expect_same(d.headers, chromium_connect());
  EXPECT_TRUE(dec.take_decoder_stream_bytes().empty());
}

TEST(Qpack, RoundTripResponseAndEmptyValues) {
  QpackEncoder enc;
  QpackDecoder dec(16 * 1024);
  const HeaderList h{{":status", "200"}, {"sec-webtransport-http3-draft", "draft02"}, {"x-empty", ""}};
  for (int round = 0; round < 3; ++round) {  // repeated encodes never start using a dynamic table
    Bytes block;
    ASSERT_TRUE(enc.encode(4 * round, h, block));
    DecodedHeaders d = dec.decode(4 * round, block);
    ASSERT_EQ(d.status, DecodedHeaders::Status::kOk);
    expect_same(d.headers, h);
  }
}

TEST(Qpack, SectionSizeIsCounted) {
  QpackEncoder enc;
  const HeaderList h{{"a", "bc"}, {"de", ""}};
  Bytes block;
  ASSERT_TRUE(enc.encode(0, h, block));
  QpackDecoder exact(1 + 2 + 32 + 2 + 0 + 32);
  EXPECT_EQ(exact.decode(0, block).status, DecodedHeaders::Status::kOk);
  QpackDecoder under(1 + 2 + 32 + 2 + 0 + 32 - 1);
  DecodedHeaders d = under.decode(0, block);
  EXPECT_EQ(d.status, DecodedHeaders::Status::kTooLarge);
  EXPECT_EQ(d.error, kH3ExcessiveLoad);
  EXPECT_TRUE(d.headers.empty());
}

TEST(Qpack, HugeHeaderRejected) {
  QpackEncoder enc;
  QpackDecoder dec(16 * 1024);
  Bytes block;
  ASSERT_TRUE(enc.encode(0, {{":status", "200"}, {"x-big", std::string(20000, 'v')}}, block));
  DecodedHeaders d = dec.decode(0, block);
  EXPECT_EQ(d.status, DecodedHeaders::Status::kTooLarge);
  EXPECT_FALSE(d.reason.empty());
}

TEST(Qpack, FieldOverNghttp3LimitIsTooLargeNotAnError) {
  QpackEncoder enc;
  QpackDecoder dec(1 << 20);
  Bytes block;
  ASSERT_TRUE(enc.encode(0, {{"x-big", std::string(100000, 'v')}}, block));
  DecodedHeaders d = dec.decode(0, block);
  EXPECT_EQ(d.status, DecodedHeaders::Status::kTooLarge);  // a 431, not a connection error
  EXPECT_EQ(d.error, kH3ExcessiveLoad);
}

TEST(Qpack, StaticTableExpansionIsCapped) {
  // 2000 one-byte references to static entry 31 ("accept-encoding: gzip, deflate, br"): a 2 KB
  // block that decodes to ~130 KB. The cap must trip although the encoded block is small.
  Bytes block{0x00, 0x00};
  block.insert(block.end(), 2000, 0xc0 | 31);
  QpackDecoder dec(16 * 1024);
  DecodedHeaders d = dec.decode(0, block);
  EXPECT_EQ(d.status, DecodedHeaders::Status::kTooLarge);
  EXPECT_GT(d.section_size, 16u * 1024);
  EXPECT_LT(d.section_size, 16u * 1024 + 100);  // stopped right after crossing the limit
}

TEST(Qpack, DynamicTableReferenceFails) {
  QpackDecoder dec(16 * 1024);
  const Bytes block{0x02, 0x00, 0x80};  // Required Insert Count > 0 with a zero-capacity table
  DecodedHeaders d = dec.decode(0, block);
  EXPECT_EQ(d.status, DecodedHeaders::Status::kError);
  EXPECT_EQ(d.error, kQpackDecompressionFailed);
}

TEST(Qpack, MalformedBlocks) {
  QpackDecoder dec(16 * 1024);
  EXPECT_EQ(dec.decode(0, Bytes{}).status, DecodedHeaders::Status::kError);
  EXPECT_EQ(dec.decode(0, Bytes{0x00}).status, DecodedHeaders::Status::kError);
  // Literal with literal name, name length 5 but only 2 bytes present.
  EXPECT_EQ(dec.decode(0, Bytes{0x00, 0x00, 0x25, 'a', 'b'}).status, DecodedHeaders::Status::kError);
  // Static index out of range (static table has 99 entries): 0xff 0x7f = index 63 + 127.
  EXPECT_EQ(dec.decode(0, Bytes{0x00, 0x00, 0xff, 0x7f}).status, DecodedHeaders::Status::kError);
}

TEST(Qpack, EncoderStreamCapacityZeroOkNonZeroFails) {
  QpackDecoder ok(16 * 1024);
  EXPECT_EQ(ok.read_encoder_stream(Bytes{0x20}), 0u);  // Set Dynamic Table Capacity 0
  QpackDecoder bad(16 * 1024);
  EXPECT_EQ(bad.read_encoder_stream(Bytes{0x3f, 0x45}), kQpackEncoderStreamError);  // capacity 100
}

TEST(Qpack, EncoderStreamInsertFails) {
  QpackDecoder dec(16 * 1024);
  // Insert With Literal Name "a" = "b": no capacity for it.
  EXPECT_EQ(dec.read_encoder_stream(Bytes{0x41, 'a', 0x01, 'b'}), kQpackEncoderStreamError);
}

TEST(Qpack, DecoderStreamGarbageFails) {
  QpackEncoder enc;
  // Section Acknowledgment for a stream with no outstanding section.
  EXPECT_EQ(enc.read_decoder_stream(Bytes{0x80}), kQpackDecoderStreamError);
  QpackEncoder enc2;
  EXPECT_EQ(enc2.read_decoder_stream(Bytes{}), 0u);
}

}  // namespace
}  // namespace wtmesh::h3
