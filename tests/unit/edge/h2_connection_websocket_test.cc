// WebSocket over the public HTTP/2 side (RFC 8441): the extended CONNECT against nghttp2's client
// session, mapped onto the RFC 6455 handshake on the tunnel (made-up key, checked accept, 101 → 200),
// then raw DATA both ways with each direction ending on its own.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "h2_connection_fixture.h"
#include "tunnel/websocket_handshake.h"

namespace wtmesh::edge::test {
namespace {

class H2WebSocketTest : public H2ConnectionTest {
 protected:
  // The extended CONNECT for app.localhost; returns the client's stream id.
  int32_t open(std::string path = "/chat", std::vector<std::pair<std::string, std::string>> fields = {}) {
    const int32_t id =
        client_.extended_connect("websocket", std::move(path), "app.localhost", std::move(fields));
    pump();
    return id;
  }
  // The tunnel request head on the agent's last stream and what followed it.
  tunnel::RequestHead agent_head(std::string* body = nullptr) {
    tunnel::RequestHead rh;
    std::string rest;
    EXPECT_TRUE(decode_request_stream(stream().written, rh, &rest));
    if (body) *body = rest;
    return rh;
  }
  // The agent's 101 for the last stream, with the right accept unless `accept` says otherwise.
  void agent_switches(std::optional<std::string> accept = std::nullopt, tunnel::HeaderPairs extra = {}) {
    const std::string key = header_value(agent_head().headers, "sec-websocket-key");
    tunnel::HeaderPairs h = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
    h.emplace_back("Sec-WebSocket-Accept", accept.value_or(tunnel::websocket_accept(key)));
    for (auto& f : extra) h.push_back(std::move(f));
    agent_answers(head(101, std::nullopt, true, std::move(h)), "", false);
    pump();
  }
  // Request bytes the agent got after the head.
  std::string agent_got() {
    std::string body;
    agent_head(&body);
    return body;
  }
  void agent_sends(wt::StreamId id, std::string_view data, bool fin) {
    dir_.streams[id].events->on_response_data(bytes(data), fin);
    pump();
  }
};

TEST_F(H2WebSocketTest, SettingIsAdvertisedAndTheConnectBecomesAnRfc6455Handshake) {
  pump();
  EXPECT_EQ(client_.remote_setting(NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL), 1u);
  const int32_t id = open("/chat?room=1", {{"sec-websocket-version", "13"},
                                           {"sec-websocket-protocol", "chat, superchat"},
                                           {"sec-websocket-extensions", "permessage-deflate"},
                                           {"sec-websocket-key", "Y2xpZW50LXNlbnQta2V5IQ=="},
                                           {"origin", "https://app.localhost"}});
  client_.send(id, "early");  // before the 200: held, never the agent's before the switch
  pump();
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
  EXPECT_EQ(header_value(rh.headers, "sec-websocket-extensions"), "permessage-deflate");
  EXPECT_EQ(header_value(rh.headers, "origin"), "https://app.localhost");
  const std::string key = header_value(rh.headers, "sec-websocket-key");
  EXPECT_EQ(key.size(), 24u);
  EXPECT_NE(key, "Y2xpZW50LXNlbnQta2V5IQ==") << "the key is the edge's own";
  size_t keys = 0;
  for (const auto& [n, v] : rh.headers) keys += n == "sec-websocket-key";
  EXPECT_EQ(keys, 1u);
  EXPECT_FALSE(conn_->upgraded()) << "not before the switch";
}

TEST_F(H2WebSocketTest, VersionIsAddedWhenTheClientLeftItOut) {
  open();
  EXPECT_EQ(header_value(agent_head().headers, "sec-websocket-version"), "13");
}

TEST_F(H2WebSocketTest, The101BecomesA200WithoutTheAcceptAndRawBytesFlowBothWays) {
  const int32_t id = open();
  client_.send(id, "early");
  pump();
  agent_switches(std::nullopt, {{"Sec-WebSocket-Protocol", "chat"}, {"Sec-WebSocket-Extensions", "x"}});
  const auto& r = client_.results[id];
  EXPECT_EQ(r.status(), 200) << "RFC 8441 §5";
  EXPECT_EQ(r.field("sec-websocket-protocol"), "chat");
  EXPECT_EQ(r.field("sec-websocket-extensions"), "x");
  EXPECT_EQ(r.field("sec-websocket-accept"), "") << "the accept was the edge's to check";
  EXPECT_EQ(r.field("upgrade"), "");
  EXPECT_EQ(r.field("connection"), "");
  EXPECT_EQ(r.field("content-length"), "");
  EXPECT_FALSE(r.ended);
  EXPECT_TRUE(conn_->upgraded());
  EXPECT_EQ(agent_got(), "early") << "held until the switch, then passed on";

  const std::string frame("\x81\x85\x01\x02\x03\x04hello\x00\xff", 13);
  client_.send(id, frame);
  pump();
  EXPECT_EQ(agent_got(), "early" + frame) << "untouched";
  agent_sends(dir_.last, std::string("\x81\x02hi\x00", 5), false);
  EXPECT_EQ(r.body, std::string("\x81\x02hi\x00", 5));
  EXPECT_FALSE(r.ended);
  EXPECT_FALSE(stream().fin);
}

TEST_F(H2WebSocketTest, TheClientsEndStreamIsTheAgentsFinAndTheAgentGoesOn) {
  const int32_t id = open();
  agent_switches();
  client_.send(id, "last");
  client_.end(id);
  pump();
  EXPECT_EQ(agent_got(), "last");
  EXPECT_TRUE(stream().fin);
  EXPECT_FALSE(stream().released) << "the agent's direction goes on";
  agent_sends(dir_.last, "more", false);
  agent_sends(dir_.last, "end", true);
  const auto& r = client_.results[id];
  EXPECT_EQ(r.body, "moreend");
  EXPECT_TRUE(r.ended);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.close_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(stream().cancelled);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 200) << "what the client got";
  EXPECT_EQ(logs_[0].bytes, 7u);
  EXPECT_EQ(conn_->stream_count(), 0u);
  EXPECT_FALSE(conn_->upgraded());
}

TEST_F(H2WebSocketTest, TheAgentsFinIsEndStreamAndTheClientGoesOn) {
  const int32_t id = open();
  agent_switches();
  agent_sends(dir_.last, "bye", true);
  const auto& r = client_.results[id];
  EXPECT_EQ(r.body, "bye");
  EXPECT_TRUE(r.ended);
  EXPECT_FALSE(r.closed) << "half-closed: the client's direction is open";
  client_.send(id, "still");
  pump();
  EXPECT_EQ(agent_got(), "still");
  EXPECT_FALSE(stream().fin);
  // The client's last bytes and END_STREAM close the HTTP/2 stream at once, while the agent cannot
  // take them yet: they still reach it, then the FIN.
  stream().capacity = 0;
  client_.send(id, "last words");
  client_.end(id);
  pump();
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(agent_got(), "still");
  stream().capacity = 1 << 20;
  stream().events->on_request_writable();
  pump();
  EXPECT_EQ(agent_got(), "stilllast words");
  EXPECT_TRUE(stream().fin);
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(stream().cancelled);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 200);
  conn_->on_client_bytes({});  // the glue's next call frees the stream
  EXPECT_EQ(conn_->stream_count(), 0u);
}

