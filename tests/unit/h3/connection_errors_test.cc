// h3::Connection: every cap and protocol error, driven by a hand-written peer.
#include <gtest/gtest.h>

#include <algorithm>

#include "h3/connection_impl.h"
#include "h3_test_util.h"

namespace wtmesh::h3::test {
namespace {

// --- streams reset before any byte (HTTP/3 rapid reset, tests/peers/edge_attacks_quic.sh)

// A request stream reset before its HEADERS arrived: the connection never saw it, yet must reset its
// own side, or the stream never closes and the client's stream credit is gone for good.
TEST(H3Errors, AStreamResetBeforeItsFirstByteIsResetBack) {
  RawPair r;
  r.default_control();
  for (int i = 0; i < 3; ++i) {
    const StreamId id = *r.peer().open_bidi_stream();
    r.peer().reset_stream(id, kH3RequestCancelled);
    r.pair.run();
    EXPECT_EQ(r.raw.resets[id], kH3RequestCancelled) << "stream " << id;
    EXPECT_TRUE(std::count(r.raw.closed.begin(), r.raw.closed.end(), id)) << "stream " << id;
    EXPECT_TRUE(r.ev.request_resets.empty()) << "the application never saw it";
  }
  EXPECT_FALSE(r.raw.close_code) << "not a connection error";
}

// --- control stream

TEST(H3Errors, ControlFrameTooLarge) {
  RawPair r;  // max_control_frame_size 4096
  Bytes settings;
  for (uint64_t i = 0; i < 2000; ++i) {  // GREASE pairs: > 4096 bytes of SETTINGS
    append_varint(settings, 0x1f * (i + 1) + 0x21);
    append_varint(settings, 0);
  }
  ASSERT_GT(settings.size(), 4096u);
  r.control(settings);
  EXPECT_EQ(r.raw.close_code, kH3ExcessiveLoad);
  EXPECT_EQ(r.ev.close_code, kH3ExcessiveLoad);
}

TEST(H3Errors, ControlGoawayTooLarge) {
  RawPair r;
  StreamId ctl = r.default_control();
  Bytes goaway;
  append_frame_header(goaway, kFrameGoaway, 4097);
  r.send(ctl, goaway);
  EXPECT_EQ(r.raw.close_code, kH3ExcessiveLoad);
}

TEST(H3Errors, MissingSettings) {
  RawPair r;
  Bytes ctl{0x00};
  append_varint_frame(ctl, kFrameGoaway, 0);
  r.uni(ctl);
  EXPECT_EQ(r.raw.close_code, kH3MissingSettings);
}

TEST(H3Errors, ReservedFrameBeforeSettingsIsMissingSettings) {
  RawPair r;
  Bytes ctl{0x00};
  append_frame(ctl, 0x21, Bytes{});
  r.uni(ctl);
  EXPECT_EQ(r.raw.close_code, kH3MissingSettings);
}

TEST(H3Errors, SettingsErrors) {
  const std::pair<Bytes, uint64_t> cases[] = {
      {settings_pairs({{0x06, 100}, {0x06, 200}}), kH3SettingsError},
      {settings_pairs({{0x02, 1}}), kH3SettingsError},
      {settings_pairs({{0x05, 16384}}), kH3SettingsError},
      {settings_pairs({{0x08, 2}}), kH3SettingsError},
      {settings_pairs({{0x33, 7}}), kH3SettingsError},
      {Bytes{0x06}, kH3FrameError},
  };
  for (const auto& [payload, code] : cases) {
    RawPair r;
    r.control(payload);
    EXPECT_EQ(r.raw.close_code, code);
    EXPECT_FALSE(r.conn.peer_settings());
  }
}

TEST(H3Errors, SecondSettings) {
  RawPair r;
  StreamId ctl = r.default_control();
  Bytes again;
  append_frame(again, kFrameSettings, Bytes{});
  r.send(ctl, again);
  EXPECT_EQ(r.raw.close_code, kH3FrameUnexpected);
}

TEST(H3Errors, DataAndHeadersOnControlStream) {
  for (uint64_t type : {kFrameData, kFrameHeaders, kFramePushPromise, uint64_t{0x06}}) {
    RawPair r;
    StreamId ctl = r.default_control();
    Bytes f;
    append_frame(f, type, Bytes{0});
    r.send(ctl, f);
    EXPECT_EQ(r.raw.close_code, kH3FrameUnexpected) << type;
  }
}

TEST(H3Errors, SecondControlStream) {
  RawPair r;
  r.default_control();
  r.default_control();
  EXPECT_EQ(r.raw.close_code, kH3StreamCreationError);
}

TEST(H3Errors, SecondQpackStreams) {
  for (uint8_t type : {0x02, 0x03}) {
    RawPair r;
    r.default_control();
    r.uni(Bytes{type});
    EXPECT_FALSE(r.raw.close_code);
    r.uni(Bytes{type});
    EXPECT_EQ(r.raw.close_code, kH3StreamCreationError);
  }
}

TEST(H3Errors, ControlStreamClosed) {
  RawPair r;
  StreamId ctl = r.default_control();
  r.send(ctl, {}, true);
  EXPECT_EQ(r.raw.close_code, kH3ClosedCriticalStream);
  RawPair r2;
  StreamId ctl2 = r2.default_control();
  r2.peer().reset_stream(ctl2, 0);
  r2.pair.run();
  EXPECT_EQ(r2.raw.close_code, kH3ClosedCriticalStream);
  RawPair r3;
  r3.default_control();
  StreamId enc = r3.uni(Bytes{0x02});
  r3.send(enc, {}, true);
  EXPECT_EQ(r3.raw.close_code, kH3ClosedCriticalStream);
}

TEST(H3Errors, StopSendingOnOurControlStream) {
  RawPair r;
  r.peer().stop_sending(3, kH3NoError);  // the server's control stream
  r.pair.run();
  EXPECT_EQ(r.raw.close_code, kH3ClosedCriticalStream);
}

TEST(H3Errors, GoawayRules) {
  RawPair r({}, wt_config(), /*raw_is_server=*/true);  // we are the client
  StreamId ctl = r.default_control();
  Bytes g;
  append_varint_frame(g, kFrameGoaway, 8);
  r.send(ctl, g);
  EXPECT_EQ(r.ev.goaways, std::vector<uint64_t>{8});
  Bytes up;
  append_varint_frame(up, kFrameGoaway, 12);  // may not increase
  r.send(ctl, up);
  EXPECT_EQ(r.raw.close_code, kH3IdError);
  RawPair r2({}, wt_config(), true);
  StreamId ctl2 = r2.default_control();
  Bytes bad;
  append_varint_frame(bad, kFrameGoaway, 5);  // not a client bidi stream id
  r2.send(ctl2, bad);
  EXPECT_EQ(r2.raw.close_code, kH3IdError);
  RawPair r3({}, wt_config(), true);
  StreamId ctl3 = r3.default_control();
  Bytes malformed;
  append_frame(malformed, kFrameGoaway, Bytes{0x04, 0x00});  // trailing byte
  r3.send(ctl3, malformed);
  EXPECT_EQ(r3.raw.close_code, kH3FrameError);
}

TEST(H3Errors, MaxPushIdFromServer) {
  RawPair r({}, wt_config(), true);
  StreamId ctl = r.default_control();
  Bytes m;
  append_varint_frame(m, kFrameMaxPushId, 1);
  r.send(ctl, m);
  EXPECT_EQ(r.raw.close_code, kH3FrameUnexpected);
}

TEST(H3Errors, PushStreams) {
  RawPair r;  // server receiving a push stream
  r.default_control();
  r.uni(Bytes{0x01, 0x00});
  EXPECT_EQ(r.raw.close_code, kH3StreamCreationError);
  RawPair c({}, wt_config(), true);  // client receiving one it never allowed
  c.default_control();
  c.uni(Bytes{0x01, 0x00});
  EXPECT_EQ(c.raw.close_code, kH3IdError);
}

TEST(H3Errors, UnknownAndReservedStreamTypesDiscarded) {
  RawPair r;
  r.default_control();
  const size_t baseline = r.conn.stream_state_count();
  StreamId reserved = r.uni(Bytes{0x21, 1, 2, 3});
  Bytes big_type;
  append_varint(big_type, 0x1234567);
  append_bytes(big_type, Bytes(1000, 9));
  StreamId unknown = r.uni(big_type);
  EXPECT_EQ(r.raw.stops[reserved], kH3StreamCreationError);
  EXPECT_EQ(r.raw.stops[unknown], kH3StreamCreationError);
  EXPECT_FALSE(r.raw.close_code);
  r.pair.run();
  EXPECT_EQ(r.conn.stream_state_count(), baseline);  // both streams closed and forgotten
  // A stream that ends before its type is tolerated too.
  StreamId empty = *r.peer().open_uni_stream();
  r.send(empty, {}, true);
  EXPECT_FALSE(r.raw.close_code);
  EXPECT_EQ(r.conn.stream_state_count(), baseline);
}

TEST(H3Errors, QpackEncoderStreamWithCapacity) {
  RawPair r;
  r.default_control();
  r.uni(Bytes{0x02, 0x20});  // Set Dynamic Table Capacity 0: fine
  EXPECT_FALSE(r.raw.close_code);
  RawPair r2;
  r2.default_control();
  r2.uni(Bytes{0x02, 0x3f, 0x45});  // capacity 100 > our 0
  EXPECT_EQ(r2.raw.close_code, kQpackEncoderStreamError);
}

TEST(H3Errors, ClientRejectsServerBidiStream) {
  RawPair r({}, wt_config(), true);
  r.default_control();
  r.bidi(headers_frame({{":status", "200"}}));
  EXPECT_EQ(r.raw.close_code, kH3StreamCreationError);
}

// --- request streams

TEST(H3Errors, HeaderSectionTooBigGets431) {
  Config sc = wt_config();
  sc.max_field_section_size = 1000;
  RawPair r({}, sc);
  r.default_control();
  HeaderList h = get_request();
  h.push_back({"x-big", std::string(2000, 'a')});
  StreamId id = r.bidi(headers_frame(h), false);
  EXPECT_TRUE(r.ev.headers.empty());  // the application never sees it
  EXPECT_EQ(r.raw.stops[id], kH3ExcessiveLoad);
  EXPECT_TRUE(r.raw.fin[id]);
  QpackDecoder dec(16384);
  FrameReader reader(classify_request_frame, 16384);
  size_t used = 0;
  FrameEvent ev = reader.next(r.raw.data[id], used);
  ASSERT_EQ(ev.kind, FrameEvent::Kind::kFrame);
  DecodedHeaders d = dec.decode(id, ev.payload);
  ASSERT_EQ(d.status, DecodedHeaders::Status::kOk);
  EXPECT_EQ(*find_header(d.headers, ":status"), "431");
  EXPECT_FALSE(r.raw.close_code);  // a stream error, not a connection error
}

TEST(H3Errors, DecodedHeaderExpansionGets431) {
  // A small HEADERS frame that expands past the limit (static-table references).
  Config sc = wt_config();
  sc.max_field_section_size = 2000;
  RawPair r({}, sc);
  r.default_control();
  Bytes block{0x00, 0x00, 0xc0 | 17, 0xc0 | 23, 0xc0 | 1, 0x50, 0x01, 'a'};  // GET https / :authority a
  block.insert(block.end(), 300, 0xc0 | 31);  // 300 x "accept-encoding: gzip, deflate, br"
  Bytes frame;
  append_frame(frame, kFrameHeaders, block);
  ASSERT_LT(frame.size(), 2000u);
  StreamId id = r.bidi(frame, true);
  EXPECT_TRUE(r.ev.headers.empty());
  EXPECT_EQ(r.raw.stops.count(id), 0u);  // FIN already arrived: nothing to stop
  EXPECT_TRUE(r.raw.fin[id]);
  EXPECT_FALSE(r.raw.data[id].empty());
}

TEST(H3Errors, HeaderSectionTooBigThroughConnections) {
  Config sc = wt_config();
  sc.max_field_section_size = 1000;
  H3Pair p({}, wt_config(), sc);
  // Sent before the server's SETTINGS arrive, so the client cannot know the limit yet.
  HeaderList h = get_request();
  h.push_back({"x-big", std::string(2000, 'a')});
  auto id = p.client.send_request(h, false);
  ASSERT_TRUE(id);
  p.run();
  ASSERT_EQ(p.ce.headers.size(), 1u);
  EXPECT_EQ(*find_header(p.ce.headers[0].headers, ":status"), "431");
  EXPECT_EQ(p.ce.request_resets[*id], kH3ExcessiveLoad);
  EXPECT_TRUE(p.se.headers.empty());
  // Now the client knows the limit and refuses to send such a section at all.
  EXPECT_FALSE(p.client.send_request(h, false));
  EXPECT_FALSE(p.se.close_code);
}

TEST(H3Errors, QueuedFramingCap) {
  // The peer allows a 4 MiB field section, but we never queue more than kMaxPendingFraming bytes of
  // HEADERS beyond what the transport takes.
  Config sc = wt_config();
  sc.max_field_section_size = 4 << 20;
  H3Pair p({}, wt_config(), sc);
  p.run();
  HeaderList h = get_request();
  h.push_back({"x-huge", std::string(kMaxPendingFraming + 1, '{')});  // no Huffman gain
  EXPECT_FALSE(p.client.send_request(h, true));
  HeaderList ok = get_request();
  for (int i = 0; i < 3; ++i) ok.push_back({"x-big", std::string(40000, 'h')});  // > the 64 KiB buffer
  auto id = p.client.send_request(ok, true);
  ASSERT_TRUE(id);
  p.run();
  ASSERT_EQ(p.se.headers.size(), 1u);
  EXPECT_EQ(p.se.headers[0].headers.size(), 7u);
}

TEST(H3Errors, ClientResetsOnOversizedResponse) {
  Config cc = wt_config();
  cc.max_field_section_size = 500;
  RawPair r({}, cc, /*raw_is_server=*/true);
  r.default_control();
  auto id = r.conn.send_request(get_request(), true);
  r.pair.run();
  r.send(*id, headers_frame({{":status", "200"}, {"x", std::string(1000, 'b')}}));
  EXPECT_EQ(r.ev.request_resets[*id], kH3ExcessiveLoad);
  EXPECT_TRUE(r.ev.headers.empty());
  EXPECT_EQ(r.raw.stops[*id], kH3ExcessiveLoad);
}

TEST(H3Errors, OversizedTrailersResetTheStream) {
  Config sc = wt_config();
  sc.max_field_section_size = 500;
  RawPair r({}, sc);
  r.default_control();
  StreamId id = r.bidi(cat({headers_frame(get_request()), data_frame("x")}));
  ASSERT_EQ(r.ev.headers.size(), 1u);
  r.send(id, headers_frame({{"x-trailer", std::string(1000, 't')}}), true);
  EXPECT_EQ(r.ev.request_resets[id], kH3ExcessiveLoad);
  EXPECT_EQ(r.raw.resets[id], kH3ExcessiveLoad);
}

TEST(H3Errors, MalformedRequestsGetMessageError) {
  const HeaderList cases[] = {
      {{":scheme", "https"}, {":authority", "a"}, {":path", "/"}},      // no :method
      {{":method", "GET"}, {":authority", "a"}, {":path", "/"}},        // no :scheme
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}},  // no :path
      {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}},       // no :authority
      {{":method", "GET"}, {":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}},
      {{":method", "GET"}, {"x", "1"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}, {":status", "200"}},
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}, {"Upper", "x"}},
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}, {"connection", "x"}},
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}, {":protocol", "x"}},
      {{":method", "CONNECT"}, {":authority", "a"}, {":path", "/"}},  // plain CONNECT with :path
      {{":method", "CONNECT"}},                                       // CONNECT without :authority
      {{":method", "CONNECT"},
       {":protocol", "webtransport"},
       {":authority", "a"}},  // extended: no :scheme/:path
  };
  for (const HeaderList& h : cases) {
    RawPair r;
    r.default_control();
    StreamId id = r.bidi(headers_frame(h), true);
    EXPECT_TRUE(r.ev.headers.empty());
    EXPECT_EQ(r.raw.resets[id], kH3MessageError);
    EXPECT_FALSE(r.raw.close_code);
  }
}

