// The agent's HTTP/2 upstream tier, sans-I/O: H2UpstreamSession against nghttp2's own server session in
// memory (h2_test_server.h), and the H2Codec's translation both ways, with byte vectors.
#include <gtest/gtest.h>

#include <string>

#include "agent/h2_codec.h"
#include "agent/h2_upstream_session.h"
#include "h2_test_server.h"
#include "request_head.h"

namespace wtmesh::agent {
namespace {

using test::H2TestServer;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Moves bytes both ways until neither side has anything to say.
void pump(H2UpstreamSession& c, H2TestServer& s) {
  for (int i = 0; i < 1000; ++i) {
    const auto out = c.output();
    std::vector<uint8_t> to_server(out.begin(), out.end());
    c.consume_output(out.size());
    if (!to_server.empty()) {
      ASSERT_TRUE(s.feed(to_server));
    }
    const auto to_client = s.output();
    if (!to_client.empty()) c.feed(to_client);
    if (to_server.empty() && to_client.empty()) return;
  }
  FAIL() << "no quiet";
}

tunnel::HeaderPairs get(std::string path) {
  return {{":method", "GET"},
          {":scheme", "http"},
          {":authority", "app.example.test"},
          {":path", std::move(path)}};
}

std::string take_all(H2UpstreamSession& c, int32_t id) {
  const auto got = c.received(id);
  std::string out(reinterpret_cast<const char*>(got.data()), got.size());
  c.consume(id, got.size());
  return out;
}

TEST(H2UpstreamSession, GetWithBodyAndTrailersKeptApart) {
  H2UpstreamSession c;
  H2TestServer s;
  std::string error;
  const int32_t id = c.open(get("/x"), true, &error);
  ASSERT_GT(id, 0) << error;
  pump(c, s);
  ASSERT_TRUE(s.requests[id].ended);
  EXPECT_EQ(s.requests[id].field(":authority"), "app.example.test");
  EXPECT_EQ(s.requests[id].field(":path"), "/x");
  s.respond(id, 200, {{"content-type", "text/plain"}}, "hello", true, {{{"grpc-status", "0"}}});
  pump(c, s);
  auto h = c.take_head(id);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_FALSE(h->end_stream);
  ASSERT_EQ(h->headers.size(), 1u);  // the trailer did not join the head
  EXPECT_EQ(h->headers[0].first, "content-type");
  EXPECT_EQ(take_all(c, id), "hello");
  EXPECT_TRUE(c.finished(id));
  EXPECT_FALSE(c.failure(id));
  EXPECT_EQ(c.take_trailers(id), (tunnel::HeaderPairs{{"grpc-status", "0"}}));  // for the `trailers` feature
  c.forget(id);
  EXPECT_EQ(c.open_streams(), 0u);
}

TEST(H2UpstreamSession, InterimResponsesAreSkippedAndHeadOnlyEnds) {
  H2UpstreamSession c;
  H2TestServer s;
  const int32_t id = c.open(get("/"), true, nullptr);
  pump(c, s);
  s.respond(id, 204, {}, std::nullopt);
  pump(c, s);
  auto h = c.take_head(id);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 204);
  EXPECT_TRUE(h->end_stream);
  EXPECT_TRUE(c.finished(id));
}

TEST(H2UpstreamSession, InterimHeadsAreKeptUpToTheCap) {
  H2UpstreamSession c;
  H2TestServer s;
  const int32_t id = c.open(get("/"), true, nullptr);
  pump(c, s);
  for (size_t i = 0; i < H2UpstreamSession::kMaxInterim + 3; ++i) s.interim(id, 103);
  s.respond(id, 204, {}, std::nullopt);
  pump(c, s);
  const auto interim = c.take_interim(id);
  EXPECT_EQ(interim.size(), H2UpstreamSession::kMaxInterim) << "the rest are dropped";
  for (const auto& h : interim) EXPECT_EQ(h.status, 103);
  auto h = c.take_head(id);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 204);
  EXPECT_TRUE(c.finished(id));
}

TEST(H2UpstreamSession, RequestBodyIsBoundedBySendBufferAndArrivesWhole) {
  H2UpstreamLimits limits;
  limits.max_send_buffer = 1000;
  H2UpstreamSession c(limits);
  H2TestServer s;
  tunnel::HeaderPairs f = get("/up");
  f[0].second = "POST";
  const int32_t id = c.open(f, false, nullptr);
  std::string body(5000, 'b');
  for (size_t i = 0; i < body.size(); i += 7) body[i] = static_cast<char>('a' + i % 26);
  size_t off = 0;
  for (int round = 0; off < body.size() && round < 100; ++round) {
    EXPECT_LE(c.send_room(id), 1000u);
    const auto piece = bytes(body).subspan(off);
    const size_t n = c.send(id, piece, true);
    EXPECT_LE(n, 1000u);  // the cap
    off += n;
    pump(c, s);
  }
  ASSERT_EQ(off, body.size());
  pump(c, s);
  EXPECT_EQ(s.requests[id].body, body);
  EXPECT_TRUE(s.requests[id].ended);
}

