// Real QUIC over 127.0.0.1: our client endpoint against our server endpoint (ngtcp2 + GnuTLS both
// sides), no HTTP/3. Proves handshake, ALPN policy, streams with backpressure, stream-credit
// extension, datagrams, version negotiation, stateless reset and idle timeout on real sockets.
#include <gtest/gtest.h>
#include <ngtcp2/ngtcp2.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "../support/run_until.h"
#include "../support/sanitizers.h"
#include "../support/temp_dir.h"
#include "quic/certs.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"
#include "quic_loopback_fixture.h"

namespace wtmesh::quic {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using wtmesh::test::TempDir;
using namespace wtmesh::quic::test_support;  // NOLINT(google-build-using-namespace): the fixture

TEST_F(QuicLoopback, HandshakeNegotiatesH3) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  EXPECT_EQ(c->negotiated_alpn(), "h3");
  EXPECT_EQ(server_->connection_count(), 1u);
}

// Nothing listens on the port (ICMP port unreachable, Endpoint::close_unreachable): the dial ends
// at once, not after its handshake timeout.
TEST_F(QuicLoopback, ADialToAClosedPortEndsAtOnce) {
  udp::endpoint gone;
  {
    udp::socket s(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    gone = s.local_endpoint();
  }
  Connection* c = dial({}, gone);
  ASSERT_NE(c, nullptr);
  ClientRecorder& rec = attach(*c);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return rec.closed; }, std::chrono::seconds(5)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_FALSE(rec.handshake);
  EXPECT_NE(rec.close_reason.find("port unreachable"), std::string::npos) << rec.close_reason;
  EXPECT_GE(client_ep_->socket_io().stats().port_unreachable, 1u);
}

// An open connection whose server process is gone (its socket closed, no CONNECTION_CLOSE): the
// client's next packet draws ICMP port unreachable and the connection closes then, not after the
// unresponsive deadline.
TEST_F(QuicLoopback, AServerThatIsGoneIsNoticedAtTheNextPacket) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake && server_conn_ != nullptr; }));
  server_.reset();  // the server's socket closes with it
  const auto id = c->open_bidi_stream();
  ASSERT_TRUE(id);
  const std::vector<uint8_t> hello{'h', 'i'};
  c->write(*id, hello, true);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return rec.closed; }, std::chrono::seconds(5)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_NE(rec.close_reason.find("port unreachable"), std::string::npos) << rec.close_reason;
}

TEST_F(QuicLoopback, BidiEchoLargerThanWindowsAndBuffers) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  auto id = c->open_bidi_stream();
  ASSERT_TRUE(id);
  // 24 MiB: several times the stream window and the per-stream send buffer on both sides.
  std::vector<uint8_t> data(24 << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31 + 7);
  size_t sent = 0;
  ASSERT_TRUE(run_until(
      [&] {
        if (sent < data.size()) {
          sent += c->write(*id, std::span<const uint8_t>(data).subspan(sent), true);
        }
        return rec.fins[*id];
      },
      std::chrono::seconds(60)));
  EXPECT_EQ(rec.received[*id].size(), data.size());
  EXPECT_TRUE(rec.received[*id] == data);
  EXPECT_GT(rec.writable, 0) << "the sender must have hit its send-buffer cap at least once";
}

// unacked_bytes counts what was written and not yet acknowledged, unsent bytes included, and drops
// to 0 once the peer acknowledged it all (the agent's "delivered" check before closing a session).
TEST_F(QuicLoopback, UnackedBytesFallToZeroOnceThePeerAcknowledgedThem) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  auto id = c->open_bidi_stream();
  ASSERT_TRUE(id);
  EXPECT_EQ(c->unacked_bytes(*id), 0u);
  const std::vector<uint8_t> data(200 * 1024, 0x5a);
  ASSERT_EQ(c->write(*id, data, false), data.size());
  EXPECT_EQ(c->unacked_bytes(*id), data.size());  // nothing sent yet
  ASSERT_TRUE(run_until([&] { return c->unacked_bytes(*id) == 0; }));
  // Acknowledged means the server has it: its echo came back whole.
  ASSERT_TRUE(run_until([&] { return rec.received[*id].size() == data.size(); }));
  ASSERT_EQ(c->write(*id, data, false), data.size());
  c->reset_stream(*id, 7);
  EXPECT_EQ(c->unacked_bytes(*id), 0u);  // reset: nothing more will be delivered
  EXPECT_EQ(c->unacked_bytes(12345), 0u);
}

