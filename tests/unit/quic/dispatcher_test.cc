// quic::Dispatcher, the socket-free half of the endpoint, with byte vectors and real connections in
// memory: Version Negotiation, Stateless Reset (and a client that obeys it), the accept and refuse
// decision on a real Initial, routing by connection id and forgetting a connection's ids.
#include "quic/dispatcher.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <set>
#include <stdexcept>
#include <vector>

#include "../../support/quic_pair.h"

namespace wtmesh::quic {
namespace {

using Kind = Dispatcher::Decision::Kind;

constexpr std::array<uint8_t, 32> kSecret = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                             17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

sockaddr_in v4(const char* text, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, text, &a.sin_addr);
  return a;
}
const sockaddr* sa(const sockaddr_in& a) { return reinterpret_cast<const sockaddr*>(&a); }
constexpr Timestamp kSecond = 1'000'000'000;

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// A long-header packet of version `version`, padded to 1200 bytes as a client's first datagram is.
std::vector<uint8_t> long_header(uint32_t version, const std::vector<uint8_t>& dcid,
                                 const std::vector<uint8_t>& scid) {
  std::vector<uint8_t> p = {0xc3, static_cast<uint8_t>(version >> 24), static_cast<uint8_t>(version >> 16),
                            static_cast<uint8_t>(version >> 8), static_cast<uint8_t>(version)};
  p.push_back(static_cast<uint8_t>(dcid.size()));
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.push_back(static_cast<uint8_t>(scid.size()));
  p.insert(p.end(), scid.begin(), scid.end());
  p.resize(1200, 0);
  return p;
}

std::vector<uint8_t> short_header(const std::vector<uint8_t>& dcid, size_t total) {
  std::vector<uint8_t> p = {0x41};
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.resize(total, 0x77);
  return p;
}

// --- workers sharing one address (quic/endpoint_group.h) ---------------------------------------

std::vector<uint8_t> cid_of_worker(uint8_t worker) {
  std::vector<uint8_t> id(kCidLength, 0x5a);
  id[0] = worker;
  return id;
}

TEST(DispatcherWorkers, IdsIssuedNameTheWorkerInTheirFirstByte) {
  Dispatcher d({.server = true}, kSecret);
  d.set_worker(3, 4);
  std::set<std::vector<uint8_t>> seen;
  for (int i = 0; i < 64; ++i) {
    std::vector<uint8_t> id(kCidLength);
    d.new_cid(id.data(), id.size());
    EXPECT_EQ(id[0], 3);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 64u) << "the other 17 bytes stay random";
  // Alone, an endpoint's ids are random throughout.
  Dispatcher alone({.server = true}, kSecret);
  std::set<uint8_t> first;
  for (int i = 0; i < 64; ++i) {
    std::vector<uint8_t> id(kCidLength);
    alone.new_cid(id.data(), id.size());
    first.insert(id[0]);
  }
  EXPECT_GT(first.size(), 1u);
  EXPECT_THROW(d.set_worker(4, 4), std::invalid_argument);
  EXPECT_THROW(d.set_worker(0, Dispatcher::kMaxWorkers + 1), std::invalid_argument);
}

TEST(DispatcherWorkers, AnotherWorkersShortHeaderAndHandshakePacketsAreForwardedToIt) {
  Dispatcher d({.server = true}, kSecret);
  d.set_worker(1, 3);
  const auto fwd = d.classify(short_header(cid_of_worker(2), 60), 0);
  ASSERT_EQ(fwd.kind, Kind::kForward);
  EXPECT_EQ(fwd.worker, 2u);
  EXPECT_EQ(d.classify(short_header(cid_of_worker(0), 60), 0).worker, 0u);
  // A Handshake packet (v1 type 2) carries an id we issued as well.
  std::vector<uint8_t> hs = long_header(NGTCP2_PROTO_VER_V1, cid_of_worker(2), {9, 9, 9});
  hs[0] = 0xe3;
  EXPECT_EQ(d.classify(hs, 0).kind, Kind::kForward);
  // QUIC v2 numbers its types differently (RFC 9369): its Handshake is type 3.
  std::vector<uint8_t> hs2 = long_header(NGTCP2_PROTO_VER_V2, cid_of_worker(2), {9, 9, 9});
  hs2[0] = 0xf3;
  EXPECT_EQ(d.classify(hs2, 0).kind, Kind::kForward);
  EXPECT_EQ(d.stats().forwarded, 4u);
  EXPECT_EQ(d.stats().stateless_resets, 0u);
}

TEST(DispatcherWorkers, OwnIdsUnknownIdsAndNewConnectionsStayWithTheWorker) {
  Dispatcher d({.server = true}, kSecret);
  d.set_worker(1, 3);
  // Its own byte but no connection: the connection is gone, so the peer gets a stateless reset.
  EXPECT_EQ(d.classify(short_header(cid_of_worker(1), 60), 0).kind, Kind::kReply);
  // A byte no worker has, or an id of another length: not ours at all.
  EXPECT_EQ(d.classify(short_header(cid_of_worker(7), 60), 0).kind, Kind::kReply);
  // An Initial (v1 type 0) carries the client's own choice of id: a new connection lives where it
  // landed, whatever its first byte says (here a well-formed but too short one is dropped, not moved).
  std::vector<uint8_t> initial = long_header(NGTCP2_PROTO_VER_V1, cid_of_worker(2), {9, 9, 9});
  EXPECT_NE(d.classify(initial, 0).kind, Kind::kForward);
  std::vector<uint8_t> zero_rtt = initial;
  zero_rtt[0] = 0xd3;  // type 1: 0-RTT, also the client's id
  EXPECT_NE(d.classify(zero_rtt, 0).kind, Kind::kForward);
  EXPECT_EQ(d.stats().forwarded, 0u);
  // A lone endpoint forwards nothing.
  Dispatcher alone({.server = true}, kSecret);
  EXPECT_EQ(alone.classify(short_header(cid_of_worker(2), 60), 0).kind, Kind::kReply);
}

TEST(DispatcherWorkers, WorkersSharingSecretsGiveTheSameResetTokens) {
  std::array<uint8_t, 32> other{};
  other.fill(0xee);
  Dispatcher a({.server = true}), b({.server = true});
  a.set_secrets(kSecret, other);
  b.set_secrets(kSecret, other);
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, cid_of_worker(1).data(), kCidLength);
  std::array<uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> ta{}, tb{};
  a.stateless_reset_token(ta.data(), cid);
  b.stateless_reset_token(tb.data(), cid);
  EXPECT_EQ(ta, tb);
}

