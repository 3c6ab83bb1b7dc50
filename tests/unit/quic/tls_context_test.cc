// Tests for quic/tls_context.h: loading, session setup, and real QUIC handshakes between our client
// and server contexts, run in memory by passing ngtcp2 packets from one ngtcp2_conn to the other
// (no sockets), so ALPN and certificate policy are exercised exactly as on the wire.
#include "quic/tls_context.h"

#include <gnutls/crypto.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdlib.h>

#include <array>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "quic/certs.h"

namespace wtmesh::quic {
namespace {

namespace fs = std::filesystem;

constexpr uint8_t kAlertBadCertificate = 42;
constexpr uint8_t kAlertNoApplicationProtocol = 120;

// --- a client/server ngtcp2 pair wired back to back ----------------------------------------------

struct Peer {
  ngtcp2_conn* conn = nullptr;
  gnutls_session_t tls = nullptr;
  ngtcp2_crypto_conn_ref ref{};
  bool handshake_done = false;
  int read_error = 0;  // first ngtcp2_conn_read_pkt failure

  Peer() {
    ref.get_conn = [](ngtcp2_crypto_conn_ref* r) { return static_cast<Peer*>(r->user_data)->conn; };
    ref.user_data = this;
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  ~Peer() {
    if (conn != nullptr) ngtcp2_conn_del(conn);
    if (tls != nullptr) gnutls_deinit(tls);
  }
  uint8_t alert() const { return conn ? ngtcp2_conn_get_tls_alert(conn) : 0; }
};

void rand_cb(uint8_t* dest, size_t len, const ngtcp2_rand_ctx*) { gnutls_rnd(GNUTLS_RND_RANDOM, dest, len); }

int new_cid_cb(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t cidlen, void*) {
  gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen);
  cid->datalen = cidlen;
  gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN);
  return 0;
}

int handshake_completed_cb(ngtcp2_conn*, void* user_data) {
  static_cast<Peer*>(user_data)->handshake_done = true;
  return 0;
}

ngtcp2_callbacks callbacks(bool server) {
  ngtcp2_callbacks cb{};
  if (server) {
    cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb.client_initial = ngtcp2_crypto_client_initial_cb;
    cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.rand = rand_cb;
  cb.get_new_connection_id = new_cid_cb;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb.handshake_completed = handshake_completed_cb;
  return cb;
}

ngtcp2_cid random_cid(size_t len) {
  ngtcp2_cid cid{};
  cid.datalen = len;
  gnutls_rnd(GNUTLS_RND_RANDOM, cid.data, len);
  return cid;
}

struct HandshakeResult {
  bool client_done = false, server_done = false;
  int client_error = 0, server_error = 0;
  uint8_t client_alert = 0, server_alert = 0;
  std::string client_alpn, server_alpn, client_verify_failure;
};

using SessionFactory = std::function<gnutls_session_t(ngtcp2_crypto_conn_ref*)>;

// Runs a full QUIC handshake in memory between sessions made by the two factories.
HandshakeResult run_handshake(const SessionFactory& make_server, const SessionFactory& make_client) {
  sockaddr_in caddr{}, saddr{};
  caddr.sin_family = saddr.sin_family = AF_INET;
  caddr.sin_addr.s_addr = saddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  caddr.sin_port = htons(50000);
  saddr.sin_port = htons(4433);
  ngtcp2_path cpath{{reinterpret_cast<sockaddr*>(&caddr), sizeof caddr},
                    {reinterpret_cast<sockaddr*>(&saddr), sizeof saddr}, nullptr};
  ngtcp2_path spath{{reinterpret_cast<sockaddr*>(&saddr), sizeof saddr},
                    {reinterpret_cast<sockaddr*>(&caddr), sizeof caddr}, nullptr};
  ngtcp2_tstamp ts = 1'000'000'000;

  Peer client, server;
  ngtcp2_settings settings;
  ngtcp2_settings_default(&settings);
  settings.initial_ts = ts;
  ngtcp2_transport_params params;
  ngtcp2_transport_params_default(&params);
  ngtcp2_callbacks ccb = callbacks(false), scb = callbacks(true);
  ngtcp2_cid dcid = random_cid(18), scid = random_cid(18);
  EXPECT_EQ(ngtcp2_conn_client_new(&client.conn, &dcid, &scid, &cpath, NGTCP2_PROTO_VER_V1, &ccb, &settings,
                                   &params, nullptr, &client),
            0);
  client.tls = make_client(&client.ref);
  EXPECT_NE(client.tls, nullptr);
  if (client.tls == nullptr) return {};
  ngtcp2_conn_set_tls_native_handle(client.conn, client.tls);

  auto drain = [&ts](Peer& from) {
    std::vector<std::vector<uint8_t>> out;
    for (int i = 0; i < 64; ++i) {
      std::array<uint8_t, 1452> buf{};
      ngtcp2_path_storage ps;
      ngtcp2_path_storage_zero(&ps);
      ngtcp2_pkt_info pi{};
      ngtcp2_ssize n = ngtcp2_conn_write_pkt(from.conn, &ps.path, &pi, buf.data(), buf.size(), ts);
      if (n <= 0) break;
      out.emplace_back(buf.begin(), buf.begin() + n);
    }
    return out;
  };
  auto deliver = [&ts](Peer& to, const ngtcp2_path& path, const std::vector<uint8_t>& pkt) {
    ngtcp2_pkt_info pi{};
    int rv = ngtcp2_conn_read_pkt(to.conn, &path, &pi, pkt.data(), pkt.size(), ts);
    if (rv != 0 && to.read_error == 0) to.read_error = rv;
  };

  for (int round = 0; round < 16 && !(client.handshake_done && server.handshake_done); ++round) {
    if (client.read_error || server.read_error) break;
    ts += 1'000'000;
    for (const auto& pkt : drain(client)) {
      if (server.conn == nullptr) {
        ngtcp2_pkt_hd hd{};
        EXPECT_EQ(ngtcp2_accept(&hd, pkt.data(), pkt.size()), 0);
        ngtcp2_settings ss;
        ngtcp2_settings_default(&ss);
        ss.initial_ts = ts;
        ngtcp2_transport_params sp;
        ngtcp2_transport_params_default(&sp);
        sp.original_dcid = hd.dcid;
        sp.original_dcid_present = 1;
        ngtcp2_cid sscid = random_cid(18);
        EXPECT_EQ(ngtcp2_conn_server_new(&server.conn, &hd.scid, &sscid, &spath, hd.version, &scb, &ss, &sp,
                                         nullptr, &server),
                  0);
        server.tls = make_server(&server.ref);
        EXPECT_NE(server.tls, nullptr);
        if (server.tls == nullptr) return {};
        ngtcp2_conn_set_tls_native_handle(server.conn, server.tls);
      }
      deliver(server, spath, pkt);
    }
    if (server.conn == nullptr) continue;
    ts += 1'000'000;
    for (const auto& pkt : drain(server)) deliver(client, cpath, pkt);
  }

  HandshakeResult r;
  r.client_done = client.handshake_done;
  r.server_done = server.handshake_done;
  r.client_error = client.read_error;
  r.server_error = server.read_error;
  r.client_alert = client.alert();
  r.server_alert = server.alert();
  r.client_alpn = negotiated_alpn(client.tls);
  r.server_alpn = server.tls ? negotiated_alpn(server.tls) : "";
  r.client_verify_failure = verify_failure(client.tls);
  return r;
}

HandshakeResult run_handshake(const TlsServerContext& server_ctx, const TlsClientContext& client_ctx,
                              const std::string& host) {
  return run_handshake([&](ngtcp2_crypto_conn_ref* ref) { return server_ctx.new_session(ref); },
                       [&](ngtcp2_crypto_conn_ref* ref) { return client_ctx.new_session(ref, host); });
}

// A peer that is not ours: plain GnuTLS + ngtcp2 setup with a chosen ALPN list (possibly empty),
// no hooks, and no certificate verification. Built from scratch because gnutls_alpn_set_protocols
// in GnuTLS 3.7 appends to the list on a second call instead of replacing it.
class RawPeer {
 public:
  // Server: `cert`/`key` given. Client: both empty.
  RawPeer(std::vector<std::string> alpn, const fs::path& cert = {}, const fs::path& key = {})
      : alpn_(std::move(alpn)), server_(!cert.empty()) {
    EXPECT_EQ(gnutls_certificate_allocate_credentials(&cred_), 0);
    if (server_) {
      EXPECT_EQ(gnutls_certificate_set_x509_key_file(cred_, cert.c_str(), key.c_str(), GNUTLS_X509_FMT_PEM), 0);
    }
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  ~RawPeer() { gnutls_certificate_free_credentials(cred_); }

  gnutls_session_t operator()(ngtcp2_crypto_conn_ref* ref) const {
    gnutls_session_t s = nullptr;
    EXPECT_EQ(gnutls_init(&s, server_ ? GNUTLS_SERVER : GNUTLS_CLIENT), 0);
    EXPECT_EQ(gnutls_priority_set_direct(s, kQuicTlsPriority, nullptr), 0);
    EXPECT_EQ(server_ ? ngtcp2_crypto_gnutls_configure_server_session(s)
                      : ngtcp2_crypto_gnutls_configure_client_session(s),
              0);
    gnutls_session_set_ptr(s, ref);
    EXPECT_EQ(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred_), 0);
    if (!alpn_.empty()) {
      std::vector<gnutls_datum_t> d;
      for (const auto& p : alpn_) {
        d.push_back({reinterpret_cast<unsigned char*>(const_cast<char*>(p.data())), static_cast<unsigned>(p.size())});
      }
      EXPECT_EQ(gnutls_alpn_set_protocols(s, d.data(), static_cast<unsigned>(d.size()), 0), 0);
    }
    if (!server_) gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", 9);
    return s;
  }

 private:
  std::vector<std::string> alpn_;
  bool server_;
  gnutls_certificate_credentials_t cred_ = nullptr;
};

SessionFactory raw_peer(std::vector<std::string> alpn, const fs::path& cert = {}, const fs::path& key = {}) {
  auto peer = std::make_shared<RawPeer>(std::move(alpn), cert, key);
  return [peer](ngtcp2_crypto_conn_ref* ref) { return (*peer)(ref); };
}

// --- fixture: one certificate directory for the whole suite ------------------------------------

class TlsContextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "wtmesh-tls-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = new fs::path(tmpl);
    files_ = new CertFiles(ensure_state_certs(*root_ / "state", {"edge.example.test"}));
    other_ = new CertFiles(ensure_state_certs(*root_ / "other"));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*root_, ec);
    delete files_;
    delete other_;
    delete root_;
  }
  static TlsServerContext server() { return TlsServerContext::from_files(files_->cert, files_->key); }
  static TlsClientContext client() { return TlsClientContext::with_ca_file(files_->ca_cert); }

  static fs::path* root_;
  static CertFiles* files_;
  static CertFiles* other_;  // a second, unrelated CA + leaf
};
fs::path* TlsContextTest::root_ = nullptr;
CertFiles* TlsContextTest::files_ = nullptr;
CertFiles* TlsContextTest::other_ = nullptr;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// --- loading -------------------------------------------------------------------------------------