// The peer's STOP_SENDING reaches the handler even while the stream waits for flow-control credit
// (the receiver stopped reading, so credit would never come), and writes are refused after it.
TEST_F(QuicLoopback, PeerStopSendingIsReportedToABlockedWriter) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  auto id = c->open_bidi_stream();
  ASSERT_TRUE(id);
  std::vector<uint8_t> data(256 << 10, 0x5a);
  size_t sent = 0;
  bool stopped = false;
  ASSERT_TRUE(run_until([&] {
    sent += c->write(*id, data, false);  // an uploader with more to send keeps trying
    if (!stopped && sent >= (1u << 20) && server_conn_ != nullptr) {
      server_conn_->stop_sending(*id, 7);
      stopped = true;
    }
    return rec.stops.count(*id) != 0;
  }));
  EXPECT_EQ(rec.stops[*id], kAppErrorUnknown) << "ngtcp2 1.11 does not tell the peer's code";
  EXPECT_EQ(c->write(*id, data, false), 0u);
  EXPECT_EQ(c->send_capacity(*id), 0u);
}

// Both directions wedged by flow control (the client reads nothing, so the echo stops reading too):
// the client's stream waits for credit that will never come, and the server's STOP_SENDING must
// still reach it.
TEST_F(QuicLoopback, PeerStopSendingReachesAFlowControlBlockedStream) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  rec.hold_credit = true;
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  auto id = c->open_bidi_stream();
  ASSERT_TRUE(id);
  std::vector<uint8_t> data(256 << 10, 0x5a);
  size_t sent = 0;
  size_t last = 0;
  int still = 0;
  // Write until nothing moves for 50 turns (~250 ms): both windows are full.
  ASSERT_TRUE(run_until(
      [&] {
        sent += c->write(*id, data, false);
        still = sent == last ? still + 1 : 0;
        last = sent;
        return still >= 50;
      },
      std::chrono::seconds(20)));
  ASSERT_EQ(c->send_capacity(*id), 0u) << "the client's send buffer should be full";
  server_conn_->stop_sending(*id, 7);
  ASSERT_TRUE(run_until([&] { return rec.stops.count(*id) != 0; }));
  EXPECT_EQ(c->write(*id, data, false), 0u);
}

// Our own STOP_SENDING stops only our reading: we can still answer on the same stream.
TEST_F(QuicLoopback, OwnStopSendingLeavesOurSendingSideOpen) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  auto id = c->open_bidi_stream();
  ASSERT_TRUE(id);
  const std::string hello = "hello";
  c->write(*id, {reinterpret_cast<const uint8_t*>(hello.data()), hello.size()}, false);
  ASSERT_TRUE(run_until([&] { return rec.received[*id].size() == hello.size(); }));  // echoed
  server_conn_->stop_sending(*id, 7);
  const std::string bye = "bye";
  ASSERT_EQ(server_conn_->write(*id, {reinterpret_cast<const uint8_t*>(bye.data()), bye.size()}, true), 3u);
  ASSERT_TRUE(run_until([&] { return rec.fins[*id]; }));
  EXPECT_EQ(std::string(rec.received[*id].begin(), rec.received[*id].end()), "hellobye");
  EXPECT_EQ(rec.resets.count(*id), 0u);
  EXPECT_EQ(rec.stops.count(*id), 0u);
}

TEST_F(QuicLoopback, UniStreamEchoedOnServerUniStream) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  auto id = c->open_uni_stream();
  ASSERT_TRUE(id);
  const std::string msg = "uni stream payload";
  c->write(*id, {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()}, true);
  ASSERT_TRUE(run_until([&] {
    for (auto& [sid, fin] : rec.fins) {
      if (fin && is_uni(sid) && !is_client_initiated(sid)) return true;
    }
    return false;
  }));
  for (auto& [sid, bytes] : rec.received) {
    if (is_uni(sid)) {
      EXPECT_EQ(std::string(bytes.begin(), bytes.end()), msg);
    }
  }
}

TEST_F(QuicLoopback, PeerStreamCreditIsExtendedAsStreamsClose) {
  server_limits_.max_streams_bidi = 4;
  TearDown();
  SetUp();
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  // Far more streams than the server's limit of 4 concurrently open ones, one after another.
  int done = 0;
  for (int i = 0; i < 40; ++i) {
    std::optional<StreamId> id;
    ASSERT_TRUE(run_until([&] { return (id = c->open_bidi_stream()).has_value(); })) << "stream " << i;
    const uint8_t b = static_cast<uint8_t>(i);
    c->write(*id, {&b, 1}, true);
    ASSERT_TRUE(run_until([&] { return rec.fins[*id]; }));
    ++done;
  }
  EXPECT_EQ(done, 40);
  // The server must have forgotten every closed stream.
  ASSERT_TRUE(run_until([&] { return c->stream_count() == 0; }));
}

