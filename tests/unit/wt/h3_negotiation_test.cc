// WebTransport over HTTP/3: SETTINGS negotiation (who waits for whom, what a peer without
// WebTransport gets), the capsule queue cap, and the bounded memory of ended session ids.
#include <gtest/gtest.h>

#include "wt_test_util.h"

namespace wtmesh::wt::test {
namespace {

TEST(WtH3Negotiation, ClientWaitsForServerSettings) {
  Harness h;
  Recorder rec;
  // Nothing has been exchanged yet: the CONNECT waits for the server's SETTINGS.
  H3Session* s = h.client->connect("example.com", "/echo", {}, &rec);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(rec.session, s);  // on_attached before connect() returned
  EXPECT_EQ(s->state(), H3Session::State::kUnsent);
  EXPECT_EQ(s->session_id(), -1);
  EXPECT_FALSE(s->open_bidi_stream().has_value());
  h.start();
  EXPECT_TRUE(rec.ready);
  EXPECT_EQ(s->state(), H3Session::State::kOpen);
}

TEST(WtH3Negotiation, ClientCloseBeforeSendingOrBeforeResponse) {
  Harness h;
  Recorder unsent;
  H3Session* s = h.client->connect("example.com", "/echo", {}, &unsent);
  s->close(5, "changed my mind");
  ASSERT_TRUE(unsent.closed.has_value());
  EXPECT_EQ(unsent.closed->first, 5u);
  h.start();
  EXPECT_TRUE(h.infos.empty());  // never sent

  h.client_transport.hold(0);  // the CONNECT never reaches the server before we give up
  Recorder requested;
  H3Session* r = h.client->connect("example.com", "/echo", {}, &requested);
  ASSERT_EQ(r->state(), H3Session::State::kRequested);
  r->close(0, "");
  ASSERT_TRUE(requested.closed.has_value());
  h.run();
  EXPECT_EQ(h.client->session_count(), 0u);
}

// A server whose SETTINGS lack WebTransport (plain HTTP/3).
struct PlainServer {
  MemoryPair pair;
  h3::Connection client_conn{pair.client(), h3::Role::kClient, webtransport_h3_config(h3::Role::kClient)};
  h3::Connection server_conn{pair.server(), h3::Role::kServer, h3::Config{}};
  H3Client client{client_conn};
  PlainServer() {
    pair.set_handler(MemoryPair::kClient, &client_conn);
    pair.set_handler(MemoryPair::kServer, &server_conn);
  }
  void start() {
    client_conn.start();
    server_conn.start();
    EXPECT_TRUE(pair.run());
  }
};

TEST(WtH3Negotiation, ServerWithoutWebTransport) {
  {
    PlainServer p;
    Recorder rec;
    p.client.connect("example.com", "/echo", {}, &rec);  // SETTINGS not known yet
    p.start();
    ASSERT_TRUE(rec.closed.has_value());
    EXPECT_EQ(rec.closed->first, kSessionGoneCode);
    EXPECT_NE(rec.closed->second.find("WebTransport"), std::string::npos);
  }
  {
    PlainServer p;
    p.start();
    Recorder rec;
    EXPECT_EQ(p.client.connect("example.com", "/echo", {}, &rec), nullptr);  // known: refused at once
    EXPECT_NE(p.client.last_error().find("WebTransport"), std::string::npos);
    EXPECT_EQ(rec.session, nullptr);
    EXPECT_FALSE(rec.closed.has_value());
  }
}

TEST(WtH3Negotiation, ClientWithoutWebTransportSettingsGets400) {
  MemoryPair pair;
  h3::Connection cc(pair.client(), h3::Role::kClient, h3::Config{});  // no WT / datagram settings
  h3::Connection sc(pair.server(), h3::Role::kServer, webtransport_h3_config(h3::Role::kServer));
  Recorder server_rec;
  int asked = 0;
  H3Server server(sc, {}, [&](const SessionInfo&) {
    ++asked;
    return Accept{200, &server_rec, {}};
  });
  struct Status : h3::NullHandler {
    std::string status;
    void on_headers(StreamId, h3::HeaderList hl, bool) override { status = *h3::find_header(hl, ":status"); }
  } raw;
  cc.set_handler(&raw);
  pair.set_handler(MemoryPair::kClient, &cc);
  pair.set_handler(MemoryPair::kServer, &sc);
  cc.start();
  sc.start();
  ASSERT_TRUE(pair.run());
  cc.send_request({{":method", "CONNECT"},
                   {":scheme", "https"},
                   {":authority", "a"},
                   {":path", "/echo"},
                   {":protocol", "webtransport"}},
                  false);
  ASSERT_TRUE(pair.run());
  EXPECT_EQ(raw.status, "400");
  EXPECT_EQ(asked, 0);
}

TEST(WtH3Negotiation, Http2OnlyCapsuleIsASessionError) {
  Harness h;
  h.start();
  Recorder rec;
  const StreamId sid = h.connect(rec, "/record")->session_id();
  h.client_conn.send_body(sid, serialize_capsule(Http2OnlyCapsule{kCapsuleMaxStreamData, {0x04, 0x10}}), false);
  h.run();
  ASSERT_TRUE(h.server_rec.closed.has_value());
  EXPECT_EQ(h.client_spy.resets.at(sid), h3::kH3MessageError);
}

TEST(WtH3Negotiation, CapsuleQueueCap) {
  {
    // Default cap: a DRAIN the CONNECT stream cannot take waits (in h3's or our queue); a close
    // behind it cannot be written promptly, so the stream is reset instead.
    Harness h;
    h.start();
    Recorder rec;
    const StreamId sid = h.connect(rec, "/record")->session_id();
    h.client_transport.block(sid);
    rec.session->drain();
    EXPECT_FALSE(rec.closed.has_value());
    rec.session->close(1, "x");
    h.run();
    EXPECT_EQ(h.server_spy.resets.at(sid), kWtSessionGone);
    EXPECT_EQ(h.server_rec.drains, 0);
  }
  {
    ClientConfig cc;
    cc.max_pending_capsule_bytes = 4;  // a DRAIN capsule is 5 bytes
    Harness h({}, cc);
    h.start();
    Recorder rec;
    const StreamId sid = h.connect(rec, "/record")->session_id();
    h.client_transport.block(sid);
    // h3 queues one small blocked DATA frame itself (a 16-byte GREASE capsule fills it); after
    // that the CONNECT stream takes nothing and the DRAIN must wait in our queue, over its cap.
    Bytes grease = {0x17, 14};
    grease.resize(16, 0);
    ASSERT_EQ(h.client_conn.send_body(sid, grease, false), 16u);
    rec.session->drain();
    ASSERT_TRUE(rec.closed.has_value());
    EXPECT_EQ(rec.closed->second, "capsule queue full");
    h.run();
    EXPECT_EQ(h.server_spy.resets.at(sid), kWtSessionGone);
  }
}

TEST(WtH3Negotiation, GoneSessionIdsAreRememberedBoundedly) {
  Harness h;
  h.start();
  // 70 plain requests (404s): only the most recent 64 ids are remembered as "never a session".
  std::vector<StreamId> ids;
  for (int i = 0; i < 70; ++i) {
    ids.push_back(*h.client_conn.send_request(
        {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}}, true));
    h.run();
  }
  const auto newest = h.client_conn.open_wt_stream(static_cast<uint64_t>(ids.back()), true);
  const auto oldest = h.client_conn.open_wt_stream(static_cast<uint64_t>(ids.front()), true);
  h.client_conn.wt_write(*newest, bytes("n"), false);
  h.client_conn.wt_write(*oldest, bytes("o"), false);
  h.run();
  EXPECT_EQ(h.client_spy.stops.at(*newest), kWtSessionGone);
  // The oldest id fell out of memory: its stream waits (bounded) and times out instead.
  EXPECT_EQ(h.client_spy.stops.count(*oldest), 0u);
  EXPECT_EQ(h.server->buffered_stream_count(), 1u);
  h.now += std::chrono::seconds(5);
  h.server->on_tick(h.now);
  h.run();
  EXPECT_EQ(h.client_spy.stops.at(*oldest), kWtBufferedStreamRejected);
}

}  // namespace
}  // namespace wtmesh::wt::test