TEST_F(TlsContextTest, LoadsGeneratedFiles) {
  EXPECT_NO_THROW(server());
  EXPECT_NO_THROW(client());
  EXPECT_NO_THROW(TlsClientContext::with_system_trust());
  EXPECT_EQ(server().alpn(), "h3");
}

TEST_F(TlsContextTest, MissingOrBadFilesThrowNamingThePath) {
  fs::path missing = *root_ / "nope" / "cert.pem";
  std::string e = error_of([&] { TlsServerContext::from_files(missing, files_->key); });
  EXPECT_NE(e.find(missing.string()), std::string::npos) << e;
  e = error_of([&] { TlsServerContext::from_files(files_->cert, missing); });
  EXPECT_NE(e.find(missing.string()), std::string::npos) << e;
  // A certificate with somebody else's key.
  e = error_of([&] { TlsServerContext::from_files(files_->cert, other_->key); });
  EXPECT_NE(e.find(files_->cert.string()), std::string::npos) << e;
  e = error_of([&] { TlsClientContext::with_ca_file(missing); });
  EXPECT_NE(e.find(missing.string()), std::string::npos) << e;
  // A key file is not a CA certificate.
  e = error_of([&] { TlsClientContext::with_ca_file(files_->key); });
  EXPECT_NE(e.find(files_->key.string()), std::string::npos) << e;
}

