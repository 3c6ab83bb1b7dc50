// Tests for the certificate state directory (quic/certs.h): creation, reuse, renewal, repair, errors.
#include "quic/certs.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace wtmesh::quic {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

struct CrtDeleter {
  void operator()(gnutls_x509_crt_t c) const { gnutls_x509_crt_deinit(c); }
};
using Crt = std::unique_ptr<std::remove_pointer_t<gnutls_x509_crt_t>, CrtDeleter>;

Crt load_crt(const fs::path& p) {
  std::string pem = slurp(p);
  gnutls_x509_crt_t raw = nullptr;
  EXPECT_EQ(gnutls_x509_crt_init(&raw), 0);
  Crt crt(raw);
  gnutls_datum_t d{reinterpret_cast<unsigned char*>(pem.data()), static_cast<unsigned>(pem.size())};
  if (gnutls_x509_crt_import(crt.get(), &d, GNUTLS_X509_FMT_PEM) < 0) return nullptr;
  return crt;
}

std::string der_hash_hex(gnutls_x509_crt_t crt) {
  gnutls_datum_t der{};
  EXPECT_EQ(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
  std::array<uint8_t, 32> d{};
  EXPECT_EQ(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, d.data()), 0);
  gnutls_free(der.data);
  std::string hex;
  for (uint8_t b : d) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[b >> 4];
    hex += kDigits[b & 0xf];
  }
  return hex;
}

// `any_time`: check the signature chain only (for leaves issued at a simulated future `now`).
bool signed_by(gnutls_x509_crt_t leaf, gnutls_x509_crt_t ca, bool any_time = false) {
  gnutls_x509_trust_list_t list = nullptr;
  EXPECT_EQ(gnutls_x509_trust_list_init(&list, 0), 0);
  gnutls_x509_crt_t cas[1] = {ca};
  EXPECT_EQ(gnutls_x509_trust_list_add_cas(list, cas, 1, 0), 1);
  unsigned status = 1;
  gnutls_x509_crt_t chain[1] = {leaf};
  unsigned flags = any_time ? GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS : 0;
  int rv = gnutls_x509_trust_list_verify_crt(list, chain, 1, flags, &status, nullptr);
  gnutls_x509_trust_list_deinit(list, 0);  // 0: leave the CA certificate to the caller
  return rv == 0 && status == 0;
}

bool has_dns_san(gnutls_x509_crt_t crt, const std::string& name) {
  for (unsigned i = 0;; ++i) {
    char buf[256];
    size_t size = sizeof buf;
    int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, nullptr);
    if (type < 0) return false;
    if (type == GNUTLS_SAN_DNSNAME && std::string(buf, size) == name) return true;
  }
}

bool has_ip_san(gnutls_x509_crt_t crt, const char* ip) {
  unsigned char raw[16];
  int family = std::string(ip).find(':') == std::string::npos ? AF_INET : AF_INET6;
  EXPECT_EQ(inet_pton(family, ip, raw), 1);
  return gnutls_x509_crt_check_ip(crt, raw, family == AF_INET ? 4 : 16, 0) != 0;
}

class CertsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "wtmesh-certs-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ / "state";
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(root_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(root_, ec);
  }
  fs::path root_, dir_;
};

