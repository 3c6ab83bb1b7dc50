// h3::Connection over MemoryPair: SETTINGS exchange, requests/responses with bodies, backpressure,
// trailers, datagrams, GOAWAY, and per-stream state cleanup.
#include <gtest/gtest.h>

#include "h3_test_util.h"

namespace wtmesh::h3::test {
namespace {

TEST(H3Connection, SettingsExchange) {
  Config sc = wt_config();
  sc.max_field_section_size = 20000;
  H3Pair p({}, wt_config(), sc);
  ASSERT_TRUE(p.run());
  ASSERT_TRUE(p.ce.settings);
  ASSERT_TRUE(p.client.peer_settings());
  EXPECT_TRUE(p.client.peer_settings()->enable_connect_protocol);
  EXPECT_TRUE(p.client.peer_settings()->h3_datagram);
  EXPECT_TRUE(p.client.peer_settings()->webtransport);
  EXPECT_EQ(p.client.peer_settings()->max_field_section_size, 20000u);
  ASSERT_TRUE(p.server.peer_settings());
  EXPECT_TRUE(p.server.peer_settings()->webtransport);
  EXPECT_FALSE(p.ce.close_code);
  EXPECT_FALSE(p.se.close_code);
  EXPECT_EQ(p.client.role(), Role::kClient);
  EXPECT_EQ(&p.server.transport(), &p.pair.server());
}

TEST(H3Connection, OurControlStreamBytes) {
  RawPair r;
  // The server's first uni stream (id 3): type 0x00, then SETTINGS as the first frame.
  const Bytes& ctl = r.raw.data[3];
  Bytes expect{0x00};
  Config c = wt_config();
  c.local.max_field_section_size = c.max_field_section_size;
  append_bytes(expect, serialize_settings_frame(c.local, 0x2a));
  EXPECT_EQ(ctl, expect);
  // No QPACK encoder or decoder stream: nothing would ever be sent on them (RFC 9204 §4.2).
  EXPECT_EQ(r.raw.data.count(7), 0u);
  EXPECT_EQ(r.raw.data.count(11), 0u);
  auto parsed = parse_settings(std::span<const uint8_t>(ctl).subspan(3));
  ASSERT_TRUE(parsed.settings);
  EXPECT_TRUE(parsed.settings->wt_draft02);
  EXPECT_TRUE(parsed.settings->settings.enable_connect_protocol);
}

TEST(H3Connection, WebTransportNeedsDatagramsAndConnectProtocolFromServer) {
  Config sc = wt_config();
  sc.local.enable_connect_protocol = false;  // server claims WT without extended CONNECT
  H3Pair p({}, wt_config(), sc);
  p.run();
  ASSERT_TRUE(p.client.peer_settings());
  EXPECT_FALSE(p.client.peer_settings()->webtransport);
  Config cc = wt_config();
  cc.local.h3_datagram = false;  // client claims WT without datagrams
  H3Pair q({}, cc, wt_config());
  q.run();
  ASSERT_TRUE(q.server.peer_settings());
  EXPECT_FALSE(q.server.peer_settings()->webtransport);
}

TEST(H3Connection, RequestResponseWithBodiesBothWays) {
  H3Pair p;
  p.run();
  auto id = p.client.send_request(
      {{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/up"}}, false);
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 0);
  EXPECT_EQ(p.client.send_body(*id, bytes("hello "), false), 6u);
  EXPECT_EQ(p.client.send_body(*id, bytes("world"), true), 5u);
  p.run();
  ASSERT_EQ(p.se.headers.size(), 1u);
  EXPECT_EQ(*find_header(p.se.headers[0].headers, ":path"), "/up");
  EXPECT_FALSE(p.se.headers[0].fin);
  EXPECT_EQ(str(p.se.body[*id]), "hello world");
  EXPECT_TRUE(p.se.body_fin[*id]);
  EXPECT_TRUE(p.server.send_response(*id, {{":status", "200"}, {"content-type", "text/plain"}}, false));
  EXPECT_EQ(p.server.send_body(*id, bytes("ok!"), true), 3u);
  p.run();
  ASSERT_EQ(p.ce.headers.size(), 1u);
  EXPECT_EQ(*find_header(p.ce.headers[0].headers, ":status"), "200");
  EXPECT_EQ(str(p.ce.body[*id]), "ok!");
  EXPECT_TRUE(p.ce.body_fin[*id]);
  EXPECT_EQ(p.ce.request_closed, std::vector<StreamId>{*id});
  EXPECT_EQ(p.se.request_closed, std::vector<StreamId>{*id});
  EXPECT_TRUE(p.ce.request_resets.empty());
  EXPECT_TRUE(p.se.request_resets.empty());
}

TEST(H3Connection, HeadersOnlyRequestHasFin) {
  H3Pair p;
  p.run();
  auto id = p.client.send_request(get_request(), true);
  p.run();
  ASSERT_EQ(p.se.headers.size(), 1u);
  EXPECT_TRUE(p.se.headers[0].fin);
  EXPECT_EQ(p.se.body_calls, 0u);
  EXPECT_TRUE(p.server.send_response(*id, {{":status", "204"}}, true));
  p.run();
  ASSERT_EQ(p.ce.headers.size(), 1u);
  EXPECT_TRUE(p.ce.headers[0].fin);
  EXPECT_EQ(p.ce.request_closed.size(), 1u);
}

TEST(H3Connection, Trailers) {
  H3Pair p;
  p.run();
  auto id = p.client.send_request(get_request(), true);
  p.run();
  p.server.send_response(*id, {{":status", "200"}}, false);
  p.server.send_body(*id, bytes("body"), false);
  p.server.send_response(*id, {{"x-checksum", "abc"}}, true);  // trailers
  p.run();
  ASSERT_EQ(p.ce.headers.size(), 2u);
  EXPECT_EQ(str(p.ce.body[*id]), "body");
  EXPECT_FALSE(p.ce.body_fin[*id]);
  EXPECT_TRUE(p.ce.headers[1].fin);
  EXPECT_EQ(*find_header(p.ce.headers[1].headers, "x-checksum"), "abc");
  EXPECT_EQ(p.ce.request_closed.size(), 1u);
}

TEST(H3Connection, InformationalResponseIsDeliveredBeforeTheFinalOne) {
  RawPair r({}, wt_config(), /*raw_is_server=*/true);
  r.default_control();
  auto id = r.conn.send_request(get_request(), true);
  r.pair.run();
  r.send(*id,
         cat({headers_frame({{":status", "103"}, {"link", "</a>"}}), headers_frame({{":status", "200"}}),
              data_frame("x")}),
         true);
  ASSERT_EQ(r.ev.interim.size(), 1u);
  EXPECT_EQ(r.ev.interim[0].id, *id);
  EXPECT_EQ(*find_header(r.ev.interim[0].headers, ":status"), "103");
  EXPECT_EQ(*find_header(r.ev.interim[0].headers, "link"), "</a>");
  ASSERT_EQ(r.ev.headers.size(), 1u);
  EXPECT_EQ(*find_header(r.ev.headers[0].headers, ":status"), "200");
  EXPECT_EQ(str(r.ev.body[*id]), "x");
}

TEST(H3Connection, InformationalResponsesPastTheCapAreDropped) {
  Config cfg = wt_config();
  cfg.max_interim_responses = 3;
  RawPair r({}, cfg, /*raw_is_server=*/true);
  r.default_control();
  auto id = r.conn.send_request(get_request(), true);
  r.pair.run();
  Bytes wire;
  for (int i = 0; i < 5; ++i) wire = cat({wire, headers_frame({{":status", "100"}})});
  r.send(*id, cat({wire, headers_frame({{":status", "103"}}), headers_frame({{":status", "204"}})}), true);
  ASSERT_EQ(r.ev.interim.size(), 3u) << "the cap: later 1xx sections are decoded and dropped";
  for (const auto& h : r.ev.interim) EXPECT_EQ(*find_header(h.headers, ":status"), "100");
  ASSERT_EQ(r.ev.headers.size(), 1u);
  EXPECT_EQ(*find_header(r.ev.headers[0].headers, ":status"), "204");
  EXPECT_TRUE(r.ev.headers[0].fin);
  EXPECT_TRUE(r.ev.request_resets.empty());
}

TEST(H3Connection, InformationalResponseThatEndsTheStreamIsAStreamError) {
  RawPair r({}, wt_config(), /*raw_is_server=*/true);
  r.default_control();
  auto id = r.conn.send_request(get_request(), true);
  r.pair.run();
  r.send(*id, headers_frame({{":status", "103"}}), true);
  EXPECT_TRUE(r.ev.interim.empty());
  EXPECT_TRUE(r.ev.headers.empty());
  ASSERT_EQ(r.ev.request_resets.count(*id), 1u);
  EXPECT_EQ(r.ev.request_resets[*id], kH3MessageError);
}

// Pushes `total` bytes through send_body with a small send buffer, resuming on writable.
void pump_body(H3Pair& p, StreamId id, bool from_client, const Bytes& payload) {
  Connection& c = from_client ? p.client : p.server;
  Events& ev = from_client ? p.ce : p.se;
  size_t off = 0;
  size_t rounds = 0;
  while (off < payload.size() && rounds++ < 100000) {
    // Offer odd-sized slices so frames and partial writes do not line up.
    const size_t want = std::min<size_t>(payload.size() - off, 777 + (rounds % 5) * 311);
    const bool fin = off + want == payload.size();
    const size_t n = c.send_body(id, std::span<const uint8_t>(payload).subspan(off, want), fin);
    off += n;
    if (n < want) {
      const size_t writable_before = ev.request_writable.size();
      p.run();
      ASSERT_GT(ev.request_writable.size(), writable_before) << "no on_request_writable after a short write";
    }
  }
  ASSERT_EQ(off, payload.size());
  p.run();
}

TEST(H3Connection, BackpressureAndFramingUnderPartialWrites) {
  MemoryPairConfig pc;
  pc.stream_send_buffer = 1000;
  H3Pair p(pc);
  p.run();
  Bytes payload(200000);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7 + i / 256);
  auto id = p.client.send_request(get_request(), false);
  ASSERT_TRUE(id);
  pump_body(p, *id, true, payload);
  EXPECT_EQ(p.se.body[*id], payload);
  EXPECT_TRUE(p.se.body_fin[*id]);
  p.server.send_response(*id, {{":status", "200"}}, false);
  pump_body(p, *id, false, payload);
  EXPECT_EQ(p.ce.body[*id], payload);
  EXPECT_TRUE(p.ce.body_fin[*id]);
  EXPECT_FALSE(p.ce.close_code);
  EXPECT_FALSE(p.se.close_code);
}

TEST(H3Connection, BodyIsNotConsumedUntilTheApplicationSaysSo) {
  MemoryPairConfig pc;
  pc.stream_send_buffer = 100;
  H3Pair p(pc);
  p.se.auto_consume = false;
  p.run();
  auto id = p.client.send_request(get_request(), false);
  p.run();
  // The server connection credits frame headers itself, so eventually the whole 100-byte window is
  // unconsumed payload; the sender holds at most one small frame (16 bytes) on top.
  size_t sent = 0;
  const Bytes chunk(50, 'x');
  for (int i = 0; i < 20; ++i) {
    sent += p.client.send_body(*id, chunk, false);
    p.run();
  }
  EXPECT_EQ(p.se.body[*id].size(), 100u);
  EXPECT_GT(sent, 100u);
  EXPECT_LE(sent, 116u);
  EXPECT_EQ(p.client.send_body(*id, chunk, false), 0u);
  p.server.consume(*id, 100);
  p.run();
  EXPECT_FALSE(p.ce.request_writable.empty());
  EXPECT_EQ(p.se.body[*id].size(), sent);  // the queued frame went out first
  EXPECT_GT(p.client.send_body(*id, chunk, false), 0u);
}

TEST(H3Connection, RawRequestOneByteAtATime) {
  MemoryPairConfig pc;
  pc.max_delivery_chunk = 1;
  RawPair r(pc);
  r.default_control();
  const Bytes req = cat({headers_frame(get_request("/slow")), data_frame("abc"), data_frame("")});
  StreamId id = r.bidi(req, true);
  ASSERT_EQ(r.ev.headers.size(), 1u);
  EXPECT_EQ(*find_header(r.ev.headers[0].headers, ":path"), "/slow");
  EXPECT_EQ(str(r.ev.body[id]), "abc");
  EXPECT_TRUE(r.ev.body_fin[id]);
  EXPECT_FALSE(r.ev.close_code);
}

TEST(H3Connection, ReservedAndUnknownFramesAreSkipped) {
  RawPair r;
  Bytes ctl = control_stream(settings_pairs({{0x08, 1}}));
  append_frame(ctl, 0x21, Bytes(100, 1));       // reserved on the control stream
  append_frame(ctl, 0xabcdef, Bytes(5000, 2));  // unknown, larger than the control-frame cap
  r.uni(ctl);
  Bytes req = headers_frame(get_request());
  append_frame(req, 0x1f * 2 + 0x21, Bytes(10, 3));  // reserved between HEADERS and DATA
  append_bytes(req, data_frame("ab"));
  append_frame(req, 0x7777, Bytes(100000, 4));  // unknown and large: skipped, not buffered
  append_bytes(req, data_frame("cd"));
  StreamId id = *r.peer().open_bidi_stream();
  r.send_all(id, req, true);  // only completes if the skipped bytes are credited back
  EXPECT_FALSE(r.ev.close_code);
  EXPECT_EQ(str(r.ev.body[id]), "abcd");
  EXPECT_TRUE(r.ev.body_fin[id]);
}

TEST(H3Connection, DatagramRoundTrip) {
  H3Pair p;
  p.run();
  EXPECT_TRUE(p.client.send_datagram(0, bytes("ping")));
  EXPECT_TRUE(p.client.send_datagram(4 * 100, bytes("big id")));
  p.run();
  ASSERT_EQ(p.se.datagrams.size(), 2u);
  EXPECT_EQ(p.se.datagrams[0], (std::pair<uint64_t, Bytes>{0, bytes("ping")}));
  EXPECT_EQ(p.se.datagrams[1], (std::pair<uint64_t, Bytes>{100, bytes("big id")}));
  EXPECT_TRUE(p.server.send_datagram(0, bytes("pong")));
  p.run();
  ASSERT_EQ(p.ce.datagrams.size(), 1u);
  EXPECT_EQ(p.ce.datagrams[0].second, bytes("pong"));
  // Sizes: quarter stream id 0 takes one byte of the transport's 1200.
  EXPECT_EQ(p.client.max_datagram_payload(0), 1199u);
  EXPECT_EQ(p.client.max_datagram_payload(4 * 100), 1198u);
  EXPECT_TRUE(p.client.send_datagram(0, Bytes(1199, 1)));
  EXPECT_FALSE(p.client.send_datagram(0, Bytes(1200, 1)));
}

TEST(H3Connection, DatagramsNeedBothSides) {
  Config cc = wt_config();
  cc.local.h3_datagram = false;
  H3Pair p({}, cc, wt_config());
  p.run();
  EXPECT_FALSE(p.client.send_datagram(0, bytes("x")));  // we did not enable them
  EXPECT_EQ(p.client.max_datagram_payload(0), 0u);
  EXPECT_FALSE(p.server.send_datagram(0, bytes("x")));  // the peer did not
  EXPECT_EQ(p.server.max_datagram_payload(0), 0u);
}

TEST(H3Connection, MalformedDatagramsAreDropped) {
  RawPair r;
  r.default_control();
  r.peer().send_datagram(Bytes{});            // no quarter stream id
  r.peer().send_datagram(Bytes{0x40});        // truncated varint
  r.peer().send_datagram(Bytes{0x80, 0x00});  // truncated varint
  r.peer().send_datagram(Bytes{0x01, 'z'});   // fine: quarter 1
  r.pair.run();
  ASSERT_EQ(r.ev.datagrams.size(), 1u);
  EXPECT_EQ(r.ev.datagrams[0], (std::pair<uint64_t, Bytes>{1, bytes("z")}));
  EXPECT_FALSE(r.ev.close_code);
}

TEST(H3Connection, GoawayAndRejectionOfLaterRequests) {
  H3Pair p;
  p.run();
  auto a = p.client.send_request(get_request(), true);
  p.run();
  p.server.send_goaway(4);
  p.run();
  EXPECT_EQ(p.ce.goaways, std::vector<uint64_t>{4});
  auto b = p.client.send_request(get_request(), true);  // id 4: at the GOAWAY id
  ASSERT_TRUE(b);
  p.run();
  EXPECT_EQ(p.se.headers.size(), 1u);  // only request 0 reached the application
  EXPECT_EQ(p.ce.request_resets[*b], kH3RequestRejected);
  EXPECT_TRUE(p.server.send_response(*a, {{":status", "200"}}, true));
}

}  // namespace
}  // namespace wtmesh::h3::test

// 0-RTT (RFC 9114 §7.2.4.2): the server's SETTINGS remembered from the ticket's connection let a
// client send before this server's SETTINGS arrive; SETTINGS that take them back end the connection.
namespace wtmesh::h3::test {
namespace {

TEST(H3Connection, RememberedSettingsStandInUntilTheServersArrive) {
  H3Pair p;
  EXPECT_FALSE(p.client.peer_settings());
  p.client.remember_peer_settings(wt_config().local);
  ASSERT_TRUE(p.client.peer_settings());
  EXPECT_TRUE(p.client.peer_settings()->webtransport);
  const auto id = p.client.send_request(
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/early"}}, true);
  ASSERT_TRUE(id);
  p.run();
  ASSERT_EQ(p.se.headers.size(), 1u);
  EXPECT_EQ(*find_header(p.se.headers[0].headers, ":path"), "/early");
  EXPECT_FALSE(p.ce.close_code);
  p.client.remember_peer_settings(Settings{});  // after SETTINGS arrived: ignored
  EXPECT_TRUE(p.client.peer_settings()->webtransport);
}

TEST(H3Connection, SettingsThatTakeBackRememberedOnesAreASettingsError) {
  Config sc = wt_config();
  sc.local.webtransport = false;
  H3Pair p({}, wt_config(), sc);
  p.client.remember_peer_settings(wt_config().local);
  p.run();
  ASSERT_TRUE(p.ce.close_code);
  EXPECT_EQ(*p.ce.close_code, kH3SettingsError);
}

}  // namespace
}  // namespace wtmesh::h3::test
