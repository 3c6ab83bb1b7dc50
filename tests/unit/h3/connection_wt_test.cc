// h3::Connection: extended CONNECT and the WebTransport stream intercept (bidi 0x41 / uni 0x54).
#include <gtest/gtest.h>

#include <set>

#include "h3_test_util.h"

namespace wtmesh::h3::test {
namespace {

TEST(H3WebTransport, ExtendedConnectAccepted) {
  H3Pair p;
  p.run();
  auto id = p.client.send_request(wt_connect(), false);
  ASSERT_TRUE(id);
  p.run();
  ASSERT_EQ(p.se.headers.size(), 1u);
  EXPECT_EQ(*find_header(p.se.headers[0].headers, ":protocol"), "webtransport");
  EXPECT_EQ(*find_header(p.se.headers[0].headers, "sec-webtransport-http3-draft02"), "1");
  EXPECT_FALSE(p.se.headers[0].fin);
  EXPECT_TRUE(
      p.server.send_response(*id, {{":status", "200"}, {"sec-webtransport-http3-draft", "draft02"}}, false));
  p.run();
  ASSERT_EQ(p.ce.headers.size(), 1u);
  EXPECT_FALSE(p.ce.headers[0].fin);
  // Capsules travel as DATA on the CONNECT stream.
  EXPECT_EQ(p.client.send_body(*id, bytes("capsule"), false), 7u);
  p.run();
  EXPECT_EQ(str(p.se.body[*id]), "capsule");
}

TEST(H3WebTransport, ExtendedConnectRejectedWithoutEnableConnectProtocol) {
  Config sc = wt_config();
  sc.local.enable_connect_protocol = false;
  H3Pair p({}, wt_config(), sc);
  p.run();
  auto id = p.client.send_request(wt_connect(), false);
  p.run();
  EXPECT_TRUE(p.se.headers.empty());
  EXPECT_EQ(p.ce.request_resets[*id], kH3MessageError);
  EXPECT_FALSE(p.se.close_code);
}

TEST(H3WebTransport, WebTransportProtocolH3Accepted) {
  H3Pair p;
  p.run();
  HeaderList h = wt_connect();
  h[1].value = "webtransport-h3";
  p.client.send_request(h, false);
  p.run();
  ASSERT_EQ(p.se.headers.size(), 1u);
}

TEST(H3WebTransport, BidiStreamsBothDirections) {
  H3Pair p;
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  p.server.send_response(*session, {{":status", "200"}}, false);
  p.run();
  // Client-initiated.
  auto cs = p.client.open_wt_stream(*session, true);
  ASSERT_TRUE(cs);
  EXPECT_EQ(p.client.wt_write(*cs, bytes("from client"), false), 11u);
  p.run();
  EXPECT_EQ(p.se.wt_streams[*cs], static_cast<uint64_t>(*session));
  EXPECT_EQ(str(p.se.wt_data[*cs]), "from client");
  EXPECT_EQ(p.server.wt_write(*cs, bytes("reply"), true), 5u);
  p.client.wt_write(*cs, {}, true);
  p.run();
  EXPECT_EQ(str(p.ce.wt_data[*cs]), "reply");  // raw bytes from offset 0 on our own stream
  EXPECT_TRUE(p.ce.wt_fin[*cs]);
  EXPECT_TRUE(p.se.wt_fin[*cs]);
  EXPECT_EQ(p.ce.wt_closed, std::vector<StreamId>{*cs});
  EXPECT_EQ(p.se.wt_closed, std::vector<StreamId>{*cs});
  // Server-initiated (allowed once WebTransport is negotiated).
  auto ss = p.server.open_wt_stream(*session, true);
  ASSERT_TRUE(ss);
  EXPECT_EQ(*ss % 4, 1);
  p.server.wt_write(*ss, bytes("push"), false);
  p.run();
  EXPECT_EQ(p.ce.wt_streams[*ss], static_cast<uint64_t>(*session));
  EXPECT_EQ(str(p.ce.wt_data[*ss]), "push");
  EXPECT_FALSE(p.ce.close_code);
}

TEST(H3WebTransport, UniStreamsBothDirections) {
  H3Pair p;
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  auto cu = p.client.open_wt_stream(*session, false);
  ASSERT_TRUE(cu);
  p.client.wt_write(*cu, bytes("up"), true);
  auto su = p.server.open_wt_stream(*session, false);
  ASSERT_TRUE(su);
  p.server.wt_write(*su, bytes("down"), true);
  p.run();
  EXPECT_EQ(p.se.wt_streams[*cu], static_cast<uint64_t>(*session));
  EXPECT_EQ(str(p.se.wt_data[*cu]), "up");
  EXPECT_TRUE(p.se.wt_fin[*cu]);
  EXPECT_EQ(p.ce.wt_streams[*su], static_cast<uint64_t>(*session));
  EXPECT_EQ(str(p.ce.wt_data[*su]), "down");
  EXPECT_EQ(std::set<StreamId>(p.ce.wt_closed.begin(), p.ce.wt_closed.end()), (std::set<StreamId>{*su, *cu}));
  EXPECT_EQ(p.server.wt_write(*cu, bytes("x"), false), 0u);  // peer's uni stream: no send side
}

TEST(H3WebTransport, WtBytesAreNeverParsedAsFrames) {
  H3Pair p;
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  auto cs = p.client.open_wt_stream(*session, true);
  // Bytes that would be a SETTINGS frame / a huge HEADERS frame if parsed.
  const Bytes evil{0x04, 0x00, 0x01, 0x80, 0xff, 0xff, 0xff, 0x00, 0x00};
  p.client.wt_write(*cs, evil, true);
  p.run();
  EXPECT_EQ(p.se.wt_data[*cs], evil);
  EXPECT_FALSE(p.se.close_code);
}

TEST(H3WebTransport, NonMinimalVarintsBidi) {
  RawPair r;
  r.default_control();
  // 0x41 as a 4-byte varint, session id 0 as an 8-byte varint.
  StreamId id = r.bidi(Bytes{0x80, 0x00, 0x00, 0x41, 0xc0, 0, 0, 0, 0, 0, 0, 0x00, 'h', 'i'});
  ASSERT_EQ(r.ev.wt_streams.count(id), 1u);
  EXPECT_EQ(r.ev.wt_streams[id], 0u);
  EXPECT_EQ(str(r.ev.wt_data[id]), "hi");
  EXPECT_FALSE(r.ev.close_code);
}

TEST(H3WebTransport, NonMinimalVarintsUni) {
  RawPair r;
  r.default_control();
  // 0x54 as an 8-byte varint, session id 4 as a 2-byte varint.
  StreamId id = r.uni(Bytes{0xc0, 0, 0, 0, 0, 0, 0, 0x54, 0x40, 0x04, 'y', 'o'}, true);
  EXPECT_EQ(r.ev.wt_streams[id], 4u);
  EXPECT_EQ(str(r.ev.wt_data[id]), "yo");
  EXPECT_TRUE(r.ev.wt_fin[id]);
}

TEST(H3WebTransport, HeadersSplitOneByteAtATime) {
  MemoryPairConfig pc;
  pc.max_delivery_chunk = 1;
  H3Pair p(pc);
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  ASSERT_EQ(p.se.headers.size(), 1u);
  p.server.send_response(*session, {{":status", "200"}}, false);
  p.run();
  ASSERT_EQ(p.ce.headers.size(), 1u);
  auto bidi = p.client.open_wt_stream(*session, true);
  auto uni = p.client.open_wt_stream(*session, false);
  auto sbidi = p.server.open_wt_stream(*session, true);
  p.client.wt_write(*bidi, bytes("abc"), true);
  p.client.wt_write(*uni, bytes("def"), true);
  p.server.wt_write(*sbidi, bytes("ghi"), true);
  EXPECT_TRUE(p.client.send_datagram(*session, bytes("dg")));
  p.run();
  EXPECT_EQ(str(p.se.wt_data[*bidi]), "abc");
  EXPECT_EQ(str(p.se.wt_data[*uni]), "def");
  EXPECT_EQ(str(p.ce.wt_data[*sbidi]), "ghi");
  EXPECT_TRUE(p.se.wt_fin[*bidi] && p.se.wt_fin[*uni] && p.ce.wt_fin[*sbidi]);
  ASSERT_EQ(p.se.datagrams.size(), 1u);
  EXPECT_FALSE(p.ce.close_code);
  EXPECT_FALSE(p.se.close_code);
}

TEST(H3WebTransport, RawHeaderSplitAcrossDeliveries) {
  RawPair r;
  r.default_control();
  StreamId id = *r.peer().open_bidi_stream();
  const Bytes all{0x40, 0x41, 0x44, 0x00, 'o', 'k'};  // session id 0x400 (2-byte varint)
  for (uint8_t b : all) r.send(id, Bytes{b});
  EXPECT_EQ(r.ev.wt_streams[id], 0x400u);
  EXPECT_EQ(str(r.ev.wt_data[id]), "ok");
}

TEST(H3WebTransport, ResetAndStopSendingAreReported) {
  H3Pair p;
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  auto a = p.client.open_wt_stream(*session, true);
  auto b = p.client.open_wt_stream(*session, true);
  p.client.wt_write(*a, bytes("1"), false);
  p.client.wt_write(*b, bytes("2"), false);
  p.run();
  p.client.wt_reset(*a, 0x52e4a40fa8db);
  p.server.wt_stop_sending(*b, 0x52e4a40fa8dc);
  p.run();
  EXPECT_EQ(p.se.wt_resets[*a], 0x52e4a40fa8dbu);
  EXPECT_EQ(p.ce.wt_stops[*b], 0x52e4a40fa8dcu);
  EXPECT_EQ(p.se.wt_resets[*b], 0x52e4a40fa8dcu);  // the client transport reset in response
  EXPECT_EQ(p.client.wt_send_capacity(*b), 0u);
  EXPECT_EQ(p.client.wt_write(*b, bytes("x"), false), 0u);
}

TEST(H3WebTransport, WtStreamIgnoredWhenWebTransportIsOff) {
  Config off;  // no WebTransport locally: 0x54 is an unknown stream type, 0x41 an unknown frame
  RawPair r({}, off);
  r.control(settings_pairs({}));
  StreamId uni = r.uni(Bytes{0x40, 0x54, 0x00, 'x'});
  EXPECT_EQ(r.raw.stops[uni], kH3StreamCreationError);
  EXPECT_TRUE(r.ev.wt_streams.empty());
  // On a bidi stream 0x41 is then a reserved-looking unknown frame type: its "length" (the session id
  // 0) is skipped and a request follows.
  StreamId bidi = r.bidi(cat({Bytes{0x40, 0x41, 0x00}, headers_frame(get_request())}), true);
  EXPECT_TRUE(r.ev.wt_streams.empty());
  ASSERT_EQ(r.ev.headers.size(), 1u);
  EXPECT_EQ(r.ev.headers[0].id, bidi);
  EXPECT_FALSE(r.ev.close_code);
}

TEST(H3WebTransport, SessionIdMustBeAClientBidiStream) {
  RawPair r;
  r.default_control();
  r.bidi(Bytes{0x40, 0x41, 0x02});
  EXPECT_EQ(r.raw.close_code, kH3IdError);
}

TEST(H3WebTransport, TruncatedWtHeaderIsDropped) {
  RawPair r;
  r.default_control();
  StreamId uni = r.uni(Bytes{0x40, 0x54, 0x40}, true);  // session id varint cut short
  EXPECT_TRUE(r.ev.wt_streams.empty());
  EXPECT_FALSE(r.ev.close_code);
  (void)uni;
  const size_t before = r.conn.stream_state_count();
  StreamId bidi = r.bidi(Bytes{0x40, 0x41}, true);
  EXPECT_EQ(r.raw.resets[bidi], kH3FrameError);
  r.pair.run();
  EXPECT_EQ(r.conn.stream_state_count(), before);
}

TEST(H3WebTransport, WtWriteBackpressure) {
  MemoryPairConfig pc;
  pc.stream_send_buffer = 64;
  H3Pair p(pc);
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  p.se.auto_consume = false;
  auto s = p.client.open_wt_stream(*session, true);
  EXPECT_EQ(p.client.wt_send_capacity(*s), 64u - 3u);  // header 0x40 0x41 0x00 already queued
  EXPECT_EQ(p.client.wt_write(*s, Bytes(100, 'z'), false), 61u);
  p.run();
  EXPECT_EQ(p.se.wt_data[*s].size(), 61u);
  // The server connection credits the 3 header bytes itself; the 61 payload bytes wait for the app.
  EXPECT_EQ(p.ce.wt_writable, std::vector<StreamId>{*s});
  EXPECT_EQ(p.client.wt_send_capacity(*s), 3u);
  EXPECT_EQ(p.client.wt_write(*s, Bytes(100, 'z'), false), 3u);
  p.run();
  EXPECT_EQ(p.client.wt_send_capacity(*s), 0u);
  p.server.consume(*s, 64);
  p.run();
  EXPECT_EQ(p.ce.wt_writable.size(), 2u);
  EXPECT_EQ(p.client.wt_send_capacity(*s), 64u);
}

// A draining edge sends GOAWAY after the sessions it serves (next_peer_bidi_id): a new request or
// session request is refused, while the accepted session still gets the client's new WebTransport
// streams (they are no requests).
TEST(H3WebTransport, GoawayRefusesRequestsButNotStreamsOfAcceptedSessions) {
  H3Pair p;
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  p.server.send_response(*session, {{":status", "200"}}, false);
  p.run();
  EXPECT_EQ(p.server.next_peer_bidi_id(), static_cast<uint64_t>(*session) + 4);
  p.server.send_goaway(p.server.next_peer_bidi_id());
  p.run();
  EXPECT_EQ(p.ce.goaways, std::vector<uint64_t>{static_cast<uint64_t>(*session) + 4});
  auto cs = p.client.open_wt_stream(*session, true);  // above the GOAWAY id
  ASSERT_TRUE(cs);
  EXPECT_GE(static_cast<uint64_t>(*cs), p.server.next_peer_bidi_id() - 4);
  p.client.wt_write(*cs, bytes("still served"), false);
  auto late = p.client.send_request(wt_connect(), false);  // a second session: refused
  ASSERT_TRUE(late);
  p.run();
  EXPECT_EQ(str(p.se.wt_data[*cs]), "still served");
  EXPECT_EQ(p.se.headers.size(), 1u);  // only the first session request reached the server
  EXPECT_EQ(p.ce.request_resets[*late], kH3RequestRejected);
  EXPECT_FALSE(p.ce.close_code);
  EXPECT_FALSE(p.se.close_code);
}

}  // namespace
}  // namespace wtmesh::h3::test