// The first datagram of a real client connection (its Initial with the ClientHello).
class DispatcherInitialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pair_.start(&client_handler_, &server_handler_);
    pair_.client().write_packets(pair_.now(), [&](const ngtcp2_path&, std::span<const uint8_t> pkt) {
      if (initial_.empty()) initial_.assign(pkt.begin(), pkt.end());
    });
    ASSERT_FALSE(initial_.empty());
    pair_.inject(test::QuicPair::kClient, initial_);  // so pump() still starts the handshake
  }
  struct Quiet final : TransportHandler {
    void on_stream_data(StreamId, std::span<const uint8_t>, bool) override {}
    void on_stream_reset(StreamId, uint64_t) override {}
    void on_stop_sending(StreamId, uint64_t) override {}
    void on_stream_closed(StreamId) override {}
    void on_stream_writable(StreamId) override {}
    void on_datagram(std::span<const uint8_t>) override {}
    void on_connection_closed(uint64_t, bool, std::string_view reason) override {
      closed = true;
      why = std::string(reason);
    }
    bool closed = false;
    std::string why;
  };
  Quiet client_handler_, server_handler_;
  test::QuicPair pair_;
  std::vector<uint8_t> initial_;
};

TEST(DispatcherTest, UnknownVersionGetsVersionNegotiationWithTheIdsSwapped) {
  Dispatcher d({.server = true}, kSecret);
  const std::vector<uint8_t> dcid = {1, 1, 1, 1, 1, 1, 1, 1}, scid = {2, 2, 2, 2, 2};
  const auto decision = d.classify(long_header(0x1a2a3a4a, dcid, scid), 0);
  ASSERT_EQ(decision.kind, Kind::kReply);
  const auto r = d.reply();
  ASSERT_GE(r.size(), 7u + dcid.size() + scid.size() + 8);
  EXPECT_TRUE(r[0] & 0x80) << "long header";
  EXPECT_EQ(be32(&r[1]), 0u) << "version 0 marks Version Negotiation";
  ASSERT_EQ(r[5], scid.size());
  EXPECT_TRUE(std::equal(scid.begin(), scid.end(), &r[6])) << "our DCID is the client's SCID";
  const size_t at = 6 + scid.size();
  ASSERT_EQ(r[at], dcid.size());
  EXPECT_TRUE(std::equal(dcid.begin(), dcid.end(), &r[at + 1]));
  std::vector<uint32_t> versions;
  for (size_t i = at + 1 + dcid.size(); i + 4 <= r.size(); i += 4) versions.push_back(be32(&r[i]));
  EXPECT_NE(std::find(versions.begin(), versions.end(), NGTCP2_PROTO_VER_V1), versions.end());
  EXPECT_NE(std::find(versions.begin(), versions.end(), NGTCP2_PROTO_VER_V2), versions.end());
  EXPECT_EQ(d.stats().version_negotiations, 1u);
}

