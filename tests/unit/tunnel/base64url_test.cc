// Tests for the strict base64url codec (tunnel/base64url.h).
#include "tunnel/base64url.h"

#include <gtest/gtest.h>

#include <string>

namespace wtmesh::tunnel {
namespace {

TEST(Base64Url, Rfc4648Vectors) {
  // RFC 4648 §10 vectors, minus the padding.
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, enc] : vectors) {
    EXPECT_EQ(base64url_encode(plain), enc);
    auto dec = base64url_decode(enc, 100);
    ASSERT_TRUE(dec) << enc;
    EXPECT_EQ(*dec, plain);
  }
}

TEST(Base64Url, UsesUrlAlphabet) {
  std::string bytes = "\xfb\xff\xbf";
  EXPECT_EQ(base64url_encode(bytes), "-_-_");
  EXPECT_EQ(base64url_decode("-_-_", 3), bytes);
  EXPECT_FALSE(base64url_decode("+/+/", 3));  // standard alphabet is not base64url
}

TEST(Base64Url, AllByteValuesRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); n += 37) {
    std::string part = all.substr(0, n);
    EXPECT_EQ(base64url_decode(base64url_encode(part), 1000), part);
  }
}

TEST(Base64Url, RejectsPaddingWhitespaceAndInvalidCharacters) {
  EXPECT_FALSE(base64url_decode("Zg==", 10));
  EXPECT_FALSE(base64url_decode("Zm8=", 10));
  EXPECT_FALSE(base64url_decode("Zm9v\n", 10));
  EXPECT_FALSE(base64url_decode(" Zm9v", 10));
  EXPECT_FALSE(base64url_decode("Zm.v", 10));
  EXPECT_FALSE(base64url_decode(std::string("Zm\0v", 4), 10));
  EXPECT_FALSE(base64url_decode("Zm\xc3\xa9v", 10));
}

TEST(Base64Url, RejectsImpossibleLength) {
  EXPECT_FALSE(base64url_decode("Z", 10));
  EXPECT_FALSE(base64url_decode("Zm9vY", 10));
}

TEST(Base64Url, RejectsNonCanonicalTrailingBits) {
  // "f" is Zg; Zh..Zv decode to the same byte with non-zero unused bits.
  EXPECT_TRUE(base64url_decode("Zg", 10));
  EXPECT_FALSE(base64url_decode("Zh", 10));
  EXPECT_FALSE(base64url_decode("Zv", 10));
  // "fo" is Zm8; Zm9 has a non-zero unused bit pair.
  EXPECT_TRUE(base64url_decode("Zm8", 10));
  EXPECT_FALSE(base64url_decode("Zm9", 10));
}

TEST(Base64Url, OutputCapIsCheckedUpFront) {
  EXPECT_EQ(base64url_decode("Zm9vYmFy", 6), "foobar");
  EXPECT_FALSE(base64url_decode("Zm9vYmFy", 5));
  EXPECT_FALSE(base64url_decode(std::string(1 << 20, 'A'), 1024));
  EXPECT_EQ(base64url_decoded_size(0), 0u);
  EXPECT_EQ(base64url_decoded_size(2), 1u);
  EXPECT_EQ(base64url_decoded_size(3), 2u);
  EXPECT_EQ(base64url_decoded_size(4), 3u);
  EXPECT_FALSE(base64url_decoded_size(5));
}

}  // namespace
}  // namespace wtmesh::tunnel
