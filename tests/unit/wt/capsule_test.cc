// Capsule codec: byte vectors, fragmentation, caps, skipping unknown/GREASE types, UTF-8 rules.
#include "wt/capsule.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/varint.h"
#include "wt/utf8.h"

namespace wtmesh::wt {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes header(uint64_t type, uint64_t length) {
  Bytes b;
  append_varint(b, type);
  append_varint(b, length);
  return b;
}

// Feeds `bytes` one byte at a time.
CapsuleError feed_bytewise(CapsuleParser& p, const Bytes& bytes, std::vector<Capsule>& out) {
  for (uint8_t b : bytes) {
    const CapsuleError e = p.feed(std::span<const uint8_t>(&b, 1), out);
    if (e != CapsuleError::kNone) return e;
  }
  return CapsuleError::kNone;
}

TEST(CapsuleSerialize, CloseSessionVector) {
  const Bytes wire = serialize_capsule(CloseSessionCapsule{0x01020304, "bye"});
  // 0x2843 as a 2-byte varint is 0x68 0x43; length 7; code; "bye".
  const Bytes expected = {0x68, 0x43, 0x07, 0x01, 0x02, 0x03, 0x04, 'b', 'y', 'e'};
  EXPECT_EQ(wire, expected);
}

TEST(CapsuleSerialize, DrainVector) {
  const Bytes expected = {0x80, 0x00, 0x78, 0xae, 0x00};  // 0x78ae needs the 4-byte form
  EXPECT_EQ(serialize_capsule(DrainSessionCapsule{}), expected);
}

TEST(CapsuleSerialize, FlowControlAndDatagramVectors) {
  EXPECT_EQ(serialize_capsule(MaxDataCapsule{0x3f}), (Bytes{0x99, 0x0b, 0x4d, 0x3d, 0x01, 0x3f}));
  EXPECT_EQ(serialize_capsule(MaxStreamsCapsule{false, 100}), (Bytes{0x99, 0x0b, 0x4d, 0x40, 0x02, 0x40, 0x64}));
  EXPECT_EQ(serialize_capsule(StreamsBlockedCapsule{true, 1}), (Bytes{0x99, 0x0b, 0x4d, 0x43, 0x01, 0x01}));
  EXPECT_EQ(serialize_capsule(DatagramCapsule{{1, 2}}), (Bytes{0x00, 0x02, 0x01, 0x02}));
}

TEST(CapsuleSerialize, CloseMessageTruncatedOnUtf8Boundary) {
  // 1023 ASCII bytes + a 3-byte character: the character does not fit and is dropped whole.
  std::string msg(1023, 'a');
  msg += "\xe2\x82\xac";
  const Bytes wire = serialize_capsule(CloseSessionCapsule{7, msg});
  CapsuleParser p;
  std::vector<Capsule> out;
  ASSERT_EQ(p.feed(wire, out), CapsuleError::kNone);
  ASSERT_EQ(out.size(), 1u);
  const auto& c = std::get<CloseSessionCapsule>(out[0]);
  EXPECT_EQ(c.code, 7u);
  EXPECT_EQ(c.message, std::string(1023, 'a'));
}

TEST(CapsuleSerialize, CloseMessageInvalidUtf8IsSanitized) {
  const Bytes wire = serialize_capsule(CloseSessionCapsule{1, std::string("ok\xff\xc0!")});
  CapsuleParser p;
  std::vector<Capsule> out;
  ASSERT_EQ(p.feed(wire, out), CapsuleError::kNone);
  EXPECT_EQ(std::get<CloseSessionCapsule>(out.at(0)).message, "ok?" "?!");
}

TEST(CapsuleParser, RoundTripEveryTypeBytewise) {
  const std::vector<Capsule> in = {
      DatagramCapsule{{9, 8, 7}},        CloseSessionCapsule{0xffffffff, "h\xc3\xa9llo"},
      DrainSessionCapsule{},             MaxDataCapsule{kVarintMax},
      MaxStreamsCapsule{true, 1u << 20}, MaxStreamsCapsule{false, 0},
      DataBlockedCapsule{77},            StreamsBlockedCapsule{false, 3},
      Http2OnlyCapsule{kCapsuleMaxStreamData, {0x04, 0x40, 0x10}},
  };
  Bytes wire;
  for (const auto& c : in) serialize_capsule(c, wire);
  CapsuleParser p;
  std::vector<Capsule> out;
  ASSERT_EQ(feed_bytewise(p, wire, out), CapsuleError::kNone);
  EXPECT_EQ(out, in);
  EXPECT_TRUE(p.at_boundary());
  EXPECT_EQ(p.finish(), CapsuleError::kNone);
}

TEST(CapsuleParser, UnknownAndGreaseSkippedWithoutBuffering) {
  EXPECT_TRUE(is_grease_capsule_type(0x17));
  EXPECT_TRUE(is_grease_capsule_type(0x29 * 1000 + 0x17));
  EXPECT_FALSE(is_grease_capsule_type(kCapsuleCloseSession));
  // A GREASE capsule claiming 1 GiB, an unknown type with 300 bytes, PADDING, then DRAIN.
  Bytes wire = header(0x29 * 5 + 0x17, 1u << 30);
  CapsuleParser p;
  std::vector<Capsule> out;
  ASSERT_EQ(feed_bytewise(p, wire, out), CapsuleError::kNone);
  // Stream 1 MiB of the GREASE value in chunks; nothing is buffered.
  const Bytes chunk(64 * 1024, 0xaa);
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(p.feed(chunk, out), CapsuleError::kNone);
    EXPECT_LE(p.buffered_bytes(), 8u);
  }
  EXPECT_EQ(p.skipped_bytes(), 16u * 64 * 1024);
  EXPECT_TRUE(out.empty());