TEST(DispatcherTest, AClientNeverAnswersStrays) {
  Dispatcher d({.server = false}, kSecret);
  EXPECT_EQ(d.classify(long_header(0x1a2a3a4a, {1, 2, 3, 4}, {5, 6}), 0).kind, Kind::kDrop);
  EXPECT_EQ(d.classify(short_header(std::vector<uint8_t>(kCidLength, 9), 100), 0).kind, Kind::kDrop);
  EXPECT_EQ(d.stats().version_negotiations + d.stats().stateless_resets, 0u);
}

TEST(DispatcherTest, UnknownShortHeaderGetsASmallerStatelessResetWithTheTokenForItsId) {
  Dispatcher d({.server = true}, kSecret);
  const std::vector<uint8_t> dcid(kCidLength, 0x33);
  const auto pkt = short_header(dcid, 80);
  ASSERT_EQ(d.classify(pkt, 0).kind, Kind::kReply);
  const auto r = d.reply();
  EXPECT_LT(r.size(), pkt.size()) << "a reset is smaller than what triggered it: no loops";
  EXPECT_EQ(r[0] & 0xc0, 0x40) << "looks like a short-header packet";
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, dcid.data(), dcid.size());
  std::array<uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> token{};
  d.stateless_reset_token(token.data(), cid);
  EXPECT_TRUE(std::equal(token.begin(), token.end(), r.end() - static_cast<std::ptrdiff_t>(token.size())));

  // The same secret gives the same token (processes sharing an address would share the secret).
  Dispatcher other({.server = true}, kSecret);
  std::array<uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> again{};
  other.stateless_reset_token(again.data(), cid);
  EXPECT_EQ(token, again);
  EXPECT_EQ(d.stats().stateless_resets, 1u);
}

TEST(DispatcherTest, TinyShortHeaderPacketsAndStoppedEndpointsGetNoReset) {
  Dispatcher d({.server = true}, kSecret);
  const std::vector<uint8_t> dcid(kCidLength, 0x44);
  // 1 + 5 random + 16 token is the smallest reset; it must still be smaller than the trigger.
  EXPECT_EQ(d.classify(short_header(dcid, 22), 0).kind, Kind::kDrop);
  EXPECT_EQ(d.classify(short_header(dcid, 23), 0).kind, Kind::kReply);
  EXPECT_LT(d.reply().size(), 23u);
  EXPECT_GE(d.reply().size(), 21u) << "RFC 9000 §10.3: at least 21 bytes";
  d.stop_accepting();
  EXPECT_EQ(d.classify(short_header(dcid, 80), 0).kind, Kind::kDrop);
  EXPECT_EQ(d.reply().size(), 0u);
}

