// quic::Connection in memory (tests/support/quic_pair.h): a real ngtcp2 + GnuTLS handshake, packets
// moved by the test, time as a parameter. Checks that the handler never runs inside an ngtcp2 call
// and may close the connection from any of its callbacks, then the transport's behaviour: echo,
// stream credit, loss recovery, idle timeout.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <string>

#include "../../support/quic_pair.h"

namespace wtmesh::quic {
namespace {

using namespace std::chrono_literals;
using test::QuicPair;

// Records every callback. `conn` finds the connection it serves (the server's exists only once
// accepted); `hook` runs inside each callback with its name, after the recording.
struct Recorder final : TransportHandler {
  std::function<Connection*()> conn;
  std::function<void(const std::string&)> hook;
  bool consume = true;  // give the peer credit back at once

  int handshakes = 0;
  std::map<StreamId, std::string> data;
  std::set<StreamId> fins, closed_streams, writable, stopped;
  std::map<StreamId, uint64_t> resets;
  std::vector<std::string> datagrams;
  int streams_available = 0;
  int closes = 0;
  uint64_t close_code = 0;
  bool close_app = false;
  std::string close_reason;
  int inside_library = 0;  // callbacks that ran inside an ngtcp2 call (must stay 0)
  int after_close = 0;     // callbacks after on_connection_closed (must stay 0)