TEST_F(CertsTest, FreshDirectoryGetsCaLeafAndHash) {
  auto now = Clock::now();
  CertFiles f = ensure_state_certs(dir_, {}, 96h, now);
  EXPECT_EQ(f.ca_cert, dir_ / "ca.pem");
  EXPECT_EQ(f.cert, dir_ / "cert.pem");
  EXPECT_EQ(f.key, dir_ / "key.pem");
  for (const char* name : {"ca.pem", "ca.key", "cert.pem", "key.pem", "cert.sha256"}) {
    EXPECT_TRUE(fs::is_regular_file(dir_ / name)) << name;
  }
  EXPECT_EQ(mode_of(dir_), 0700u);
  EXPECT_EQ(mode_of(dir_ / "key.pem"), 0600u);
  EXPECT_EQ(mode_of(dir_ / "ca.key"), 0600u);
  EXPECT_NE(slurp(dir_ / "key.pem").find("-----BEGIN PRIVATE KEY-----"), std::string::npos);

  Crt leaf = load_crt(f.cert), ca = load_crt(f.ca_cert);
  ASSERT_TRUE(leaf && ca);
  // ECDSA P-256: Chromium's serverCertificateHashes rejects RSA.
  EXPECT_EQ(gnutls_x509_crt_get_pk_algorithm(leaf.get(), nullptr), GNUTLS_PK_ECDSA);
  gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
  gnutls_datum_t x{}, y{};
  ASSERT_EQ(gnutls_x509_crt_get_pk_ecc_raw(leaf.get(), &curve, &x, &y), 0);
  gnutls_free(x.data);
  gnutls_free(y.data);
  EXPECT_EQ(curve, GNUTLS_ECC_CURVE_SECP256R1);

  time_t nb = gnutls_x509_crt_get_activation_time(leaf.get());
  time_t na = gnutls_x509_crt_get_expiration_time(leaf.get());
  EXPECT_LE(na - nb, 14 * 24 * 3600);
  EXPECT_LT(nb, Clock::to_time_t(now));  // backdated a little
  EXPECT_GT(na, Clock::to_time_t(now + 12 * 24h));
  EXPECT_EQ(Clock::to_time_t(f.not_after), na);

  EXPECT_TRUE(signed_by(leaf.get(), ca.get()));
  unsigned is_ca = 0, critical = 0;
  int pathlen = 0;
  ASSERT_GE(gnutls_x509_crt_get_basic_constraints(ca.get(), &critical, &is_ca, &pathlen), 0);
  EXPECT_TRUE(is_ca);
  unsigned usage = 0;
  ASSERT_GE(gnutls_x509_crt_get_key_usage(ca.get(), &usage, &critical), 0);
  EXPECT_TRUE(usage & GNUTLS_KEY_KEY_CERT_SIGN);
  EXPECT_GT(gnutls_x509_crt_get_expiration_time(ca.get()), Clock::to_time_t(now + 9 * 365 * 24h));

  EXPECT_TRUE(has_dns_san(leaf.get(), "localhost"));
  EXPECT_TRUE(has_dns_san(leaf.get(), "*.localhost"));
  EXPECT_TRUE(has_ip_san(leaf.get(), "127.0.0.1"));
  EXPECT_TRUE(has_ip_san(leaf.get(), "::1"));
  EXPECT_TRUE(gnutls_x509_crt_check_key_purpose(leaf.get(), GNUTLS_KP_TLS_WWW_SERVER, 0));

  EXPECT_EQ(f.sha256_hex, der_hash_hex(leaf.get()));
  EXPECT_EQ(f.sha256_hex.size(), 64u);
  EXPECT_EQ(slurp(dir_ / "cert.sha256"), f.sha256_hex + "\n");
  EXPECT_EQ(sha256_hex_of_cert_file(f.cert), f.sha256_hex);
}

TEST_F(CertsTest, SecondCallKeepsLeafAndCa) {
  auto now = Clock::now();
  CertFiles a = ensure_state_certs(dir_, {}, 96h, now);
  std::string ca = slurp(a.ca_cert), key = slurp(a.key), cert = slurp(a.cert);
  CertFiles b = ensure_state_certs(dir_, {}, 96h, now + 1h);
  EXPECT_EQ(a.sha256_hex, b.sha256_hex);
  EXPECT_EQ(slurp(b.ca_cert), ca);
  EXPECT_EQ(slurp(b.key), key);
  EXPECT_EQ(slurp(b.cert), cert);
  EXPECT_EQ(a.not_after, b.not_after);
}