TEST(H2UpstreamSession, ResponseIsHeldToTheStreamWindowUntilConsumed) {
  H2UpstreamLimits limits;
  limits.stream_window = 65535;
  limits.connection_window = 1 << 20;
  H2UpstreamSession c(limits);
  H2TestServer s;
  const int32_t id = c.open(get("/big"), true, nullptr);
  pump(c, s);
  const std::string big(300000, 'z');
  s.respond(id, 200, {}, big);
  pump(c, s);
  ASSERT_TRUE(c.take_head(id));
  EXPECT_EQ(c.received(id).size(), 65535u);  // no credit, no more
  std::string got;
  for (int i = 0; i < 100 && !c.finished(id); ++i) {
    got += take_all(c, id);
    pump(c, s);
  }
  EXPECT_EQ(got, big);
  EXPECT_TRUE(c.finished(id));
}

TEST(H2UpstreamSession, StreamsAreCappedByThePeersSettingAndOurs) {
  H2UpstreamSession c;
  H2TestServer s({{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2}});
  pump(c, s);
  EXPECT_TRUE(c.settings_received());
  EXPECT_TRUE(c.can_open());
  c.open(get("/1"), true, nullptr);
  c.open(get("/2"), true, nullptr);
  EXPECT_FALSE(c.can_open());

  H2UpstreamLimits ours;
  ours.max_streams = 1;
  H2UpstreamSession c2(ours);
  H2TestServer s2;
  pump(c2, s2);
  c2.open(get("/1"), true, nullptr);
  EXPECT_FALSE(c2.can_open());
}

TEST(H2UpstreamSession, GoawayRefusesStreamsAboveLastIdAndLetsTheRestFinish) {
  H2UpstreamSession c;
  H2TestServer s;
  const int32_t a = c.open(get("/a"), true, nullptr);
  const int32_t b = c.open(get("/b"), true, nullptr);
  pump(c, s);
  s.goaway(a);
  pump(c, s);
  EXPECT_TRUE(c.goaway());
  EXPECT_FALSE(c.can_open());
  bool refused = false;
  ASSERT_TRUE(c.failure(b, &refused));
  EXPECT_TRUE(refused);
  s.respond(a, 200, {}, "done");
  pump(c, s);
  ASSERT_TRUE(c.take_head(a));
  EXPECT_EQ(take_all(c, a), "done");
  EXPECT_TRUE(c.finished(a));
}

TEST(H2UpstreamSession, ResetAndOversizedHeadFailTheStream) {
  H2UpstreamLimits limits;
  limits.max_header_bytes = 200;
  H2UpstreamSession c(limits);
  H2TestServer s;
  const int32_t a = c.open(get("/a"), true, nullptr);
  const int32_t b = c.open(get("/b"), true, nullptr);
  pump(c, s);
  s.reset(a, NGHTTP2_INTERNAL_ERROR);
  s.respond(b, 200, {{"x-big", std::string(300, 'x')}}, "body");
  pump(c, s);
  bool refused = true;
  auto why = c.failure(a, &refused);
  ASSERT_TRUE(why);
  EXPECT_FALSE(refused);
  EXPECT_NE(why->find("reset"), std::string::npos) << *why;
  why = c.failure(b);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("over 200 bytes"), std::string::npos) << *why;
}

TEST(H2UpstreamSession, GarbageFailsTheConnection) {
  H2UpstreamSession c;
  const int32_t id = c.open(get("/"), true, nullptr);
  (void)c.output();
  c.feed(bytes("HTTP/1.1 400 Bad Request\r\n\r\n"));
  const auto goaway = c.output();  // nghttp2's GOAWAY goes out, then the session is over
  EXPECT_FALSE(goaway.empty());
  EXPECT_TRUE(c.failed());
  EXPECT_NE(c.error().find("not an HTTP/2 server"), std::string::npos) << c.error();
  EXPECT_TRUE(c.failure(id));
}

TEST(H2UpstreamSession, ExtendedConnectSettingIsSeen) {
  H2UpstreamSession c;
  H2TestServer s({{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}});
  EXPECT_FALSE(c.connect_protocol());
  pump(c, s);
  EXPECT_TRUE(c.connect_protocol());
}

// --- the codec ---

