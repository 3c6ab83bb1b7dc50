// WebTransport sessions over HTTP/3, client <-> server in memory: accept/reject, streams, datagrams,
// close semantics, limits.
#include <gtest/gtest.h>

#include "common/varint.h"
#include "wt/capsule.h"
#include "wt_test_util.h"

namespace wtmesh::wt::test {
namespace {

const std::string* response_header(const H3Session& s, std::string_view name) {
  return find_header(s.response().headers, name);
}

TEST(WtH3, AcceptAndBidiEcho) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/echo", {{"origin", "https://app.example"}, {"authorization", "Bearer t"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(rec.session, s);
  ASSERT_TRUE(rec.ready);
  EXPECT_TRUE(h.server_echo.ready);
  EXPECT_EQ(s->response_status(), 200);
  ASSERT_NE(response_header(*s, "sec-webtransport-http3-draft"), nullptr);
  EXPECT_EQ(*response_header(*s, "sec-webtransport-http3-draft"), "draft02");
  ASSERT_EQ(h.infos.size(), 1u);
  EXPECT_EQ(h.infos[0].path, "/echo");
  EXPECT_EQ(h.infos[0].authority, "example.com:443");
  EXPECT_EQ(h.infos[0].origin, "https://app.example");
  EXPECT_EQ(h.server->session_count(), 1u);

  const auto id = s->open_bidi_stream();
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(s->write(*id, bytes("hello"), true), 5u);
  h.run();
  EXPECT_EQ(rec.data[*id], "hello");
  EXPECT_TRUE(rec.fins.count(*id));
  ASSERT_EQ(h.server_echo.incoming.size(), 1u);
  EXPECT_TRUE(h.server_echo.incoming[0].second);
  // Both directions finished: every record is gone on both sides.
  EXPECT_EQ(rec.closed_streams, std::vector<StreamId>{*id});
  EXPECT_EQ(s->stream_table_size(), 0u);
  EXPECT_EQ(h.client->stream_state_size(), 0u);
  EXPECT_EQ(h.server->stream_state_size(), 0u);
  // Unknown ids are ignored.
  EXPECT_EQ(s->write(*id, bytes("late"), false), 0u);
  EXPECT_EQ(s->send_capacity(12345), 0u);
}

TEST(WtH3, UniStreamsBothWays) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/echo");
  ASSERT_TRUE(rec.ready);
  const auto id = s->open_uni_stream();
  ASSERT_TRUE(id.has_value());
  EXPECT_TRUE(quic::is_uni(*id));
  EXPECT_EQ(s->write(*id, bytes("ping"), true), 4u);
  h.run();
  ASSERT_EQ(h.server_echo.incoming.size(), 1u);
  EXPECT_FALSE(h.server_echo.incoming[0].second);
  EXPECT_EQ(h.server_echo.data[h.server_echo.incoming[0].first], "ping");
  // The echo came back on a server-initiated uni stream.
  ASSERT_EQ(rec.incoming.size(), 1u);
  const StreamId back = rec.incoming[0].first;
  EXPECT_FALSE(rec.incoming[0].second);
  EXPECT_FALSE(quic::is_client_initiated(back));
  EXPECT_EQ(rec.data[back], "ping");
  EXPECT_TRUE(rec.fins.count(back));
  EXPECT_EQ(h.client->stream_state_size(), 0u);
  EXPECT_EQ(h.server->stream_state_size(), 0u);
}

TEST(WtH3, ServerInitiatedBidi) {
  Harness h;
  h.start();
  Recorder rec;
  rec.echo = true;
  h.connect(rec, "/record");
  ASSERT_TRUE(h.server_rec.ready);
  Session* ss = h.server_rec.session;
  ASSERT_NE(ss, nullptr);
  const auto id = ss->open_bidi_stream();
  ASSERT_TRUE(id.has_value());
  ss->write(*id, bytes("from server"), true);
  h.run();
  EXPECT_EQ(rec.data[*id], "from server");
  EXPECT_EQ(h.server_rec.data[*id], "from server");
  EXPECT_TRUE(h.server_rec.fins.count(*id));
}