TEST(DispatcherTest, GarbageIsDropped) {
  Dispatcher d({.server = true}, kSecret);
  EXPECT_EQ(d.classify(std::vector<uint8_t>{}, 0).kind, Kind::kDrop);
  EXPECT_EQ(d.classify(std::vector<uint8_t>{0xc0, 0, 0}, 0).kind, Kind::kDrop);
  // A version-1 long header that is not a valid Initial (a Handshake packet type).
  auto pkt = long_header(NGTCP2_PROTO_VER_V1, std::vector<uint8_t>(8, 1), std::vector<uint8_t>(8, 2));
  pkt[0] = 0xe0;
  EXPECT_EQ(d.classify(pkt, 0).kind, Kind::kDrop);
}

TEST_F(DispatcherInitialTest, ARealInitialIsAcceptedBelowTheLimitAndRefusedAtIt) {
  Dispatcher d({.server = true, .max_connections = 2}, kSecret);
  const auto ok = d.classify(initial_, 1);
  ASSERT_EQ(ok.kind, Kind::kAccept);
  EXPECT_EQ(ok.header.type, NGTCP2_PKT_INITIAL);
  EXPECT_EQ(ok.header.dcid.datalen, initial_[5]);
  EXPECT_EQ(d.classify(initial_, 2).kind, Kind::kRefuse);
  EXPECT_EQ(d.stats().refused, 1u);
  // Cut short, it is no longer an acceptable first datagram (RFC 9000 §14.1: at least 1200 bytes).
  EXPECT_EQ(d.classify(std::span<const uint8_t>(initial_).first(600), 0).kind, Kind::kDrop);
  d.stop_accepting();
  EXPECT_EQ(d.classify(initial_, 0).kind, Kind::kDrop);
  EXPECT_EQ(Dispatcher({.server = false}, kSecret).classify(initial_, 0).kind, Kind::kDrop);
}

TEST_F(DispatcherInitialTest, PacketsRouteToTheConnectionByIdUntilItIsForgotten) {
  pair_.pump();
  ASSERT_NE(pair_.server(), nullptr);
  Dispatcher& d = pair_.server_dispatcher();
  EXPECT_GE(d.route_count(), 2u) << "the client's original DCID and the server's own ids";
  // A retransmitted Initial now goes to the connection, not to a second accept.
  const auto again = d.classify(initial_, 1);
  ASSERT_EQ(again.kind, Kind::kRoute);
  EXPECT_EQ(again.conn, pair_.server());
  d.forget(pair_.server());
  EXPECT_EQ(d.route_count(), 0u);
  EXPECT_NE(d.classify(initial_, 1).kind, Kind::kRoute);
}

TEST_F(DispatcherInitialTest, AClientOfAVanishedServerStopsAtTheStatelessReset) {
  pair_.pump();
  ASSERT_NE(pair_.server(), nullptr);
  ASSERT_FALSE(client_handler_.closed);
  pair_.crash_server();
  // The client sends something; the server side no longer knows its id and answers with a reset
  // carrying the token the dead connection had given the client.
  const auto id = pair_.client().open_bidi_stream();
  ASSERT_TRUE(id.has_value());
  const std::array<uint8_t, 5> hello = {'h', 'e', 'l', 'l', 'o'};
  pair_.client().write(*id, hello, false);
  pair_.advance(std::chrono::milliseconds(50));  // (pacing may hold the packet a moment)
  EXPECT_EQ(pair_.server_dispatcher().stats().stateless_resets, 1u);
  EXPECT_TRUE(client_handler_.closed) << "the reset closes the client at once, not after its idle timeout";
}

