// WebSocket over the public HTTP/3 side (RFC 9220): the extended CONNECT from our h3 client, mapped
// onto the RFC 6455 handshake on the tunnel (made-up key, checked accept, 101 → 200), then raw DATA
// both ways with each direction ending on its own.
#include <gtest/gtest.h>

#include <string>

#include "h3_requests_fixture.h"
#include "tunnel/websocket_handshake.h"

namespace wtmesh::edge::test {
namespace {

class H3WebSocketTest : public H3RequestsTest {
 protected:
  StreamId open(std::string path = "/chat", h3::HeaderList extra = {}) {
    extra.insert(extra.begin(), {":protocol", "websocket"});
    const StreamId id = request("CONNECT", std::move(path), "app.localhost", std::move(extra), false);
    run();
    return id;
  }
  tunnel::RequestHead agent_head(std::string* body = nullptr) {
    tunnel::RequestHead rh;
    std::string rest;
    EXPECT_TRUE(decode_request_stream(stream().written, rh, &rest));
    if (body) *body = rest;
    return rh;
  }
  std::string agent_got() {
    std::string body;
    agent_head(&body);
    return body;
  }
  void agent_switches(std::optional<std::string> accept = std::nullopt, tunnel::HeaderPairs extra = {}) {
    const std::string key = header_value(agent_head().headers, "sec-websocket-key");
    tunnel::HeaderPairs h = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
    h.emplace_back("Sec-WebSocket-Accept", accept.value_or(tunnel::websocket_accept(key)));
    for (auto& f : extra) h.push_back(std::move(f));
    agent_answers(head(101, std::nullopt, true, std::move(h)), "", false);
    run();
  }
  void agent_sends(std::string_view data, bool fin) {
    stream().events->on_response_data(bytes(data), fin);
    run();
  }
};

TEST_F(H3WebSocketTest, SettingIsAdvertisedAndTheConnectBecomesAnRfc6455Handshake) {
  ASSERT_TRUE(cc_->peer_settings().has_value());
  EXPECT_TRUE(cc_->peer_settings()->enable_connect_protocol) << "RFC 9220 §3";
  const StreamId id = open("/chat?room=1", {{"sec-websocket-version", "13"},
                                            {"sec-websocket-protocol", "chat, superchat"},
                                            {"sec-websocket-key", "Y2xpZW50LXNlbnQta2V5IQ=="},
                                            {"origin", "https://app.localhost"}});
  send(id, "early", false);  // before the 200: held, never the agent's before the switch
  run();
  ASSERT_EQ(dir_.streams.size(), 1u);
  std::string body;
  const tunnel::RequestHead rh = agent_head(&body);
  EXPECT_EQ(rh.method, "GET");
  EXPECT_EQ(rh.target, "/chat?room=1");
  EXPECT_EQ(rh.authority, "app.localhost");
  EXPECT_TRUE(rh.has_body) << "the WebSocket's bytes follow the 101";
  EXPECT_FALSE(stream().fin);
  EXPECT_EQ(body, "");
  EXPECT_EQ(header_value(rh.headers, "upgrade"), "websocket");
  EXPECT_EQ(header_value(rh.headers, "sec-websocket-version"), "13");
  EXPECT_EQ(header_value(rh.headers, "sec-websocket-protocol"), "chat, superchat");
  EXPECT_EQ(header_value(rh.headers, "origin"), "https://app.localhost");
  const std::string key = header_value(rh.headers, "sec-websocket-key");
  EXPECT_EQ(key.size(), 24u);
  EXPECT_NE(key, "Y2xpZW50LXNlbnQta2V5IQ==") << "the key is the edge's own";
}

TEST_F(H3WebSocketTest, VersionIsAddedWhenTheClientLeftItOut) {
  open();
  EXPECT_EQ(header_value(agent_head().headers, "sec-websocket-version"), "13");
}

TEST_F(H3WebSocketTest, The101BecomesA200AndRawBytesFlowBothWays) {
  const StreamId id = open();
  send(id, "early", false);
  run();
  agent_switches(std::nullopt, {{"Sec-WebSocket-Protocol", "chat"}});
  const auto& r = view_.r[id];
  EXPECT_EQ(r.status(), 200) << "RFC 9220 §3";
  EXPECT_EQ(r.field("sec-websocket-protocol"), "chat");
  EXPECT_EQ(r.field("sec-websocket-accept"), "") << "the accept was the edge's to check";
  EXPECT_EQ(r.field("upgrade"), "");
  EXPECT_EQ(r.field("connection"), "");
  EXPECT_FALSE(r.fin);
  EXPECT_EQ(agent_got(), "early") << "held until the switch, then passed on";

  const std::string frame("\x81\x85\x01\x02\x03\x04hello\x00\xff", 13);
  send(id, frame, false);
  run();
  EXPECT_EQ(agent_got(), "early" + frame) << "untouched";
  agent_sends(std::string("\x81\x02hi\x00", 5), false);
  EXPECT_EQ(r.body, std::string("\x81\x02hi\x00", 5));
  EXPECT_FALSE(r.fin);
  EXPECT_FALSE(stream().fin);
  EXPECT_EQ(requests_->stream_count(), 1u);
}

TEST_F(H3WebSocketTest, TheClientsFinIsTheAgentsFinAndTheAgentGoesOn) {
  const StreamId id = open();
  agent_switches();
  send(id, "last", true);
  run();
  EXPECT_EQ(agent_got(), "last");
  EXPECT_TRUE(stream().fin);
  EXPECT_FALSE(stream().released) << "the agent's direction goes on";
  agent_sends("more", false);
  agent_sends("end", true);
  const auto& r = view_.r[id];
  EXPECT_EQ(r.body, "moreend");
  EXPECT_TRUE(r.fin);
  EXPECT_FALSE(r.reset.has_value());
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(stream().cancelled);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 200) << "what the client got";
  EXPECT_EQ(logs_[0].bytes, 7u);
  EXPECT_EQ(requests_->stream_count(), 0u);
}

TEST_F(H3WebSocketTest, TheClientsLastWordsReachASlowAgentAfterTheStreamClosed) {
  const StreamId id = open();
  agent_switches();
  agent_sends("bye", true);
  const auto& r = view_.r[id];
  EXPECT_EQ(r.body, "bye");
  EXPECT_TRUE(r.fin);
  send(id, "still", false);
  run();
  EXPECT_EQ(agent_got(), "still");
  // The client's last bytes and FIN close the QUIC stream while the agent cannot take them yet:
  // they still reach it, then the FIN.
  stream().capacity = 0;
  send(id, "last words", true);
  run();
  EXPECT_TRUE(r.closed) << "both directions are done on the HTTP/3 side";
  EXPECT_EQ(agent_got(), "still");
  EXPECT_EQ(requests_->stream_count(), 1u) << "draining to the agent";
  stream().capacity = 1 << 20;
  stream().events->on_request_writable();
  run();
  EXPECT_EQ(agent_got(), "stilllast words");
  EXPECT_TRUE(stream().fin);
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(stream().cancelled);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 200);
  request("GET", "/", "nobody.localhost");  // the next entry point frees it
  run();
  EXPECT_EQ(requests_->stream_count(), 0u);
}