TEST(WtH3, Datagrams) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/echo");
  ASSERT_TRUE(rec.ready);
  EXPECT_GT(s->max_datagram_size(), 0u);
  EXPECT_LT(s->max_datagram_size(), 1200u);  // quarter stream id prefix taken off
  EXPECT_TRUE(s->send_datagram(bytes("dgram")));
  h.run();
  EXPECT_EQ(h.server_echo.datagrams, std::vector<std::string>{"dgram"});
  EXPECT_EQ(rec.datagrams, std::vector<std::string>{"dgram"});
  EXPECT_FALSE(s->send_datagram(Bytes(s->max_datagram_size() + 1, 0)));
}

TEST(WtH3, RejectByPath404) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/nope");
  ASSERT_NE(s, nullptr);  // the pointer was valid until on_closed
  EXPECT_FALSE(rec.ready);
  ASSERT_TRUE(rec.closed.has_value());
  // The refusal is typed; the close that follows carries no HTTP status in its code.
  ASSERT_TRUE(rec.refused.has_value());
  EXPECT_EQ(rec.refused->status, 404);
  EXPECT_EQ(rec.closed->first, 0u);
  EXPECT_EQ(rec.closed->second, "HTTP 404");
  EXPECT_EQ(h.client->session_count(), 0u);
  EXPECT_EQ(h.server->session_count(), 0u);
  h.run();
  EXPECT_EQ(h.client_conn.stream_state_count(), 2u);  // only the 2 control streams are left
}

TEST(WtH3, OriginChecks) {
  ServerConfig config;
  config.allowed_origins = {"https://good.example"};
  config.max_sessions = 4;
  ClientConfig client_config;
  client_config.max_sessions = 4;
  Harness h(config, client_config);
  h.start();
  Recorder evil, good, none;
  h.connect(evil, "/echo", {{"origin", "https://evil.example"}});
  ASSERT_TRUE(evil.closed.has_value());
  ASSERT_TRUE(evil.refused.has_value());
  EXPECT_EQ(evil.refused->status, 403);
  EXPECT_EQ(h.infos.size(), 0u);  // the acceptor was never asked
  h.connect(good, "/echo", {{"origin", "https://good.example"}});
  EXPECT_TRUE(good.ready);
  h.connect(none, "/echo");  // no Origin: not a browser, allowed
  EXPECT_TRUE(none.ready);
  // Exact match only: a different port is a different origin.
  Recorder port;
  h.connect(port, "/echo", {{"origin", "https://good.example:8443"}});
  ASSERT_TRUE(port.closed.has_value());
  ASSERT_TRUE(port.refused.has_value());
  EXPECT_EQ(port.refused->status, 403);
}

TEST(WtH3, WildcardOrigin) {
  ServerConfig config;
  config.allowed_origins = {"https://x.example", "*"};
  Harness h(config);
  h.start();
  Recorder rec;
  h.connect(rec, "/echo", {{"origin", "https://anything.example"}});
  EXPECT_TRUE(rec.ready);
}

