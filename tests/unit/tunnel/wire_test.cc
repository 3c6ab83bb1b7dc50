#include "tunnel/wire.h"

#include <gtest/gtest.h>

#include "common/varint.h"
#include "wire_bytes.h"

namespace wtmesh::tunnel {
namespace {

using test::bytes;

TEST(ControlWire, FrameByteVector) {
  EXPECT_EQ(encode_control_frame(ControlType::kPing, R"({"seq":1})"),
            bytes({0x05, 0x09, '{', '"', 's', 'e', 'q', '"', ':', '1', '}'}));
}

TEST(ControlWire, ReaderHandlesOneByteAtATimeAndSkipsUnknownTypes) {
  std::vector<uint8_t> wire;
  auto a = encode_control_frame(ControlType::kRegister, R"({"id":1})");
  wire.insert(wire.end(), a.begin(), a.end());
  // An unknown type (0x3f) with a 100-byte payload: skipped, never buffered.
  wire.push_back(0x3f);
  append_varint(wire, 100);
  wire.insert(wire.end(), 100, 'x');
  auto b = encode_control_frame(ControlType::kPong, "");
  wire.insert(wire.end(), b.begin(), b.end());
  ControlReader r;
  std::vector<ControlFrame> out;
  size_t max_buffered = 0;
  for (uint8_t byte : wire) {
    ASSERT_EQ(r.feed({&byte, 1}, out), WireError::kNone);
    max_buffered = std::max(max_buffered, r.buffered_bytes());
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].type, 0x01u);
  EXPECT_EQ(out[0].payload, R"({"id":1})");
  EXPECT_EQ(out[1].type, 0x06u);
  EXPECT_EQ(out[1].payload, "");
  EXPECT_LT(max_buffered, 20u) << "the unknown frame's payload must not be buffered";
}

TEST(ControlWire, OversizedFrameIsAnErrorBeforeBuffering) {
  std::vector<uint8_t> wire{0x01};
  append_varint(wire, kMaxControlPayload + 1);
  ControlReader r;
  std::vector<ControlFrame> out;
  EXPECT_EQ(r.feed(wire, out), WireError::kTooLarge);
  EXPECT_EQ(r.feed(bytes({0x05, 0x00}), out), WireError::kTooLarge) << "the reader stays failed";
  EXPECT_TRUE(out.empty());
}

TEST(ControlWire, MaxSizeFrameIsAccepted) {
  auto wire = encode_control_frame(ControlType::kRegister, std::string(kMaxControlPayload, ' '));
  ControlReader r;
  std::vector<ControlFrame> out;
  EXPECT_EQ(r.feed(wire, out), WireError::kNone);
  EXPECT_EQ(out.size(), 1u);
}

RequestHead sample_request() {
  RequestHead h;
  h.tunnel_id = 7;
  h.method = "POST";
  h.target = "/upload?x=1";
  h.authority = "app.localhost:4433";
  h.has_body = true;
  h.content_length = 5;
  h.headers = {{"content-type", "text/plain"}, {"x-forwarded-for", "127.0.0.1"}};
  return h;
}

TEST(RequestWire, ByteVector) {
  RequestHead h;
  h.tunnel_id = 1;
  h.method = "GET";
  h.target = "/";
  h.authority = "a";
  const auto wire = encode_request_open(h);
  // kind 1, head length 11: tunnel 1, "GET", "/", "a", flags 0, 0 headers.
  EXPECT_EQ(wire, bytes({0x01, 0x0b, 0x01, 0x03, 'G', 'E', 'T', 0x01, '/', 0x01, 'a', 0x00, 0x00}));
}

// The encoders allocate once, at the size these functions compute; a head whose fields cross the
// varint length boundaries (63/64, 16383/16384 bytes) must still come out whole and decode.
TEST(RequestWire, EncodedHeadsHaveTheComputedSizeAcrossVarintBoundaries) {
  for (const size_t len : {0, 1, 62, 63, 64, 65, 16382, 16383, 16384, 16385, 40000}) {
    RequestHead h = sample_request();
    h.tunnel_id = len > 1000 ? 1u << 20 : 63;
    h.target = "/" + std::string(len, 't');
    h.headers.emplace_back("x-long", std::string(len, 'v'));
    const auto wire = encode_request_open(h);
    EXPECT_EQ(wire.size(), request_open_size(h)) << len;
    EXPECT_EQ(wire.capacity(), wire.size()) << "one allocation of the exact size, " << len;
    HeadReader<RequestHead> reader;
    RequestHead back;
    if (wire.size() - 1 - varint_size(wire.size()) <= kMaxHeadLength) {
      ASSERT_EQ(reader.feed(wire, back), WireError::kNone) << len;
      EXPECT_EQ(back.tunnel_id, h.tunnel_id);
      EXPECT_EQ(back.target, h.target);
      EXPECT_EQ(back.headers, h.headers);
    } else {
      EXPECT_EQ(reader.feed(wire, back), WireError::kTooLarge) << len;
    }

    ResponseHead r;
    r.status = 200;
    r.has_body = true;
    r.content_length = len;
    r.headers = h.headers;
    const auto rw = encode_response_head(r);
    EXPECT_EQ(rw.size(), response_head_size(r)) << len;
    EXPECT_EQ(rw.capacity(), rw.size()) << len;
    std::vector<uint8_t> fs;
    append_field_section(fs, r.headers);
    EXPECT_EQ(fs.size(), field_section_size(r.headers)) << len;
  }
}

TEST(RequestWire, RoundTripInFragmentsWithBodyBytesAfterTheHead) {
  auto wire = encode_request_open(sample_request());
  const std::string body = "hello";
  wire.insert(wire.end(), body.begin(), body.end());
  HeadReader<RequestHead> reader;
  RequestHead got;
  WireError e = WireError::kNeedMore;
  size_t i = 0;
  for (; i < wire.size() && e == WireError::kNeedMore; ++i) e = reader.feed({&wire[i], 1}, got);
  ASSERT_EQ(e, WireError::kNone);
  // The rest arrives after the head was parsed.
  for (; i < wire.size(); ++i) ASSERT_EQ(reader.feed({&wire[i], 1}, got), WireError::kNone);
  const auto rest = reader.take_body();
  EXPECT_EQ(std::string(rest.begin(), rest.end()), body);
  const auto want = sample_request();
  EXPECT_EQ(got.tunnel_id, want.tunnel_id);
  EXPECT_EQ(got.method, want.method);
  EXPECT_EQ(got.target, want.target);
  EXPECT_EQ(got.authority, want.authority);
  EXPECT_EQ(got.has_body, true);
  EXPECT_EQ(got.content_length, std::optional<uint64_t>(5));
  EXPECT_EQ(got.headers, want.headers);
}

TEST(RequestWire, SameFeedHeadAndBody) {
  auto wire = encode_request_open(sample_request());
  wire.push_back('!');
  HeadReader<RequestHead> reader;
  RequestHead got;
  ASSERT_EQ(reader.feed(wire, got), WireError::kNone);
  EXPECT_EQ(reader.take_body(), bytes({'!'}));
}

TEST(RequestWire, WrongStreamKindIsMalformed) {
  auto wire = encode_request_open(sample_request());
  wire[0] = 0x02;
  HeadReader<RequestHead> reader;
  RequestHead got;
  EXPECT_EQ(reader.feed(wire, got), WireError::kMalformed);
}

TEST(RequestWire, HeadLengthOverCapIsRejectedUpFront) {
  std::vector<uint8_t> wire{0x01};
  append_varint(wire, kMaxHeadLength + 1);
  HeadReader<RequestHead> reader;
  RequestHead got;
  EXPECT_EQ(reader.feed(wire, got), WireError::kTooLarge);
}

TEST(RequestWire, TooManyHeadersIsRejected) {
  auto h = sample_request();
  h.headers.assign(kMaxHeaderCount + 1, {"a", "b"});
  HeadReader<RequestHead> reader;
  RequestHead got;
  EXPECT_EQ(reader.feed(encode_request_open(h), got), WireError::kTooLarge);
  h.headers.resize(kMaxHeaderCount);
  HeadReader<RequestHead> ok;
  EXPECT_EQ(ok.feed(encode_request_open(h), got), WireError::kNone);
}

TEST(RequestWire, UnknownFlagsAndTruncationAreErrors) {
  // Flag bit 3 (0x08) is undefined (bit 2 is `framed`, §4.1).
  std::vector<uint8_t> head = bytes({0x01, 0x03, 'G', 'E', 'T', 0x01, '/', 0x01, 'a', 0x08, 0x00});
  RequestHead got;
  EXPECT_EQ(decode_request_head(head, got), WireError::kUnknownFlags);
  head[9] = 0x00;
  head.pop_back();
  EXPECT_EQ(decode_request_head(head, got), WireError::kMalformed);
  head.push_back(0x00);
  head.push_back(0x00);  // trailing byte after the headers
  EXPECT_EQ(decode_request_head(head, got), WireError::kMalformed);
}

TEST(ResponseWire, RoundTripAndStatusRange) {
  ResponseHead h;
  h.status = 502;
  h.has_body = true;
  h.headers = {{"wtmesh-error", "upstream refused: connection refused"}};
  HeadReader<ResponseHead> reader;
  ResponseHead got;
  ASSERT_EQ(reader.feed(encode_response_head(h), got), WireError::kNone);
  EXPECT_EQ(got.status, 502);
  EXPECT_EQ(got.headers, h.headers);
  EXPECT_FALSE(got.content_length);
  EXPECT_EQ(decode_response_head(bytes({0x40, 0x63, 0x00, 0x00}), got), WireError::kMalformed)  // 99
      << "status below 100";
}

}  // namespace
}  // namespace wtmesh::tunnel