TEST_F(DispatcherInitialTest, AnAddressAtItsConnectionCapGetsConnectionRefused) {
  Dispatcher d({.server = true,
                .max_connections = 100,
                .address_limits = {.max_connections_per_address = 2, .handshake_burst = 100}},
               kSecret);
  const sockaddr_in a = v4("192.0.2.7", 40000), b = v4("192.0.2.8", 40000);
  std::vector<AddressKey> held;
  for (int i = 0; i < 2; ++i) {
    const auto ok = d.classify(initial_, held.size(), sa(a), sizeof(a), kSecond);
    ASSERT_EQ(ok.kind, Kind::kAccept) << i;
    ASSERT_TRUE(ok.address.has_value());
    d.opened(*ok.address);
    held.push_back(*ok.address);
  }
  const auto refused = d.classify(initial_, 2, sa(a), sizeof(a), kSecond);
  ASSERT_EQ(refused.kind, Kind::kReply) << "an Initial CONNECTION_CLOSE, not silence";
  EXPECT_EQ(d.stats().refused_address_connections, 1u);
  const std::vector<uint8_t> close(d.reply().begin(), d.reply().end());
  EXPECT_EQ(d.classify(initial_, 2, sa(b), sizeof(b), kSecond).kind, Kind::kAccept) << "another address";

  // The real client reads the refusal and stops at once (CONNECTION_REFUSED), no timeout.
  sockaddr_in client = v4("127.0.0.1", 40000), server = v4("127.0.0.1", 4433);
  ngtcp2_path path{};
  path.local = {reinterpret_cast<sockaddr*>(&client), sizeof(client)};
  path.remote = {reinterpret_cast<sockaddr*>(&server), sizeof(server)};
  pair_.client().read_packet(path, ngtcp2_pkt_info{}, close, pair_.now());
  EXPECT_TRUE(client_handler_.closed);
  EXPECT_EQ(pair_.client().close_reason(), "too many connections from this address");

  d.closed(held.back());
  EXPECT_EQ(d.classify(initial_, 1, sa(a), sizeof(a), kSecond).kind, Kind::kAccept) << "a slot was freed";
}

TEST_F(DispatcherInitialTest, WorkersSharingLimitsCountAnAddresssConnectionsTogether) {
  // Two workers of one edge: an address's connections on worker 0 count against it on worker 1.
  const DispatcherOptions o{.server = true,
                            .max_connections = 100,
                            .address_limits = {.max_connections_per_address = 2, .handshake_burst = 100}};
  Dispatcher w0(o, kSecret), w1(o, kSecret);
  auto shared = std::make_shared<AddressLimits>();
  w0.share_address_limits(shared);
  w1.share_address_limits(shared);
  EXPECT_EQ(shared->options().max_connections_per_address, 2u) << "the dispatchers' options";
  const sockaddr_in a = v4("192.0.2.7", 40000), a2 = v4("192.0.2.7", 40001);
  for (Dispatcher* d : {&w0, &w1}) {
    const auto ok = d->classify(initial_, 0, sa(a), sizeof(a), kSecond);
    ASSERT_EQ(ok.kind, Kind::kAccept);
    d->opened(*ok.address);
  }
  EXPECT_EQ(w0.classify(initial_, 1, sa(a2), sizeof(a2), kSecond).kind, Kind::kReply)
      << "the address holds two connections on the edge, one on each worker";
  EXPECT_EQ(w1.address_limits().connections(*address_key(sa(a), sizeof(a))), 2u);
}

// A draining server (the edge after SIGTERM) refuses every new connection with CONNECTION_REFUSED, so
// the client tries another edge at once; packets of the connections it has are still routed.
TEST_F(DispatcherInitialTest, ADrainingServerRefusesNewConnections) {
  Dispatcher d({.server = true, .max_connections = 100, .address_limits = {.handshake_burst = 100}}, kSecret);
  const sockaddr_in a = v4("192.0.2.7", 40000);
  ASSERT_EQ(d.classify(initial_, 0, sa(a), sizeof(a), kSecond).kind, Kind::kAccept);
  d.refuse_new_connections();
  const auto refused = d.classify(initial_, 0, sa(a), sizeof(a), kSecond);
  ASSERT_EQ(refused.kind, Kind::kReply) << "an Initial CONNECTION_CLOSE, not silence";
  EXPECT_EQ(d.stats().refused, 1u);
  const std::vector<uint8_t> close(d.reply().begin(), d.reply().end());
  sockaddr_in client = v4("127.0.0.1", 40000), server = v4("127.0.0.1", 4433);
  ngtcp2_path path{};
  path.local = {reinterpret_cast<sockaddr*>(&client), sizeof(client)};
  path.remote = {reinterpret_cast<sockaddr*>(&server), sizeof(server)};
  pair_.client().read_packet(path, ngtcp2_pkt_info{}, close, pair_.now());
  EXPECT_TRUE(client_handler_.closed);
  EXPECT_EQ(pair_.client().close_reason(), "the server is draining");
}

