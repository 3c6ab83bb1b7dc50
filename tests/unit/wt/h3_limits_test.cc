// WebTransport over HTTP/3: the caps. Streams/datagrams before their session (buffer cap, byte
// cap, timeout), CONNECTs before SETTINGS, per-session stream limits, state left after 10k streams.
#include <gtest/gtest.h>

#include "wt_test_util.h"

namespace wtmesh::wt::test {
namespace {

using namespace std::chrono_literals;

constexpr StreamId kFirstRequest = 0;  // the client's first bidi stream carries the CONNECT

// Opens a WT stream for `session_id` straight through h3 (bypassing the session API, as a peer
// that races its streams ahead of the CONNECT would) and writes `data`.
StreamId raw_stream(Harness& h, StreamId session_id, bool bidi, std::string_view data) {
  const auto id = h.client_conn.open_wt_stream(static_cast<uint64_t>(session_id), bidi);
  EXPECT_TRUE(id.has_value());
  EXPECT_EQ(h.client_conn.wt_write(*id, bytes(data), false), data.size());
  return *id;
}

TEST(WtH3Limits, StreamsBeforeConnectAreDeliveredAfterAccept) {
  Harness h;
  h.start();
  h.client_transport.hold(kFirstRequest);  // the CONNECT is overtaken by its streams
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  ASSERT_EQ(s->session_id(), kFirstRequest);
  const StreamId bidi = raw_stream(h, kFirstRequest, true, "early bidi");
  const StreamId uni = raw_stream(h, kFirstRequest, false, "early uni");
  ASSERT_TRUE(h.client_conn.send_datagram(kFirstRequest, bytes("early dgram")));
  h.run();
  EXPECT_EQ(h.server->buffered_stream_count(), 2u);
  EXPECT_EQ(h.server->buffered_datagram_count(), 1u);
  EXPECT_TRUE(h.server_rec.incoming.empty());
  EXPECT_EQ(h.server->next_deadline(), h.now + 5s);

  h.client_transport.release(kFirstRequest);
  h.run();
  ASSERT_TRUE(h.server_rec.ready);
  EXPECT_TRUE(rec.ready);
  ASSERT_EQ(h.server_rec.incoming.size(), 2u);
  EXPECT_EQ(h.server_rec.data[bidi], "early bidi");
  EXPECT_EQ(h.server_rec.data[uni], "early uni");
  EXPECT_EQ(h.server_rec.datagrams, std::vector<std::string>{"early dgram"});
  EXPECT_EQ(h.server->buffered_stream_count(), 0u);
  EXPECT_EQ(h.server->next_deadline(), std::nullopt);
  // Adopted streams count as the session's streams.
  EXPECT_EQ(h.server->session(kFirstRequest)->open_peer_streams(), 2u);
  // More data on an adopted stream flows normally.
  h.client_conn.wt_write(bidi, bytes(" more"), true);
  h.run();
  EXPECT_EQ(h.server_rec.data[bidi], "early bidi more");
  EXPECT_TRUE(h.server_rec.fins.count(bidi));
}

TEST(WtH3Limits, TwentyFifthBufferedStreamRejected) {
  Harness h;
  h.start();
  h.client_transport.hold(kFirstRequest);
  Recorder rec;
  h.connect(rec, "/record");
  std::vector<StreamId> ids;
  for (int i = 0; i < 25; ++i) ids.push_back(raw_stream(h, kFirstRequest, true, "s"));
  h.run();
  EXPECT_EQ(h.server->buffered_stream_count(), 24u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(h.client_spy.stops.count(ids[i]), 0u) << i;
  EXPECT_EQ(h.client_spy.stops.at(ids[24]), kWtBufferedStreamRejected);
  EXPECT_EQ(h.client_spy.resets.at(ids[24]), kWtBufferedStreamRejected);
  h.client_transport.release(kFirstRequest);
  h.run();
  EXPECT_EQ(h.server_rec.incoming.size(), 24u);
}

TEST(WtH3Limits, BufferedStreamsTimeOut) {
  Harness h;
  h.start();
  h.client_transport.hold(kFirstRequest);
  Recorder rec;
  h.connect(rec, "/record");
  const StreamId a = raw_stream(h, kFirstRequest, true, "a");
  h.run();
  h.now += 2s;
  const StreamId b = raw_stream(h, kFirstRequest, false, "b");
  ASSERT_TRUE(h.client_conn.send_datagram(kFirstRequest, bytes("d")));
  h.run();
  ASSERT_EQ(h.server->buffered_stream_count(), 2u);
  EXPECT_EQ(h.server->next_deadline(), h.now - 2s + 5s);

  h.now += 3s;  // a is 5 s old, b 3 s
  h.server->on_tick(h.now);
  h.run();
  EXPECT_EQ(h.client_spy.stops.at(a), kWtBufferedStreamRejected);
  EXPECT_EQ(h.client_spy.stops.count(b), 0u);
  EXPECT_EQ(h.server->buffered_stream_count(), 1u);
  EXPECT_EQ(h.server->next_deadline(), h.now + 2s);

  h.now += 2s;
  h.server->on_tick(h.now);
  h.run();
  EXPECT_EQ(h.client_spy.stops.at(b), kWtBufferedStreamRejected);  // uni: STOP_SENDING only
  EXPECT_EQ(h.server->buffered_stream_count(), 0u);
  EXPECT_EQ(h.server->buffered_datagram_count(), 0u);
  EXPECT_EQ(h.server->next_deadline(), std::nullopt);
  EXPECT_EQ(h.server->stream_state_size(), 0u);

  h.client_transport.release(kFirstRequest);
  h.run();
  EXPECT_TRUE(h.server_rec.ready);
  EXPECT_TRUE(h.server_rec.incoming.empty());
  EXPECT_TRUE(h.server_rec.datagrams.empty());
}

TEST(WtH3Limits, BufferedStreamByteCapAndDatagramCaps) {
  ServerConfig config;
  config.max_buffered_stream_bytes = 100;
  config.max_buffered_datagrams = 2;
  config.max_buffered_datagram_bytes = 1000;
  Harness h(config);
  h.start();
  h.client_transport.hold(kFirstRequest);
  Recorder rec;
  h.connect(rec, "/record");
  const StreamId ok = raw_stream(h, kFirstRequest, true, std::string(100, 'a'));
  const StreamId big = raw_stream(h, kFirstRequest, true, std::string(101, 'b'));
  for (int i = 0; i < 3; ++i) h.client_conn.send_datagram(kFirstRequest, bytes("dg"));
  h.run();
  EXPECT_EQ(h.server->buffered_stream_count(), 1u);
  EXPECT_EQ(h.client_spy.stops.at(big), kWtBufferedStreamRejected);
  EXPECT_EQ(h.client_spy.stops.count(ok), 0u);
  EXPECT_EQ(h.server->buffered_datagram_count(), 2u);

  // Datagram byte cap.
  ServerConfig c2;
  c2.max_buffered_datagram_bytes = 10;
  Harness h2(c2);
  h2.start();
  h2.client_transport.hold(kFirstRequest);
  Recorder rec2;
  h2.connect(rec2, "/record");
  h2.client_conn.send_datagram(kFirstRequest, bytes("12345678"));
  h2.client_conn.send_datagram(kFirstRequest, bytes("123"));
  h2.client_conn.send_datagram(kFirstRequest, bytes("12"));
  h2.run();
  EXPECT_EQ(h2.server->buffered_datagram_count(), 2u);
}

TEST(WtH3Limits, StreamsForGoneSessionsAreRefused) {
  Harness h;
  h.start();
  Recorder rejected;
  const StreamId sid = h.client->connect("example.com", "/nope", {}, &rejected)->session_id();
  h.run();  // 404: never a session (and the H3Session is gone)
  ASSERT_TRUE(rejected.closed.has_value());
  const StreamId late = raw_stream(h, sid, true, "late");
  h.run();
  EXPECT_EQ(h.client_spy.stops.at(late), kWtSessionGone);
  EXPECT_EQ(h.client_spy.resets.at(late), kWtSessionGone);
  EXPECT_EQ(h.server->buffered_stream_count(), 0u);

  Recorder rec;
  H3Session* s2 = h.connect(rec, "/record");
  const StreamId sid2 = s2->session_id();
  s2->close(0, "done");
  h.run();
  const StreamId after = raw_stream(h, sid2, false, "after close");
  h.run();
  EXPECT_EQ(h.client_spy.stops.at(after), kWtSessionGone);
  EXPECT_EQ(h.server->stream_state_size(), 0u);
}

TEST(WtH3Limits, ClientBuffersServerStreamsRacingTheResponse) {
  Harness h;
  h.start();
  h.server_transport.hold(kFirstRequest);  // the 200 is overtaken by the server's stream
  Recorder rec;
  h.connect(rec, "/record");
  ASSERT_TRUE(h.server_rec.ready);
  const auto id = h.server_rec.session->open_bidi_stream();
  ASSERT_TRUE(id.has_value());
  h.server_rec.session->write(*id, bytes("hi"), false);
  h.server_rec.session->send_datagram(bytes("dg"));
  h.run();
  EXPECT_FALSE(rec.ready);
  EXPECT_EQ(h.client->buffered_stream_count(), 1u);
  EXPECT_EQ(h.client->buffered_datagram_count(), 1u);
  h.server_transport.release(kFirstRequest);
  h.run();
  ASSERT_TRUE(rec.ready);
  ASSERT_EQ(rec.incoming.size(), 1u);
  EXPECT_EQ(rec.data[*id], "hi");
  EXPECT_EQ(rec.datagrams, std::vector<std::string>{"dg"});
}

TEST(WtH3Limits, ConnectBeforeClientSettingsWaits) {
  Harness h;
  h.client_transport.hold(2);  // the client's control stream (it opens no QPACK streams)
  h.start();
  Recorder rec;
  h.connect(rec, "/record");
  EXPECT_EQ(h.server->deferred_request_count(), 1u);
  EXPECT_FALSE(rec.ready);
  EXPECT_EQ(h.server->next_deadline(), h.now + 5s);
  h.client_transport.release(2);
  h.run();
  EXPECT_TRUE(rec.ready);
  EXPECT_EQ(h.server->deferred_request_count(), 0u);
}

TEST(WtH3Limits, DeferredConnectCapAndTimeout) {
  ServerConfig config;
  config.max_deferred_requests = 1;
  config.max_sessions = 2;
  ClientConfig client_config;
  client_config.max_sessions = 2;
  Harness h(config, client_config);
  for (StreamId id : {2, 6, 10}) h.client_transport.hold(id);
  h.start();
  Recorder a, b;
  h.connect(a, "/record");
  h.connect(b, "/record");
  EXPECT_EQ(h.server->deferred_request_count(), 1u);
  ASSERT_TRUE(b.closed.has_value());  // over the cap: H3_REQUEST_REJECTED
  EXPECT_NE(b.closed->second.find("0x10b"), std::string::npos);
  EXPECT_FALSE(a.closed.has_value());
  h.now += 5s;
  h.server->on_tick(h.now);
  h.run();
  ASSERT_TRUE(a.closed.has_value());
  EXPECT_NE(a.closed->second.find("0x10b"), std::string::npos);
  EXPECT_EQ(h.server->deferred_request_count(), 0u);
}

TEST(WtH3Limits, PerSessionPeerStreamCap) {
  ServerConfig config;
  config.max_streams_per_session = 4;
  Harness h(config);
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/record");
  std::vector<StreamId> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(*s->open_bidi_stream());
    s->write(ids.back(), bytes("x"), false);
  }
  h.run();
  EXPECT_EQ(h.server_rec.incoming.size(), 4u);
  EXPECT_EQ(h.client_spy.stops.at(ids[4]), kWtFlowControlError);
  EXPECT_EQ(h.client_spy.resets.at(ids[4]), kWtFlowControlError);
  EXPECT_EQ(rec.stops.at(ids[4]), std::nullopt);  // an H3 code, not an application code
  EXPECT_EQ(h.server->session(s->session_id())->open_peer_streams(), 4u);
  // Closing one (both ways) makes room for the next.
  s->write(ids[0], {}, true);
  h.server_rec.session->write(ids[0], {}, true);
  h.run();
  EXPECT_EQ(h.server->session(s->session_id())->open_peer_streams(), 3u);
  const StreamId next = *s->open_bidi_stream();
  s->write(next, bytes("y"), false);
  h.run();
  EXPECT_EQ(h.server_rec.incoming.size(), 5u);
  EXPECT_EQ(h.server_rec.data[next], "y");
}

TEST(WtH3Limits, PerSessionLocalStreamCap) {
  ClientConfig client_config;
  client_config.max_streams_per_session = 3;
  Harness h({}, client_config);
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/echo");
  std::vector<StreamId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*s->open_bidi_stream());
  EXPECT_FALSE(s->open_bidi_stream().has_value());
  EXPECT_FALSE(s->open_uni_stream().has_value());
  s->write(ids[0], bytes("z"), true);  // echoed with FIN: closes both ways
  h.run();
  EXPECT_EQ(s->open_local_streams(), 2u);
  EXPECT_TRUE(s->open_uni_stream().has_value());
}

TEST(WtH3Limits, TenThousandStreamsLeaveNoState) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/echo");
  ASSERT_TRUE(rec.ready);
  size_t done = 0;
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 50; ++i) {
      const auto id = (i % 2 == 0) ? s->open_bidi_stream() : s->open_uni_stream();
      ASSERT_TRUE(id.has_value()) << round << "/" << i;
      ASSERT_EQ(s->write(*id, bytes("x"), true), 1u);
    }
    h.run();
    done += 50;
    ASSERT_EQ(s->stream_table_size(), 0u) << round;
  }
  EXPECT_EQ(done, 10000u);
  EXPECT_EQ(rec.fins.size(), 10000u);  // every echo arrived complete
  EXPECT_EQ(h.client->stream_state_size(), 0u);
  EXPECT_EQ(h.server->stream_state_size(), 0u);
  EXPECT_EQ(h.server->session(s->session_id())->stream_table_size(), 0u);
  // Only the 2 control streams and the CONNECT stream remain below us (no QPACK streams).
  EXPECT_EQ(h.client_conn.stream_state_count(), 3u);
  EXPECT_EQ(h.server_conn.stream_state_count(), 3u);
  EXPECT_EQ(h.pair.stream_count(MemoryPair::kClient), 3u);
}

}  // namespace
}  // namespace wtmesh::wt::test
