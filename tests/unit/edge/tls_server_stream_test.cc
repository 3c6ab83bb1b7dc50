#include "edge/tls_server_stream.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "edge/name_certs.h"
#include "tls_test_client.h"

namespace wtmesh::edge {
namespace {

using test::MemoryTlsClient;

class TlsServerStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = quic::ensure_state_certs(dir_.path(), {"localhost", "*.localhost"});
    config_ = TlsServerConfig::from_files(certs_.cert, certs_.key);
  }
  // Moves bytes both ways until nothing moves.
  void pump(MemoryTlsClient& c, TlsServerStream& s) {
    for (int i = 0; i < 1000; ++i) {
      if (!c.handshake_done()) {
        const int rv = c.handshake();
        if (rv != 0 && rv != GNUTLS_E_AGAIN) return;
      }
      bool moved = false;
      if (!c.out.empty()) {
        const size_t n = s.feed(c.out);
        c.out.erase(c.out.begin(), c.out.begin() + static_cast<ptrdiff_t>(n));
        moved |= n > 0;
      }
      if (auto ct = s.ciphertext(); !ct.empty()) {
        c.in.insert(c.in.end(), ct.begin(), ct.end());
        s.consume_ciphertext(ct.size());
        moved = true;
      }
      if (!moved) return;
    }
  }
  std::string take_plain(TlsServerStream& s) {
    auto p = s.plaintext();
    std::string out(p.begin(), p.end());
    s.consume_plaintext(p.size());
    return out;
  }

  test::TempDir dir_;
  quic::CertFiles certs_;
  std::shared_ptr<const TlsServerConfig> config_;
};

TEST_F(TlsServerStreamTest, Tls13HandshakeAlpnSniAndDataBothWays) {
  // The shared leaf's "*.localhost" does not verify app.localhost (see name_certs.h): check "localhost".
  MemoryTlsClient c(certs_.ca_cert, "localhost", nullptr, {"h2", "http/1.1"}, "app.localhost");
  TlsServerStream s(config_);
  pump(c, s);
  ASSERT_TRUE(c.handshake_done()) << c.handshake() << " " << s.error();
  ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
  EXPECT_EQ(s.alpn(), "http/1.1");
  EXPECT_EQ(c.alpn(), "http/1.1");
  EXPECT_EQ(s.server_name(), "app.localhost");
  EXPECT_EQ(s.version(), "TLS1.3");

  ASSERT_GT(c.send("GET / HTTP/1.1\r\n\r\n"), 0);
  pump(c, s);
  EXPECT_EQ(take_plain(s), "GET / HTTP/1.1\r\n\r\n");
  const std::string resp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
  EXPECT_EQ(s.write({reinterpret_cast<const uint8_t*>(resp.data()), resp.size()}), resp.size());
  pump(c, s);
  std::string got;
  c.recv_all(got);
  EXPECT_EQ(got, resp);
}

TEST_F(TlsServerStreamTest, Tls12WithoutAlpnOrSni) {
  MemoryTlsClient c(certs_.ca_cert, "127.0.0.1", "NORMAL:-VERS-ALL:+VERS-TLS1.2", {});
  TlsServerStream s(config_);
  pump(c, s);
  ASSERT_TRUE(c.handshake_done());
  ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
  EXPECT_EQ(s.version(), "TLS1.2");
  EXPECT_EQ(s.alpn(), "");
  EXPECT_EQ(s.server_name(), "");
  c.send("x");
  pump(c, s);
  EXPECT_EQ(take_plain(s), "x");
}

TEST_F(TlsServerStreamTest, AnX25519KeyShareIsTakenWithoutAHelloRetry) {
  // Like curl, Python and Chromium: X25519 first, one key share. A HelloRetryRequest would make the
  // client send a second ClientHello instead of finishing after the server's first flight.
  MemoryTlsClient c(certs_.ca_cert, "localhost",
                    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1", {"http/1.1"},
                    "", GNUTLS_KEY_SHARE_TOP);
  TlsServerStream s(config_);
  ASSERT_EQ(c.handshake(), GNUTLS_E_AGAIN);
  ASSERT_EQ(s.feed(c.out), c.out.size());
  c.out.clear();
  auto flight = s.ciphertext();
  c.in.assign(flight.begin(), flight.end());
  s.consume_ciphertext(flight.size());
  EXPECT_EQ(c.handshake(), 0) << "the server asked for another key share";
}