TEST_F(DispatcherInitialTest, AnAddressStartingHandshakesTooFastIsRefused) {
  Dispatcher d({.server = true,
                .max_connections = 100,
                .address_limits = {.handshake_burst = 3, .handshakes_per_second = 1}},
               kSecret);
  const sockaddr_in a = v4("192.0.2.7", 40000);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(d.classify(initial_, 0, sa(a), sizeof(a), kSecond).kind, Kind::kAccept);
  EXPECT_EQ(d.classify(initial_, 0, sa(a), sizeof(a), kSecond).kind, Kind::kReply);
  EXPECT_EQ(d.stats().refused_handshake_rate, 1u);
  EXPECT_EQ(d.classify(initial_, 0, sa(a), sizeof(a), 2 * kSecond).kind, Kind::kAccept)
      << "one back per second";
  // Without the sender's address (a client endpoint, tests) no per-address limit applies.
  EXPECT_EQ(d.classify(initial_, 0).kind, Kind::kAccept);
}

TEST_F(DispatcherInitialTest, AClientCompletesItsHandshakeThroughARetry) {
  DispatcherOptions o = pair_.server_dispatcher().options();
  o.retry_above = 0;  // always
  pair_.server_dispatcher().set_options(o);
  pair_.pump();
  pair_.advance(std::chrono::milliseconds(100));  // (pacing may hold the client's last flight)
  ASSERT_NE(pair_.server(), nullptr);
  // The client checks original_dcid and retry_scid in our transport parameters against the Retry it
  // took: a mismatch would fail its handshake (TRANSPORT_PARAMETER_ERROR).
  EXPECT_TRUE(pair_.client().handshake_completed());
  EXPECT_TRUE(pair_.server()->handshake_completed());
  EXPECT_FALSE(client_handler_.closed) << client_handler_.why;
  EXPECT_EQ(pair_.server_dispatcher().stats().retries, 1u);
  EXPECT_EQ(pair_.server_dispatcher().stats().invalid_tokens, 0u);
}

