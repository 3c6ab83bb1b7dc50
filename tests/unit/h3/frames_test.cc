// Frame reader and serializer tests (byte vectors).
#include "h3/frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wtmesh::h3 {
namespace {

using Bytes = std::vector<uint8_t>;

// Everything a reader produced for some input, flattened for comparison.
struct Collected {
  std::vector<std::pair<uint64_t, Bytes>> frames;    // whole frames
  std::vector<std::pair<uint64_t, Bytes>> streamed;  // streamed frames, pieces joined
  size_t chunks = 0;
  std::optional<uint64_t> error;
};

void run(FrameReader& r, std::span<const uint8_t> in, Collected& out) {
  size_t pos = 0;
  while (true) {
    size_t used = 0;
    FrameEvent ev = r.next(in.subspan(pos), used);
    pos += used;
    ASSERT_LE(pos, in.size());
    if (ev.kind == FrameEvent::Kind::kNeedMore) {
      ASSERT_EQ(pos, in.size());
      return;
    }
    if (ev.kind == FrameEvent::Kind::kError) {
      out.error = ev.error;
      return;
    }
    if (ev.kind == FrameEvent::Kind::kFrame) {
      out.frames.emplace_back(ev.type, Bytes(ev.payload.begin(), ev.payload.end()));
    } else {
      ++out.chunks;
      if (ev.frame_begin) out.streamed.emplace_back(ev.type, Bytes{});
      ASSERT_FALSE(out.streamed.empty());
      out.streamed.back().second.insert(out.streamed.back().second.end(), ev.payload.begin(),
                                        ev.payload.end());
    }
  }
}

Bytes request_stream_bytes() {
  Bytes b;
  append_frame(b, kFrameHeaders, Bytes{1, 2, 3});
  append_frame(b, 0x21, Bytes{9, 9});            // reserved: skipped
  append_frame(b, 0x1f * 7 + 0x21, Bytes{});     // reserved, empty
  append_frame(b, 0x1234567, Bytes(300, 0x55));  // unknown, 2-byte length: skipped
  append_frame(b, kFrameData, Bytes{'a', 'b', 'c', 'd'});
  append_frame(b, kFrameData, Bytes{});
  append_frame(b, kFrameHeaders, Bytes{7});
  return b;
}

TEST(FrameReader, RequestStreamWholeInput) {
  FrameReader r(classify_request_frame, 100);
  Collected c;
  run(r, request_stream_bytes(), c);
  EXPECT_FALSE(c.error);
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(c.frames[0], (std::pair<uint64_t, Bytes>{kFrameHeaders, {1, 2, 3}}));
  EXPECT_EQ(c.frames[1], (std::pair<uint64_t, Bytes>{kFrameHeaders, {7}}));
  ASSERT_EQ(c.streamed.size(), 2u);
  EXPECT_EQ(c.streamed[0].second, (Bytes{'a', 'b', 'c', 'd'}));
  EXPECT_TRUE(c.streamed[1].second.empty());  // an empty DATA frame still shows up
  EXPECT_TRUE(r.at_frame_boundary());
}

TEST(FrameReader, RequestStreamOneByteAtATime) {
  FrameReader r(classify_request_frame, 100);
  Collected c;
  const Bytes in = request_stream_bytes();
  for (size_t i = 0; i < in.size(); ++i) {
    run(r, std::span<const uint8_t>(&in[i], 1), c);
    if (i + 1 < in.size()) {
      EXPECT_FALSE(c.error);
    }
  }
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(c.frames[0].second, (Bytes{1, 2, 3}));
  ASSERT_EQ(c.streamed.size(), 2u);
  EXPECT_EQ(c.streamed[0].second, (Bytes{'a', 'b', 'c', 'd'}));
  EXPECT_EQ(c.chunks, 5u);  // DATA payload streamed byte by byte, never buffered
  EXPECT_TRUE(r.at_frame_boundary());
}

TEST(FrameReader, NonMinimalVarintsInHeader) {
  FrameReader r(classify_request_frame, 100);
  Collected c;
  // HEADERS type as 8-byte varint, length 2 as 4-byte varint.
  const Bytes in{0xc0, 0, 0, 0, 0, 0, 0, 0x01, 0x80, 0, 0, 0x02, 0xaa, 0xbb};
  run(r, in, c);
  ASSERT_EQ(c.frames.size(), 1u);
  EXPECT_EQ(c.frames[0].second, (Bytes{0xaa, 0xbb}));
}

TEST(FrameReader, WholeFrameCapIsEnforcedBeforeBuffering) {
  FrameReader r(classify_request_frame, 16);
  Collected c;
  Bytes in;
  append_frame_header(in, kFrameHeaders, 17);  // payload never sent: the header alone is enough
  run(r, in, c);
  EXPECT_EQ(c.error, kH3ExcessiveLoad);
  EXPECT_TRUE(r.failed());
  // At the cap exactly is fine.
  FrameReader ok(classify_request_frame, 16);
  Collected c2;
  Bytes in2;
  append_frame(in2, kFrameHeaders, Bytes(16, 1));
  run(ok, in2, c2);
  EXPECT_FALSE(c2.error);
  EXPECT_EQ(c2.frames.size(), 1u);
}

TEST(FrameReader, HugeDataFrameIsStreamedNotBuffered) {
  FrameReader r(classify_request_frame, 16);
  Collected c;
  Bytes in;
  append_frame_header(in, kFrameData, uint64_t{1} << 40);
  in.resize(in.size() + 1000, 0x11);
  run(r, in, c);
  EXPECT_FALSE(c.error);
  ASSERT_EQ(c.streamed.size(), 1u);
  EXPECT_EQ(c.streamed[0].second.size(), 1000u);
  EXPECT_FALSE(r.at_frame_boundary());
}

TEST(FrameReader, HugeUnknownFrameIsSkipped) {
  FrameReader r(classify_control_frame, 16);
  Collected c;
  Bytes in;
  append_frame_header(in, 0x2f, uint64_t{1} << 40);
  in.resize(in.size() + 5000, 0x11);
  run(r, in, c);
  EXPECT_FALSE(c.error);
  EXPECT_TRUE(c.frames.empty());
}

TEST(FrameReader, RejectedTypes) {
  struct Case {
    FrameClassifier cls;
    uint64_t type;
    uint64_t error;
  };
  const Case cases[] = {
      {classify_control_frame, kFrameData, kH3FrameUnexpected},
      {classify_control_frame, kFrameHeaders, kH3FrameUnexpected},
      {classify_control_frame, kFramePushPromise, kH3FrameUnexpected},
      {classify_control_frame, 0x02, kH3FrameUnexpected},
      {classify_control_frame, 0x06, kH3FrameUnexpected},
      {classify_control_frame, 0x08, kH3FrameUnexpected},
      {classify_control_frame, 0x09, kH3FrameUnexpected},
      {classify_request_frame, kFrameSettings, kH3FrameUnexpected},
      {classify_request_frame, kFrameGoaway, kH3FrameUnexpected},
      {classify_request_frame, kFrameMaxPushId, kH3FrameUnexpected},
      {classify_request_frame, kFrameCancelPush, kH3FrameUnexpected},
      {classify_request_frame, kFramePushPromise, kH3FrameUnexpected},
      {classify_request_frame, 0x02, kH3FrameUnexpected},
      {classify_first_control_frame, kFrameGoaway, kH3MissingSettings},
      {classify_first_control_frame, 0x21, kH3MissingSettings},
  };
  for (const Case& tc : cases) {
    FrameReader r(tc.cls, 100);
    Collected c;
    Bytes in;
    append_frame(in, tc.type, Bytes{0});
    run(r, in, c);
    EXPECT_EQ(c.error, tc.error) << "type " << tc.type;
  }
}

TEST(FrameReader, ErrorIsSticky) {
  FrameReader r(classify_request_frame, 100);
  Collected c;
  Bytes in;
  append_frame(in, kFrameSettings, Bytes{});
  run(r, in, c);
  ASSERT_TRUE(c.error);
  Collected c2;
  run(r, Bytes{0, 1, 2}, c2);
  EXPECT_EQ(c2.error, kH3FrameUnexpected);
}

TEST(FrameReader, ClassifierSwitch) {
  FrameReader r(classify_first_control_frame, 100);
  Collected c;
  Bytes in;
  append_frame(in, kFrameSettings, Bytes{});
  run(r, in, c);
  ASSERT_EQ(c.frames.size(), 1u);
  r.set_classifier(classify_control_frame);
  Bytes in2;
  append_varint_frame(in2, kFrameGoaway, 8);
  run(r, in2, c);
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(parse_varint_payload(c.frames[1].second), 8u);
}

TEST(Frames, Serializers) {
  Bytes b;
  append_varint_frame(b, kFrameGoaway, 0x1234);
  EXPECT_EQ(b, (Bytes{0x07, 0x02, 0x52, 0x34}));
  b.clear();
  append_frame(b, kFrameData, Bytes{1, 2});
  EXPECT_EQ(b, (Bytes{0x00, 0x02, 1, 2}));
  b.clear();
  append_frame_header(b, kWtBidiSignal, 0);
  EXPECT_EQ(b, (Bytes{0x40, 0x41, 0x00}));
  EXPECT_EQ(frame_header_size(kFrameData, 63), 2u);
  EXPECT_EQ(frame_header_size(kFrameData, 64), 3u);
}

TEST(Frames, ParseVarintPayload) {
  EXPECT_EQ(parse_varint_payload(Bytes{0x04}), 4u);
  EXPECT_EQ(parse_varint_payload(Bytes{0x40, 0x04}), 4u);
  EXPECT_FALSE(parse_varint_payload(Bytes{}));
  EXPECT_FALSE(parse_varint_payload(Bytes{0x04, 0x00}));
  EXPECT_FALSE(parse_varint_payload(Bytes{0x40}));
}

TEST(Frames, Codepoints) {
  EXPECT_TRUE(is_reserved_codepoint(0x21));
  EXPECT_TRUE(is_reserved_codepoint(0x40));
  EXPECT_FALSE(is_reserved_codepoint(0x41));
  EXPECT_FALSE(is_reserved_codepoint(0x20));
  EXPECT_TRUE(is_http2_only_frame_type(0x06));
  EXPECT_FALSE(is_http2_only_frame_type(0x07));
}

}  // namespace
}  // namespace wtmesh::h3