TEST_F(TlsServerStreamTest, TicketFollowsTheClientFinishedAndResumes) {
  std::vector<uint8_t> ticket;
  {
    MemoryTlsClient c(certs_.ca_cert, "localhost", nullptr, {"http/1.1"}, "app.localhost");
    TlsServerStream s(config_);
    pump(c, s);
    ASSERT_TRUE(c.handshake_done());
    ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
    EXPECT_FALSE(s.resumed());
    // The server answered the client's Finished with a NewSessionTicket flight, which pump() handed
    // to the client; reading makes the client process it.
    std::string none;
    c.recv_all(none);
    EXPECT_EQ(none, "");
    ticket = c.session_data();
  }
  ASSERT_FALSE(ticket.empty());
  MemoryTlsClient c2(certs_.ca_cert, "localhost", nullptr, {"http/1.1"}, "app.localhost");
  c2.resume_from(ticket);
  TlsServerStream s2(config_);
  pump(c2, s2);
  ASSERT_TRUE(c2.handshake_done());
  ASSERT_EQ(s2.state(), TlsServerStream::State::kOpen) << s2.error();
  EXPECT_TRUE(s2.resumed());
  EXPECT_TRUE(c2.resumed());
  ASSERT_GT(c2.send("GET / HTTP/1.1\r\n\r\n"), 0);
  pump(c2, s2);
  EXPECT_EQ(take_plain(s2), "GET / HTTP/1.1\r\n\r\n");
}

TEST_F(TlsServerStreamTest, ATicketFromOneWorkersListenerResumesOnAnotherWithTheSharedKey) {
  const std::vector<uint8_t> key = TlsServerConfig::new_ticket_key();
  auto first = TlsServerConfig::from_files(certs_.cert, certs_.key, {}, false, key);
  auto second = TlsServerConfig::from_files(certs_.cert, certs_.key, {}, false, key);
  auto other = TlsServerConfig::from_files(certs_.cert, certs_.key);  // its own random key
  std::vector<uint8_t> ticket;
  {
    MemoryTlsClient c(certs_.ca_cert, "localhost", nullptr, {"http/1.1"}, "app.localhost");
    TlsServerStream s(first);
    pump(c, s);
    ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
    std::string none;
    c.recv_all(none);
    ticket = c.session_data();
  }
  ASSERT_FALSE(ticket.empty());
  for (const auto& [config, resumes] : {std::pair{second, true}, std::pair{other, false}}) {
    MemoryTlsClient c(certs_.ca_cert, "localhost", nullptr, {"http/1.1"}, "app.localhost");
    c.resume_from(ticket);
    TlsServerStream s(config);
    pump(c, s);
    ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
    EXPECT_EQ(s.resumed(), resumes) << (resumes ? "the same key: resumed" : "another key: a full handshake");
  }
}

TEST_F(TlsServerStreamTest, ServerSendsAFlightRightAfterTheClientFinished) {
  // TLS 1.3 clients are done once they send their Finished and then send the request. If the server
  // answers the Finished with nothing, its TCP delays the ACK (~40 ms) and a client without
  // TCP_NODELAY holds the request back until then (Nagle). The session ticket is that answer.
  MemoryTlsClient c(certs_.ca_cert, "localhost", nullptr, {"http/1.1"});
  TlsServerStream s(config_);
  size_t answer = 0;  // ciphertext the server produced for the client's last flight
  for (int i = 0; i < 10 && !c.handshake_done(); ++i) {
    c.handshake();
    ASSERT_EQ(s.feed(c.out), c.out.size());
    c.out.clear();
    auto ct = s.ciphertext();
    answer = ct.size();
    c.in.insert(c.in.end(), ct.begin(), ct.end());
    s.consume_ciphertext(ct.size());
  }
  ASSERT_TRUE(c.handshake_done());
  ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
  EXPECT_GT(answer, 0u);
}

TEST_F(TlsServerStreamTest, OldProtocolVersionsAreRefused) {
  MemoryTlsClient c(certs_.ca_cert, "localhost", "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0", {});
  TlsServerStream s(config_);
  pump(c, s);
  EXPECT_FALSE(c.handshake_done());
  EXPECT_EQ(s.state(), TlsServerStream::State::kFailed);
  EXPECT_NE(s.error().find("handshake"), std::string::npos) << s.error();
}

