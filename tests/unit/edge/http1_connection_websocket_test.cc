// WebSocket (RFC 6455) through Http1Connection: the upgrade asked of the exchange, the 101 head, the
// raw relay both ways, each direction's end, backpressure, and an upgrade the agent declines.
#include <gtest/gtest.h>

#include "edge/http1_connection.h"
#include "http1_connection_fixture.h"

namespace wtmesh::edge {
namespace {

using test::bytes;
using test::decode_request_stream;
using test::header_value;
using test::Http1ConnectionTest;

constexpr std::string_view kUpgrade =
    "GET /chat HTTP/1.1\r\nHost: app.localhost\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: chat\r\n\r\n";

class Http1WebSocketTest : public Http1ConnectionTest {
 protected:
  // What the edge put on the request stream after the head.
  std::string request_body() {
    tunnel::RequestHead rh;
    std::string body;
    EXPECT_TRUE(decode_request_stream(stream().written, rh, &body));
    return body;
  }
  // The upgrade request, answered 101 by the agent; returns what the client got.
  std::string switched(std::string_view early = "", std::string_view agent_bytes = "") {
    feed(std::string(kUpgrade) + std::string(early));
    agent_answers(head(101, std::nullopt, true, {{"sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}}),
                  agent_bytes, false);
    return drain();
  }
};

TEST_F(Http1WebSocketTest, TheUpgradeIsAskedOfTheExchangeWithTheSecWebSocketFields) {
  feed(std::string(kUpgrade) +
       "\x81\x01"
       "e");
  ASSERT_EQ(dir_.streams.size(), 1u);
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(header_value(rh.headers, "upgrade"), "websocket");
  EXPECT_EQ(header_value(rh.headers, "connection"), "<none>");
  EXPECT_EQ(header_value(rh.headers, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(header_value(rh.headers, "sec-websocket-version"), "13");
  EXPECT_EQ(header_value(rh.headers, "sec-websocket-protocol"), "chat");
  EXPECT_TRUE(rh.has_body) << "the bytes after the 101";
  EXPECT_FALSE(rh.content_length);
  EXPECT_EQ(body, "") << "nothing after the head goes before the 101";
  EXPECT_FALSE(stream().fin);
  EXPECT_FALSE(proxy_->upgraded());
  EXPECT_FALSE(proxy_->next_deadline()) << "waiting for the 101 is not a slow request body";
  clock_.t += std::chrono::minutes(5);
  proxy_->on_tick(clock_.t);
  EXPECT_EQ(drain(), "");
}

TEST_F(Http1WebSocketTest, The101IsWrittenAndBytesAreRelayedRawBothWays) {
  EXPECT_EQ(switched("\x81\x01"
                     "e",
                     "\x81\x02hi"),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi");
  EXPECT_TRUE(proxy_->upgraded());
  EXPECT_EQ(request_body(),
            "\x81\x01"
            "e")
      << "the early bytes follow the 101";
  feed(
      "\x82\x03"
      "abc");
  EXPECT_EQ(request_body(),
            "\x81\x01"
            "e\x82\x03"
            "abc");
  const size_t before = stream().consumed;
  stream().events->on_response_data(bytes("\x81\x03"
                                          "two"),
                                    false);
  EXPECT_EQ(stream().consumed, before) << "credit returns once the client took the bytes";
  EXPECT_EQ(drain(),
            "\x81\x03"
            "two");
  EXPECT_EQ(stream().consumed, before + 5);
  EXPECT_FALSE(stream().fin);
  EXPECT_FALSE(proxy_->finished());
  EXPECT_TRUE(logs_.empty());
}

TEST_F(Http1WebSocketTest, TheClientsEofEndsOnlyItsDirection) {
  switched();
  feed("last");
  proxy_->on_client_eof();
  proxy_->on_client_eof();  // the glue repeats it
  EXPECT_TRUE(stream().fin) << "FIN to the agent";
  EXPECT_EQ(request_body(), "last");
  EXPECT_FALSE(proxy_->finished()) << "the agent's direction goes on";
  stream().events->on_response_data(bytes("still"), false);
  EXPECT_EQ(drain(), "still");
  stream().events->on_response_data(bytes("end"), true);
  EXPECT_EQ(drain(), "end");
  EXPECT_TRUE(proxy_->finished());
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(stream().cancelled);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 101);
  EXPECT_EQ(logs_[0].bytes, 8u);
}

TEST_F(Http1WebSocketTest, TheAgentsFinClosesTheConnectionOnceItsBytesAreOut) {
  switched();
  stream().events->on_response_data(bytes("\x88\x02\x03\xe8"), true);  // a close frame, then FIN
  EXPECT_TRUE(stream().fin) << "the client's direction is ended for it";
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(stream().cancelled);
  EXPECT_TRUE(proxy_->finished());
  EXPECT_EQ(drain(), "\x88\x02\x03\xe8") << "the output is still written before the close";
  EXPECT_EQ(feed("late"), 4u);
  EXPECT_EQ(request_body(), "");
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 101);
}

TEST_F(Http1WebSocketTest, ClientBytesWaitForTheStreamAndTheInputIsBounded) {
  switched();
  stream().capacity = 0;
  const std::string big(200 * 1024, 'x');
  const size_t taken = feed(big);
  EXPECT_LT(taken, big.size()) << "the input fills and the glue stops reading";
  EXPECT_LE(proxy_->buffered_input(), proxy_->input_capacity() + 16 * 1024);
  stream().capacity = 1 << 20;
  stream().events->on_request_writable();
  size_t at = taken;
  while (at < big.size()) {
    const size_t n = feed(std::string_view(big).substr(at));
    ASSERT_GT(n, 0u);
    at += n;
  }
  EXPECT_EQ(request_body(), big);
}

TEST_F(Http1WebSocketTest, ADeclinedUpgradeIsANormalResponseOnAKeptConnection) {
  feed(kUpgrade);
  agent_answers(head(403, 2), "no", true);
  EXPECT_EQ(drain(), "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno");
  EXPECT_TRUE(stream().fin) << "the bodiless GET ended";
  EXPECT_EQ(request_body(), "");
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(proxy_->upgraded());
  EXPECT_FALSE(proxy_->finished());
  feed("GET /next HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  EXPECT_EQ(dir_.streams.size(), 2u);
}

TEST_F(Http1WebSocketTest, OnlyABodilessGetWithConnectionUpgradeAsks) {
  // Upgrade without Connection: upgrade, a POST, and HTTP/1.0 are plain requests.
  for (const char* req :
       {"GET / HTTP/1.1\r\nHost: app.localhost\r\nUpgrade: websocket\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: app.localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        "Content-Length: 0\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: app.localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"}) {
    make();
    dir_.streams.clear();
    feed(req);
    ASSERT_EQ(dir_.streams.size(), 1u) << req;
    tunnel::RequestHead rh;
    std::string body;
    ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
    EXPECT_EQ(header_value(rh.headers, "upgrade"), "<none>") << req;
    EXPECT_TRUE(stream().fin) << req;
  }
}

}  // namespace
}  // namespace wtmesh::edge