TEST_F(QuicLoopback, StreamLimitRefusesOpeningBeyondPeerCredit) {
  server_limits_.max_streams_bidi = 3;
  TearDown();
  SetUp();
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  EXPECT_TRUE(c->open_bidi_stream());
  EXPECT_TRUE(c->open_bidi_stream());
  EXPECT_TRUE(c->open_bidi_stream());
  EXPECT_FALSE(c->open_bidi_stream()) << "MAX_STREAMS=3 must stop the fourth";
}

TEST_F(QuicLoopback, DatagramsEchoAndOversizeIsRefused) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  ASSERT_GT(c->max_datagram_payload(), 1000u);
  std::vector<uint8_t> d(200, 0xab);
  ASSERT_TRUE(run_until([&] {
    c->send_datagram(d);
    return !rec.datagrams.empty();
  }));
  EXPECT_EQ(rec.datagrams.front(), d);
  std::vector<uint8_t> big(c->max_datagram_payload() + 1, 1);
  EXPECT_FALSE(c->send_datagram(big));
}

TEST_F(QuicLoopback, DatagramQueueIsCapped) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  std::vector<uint8_t> d(100, 1);
  size_t accepted = 0;
  for (size_t i = 0; i < TransportLimits{}.datagram_queue + 50; ++i) accepted += c->send_datagram(d) ? 1 : 0;
  EXPECT_EQ(accepted, TransportLimits{}.datagram_queue);
}

TEST_F(QuicLoopback, DatagramQueueIsCappedInBytes) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  std::vector<uint8_t> d(1000, 1);
  size_t accepted = 0;
  for (size_t i = 0; i < 400; ++i) accepted += c->send_datagram(d) ? 1 : 0;
  EXPECT_EQ(accepted, TransportLimits{}.datagram_queue_bytes / d.size());
  EXPECT_LE(c->queued_datagram_bytes(), TransportLimits{}.datagram_queue_bytes);
}

// A burst of small datagrams (a UDP tunnel's 200 DNS answers at once) is queued whole and shares
// packets: all of them come back from the echoing server, in far fewer packets than datagrams.
TEST_F(QuicLoopback, ABurstOfSmallDatagramsSharesPackets) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  const uint64_t packets_before = client_ep_->stats().packets_out;
  constexpr size_t kBurst = 300;
  for (size_t i = 0; i < kBurst; ++i) {
    std::vector<uint8_t> d(40, static_cast<uint8_t>(i));
    ASSERT_TRUE(c->send_datagram(d)) << i;
  }
  ASSERT_TRUE(run_until([&] { return rec.datagrams.size() == kBurst; }));
  for (size_t i = 0; i < kBurst; ++i)
    EXPECT_EQ(rec.datagrams[i], std::vector<uint8_t>(40, static_cast<uint8_t>(i)));
  EXPECT_LT(client_ep_->stats().packets_out - packets_before, kBurst / 10);
  EXPECT_EQ(c->queued_datagrams(), 0u);
  EXPECT_EQ(c->queued_datagram_bytes(), 0u);
}

