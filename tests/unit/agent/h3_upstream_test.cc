// The agent's HTTP/3 upstream tier, sans-I/O: H3UpstreamSession as the handler of a client-role
// h3::Connection, facing a server-role h3::Connection (our h3 library; no HTTP/3 server with RFC 9220
// installs here) over the in-memory QUIC pair of tests/support/memory_transport.h; and the codec
// (H2Codec, whose HTTP semantics serve HTTP/3 too) turning an RFC 6455 request into RFC 9220's
// extended CONNECT and the 200 into the tunnel's 101.
#include <gtest/gtest.h>

#include <string>

#include "../h3/h3_test_util.h"
#include "agent/h2_codec.h"
#include "agent/h3_upstream_session.h"
#include "agent/mux_upstream.h"
#include "request_head.h"
#include "tunnel/websocket_handshake.h"

namespace wtmesh::agent {
namespace {

using h3::test::Events;
using testing::MemoryPair;
using testing::MemoryPairConfig;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

tunnel::HeaderPairs get(std::string path, std::string method = "GET") {
  return {{":method", std::move(method)},
          {":scheme", "https"},
          {":authority", "app.example.test"},
          {":path", std::move(path)}};
}

h3::Config server_config(bool connect_protocol) {
  h3::Config c;
  c.local.enable_connect_protocol = connect_protocol;
  return c;
}

// Our client session on one side, a server h3::Connection recording events on the other.
struct Rig {
  explicit Rig(MemoryPairConfig pc = {}, H3UpstreamLimits limits = {}, bool connect_protocol = false)
      : pair(pc),
        client(pair.client(), h3::Role::kClient, h3_upstream_config(limits)),
        server(pair.server(), h3::Role::kServer, server_config(connect_protocol)),
        session(client, limits) {
    pair.set_handler(MemoryPair::kClient, &client);
    pair.set_handler(MemoryPair::kServer, &server);
    client.set_handler(&session);
    server.set_handler(&se);
    se.conn = &server;
    client.start();
    server.start();
    pair.run();
  }
  std::string take_all(int64_t id) {
    const auto got = session.received(id);
    std::string out(reinterpret_cast<const char*>(got.data()), got.size());
    session.consume(id, got.size());
    pair.run();
    return out;
  }
  MemoryPair pair;
  h3::Connection client;
  h3::Connection server;
  H3UpstreamSession session;
  Events se;
};

std::string field(const h3::HeaderList& h, std::string_view name) {
  const std::string* v = h3::find_header(h, name);
  return v ? *v : std::string();
}

TEST(H3UpstreamSession, GetWithBodyInterimSkippedTrailersKept) {
  Rig r;
  ASSERT_TRUE(r.session.settings_received());
  EXPECT_FALSE(r.session.connect_protocol());
  ASSERT_TRUE(r.session.can_open());
  std::string error;
  const auto id = r.session.open(get("/x"), true, &error);
  ASSERT_TRUE(id) << error;
  r.pair.run();
  const auto* req = r.se.find(static_cast<h3::StreamId>(*id));
  ASSERT_NE(req, nullptr);
  EXPECT_TRUE(req->fin);
  EXPECT_EQ(field(req->headers, ":authority"), "app.example.test");
  EXPECT_EQ(field(req->headers, ":path"), "/x");
  const auto sid = static_cast<h3::StreamId>(*id);
  ASSERT_TRUE(r.server.send_response(sid, {{":status", "103"}, {"link", "</a.css>"}}, false));
  ASSERT_TRUE(r.server.send_response(sid, {{":status", "200"}, {"content-type", "text/plain"}}, false));
  EXPECT_EQ(r.server.send_body(sid, bytes("hello"), false), 5u);
  ASSERT_TRUE(r.server.send_response(sid, {{"x-checksum", "abc"}}, true));  // trailers
  r.pair.run();
  EXPECT_EQ(r.session.received(*id).size(), 0u) << "no body before the head is taken";
  auto head = r.session.take_head(*id);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_FALSE(head->end_stream);
  ASSERT_EQ(head->headers.size(), 1u);
  EXPECT_EQ(head->headers[0].first, "content-type");
  EXPECT_TRUE(r.session.take_interim(*id).empty()) << "h3::Connection's client skips 1xx heads";
  EXPECT_EQ(r.take_all(*id), "hello");
  EXPECT_TRUE(r.session.finished(*id));
  EXPECT_FALSE(r.session.failure(*id));
  const auto trailers = r.session.take_trailers(*id);
  ASSERT_EQ(trailers.size(), 1u);
  EXPECT_EQ(trailers[0].first, "x-checksum");
  EXPECT_EQ(trailers[0].second, "abc");
  r.session.forget(*id);
  EXPECT_EQ(r.session.open_streams(), 0u);
}

TEST(H3UpstreamSession, HeadOnlyResponseEndsWithTheHeaders) {
  Rig r;
  std::string error;
  const auto id = r.session.open(get("/", "HEAD"), true, &error);
  ASSERT_TRUE(id) << error;
  r.pair.run();
  ASSERT_TRUE(r.server.send_response(static_cast<h3::StreamId>(*id), {{":status", "204"}}, true));
  r.pair.run();
  auto head = r.session.take_head(*id);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 204);
  EXPECT_TRUE(head->end_stream);
  EXPECT_TRUE(r.session.finished(*id));
}

TEST(H3UpstreamSession, RequestBodyIsTakenUpToTheSendBufferAndArrivesWhole) {
  MemoryPairConfig pc;
  pc.stream_send_buffer = 16 * 1024;
  Rig r(pc);
  std::string error;
  const auto id = r.session.open(get("/up", "POST"), false, &error);
  ASSERT_TRUE(id) << error;
  const std::string body(100 * 1024, 'b');
  size_t off = r.session.send(*id, bytes(body), true);
  EXPECT_LT(off, body.size()) << "bounded by the stream's send buffer";
  const auto sid = static_cast<h3::StreamId>(*id);
  for (int i = 0; i < 1000 && off < body.size(); ++i) {
    r.pair.run();  // the server consumes what arrived: credit comes back
    off += r.session.send(*id, bytes(std::string_view(body).substr(off)), true);
  }
  r.pair.run();
  EXPECT_EQ(off, body.size());
  EXPECT_EQ(r.se.body[sid].size(), body.size());
  EXPECT_TRUE(r.se.body_fin[sid]);
}

TEST(H3UpstreamSession, ResponseIsHeldToTheStreamWindowUntilConsumed) {
  MemoryPairConfig pc;
  pc.stream_send_buffer = 32 * 1024;  // the memory pair's flow control: bytes not consumed by our side
  Rig r(pc);
  std::string error;
  const auto id = r.session.open(get("/big"), true, &error);
  ASSERT_TRUE(id) << error;
  r.pair.run();
  const auto sid = static_cast<h3::StreamId>(*id);
  ASSERT_TRUE(r.server.send_response(sid, {{":status", "200"}}, false));
  const std::string body(200 * 1024, 'x');
  size_t sent = r.server.send_body(sid, bytes(body), true);
  r.pair.run();
  ASSERT_TRUE(r.session.take_head(*id));
  EXPECT_LE(r.session.received(*id).size(), 32u * 1024) << "nothing credited before the exchange took it";
  std::string got;
  for (int i = 0; i < 1000 && !r.session.finished(*id); ++i) {
    got += r.take_all(*id);
    if (sent < body.size()) sent += r.server.send_body(sid, bytes(std::string_view(body).substr(sent)), true);
    r.pair.run();
  }
  EXPECT_EQ(got.size(), body.size());
  EXPECT_TRUE(r.session.finished(*id));
}

TEST(H3UpstreamSession, StreamsAreCappedByThePeersLimitAndOurs) {
  MemoryPairConfig pc;
  pc.max_bidi_streams = 2;
  Rig r(pc);
  std::string error;
  const auto a = r.session.open(get("/a"), true, &error);
  const auto b = r.session.open(get("/b"), true, &error);
  ASSERT_TRUE(a && b) << error;
  EXPECT_FALSE(r.session.open(get("/c"), true, &error));
  EXPECT_NE(error.find("stream limit"), std::string::npos) << error;
  EXPECT_FALSE(r.session.can_open());
  r.pair.run();
  ASSERT_TRUE(r.server.send_response(static_cast<h3::StreamId>(*a), {{":status", "200"}}, true));
  r.pair.run();
  ASSERT_TRUE(r.session.take_head(*a));
  r.session.forget(*a);
  r.pair.run();
  EXPECT_TRUE(r.session.take_connection_changed());
  EXPECT_TRUE(r.session.can_open()) << "the peer's MAX_STREAMS came back";

  H3UpstreamLimits ours;
  ours.max_streams = 1;
  Rig r2({}, ours);
  ASSERT_TRUE(r2.session.open(get("/a"), true, &error));
  EXPECT_FALSE(r2.session.can_open());
}

TEST(H3UpstreamSession, GoawayRefusesStreamsAtOrAboveItsIdAndLetsTheRestFinish) {
  Rig r;
  std::string error;
  const auto a = r.session.open(get("/a"), true, &error);
  const auto b = r.session.open(get("/b"), true, &error);
  ASSERT_TRUE(a && b);
  r.pair.run();
  r.server.send_goaway(static_cast<uint64_t>(*b));
  r.pair.run();
  EXPECT_TRUE(r.session.goaway());
  EXPECT_FALSE(r.session.can_open());
  bool refused = false;
  ASSERT_TRUE(r.session.failure(*b, &refused));
  EXPECT_TRUE(refused);
  EXPECT_FALSE(r.session.failure(*a));
  ASSERT_TRUE(r.server.send_response(static_cast<h3::StreamId>(*a), {{":status", "200"}}, false));
  EXPECT_EQ(r.server.send_body(static_cast<h3::StreamId>(*a), bytes("ok"), true), 2u);
  r.pair.run();
  ASSERT_TRUE(r.session.take_head(*a));
  EXPECT_EQ(r.take_all(*a), "ok");
  EXPECT_TRUE(r.session.finished(*a));
  EXPECT_FALSE(r.session.open(get("/c"), true, &error));
}

TEST(H3UpstreamSession, RejectedRequestIsRefusedOtherResetsFail) {
  Rig r;
  std::string error;
  const auto a = r.session.open(get("/a"), true, &error);
  const auto b = r.session.open(get("/b"), true, &error);
  r.pair.run();
  r.server.reset_request(static_cast<h3::StreamId>(*a), h3::kH3RequestRejected);
  r.server.reset_request(static_cast<h3::StreamId>(*b), h3::kH3InternalError);
  r.pair.run();
  bool refused = false;
  ASSERT_TRUE(r.session.failure(*a, &refused));
  EXPECT_TRUE(refused);
  auto why = r.session.failure(*b, &refused);
  ASSERT_TRUE(why);
  EXPECT_FALSE(refused);
  EXPECT_NE(why->find("reset"), std::string::npos) << *why;
}

TEST(H3UpstreamSession, ConnectionCloseFailsOpenStreams) {
  Rig r;
  std::string error;
  const auto a = r.session.open(get("/a"), true, &error);
  r.pair.run();
  r.server.close(h3::kH3InternalError, "bye");
  r.pair.run();
  EXPECT_TRUE(r.session.failed());
  auto why = r.session.failure(*a);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("bye"), std::string::npos) << *why;
  EXPECT_FALSE(r.session.can_open());
}