TEST_F(TlsServerStreamTest, GarbageFailsTheHandshake) {
  TlsServerStream s(config_);
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  s.feed({reinterpret_cast<const uint8_t*>(junk.data()), junk.size()});
  EXPECT_EQ(s.state(), TlsServerStream::State::kFailed);
  EXPECT_EQ(s.space_in(), 0u);
  EXPECT_EQ(s.write({reinterpret_cast<const uint8_t*>(junk.data()), 1}), 0u);
}

TEST_F(TlsServerStreamTest, EofDuringHandshakeFails) {
  MemoryTlsClient c(certs_.ca_cert, "localhost");
  TlsServerStream s(config_);
  c.handshake();
  s.feed(std::span<const uint8_t>(c.out).first(10));
  s.feed_eof();
  EXPECT_EQ(s.state(), TlsServerStream::State::kFailed);
  EXPECT_TRUE(s.peer_finished());
}

TEST_F(TlsServerStreamTest, WriteBeforeHandshakeTakesNothing) {
  TlsServerStream s(config_);
  const uint8_t b = 1;
  EXPECT_EQ(s.write({&b, 1}), 0u);
  EXPECT_EQ(s.write_capacity(), 0u);
}

TEST_F(TlsServerStreamTest, CloseNotifyAndEofEndTheInput) {
  MemoryTlsClient c(certs_.ca_cert, "localhost");
  TlsServerStream s(config_);
  pump(c, s);
  c.send("tail");
  c.bye();
  pump(c, s);
  EXPECT_FALSE(s.peer_finished()) << "plaintext is still unread";
  EXPECT_EQ(take_plain(s), "tail");
  EXPECT_TRUE(s.peer_finished());
  EXPECT_EQ(s.state(), TlsServerStream::State::kClosed);

  // A TCP EOF without close_notify ends the input too (most HTTP clients just close).
  MemoryTlsClient c2(certs_.ca_cert, "localhost");
  TlsServerStream s2(config_);
  pump(c2, s2);
  s2.feed_eof();
  EXPECT_TRUE(s2.peer_finished());
  EXPECT_NE(s2.state(), TlsServerStream::State::kFailed) << s2.error();
}

TEST_F(TlsServerStreamTest, PeerCloseNotifyLeavesOurDirectionOpen) {
  MemoryTlsClient c(certs_.ca_cert, "localhost");
  TlsServerStream s(config_);
  pump(c, s);
  c.bye();
  pump(c, s);
  EXPECT_TRUE(s.peer_finished());
  EXPECT_GT(s.write_capacity(), 0u) << "a half-closed connection still carries the server's bytes";
  const std::string tail = "after the client's close_notify";
  EXPECT_EQ(s.write({reinterpret_cast<const uint8_t*>(tail.data()), tail.size()}), tail.size());
  s.close();
  EXPECT_EQ(s.write_capacity(), 0u);
  pump(c, s);
  std::string got;
  c.recv_all(got);
  EXPECT_EQ(got, tail);
}

TEST_F(TlsServerStreamTest, ServerCloseSendsCloseNotify) {
  MemoryTlsClient c(certs_.ca_cert, "localhost");
  TlsServerStream s(config_);
  pump(c, s);
  s.close();
  EXPECT_EQ(s.state(), TlsServerStream::State::kClosed);
  pump(c, s);
  std::string got;
  c.recv_all(got);
  EXPECT_TRUE(c.closed);
  const uint8_t b = 1;
  EXPECT_EQ(s.write({&b, 1}), 0u);
}