  void seen(const std::string& kind) {
    if (Connection* c = conn ? conn() : nullptr; c && c->in_library()) ++inside_library;
    if (closes > 0) ++after_close;
    if (hook) hook(kind);
  }
  void on_handshake_completed() override {
    ++handshakes;
    seen("handshake");
  }
  void on_stream_data(StreamId id, std::span<const uint8_t> d, bool fin) override {
    data[id].append(d.begin(), d.end());
    if (fin) fins.insert(id);
    if (consume && conn && conn()) conn()->consume(id, d.size());
    seen("stream_data");
  }
  void on_stream_reset(StreamId id, uint64_t code) override {
    resets[id] = code;
    seen("stream_reset");
  }
  void on_stop_sending(StreamId id, uint64_t) override {
    stopped.insert(id);
    seen("stop_sending");
  }
  void on_stream_closed(StreamId id) override {
    closed_streams.insert(id);
    seen("stream_closed");
  }
  void on_stream_writable(StreamId id) override {
    writable.insert(id);
    seen("stream_writable");
  }
  void on_streams_available() override {
    ++streams_available;
    seen("streams_available");
  }
  void on_datagram(std::span<const uint8_t> p) override {
    datagrams.emplace_back(p.begin(), p.end());
    seen("datagram");
  }
  void on_connection_closed(uint64_t code, bool app, std::string_view reason) override {
    if (Connection* c = conn ? conn() : nullptr; c && c->in_library()) ++inside_library;
    if (closes > 0) ++after_close;
    ++closes;
    close_code = code;
    close_app = app;
    close_reason = std::string(reason);
  }
};

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class ConnectionPairTest : public ::testing::Test {
 protected:
  void start(TransportLimits client_limits = {}, TransportLimits server_limits = {}) {
    pair_ = std::make_unique<QuicPair>(client_limits, server_limits);
    client_.conn = [this] { return &pair_->client(); };
    server_.conn = [this] { return pair_->server(); };
    pair_->start(&client_, &server_);
    pair_->pump();
    pair_->advance(20ms);  // paced packets of the server's first flight
  }
  void TearDown() override {
    EXPECT_EQ(client_.inside_library, 0) << "client handler ran inside ngtcp2";
    EXPECT_EQ(server_.inside_library, 0) << "server handler ran inside ngtcp2";
    EXPECT_EQ(client_.after_close, 0);
    EXPECT_EQ(server_.after_close, 0);
  }

  std::unique_ptr<QuicPair> pair_;
  Recorder client_, server_;
};

TEST_F(ConnectionPairTest, HandshakeInMemory) {
  start();
  ASSERT_NE(pair_->server(), nullptr);
  EXPECT_EQ(client_.handshakes, 1);
  EXPECT_EQ(server_.handshakes, 1);
  EXPECT_EQ(pair_->client().state(), Connection::State::kOpen);
  EXPECT_EQ(pair_->server()->state(), Connection::State::kOpen);
  EXPECT_EQ(pair_->client().negotiated_alpn(), "h3");
}

TEST_F(ConnectionPairTest, EchoFromInsideTheDataCallback) {
  server_.hook = [this](const std::string& kind) {
    if (kind != "stream_data") return;
    for (auto& [id, d] : server_.data) {
      if (server_.fins.count(id) && !d.empty()) {
        pair_->server()->write(id, bytes(d), true);  // a write from the handler: outside ngtcp2
        d.clear();
      }
    }
  };
  start();
  const auto id = pair_->client().open_bidi_stream();
  ASSERT_TRUE(id);
  const std::string msg(100'000, 'e');
  ASSERT_EQ(pair_->client().write(*id, bytes(msg), true), msg.size());
  pair_->pump();
  EXPECT_EQ(client_.data[*id].size(), msg.size());
  EXPECT_TRUE(client_.data[*id] == msg);
  EXPECT_TRUE(client_.fins.count(*id));
  pair_->advance(100ms);  // the last ACKs: both sides close the stream
  EXPECT_TRUE(client_.closed_streams.count(*id));
  EXPECT_TRUE(server_.closed_streams.count(*id));
  EXPECT_EQ(pair_->client().stream_count(), 0u);
}

// The server frees its GnuTLS session once the handshake is done (Connection::holds_tls_session):
// what it said stays known, and the connection goes on: streams, and key updates from either side,
// which use ngtcp2's own secrets.
TEST_F(ConnectionPairTest, TheServerLetsGoOfTlsAfterTheHandshakeAndKeysStillUpdate) {
  server_.hook = [this](const std::string& kind) {  // echo each stream once it ended
    if (kind != "stream_data") return;
    for (auto& [id, d] : server_.data) {
      if (server_.fins.count(id) && !d.empty()) {
        pair_->server()->write(id, bytes(d), true);
        d.clear();
      }
    }
  };
  start();
  ASSERT_NE(pair_->server(), nullptr);
  EXPECT_FALSE(pair_->server()->holds_tls_session());
  EXPECT_TRUE(pair_->client().holds_tls_session()) << "a client keeps it (NewSessionTickets come later)";
  EXPECT_EQ(pair_->server()->negotiated_alpn(), "h3");
  EXPECT_FALSE(pair_->server()->session_resumed());

  auto echo = [this](const std::string& msg) {
    const auto id = pair_->client().open_bidi_stream();
    if (!id || pair_->client().write(*id, bytes(msg), true) != msg.size()) return std::string("(no stream)");
    pair_->pump();
    pair_->advance(50ms);
    return client_.data[*id];
  };
  EXPECT_EQ(echo("before"), "before");
  // The client updates its keys: the server follows with keys derived from ngtcp2's secrets.
  ASSERT_TRUE(pair_->client().update_keys());
  EXPECT_EQ(echo("after the client's update"), "after the client's update");
  // Once that update is acknowledged (a few RTTs), the server may start the next one itself.
  pair_->advance(1s);
  ASSERT_TRUE(pair_->server()->update_keys());
  EXPECT_EQ(echo("after the server's update"), "after the server's update");
  pair_->advance(1s);
  ASSERT_TRUE(pair_->client().update_keys());
  EXPECT_EQ(echo("and again"), "and again");
  EXPECT_EQ(pair_->client().state(), Connection::State::kOpen);
  EXPECT_EQ(pair_->server()->state(), Connection::State::kOpen);
  EXPECT_EQ(client_.closes + server_.closes, 0);
}

TEST_F(ConnectionPairTest, StreamCreditHoldsTheSenderUntilTheReaderConsumes) {
  TransportLimits server_limits;
  server_limits.stream_window = 16 * 1024;
  server_limits.max_stream_window = 16 * 1024;
  server_.consume = false;
  start({}, server_limits);
  const auto id = pair_->client().open_bidi_stream();
  const std::string msg(200'000, 'c');
  size_t written = pair_->client().write(*id, bytes(msg), true);
  pair_->pump();
  pair_->advance(50ms);
  EXPECT_LE(server_.data[*id].size(), 16u * 1024) << "no more than the window";
  EXPECT_GT(server_.data[*id].size(), 0u);
  for (int i = 0; i < 200 && server_.data[*id].size() < msg.size(); ++i) {
    pair_->server()->consume(*id, 16 * 1024);
    if (written < msg.size()) written += pair_->client().write(*id, bytes(msg).subspan(written), true);
    pair_->pump();
  }
  EXPECT_EQ(server_.data[*id].size(), msg.size());
  EXPECT_TRUE(server_.data[*id] == msg);
  EXPECT_TRUE(server_.fins.count(*id));
}

// HTTP/3 rapid reset (tests/peers/edge_attacks_quic.sh): a peer that opens a stream and resets it
// before any byte of it arrives. The server learns of the stream only from the reset; answering it with
// a reset of its own side must close the stream, or the peer's stream credit (max_streams_bidi) never
// comes back and the stream stays in ngtcp2 until the connection ends.
TEST_F(ConnectionPairTest, AStreamResetBeforeAnyDataCanBeResetBackAndCloses) {
  server_.hook = [this](const std::string& kind) {
    if (kind != "stream_reset") return;
    for (const auto& [id, code] : server_.resets) pair_->server()->reset_stream(id, code + 1);
  };
  TransportLimits server_limits;
  server_limits.max_streams_bidi = 2;
  start({}, server_limits);
  Connection& c = pair_->client();
  for (int round = 0; round < 5; ++round) {
    const auto id = c.open_bidi_stream();
    ASSERT_TRUE(id) << "round " << round << ": the server's stream credit came back";
    c.write(*id, bytes("GET"), true);
    c.reset_stream(*id, 0x10c);  // before the first flush: only RESET_STREAM goes out
    pair_->pump();
    pair_->advance(50ms);
    EXPECT_EQ(server_.resets.count(*id), 1u);
    EXPECT_FALSE(server_.data.count(*id)) << "no data arrived, only the reset";
    EXPECT_EQ(client_.resets[*id], 0x10du) << "the server's reset reached the client";
    EXPECT_TRUE(client_.closed_streams.count(*id));
    EXPECT_TRUE(server_.closed_streams.count(*id));
  }
  EXPECT_EQ(pair_->server()->stream_count(), 0u);
}

TEST_F(ConnectionPairTest, LostPacketsAreSentAgain) {
  start();
  const auto id = pair_->client().open_bidi_stream();
  const std::string msg(60'000, 'l');
  pair_->client().write(*id, bytes(msg), false);
  pair_->drop_next(QuicPair::kClient, 5);  // lost in the middle: later packets' ACKs reveal it
  pair_->pump();
  EXPECT_EQ(server_.data[*id].size(), msg.size()) << "recovered without a timer (packet threshold)";
  pair_->client().write(*id, bytes("tail"), true);
  pair_->drop_next(QuicPair::kClient, 1);  // the last packet: only the probe timeout finds it
  pair_->pump();
  EXPECT_FALSE(server_.fins.count(*id)) << "the tail was lost";
  pair_->advance(2s);
  EXPECT_EQ(server_.data[*id].size(), msg.size() + 4);
  EXPECT_TRUE(server_.data[*id] == msg + "tail");
  EXPECT_TRUE(server_.fins.count(*id));
}

TEST_F(ConnectionPairTest, IdleTimeoutClosesBothSidesSilently) {
  TransportLimits limits;
  limits.idle_timeout = 1000ms;
  start(limits, limits);
  pair_->advance(900ms);
  EXPECT_EQ(client_.closes, 0);
  pair_->advance(3s);
  EXPECT_EQ(client_.closes, 1);
  EXPECT_EQ(server_.closes, 1);
  EXPECT_EQ(client_.close_reason, "idle timeout");
  EXPECT_FALSE(pair_->alive(QuicPair::kClient));
  EXPECT_FALSE(pair_->alive(QuicPair::kServer));
}

// Each callback kind, on the side that receives it, closes the connection from inside the callback.
// ngtcp2 1.11 forbids writing CONNECTION_CLOSE inside its own calls; the handler now never runs there,
// so the close goes out at once and the peer hears the code and reason.
class CloseInsideCallback : public ConnectionPairTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void arm(Recorder& r, std::function<Connection*()> conn) {
    r.hook = [&r, conn](const std::string& kind) {
      if (kind == GetParam() && r.closes == 0) conn()->close(42, "closed inside " + kind);
    };
  }
};

TEST_P(CloseInsideCallback, ThePeerHearsTheCloseAndNothingFollowsIt) {
  const std::string kind = GetParam();
  TransportLimits client_limits, server_limits;
  server_limits.max_streams_bidi = 1;           // streams_available: the client waits for a slot
  client_limits.stream_send_buffer = 8 * 1024;  // stream_writable: a short write, then acks
  // The receiving side of each event closes: the server for data, resets, datagrams, the handshake
  // and stream close; the client for writable, streams_available and stop_sending.
  const bool client_closes =
      kind == "stream_writable" || kind == "streams_available" || kind == "stop_sending";
  Recorder& closer = client_closes ? client_ : server_;
  Recorder& peer = client_closes ? server_ : client_;
  const auto arm_closer = [&] {
    arm(closer, client_closes ? std::function<Connection*()>([this] { return &pair_->client(); })
                              : std::function<Connection*()>([this] { return pair_->server(); }));
  };
  // Armed after the handshake (which already makes streams available) unless the handshake is it.
  if (kind == "handshake") arm_closer();
  start(client_limits, server_limits);
  if (kind != "handshake") arm_closer();
  Connection& c = pair_->client();
  if (kind != "handshake") {
    ASSERT_EQ(server_.closes, 0);
    const auto id = c.open_bidi_stream();
    ASSERT_TRUE(id);
    if (kind == "stream_data") {
      c.write(*id, bytes("hello"), false);
    } else if (kind == "stream_reset") {
      c.write(*id, bytes("x"), false);
      pair_->pump();
      c.reset_stream(*id, 7);
    } else if (kind == "stream_closed") {
      server_.hook = [this, id](const std::string& k) {
        if (k == "stream_data" && server_.fins.count(*id) && server_.closes == 0) {
          pair_->server()->write(*id, bytes("bye"), true);
        }
        if (k == "stream_closed" && server_.closes == 0)
          pair_->server()->close(42, "closed inside stream_closed");
      };
      c.write(*id, bytes("hi"), true);
    } else if (kind == "datagram") {
      ASSERT_TRUE(c.send_datagram(bytes("dgram")));
    } else if (kind == "stream_writable") {
      const std::string big(64 * 1024, 'w');
      EXPECT_LT(c.write(*id, bytes(big), false), big.size()) << "a short write";
    } else if (kind == "streams_available") {
      EXPECT_FALSE(c.open_bidi_stream()) << "the server allows one stream at a time";
      server_.hook = [this, id](const std::string& k) {
        if (k == "stream_data" && server_.fins.count(*id)) pair_->server()->write(*id, {}, true);
      };
      c.write(*id, bytes("one"), true);
    } else if (kind == "stop_sending") {
      c.write(*id, bytes("a"), false);
      pair_->pump();
      pair_->server()->stop_sending(*id, 9);
      pair_->pump();
      c.write(*id, bytes("b"), false);  // the write pass finds the stream stopped
    }
    pair_->pump();
    pair_->advance(200ms);
  }
  EXPECT_EQ(closer.closes, 1) << kind;
  EXPECT_EQ(peer.closes, 1) << kind << ": the peer heard the CONNECTION_CLOSE";
  EXPECT_EQ(peer.close_code, 42u);
  EXPECT_TRUE(peer.close_app);
  EXPECT_EQ(peer.close_reason, "closed inside " + kind);
}

INSTANTIATE_TEST_SUITE_P(EveryKind, CloseInsideCallback,
                         ::testing::Values("handshake", "stream_data", "stream_reset", "stream_closed",
                                           "datagram", "stream_writable", "streams_available",
                                           "stop_sending"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace wtmesh::quic