TEST(H2Codec, RequestHeadDropsHopByHopAndKeepsTeTrailers) {
  H2Codec codec;
  auto h = testing::request("POST", "/api?x=1", true, 5);
  h.authority = "app.example.test:8443";
  h.headers = {{"Connection", "keep-alive, X-Hop"},
               {"X-Hop", "1"},
               {"Keep-Alive", "5"},
               {"TE", "trailers"},
               {"Host", "evil"},
               {"Transfer-Encoding", "chunked"},
               {"Upgrade", "h2c"},
               {"X-Custom", "yes"},
               {"Content-Length", "5"}};
  std::string error;
  ASSERT_TRUE(codec.start_request(h, &error)) << error;
  const auto& r = codec.request();
  EXPECT_EQ(r.authority, "app.example.test:8443");
  tunnel::HeaderPairs want = {{"te", "trailers"}, {"x-custom", "yes"}, {"content-length", "5"}};
  EXPECT_EQ(r.headers, want);
  auto te = testing::request("GET", "/");
  te.headers = {{"te", "gzip"}};
  ASSERT_TRUE(codec.start_request(te, &error));
  EXPECT_TRUE(codec.request().headers.empty());
  auto bad = testing::request("GET", "/");
  bad.headers = {{"x", "a\r\nb: c"}};
  EXPECT_FALSE(codec.start_request(bad, &error));
  EXPECT_FALSE(codec.start_request(testing::request("CONNECT", "/"), &error));
}

TEST(H2Codec, ResponseHeadThenBodyUntilEof) {
  H2Codec codec;
  ASSERT_TRUE(codec.start_request(testing::request("GET", "/"), nullptr));
  tunnel::ResponseHead rh;
  rh.status = 200;
  rh.has_body = true;
  rh.headers = {{"content-length", "6"}, {"content-type", "text/plain"}, {"connection", "close"}};
  auto in = tunnel::encode_response_head(rh);
  const std::string body = "abcdef";
  in.insert(in.end(), body.begin(), body.end());
  std::vector<uint8_t> out;
  for (uint8_t byte : in) codec.put_input({&byte, 1});  // any split
  ASSERT_EQ(codec.decode(out, 4), UpstreamCodec::Status::kHead);
  auto head = codec.take_head();
  EXPECT_EQ(head.content_length, 6u);
  EXPECT_TRUE(head.has_body);
  EXPECT_EQ(head.headers, (tunnel::HeaderPairs{{"content-type", "text/plain"}}));
  EXPECT_EQ(codec.decode(out, 4), UpstreamCodec::Status::kBodyFull);
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(codec.decode(out, 64), UpstreamCodec::Status::kNeedInput);
  codec.put_eof();
  EXPECT_EQ(codec.decode(out, 64), UpstreamCodec::Status::kDone);
  EXPECT_EQ(std::string(out.begin(), out.end()), body);
  EXPECT_TRUE(codec.reusable());
  EXPECT_LE(codec.input_room(), H2Codec::kInputCap);
}

// What H2StreamDriver hands the codec (docs/protocol.md §4.1 encoding): interim heads, a framed head,
// chunks and the trailer section.
TEST(H2Codec, InterimHeadsFramedBodyAndTrailers) {
  H2Codec codec;
  ASSERT_TRUE(codec.start_request(testing::request("GET", "/"), nullptr));
  tunnel::ResponseHead early;
  early.status = 103;
  early.headers = {{"link", "</a>"}, {"connection", "x"}};
  auto in = tunnel::encode_response_head(early);
  tunnel::ResponseHead rh;
  rh.status = 200;
  rh.has_body = rh.framed = true;
  rh.headers = {{"content-type", "application/grpc"}};
  const auto h = tunnel::encode_response_head(rh);
  in.insert(in.end(), h.begin(), h.end());
  const std::string body = "abcdef";
  tunnel::append_body_chunk(in, {reinterpret_cast<const uint8_t*>(body.data()), body.size()});
  ASSERT_TRUE(tunnel::append_body_end(in, {{"grpc-status", "0"}}));
  for (uint8_t byte : in) codec.put_input({&byte, 1});
  codec.put_eof();
  std::vector<uint8_t> out;
  ASSERT_EQ(codec.decode(out, 4), UpstreamCodec::Status::kHead);
  EXPECT_FALSE(codec.head_produced());
  auto first = codec.take_head();
  EXPECT_EQ(first.status, 103);
  EXPECT_EQ(first.headers, (tunnel::HeaderPairs{{"link", "</a>"}}));
  ASSERT_EQ(codec.decode(out, 4), UpstreamCodec::Status::kHead);
  EXPECT_TRUE(codec.head_produced());
  EXPECT_EQ(codec.take_head().status, 200);
  EXPECT_TRUE(codec.may_have_trailers());
  UpstreamCodec::Status st;
  do {
    st = codec.decode(out, out.size() + 4);
  } while (st == UpstreamCodec::Status::kBodyFull);
  ASSERT_EQ(st, UpstreamCodec::Status::kDone) << codec.error();
  EXPECT_EQ(std::string(out.begin(), out.end()), body);
  EXPECT_EQ(codec.take_trailers(), (tunnel::HeaderPairs{{"grpc-status", "0"}}));

  // EOF inside the framing is an error.
  H2Codec cut;
  ASSERT_TRUE(cut.start_request(testing::request("GET", "/"), nullptr));
  cut.put_input(std::span<const uint8_t>(in).first(in.size() - 3));
  cut.put_eof();
  std::vector<uint8_t> o2;
  while ((st = cut.decode(o2, 1 << 16)) == UpstreamCodec::Status::kHead || st == UpstreamCodec::Status::kBodyFull) {
  }
  EXPECT_EQ(st, UpstreamCodec::Status::kError);
}