TEST_F(TlsContextTest, PriorityStringIsAccepted) {
  gnutls_priority_t p = nullptr;
  const char* err = nullptr;
  ASSERT_EQ(gnutls_priority_init(&p, kQuicTlsPriority, &err), 0) << (err ? err : "");
  gnutls_priority_deinit(p);
}

TEST_F(TlsContextTest, NewSessionsAreCreated) {
  TlsServerContext s = server();
  TlsClientContext c = client();
  ngtcp2_crypto_conn_ref ref{};
  for (const char* host : {"localhost", "127.0.0.1", "::1", "[::1]", "edge.example.test"}) {
    gnutls_session_t cs = c.new_session(&ref, host);
    ASSERT_NE(cs, nullptr) << host;
    EXPECT_EQ(gnutls_session_get_ptr(cs), &ref);
    EXPECT_EQ(negotiated_alpn(cs), "");
    EXPECT_EQ(verify_failure(cs), "");
    gnutls_deinit(cs);
  }
  gnutls_session_t ss = s.new_session(&ref);
  ASSERT_NE(ss, nullptr);
  EXPECT_EQ(gnutls_session_get_ptr(ss), &ref);
  gnutls_deinit(ss);
  EXPECT_EQ(s.new_session(nullptr), nullptr);
  EXPECT_EQ(c.new_session(nullptr, "localhost"), nullptr);
  EXPECT_EQ(c.new_session(&ref, ""), nullptr);
  EXPECT_EQ(c.new_session(&ref, std::string(254, 'a')), nullptr);  // cap: 253
  gnutls_session_t longest = c.new_session(&ref, std::string(253, 'a'));
  EXPECT_NE(longest, nullptr);
  gnutls_deinit(longest);
}