TEST_F(DispatcherInitialTest, ARetryTokenIsBoundToTheAddressTheSecretAndTime) {
  Dispatcher d({.server = true, .max_connections = 100, .retry_above = 0}, kSecret);
  const sockaddr_in a = v4("127.0.0.1", 40000), other = v4("127.0.0.1", 40001);
  ASSERT_EQ(d.classify(initial_, 0, sa(a), sizeof(a), kSecond).kind, Kind::kReply);
  EXPECT_EQ(d.stats().retries, 1u);
  const std::vector<uint8_t> retry(d.reply().begin(), d.reply().end());
  EXPECT_EQ(retry[0] & 0xf0, 0xf0) << "long header, packet type Retry (QUIC v1)";
  // Above the threshold only: below it the same Initial is accepted.
  Dispatcher calm({.server = true, .max_connections = 100, .retry_above = 10}, kSecret);
  EXPECT_EQ(calm.classify(initial_, 9, sa(a), sizeof(a), kSecond).kind, Kind::kAccept);
  EXPECT_EQ(calm.classify(initial_, 10, sa(a), sizeof(a), kSecond).kind, Kind::kReply);

  // The real client takes the Retry and sends its Initial again, with the token.
  sockaddr_in client = v4("127.0.0.1", 40000), server = v4("127.0.0.1", 4433);
  ngtcp2_path path{};
  path.local = {reinterpret_cast<sockaddr*>(&client), sizeof(client)};
  path.remote = {reinterpret_cast<sockaddr*>(&server), sizeof(server)};
  ASSERT_TRUE(pair_.client().read_packet(path, ngtcp2_pkt_info{}, retry, pair_.now()));
  std::vector<uint8_t> second;
  pair_.client().write_packets(pair_.now(), [&](const ngtcp2_path&, std::span<const uint8_t> pkt) {
    if (second.empty()) second.assign(pkt.begin(), pkt.end());
  });
  ASSERT_FALSE(second.empty());
  const auto ok = d.classify(second, 0, sa(a), sizeof(a), 2 * kSecond);
  ASSERT_EQ(ok.kind, Kind::kAccept);
  ASSERT_TRUE(ok.retry_original_dcid.has_value());
  ASSERT_EQ(ok.retry_original_dcid->datalen, initial_[5]);
  EXPECT_TRUE(
      std::equal(initial_.begin() + 6, initial_.begin() + 6 + initial_[5], ok.retry_original_dcid->data))
      << "the token carries the client's first destination id";

  // Another address (the port counts), after its lifetime, or another process's secret: refused with
  // INVALID_TOKEN, never accepted.
  EXPECT_EQ(d.classify(second, 0, sa(other), sizeof(other), 2 * kSecond).kind, Kind::kReply);
  EXPECT_EQ(d.classify(second, 0, sa(a), sizeof(a), kSecond + kRetryTokenLifetime + kSecond).kind,
            Kind::kReply);
  EXPECT_EQ(d.stats().invalid_tokens, 2u);
  Dispatcher restarted({.server = true, .max_connections = 100, .retry_above = 0}, kSecret);
  EXPECT_EQ(restarted.classify(second, 0, sa(a), sizeof(a), 2 * kSecond).kind, Kind::kReply);
  EXPECT_EQ(restarted.stats().invalid_tokens, 1u);
  EXPECT_EQ(d.classify(second, 0, sa(a), sizeof(a), 3 * kSecond).kind, Kind::kAccept) << "still valid here";
}

// Issue 14 6a: a server that hands ngtcp2 the Initial's token tells it the address is validated,
// which lifts the 3x anti-amplification limit (RFC 9000 §8.1). A forged token must not.
class ForgedTokenTest : public DispatcherInitialTest {
 protected:
  void SetUp() override {}  // the client starts in the test, with its token
};

TEST_F(ForgedTokenTest, AForgedTokenDoesNotLiftTheAntiAmplificationLimit) {
  // It looks like ngtcp2's NEW_TOKEN tokens (magic 0x36), the bytes are random.
  std::vector<uint8_t> forged(1 + 8 + 16 + 16, 0x5a);
  forged[0] = 0x36;
  pair_.set_client_token(forged);
  pair_.start(&client_handler_, &server_handler_);
  std::vector<std::vector<uint8_t>> flight;
  pair_.client().write_packets(pair_.now(), [&](const ngtcp2_path&, std::span<const uint8_t> pkt) {
    flight.emplace_back(pkt.begin(), pkt.end());
  });
  ASSERT_FALSE(flight.empty());
  ASSERT_GE(flight[0].size(), 1200u);
  ASSERT_NE(std::search(flight[0].begin(), flight[0].end(), forged.begin(), forged.end()), flight[0].end())
      << "the token travels in the clear in the Initial's header";
  // Only the client's first datagram ever arrives (as from a spoofed address): the server may send
  // at most three times that, however many times its loss timer fires.
  pair_.inject(test::QuicPair::kClient, flight[0]);
  pair_.drop_next(test::QuicPair::kClient, 1'000'000);
  pair_.advance(std::chrono::seconds(8));
  ASSERT_NE(pair_.server(), nullptr) << "the Initial was accepted";
  EXPECT_GT(pair_.bytes_sent(test::QuicPair::kServer), 0u);
  EXPECT_LE(pair_.bytes_sent(test::QuicPair::kServer), 3 * flight[0].size());
}

}  // namespace
}  // namespace wtmesh::quic