TEST(H2Codec, HeadRequestIsBodilessAndBadLengthsFail) {
  H2Codec codec;
  ASSERT_TRUE(codec.start_request(testing::request("HEAD", "/"), nullptr));
  tunnel::ResponseHead rh;
  rh.status = 200;
  rh.has_body = true;
  rh.headers = {{"content-length", "1000"}};
  codec.put_input(tunnel::encode_response_head(rh));
  std::vector<uint8_t> out;
  ASSERT_EQ(codec.decode(out, 64), UpstreamCodec::Status::kHead);
  auto head = codec.take_head();
  EXPECT_FALSE(head.has_body);
  EXPECT_EQ(head.content_length, 1000u);

  H2Codec bad;
  ASSERT_TRUE(bad.start_request(testing::request("GET", "/"), nullptr));
  rh.headers = {{"content-length", "12x"}};
  bad.put_input(tunnel::encode_response_head(rh));
  EXPECT_EQ(bad.decode(out, 64), UpstreamCodec::Status::kError);
  EXPECT_FALSE(bad.head_produced());

  H2Codec early;
  ASSERT_TRUE(early.start_request(testing::request("GET", "/"), nullptr));
  early.put_eof();
  EXPECT_EQ(early.decode(out, 64), UpstreamCodec::Status::kError);
}

TEST(H2Codec, WebSocketBecomesExtendedConnectAndTheAnswerA101) {
  H2Codec codec;
  auto h = testing::request("GET", "/ws");
  h.headers = {{"Connection", "Upgrade"},
               {"Upgrade", "websocket"},
               {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
               {"Sec-WebSocket-Version", "13"},
               {"Sec-WebSocket-Protocol", "chat"}};
  std::string error;
  ASSERT_TRUE(codec.start_request(h, &error)) << error;
  EXPECT_TRUE(codec.upgrade());
  EXPECT_EQ(codec.request().method, "CONNECT");  // the transport adds :protocol websocket
  const tunnel::HeaderPairs want = {{"sec-websocket-version", "13"}, {"sec-websocket-protocol", "chat"}};
  EXPECT_EQ(codec.request().headers, want);  // no key (RFC 8441 §5), no hop-by-hop fields
  tunnel::ResponseHead rh;
  rh.status = 200;
  rh.has_body = true;
  rh.headers = {{"sec-websocket-protocol", "chat"}, {"server", "x"}};
  codec.put_input(tunnel::encode_response_head(rh));
  std::vector<uint8_t> out;
  ASSERT_EQ(codec.decode(out, 64), UpstreamCodec::Status::kHead);
  EXPECT_TRUE(codec.switched());
  auto head = codec.take_head();
  EXPECT_EQ(head.status, 101);
  const tunnel::HeaderPairs fields = {{"sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
                                      {"sec-websocket-protocol", "chat"}};
  EXPECT_EQ(head.headers, fields);
  EXPECT_FALSE(codec.reusable());

  H2Codec declined;  // another status is a normal response
  ASSERT_TRUE(declined.start_request(h, &error));
  rh.status = 403;
  declined.put_input(tunnel::encode_response_head(rh));
  ASSERT_EQ(declined.decode(out, 64), UpstreamCodec::Status::kHead);
  EXPECT_FALSE(declined.switched());
  EXPECT_EQ(declined.take_head().status, 403);

  H2Codec nokey;
  h.headers.erase(h.headers.begin() + 2);
  EXPECT_FALSE(nokey.start_request(h, &error));
  EXPECT_NE(error.find("Sec-WebSocket-Key"), std::string::npos);
}

}  // namespace
}  // namespace wtmesh::agent