TEST_F(TlsContextTest, MovedFromContextsRefuseSessions) {
  TlsServerContext s = server();
  TlsServerContext s2 = std::move(s);
  ngtcp2_crypto_conn_ref ref{};
  EXPECT_EQ(s.new_session(&ref), nullptr);  // NOLINT(bugprone-use-after-move): defined as empty
  gnutls_session_t ok = s2.new_session(&ref);
  EXPECT_NE(ok, nullptr);
  gnutls_deinit(ok);
  TlsClientContext c = client();
  TlsClientContext c2 = std::move(c);
  EXPECT_EQ(c.new_session(&ref, "localhost"), nullptr);  // NOLINT(bugprone-use-after-move)
}

TEST(TlsPolicyTest, ServerAlpnDecision) {
  EXPECT_TRUE(server_alpn_acceptable("h3"));
  EXPECT_FALSE(server_alpn_acceptable(std::nullopt));  // no ALPN extension, or no overlap
  EXPECT_FALSE(server_alpn_acceptable("h2"));
  EXPECT_FALSE(server_alpn_acceptable("h3-29"));
  EXPECT_FALSE(server_alpn_acceptable(""));
}

TEST(TlsPolicyTest, PinParsing) {
  std::string hex(64, 'a');
  auto d = parse_sha256_hex(hex);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)[0], 0xaa);
  EXPECT_TRUE(parse_sha256_hex(std::string(64, 'F')));
  EXPECT_FALSE(parse_sha256_hex(std::string(63, 'a')));
  EXPECT_FALSE(parse_sha256_hex(std::string(65, 'a')));
  EXPECT_FALSE(parse_sha256_hex(std::string(63, 'a') + "g"));
  TlsClientContext c = TlsClientContext::with_system_trust();
  EXPECT_THROW(c.pin_sha256("xyz"), std::invalid_argument);
  EXPECT_THROW(TlsClientContext::with_pin_only("xyz"), std::invalid_argument);
}

// --- handshakes ----------------------------------------------------------------------------------