TEST_F(CertsTest, RenewsLeafInsideRenewalWindowButKeepsCa) {
  auto now = Clock::now();
  CertFiles a = ensure_state_certs(dir_, {}, 96h, now);
  std::string ca = slurp(a.ca_cert);
  // 8 days on: 5 days left > 96 h, kept.
  CertFiles b = ensure_state_certs(dir_, {}, 96h, now + 8 * 24h);
  EXPECT_EQ(b.sha256_hex, a.sha256_hex);
  // 10 days on: 3 days left <= 96 h, renewed.
  auto later = now + 10 * 24h;
  CertFiles c = ensure_state_certs(dir_, {}, 96h, later);
  EXPECT_NE(c.sha256_hex, a.sha256_hex);
  EXPECT_EQ(slurp(c.ca_cert), ca);
  EXPECT_EQ(slurp(dir_ / "cert.sha256"), c.sha256_hex + "\n");
  EXPECT_GT(c.not_after, later + 12 * 24h);
  Crt leaf = load_crt(c.cert), ca_crt = load_crt(c.ca_cert);
  ASSERT_TRUE(leaf && ca_crt);
  EXPECT_TRUE(signed_by(leaf.get(), ca_crt.get(), /*any_time=*/true));
  EXPECT_LE(gnutls_x509_crt_get_expiration_time(leaf.get()) - gnutls_x509_crt_get_activation_time(leaf.get()),
            14 * 24 * 3600);
}

TEST_F(CertsTest, ClockGoingBackwardsRenews) {
  auto now = Clock::now();
  CertFiles a = ensure_state_certs(dir_, {}, 96h, now);
  CertFiles b = ensure_state_certs(dir_, {}, 96h, now - 48h);  // leaf would be "not yet valid"
  EXPECT_NE(a.sha256_hex, b.sha256_hex);
}

TEST_F(CertsTest, UncoveredExtraNamesRenewTheLeaf) {
  auto now = Clock::now();
  CertFiles a = ensure_state_certs(dir_, {}, 96h, now);
  std::vector<std::string> extra = {"Edge.Example.test.", "10.1.2.3", "[fd00::1]"};
  CertFiles b = ensure_state_certs(dir_, extra, 96h, now);
  EXPECT_NE(a.sha256_hex, b.sha256_hex);
  Crt leaf = load_crt(b.cert);
  ASSERT_TRUE(leaf);
  EXPECT_TRUE(has_dns_san(leaf.get(), "edge.example.test"));
  EXPECT_TRUE(has_ip_san(leaf.get(), "10.1.2.3"));
  EXPECT_TRUE(has_ip_san(leaf.get(), "fd00::1"));
  EXPECT_TRUE(has_dns_san(leaf.get(), "localhost"));
  // Same names (any spelling) or a subset: the leaf already covers them.
  EXPECT_EQ(ensure_state_certs(dir_, {"edge.example.test", "fd00::1"}, 96h, now).sha256_hex, b.sha256_hex);
  EXPECT_EQ(ensure_state_certs(dir_, {}, 96h, now).sha256_hex, b.sha256_hex);
  EXPECT_NE(ensure_state_certs(dir_, {"other.example.test"}, 96h, now).sha256_hex, b.sha256_hex);
}

TEST_F(CertsTest, InvalidOrTooManyExtraNamesThrow) {
  EXPECT_THROW(ensure_state_certs(dir_, {"bad name"}), std::runtime_error);
  EXPECT_THROW(ensure_state_certs(dir_, {""}), std::runtime_error);
  EXPECT_THROW(ensure_state_certs(dir_, {"a.*.example"}), std::runtime_error);
  std::vector<std::string> many(65, "x.example");
  EXPECT_THROW(ensure_state_certs(dir_, many), std::runtime_error);  // cap is 64
  std::vector<std::string> enough(64, "x.example");
  EXPECT_NO_THROW(ensure_state_certs(dir_, enough));
}

