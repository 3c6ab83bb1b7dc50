// What a request costs on the wire at everyday rates (issue 15): a lone packet's acknowledgement waits
// up to TransportLimits::ack_defer for data to ride along, and peer stream credit comes back in
// batches, so one request and its response are two or three packets rather than ten. Real ngtcp2 +
// GnuTLS connections in memory (tests/support/quic_pair.h), time as a parameter.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "../../support/quic_pair.h"

namespace wtmesh::quic {
namespace {

using namespace std::chrono_literals;
using test::QuicPair;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Counts what arrives; the test writes the answers itself (at a time of its choosing).
struct Side final : TransportHandler {
  std::function<Connection*()> conn;
  std::set<StreamId> fins;
  int streams_available = 0;
  int closes = 0;
  void on_handshake_completed() override {}
  void on_stream_data(StreamId id, std::span<const uint8_t> d, bool fin) override {
    if (fin) fins.insert(id);
    if (conn && conn()) conn()->consume(id, d.size());
  }
  void on_stream_reset(StreamId, uint64_t) override {}
  void on_stop_sending(StreamId, uint64_t) override {}
  void on_stream_closed(StreamId) override {}
  void on_stream_writable(StreamId) override {}
  void on_streams_available() override { ++streams_available; }
  void on_datagram(std::span<const uint8_t>) override {}
  void on_connection_closed(uint64_t, bool, std::string_view) override { ++closes; }
};

struct Cost {
  size_t client_packets = 0;
  size_t server_packets = 0;
};

// `n` requests 50 ms apart (20 req/s); the server answers each 1 ms after it arrives, as a proxy
// whose origin is close. Returns the packets each side sent for them. (The pair's RTT is ~0, so
// ngtcp2's own acknowledgement delay, RTT / 8, has passed when the response is written, and the
// response carries the acknowledgement, as on loopback. On a longer path ngtcp2 would not put a
// not-yet-due ACK in the response: it goes alone when the hold ends, as it would have at RTT / 8.)
Cost exchange(QuicPair& pair, Side& server, int n, bool held = true) {
  Connection& c = pair.client();
  const size_t c0 = pair.packets_sent(QuicPair::kClient);
  const size_t s0 = pair.packets_sent(QuicPair::kServer);
  for (int i = 0; i < n; ++i) {
    const auto id = c.open_bidi_stream();
    EXPECT_TRUE(id) << "request " << i << ": no stream credit";
    if (!id) break;
    c.write(*id, bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), true);
    pair.pump();
    EXPECT_TRUE(server.fins.count(*id)) << "request " << i << " did not arrive";
    // The origin answers 1 ms later. With the hold no timer fires meanwhile: the acknowledgement
    // waits for the response; without it ngtcp2's timers fire (and send) as a driver would.
    if (held) {
      EXPECT_TRUE(pair.skip(1ms)) << "request " << i << ": a timer fired before the response";
    } else {
      pair.advance(1ms);
    }
    pair.server()->write(*id, bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), true);
    pair.pump();
    pair.advance(49ms);
  }
  return {pair.packets_sent(QuicPair::kClient) - c0, pair.packets_sent(QuicPair::kServer) - s0};
}

class QuietExchange : public ::testing::Test {
 protected:
  void start(std::chrono::milliseconds ack_defer) {
    TransportLimits limits;
    limits.ack_defer = ack_defer;
    pair_ = std::make_unique<QuicPair>(limits, limits);
    client_.conn = [this] { return &pair_->client(); };
    server_.conn = [this] { return pair_->server(); };
    pair_->start(&client_, &server_);
    pair_->pump();
    pair_->advance(100ms);  // the handshake's stragglers and acknowledgements
    pair_->advance(30ms);   // and the holds their packets started
    ASSERT_EQ(pair_->client().state(), Connection::State::kOpen);
  }
  std::unique_ptr<QuicPair> pair_;
  Side client_, server_;
};