TEST_F(TlsContextTest, HandshakeSucceedsWithTrustedCaForEveryName) {
  TlsServerContext s = server();
  TlsClientContext c = client();
  for (const char* host : {"localhost", "127.0.0.1", "::1", "[::1]", "edge.example.test"}) {
    HandshakeResult r = run_handshake(s, c, host);
    EXPECT_TRUE(r.client_done && r.server_done) << host << " client_error=" << r.client_error
                                                << " server_error=" << r.server_error << " "
                                                << r.client_verify_failure;
    EXPECT_EQ(r.client_alpn, "h3");
    EXPECT_EQ(r.server_alpn, "h3");
  }
}

TEST_F(TlsContextTest, ForeignClientOfferingH2AndH3GetsH3) {
  TlsServerContext s = server();
  HandshakeResult r = run_handshake([&](ngtcp2_crypto_conn_ref* ref) { return s.new_session(ref); },
                                    raw_peer({"h2", "h3"}));
  EXPECT_TRUE(r.client_done && r.server_done);
  EXPECT_EQ(r.server_alpn, "h3");
  EXPECT_EQ(r.client_alpn, "h3");
}

TEST_F(TlsContextTest, ForeignClientOfferingOnlyH2IsRejected) {
  TlsServerContext s = server();
  HandshakeResult r = run_handshake([&](ngtcp2_crypto_conn_ref* ref) { return s.new_session(ref); },
                                    raw_peer({"h2"}));
  EXPECT_FALSE(r.server_done);
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.server_error, NGTCP2_ERR_CRYPTO);
  EXPECT_EQ(r.server_alert, kAlertNoApplicationProtocol);
}

TEST_F(TlsContextTest, ForeignClientOfferingNoAlpnIsRejected) {
  // GNUTLS_ALPN_MANDATORY does not cover a missing extension; the ClientHello hook does.
  TlsServerContext s = server();
  HandshakeResult r = run_handshake([&](ngtcp2_crypto_conn_ref* ref) { return s.new_session(ref); },
                                    raw_peer({}));
  EXPECT_FALSE(r.server_done);
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.server_error, NGTCP2_ERR_CRYPTO);
  EXPECT_EQ(r.server_alert, kAlertNoApplicationProtocol);
}

TEST_F(TlsContextTest, ForeignServerBaseline) {
  // The raw server with "h3" completes with our client: the two tests below differ only in ALPN.
  TlsClientContext c = client();
  HandshakeResult r = run_handshake(raw_peer({"h3"}, files_->cert, files_->key),
                                    [&](ngtcp2_crypto_conn_ref* ref) { return c.new_session(ref, "localhost"); });
  EXPECT_TRUE(r.client_done && r.server_done) << r.client_verify_failure;
}

TEST_F(TlsContextTest, ClientRejectsServerThatSelectsNoAlpn) {
  TlsClientContext c = client();
  HandshakeResult r = run_handshake(raw_peer({}, files_->cert, files_->key),
                                    [&](ngtcp2_crypto_conn_ref* ref) { return c.new_session(ref, "localhost"); });
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.client_error, NGTCP2_ERR_CRYPTO);
  EXPECT_EQ(r.client_alert, kAlertNoApplicationProtocol);
}

TEST_F(TlsContextTest, ClientRejectsServerThatSelectsAnotherAlpn) {
  TlsClientContext c = client();
  // A server whose only protocol is "h2" (not mandatory) selects nothing for our "h3" offer.
  HandshakeResult r = run_handshake(raw_peer({"h2"}, files_->cert, files_->key),
                                    [&](ngtcp2_crypto_conn_ref* ref) { return c.new_session(ref, "localhost"); });
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.client_error, NGTCP2_ERR_CRYPTO);
  EXPECT_EQ(r.client_alert, kAlertNoApplicationProtocol);
}

TEST_F(TlsContextTest, WrongHostnameFailsVerification) {
  TlsServerContext s = server();
  TlsClientContext c = client();
  for (const char* host : {"example.com", "10.9.9.9", "fd00::99"}) {
    HandshakeResult r = run_handshake(s, c, host);
    EXPECT_FALSE(r.client_done) << host;
    EXPECT_EQ(r.client_error, NGTCP2_ERR_CRYPTO) << host;
    EXPECT_NE(r.client_alert, 0) << host;
    EXPECT_NE(r.client_verify_failure, "") << host;
  }
}