TEST_F(CertsTest, CorruptedLeafIsRegenerated) {
  CertFiles a = ensure_state_certs(dir_);
  spit(a.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
  CertFiles b = ensure_state_certs(dir_);
  EXPECT_NE(a.sha256_hex, b.sha256_hex);
  Crt leaf = load_crt(b.cert), ca = load_crt(b.ca_cert);
  ASSERT_TRUE(leaf && ca);
  EXPECT_TRUE(signed_by(leaf.get(), ca.get()));
  EXPECT_EQ(slurp(dir_ / "cert.sha256"), b.sha256_hex + "\n");

  spit(b.key, "not a key");
  EXPECT_NE(ensure_state_certs(dir_).sha256_hex, b.sha256_hex);

  fs::remove(b.cert);
  CertFiles c = ensure_state_certs(dir_);
  EXPECT_TRUE(fs::exists(c.cert));
}

TEST_F(CertsTest, MismatchedKeyOrForeignCaRegeneratesLeaf) {
  fs::path other = root_ / "other";
  CertFiles mine = ensure_state_certs(dir_);
  CertFiles theirs = ensure_state_certs(other);
  // Their leaf + key are a valid pair, but not issued by our CA.
  fs::copy_file(theirs.cert, mine.cert, fs::copy_options::overwrite_existing);
  fs::copy_file(theirs.key, mine.key, fs::copy_options::overwrite_existing);
  CertFiles fixed = ensure_state_certs(dir_);
  EXPECT_NE(fixed.sha256_hex, theirs.sha256_hex);
  EXPECT_NE(fixed.sha256_hex, mine.sha256_hex);
  // Our cert with their key: mismatch.
  fs::copy_file(theirs.key, fixed.key, fs::copy_options::overwrite_existing);
  EXPECT_NE(ensure_state_certs(dir_).sha256_hex, fixed.sha256_hex);
}

// Replaces DIR's leaf with one signed by DIR's own CA but with a chosen curve and lifetime.
void install_custom_leaf(const fs::path& dir, gnutls_ecc_curve_t curve, std::chrono::hours lifetime) {
  std::string ca_key_pem = slurp(dir / "ca.key");
  gnutls_x509_privkey_t ca_key = nullptr, key = nullptr;
  ASSERT_EQ(gnutls_x509_privkey_init(&ca_key), 0);
  gnutls_datum_t d{reinterpret_cast<unsigned char*>(ca_key_pem.data()), static_cast<unsigned>(ca_key_pem.size())};
  ASSERT_EQ(gnutls_x509_privkey_import2(ca_key, &d, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN), 0);
  Crt ca = load_crt(dir / "ca.pem");
  ASSERT_TRUE(ca);
  ASSERT_EQ(gnutls_x509_privkey_init(&key), 0);
  ASSERT_EQ(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(curve), 0), 0);
  gnutls_x509_crt_t crt = nullptr;
  ASSERT_EQ(gnutls_x509_crt_init(&crt), 0);
  auto now = Clock::now();
  unsigned char serial[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(gnutls_x509_crt_set_version(crt, 3), 0);
  ASSERT_EQ(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), 0);
  ASSERT_EQ(gnutls_x509_crt_set_dn(crt, "CN=custom", nullptr), 0);
  ASSERT_EQ(gnutls_x509_crt_set_activation_time(crt, Clock::to_time_t(now - 1h)), 0);
  ASSERT_EQ(gnutls_x509_crt_set_expiration_time(crt, Clock::to_time_t(now + lifetime)), 0);
  ASSERT_EQ(gnutls_x509_crt_set_key(crt, key), 0);
  for (const char* n : {"localhost", "*.localhost"}) {
    ASSERT_EQ(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, n, static_cast<unsigned>(strlen(n)),
                                                   GNUTLS_FSAN_APPEND),
              0);
  }
  unsigned char v4[4] = {127, 0, 0, 1}, v6[16] = {};
  v6[15] = 1;
  ASSERT_EQ(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v4, 4, GNUTLS_FSAN_APPEND), 0);
  ASSERT_EQ(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v6, 16, GNUTLS_FSAN_APPEND), 0);
  ASSERT_EQ(gnutls_x509_crt_sign2(crt, ca.get(), ca_key, GNUTLS_DIG_SHA256, 0), 0);
  gnutls_datum_t cert_pem{}, key_pem{};
  ASSERT_EQ(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cert_pem), 0);
  ASSERT_EQ(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &key_pem), 0);
  spit(dir / "cert.pem", std::string(reinterpret_cast<char*>(cert_pem.data), cert_pem.size));
  spit(dir / "key.pem", std::string(reinterpret_cast<char*>(key_pem.data), key_pem.size));
  gnutls_free(cert_pem.data);
  gnutls_free(key_pem.data);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  gnutls_x509_privkey_deinit(ca_key);
}