TEST(H3Errors, PlainConnectIsValid) {
  RawPair r;
  r.default_control();
  r.bidi(headers_frame({{":method", "CONNECT"}, {":authority", "host:443"}}));
  EXPECT_EQ(r.ev.headers.size(), 1u);
}

TEST(H3Errors, MalformedResponse) {
  RawPair r({}, wt_config(), true);
  r.default_control();
  auto id = r.conn.send_request(get_request(), true);
  r.pair.run();
  r.send(*id, headers_frame({{":status", "2000"}}));
  EXPECT_EQ(r.ev.request_resets[*id], kH3MessageError);
  EXPECT_TRUE(r.ev.headers.empty());
}

TEST(H3Errors, DataBeforeHeaders) {
  RawPair r;
  r.default_control();
  r.bidi(data_frame("early"));
  EXPECT_EQ(r.raw.close_code, kH3FrameUnexpected);
}

TEST(H3Errors, DataAfterTrailers) {
  RawPair r;
  r.default_control();
  r.bidi(cat({headers_frame(get_request()), headers_frame({{"x-t", "1"}}), data_frame("late")}));
  EXPECT_EQ(r.raw.close_code, kH3FrameUnexpected);
}

TEST(H3Errors, ControlFramesOnRequestStream) {
  for (uint64_t type : {kFrameSettings, kFrameGoaway, kFrameMaxPushId, kFrameCancelPush, kFramePushPromise}) {
    RawPair r;
    r.default_control();
    Bytes f = headers_frame(get_request());
    append_frame(f, type, Bytes{0});
    r.bidi(f);
    EXPECT_EQ(r.raw.close_code, kH3FrameUnexpected) << type;
  }
}