TEST(WtH3, SecondSessionOnConnectionRejected) {
  ClientConfig client_config;
  client_config.max_sessions = 2;  // let the client try; the server allows one (draft §5)
  Harness h({}, client_config);
  h.start();
  Recorder first, second;
  h.connect(first, "/echo");
  ASSERT_TRUE(first.ready);
  H3Session* s2 = h.connect(second, "/echo");
  ASSERT_NE(s2, nullptr);
  ASSERT_TRUE(second.closed.has_value());
  EXPECT_FALSE(second.ready);
  EXPECT_EQ(second.closed->first, kSessionGoneCode);
  EXPECT_NE(second.closed->second.find("0x10b"), std::string::npos)
      << second.closed->second;  // H3_REQUEST_REJECTED
  EXPECT_FALSE(first.closed.has_value());
  // The client's own cap: with the default of 1, connect() refuses.
  Harness h2;
  h2.start();
  Recorder a, b;
  ASSERT_NE(h2.connect(a, "/echo"), nullptr);
  EXPECT_EQ(h2.client->connect("example.com", "/echo", {}, &b), nullptr);
  EXPECT_FALSE(h2.client->last_error().empty());
  // After the first session ends, a new one is fine.
  a.session->close(0, "");
  h2.run();
  ASSERT_NE(h2.connect(b, "/echo"), nullptr);
  EXPECT_TRUE(b.ready);
}

TEST(WtH3, CloseWithCodeAndReasonReachesPeer) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  const auto id = s->open_bidi_stream();
  s->write(*id, bytes("x"), false);
  h.run();
  ASSERT_EQ(h.server_rec.incoming.size(), 1u);
  s->close(42, "bye now");
  // Local on_closed right away, with what was sent.
  ASSERT_TRUE(rec.closed.has_value());
  EXPECT_EQ(*rec.closed, std::make_pair(42u, std::string("bye now")));
  EXPECT_EQ(s->max_datagram_size(), 0u);  // still valid until the next event; inert
  h.run();
  ASSERT_TRUE(h.server_rec.closed.has_value());
  EXPECT_EQ(*h.server_rec.closed, std::make_pair(42u, std::string("bye now")));
  // The session's streams were reset with WT_SESSION_GONE and then forgotten everywhere.
  EXPECT_EQ(h.server_spy.resets.at(*id), kWtSessionGone);
  EXPECT_EQ(h.server->stream_state_size(), 0u);
  EXPECT_EQ(h.client->stream_state_size(), 0u);
  EXPECT_EQ(h.server->session_count(), 0u);
  EXPECT_EQ(h.client_conn.stream_state_count(), 2u);  // both sides' control streams
  EXPECT_EQ(h.server_conn.stream_state_count(), 2u);
}

TEST(WtH3, ServerCloseWithLongReasonTruncated) {
  Harness h;
  h.start();
  Recorder rec;
  h.connect(rec, "/record");
  std::string reason(1100, 'r');
  h.server_rec.session->close(7, reason);
  h.run();
  ASSERT_TRUE(rec.closed.has_value());
  EXPECT_EQ(rec.closed->first, 7u);
  EXPECT_EQ(rec.closed->second, std::string(1024, 'r'));
  EXPECT_EQ(h.server_rec.closed->second, std::string(1024, 'r'));
}

TEST(WtH3, CleanFinIsCloseZero) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  // A peer that just ends the CONNECT stream.
  h.client_conn.send_body(s->session_id(), {}, true);
  h.run();
  ASSERT_TRUE(h.server_rec.closed.has_value());
  EXPECT_EQ(*h.server_rec.closed, std::make_pair(0u, std::string()));
  ASSERT_TRUE(rec.closed.has_value());  // the server's answering FIN closes ours too
  EXPECT_EQ(*rec.closed, std::make_pair(0u, std::string()));
}

TEST(WtH3, DrainDelivered) {
  Harness h;
  h.start();
  Recorder rec;
  h.connect(rec, "/record");
  h.server_rec.session->drain();
  h.server_rec.session->drain();  // once only
  h.run();
  EXPECT_EQ(rec.drains, 1);
  EXPECT_FALSE(rec.closed.has_value());
}