TEST_F(TlsContextTest, UntrustedCaFailsVerification) {
  TlsServerContext s = server();
  HandshakeResult r = run_handshake(s, TlsClientContext::with_ca_file(other_->ca_cert), "localhost");
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.client_error, NGTCP2_ERR_CRYPTO);
  EXPECT_NE(r.client_verify_failure.find("issuer is unknown"), std::string::npos) << r.client_verify_failure;
  // The local CA is not in the system store either.
  r = run_handshake(s, TlsClientContext::with_system_trust(), "localhost");
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.client_error, NGTCP2_ERR_CRYPTO);
}

TEST_F(TlsContextTest, PinOnTopOfTrust) {
  TlsServerContext s = server();
  TlsClientContext good = client();
  good.pin_sha256(files_->sha256_hex);
  HandshakeResult r = run_handshake(s, good, "localhost");
  EXPECT_TRUE(r.client_done && r.server_done) << r.client_verify_failure;

  TlsClientContext bad = client();
  bad.pin_sha256(other_->sha256_hex);
  r = run_handshake(s, bad, "localhost");
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.client_error, NGTCP2_ERR_CRYPTO);
  EXPECT_NE(r.client_verify_failure.find("pinned"), std::string::npos) << r.client_verify_failure;
}

TEST_F(TlsContextTest, PinOnlyTrustsTheHashWithoutCaOrHostname) {
  TlsServerContext s = server();
  std::string upper = files_->sha256_hex;
  for (char& ch : upper) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
  HandshakeResult r = run_handshake(s, TlsClientContext::with_pin_only(upper), "anything.invalid");
  EXPECT_TRUE(r.client_done && r.server_done) << r.client_verify_failure;

  r = run_handshake(s, TlsClientContext::with_pin_only(other_->sha256_hex), "localhost");
  EXPECT_FALSE(r.client_done);
  EXPECT_EQ(r.client_error, NGTCP2_ERR_CRYPTO);
  EXPECT_EQ(r.client_alert, kAlertBadCertificate);
}

}  // namespace
}  // namespace wtmesh::quic

namespace wtmesh::quic {
namespace {

// Per-name certificates by SNI (what the edge does for NAME.DOMAIN on QUIC): the selector's
// credentials for the names it knows, the default certificate for the others.
TEST_F(TlsContextTest, SniSelectorPicksPerNameCredentials) {
  auto named = std::make_shared<TlsCredentials>();
  ASSERT_EQ(gnutls_certificate_set_x509_key_file2(named->get(), other_->cert.c_str(), other_->key.c_str(),
                                                  GNUTLS_X509_FMT_PEM, nullptr, 0),
            0);
  TlsServerContext s = server();
  std::vector<std::string> asked;
  s.set_sni_selector([&](std::string_view name) -> std::shared_ptr<const TlsCredentials> {
    asked.emplace_back(name);
    return name == "localhost" ? named : nullptr;
  });
  // "localhost" gets the other CA's leaf: only a client trusting that CA accepts it.
  HandshakeResult r = run_handshake(s, TlsClientContext::with_ca_file(other_->ca_cert), "localhost");
  EXPECT_TRUE(r.client_done && r.server_done) << r.client_error << " " << r.client_verify_failure;
  r = run_handshake(s, client(), "localhost");
  EXPECT_FALSE(r.client_done) << "the default certificate was not used for a name the selector knows";
  // A name the selector does not know keeps the default certificate; no SNI (an IP) is not asked.
  r = run_handshake(s, client(), "edge.example.test");
  EXPECT_TRUE(r.client_done && r.server_done) << r.client_verify_failure;
  asked.clear();
  r = run_handshake(s, client(), "127.0.0.1");
  EXPECT_TRUE(r.client_done && r.server_done) << r.client_verify_failure;
  EXPECT_TRUE(asked.empty());
  // A selector that throws keeps the default certificate.
  s.set_sni_selector(
      [](std::string_view) -> std::shared_ptr<const TlsCredentials> { throw std::runtime_error("x"); });
  r = run_handshake(s, client(), "edge.example.test");
  EXPECT_TRUE(r.client_done && r.server_done);
}

}  // namespace
}  // namespace wtmesh::quic