TEST_F(H2WebSocketTest, AWrongAcceptIs502AndTheStreamIsReset) {
  const int32_t id = open();
  client_.send(id, "x");
  agent_switches("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const auto& r = client_.results[id];
  EXPECT_EQ(r.status(), 502);
  EXPECT_NE(r.body.find("Sec-WebSocket-Accept"), std::string::npos);
  EXPECT_TRUE(r.closed);
  EXPECT_TRUE(stream().cancelled) << "the agent's stream is given up";
  EXPECT_FALSE(conn_->upgraded());
  EXPECT_EQ(agent_got(), "") << "no WebSocket bytes went to an upstream that did not switch for us";
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 502);
}

TEST_F(H2WebSocketTest, AMissingAcceptIs502) {
  const int32_t id = open();
  agent_answers(head(101, std::nullopt, true, {{"Upgrade", "websocket"}}), "", false);
  pump();
  EXPECT_EQ(client_.results[id].status(), 502);
  EXPECT_TRUE(client_.results[id].closed);
}

TEST_F(H2WebSocketTest, ADeclinedUpgradeIsANormalResponse) {
  const int32_t id = open();
  client_.send(id, "not for a 403");
  pump();
  agent_answers(head(403, 6, true, {{"Content-Type", "text/plain"}}), "denied", true);
  pump();
  const auto& r = client_.results[id];
  EXPECT_EQ(r.status(), 403);
  EXPECT_EQ(r.body, "denied");
  EXPECT_TRUE(r.ended);
  EXPECT_TRUE(r.closed) << "the client's direction is reset once the answer is out";
  EXPECT_EQ(agent_got(), "");
  EXPECT_TRUE(stream().fin) << "the exchange ended the request itself";
  EXPECT_FALSE(conn_->upgraded());
  // The connection goes on.
  const int32_t next = client_.request("GET", "/", "app.localhost");
  pump();
  agent_answers(head(200, 2), "ok", true);
  pump();
  EXPECT_EQ(client_.results[next].body, "ok");
}