// The three caps: ciphertext in, plaintext in, ciphertext out. A 1 MiB transfer each way never
// holds more than the caps (plus one record) and arrives intact.
TEST_F(TlsServerStreamTest, BuffersStayWithinTheirCaps) {
  TlsServerStream::Limits lim;
  lim.max_ciphertext_in = 8 * 1024;
  lim.max_plaintext_in = 4 * 1024;
  lim.max_ciphertext_out = 8 * 1024;
  MemoryTlsClient c(certs_.ca_cert, "localhost");
  TlsServerStream s(config_, lim);
  pump(c, s);
  ASSERT_EQ(s.state(), TlsServerStream::State::kOpen);

  std::vector<uint8_t> data(1 << 20);
  std::mt19937 rng(1);
  for (auto& b : data) b = static_cast<uint8_t>(rng());

  // Client → server: the client encrypts everything at once; the server takes in bounded steps.
  for (size_t off = 0; off < data.size();) {
    off += static_cast<size_t>(
        c.send(std::span<const uint8_t>(data).subspan(off, std::min<size_t>(16384, data.size() - off))));
  }
  std::vector<uint8_t> got;
  size_t max_plain = 0, max_in = 0;
  while (got.size() < data.size()) {
    const size_t n = s.feed(c.out);
    ASSERT_LE(n, lim.max_ciphertext_in);
    c.out.erase(c.out.begin(), c.out.begin() + static_cast<ptrdiff_t>(n));
    max_in = std::max(max_in, s.buffered_bytes() - s.plaintext().size());
    auto p = s.plaintext();
    max_plain = std::max(max_plain, p.size());
    ASSERT_TRUE(n > 0 || !p.empty()) << "stalled at " << got.size();
    // Take only part each time, so the plaintext cap is what stops decryption.
    const size_t k = std::min<size_t>(p.size(), 3000);
    got.insert(got.end(), p.begin(), p.begin() + static_cast<ptrdiff_t>(k));
    s.consume_plaintext(k);
  }
  EXPECT_TRUE(got == data);
  EXPECT_LE(max_plain, lim.max_plaintext_in);
  EXPECT_EQ(max_plain, lim.max_plaintext_in) << "the plaintext cap was never reached";
  EXPECT_LE(max_in, lim.max_ciphertext_in);
  // Feeding more than fits takes only what fits.
  std::vector<uint8_t> lots(3 * lim.max_ciphertext_in, 0);
  EXPECT_LE(s.space_in(), lim.max_ciphertext_in);

  // Server → client: write() stops at the ciphertext cap until the socket side drains it.
  size_t off = 0, max_out = 0;
  std::string received;
  while (received.size() < data.size()) {
    off += s.write(std::span<const uint8_t>(data).subspan(off));
    max_out = std::max(max_out, s.ciphertext().size());
    if (off < data.size()) {
      EXPECT_EQ(s.write_capacity(), 0u);
    }
    auto ct = s.ciphertext();
    c.in.insert(c.in.end(), ct.begin(), ct.end());
    s.consume_ciphertext(ct.size());
    c.recv_all(received);
    ASSERT_EQ(c.error, 0);
  }
  EXPECT_TRUE(std::equal(data.begin(), data.end(), reinterpret_cast<const uint8_t*>(received.data())));
  EXPECT_LE(max_out, lim.max_ciphertext_out + TlsServerStream::kMaxRecordPlaintext + 256);
  EXPECT_GE(max_out, lim.max_ciphertext_out);
  (void)lots;
}

TEST_F(TlsServerStreamTest, MissingCertificateFileIsASentence) {
  try {
    TlsServerConfig::from_files(dir_.path() / "nope.pem", certs_.key);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.pem"), std::string::npos);
  }
}

TEST_F(TlsServerStreamTest, RenewedConfigServesItsCertificate) {
  auto old_sha = certs_.sha256_hex;
  std::filesystem::remove(certs_.cert);
  auto fresh = quic::ensure_state_certs(dir_.path(), {"localhost", "*.localhost"});
  ASSERT_NE(fresh.sha256_hex, old_sha);
  auto cfg2 = TlsServerConfig::from_files(fresh.cert, fresh.key);
  MemoryTlsClient c1(certs_.ca_cert, "localhost"), c2(certs_.ca_cert, "localhost");
  TlsServerStream s1(config_), s2(cfg2);
  pump(c1, s1);
  pump(c2, s2);
  EXPECT_EQ(c1.peer_sha256(), old_sha);
  EXPECT_EQ(c2.peer_sha256(), fresh.sha256_hex);
}