TEST_F(QuietExchange, ARequestAndItsResponseTakeThreePackets) {
  start(2ms);
  const Cost cost = exchange(*pair_, server_, 32);
  // Client: the request, then its acknowledgement of the response (alone: the next request comes
  // 50 ms later). Server: the response with its acknowledgement of the request, plus a MAX_STREAMS
  // every 16 requests (128 / 8) and the acknowledgement of the client's answer to it.
  EXPECT_LE(cost.client_packets, 2u * 32 + 2);
  EXPECT_LE(cost.server_packets, 32u + 2 * (32 / 16) + 2);
  EXPECT_EQ(client_.closes + server_.closes, 0);
}

TEST_F(QuietExchange, WithoutTheDeferralTheSameExchangeCostsMore) {
  // ngtcp2's own timing, with the pair's RTT of ~0: the request is acked on its own before the
  // response, and an ACK-only packet after an RTT of silence carries a PING that the peer acks.
  start(2ms);
  const Cost held = exchange(*pair_, server_, 32);
  start(0ms);
  const Cost unheld = exchange(*pair_, server_, 32, false);
  const size_t with = held.client_packets + held.server_packets;
  EXPECT_GT(unheld.client_packets + unheld.server_packets, with + with / 4);
}

// The client sends one packet; the server sends nothing for `quiet`, then its acknowledgement,
// alone, within `then` more.
void expect_lone_ack(QuicPair& pair, std::chrono::microseconds quiet, std::chrono::microseconds then) {
  Connection& c = pair.client();
  const auto id = c.open_bidi_stream();
  ASSERT_TRUE(id);
  c.write(*id, bytes("ping"), false);
  pair.pump();
  const size_t s0 = pair.packets_sent(QuicPair::kServer);
  EXPECT_TRUE(pair.skip(quiet));
  EXPECT_EQ(pair.packets_sent(QuicPair::kServer), s0);
  pair.advance(then);
  EXPECT_EQ(pair.packets_sent(QuicPair::kServer), s0 + 1);
}

TEST_F(QuietExchange, AnAcknowledgementWaitsNoLongerThanTheDeferral) {
  start(2ms);
  // Nothing is due before the hold ends; then the acknowledgement goes, alone, by 2 ms.
  expect_lone_ack(*pair_, 1900us, 200us);
}

TEST_F(QuietExchange, AnyDeferralIsCappedAt20ms) {
  // Under the 25 ms max_ack_delay we announce, whatever ack_defer says.
  start(100ms);
  expect_lone_ack(*pair_, 19ms, 1ms + 100us);
}

TEST_F(QuietExchange, StreamCreditComesBackInBatches) {
  start(2ms);
  // 128 concurrent streams: credit returns 16 at a time.
  const int before = client_.streams_available;
  exchange(*pair_, server_, 15);
  EXPECT_EQ(client_.streams_available, before) << "a MAX_STREAMS before 16 streams closed";
  exchange(*pair_, server_, 1);
  EXPECT_EQ(client_.streams_available, before + 1);
  // 128 streams in all, well past the initial limit of 128 open at once: credit keeps coming.
  exchange(*pair_, server_, 112);
  EXPECT_EQ(client_.streams_available, before + 8);
}

TEST_F(QuietExchange, ASmallLimitReturnsCreditAtOnce) {
  TransportLimits limits;
  limits.max_streams_bidi = 4;  // 4 / 8 rounds to a batch of 1
  pair_ = std::make_unique<QuicPair>(limits, limits);
  client_.conn = [this] { return &pair_->client(); };
  server_.conn = [this] { return pair_->server(); };
  pair_->start(&client_, &server_);
  pair_->pump();
  pair_->advance(100ms);
  const int before = client_.streams_available;
  exchange(*pair_, server_, 6);
  EXPECT_EQ(client_.streams_available, before + 6);
}

}  // namespace
}  // namespace wtmesh::quic