TEST_F(H2WebSocketTest, AnotherProtocolIs501PlainConnectStays405AndProtocolElsewhereIsRefused) {
  const int32_t other =
      client_.extended_connect("connect-udp", "/.well-known/masque/udp/h/1/", "app.localhost");
  const int32_t plain = client_.request("CONNECT", "", "app.localhost:443");
  pump();
  EXPECT_EQ(client_.results[other].status(), 501);
  EXPECT_NE(client_.results[other].body.find("connect-udp"), std::string::npos);
  EXPECT_EQ(client_.results[plain].status(), 405);
  // :protocol on anything but a CONNECT is a malformed request to nghttp2: the stream is reset.
  const int32_t get = client_.request("GET", "/", "app.localhost", {{":protocol", "websocket"}});
  pump();
  EXPECT_TRUE(client_.results[get].closed);
  EXPECT_EQ(client_.results[get].close_code, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_TRUE(dir_.streams.empty()) << "none reached the agent";
}

TEST_F(H2WebSocketTest, SeveralWebSocketsShareTheConnection) {
  const int32_t a = open("/a");
  const wt::StreamId sa = dir_.last;
  agent_switches();
  const int32_t b = open("/b");
  const wt::StreamId sb = dir_.last;
  agent_switches();
  ASSERT_NE(sa, sb);
  client_.send(a, "to a");
  client_.send(b, "to b");
  pump();
  agent_sends(sb, "from b", false);
  agent_sends(sa, "from a", true);
  std::string body;
  tunnel::RequestHead rh;
  ASSERT_TRUE(decode_request_stream(dir_.streams[sa].written, rh, &body));
  EXPECT_EQ(rh.target, "/a");
  EXPECT_EQ(body, "to a");
  ASSERT_TRUE(decode_request_stream(dir_.streams[sb].written, rh, &body));
  EXPECT_EQ(body, "to b");
  EXPECT_EQ(client_.results[a].body, "from a");
  EXPECT_TRUE(client_.results[a].ended);
  EXPECT_EQ(client_.results[b].body, "from b");
  EXPECT_FALSE(client_.results[b].ended);
  EXPECT_TRUE(conn_->upgraded());
}

TEST_F(H2WebSocketTest, ClientResetCancelsTheExchange) {
  const int32_t id = open();
  agent_switches();
  client_.reset(id);
  pump();
  EXPECT_EQ(stream().cancelled, tunnel::kStreamCancelled);
  EXPECT_FALSE(conn_->upgraded());
}

TEST_F(H2WebSocketTest, ABrokenAgentStreamResetsTheHttp2Stream) {
  const int32_t id = open();
  agent_switches();
  stream().events->on_stream_aborted(tunnel::kStreamUpstreamFailed, "");
  pump();
  EXPECT_TRUE(client_.results[id].closed);
  EXPECT_EQ(client_.results[id].close_code, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR));
}

TEST_F(H2WebSocketTest, NoBodyDeadlineWhileWaitingOrUpgraded) {
  const int32_t id = open();
  clock_.t += std::chrono::minutes(10);
  conn_->on_tick(clock_.t);
  pump();
  EXPECT_EQ(client_.results[id].status(), 0) << "waiting for the 101 is not a slow body";
  agent_switches();
  EXPECT_FALSE(conn_->next_deadline()) << "a quiet WebSocket is the idle timeout's business";
  clock_.t += std::chrono::minutes(10);
  conn_->on_tick(clock_.t);
  pump();
  EXPECT_EQ(client_.results[id].status(), 200);
  EXPECT_FALSE(client_.results[id].closed);
}

TEST_F(H2WebSocketTest, ClientBytesWaitWithinTheStreamWindowForASlowAgent) {
  H2Config cfg;
  cfg.exchange.limits.h2_stream_window = 16 * 1024;
  make(cfg);
  const int32_t id = open();
  agent_switches();
  stream().capacity = 1000;
  client_.send(id, std::string(64 * 1024, 'w'));
  pump();
  EXPECT_LE(conn_->buffered_input(), 16u * 1024 + cfg.exchange.limits.body_chunk);
  EXPECT_EQ(agent_got().size(), 1000u);
  for (int i = 0; i < 200 && agent_got().size() < 64u * 1024; ++i) {
    stream().capacity = 4096;
    stream().events->on_request_writable();
    pump();
  }
  EXPECT_EQ(agent_got(), std::string(64 * 1024, 'w'));
}

// The fuzzers' agent (fakes.h answer_upgrades()) really switches and echoes, so that
// fuzz/edge_h2_connection.cc reaches the relay.
TEST_F(H2WebSocketTest, TheFuzzersUpgradeAgentSwitchesAndEchoes) {
  std::map<wt::StreamId, UpgradeEcho> state;
  const int32_t id = open();
  answer_upgrades(dir_, state, false);
  pump();
  EXPECT_EQ(client_.results[id].status(), 200);
  client_.send(id, "ping");
  client_.end(id);
  pump();
  answer_upgrades(dir_, state, false);
  pump();
  EXPECT_EQ(client_.results[id].body, "ping");
  EXPECT_TRUE(client_.results[id].ended);
  const int32_t bad = open("/bad");
  answer_upgrades(dir_, state, true);
  pump();
  EXPECT_EQ(client_.results[bad].status(), 502);
}

}  // namespace
}  // namespace wtmesh::edge::test
