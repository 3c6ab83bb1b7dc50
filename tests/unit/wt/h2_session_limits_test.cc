// wt::H2Session against a hostile peer: capsules written by hand (from the draft's formats) and fed to
// a server session. Every limit we give the peer, exceeded, closes the session with the draft's error
// (-15 §3.4, §6): the CONNECT stream is reset and the handler is told why.
#include <gtest/gtest.h>

#include "common/varint.h"
#include "h2_test_util.h"

namespace wtmesh::wt::h2test {
namespace {

struct Hostile {
  H2SessionConfig config;
  std::optional<H2Session> server;
  Recorder h;

  explicit Hostile(H2WtSettings local = H2SessionConfig::default_local()) {
    config.local = local;
    config.peer = H2SessionConfig::default_local();
    h.auto_consume = false;  // nothing is handed on unless a test says so
  }
  H2Session& open() {
    server.emplace(Role::kServer, config, info(), &h);
    server->start(ConnectResponse{200, {}});
    return *server;
  }
  void feed(const Bytes& wire) { server->receive(wire, false); }
  // The session ended with `error`: reset with its HTTP/2 code, handler told, nothing left behind.
  void expect_error(H2SessionError error, std::string_view why_part) {
    ASSERT_EQ(server->state(), H2Session::State::kClosed);
    EXPECT_EQ(server->local_error(), error);
    EXPECT_EQ(server->output_reset(), h2_error_code(error));
    EXPECT_TRUE(server->output().empty());
    ASSERT_TRUE(h.closed);
    EXPECT_EQ(h.closed->first, kSessionGoneCode);
    EXPECT_NE(h.closed->second.find(to_string(error)), std::string::npos) << h.closed->second;
    EXPECT_NE(h.closed->second.find(why_part), std::string::npos) << h.closed->second;
    EXPECT_EQ(server->stream_records(), 0u);
  }
};

Bytes stream(StreamId id, size_t n, bool fin) {
  Bytes w;
  append_wt_stream(w, id, Bytes(n, 'x'), fin, WtStreamFin::kDraft15);
  return w;
}
Bytes h2(const H2StreamCapsule& c) {
  Bytes w;
  serialize_h2_capsule(c, w);
  return w;
}

TEST(H2SessionLimits, StreamDataBeyondMaxStreamData) {
  H2WtSettings local = H2SessionConfig::default_local();
  local.initial_max_stream_data_bidi_remote = 100;
  Hostile t(local);
  t.open();
  t.feed(stream(0, 100, false));  // exactly the limit: fine
  EXPECT_EQ(t.server->state(), H2Session::State::kOpen);
  t.feed(stream(0, 1, false));
  t.expect_error(H2SessionError::kFlowControlError, "WT_MAX_STREAM_DATA");
}

TEST(H2SessionLimits, StreamDataBeyondMaxData) {
  H2WtSettings local = H2SessionConfig::default_local();
  local.initial_max_data = 150;
  Hostile t(local);
  t.open();
  t.feed(stream(0, 100, false));
  t.feed(stream(4, 51, false));
  t.expect_error(H2SessionError::kFlowControlError, "WT_MAX_DATA");
}

TEST(H2SessionLimits, StreamsBeyondMaxStreams) {
  H2WtSettings local = H2SessionConfig::default_local();
  local.initial_max_streams_uni = 3;
  Hostile t(local);
  t.open();
  // -15 §6.7's example: a limit of 3 allows ids 2, 6, 10 (client uni) but not 14.
  t.feed(stream(10, 1, false));
  EXPECT_EQ(t.h.incoming.size(), 3u);  // 10 opened 2 and 6 with it
  EXPECT_EQ(t.h.incoming[0].first, 2);
  EXPECT_EQ(t.h.incoming[1].first, 6);
  EXPECT_EQ(t.server->state(), H2Session::State::kOpen);
  t.feed(stream(14, 1, false));
  t.expect_error(H2SessionError::kFlowControlError, "WT_MAX_STREAMS");
}

TEST(H2SessionLimits, LateLowerStreamIsNotAnError) {
  Hostile t;
  t.open();
  t.feed(stream(8, 2, false));  // opens 0, 4, 8
  t.feed(stream(4, 3, true));   // data on the implicitly opened 4 arrives later
  EXPECT_EQ(t.server->state(), H2Session::State::kOpen);
  EXPECT_EQ(t.h.data[4], "xxx");
  EXPECT_TRUE(t.h.fin[4]);
}

TEST(H2SessionLimits, ExceedingOurStreamCreditAfterClosesIsCounted) {
  H2WtSettings local = H2SessionConfig::default_local();
  local.initial_max_streams_bidi = 1;
  Hostile t(local);
  H2Session& s = t.open();
  t.feed(stream(0, 1, true));
  s.write(0, bytes("y"), true);  // stream 0 over: one more allowed (WT_MAX_STREAMS 2)
  EXPECT_TRUE(contains(Bytes(s.output().begin(), s.output().end()), {0x99, 0x0b, 0x4d, 0x3f, 0x01, 0x02}));
  t.feed(stream(4, 1, false));
  EXPECT_EQ(s.state(), H2Session::State::kOpen);
  t.feed(stream(8, 1, false));
  t.expect_error(H2SessionError::kFlowControlError, "WT_MAX_STREAMS");
}

TEST(H2SessionLimits, DecreasingLimitsAreFlowControlErrors) {
  {
    Hostile t;
    t.open();
    t.feed(serialize_capsule(MaxDataCapsule{10}));  // below the SETTINGS value (1 MiB)
    t.expect_error(H2SessionError::kFlowControlError, "WT_MAX_DATA decreased");
  }
  {
    Hostile t;
    t.open();
    t.feed(serialize_capsule(MaxStreamsCapsule{true, 200}));
    t.feed(serialize_capsule(MaxStreamsCapsule{true, 150}));
    t.expect_error(H2SessionError::kFlowControlError, "WT_MAX_STREAMS decreased");
  }
  {
    Hostile t;
    H2Session& s = t.open();
    const StreamId id = *s.open_bidi_stream();
    t.feed(h2(WtMaxStreamDataCapsule{id, 1}));
    t.expect_error(H2SessionError::kFlowControlError, "WT_MAX_STREAM_DATA decreased");
  }
  {
    Hostile t;
    t.open();
    t.feed(serialize_capsule(MaxStreamsCapsule{false, (uint64_t{1} << 60) + 1}));
    t.expect_error(H2SessionError::kFlowControlError, "2^60");
  }
  {
    Hostile t;
    t.open();
    t.feed(serialize_capsule(StreamsBlockedCapsule{false, (uint64_t{1} << 60) + 1}));
    t.expect_error(H2SessionError::kFlowControlError, "2^60");
  }
}

TEST(H2SessionLimits, StreamStateErrors) {
  {  // WT_STREAM after FIN
    Hostile t;
    t.open();
    t.feed(stream(0, 1, true));
    t.feed(stream(0, 1, false));
    t.expect_error(H2SessionError::kStreamStateError, "WT_STREAM");
  }
  {  // WT_STREAM on our unidirectional stream
    Hostile t;
    H2Session& s = t.open();
    const StreamId id = *s.open_uni_stream();
    t.feed(stream(id, 1, false));
    t.expect_error(H2SessionError::kStreamStateError, "cannot send on");
  }
  {  // one of our ids we never opened
    Hostile t;
    t.open();
    t.feed(stream(1, 1, false));
    t.expect_error(H2SessionError::kStreamStateError, "not opened");
  }
  {  // a stream that is over
    Hostile t;
    H2Session& s = t.open();
    t.feed(stream(0, 1, true));
    s.write(0, {}, true);
    t.feed(stream(0, 1, false));
    t.expect_error(H2SessionError::kStreamStateError, "closed");
  }
  {  // Reliable Size that is not what arrived (§6.2)
    Hostile t;
    t.open();
    t.feed(stream(0, 5, false));
    t.feed(h2(WtResetStreamCapsule{0, 1, 4}));
    t.expect_error(H2SessionError::kStreamStateError, "Reliable Size");
  }
  {  // a second WT_RESET_STREAM
    Hostile t;
    t.open();
    t.feed(h2(WtResetStreamCapsule{0, 1, 0}));
    EXPECT_EQ(t.h.resets[0], 1u);
    t.feed(h2(WtResetStreamCapsule{0, 1, 0}));
    t.expect_error(H2SessionError::kStreamStateError, "WT_RESET_STREAM");
  }
  {  // a second WT_STOP_SENDING (§6.3)
    Hostile t;
    H2Session& s = t.open();
    const StreamId id = *s.open_bidi_stream();
    s.write(id, bytes("abc"), true);  // our side already done: the first needs no answering reset
    t.feed(h2(WtStopSendingCapsule{id, 3}));
    EXPECT_EQ(t.h.stop_sendings[id], 3u);
    t.feed(h2(WtStopSendingCapsule{id, 3}));
    t.expect_error(H2SessionError::kStreamStateError, "second WT_STOP_SENDING");
  }
  {  // WT_STOP_SENDING on the peer's unidirectional stream
    Hostile t;
    t.open();
    t.feed(stream(2, 1, false));
    t.feed(h2(WtStopSendingCapsule{2, 3}));
    t.expect_error(H2SessionError::kStreamStateError, "do not send on");
  }
  {  // WT_MAX_STREAM_DATA after WT_STOP_SENDING (§6.6)
    Hostile t;
    H2Session& s = t.open();
    const StreamId id = *s.open_bidi_stream();
    s.write(id, bytes("a"), true);
    t.feed(h2(WtStopSendingCapsule{id, 3}));
    t.feed(h2(WtMaxStreamDataCapsule{id, 1u << 20}));
    t.expect_error(H2SessionError::kStreamStateError, "after WT_STOP_SENDING");
  }
}

TEST(H2SessionLimits, BadCapsulesAreWtErrors) {
  {
    Hostile t;
    t.open();
    // WT_STOP_SENDING with code 2^32 (§6.3: above 0xffffffff is a WT_ERROR).
    t.feed({0x99, 0x0b, 0x4d, 0x3a, 0x09, 0x00, 0xc0, 0, 0, 0x01, 0, 0, 0, 0});
    t.expect_error(H2SessionError::kWtError, "2^32");
  }
  {
    Hostile t;
    t.open();
    Bytes close = {0x68, 0x43, 0x06, 0, 0, 0, 1, 0xff, 0xfe};  // message not UTF-8 (§6.12)
    t.feed(close);
    t.expect_error(H2SessionError::kWtError, "UTF-8");
  }
  {
    Hostile t;
    H2Session& s = t.open();
    t.feed(stream(0, 10, true));
    Bytes cut = stream(4, 10, true);
    cut.resize(cut.size() - 3);
    s.receive(cut, true);  // the CONNECT stream ends inside a capsule
    t.expect_error(H2SessionError::kWtError, "ended inside");
  }
  {
    Hostile t;
    t.config.max_stream_capsule = 1000;
    t.open();
    Bytes h = {0x99, 0x0b, 0x4d, 0x3c};
    append_varint(h, 1001);
    t.feed(h);
    t.expect_error(H2SessionError::kWtError, "longer than");
    EXPECT_EQ(t.server->parser_buffered_bytes(), 0u);
  }
}

TEST(H2SessionLimits, StopSendingDiscardsAndStillCredits) {
  H2WtSettings local = H2SessionConfig::default_local();
  local.initial_max_data = 1000;
  Hostile t(local);
  H2Session& s = t.open();
  t.h.auto_consume = false;
  t.feed(stream(0, 10, false));
  s.stop_sending(0, 4);
  s.consume_output(s.output().size());
  // Data still in flight is dropped, and its session credit returns at once: 990 more bytes arrive
  // on stream 0 without the application consuming anything, and the session window moves.
  t.feed(stream(0, 990, false));
  EXPECT_EQ(t.h.data[0].size(), 10u);
  EXPECT_EQ(s.state(), H2Session::State::kOpen);
  EXPECT_TRUE(
      contains(Bytes(s.output().begin(), s.output().end()), {0x99, 0x0b, 0x4d, 0x3d, 0x02, 0x47, 0xc6}));
  // The peer answers with its reset; the stream is forgotten once our side ends too.
  t.feed(h2(WtResetStreamCapsule{0, 4, 1000}));
  s.write(0, {}, true);
  EXPECT_EQ(s.stream_records(), 0u);
}

TEST(H2SessionLimits, ControlOutputIsCapped) {
  // A peer that never reads while making us answer: the output buffer is bounded and the session ends
  // (CANCEL) instead of growing.
  Hostile t;
  t.config.max_output_bytes = 2048;
  t.config.control_reserve = 1024;
  t.config.peer.initial_max_streams_bidi = 1000;
  t.config.max_local_streams = 1000;
  H2Session& s = t.open();
  for (int i = 0; i < 1000 && s.state() == H2Session::State::kOpen; ++i) {
    const auto id = s.open_bidi_stream();
    ASSERT_TRUE(id);
    t.feed(h2(WtStopSendingCapsule{*id, 1}));  // each one is answered with a WT_RESET_STREAM
    EXPECT_LE(s.output_size(), 2048u);
  }
  t.expect_error(H2SessionError::kCancel, "output buffer full");
}

TEST(H2SessionLimits, DatagramsAndCapsulesBeforeAcceptAreNotProcessed) {
  H2SessionConfig config;
  Recorder h;
  H2Session client(Role::kClient, config, info(), &h);
  client.receive(serialize_capsule(DatagramCapsule{{1}}), false);  // no 2xx yet
  EXPECT_TRUE(h.datagrams.empty());
  EXPECT_FALSE(client.open_bidi_stream());
  client.close(0, "");  // withdraws the CONNECT: reset with CANCEL
  EXPECT_EQ(client.output_reset(), 0x8u);
}

}  // namespace
}  // namespace wtmesh::wt::h2test