// delivered() (what the agent waits for before it closes a session it replaced) is false while a
// byte written on any stream has not reached the peer: queued in h3 or QUIC, or held back here.
TEST(WtH3, DeliveredOnlyOnceThePeerHasEveryByte) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  EXPECT_TRUE(s->delivered());  // nothing written yet
  const auto a = s->open_bidi_stream();
  const auto b = s->open_uni_stream();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(s->write(*a, bytes("the last bytes of a response"), true), 28u);
  EXPECT_FALSE(s->delivered());
  h.run();
  EXPECT_TRUE(s->delivered());
  EXPECT_EQ(h.server_rec.data[*a], "the last bytes of a response");
  // One stream's bytes held in transit: not delivered until they arrive, whatever the other does.
  h.client_transport.hold(*b);
  EXPECT_EQ(s->write(*b, bytes("tail"), true), 4u);
  h.run();
  EXPECT_FALSE(s->delivered());
  EXPECT_EQ(h.server_rec.data[*b], "");
  h.client_transport.release(*b);
  EXPECT_FALSE(s->delivered());  // released to the transport, not yet at the peer
  h.run();
  EXPECT_TRUE(s->delivered());
  EXPECT_EQ(h.server_rec.data[*b], "tail");
  s->close(0, "");
  EXPECT_TRUE(s->delivered());  // a closed session has nothing left to deliver
}

TEST(WtH3, CloseWhilePeerWithholdsCreditDoesNotBlock) {
  // A long reason (h3 takes part of it) and an empty one (h3 would queue all of it): both reset.
  for (const std::string reason : {"this reason cannot be sent now", ""}) {
    Harness h;
    h.start();
    Recorder rec;
    H3Session* s = h.connect(rec, "/record");
    const auto id = s->open_bidi_stream();
    s->write(*id, bytes("x"), false);
    h.run();
    const StreamId sid = s->session_id();
    h.client_transport.block(sid);  // the server gives no credit on the CONNECT stream
    s->close(9, reason);
    ASSERT_TRUE(rec.closed.has_value());  // returned at once
    h.run();
    // The CONNECT stream was reset with WT_SESSION_GONE instead of waiting.
    EXPECT_EQ(h.server_spy.resets.at(sid), kWtSessionGone) << reason;
    ASSERT_TRUE(h.server_rec.closed.has_value());
    EXPECT_EQ(h.server_rec.closed->first, kSessionGoneCode);
    EXPECT_EQ(h.server_spy.resets.at(*id), kWtSessionGone);
    EXPECT_EQ(h.server->stream_state_size(), 0u);
  }
}

TEST(WtH3, PeerResetOfConnectStreamEndsSessionAndStreams) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  const auto id = s->open_bidi_stream();
  s->write(*id, bytes("x"), false);
  h.run();
  h.client_conn.reset_request(s->session_id(), h3::kH3RequestCancelled);
  h.run();
  ASSERT_TRUE(h.server_rec.closed.has_value());
  EXPECT_EQ(h.server_rec.closed->first, kSessionGoneCode);
  // The server reset the session's stream with WT_SESSION_GONE (the client saw it).
  EXPECT_EQ(h.client_spy.resets.at(*id), kWtSessionGone);
  EXPECT_EQ(h.server_spy.resets.at(*id), kWtSessionGone);  // and the client's side went the same way
  ASSERT_TRUE(rec.closed.has_value());                     // the CONNECT stream is gone on the client too
  EXPECT_EQ(h.client->stream_state_size(), 0u);
  EXPECT_EQ(h.server->stream_state_size(), 0u);
}

TEST(WtH3, StreamErrorCodesMapBothWays) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  const auto a = s->open_bidi_stream();
  const auto b = s->open_bidi_stream();
  s->write(*a, bytes("x"), false);
  s->write(*b, bytes("y"), false);
  h.run();
  s->reset_stream(*a, 0xffffffff);
  s->stop_sending(*b, 31);
  h.run();
  EXPECT_EQ(h.server_spy.resets.at(*a), wt_to_h3_error(0xffffffff));
  EXPECT_EQ(h.server_rec.resets.at(*a), 0xffffffffu);
  EXPECT_EQ(h.server_rec.stops.at(*b), 31u);
}

