// wt::H2Session, client and server back to back in memory: streams both ways, datagrams, resets and
// stop-sending, flow control that stalls and resumes, close and drain, and the bytes that go on the wire.
#include <gtest/gtest.h>

#include "common/varint.h"
#include "h2_test_util.h"

namespace wtmesh::wt::h2test {
namespace {

TEST(H2Session, OpensAndNamesItsTransport) {
  H2Pair p;
  p.open();
  EXPECT_TRUE(p.ch.ready);
  EXPECT_TRUE(p.sh.ready);
  EXPECT_EQ(p.ch.session, &*p.client);
  EXPECT_EQ(p.client->info().transport, Transport::kHttp2);
  EXPECT_EQ(p.client->state(), H2Session::State::kOpen);
  EXPECT_TRUE(p.client->output().empty());  // nothing to say until the application speaks
}

TEST(H2Session, RefusedClientGetsTheTypedAnswer) {
  H2Pair p;
  p.client.emplace(Role::kClient, p.client_config, info(), &p.ch);
  p.client->on_response(ConnectResponse{404, {{"x", "y"}}});
  ASSERT_TRUE(p.ch.refused);
  EXPECT_EQ(p.ch.refused->status, 404);
  ASSERT_TRUE(p.ch.closed);
  EXPECT_EQ(p.ch.closed->first, 0u);
  EXPECT_EQ(p.ch.closed->second, "HTTP 404");
  EXPECT_FALSE(p.client->open_bidi_stream());
}

TEST(H2Session, BidiStreamEchoAndIdsPerRole) {
  H2Pair p;
  p.open();
  const auto c0 = p.client->open_bidi_stream();
  const auto c1 = p.client->open_bidi_stream();
  const auto cu = p.client->open_uni_stream();
  const auto s0 = p.server->open_bidi_stream();
  const auto su = p.server->open_uni_stream();
  // RFC 9000 §2.1 numbering (-15 §5.2): client bidi 0, 4; client uni 2; server bidi 1; server uni 3.
  EXPECT_EQ(c0, 0);
  EXPECT_EQ(c1, 4);
  EXPECT_EQ(cu, 2);
  EXPECT_EQ(s0, 1);
  EXPECT_EQ(su, 3);

  EXPECT_EQ(p.client->write(0, bytes("hello"), false), 5u);
  p.pump();
  ASSERT_EQ(p.sh.incoming.size(), 1u);
  EXPECT_EQ(p.sh.incoming[0], std::make_pair(StreamId{0}, true));
  EXPECT_EQ(p.sh.data[0], "hello");
  // The first capsule carried the data (never an empty opening capsule): type 0x190B4D3C (no FIN).
  EXPECT_TRUE(contains(p.client_wire, {0x99, 0x0b, 0x4d, 0x3c, 0x06, 0x00, 'h', 'e', 'l', 'l', 'o'}));

  EXPECT_EQ(p.server->write(0, bytes("HELLO"), true), 5u);
  EXPECT_EQ(p.client->write(0, bytes("!"), true), 1u);
  p.pump();
  EXPECT_EQ(p.ch.data[0], "HELLO");
  EXPECT_TRUE(p.ch.fin[0]);
  EXPECT_EQ(p.sh.data[0], "hello!");
  EXPECT_TRUE(p.sh.fin[0]);
  // Both directions done: both sides forget the stream.
  EXPECT_EQ(p.ch.closed_streams, std::vector<StreamId>{0});
  EXPECT_EQ(p.sh.closed_streams, std::vector<StreamId>{0});
  EXPECT_EQ(p.server->stream_records(), 2u);                // its own 1 and 3 are still open
  EXPECT_EQ(p.client->write(0, bytes("late"), false), 0u);  // forgotten ids take nothing

  // Server uni stream 3, FIN in its only capsule (0x190B4D3B per -15).
  EXPECT_EQ(p.server->write(3, bytes("u"), true), 1u);
  p.pump();
  EXPECT_EQ(p.ch.data[3], "u");
  EXPECT_TRUE(p.ch.fin[3]);
  EXPECT_TRUE(contains(p.server_wire, {0x99, 0x0b, 0x4d, 0x3b, 0x02, 0x03, 'u'}));
  EXPECT_EQ(p.client->write(3, bytes("x"), false), 0u);  // the client cannot send on it
}

TEST(H2Session, EmptyFinEndsAStream) {
  H2Pair p;
  p.open();
  const StreamId id = *p.client->open_uni_stream();
  EXPECT_EQ(p.client->write(id, {}, true), 0u);
  p.pump();
  EXPECT_TRUE(p.sh.fin[id]);
  EXPECT_EQ(p.sh.data[id], "");
  EXPECT_EQ(p.server->stream_records(), 0u);
  EXPECT_EQ(p.client->stream_records(), 0u);
}

TEST(H2Session, DatagramsBothWays) {
  H2Pair p;
  p.open();
  EXPECT_TRUE(p.client->send_datagram(bytes("ping")));
  EXPECT_TRUE(p.server->send_datagram(bytes("pong")));
  p.pump();
  EXPECT_EQ(p.sh.datagrams, std::vector<std::string>{"ping"});
  EXPECT_EQ(p.ch.datagrams, std::vector<std::string>{"pong"});
  // DATAGRAM capsule (RFC 9297 §3.5, -15 §6.11): type 0x00, length, payload.
  EXPECT_TRUE(contains(p.client_wire, {0x00, 0x04, 'p', 'i', 'n', 'g'}));
  EXPECT_FALSE(p.client->send_datagram(Bytes(p.client->max_datagram_size() + 1, 0)));
  EXPECT_TRUE(p.client->send_datagram(Bytes(p.client->max_datagram_size(), 0)));
}

TEST(H2Session, ResetCarriesReliableSize) {
  H2Pair p;
  p.open();
  const StreamId id = *p.client->open_bidi_stream();
  EXPECT_EQ(p.client->write(id, Bytes(10, 'a'), false), 10u);
  p.client->reset_stream(id, 7);
  p.pump();
  ASSERT_TRUE(p.sh.resets.count(id));
  EXPECT_EQ(p.sh.resets[id], 7u);
  // WT_RESET_STREAM {id 0, code 7, Reliable Size 10}.
  EXPECT_TRUE(contains(p.client_wire, {0x99, 0x0b, 0x4d, 0x39, 0x03, 0x00, 0x07, 0x0a}));
  EXPECT_EQ(p.client->write(id, bytes("x"), false), 0u);
  // The server's direction is still open.
  EXPECT_EQ(p.server->write(id, bytes("back"), true), 4u);
  p.pump();
  EXPECT_EQ(p.ch.data[id], "back");
  EXPECT_EQ(p.client->stream_records(), 0u);
  EXPECT_EQ(p.server->stream_records(), 0u);
}

TEST(H2Session, StopSendingIsAnsweredWithAReset) {
  H2Pair p;
  p.open();
  const StreamId id = *p.client->open_bidi_stream();
  EXPECT_EQ(p.client->write(id, bytes("abc"), false), 3u);
  p.pump();
  p.server->stop_sending(id, 9);
  p.server->stop_sending(id, 9);  // once only (-15 §6.3)
  p.pump();
  EXPECT_EQ(p.ch.stop_sendings[id], 9u);
  // RFC 9000 §3.5: the client's session answered with WT_RESET_STREAM carrying the same code.
  EXPECT_EQ(p.sh.resets[id], 9u);
  EXPECT_TRUE(contains(p.server_wire, {0x99, 0x0b, 0x4d, 0x3a, 0x02, 0x00, 0x09}));
  EXPECT_TRUE(contains(p.client_wire, {0x99, 0x0b, 0x4d, 0x39, 0x03, 0x00, 0x09, 0x03}));
}

TEST(H2Session, StreamFlowControlStallsAndResumes) {
  H2WtSettings server = H2SessionConfig::default_local();
  server.initial_max_stream_data_bidi_remote = 1000;  // what the client may send on its bidi streams
  H2Pair p(H2SessionConfig::default_local(), server);
  p.open();
  p.sh.auto_consume = false;
  const StreamId id = *p.client->open_bidi_stream();
  const Bytes payload(5000, 'z');
  EXPECT_EQ(p.client->send_capacity(id), 1000u);
  EXPECT_EQ(p.client->write(id, payload, false), 1000u);
  EXPECT_EQ(p.client->send_capacity(id), 0u);
  EXPECT_EQ(p.client->write(id, payload, false), 0u);
  p.pump();
  EXPECT_EQ(p.sh.data[id].size(), 1000u);
  // WT_STREAM_DATA_BLOCKED {id 0, 1000 = 0x43 0xe8}, sent once.
  const Bytes blocked = {0x99, 0x0b, 0x4d, 0x42, 0x03, 0x00, 0x43, 0xe8};
  EXPECT_TRUE(contains(p.client_wire, blocked));
  EXPECT_TRUE(p.ch.writable.empty());
  // The server hands on 400 bytes: below half the window, no update yet.
  p.server->consume(id, 400);
  p.pump();
  EXPECT_TRUE(p.ch.writable.empty());
  // 600 consumed in all: WT_MAX_STREAM_DATA 1600 (0x46 0x40), and the client may write again.
  p.server->consume(id, 200);
  p.pump();
  EXPECT_TRUE(contains(p.server_wire, {0x99, 0x0b, 0x4d, 0x3e, 0x03, 0x00, 0x46, 0x40}));
  EXPECT_EQ(p.ch.writable, std::vector<StreamId>{id});
  EXPECT_EQ(p.client->send_capacity(id), 600u);
  EXPECT_EQ(p.client->write(id, payload, false), 600u);
}

TEST(H2Session, SessionFlowControlStallsAndResumes) {
  H2WtSettings server = H2SessionConfig::default_local();
  server.initial_max_data = 1500;  // shared by all streams of the session
  H2Pair p(H2SessionConfig::default_local(), server);
  p.open();
  p.sh.auto_consume = false;
  const StreamId a = *p.client->open_bidi_stream();
  const StreamId b = *p.client->open_uni_stream();
  EXPECT_EQ(p.client->write(a, Bytes(1000, 'a'), false), 1000u);
  EXPECT_EQ(p.client->write(b, Bytes(1000, 'b'), false), 500u);
  EXPECT_EQ(p.client->send_capacity(a), 0u);
  p.pump();
  // WT_DATA_BLOCKED {1500 = 0x45 0xdc}.
  EXPECT_TRUE(contains(p.client_wire, {0x99, 0x0b, 0x4d, 0x41, 0x02, 0x45, 0xdc}));
  p.server->consume(a, 1000);  // 1000 of 1500: the session window moves to 2500
  p.pump();
  EXPECT_TRUE(contains(p.server_wire, {0x99, 0x0b, 0x4d, 0x3d, 0x02, 0x49, 0xc4}));
  EXPECT_EQ(p.ch.writable, std::vector<StreamId>{b});
  EXPECT_EQ(p.client->write(b, Bytes(1000, 'b'), false), 1000u);
}

TEST(H2Session, StreamLimitBlocksAndReturns) {
  H2WtSettings server = H2SessionConfig::default_local();
  server.initial_max_streams_bidi = 2;
  H2Pair p(H2SessionConfig::default_local(), server);
  p.open();
  const StreamId a = *p.client->open_bidi_stream();
  ASSERT_TRUE(p.client->open_bidi_stream());
  EXPECT_FALSE(p.client->open_bidi_stream());
  EXPECT_TRUE(p.client->open_uni_stream());  // the other direction has its own limit
  p.pump();
  // WT_STREAMS_BLOCKED bidi {2}.
  EXPECT_TRUE(contains(p.client_wire, {0x99, 0x0b, 0x4d, 0x43, 0x01, 0x02}));
  // Stream a finishes both ways; the server grants one more: WT_MAX_STREAMS bidi {3}.
  EXPECT_EQ(p.client->write(a, bytes("x"), true), 1u);
  p.pump();
  EXPECT_EQ(p.server->write(a, bytes("y"), true), 1u);
  p.pump();
  EXPECT_TRUE(contains(p.server_wire, {0x99, 0x0b, 0x4d, 0x3f, 0x01, 0x03}));
  EXPECT_EQ(p.ch.streams_available, 1);
  EXPECT_EQ(p.client->open_bidi_stream(), 8);
}

TEST(H2Session, LocalStreamCapIsSeparate) {
  H2Pair p;
  p.client_config.max_local_streams = 1;
  p.open();
  ASSERT_TRUE(p.client->open_uni_stream());
  EXPECT_FALSE(p.client->open_bidi_stream());
  EXPECT_EQ(p.client->open_streams(), 1u);
}

TEST(H2Session, OutputBufferIsCappedAndCloseStillFits) {
  H2WtSettings big = H2SessionConfig::default_local();
  big.initial_max_data = 1u << 30;
  big.initial_max_stream_data_bidi_remote = 1u << 30;
  H2Pair p(H2SessionConfig::default_local(), big);
  p.client_config.max_output_bytes = 64 * 1024;
  p.client_config.control_reserve = 4096;
  p.open();
  const StreamId id = *p.client->open_bidi_stream();
  const Bytes chunk(100 * 1024, 'q');
  const size_t taken = p.client->write(id, chunk, false);
  EXPECT_GT(taken, 50u * 1024);
  EXPECT_LE(p.client->output_size(), 64u * 1024 - 4096);
  EXPECT_EQ(p.client->write(id, chunk, false), 0u);      // the peer has not read: nothing more
  EXPECT_FALSE(p.client->send_datagram(Bytes(100, 0)));  // datagrams never use the reserve
  // Draining the output lets writes continue.
  p.pump();
  EXPECT_EQ(p.ch.writable, std::vector<StreamId>{id});
  EXPECT_EQ(p.sh.data[id].size(), taken);
  // Fill again, then close: the close capsule fits behind the queued data.
  p.client->write(id, chunk, false);
  p.client->close(5, "over");
  EXPECT_FALSE(p.client->output_reset());
  p.pump();
  ASSERT_TRUE(p.sh.closed);
  EXPECT_EQ(p.sh.closed->first, 5u);
  EXPECT_EQ(p.sh.closed->second, "over");
  EXPECT_TRUE(p.client_fin);
  EXPECT_TRUE(p.server_fin);  // the server answered with END_STREAM (-15 §6.12)
}

// delivered(): nothing written is left in the session's buffer (the glue takes it in order; the
// close capsule goes behind it), so a replaced session is closed only once its last bytes left.
TEST(H2Session, DeliveredOnceTheGlueTookEveryByte) {
  H2Pair p;
  p.open();
  p.pump();
  EXPECT_TRUE(p.client->delivered());
  const StreamId id = *p.client->open_bidi_stream();
  EXPECT_EQ(p.client->write(id, bytes("response tail"), true), 13u);
  EXPECT_FALSE(p.client->delivered());
  p.pump(5);  // part of it taken
  EXPECT_FALSE(p.client->delivered());
  p.pump();
  EXPECT_TRUE(p.client->delivered());
  EXPECT_EQ(p.sh.data[id], "response tail");
  EXPECT_TRUE(p.client->send_datagram(bytes("telemetry")));
  EXPECT_FALSE(p.client->delivered());  // a datagram waits in the same buffer
  p.pump();
  EXPECT_TRUE(p.client->delivered());
}

TEST(H2Session, CloseCapsuleAndFin) {
  H2Pair p;
  p.open();
  p.client->open_bidi_stream();
  p.client->close(0x01020304, "bye");
  EXPECT_EQ(p.client->state(), H2Session::State::kClosed);
  ASSERT_TRUE(p.ch.closed);  // the local side is told too
  p.pump();
  // WT_CLOSE_SESSION: 0x2843, length 7, code, "bye"; then END_STREAM.
  const Bytes close = {0x68, 0x43, 0x07, 0x01, 0x02, 0x03, 0x04, 'b', 'y', 'e'};
  EXPECT_EQ(p.client_wire, close);
  EXPECT_TRUE(p.client_fin);
  ASSERT_TRUE(p.sh.closed);
  EXPECT_EQ(p.sh.closed->first, 0x01020304u);
  EXPECT_EQ(p.sh.closed->second, "bye");
  EXPECT_TRUE(p.server_fin);
  EXPECT_FALSE(p.server_rst);
}

TEST(H2Session, CleanFinIsCloseZero) {
  H2Pair p;
  p.open();
  p.client->receive({}, true);
  ASSERT_TRUE(p.ch.closed);
  EXPECT_EQ(p.ch.closed->first, 0u);
  EXPECT_TRUE(p.client->output_fin());
}

TEST(H2Session, DrainOnceAndSessionGoesOn) {
  H2Pair p;
  p.open();
  p.server->drain();
  p.server->drain();
  p.pump();
  EXPECT_EQ(p.ch.drains, 1);
  EXPECT_EQ(p.server_wire, (Bytes{0x80, 0x00, 0x78, 0xae, 0x00}));
  // -15 §6.13: the session stays usable.
  const StreamId id = *p.client->open_bidi_stream();
  EXPECT_EQ(p.client->write(id, bytes("still"), true), 5u);
  p.pump();
  EXPECT_EQ(p.sh.data[id], "still");
}

TEST(H2Session, ConnectResetEndsTheSession) {
  H2Pair p;
  p.open();
  p.client->open_bidi_stream();
  p.client->on_connect_reset(0x8);
  ASSERT_TRUE(p.ch.closed);
  EXPECT_EQ(p.ch.closed->first, kSessionGoneCode);
  EXPECT_NE(p.ch.closed->second.find("reset"), std::string::npos);
  EXPECT_EQ(p.client->stream_records(), 0u);
  EXPECT_FALSE(p.client->output_fin());
  EXPECT_FALSE(p.client->output_reset());
}

TEST(H2Session, Draft14FinConventionInteroperates) {
  H2Pair p;
  p.client_config.fin_convention = WtStreamFin::kDraft14;
  p.server_config.fin_convention = WtStreamFin::kDraft14;
  p.open();
  const StreamId id = *p.client->open_uni_stream();
  EXPECT_EQ(p.client->write(id, bytes("old"), true), 3u);
  p.pump();
  EXPECT_EQ(p.sh.data[id], "old");
  EXPECT_TRUE(p.sh.fin[id]);
  EXPECT_TRUE(contains(p.client_wire, {0x99, 0x0b, 0x4d, 0x3c, 0x04, 0x02, 'o', 'l', 'd'}));
}

TEST(H2Session, ManyStreamsLeaveNoRecords) {
  // CVE-2026-21438's lesson: 1000 streams opened and finished leave nothing behind.
  H2Pair p;
  p.piece = 1500;
  p.open();
  for (int i = 0; i < 1000; ++i) {
    const auto id = p.client->open_bidi_stream();
    ASSERT_TRUE(id) << i;
    ASSERT_EQ(p.client->write(*id, bytes("x"), true), 1u);
    p.pump();
    ASSERT_EQ(p.server->write(*id, bytes("y"), true), 1u);
    p.pump();
  }
  EXPECT_EQ(p.client->stream_records(), 0u);
  EXPECT_EQ(p.server->stream_records(), 0u);
  EXPECT_EQ(p.server->open_streams(), 0u);
  EXPECT_EQ(p.sh.closed_streams.size(), 1000u);
}

// The write that ends a stream whose other direction is already over does not tell the application
// the stream closed from inside that write (an agent's exchange is still in its write call there: it
// would be torn down under it); the glue's next call delivers it. Found with the agent over HTTP/2.
TEST(H2Session, StreamClosedIsNotDeliveredInsideTheWriteThatEndedIt) {
  H2Pair p;
  p.open();
  const StreamId id = *p.client->open_bidi_stream();
  ASSERT_EQ(p.client->write(id, bytes("request"), true), 7u);
  p.pump();
  ASSERT_TRUE(p.sh.fin[id]);
  ASSERT_TRUE(p.sh.closed_streams.empty());
  EXPECT_EQ(p.server->write(id, bytes("response"), true), 8u);
  EXPECT_TRUE(p.sh.closed_streams.empty()) << "delivered inside write()";
  EXPECT_EQ(p.server->stream_records(), 0u);  // the record itself is gone at once
  p.pump();                                   // the glue takes the output: now it is told
  EXPECT_EQ(p.sh.closed_streams, std::vector<StreamId>{id});
  EXPECT_EQ(p.ch.data[id], "response");
  // Likewise for a reset.
  const StreamId id2 = *p.client->open_bidi_stream();
  ASSERT_EQ(p.client->write(id2, bytes("x"), true), 1u);
  p.pump();
  p.server->reset_stream(id2, 7);
  EXPECT_EQ(p.sh.closed_streams.size(), 1u);
  p.pump();
  EXPECT_EQ(p.sh.closed_streams.back(), id2);
}

}  // namespace
}  // namespace wtmesh::wt::h2test