TEST_F(CertsTest, LeafOutsideChromiumRulesIsReplaced) {
  ensure_state_certs(dir_);
  // Control: a custom P-256 13-day leaf from our CA is accepted as is.
  install_custom_leaf(dir_, GNUTLS_ECC_CURVE_SECP256R1, 13 * 24h);
  std::string custom = sha256_hex_of_cert_file(dir_ / "cert.pem");
  EXPECT_EQ(ensure_state_certs(dir_).sha256_hex, custom);
  // P-384 (we issue P-256 only).
  install_custom_leaf(dir_, GNUTLS_ECC_CURVE_SECP384R1, 13 * 24h);
  custom = sha256_hex_of_cert_file(dir_ / "cert.pem");
  EXPECT_NE(ensure_state_certs(dir_).sha256_hex, custom);
  // 30 days: beyond serverCertificateHashes' 14-day limit.
  install_custom_leaf(dir_, GNUTLS_ECC_CURVE_SECP256R1, 30 * 24h);
  custom = sha256_hex_of_cert_file(dir_ / "cert.pem");
  EXPECT_NE(ensure_state_certs(dir_).sha256_hex, custom);
}

TEST_F(CertsTest, RenewalWindowMustBeShorterThanLifetime) {
  EXPECT_THROW(ensure_state_certs(dir_, {}, std::chrono::hours(13 * 24)), std::runtime_error);
  EXPECT_THROW(ensure_state_certs(dir_, {}, std::chrono::hours(-1)), std::runtime_error);
  EXPECT_NO_THROW(ensure_state_certs(dir_, {}, std::chrono::hours(13 * 24 - 1)));
}

TEST_F(CertsTest, LooseKeyModeIsTightened) {
  CertFiles a = ensure_state_certs(dir_);
  ASSERT_EQ(::chmod(a.key.c_str(), 0644), 0);
  ASSERT_EQ(::chmod((dir_ / "ca.key").c_str(), 0640), 0);
  EXPECT_EQ(ensure_state_certs(dir_).sha256_hex, a.sha256_hex);
  EXPECT_EQ(mode_of(a.key), 0600u);
  EXPECT_EQ(mode_of(dir_ / "ca.key"), 0600u);
}

TEST_F(CertsTest, BrokenCaIsReportedNotReplaced) {
  ensure_state_certs(dir_);
  std::string ca_key = slurp(dir_ / "ca.key");
  spit(dir_ / "ca.pem", "garbage");
  try {
    ensure_state_certs(dir_);
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "ca.pem").string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(dir_ / "ca.pem"), "garbage");
  EXPECT_EQ(slurp(dir_ / "ca.key"), ca_key);

  fs::remove(dir_ / "ca.pem");
  try {
    ensure_state_certs(dir_);
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ca.pem"), std::string::npos) << e.what();
  }
  // Both gone: a new CA is created, and the old leaf (signed by the old CA) is replaced.
  fs::remove(dir_ / "ca.key");
  CertFiles f = ensure_state_certs(dir_);
  Crt leaf = load_crt(f.cert), ca = load_crt(f.ca_cert);
  ASSERT_TRUE(leaf && ca);
  EXPECT_TRUE(signed_by(leaf.get(), ca.get()));
}

TEST_F(CertsTest, UncreatableDirectoryThrowsNamingThePath) {
  spit(root_ / "file", "x");
  fs::path bad = root_ / "file" / "state";
  try {
    ensure_state_certs(bad);
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  try {
    ensure_state_certs(root_ / "file");
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((root_ / "file").string()), std::string::npos) << e.what();
  }
}

TEST_F(CertsTest, UnwritableDirectoryThrowsNamingThePath) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  fs::create_directory(dir_);
  ASSERT_EQ(::chmod(dir_.c_str(), 0500), 0);
  try {
    ensure_state_certs(dir_);
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
  }
}

TEST_F(CertsTest, UnreplaceableFileThrowsNamingThePath) {
  // Works as root too: rename() cannot replace a non-empty directory with a file.
  fs::create_directories(dir_ / "cert.pem" / "sub");
  try {
    ensure_state_certs(dir_);
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "cert.pem").string()), std::string::npos) << e.what();
  }
}

TEST_F(CertsTest, ConcurrentCallersAgree) {
  std::string h1, h2;
  std::thread t1([&] { h1 = ensure_state_certs(dir_).sha256_hex; });
  std::thread t2([&] { h2 = ensure_state_certs(dir_).sha256_hex; });
  t1.join();
  t2.join();
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(sha256_hex_of_cert_file(dir_ / "cert.pem"), h1);
}