TEST_F(H3WebSocketTest, AWrongAcceptIs502) {
  const StreamId id = open();
  send(id, "x", false);
  run();
  agent_switches("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const auto& r = view_.r[id];
  EXPECT_EQ(r.status(), 502);
  EXPECT_NE(r.body.find("Sec-WebSocket-Accept"), std::string::npos);
  EXPECT_TRUE(r.fin);
  EXPECT_TRUE(stream().cancelled) << "the agent's stream is given up";
  EXPECT_EQ(agent_got(), "") << "no WebSocket bytes went to an upstream that did not switch for us";
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 502);
  run();
  EXPECT_EQ(requests_->stream_count(), 0u) << "the client's direction was stopped";
}

TEST_F(H3WebSocketTest, AMissingAcceptIs502) {
  const StreamId id = open();
  agent_answers(head(101, std::nullopt, true, {{"Upgrade", "websocket"}}), "", false);
  run();
  EXPECT_EQ(view_.r[id].status(), 502);
}

TEST_F(H3WebSocketTest, ADeclinedUpgradeIsANormalResponse) {
  const StreamId id = open();
  send(id, "not for a 403", false);
  run();
  agent_answers(head(403, 6, true, {{"Content-Type", "text/plain"}}), "denied", true);
  run();
  const auto& r = view_.r[id];
  EXPECT_EQ(r.status(), 403);
  EXPECT_EQ(r.body, "denied");
  EXPECT_TRUE(r.fin);
  EXPECT_EQ(agent_got(), "");
  EXPECT_TRUE(stream().fin) << "the exchange ended the request itself";
  EXPECT_EQ(requests_->stream_count(), 0u) << "STOP_SENDING ended the client's direction";
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 403);
  // The connection goes on.
  const StreamId next = request("GET", "/", "app.localhost");
  run();
  agent_answers(head(200, 2), "ok", true);
  run();
  EXPECT_EQ(view_.r[next].body, "ok");
}

TEST_F(H3WebSocketTest, AnotherProtocolIs501) {
  const StreamId id = request("CONNECT", "/.well-known/masque/udp/h/1/", "app.localhost",
                              {{":protocol", "connect-udp"}}, false);
  run();
  EXPECT_EQ(view_.r[id].status(), 501);
  EXPECT_NE(view_.r[id].body.find("connect-udp"), std::string::npos);
  EXPECT_NE(view_.r[id].body.find("RFC 9220"), std::string::npos);
  EXPECT_TRUE(dir_.streams.empty());
}

TEST_F(H3WebSocketTest, ClientResetCancelsTheExchange) {
  const StreamId id = open();
  agent_switches();
  cc_->reset_request(id, h3::kH3RequestCancelled);
  run();
  EXPECT_TRUE(stream().cancelled.has_value());
  EXPECT_EQ(requests_->stream_count(), 0u);
}

TEST_F(H3WebSocketTest, AgentGoneResetsTheStream) {
  const StreamId id = open();
  agent_switches();
  agent_sends("partial", false);
  stream().events->on_stream_aborted(std::nullopt, "session closed");
  run();
  EXPECT_EQ(view_.r[id].reset, h3::kH3InternalError) << "a cut WebSocket never ends cleanly";
  EXPECT_EQ(requests_->stream_count(), 0u);
}

}  // namespace
}  // namespace wtmesh::edge::test
