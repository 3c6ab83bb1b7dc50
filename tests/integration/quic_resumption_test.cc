// Session tickets and 0-RTT over real sockets (quic/session_tickets.h): our client resumes with the
// ticket our server issued and its first stream leaves as 0-RTT; a server that cannot read the
// ticket makes the client close and say why; a captured first flight replayed to the server gets a
// handshake but not its early data; the replay store is bounded.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "quic/session_tickets.h"
#include "quic_loopback_fixture.h"

namespace wtmesh::quic {
namespace {

using namespace wtmesh::quic::test_support;  // NOLINT(google-build-using-namespace): the fixture

std::vector<uint8_t> key_of(uint8_t fill) { return std::vector<uint8_t>(64, fill); }

class QuicResumption : public QuicLoopback {
 protected:
  // A 0-RTT connection with `ticket` through a relay that captures its first flight, accepted and
  // closed; then an attacker replays that flight from another address. Waits until the server took
  // the replay's connection (server_echo_) and a little more for its early data, if any.
  void replay_accepted_first_flight(const ResumptionTicket& ticket,
                                    const std::shared_ptr<TlsServerContext>& replay_tls = nullptr) {
    UdpRelay relay(io_, server_->local_endpoint());
    Connection* c = dial({}, relay.endpoint(), &ticket);
    ClientRecorder& rec = attach(*c);
    const StreamId id = write_early(*c, "transfer 100 coins");
    ASSERT_TRUE(run_until([&] { return rec.fins.count(id) != 0; }));
    ASSERT_TRUE(c->early_data_accepted());
    ASSERT_FALSE(relay.first_flight().empty());
    c->close(0, "done");
    ASSERT_TRUE(run_until([&] { return server_->connection_count() == 0; }));
    server_echo_ = nullptr;
    if (replay_tls) server_->set_server_tls(replay_tls);
    udp::socket attacker(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    for (const auto& d : relay.first_flight()) attacker.send_to(asio::buffer(d), server_->local_endpoint());
    ASSERT_TRUE(run_until([&] { return server_echo_ != nullptr; }));
    run_until([] { return false; }, std::chrono::milliseconds(300));
  }

  // A full handshake that ends with the server's ticket in hand.
  ResumptionTicket first_ticket() {
    std::optional<ResumptionTicket> ticket;
    Connection* c = dial();
    ClientRecorder& rec = attach(*c);
    c->set_ticket_hook([&](ResumptionTicket t) { ticket = std::move(t); });
    EXPECT_TRUE(run_until([&] { return rec.handshake && ticket.has_value(); }));
    EXPECT_FALSE(c->session_resumed());
    EXPECT_FALSE(c->early_data_attempted());
    c->close(0, "done");
    EXPECT_TRUE(run_until([&] { return server_->connection_count() == 0; }));
    return ticket.value_or(ResumptionTicket{});
  }
  // Opens a stream on `c` before the loop runs (so before any handshake packet) and writes `text`.
  static StreamId write_early(Connection& c, std::string_view text) {
    const auto id = c.open_bidi_stream();
    EXPECT_TRUE(id.has_value());
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    EXPECT_EQ(c.write(*id, bytes, true), text.size());
    return id.value_or(0);
  }
};

TEST_F(QuicResumption, AServerWithoutAKeyIssuesNoTicket) {
  std::optional<ResumptionTicket> ticket;
  Connection* c = dial();
  ClientRecorder& rec = attach(*c);
  c->set_ticket_hook([&](ResumptionTicket t) { ticket = std::move(t); });
  ASSERT_TRUE(run_until([&] { return rec.handshake; }));
  run_until([] { return false; }, std::chrono::milliseconds(200));
  EXPECT_FALSE(ticket.has_value());
}

TEST_F(QuicResumption, TheTicketResumesAndTheFirstStreamIsZeroRtt) {
  server_tls_->enable_resumption(key_of(7));
  const ResumptionTicket ticket = first_ticket();
  ASSERT_TRUE(ticket.usable());

  Connection* c = dial({}, std::nullopt, &ticket);
  ClientRecorder& rec = attach(*c);
  EXPECT_TRUE(c->early_data_attempted());
  const StreamId id = write_early(*c, "sent before the handshake");
  ASSERT_TRUE(run_until([&] { return rec.fins.count(id) != 0; }));
  EXPECT_EQ(std::string(rec.received[id].begin(), rec.received[id].end()), "sent before the handshake");
  EXPECT_TRUE(rec.handshake);
  EXPECT_TRUE(c->session_resumed());
  EXPECT_TRUE(c->early_data_accepted());
  EXPECT_FALSE(c->early_data_rejected());
  ASSERT_NE(server_echo_, nullptr);
  EXPECT_EQ(server_echo_->early_bytes, std::string_view("sent before the handshake").size());
  // The echo (0.5-RTT data) and the server's handshake flight may complete the client before the
  // server has read the client's Finished: the server's own verdict is given once it has.
  ASSERT_TRUE(run_until([&] { return server_conn_->state() != Connection::State::kHandshaking; }));
  EXPECT_TRUE(server_conn_->early_data_accepted());
}

TEST_F(QuicResumption, ATicketTheServerCannotReadEndsTheConnectionAsRejected) {
  server_tls_->enable_resumption(key_of(7));
  const ResumptionTicket ticket = first_ticket();
  server_tls_->enable_resumption(key_of(9));  // another key: the old tickets no longer open

  Connection* c = dial({}, std::nullopt, &ticket);
  ClientRecorder& rec = attach(*c);
  write_early(*c, "lost early data");
  ASSERT_TRUE(run_until([&] { return rec.closed; }));
  EXPECT_TRUE(c->early_data_attempted());
  EXPECT_TRUE(c->early_data_rejected());
  EXPECT_EQ(rec.close_reason, "0-RTT rejected by the server");
  EXPECT_TRUE(rec.received.empty());
  ASSERT_NE(server_echo_, nullptr);
  EXPECT_EQ(server_echo_->early_bytes, 0u);

  // Without the ticket the next connection is an ordinary one.
  Connection* again = dial();
  ClientRecorder& rec2 = attach(*again);
  ASSERT_TRUE(run_until([&] { return rec2.handshake; }));
  EXPECT_FALSE(again->early_data_attempted());
}

TEST_F(QuicResumption, AReplayedFirstFlightGetsAHandshakeButNotItsEarlyData) {
  server_tls_->enable_resumption(key_of(7));
  ASSERT_NO_FATAL_FAILURE(replay_accepted_first_flight(first_ticket()));
  EXPECT_EQ(server_echo_->early_bytes, 0u) << "the replayed 0-RTT stream reached the application";
  ASSERT_NE(server_tls_->replay_store(), nullptr);
  EXPECT_EQ(server_tls_->replay_store()->replays(), 1u);
}

// The workers of one edge (edge/edge_workers.h) each have a TLS context of their own sharing the
// ticket key and the replay store: a first flight replayed to another worker's context must lose its
// early data too, although that context's GnuTLS anti-replay window started at another instant.
TEST_F(QuicResumption, AFirstFlightReplayedToAnotherWorkersContextLosesItsEarlyDataToo) {
  server_tls_->enable_resumption(key_of(7));
  auto other = std::make_shared<TlsServerContext>(TlsServerContext::from_files(files_.cert, files_.key));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // another window start than server_tls_'s
  other->share_resumption_across_threads(*server_tls_);
  const ResumptionTicket ticket = first_ticket();
  ASSERT_NO_FATAL_FAILURE(replay_accepted_first_flight(ticket, other));  // the other worker's context answers
  EXPECT_EQ(server_echo_->early_bytes, 0u) << "the replay's 0-RTT stream reached the application";
  ASSERT_NE(other->replay_store(), nullptr);
  EXPECT_EQ(other->replay_store(), server_tls_->replay_store()) << "one store for both";
  EXPECT_EQ(other->replay_store()->replays(), 1u);

  // A fresh 0-RTT connection with the ticket through the other context: its early data is accepted
  // (the ticket key is shared).
  Connection* again = dial({}, std::nullopt, &ticket);
  ClientRecorder& rec2 = attach(*again);
  const StreamId id2 = write_early(*again, "another transfer");
  ASSERT_TRUE(run_until([&] { return rec2.fins.count(id2) != 0 || rec2.closed; }));
  EXPECT_TRUE(again->early_data_accepted());
}

TEST(AntiReplayStore, ASecondSightWithinTheWindowIsAReplay) {
  AntiReplayStore store(4);
  EXPECT_EQ(store.add("a", 110, 100), AntiReplayStore::Result::kAdded);
  EXPECT_EQ(store.add("a", 110, 105), AntiReplayStore::Result::kReplay);
  EXPECT_EQ(store.replays(), 1u);
  EXPECT_EQ(store.add("a", 121, 111), AntiReplayStore::Result::kAdded) << "expired: may be seen again";
}

TEST(AntiReplayStore, AFullStoreRefusesRatherThanForgets) {
  AntiReplayStore store(3);
  EXPECT_EQ(store.add("a", 110, 100), AntiReplayStore::Result::kAdded);
  EXPECT_EQ(store.add("b", 111, 100), AntiReplayStore::Result::kAdded);
  EXPECT_EQ(store.add("c", 112, 100), AntiReplayStore::Result::kAdded);
  EXPECT_EQ(store.add("d", 113, 101), AntiReplayStore::Result::kFull);
  EXPECT_EQ(store.add("a", 110, 101), AntiReplayStore::Result::kReplay) << "nothing was forgotten";
  EXPECT_EQ(store.refused_full(), 1u);
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.add("d", 121, 110), AntiReplayStore::Result::kAdded) << "a expired and made room";
  EXPECT_LE(store.size(), store.capacity());
}

}  // namespace
}  // namespace wtmesh::quic