TEST_F(CertsTest, Sha256OfCertFileErrors) {
  try {
    sha256_hex_of_cert_file(root_ / "missing.pem");
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
  spit(root_ / "junk.pem", "junk");
  EXPECT_THROW(sha256_hex_of_cert_file(root_ / "junk.pem"), std::runtime_error);
}

// --- nameConstraints on the local CA (issue 14 item 6m) ---------------------------------------------

struct KeyDeleter {
  void operator()(gnutls_x509_privkey_t k) const { gnutls_x509_privkey_deinit(k); }
};
using Key = std::unique_ptr<std::remove_pointer_t<gnutls_x509_privkey_t>, KeyDeleter>;

Key new_p256_key() {
  gnutls_x509_privkey_t raw = nullptr;
  EXPECT_EQ(gnutls_x509_privkey_init(&raw), 0);
  Key key(raw);
  EXPECT_EQ(
      gnutls_x509_privkey_generate(raw, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
      0);
  return key;
}

Key load_key(const fs::path& p) {
  std::string pem = slurp(p);
  gnutls_x509_privkey_t raw = nullptr;
  EXPECT_EQ(gnutls_x509_privkey_init(&raw), 0);
  Key key(raw);
  gnutls_datum_t d{reinterpret_cast<unsigned char*>(pem.data()), static_cast<unsigned>(pem.size())};
  EXPECT_EQ(gnutls_x509_privkey_import2(raw, &d, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN), 0);
  return key;
}

// A certificate over a fresh key, valid from an hour ago for a day; `ca` null: self-signed CA.
Crt make_crt(const char* dn, const std::vector<std::string>& dns, const std::vector<std::string>& ips,
             gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key, Key* key_out = nullptr) {
  Key key = new_p256_key();
  gnutls_x509_crt_t raw = nullptr;
  EXPECT_EQ(gnutls_x509_crt_init(&raw), 0);
  Crt crt(raw);
  const auto now = Clock::now();
  unsigned char serial[8] = {1, 2, 3, 4, 5, 6, 7, 9};
  EXPECT_EQ(gnutls_x509_crt_set_version(raw, 3), 0);
  EXPECT_EQ(gnutls_x509_crt_set_serial(raw, serial, sizeof serial), 0);
  EXPECT_EQ(gnutls_x509_crt_set_dn(raw, dn, nullptr), 0);
  EXPECT_EQ(gnutls_x509_crt_set_activation_time(raw, Clock::to_time_t(now - 1h)), 0);
  EXPECT_EQ(gnutls_x509_crt_set_expiration_time(raw, Clock::to_time_t(now + (ca ? 24h : 24h * 3650))), 0);
  EXPECT_EQ(gnutls_x509_crt_set_key(raw, key.get()), 0);
  for (const auto& n : dns) {
    EXPECT_EQ(gnutls_x509_crt_set_subject_alt_name(raw, GNUTLS_SAN_DNSNAME, n.data(),
                                                   static_cast<unsigned>(n.size()), GNUTLS_FSAN_APPEND),
              0);
  }
  for (const auto& ip : ips) {
    unsigned char bytes[16];
    const bool v6 = ip.find(':') != std::string::npos;
    EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, ip.c_str(), bytes), 1);
    EXPECT_EQ(gnutls_x509_crt_set_subject_alt_name(raw, GNUTLS_SAN_IPADDRESS, bytes, v6 ? 16 : 4,
                                                   GNUTLS_FSAN_APPEND),
              0);
  }
  if (ca == nullptr) {
    EXPECT_EQ(gnutls_x509_crt_set_basic_constraints(raw, 1, 0), 0);
    EXPECT_EQ(gnutls_x509_crt_set_key_usage(raw, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
    EXPECT_EQ(gnutls_x509_crt_sign2(raw, raw, key.get(), GNUTLS_DIG_SHA256, 0), 0);
  } else {
    EXPECT_EQ(gnutls_x509_crt_set_basic_constraints(raw, 0, -1), 0);
    EXPECT_EQ(gnutls_x509_crt_sign2(raw, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
  }
  if (key_out) *key_out = std::move(key);
  return crt;
}

std::string pem_of(gnutls_x509_crt_t crt) {
  gnutls_datum_t out{};
  EXPECT_EQ(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out), 0);
  std::string s(reinterpret_cast<char*>(out.data), out.size);
  gnutls_free(out.data);
  return s;
}

std::string pem_of(gnutls_x509_privkey_t key) {
  gnutls_datum_t out{};
  EXPECT_EQ(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &out), 0);
  std::string s(reinterpret_cast<char*>(out.data), out.size);
  gnutls_free(out.data);
  return s;
}

// GnuTLS' verdict on a leaf for `dns`/`ips` that DIR's CA signs: the status bits (0 = trusted).
unsigned verify_leaf_from_state_ca(const fs::path& dir, const std::vector<std::string>& dns,
                                   const std::vector<std::string>& ips) {
  Crt ca = load_crt(dir / "ca.pem");
  Key ca_key = load_key(dir / "ca.key");
  // Through PEM and back: a certificate made in memory has no raw issuer DN for the trust list to
  // look its CA up by.
  spit(dir.parent_path() / "probe.pem", pem_of(make_crt("CN=probe", dns, ips, ca.get(), ca_key.get()).get()));
  Crt leaf = load_crt(dir.parent_path() / "probe.pem");
  gnutls_x509_trust_list_t list = nullptr;
  EXPECT_EQ(gnutls_x509_trust_list_init(&list, 0), 0);
  gnutls_x509_crt_t cas[1] = {ca.get()};
  EXPECT_EQ(gnutls_x509_trust_list_add_cas(list, cas, 1, 0), 1);
  unsigned status = 0;
  gnutls_x509_crt_t chain[1] = {leaf.get()};
  EXPECT_EQ(gnutls_x509_trust_list_verify_crt(list, chain, 1, 0, &status, nullptr), 0);
  gnutls_x509_trust_list_deinit(list, 0);
  return status;
}

bool has_name_constraints(const fs::path& ca_pem) {
  Crt ca = load_crt(ca_pem);
  gnutls_x509_name_constraints_t nc = nullptr;
  EXPECT_EQ(gnutls_x509_name_constraints_init(&nc), 0);
  unsigned critical = 0;
  const int rv = gnutls_x509_crt_get_name_constraints(ca.get(), nc, 0, &critical);
  gnutls_x509_name_constraints_deinit(nc);
  return rv == 0 && critical == 1;
}

TEST_F(CertsTest, CaIsNameConstrainedToTheDomainAndLoopback) {
  CertFiles f = ensure_state_certs(dir_, {"edge.example.test", "*.edge.example.test"});
  EXPECT_TRUE(has_name_constraints(f.ca_cert));
  // Our own leaf verifies against it.
  Crt ca = load_crt(f.ca_cert), leaf = load_crt(f.cert);
  ASSERT_TRUE(ca && leaf);
  EXPECT_TRUE(signed_by(leaf.get(), ca.get()));
  // Inside: the domain, its subdomains (a tunnel's name), localhost and its subdomains, loopback.
  EXPECT_EQ(verify_leaf_from_state_ca(dir_, {"edge.example.test", "app.edge.example.test"}, {}), 0u);
  EXPECT_EQ(verify_leaf_from_state_ca(dir_, {"a.b.edge.example.test"}, {}), 0u);
  EXPECT_EQ(
      verify_leaf_from_state_ca(dir_, {"localhost", "app.localhost"}, {"127.0.0.1", "127.9.9.9", "::1"}), 0u);
  // Outside: another name, a look-alike suffix, a parent, a public or private address, another v6.
  for (const auto& dns : {"bank.example", "evil-edge.example.test", "example.test", "localhost.evil.test"}) {
    const unsigned status = verify_leaf_from_state_ca(dir_, {dns}, {});
    EXPECT_NE(status & GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, 0u) << dns << " status " << status;
  }
  for (const auto& ip : {"10.0.0.1", "8.8.8.8", "128.0.0.1", "::2", "2001:db8::1"}) {
    const unsigned status = verify_leaf_from_state_ca(dir_, {"localhost"}, {ip});
    EXPECT_NE(status & GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, 0u) << ip << " status " << status;
  }
  // One bad name among good ones spoils the leaf.
  EXPECT_NE(verify_leaf_from_state_ca(dir_, {"app.localhost", "bank.example"}, {}), 0u);
}

TEST_F(CertsTest, ExtraIpAddressesArePermittedOneByOne) {
  ensure_state_certs(dir_, {"10.1.2.3", "[fd00::1]"});
  EXPECT_EQ(verify_leaf_from_state_ca(dir_, {"localhost"}, {"10.1.2.3", "fd00::1"}), 0u);
  EXPECT_NE(verify_leaf_from_state_ca(dir_, {"localhost"}, {"10.1.2.4"}), 0u);
  EXPECT_NE(verify_leaf_from_state_ca(dir_, {"localhost"}, {"fd00::2"}), 0u);
}

TEST_F(CertsTest, UnconstrainedCaIsReplacedWithItsLeaf) {
  // A state directory from before nameConstraints: an unconstrained CA and a leaf it signed.
  fs::create_directories(dir_);
  Key ca_key, leaf_key;
  Crt old_ca = make_crt("CN=old wtmesh local CA", {}, {}, nullptr, nullptr, &ca_key);
  Crt old_leaf = make_crt("CN=old leaf", {"localhost", "*.localhost"}, {"127.0.0.1", "::1"}, old_ca.get(),
                          ca_key.get(), &leaf_key);
  spit(dir_ / "ca.pem", pem_of(old_ca.get()));
  spit(dir_ / "ca.key", pem_of(ca_key.get()));
  spit(dir_ / "cert.pem", pem_of(old_leaf.get()));
  spit(dir_ / "key.pem", pem_of(leaf_key.get()));
  ::chmod((dir_ / "ca.key").c_str(), 0600);
  ::chmod((dir_ / "key.pem").c_str(), 0600);
  const std::string old_ca_pem = slurp(dir_ / "ca.pem"), old_leaf_hash = der_hash_hex(old_leaf.get());
  EXPECT_FALSE(has_name_constraints(dir_ / "ca.pem"));
  // Control: that old CA signs for anything.
  EXPECT_EQ(verify_leaf_from_state_ca(dir_, {"bank.example"}, {}), 0u);

  CertFiles f = ensure_state_certs(dir_);
  EXPECT_NE(slurp(f.ca_cert), old_ca_pem);
  EXPECT_TRUE(has_name_constraints(f.ca_cert));
  EXPECT_NE(f.sha256_hex, old_leaf_hash);
  Crt ca = load_crt(f.ca_cert), leaf = load_crt(f.cert);
  EXPECT_TRUE(signed_by(leaf.get(), ca.get()));
  EXPECT_EQ(mode_of(dir_ / "ca.key"), 0600u);
  EXPECT_NE(verify_leaf_from_state_ca(dir_, {"bank.example"}, {}), 0u);
  // Once constrained it is kept.
  const std::string new_ca_pem = slurp(f.ca_cert);
  EXPECT_EQ(ensure_state_certs(dir_).sha256_hex, f.sha256_hex);
  EXPECT_EQ(slurp(f.ca_cert), new_ca_pem);
}

TEST_F(CertsTest, ConstrainedCaIsReplacedWhenTheDomainChanges) {
  CertFiles a = ensure_state_certs(dir_, {"one.example.test", "*.one.example.test"});
  const std::string ca_one = slurp(a.ca_cert);
  // A subdomain of the permitted one, or fewer names, keeps the CA.
  ensure_state_certs(dir_, {"sub.one.example.test"});
  ensure_state_certs(dir_);
  EXPECT_EQ(slurp(a.ca_cert), ca_one);
  CertFiles b = ensure_state_certs(dir_, {"two.example.test", "*.two.example.test"});
  EXPECT_NE(slurp(b.ca_cert), ca_one);
  EXPECT_EQ(verify_leaf_from_state_ca(dir_, {"app.two.example.test"}, {}), 0u);
  EXPECT_NE(verify_leaf_from_state_ca(dir_, {"app.one.example.test"}, {}), 0u);
}

}  // namespace
}  // namespace wtmesh::quic
