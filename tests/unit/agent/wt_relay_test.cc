// The agent's relay host against an in-memory tunnel session: session-stream openings, refusals with
// a §4 answer, relayed streams that name no session, and the caps on relayed sessions and on the
// streams of one relayed session.
#include "agent/wt_relay.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "fake_session.h"
#include "tunnel/wt_relay_wire.h"

namespace wtmesh::agent {
namespace {

using testing::FakeSession;

std::vector<uint8_t> session_opening(uint64_t relay_id) {
  tunnel::WtSessionOpen o;
  o.relay_id = relay_id;
  o.request.tunnel_id = 1;
  o.request.method = "CONNECT";
  o.request.target = "/echo";
  o.request.authority = "wt.localhost:4433";
  o.request.has_body = true;
  o.request.headers = {{"origin", "http://localhost:8080"}};
  std::vector<uint8_t> w = tunnel::encode_wt_session_open(o);
  w.erase(w.begin());  // EdgeSession's kind reader took the kind
  return w;
}

struct WtRelayHostTest : ::testing::Test {
  boost::asio::io_context io;
  FakeSession tunnel;
  const H3UpstreamTarget* upstream = nullptr;
  WtRelayHost host{io, tunnel, [this](uint32_t) { return upstream; }};
};

TEST_F(WtRelayHostTest, ATunnelWithoutAnH3UpstreamAnswers501AndFinishes) {
  const auto w = session_opening(1);
  host.on_new_stream(2, tunnel::StreamKind::kWtSession, std::span<const uint8_t>(w).first(3), false);
  EXPECT_TRUE(tunnel.streams[2].out.empty()) << "the opening is not complete yet";
  host.on_new_stream(2, tunnel::StreamKind::kWtSession, {}, false);  // (a repeated call is harmless)
  EXPECT_TRUE(host.on_stream_data(2, std::span<const uint8_t>(w).subspan(3), false));
  const auto answer = tunnel.response(2);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->head.status, 501);
  const std::string* why = wt::find_header(answer->head.headers, "wtmesh-error");
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("--upstream h3"), std::string::npos);
  EXPECT_TRUE(tunnel.streams[2].fin);
  EXPECT_EQ(tunnel.streams[2].consumed, w.size());
  EXPECT_EQ(host.session_count(), 0u) << "a refused session is over";
}

TEST_F(WtRelayHostTest, BadOpeningsAndUnknownRelayIdsAreRefusedWithCode2) {
  host.on_new_stream(6, tunnel::StreamKind::kWtSession, std::vector<uint8_t>{0x00, 0x00},
                     false);  // relay id 0
  EXPECT_EQ(tunnel.streams[6].reset, tunnel::kStreamProtocolError);
  EXPECT_EQ(tunnel.streams[6].stopped, tunnel::kStreamProtocolError);
  host.on_new_stream(10, tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x07, 0x00, 'x'}, false);
  EXPECT_FALSE(tunnel.streams[10].reset) << "relay id 7 may still open: held";
  EXPECT_EQ(host.early_stream_count(), 1u);
  io.run_for(WtRelayHost::kEarlyWait + std::chrono::milliseconds(300));
  EXPECT_EQ(tunnel.streams[10].reset, tunnel::kStreamProtocolError) << "relay id 7 never opened";
  EXPECT_EQ(tunnel.streams[10].consumed, 3u);
  EXPECT_EQ(host.early_stream_count(), 0u);
  host.on_new_stream(14, tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x01, 0x04}, false);
  EXPECT_EQ(tunnel.streams[14].reset, tunnel::kStreamProtocolError) << "unknown flag bits";
  host.on_new_stream(18, tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x01}, true);
  EXPECT_EQ(tunnel.streams[18].reset, tunnel::kStreamProtocolError) << "FIN inside the opening";
  host.on_datagram(std::vector<uint8_t>{0x07, 'd'});  // no such flow: dropped
  host.on_datagram({});
  EXPECT_FALSE(host.on_stream_data(99, std::vector<uint8_t>{1}, false)) << "not a relay stream";
}