TEST(WtH3, MalformedCapsulesEndTheSession) {
  struct Case {
    const char* name;
    Bytes wire;
  };
  Bytes too_long;
  append_varint(too_long, kCapsuleCloseSession);
  append_varint(too_long, 4 + 1025);
  Bytes bad_utf8 = {0x68, 0x43, 0x05, 0, 0, 0, 1, 0xff};
  for (const Case& c : {Case{"1025-byte message", too_long}, Case{"invalid UTF-8", bad_utf8}}) {
    Harness h;
    h.start();
    Recorder rec;
    const StreamId sid = h.connect(rec, "/record")->session_id();
    h.client_conn.send_body(sid, c.wire, false);
    h.run();
    ASSERT_TRUE(h.server_rec.closed.has_value()) << c.name;
    EXPECT_EQ(h.server_rec.closed->first, kSessionGoneCode) << c.name;
    EXPECT_EQ(h.client_spy.resets.at(sid), h3::kH3MessageError) << c.name;
    ASSERT_TRUE(rec.closed.has_value()) << c.name;
  }
}

TEST(WtH3, GreaseAndFlowControlCapsulesIgnored) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  Bytes wire;
  append_varint(wire, 0x29 * 7 + 0x17);
  append_varint(wire, 3);
  wire.insert(wire.end(), {1, 2, 3});
  serialize_capsule(MaxStreamsCapsule{true, 5}, wire);
  serialize_capsule(DatagramCapsule{bytes("capsule dgram")}, wire);
  h.client_conn.send_body(s->session_id(), wire, false);
  h.run();
  EXPECT_FALSE(h.server_rec.closed.has_value());
  EXPECT_EQ(h.server_rec.datagrams, std::vector<std::string>{"capsule dgram"});
}