TEST_F(TlsServerStreamTest, SniSelectorServesANameCertificateThatVerifies) {
  NameCertIssuer issuer(dir_.path());
  std::vector<std::string> asked;
  auto cfg = TlsServerConfig::from_files(certs_.cert, certs_.key, [&](std::string_view sni) {
    asked.emplace_back(sni);
    return sni == "app.localhost" ? issuer.credentials_for(sni) : nullptr;
  });
  {
    MemoryTlsClient c(certs_.ca_cert, "app.localhost", nullptr, {"http/1.1"}, "app.localhost");
    TlsServerStream s(cfg);
    pump(c, s);
    ASSERT_TRUE(c.handshake_done()) << s.error();
    EXPECT_NE(c.peer_sha256(), certs_.sha256_hex);
  }
  {  // TLS 1.2 too.
    MemoryTlsClient c(certs_.ca_cert, "app.localhost", "NORMAL:-VERS-ALL:+VERS-TLS1.2", {}, "app.localhost");
    TlsServerStream s(cfg);
    pump(c, s);
    ASSERT_TRUE(c.handshake_done()) << s.error();
  }
  {  // Names the selector declines get the shared leaf.
    MemoryTlsClient c(certs_.ca_cert, "localhost", nullptr, {}, "other.localhost");
    TlsServerStream s(cfg);
    pump(c, s);
    ASSERT_TRUE(c.handshake_done()) << s.error();
    EXPECT_EQ(c.peer_sha256(), certs_.sha256_hex);
  }
  {  // No SNI: the selector is not asked.
    MemoryTlsClient c(certs_.ca_cert, "127.0.0.1", nullptr, {});
    TlsServerStream s(cfg);
    pump(c, s);
    ASSERT_TRUE(c.handshake_done()) << s.error();
  }
  EXPECT_EQ(asked, (std::vector<std::string>{"app.localhost", "app.localhost", "other.localhost"}));
  EXPECT_EQ(issuer.issued(), 1u) << "the second connection reuses the cached certificate";
}

TEST_F(TlsServerStreamTest, NameCertIssuerCacheIsBoundedAndRenews) {
  NameCertIssuer issuer(dir_.path(), 2);
  const auto now = std::chrono::system_clock::now();
  auto a = issuer.credentials_for("a.localhost", now);
  ASSERT_TRUE(a);
  EXPECT_EQ(issuer.credentials_for("A.LOCALHOST", now), a);
  issuer.credentials_for("b.localhost", now);
  issuer.credentials_for("a.localhost", now);  // a is now the most recently used
  issuer.credentials_for("c.localhost", now);  // evicts b
  EXPECT_EQ(issuer.cached(), 2u);
  EXPECT_EQ(issuer.issued(), 3u);
  EXPECT_EQ(issuer.credentials_for("a.localhost", now), a);
  EXPECT_EQ(issuer.issued(), 3u);
  issuer.credentials_for("b.localhost", now);
  EXPECT_EQ(issuer.issued(), 4u) << "b was evicted and is issued again";
  // Close to expiry: a new certificate.
  auto later = issuer.credentials_for("a.localhost", now + kNameCertLifetime - kNameCertRenewBefore);
  EXPECT_NE(later, a);
  EXPECT_EQ(issuer.cached(), 2u);
  // Not DNS names.
  EXPECT_EQ(issuer.credentials_for("127.0.0.1", now), nullptr);
  EXPECT_EQ(issuer.credentials_for("*.localhost", now), nullptr);
  EXPECT_EQ(issuer.credentials_for("", now), nullptr);
}

TEST_F(TlsServerStreamTest, NameCertIssuingIsRateLimitedAndCachedNamesAreNot) {
  // Random SNI names cost one signature each: past the burst, at most per_second of them.
  NameCertIssuer issuer(dir_.path(), 16, {.per_second = 2, .burst = 3});
  const auto now = std::chrono::system_clock::now();
  auto a = issuer.credentials_for("a.localhost", now);
  ASSERT_TRUE(a);
  EXPECT_TRUE(issuer.credentials_for("b.localhost", now));
  EXPECT_TRUE(issuer.credentials_for("c.localhost", now));
  EXPECT_EQ(issuer.credentials_for("d.localhost", now), nullptr) << "over the burst: the shared leaf";
  EXPECT_EQ(issuer.throttled(), 1u);
  EXPECT_EQ(issuer.credentials_for("a.localhost", now), a) << "a cached name needs no token";
  // Half a second later one token is back (2 per second), not two.
  const auto later = now + std::chrono::milliseconds(500);
  EXPECT_TRUE(issuer.credentials_for("d.localhost", later));
  EXPECT_EQ(issuer.credentials_for("e.localhost", later), nullptr);
  EXPECT_EQ(issuer.issued(), 4u);
  EXPECT_EQ(issuer.throttled(), 2u);
  // Renewal over the rate keeps the old leaf while it is still valid.
  const auto renew = now + kNameCertLifetime - kNameCertRenewBefore;
  for (const char* n : {"b.localhost", "c.localhost", "e.localhost"}) ASSERT_TRUE(issuer.credentials_for(n, renew));
  EXPECT_EQ(issuer.credentials_for("a.localhost", renew), a) << "no token left: the old leaf, still valid";
}