TEST(H3Errors, TruncatedFrameAtFin) {
  RawPair r;
  r.default_control();
  Bytes req = headers_frame(get_request());
  append_frame_header(req, kFrameData, 10);
  append_bytes(req, bytes("short"));
  r.bidi(req, true);
  EXPECT_EQ(r.raw.close_code, kH3FrameError);
}

TEST(H3Errors, RequestWithoutHeaders) {
  RawPair r;
  r.default_control();
  StreamId a = r.bidi({}, true);
  EXPECT_EQ(r.raw.resets[a], kH3RequestIncomplete);
  StreamId b = r.bidi(Bytes{0x21, 0x00}, true);  // only a reserved frame
  EXPECT_EQ(r.raw.resets[b], kH3RequestIncomplete);
  EXPECT_FALSE(r.raw.close_code);
}

TEST(H3Errors, QpackGarbageIsConnectionError) {
  RawPair r;
  r.default_control();
  Bytes f;
  append_frame(f, kFrameHeaders, Bytes{0x00, 0x00, 0xff, 0x7f});  // static index out of range
  r.bidi(f);
  EXPECT_EQ(r.raw.close_code, kQpackDecompressionFailed);
}

TEST(H3Errors, PeerResetAndStopSendingOnRequest) {
  H3Pair p;
  p.run();
  auto id = p.client.send_request(get_request(), false);
  p.run();
  p.client.reset_request(*id, kH3RequestCancelled);
  p.run();
  EXPECT_EQ(p.se.request_resets[*id], kH3RequestCancelled);
  EXPECT_TRUE(p.ce.request_resets.empty());  // its own reset is not reported back to the client app
  EXPECT_EQ(p.se.request_closed, std::vector<StreamId>{*id});
  EXPECT_EQ(p.ce.request_closed, std::vector<StreamId>{*id});
  EXPECT_EQ(p.client.send_body(*id, bytes("x"), false), 0u);
}