TEST_F(QuicLoopback, ATimerWhoseDeadlineMovedAwayDoesNotFireForNothing) {
  // Every 10 ms the client sends request A and, 0.5 ms after A's echo, request B. The server holds
  // its acknowledgement of A (ack_defer, 2 ms) and arms a wait for the hold's end; B's echo carries
  // that acknowledgement, and the wait has nothing left to fire for. It is moved to the server's
  // next deadline (Endpoint::arm_timer), and the echo, which took everything there was to send,
  // leaves no pacing deadline behind (Connection::idle_pacing_at_): otherwise the server wakes to
  // send nothing once per round, as the agent did once per request at everyday rates (issue 15).
  // The client must act within the server's 2 ms hold; under ASan every step is several times slower
  // and late wake-ups find nothing to do for that reason alone (10 of 16 in one CI run), so there the
  // rounds run and every echo is checked, not the count.
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  (void)run_until([] { return false; }, std::chrono::milliseconds(100));  // the handshake's stragglers
  // One handler at a time, so the client acts within the server's hold, not after a 5 ms slice.
  auto step_until = [&](const std::function<bool()>& done) {
    return test::run_io_until(io_, done, std::chrono::seconds(10), test::Turn::kOneHandler,
                              std::chrono::milliseconds(1));
  };
  auto request = [&](const std::string& text) {
    const auto id = c->open_bidi_stream();
    EXPECT_TRUE(id);
    if (!id) return false;
    c->write(*id, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), true);
    return step_until([&] { return rec.fins.count(*id) > 0; });
  };
  const EndpointStats before = server_->stats();
  const EndpointStats client_before = client_ep_->stats();
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(request("A" + std::to_string(i))) << i;
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(500);
    step_until([&] { return std::chrono::steady_clock::now() >= until; });
    ASSERT_TRUE(request("B" + std::to_string(i))) << i;
    (void)run_until([] { return false; }, std::chrono::milliseconds(10));
  }
  const EndpointStats after = server_->stats();
  const EndpointStats client_after = client_ep_->stats();
  if (test::kUnderAsan) return;
  // A slow test machine may wake late now and then. Without the two changes: 24 of the server's 26
  // timer wake-ups in 20 rounds sent nothing, and 21 of the client's 45 (after its request B): about
  // one per round, against a quarter of the rounds allowed here.
  constexpr uint64_t kAllowed = kRounds / 4;
  EXPECT_LE(after.empty_timer_wakeups - before.empty_timer_wakeups, kAllowed)
      << after.timer_wakeups - before.timer_wakeups << " timer wake-ups in " << kRounds << " rounds";
  EXPECT_LE(client_after.empty_timer_wakeups - client_before.empty_timer_wakeups, kAllowed)
      << client_after.timer_wakeups - client_before.timer_wakeups << " timer wake-ups on the client";
}

TEST_F(QuicLoopback, ApplicationCloseReachesPeer) {
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  c->close(0x42, "done here");
  ASSERT_TRUE(run_until([&] { return server_->connection_count() == 0; }));
  EXPECT_TRUE(rec.closed);
}

TEST_F(QuicLoopback, IdleTimeoutClosesBothSides) {
  server_limits_.idle_timeout = std::chrono::milliseconds(300);
  TearDown();
  SetUp();
  TransportLimits client_limits;
  client_limits.idle_timeout = std::chrono::milliseconds(300);
  Connection* c = dial(client_limits);
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  ASSERT_TRUE(
      run_until([&] { return rec.closed && server_->connection_count() == 0; }, std::chrono::seconds(5)));
  EXPECT_EQ(client_ep_->connection_count(), 0u);
}

// A peer that vanishes without a word is noticed within about a second once data waits for its
// acknowledgement, not at the 30 s idle timeout; a quiet but live peer is left alone.
TEST_F(QuicLoopback, UnresponsivePeerIsNoticedWithinASecond) {
  UdpRelay relay(io_, server_->local_endpoint());
  Connection* c = dial({}, relay.endpoint());
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  auto id = c->open_bidi_stream();
  ASSERT_TRUE(id);
  const std::string ping = "ping";
  c->write(*id, {reinterpret_cast<const uint8_t*>(ping.data()), ping.size()}, false);
  ASSERT_TRUE(run_until([&] { return rec.received[*id].size() == ping.size(); }));
  // Quiet for 1.5 s with nothing in flight: no reason to give up on the peer.
  run_until([] { return false; }, std::chrono::milliseconds(1500));
  EXPECT_FALSE(rec.closed);
  relay.cut();
  const auto t0 = std::chrono::steady_clock::now();
  c->write(*id, {reinterpret_cast<const uint8_t*>(ping.data()), ping.size()}, false);
  ASSERT_TRUE(run_until([&] { return rec.closed; }, std::chrono::seconds(5)));
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::milliseconds(1000));
  EXPECT_GE(took, std::chrono::milliseconds(550));  // the 600 ms floor, give or take a timer tick
  EXPECT_EQ(rec.close_reason, "peer unresponsive");
}

