// RFC 6455 handshake fields: standard base64, the key, the accept (RFC 6455's own example).
#include "tunnel/websocket_handshake.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>
#include <vector>

namespace wtmesh::tunnel {
namespace {

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(WebSocketHandshake, Base64IsTheStandardAlphabetWithPadding) {
  // RFC 4648 §10 test vectors.
  EXPECT_EQ(base64_encode(bytes("")), "");
  EXPECT_EQ(base64_encode(bytes("f")), "Zg==");
  EXPECT_EQ(base64_encode(bytes("fo")), "Zm8=");
  EXPECT_EQ(base64_encode(bytes("foo")), "Zm9v");
  EXPECT_EQ(base64_encode(bytes("foob")), "Zm9vYg==");
  EXPECT_EQ(base64_encode(bytes("fooba")), "Zm9vYmE=");
  EXPECT_EQ(base64_encode(bytes("foobar")), "Zm9vYmFy");
  const std::vector<uint8_t> high = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(base64_encode(high), "+/+/") << "'+' and '/', not the URL-safe '-' and '_'";
}

TEST(WebSocketHandshake, AcceptOfRfc6455Example) {
  // RFC 6455 §1.3 (also what Python's hashlib + base64 give for it).
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(websocket_accept_matches("dGhlIHNhbXBsZSBub25jZQ==", " s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\t"));
  EXPECT_FALSE(websocket_accept_matches("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo"));
  EXPECT_FALSE(websocket_accept_matches("dGhlIHNhbXBsZSBub25jZQ==", "S3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  EXPECT_FALSE(websocket_accept_matches("dGhlIHNhbXBsZSBub25jZQ==", ""));
}

TEST(WebSocketHandshake, KeysAreFreshSixteenByteNonces) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    const std::string k = websocket_key();
    ASSERT_EQ(k.size(), 24u);
    EXPECT_EQ(k.substr(22), "==") << "16 bytes: two padding characters";
    for (char c : k.substr(0, 22))
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/');
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 64u);
}

TEST(WebSocketKey, KeysAreSixteenBytesOfBase64) {
  EXPECT_TRUE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(is_valid_websocket_key(""));
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ="));   // 23 characters
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ!="));  // no padding
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25j*Q=="));  // not base64
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZR=="));  // non-canonical last character
  for (int i = 0; i < 50; ++i) {
    const std::string k = websocket_key();
    EXPECT_TRUE(is_valid_websocket_key(k)) << k;
  }
  EXPECT_NE(websocket_key(), websocket_key());
}

}  // namespace
}  // namespace wtmesh::tunnel