TEST(H3Errors, StopSendingNoErrorIsBenign) {
  H3Pair p;
  p.run();
  auto id = p.client.send_request(get_request(), false);
  p.run();
  // The server answers in full without reading the body, then asks the client to stop.
  p.server.send_response(*id, {{":status", "200"}}, true);
  p.pair.server().stop_sending(*id, kH3NoError);
  p.run();
  EXPECT_TRUE(p.ce.request_resets.empty());
  EXPECT_EQ(p.ce.headers.size(), 1u);
  EXPECT_EQ(p.client.send_body(*id, bytes("x"), false), 0u);
}

TEST(H3Errors, ApiOnUnknownStreams) {
  H3Pair p;
  p.run();
  EXPECT_FALSE(p.server.send_response(40, {{":status", "200"}}, true));
  EXPECT_EQ(p.server.send_body(40, bytes("x"), true), 0u);
  EXPECT_EQ(p.server.wt_write(40, bytes("x"), true), 0u);
  EXPECT_EQ(p.server.wt_send_capacity(40), 0u);
  p.server.reset_request(40, 1);
  p.server.wt_reset(40, 1);
  p.server.wt_stop_sending(40, 1);
  p.server.consume(40, 10);
  EXPECT_FALSE(p.server.send_request(get_request(), true));  // servers do not send requests
  p.run();
  EXPECT_FALSE(p.se.close_code);
}