  CapsuleParser q;
  wire = header(0x1234567, 300);
  wire.resize(wire.size() + 300, 0x55);
  const Bytes pad = header(kCapsulePadding, 5);
  wire.insert(wire.end(), pad.begin(), pad.end());
  wire.resize(wire.size() + 5, 0);
  serialize_capsule(DrainSessionCapsule{}, wire);
  ASSERT_EQ(feed_bytewise(q, wire, out), CapsuleError::kNone);
  EXPECT_EQ(q.skipped_bytes(), 305u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<DrainSessionCapsule>(out[0]));
}

TEST(CapsuleParser, CloseMessageOf1024Accepted1025Rejected) {
  {
    Bytes wire = serialize_capsule(CloseSessionCapsule{1, std::string(1024, 'x')});
    CapsuleParser p;
    std::vector<Capsule> out;
    ASSERT_EQ(p.feed(wire, out), CapsuleError::kNone);
    EXPECT_EQ(std::get<CloseSessionCapsule>(out.at(0)).message.size(), 1024u);
  }
  // 1025-byte message: rejected from the header alone, before any value byte is buffered.
  Bytes wire = header(kCapsuleCloseSession, 4 + 1025);
  CapsuleParser p;
  std::vector<Capsule> out;
  EXPECT_EQ(p.feed(wire, out), CapsuleError::kMessageTooLong);
  EXPECT_EQ(p.buffered_bytes(), 0u);
  // Failed parsers stay failed.
  EXPECT_EQ(p.feed(serialize_capsule(DrainSessionCapsule{}), out), CapsuleError::kMessageTooLong);
  EXPECT_TRUE(out.empty());
}

TEST(CapsuleParser, InvalidUtf8CloseMessageRejected) {
  for (const std::string bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "abc\xe2\x82"}) {
    Bytes wire = header(kCapsuleCloseSession, 4 + bad.size());
    wire.insert(wire.end(), {0, 0, 0, 0});
    wire.insert(wire.end(), bad.begin(), bad.end());
    CapsuleParser p;
    std::vector<Capsule> out;
    EXPECT_EQ(p.feed(wire, out), CapsuleError::kInvalidUtf8) << bad.size();
  }
}