TEST_F(TlsServerStreamTest, WorkersShareOneLeafPerNameUntilTheEdgeLeafIsRenewed) {
  // The workers of one edge ask from their own threads at once: every one gets the same leaf.
  SharedNameCertIssuer shared;
  std::vector<std::shared_ptr<const TlsCredentials>> got(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      got[i] = shared.issuer_for(dir_.path(), certs_.sha256_hex)->credentials_for("app.localhost");
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(got[0]);
  for (const auto& c : got) EXPECT_EQ(c, got[0]) << "one leaf, whichever worker asked";
  const auto issuer = shared.issuer_for(dir_.path(), certs_.sha256_hex);
  EXPECT_EQ(issuer->issued(), 1u);
  EXPECT_EQ(shared.issuer_for(dir_.path(), "another leaf"), shared.issuer_for(dir_.path(), "another leaf"));
  EXPECT_NE(shared.issuer_for(dir_.path(), "another leaf"), issuer) << "a renewed edge leaf: a new issuer";
}

TEST_F(TlsServerStreamTest, NameCertIssuerNeedsTheCa) {
  test::TempDir empty;
  EXPECT_THROW(NameCertIssuer{empty.path()}, std::runtime_error);
}

TEST_F(TlsServerStreamTest, PrefersAes128GcmAndFallsBackToWhatTheClientOffers) {
  {
    // GnuTLS's own defaults list AES-256-GCM first (OpenSSL's too): the server's order wins.
    MemoryTlsClient c(certs_.ca_cert, "localhost");
    TlsServerStream s(config_);
    pump(c, s);
    ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
    EXPECT_EQ(s.cipher(), "AES-128-GCM");
  }
  {
    MemoryTlsClient c(certs_.ca_cert, "localhost", "NORMAL:-CIPHER-ALL:+CHACHA20-POLY1305");
    TlsServerStream s(config_);
    pump(c, s);
    ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
    EXPECT_EQ(s.cipher(), "CHACHA20-POLY1305");
  }
  {
    // CBC suites are not offered: a TLS 1.2 client with nothing else is refused.
    MemoryTlsClient c(certs_.ca_cert, "localhost", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC");
    TlsServerStream s(config_);
    pump(c, s);
    EXPECT_EQ(s.state(), TlsServerStream::State::kFailed);
    EXPECT_TRUE(s.cipher().empty());
  }
}

TEST_F(TlsServerStreamTest, TakeCiphertextHandsOverEverythingPending) {
  MemoryTlsClient c(certs_.ca_cert, "localhost");
  TlsServerStream s(config_);
  pump(c, s);
  ASSERT_EQ(s.state(), TlsServerStream::State::kOpen) << s.error();
  const std::string msg(40000, 'm');
  auto span = [](const std::string& m) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(m.data()), m.size());
  };

  // Nothing consumed yet: the buffers swap; a stale writer buffer is replaced, not appended to.
  ASSERT_EQ(s.write(span(msg)), msg.size());
  const size_t pending = s.ciphertext().size();
  std::vector<uint8_t> wbuf(7, 0xee);
  s.take_ciphertext(wbuf);
  EXPECT_EQ(wbuf.size(), pending);
  EXPECT_TRUE(s.ciphertext().empty());
  EXPECT_EQ(s.buffered_bytes(), 0u);

  // Part consumed first: only the rest is handed over.
  ASSERT_EQ(s.write(span(msg)), msg.size());
  auto ct = s.ciphertext();
  std::vector<uint8_t> first(ct.begin(), ct.begin() + 100);
  s.consume_ciphertext(100);
  std::vector<uint8_t> rest;
  s.take_ciphertext(rest);
  EXPECT_TRUE(s.ciphertext().empty());

  // The client decrypts both messages from the bytes handed over, in order.
  c.in.insert(c.in.end(), wbuf.begin(), wbuf.end());
  c.in.insert(c.in.end(), first.begin(), first.end());
  c.in.insert(c.in.end(), rest.begin(), rest.end());
  std::string got;
  c.recv_all(got);
  EXPECT_EQ(c.error, 0);
  EXPECT_EQ(got, msg + msg);
}

}  // namespace
}  // namespace wtmesh::edge