TEST(H3Errors, CloseReachesBothHandlersAndStopsEverything) {
  H3Pair p;
  p.run();
  p.client.close(kH3NoError, "done");
  p.run();
  EXPECT_EQ(p.ce.close_code, kH3NoError);
  EXPECT_EQ(p.se.close_code, kH3NoError);
  EXPECT_EQ(p.se.close_reason, "done");
  EXPECT_FALSE(p.client.send_request(get_request(), true));
  EXPECT_FALSE(p.client.open_wt_stream(0, true));
  EXPECT_FALSE(p.client.send_datagram(0, bytes("x")));
  EXPECT_EQ(p.client.stream_state_count(), 0u);
}

// --- per-stream state cleanup (CVE-2026-21438 class)

TEST(H3Leaks, TenThousandRequestStreams) {
  H3Pair p;
  p.run();
  const size_t client_base = p.client.stream_state_count();
  const size_t server_base = p.server.stream_state_count();
  EXPECT_EQ(client_base, 2u);  // our control stream and the peer's (no QPACK streams either way)
  size_t done = 0;
  for (int i = 0; i < 10000; ++i) {
    auto id = p.client.send_request(get_request(), false);
    ASSERT_TRUE(id) << i;
    p.client.send_body(*id, bytes("req"), true);
    p.run();
    ASSERT_TRUE(p.server.send_response(*id, {{":status", "200"}}, false));
    p.server.send_body(*id, bytes("resp"), true);
    p.run();
    ++done;
  }
  EXPECT_EQ(done, 10000u);
  EXPECT_EQ(p.ce.request_closed.size(), 10000u);
  EXPECT_EQ(p.se.request_closed.size(), 10000u);
  EXPECT_EQ(p.client.stream_state_count(), client_base);
  EXPECT_EQ(p.server.stream_state_count(), server_base);
  EXPECT_EQ(p.pair.stream_count(MemoryPair::kClient), 2u);  // only the control streams remain
}

