#include "tunnel/websocket_key.h"

#include <gtest/gtest.h>

namespace wtmesh::tunnel {
namespace {

TEST(WebSocketKey, AcceptOfRfc6455Example) {
  // RFC 6455 §1.3, verbatim.
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketKey, KeysAreSixteenBytesOfBase64) {
  EXPECT_TRUE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(is_valid_websocket_key(""));
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ="));   // 23 characters
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ!="));  // no padding
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25j*Q=="));  // not base64
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZR=="));  // non-canonical last character
  for (int i = 0; i < 50; ++i) {
    const auto k = new_websocket_key();
    ASSERT_TRUE(k);
    EXPECT_TRUE(is_valid_websocket_key(*k)) << *k;
  }
  EXPECT_NE(new_websocket_key(), new_websocket_key());
}

}  // namespace
}  // namespace wtmesh::tunnel