TEST(CapsuleParser, OversizedAndMalformedFlowControlRejected) {
  std::vector<Capsule> out;
  {
    CapsuleParser p;  // 9 bytes can never be a single varint
    EXPECT_EQ(p.feed(header(kCapsuleMaxData, 9), out), CapsuleError::kTooLarge);
  }
  {
    CapsuleParser p;  // one varint plus a trailing byte
    Bytes wire = header(kCapsuleMaxStreamsBidi, 2);
    wire.insert(wire.end(), {0x05, 0x00});
    EXPECT_EQ(p.feed(wire, out), CapsuleError::kMalformed);
  }
  {
    CapsuleParser p;  // varint longer than the value
    Bytes wire = header(kCapsuleDataBlocked, 1);
    wire.push_back(0x40);
    EXPECT_EQ(p.feed(wire, out), CapsuleError::kMalformed);
  }
  {
    CapsuleParser p;  // empty flow-control value
    EXPECT_EQ(p.feed(header(kCapsuleStreamsBlockedUni, 0), out), CapsuleError::kMalformed);
  }
  {
    CapsuleParser p;  // DRAIN must be empty
    EXPECT_EQ(p.feed(header(kCapsuleDrainSession, 1), out), CapsuleError::kMalformed);
  }
  {
    CapsuleParser p;  // close shorter than its error code
    EXPECT_EQ(p.feed(header(kCapsuleCloseSession, 3), out), CapsuleError::kMalformed);
  }
  EXPECT_TRUE(out.empty());
}

TEST(CapsuleParser, DatagramAndHttp2OnlyCaps) {
  CapsuleLimits limits;
  limits.max_datagram = 100;
  limits.max_http2_only = 50;
  std::vector<Capsule> out;
  {
    CapsuleParser p(limits);
    Bytes wire = serialize_capsule(DatagramCapsule{Bytes(100, 1)});
    EXPECT_EQ(p.feed(wire, out), CapsuleError::kNone);
    EXPECT_EQ(p.feed(header(kCapsuleDatagram, 101), out), CapsuleError::kTooLarge);
  }
  {
    CapsuleParser p(limits);
    EXPECT_EQ(p.feed(header(kCapsuleStreamNoFin, 51), out), CapsuleError::kTooLarge);
  }
  {
    CapsuleParser p;  // default: a 2^62-1 datagram length is rejected, not allocated
    EXPECT_EQ(p.feed(header(kCapsuleDatagram, kVarintMax), out), CapsuleError::kTooLarge);
  }
  EXPECT_EQ(out.size(), 1u);
}

TEST(CapsuleParser, TruncatedAtFinIsAnError) {
  CapsuleParser p;
  std::vector<Capsule> out;
  Bytes wire = serialize_capsule(CloseSessionCapsule{5, "abc"});
  wire.pop_back();
  ASSERT_EQ(p.feed(wire, out), CapsuleError::kNone);
  EXPECT_FALSE(p.at_boundary());
  EXPECT_EQ(p.finish(), CapsuleError::kTruncated);

  CapsuleParser q;  // inside a varint header
  const Bytes half = {0x80, 0x00};
  ASSERT_EQ(q.feed(half, out), CapsuleError::kNone);
  EXPECT_EQ(q.finish(), CapsuleError::kTruncated);
  EXPECT_STRNE(to_string(CapsuleError::kTruncated), "");
}

TEST(Utf8, PrefixAndSanitize) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xf0\x9f\x98"));
  EXPECT_EQ(utf8_prefix_length("ab\xc3\xa9", 3), 2u);
  EXPECT_EQ(utf8_prefix_length("ab\xc3\xa9", 4), 4u);
  EXPECT_EQ(sanitize_utf8("a\xc3\xa9\xff", 3), "a\xc3\xa9");
  EXPECT_EQ(sanitize_utf8("a\xc3\xa9\xff", 4), "a\xc3\xa9?");
  EXPECT_EQ(sanitize_utf8("\xe2\x82\xac", 2), "");
}

}  // namespace
}  // namespace wtmesh::wt