TEST(H3Leaks, WtStreamsAndFailuresAreForgotten) {
  H3Pair p;
  p.run();
  auto session = p.client.send_request(wt_connect(), false);
  p.run();
  const size_t client_base = p.client.stream_state_count();
  const size_t server_base = p.server.stream_state_count();
  for (int i = 0; i < 2000; ++i) {
    auto s = p.client.open_wt_stream(*session, i % 2 == 0);
    ASSERT_TRUE(s);
    switch (i % 4) {
      case 0:  // bidi, clean both ways
        p.client.wt_write(*s, bytes("x"), true);
        p.run();
        p.server.wt_write(*s, bytes("y"), true);
        break;
      case 1:  // uni, reset
        p.client.wt_write(*s, bytes("x"), false);
        p.client.wt_reset(*s, 5);
        break;
      case 2:  // bidi, server stops and resets
        p.client.wt_write(*s, bytes("x"), false);
        p.run();
        p.server.wt_stop_sending(*s, 6);
        p.server.wt_reset(*s, 6);
        break;
      case 3:  // uni, fin
        p.client.wt_write(*s, bytes("x"), true);
        break;
    }
    p.run();
  }
  EXPECT_EQ(p.client.stream_state_count(), client_base);
  EXPECT_EQ(p.server.stream_state_count(), server_base);
  EXPECT_EQ(p.ce.wt_closed.size(), 2000u);
  // Case 1 streams are reset before their header reaches the server: its application never saw them.
  EXPECT_EQ(p.se.wt_closed.size(), 1500u);
}

TEST(H3Leaks, StreamsResetBeforeTheyAreIdentifiedAreForgotten) {
  RawPair r;
  r.default_control();
  const size_t base = r.conn.stream_state_count();
  for (int i = 0; i < 500; ++i) {
    StreamId bidi = r.bidi(Bytes{0x40});  // half a varint
    r.peer().reset_stream(bidi, 1);
    StreamId uni = r.uni(Bytes{0x40});
    r.peer().reset_stream(uni, 1);
    r.pair.run();
  }
  EXPECT_EQ(r.conn.stream_state_count(), base);
  EXPECT_FALSE(r.raw.close_code);
}

TEST(H3Leaks, RejectedAndMalformedRequestsAreForgotten) {
  RawPair r;
  r.default_control();
  const size_t base = r.conn.stream_state_count();
  for (int i = 0; i < 1000; ++i) {
    StreamId id = r.bidi(headers_frame({{":method", "GET"}}), true);  // malformed
    r.peer().write(id, {}, true);
    r.pair.run();
  }
  EXPECT_EQ(r.conn.stream_state_count(), base);
}

}  // namespace
}  // namespace wtmesh::h3::test