TEST(WtH3, PlainRequestsGetFallback) {
  Harness h;
  h.start();
  // Default fallback: 404 with a short text body and FIN, seen through a raw h3 client handler.
  struct Raw : h3::NullHandler {
    h3::HeaderList headers;
    std::string body;
    bool fin = false;
    void on_headers(StreamId, h3::HeaderList hl, bool f) override {
      headers = std::move(hl);
      fin = fin || f;
    }
    void on_body(StreamId, std::span<const uint8_t> d, bool f) override {
      body.append(d.begin(), d.end());
      fin = fin || f;
    }
  } raw;
  h.client_conn.set_handler(&raw);
  const auto id = h.client_conn.send_request(
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/"}}, true);
  ASSERT_TRUE(id.has_value());
  h.run();
  ASSERT_NE(h3::find_header(raw.headers, ":status"), nullptr);
  EXPECT_EQ(*h3::find_header(raw.headers, ":status"), "404");
  EXPECT_EQ(raw.body, "not found\n");
  EXPECT_TRUE(raw.fin);
  h.client_conn.set_handler(h.client.get());
}

// A RequestHandler owns plain request streams: headers, body (never consumed for it), resets and
// the close; WebTransport CONNECTs still go to the acceptor.
struct RecordingRequests : RequestHandler {
  h3::Connection* conn = nullptr;
  std::vector<std::string> paths;
  std::map<StreamId, std::string> body;
  std::map<StreamId, bool> ended;
  std::vector<StreamId> resets, closed;
  bool connection_closed = false;
  void on_request(StreamId id, const h3::HeaderList& hl, bool fin) override {
    paths.push_back(*h3::find_header(hl, ":path"));
    ended[id] = fin;
  }
  void on_request_body(StreamId id, std::span<const uint8_t> d, bool fin) override {
    body[id].append(d.begin(), d.end());
    ended[id] = ended[id] || fin;
  }
  void on_request_reset(StreamId id, uint64_t) override { resets.push_back(id); }
  void on_request_writable(StreamId) override {}
  void on_request_closed(StreamId id) override { closed.push_back(id); }
  void on_connection_closed() override { connection_closed = true; }
};

TEST(WtH3, RequestHandlerOwnsPlainStreams) {
  MemoryPairConfig pc;
  pc.stream_send_buffer = 4096;  // unconsumed request body holds the client back
  MemoryPair pair(pc);
  h3::Connection cc(pair.client(), h3::Role::kClient, webtransport_h3_config(h3::Role::kClient));
  h3::Connection sc(pair.server(), h3::Role::kServer, webtransport_h3_config(h3::Role::kServer));
  H3Server server(sc, {}, {});
  RecordingRequests requests;
  server.set_request_handler(&requests);
  H3Client client(cc);
  pair.set_handler(MemoryPair::kClient, &cc);
  pair.set_handler(MemoryPair::kServer, &sc);
  cc.start();
  sc.start();
  ASSERT_TRUE(pair.run());

  // A bodiless GET: answered by the handler.
  const auto get = cc.send_request(
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/status"}}, true);
  ASSERT_TRUE(get.has_value());
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(requests.paths, std::vector<std::string>{"/status"});
  EXPECT_TRUE(requests.ended[*get]);
  EXPECT_TRUE(sc.send_response(*get, {{":status", "204"}}, true));
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(requests.closed, std::vector<StreamId>{*get});
  EXPECT_EQ(server.request_count(), 0u);

  // A POST whose body the handler does not consume: the client can send only the window's worth.
  const auto post = cc.send_request(
      {{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/up"}}, false);
  ASSERT_TRUE(post.has_value());
  const Bytes big(20000, 'x');
  size_t sent = cc.send_body(*post, big, false);
  ASSERT_TRUE(pair.run());
  EXPECT_LT(sent, big.size());
  EXPECT_LE(requests.body[*post].size(), 4096u);
  // Consuming lets the rest through.
  for (int i = 0; i < 20 && sent < big.size(); ++i) {
    sc.consume(*post, requests.body[*post].size());
    requests.body[*post].clear();
    ASSERT_TRUE(pair.run());
    sent += cc.send_body(*post, std::span(big).subspan(sent), false);
    ASSERT_TRUE(pair.run());
  }
  EXPECT_EQ(sent, big.size());
  EXPECT_FALSE(requests.ended[*post]);

  // A reset reaches the handler; the stream stays its own until closed.
  cc.reset_request(*post, h3::kH3RequestCancelled);
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(requests.resets, std::vector<StreamId>{*post});

  // No acceptor: WebTransport requests still get 404, and never reach the request handler.
  Recorder rec;
  client.connect("a", "/x", {}, &rec);
  ASSERT_TRUE(pair.run());
  ASSERT_TRUE(rec.refused.has_value());
  EXPECT_EQ(rec.refused->status, 404);
  EXPECT_EQ(requests.paths.size(), 2u);

  sc.close(h3::kH3NoError, "bye");
  ASSERT_TRUE(pair.run());
  EXPECT_TRUE(requests.connection_closed);
}

TEST(WtH3, ConnectionCloseEndsSessions) {
  Harness h;
  h.start();
  Recorder rec;
  h.connect(rec, "/record");
  h.server_conn.close(h3::kH3NoError, "bye");
  h.run();
  ASSERT_TRUE(rec.closed.has_value());
  EXPECT_EQ(rec.closed->first, kSessionGoneCode);
  ASSERT_TRUE(h.server_rec.closed.has_value());
  EXPECT_EQ(h.client->session_count(), 0u);
  Recorder late;
  EXPECT_EQ(h.client->connect("a", "/echo", {}, &late), nullptr);
}

TEST(WtH3, GoawayDrainsSessions) {
  Harness h;
  h.start();
  Recorder rec;
  h.connect(rec, "/record");
  h.server_conn.send_goaway(4);
  h.run();
  EXPECT_EQ(rec.drains, 1);
}

}  // namespace
}  // namespace wtmesh::wt::test