TEST(H3UpstreamSession, CancelResetsTheStreamAndCreditsWhatWasHeld) {
  Rig r;
  std::string error;
  const auto a = r.session.open(get("/a"), true, &error);
  r.pair.run();
  const auto sid = static_cast<h3::StreamId>(*a);
  ASSERT_TRUE(r.server.send_response(sid, {{":status", "200"}}, false));
  r.server.send_body(sid, bytes(std::string(1000, 'z')), false);
  r.pair.run();
  r.session.cancel(*a);
  r.pair.run();
  EXPECT_EQ(r.se.request_resets[sid], h3::kH3RequestCancelled);
  EXPECT_EQ(r.session.open_streams(), 0u);
}

// RFC 9220 end to end in memory: the codec's extended CONNECT, our h3 server library as the upstream,
// the 200 turned into the tunnel's 101, then raw bytes both ways and FIN both ways.
TEST(H3UpstreamSession, WebSocketOverExtendedConnect) {
  Rig r({}, {}, /*connect_protocol=*/true);
  ASSERT_TRUE(r.session.connect_protocol());
  H2Codec codec("HTTP/3");
  auto head = testing::request("GET", "/chat");
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  head.headers = {{"host", "app.example.test"},    {"upgrade", "websocket"},
                  {"connection", "Upgrade"},       {"sec-websocket-key", key},
                  {"sec-websocket-version", "13"}, {"sec-websocket-protocol", "chat"}};
  std::string error;
  ASSERT_TRUE(codec.start_request(head, &error)) << error;
  EXPECT_TRUE(codec.upgrade());
  std::string wire;
  codec.write_head(wire);
  tunnel::HeadReader<tunnel::RequestHead> reader;
  tunnel::RequestHead h;
  ASSERT_EQ(reader.feed(bytes(wire), h), tunnel::WireError::kNone);
  const auto id = r.session.open(request_fields(h, true), false, &error);
  ASSERT_TRUE(id) << error;
  r.pair.run();
  const auto sid = static_cast<h3::StreamId>(*id);
  const auto* req = r.se.find(sid);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(field(req->headers, ":method"), "CONNECT");
  EXPECT_EQ(field(req->headers, ":protocol"), "websocket");
  EXPECT_EQ(field(req->headers, ":scheme"), "https");
  EXPECT_EQ(field(req->headers, ":path"), "/chat");
  EXPECT_EQ(field(req->headers, "sec-websocket-protocol"), "chat");
  EXPECT_EQ(field(req->headers, "sec-websocket-key"), "") << "RFC 9220 (as RFC 8441): no key";
  EXPECT_EQ(field(req->headers, "upgrade"), "");
  ASSERT_TRUE(r.server.send_response(sid, {{":status", "200"}, {"sec-websocket-protocol", "chat"}}, false));
  r.pair.run();
  auto mh = r.session.take_head(*id);
  ASSERT_TRUE(mh);
  tunnel::ResponseHead rh;
  rh.status = mh->status;
  rh.has_body = !mh->end_stream;
  rh.headers = mh->headers;
  codec.put_input(tunnel::encode_response_head(rh));
  std::vector<uint8_t> body;
  ASSERT_EQ(codec.decode(body, 1 << 16), UpstreamCodec::Status::kHead) << codec.error();
  const auto out = codec.take_head();
  EXPECT_EQ(out.status, 101);
  EXPECT_TRUE(codec.switched());
  auto accept = std::find_if(out.headers.begin(), out.headers.end(),
                             [](const auto& f) { return f.first == "sec-websocket-accept"; });
  ASSERT_NE(accept, out.headers.end());
  EXPECT_EQ(accept->second, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // Raw frames both ways.
  const std::string up("\x81\x05hello", 7);
  EXPECT_EQ(r.session.send(*id, bytes(up), false), up.size());
  r.pair.run();
  EXPECT_EQ(h3::test::str(r.se.body[sid]), up);
  const std::string down("\x81\x02ok", 4);
  EXPECT_EQ(r.server.send_body(sid, bytes(down), true), down.size());
  r.pair.run();
  EXPECT_EQ(r.take_all(*id), down);
  EXPECT_TRUE(r.session.finished(*id));
  EXPECT_EQ(r.session.send(*id, {}, true), 0u);
  r.pair.run();
  EXPECT_TRUE(r.se.body_fin[sid]);
}

TEST(H3UpstreamSession, NoExtendedConnectWithoutThePeersSetting) {
  Rig r({}, {}, /*connect_protocol=*/false);
  EXPECT_TRUE(r.session.settings_received());
  EXPECT_FALSE(r.session.connect_protocol());
}

}  // namespace
}  // namespace wtmesh::agent
