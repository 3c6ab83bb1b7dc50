#include "common/varint.h"

#include <gtest/gtest.h>

#include <array>

namespace wtmesh {
namespace {

std::vector<uint8_t> enc(uint64_t v) {
  std::vector<uint8_t> out;
  append_varint(out, v);
  return out;
}

TEST(Varint, Rfc9000Vectors) {
  // RFC 9000 §A.1 examples.
  EXPECT_EQ(enc(151288809941952652ULL),
            (std::vector<uint8_t>{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}));
  EXPECT_EQ(enc(494878333), (std::vector<uint8_t>{0x9d, 0x7f, 0x3e, 0x7d}));
  EXPECT_EQ(enc(15293), (std::vector<uint8_t>{0x7b, 0xbd}));
  EXPECT_EQ(enc(37), (std::vector<uint8_t>{0x25}));
  const std::array<uint8_t, 2> two_byte_37{0x40, 0x25};  // non-minimal, still valid
  auto r = read_varint(two_byte_37);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, 37u);
  EXPECT_EQ(r->length, 2u);
}

TEST(Varint, WebTransportCodepoints) {
  EXPECT_EQ(enc(0x41), (std::vector<uint8_t>{0x40, 0x41}));
  EXPECT_EQ(enc(0x54), (std::vector<uint8_t>{0x40, 0x54}));
}

TEST(Varint, Boundaries) {
  for (uint64_t v : std::array<uint64_t, 8>{0, 63, 64, 16383, 16384, 1073741823, 1073741824, kVarintMax}) {
    auto bytes = enc(v);
    EXPECT_EQ(bytes.size(), varint_size(v));
    auto r = read_varint(bytes);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->value, v);
    EXPECT_EQ(r->length, bytes.size());
  }
}

TEST(Varint, Truncated) {
  EXPECT_FALSE(read_varint({}));
  const std::array<uint8_t, 3> short4{0x80, 0x00, 0x01};
  EXPECT_FALSE(read_varint(short4));
}

}  // namespace
}  // namespace wtmesh