// An edge with several workers opens a relayed session's streams through different hops, so one may
// reach the agent before the session's opening; it waits for it (and shares its fate).
TEST_F(WtRelayHostTest, AStreamThatArrivesBeforeItsSessionWaitsForItsOpening) {
  host.on_new_stream(10, tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x01, 0x00, 'a'}, false);
  EXPECT_TRUE(host.on_stream_data(10, std::vector<uint8_t>{'b'}, false)) << "more bytes are held too";
  EXPECT_FALSE(tunnel.streams[10].reset);
  EXPECT_EQ(tunnel.streams[10].consumed, 2u) << "the opening is credited, the held bytes not yet";
  EXPECT_EQ(host.early_stream_count(), 1u);
  const auto w = session_opening(1);  // no h3 upstream: the session is refused with 501
  host.on_new_stream(2, tunnel::StreamKind::kWtSession, w, false);
  ASSERT_TRUE(tunnel.response(2));
  EXPECT_EQ(tunnel.response(2)->head.status, 501);
  EXPECT_EQ(tunnel.streams[10].reset, tunnel::kStreamProtocolError) << "its session was refused";
  EXPECT_EQ(tunnel.streams[10].consumed, 4u) << "everything it sent is credited";
  EXPECT_EQ(host.early_stream_count(), 0u);

  // The caps: kMaxEarlyStreams held at once, kMaxEarlyBytes each.
  constexpr auto kCap = static_cast<wt::StreamId>(WtRelayHost::kMaxEarlyStreams);
  for (wt::StreamId id = 100; id < 100 + 4 * (kCap + 1); id += 4)
    host.on_new_stream(id, tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x09, 0x00}, false);
  EXPECT_EQ(host.early_stream_count(), WtRelayHost::kMaxEarlyStreams);
  EXPECT_EQ(tunnel.streams[100 + 4 * kCap].reset, tunnel::kStreamProtocolError)
      << "one over the cap is refused at once";
  EXPECT_TRUE(host.on_stream_data(100, std::vector<uint8_t>(WtRelayHost::kMaxEarlyBytes + 1, 'x'), false));
  EXPECT_EQ(tunnel.streams[100].reset, tunnel::kStreamProtocolError) << "over its byte cap";
  host.on_tunnel_closed();
  EXPECT_EQ(host.early_stream_count(), 0u);
}

TEST_F(WtRelayHostTest, RelayedSessionsAreCappedAt64) {
  // Upstreams that never answer (nothing listens on the port): each session stays pending.
  H3UpstreamTarget up;
  up.endpoint = boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 9);
  up.tls = std::make_shared<const quic::TlsClientContext>(quic::TlsClientContext::without_verification());
  upstream = &up;
  for (uint64_t i = 1; i <= tunnel::kMaxRelayedSessions; ++i) {
    host.on_new_stream(static_cast<wt::StreamId>(4 * i + 2), tunnel::StreamKind::kWtSession,
                       session_opening(i), false);
  }
  EXPECT_EQ(host.session_count(), tunnel::kMaxRelayedSessions);
  const wt::StreamId over = 4 * 100 + 2;
  host.on_new_stream(over, tunnel::StreamKind::kWtSession, session_opening(100), false);
  EXPECT_EQ(tunnel.streams[over].reset, tunnel::kStreamProtocolError) << "the 65th is refused";
  EXPECT_EQ(host.session_count(), tunnel::kMaxRelayedSessions);
  // A second session stream reusing a live relay id is refused too.
  host.on_new_stream(4 * 101 + 2, tunnel::StreamKind::kWtSession, session_opening(1), false);
  EXPECT_EQ(tunnel.streams[4 * 101 + 2].reset, tunnel::kStreamProtocolError);
  host.on_tunnel_closed();
  EXPECT_EQ(host.session_count(), 0u);
  io.poll();
}

TEST_F(WtRelayHostTest, RelayedStreamsAreCappedAt256PerSession) {
  // The upstream never answers, so the session stays pending and every stream the edge opens for it is
  // held (bytes kept until the upstream takes them): the cap is what stops them piling up.
  H3UpstreamTarget up;
  up.endpoint = boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 9);
  up.tls = std::make_shared<const quic::TlsClientContext>(quic::TlsClientContext::without_verification());
  upstream = &up;
  host.on_new_stream(2, tunnel::StreamKind::kWtSession, session_opening(1), false);
  ASSERT_EQ(host.session_count(), 1u);
  const auto stream_id = [](uint64_t i) { return static_cast<wt::StreamId>(4 * (i + 10) + 2); };
  for (uint64_t i = 0; i < tunnel::kMaxRelayedStreams; ++i) {
    host.on_new_stream(stream_id(i), tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x01, 0x00, 'x'},
                       false);
    ASSERT_FALSE(tunnel.streams[stream_id(i)].reset) << "stream " << i << " is within the cap";
  }
  const wt::StreamId over = stream_id(tunnel::kMaxRelayedStreams);
  host.on_new_stream(over, tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x01, 0x00, 'y'}, false);
  EXPECT_EQ(tunnel.streams[over].reset, tunnel::kStreamCancelled) << "the 257th is refused";
  EXPECT_EQ(tunnel.streams[over].stopped, tunnel::kStreamCancelled);
  EXPECT_EQ(tunnel.streams[over].consumed, 3u) << "its bytes are taken, not held";
  EXPECT_EQ(host.session_count(), 1u) << "the session itself goes on";
  // Once one stream ends (the edge resets it), there is room for another.
  host.on_stream_reset(stream_id(0), tunnel::kStreamCancelled);
  const wt::StreamId again = stream_id(tunnel::kMaxRelayedStreams + 1);
  host.on_new_stream(again, tunnel::StreamKind::kWtStream, std::vector<uint8_t>{0x01, 0x00, 'z'}, false);
  EXPECT_FALSE(tunnel.streams[again].reset) << "a freed place is used again";
  host.on_tunnel_closed();
  io.poll();
}

}  // namespace
}  // namespace wtmesh::agent