// A process starved of CPU (a loaded box, a sanitizer build) wakes up after the unresponsive floor
// while the peer's answers wait in its socket: they are read before the silence is judged, so a live
// peer is not taken for a dead one. The server runs on a thread of its own and keeps answering while
// the client's loop is held for longer than the floor.
TEST_F(QuicLoopback, ALateWakeReadsThePeerBeforeJudgingIt) {
  asio::io_context server_io;  // the fixture's server stays idle
  std::optional<Endpoint> server;
  server.emplace(server_io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ServerOptions opts;
  opts.tls = server_tls_;
  // The server is the patient side here: it must not give up on the held client itself.
  opts.limits.unresponsive_floor = std::chrono::seconds(30);
  opts.on_connection = [](Connection& c) {
    auto app = std::make_unique<ServerApp>(c);
    c.set_handler(&app->echo);
    c.set_app_state(std::move(app));
  };
  server->listen(opts);
  const udp::endpoint where = server->local_endpoint();
  auto guard = asio::make_work_guard(server_io);
  std::thread server_thread([&] { server_io.run(); });
  Connection* c = dial({}, where);
  ClientRecorder& rec = attach(*c);
  const std::string ping = "ping";
  std::optional<StreamId> id;
  if (run_until([&] { return rec.handshake; })) {
    id = c->open_bidi_stream();
    if (id) {
      for (int round = 0; round < 3 && !rec.closed; ++round) {
        c->write(*id, {reinterpret_cast<const uint8_t*>(ping.data()), ping.size()}, false);
        // Out goes the ping (the loop runs once), then the client is starved past the 600 ms floor.
        io_.poll();
        std::this_thread::sleep_for(std::chrono::milliseconds(900));
        run_until([&] { return rec.received[*id].size() == ping.size() * (round + 1); },
                  std::chrono::seconds(3));
      }
    }
  }
  const size_t echoed = id ? rec.received[*id].size() : 0;
  const bool closed = rec.closed;
  const std::string reason = rec.close_reason;
  guard.reset();
  asio::post(server_io, [&] { server.reset(); });
  server_thread.join();
  EXPECT_TRUE(rec.handshake);
  EXPECT_FALSE(closed) << reason;
  EXPECT_EQ(echoed, 3 * ping.size()) << "every echo came back";
}

TEST_F(QuicLoopback, WrongCaFailsHandshake) {
  TempDir other;
  auto other_files = ensure_state_certs(other.path());
  auto wrong = TlsClientContext::with_ca_file(other_files.ca_cert);
  std::string error;
  Connection* c = client_ep_->connect(server_->local_endpoint(), "localhost", wrong, {}, &error);
  ASSERT_NE(c, nullptr);
  ClientRecorder& rec = attach(*c);
  ASSERT_TRUE(run_until([&] { return rec.closed; }));
  EXPECT_FALSE(rec.handshake);
}

// Raw UDP probes of the endpoint's stateless behaviour.
TEST_F(QuicLoopback, UnknownVersionGetsVersionNegotiation) {
  udp::socket probe(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<uint8_t> pkt(1200, 0);
  pkt[0] = 0xc0;  // long header
  pkt[1] = 0x1a;
  pkt[2] = 0x2a;
  pkt[3] = 0x3a;
  pkt[4] = 0x4a;  // reserved version 0x1a2a3a4a
  pkt[5] = 8;     // DCID len
  for (int i = 0; i < 8; ++i) pkt[6 + i] = static_cast<uint8_t>(i);
  pkt[14] = 8;  // SCID len
  for (int i = 0; i < 8; ++i) pkt[15 + i] = static_cast<uint8_t>(0x10 + i);
  probe.send_to(asio::buffer(pkt), server_->local_endpoint());
  ASSERT_TRUE(run_until([&] { return server_->stats().version_negotiations == 1; }));
  std::array<uint8_t, 256> buf{};
  udp::endpoint from;
  const size_t n = probe.receive_from(asio::buffer(buf), from);
  ASSERT_GT(n, 7u);
  EXPECT_EQ(buf[1] | buf[2] | buf[3] | buf[4], 0) << "version 0 marks Version Negotiation";
}

TEST_F(QuicLoopback, UnknownShortHeaderGetsStatelessReset) {
  udp::socket probe(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<uint8_t> pkt(100, 0x5a);
  pkt[0] = 0x40;  // short header, fixed bit set
  probe.send_to(asio::buffer(pkt), server_->local_endpoint());
  ASSERT_TRUE(run_until([&] { return server_->stats().stateless_resets == 1; }));
  std::array<uint8_t, 256> buf{};
  udp::endpoint from;
  const size_t n = probe.receive_from(asio::buffer(buf), from);
  EXPECT_LT(n, pkt.size()) << "a reset is always smaller than what triggered it";
  EXPECT_GE(n, 22u);
}

}  // namespace
}  // namespace wtmesh::quic
