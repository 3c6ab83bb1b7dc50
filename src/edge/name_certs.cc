#include "edge/name_certs.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "edge/route_table.h"
#include "tunnel/token.h"

namespace wtmesh::edge {
namespace {

using SysClock = std::chrono::system_clock;
constexpr size_t kMaxPemFile = 256 * 1024;

std::string read_pem(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error(p.string() + ": cannot open");
  std::string s(kMaxPemFile + 1, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(in.gcount()));
  if (s.size() > kMaxPemFile) throw std::runtime_error(p.string() + ": too large for a PEM file");
  return s;
}

gnutls_datum_t datum(const std::string& s) {
  return {reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())), static_cast<unsigned>(s.size())};
}

void check(int rv, const char* what) {
  if (rv < 0) throw std::runtime_error(std::string(what) + ": " + gnutls_strerror(rv));
}

gnutls_x509_privkey_t load_key(const std::filesystem::path& p) {
  const std::string pem = read_pem(p);
  gnutls_x509_privkey_t key = nullptr;
  check(gnutls_x509_privkey_init(&key), "gnutls_x509_privkey_init");
  const gnutls_datum_t d = datum(pem);
  if (int rv = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, nullptr, 0); rv < 0) {
    gnutls_x509_privkey_deinit(key);
    throw std::runtime_error(p.string() + ": not a private key: " + gnutls_strerror(rv));
  }
  return key;
}

}  // namespace

NameCertIssuer::NameCertIssuer(const std::filesystem::path& state_dir, size_t max_entries, NameCertRate rate)
    : max_entries_(std::max<size_t>(max_entries, 1)), rate_(rate), tokens_(rate.burst) {
  const auto ca_path = state_dir / "ca.pem";
  const std::string ca_pem = read_pem(ca_path);
  check(gnutls_x509_crt_init(&ca_crt_), "gnutls_x509_crt_init");
  const gnutls_datum_t d = datum(ca_pem);
  if (int rv = gnutls_x509_crt_import(ca_crt_, &d, GNUTLS_X509_FMT_PEM); rv < 0) {
    throw std::runtime_error(ca_path.string() + ": not a certificate: " + gnutls_strerror(rv));
  }
  ca_not_after_ = SysClock::from_time_t(gnutls_x509_crt_get_expiration_time(ca_crt_));
  ca_key_ = load_key(state_dir / "ca.key");
  leaf_key_ = load_key(state_dir / "key.pem");
}

NameCertIssuer::~NameCertIssuer() {
  if (leaf_key_) gnutls_x509_privkey_deinit(leaf_key_);
  if (ca_key_) gnutls_x509_privkey_deinit(ca_key_);
  if (ca_crt_) gnutls_x509_crt_deinit(ca_crt_);
}

bool NameCertIssuer::take_issue_token(SysClock::time_point now) {
  if (refilled_ != SysClock::time_point{} && now > refilled_) {
    const double seconds = std::chrono::duration<double>(now - refilled_).count();
    tokens_ = std::min(rate_.burst, tokens_ + seconds * rate_.per_second);
  }
  if (now > refilled_) refilled_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

std::shared_ptr<const TlsCredentials> NameCertIssuer::credentials_for(std::string_view name_in,
                                                                      SysClock::time_point now) {
  if (!tunnel::is_valid_host_pattern(name_in, /*allow_wildcard=*/false)) return nullptr;
  const std::string name = lower_ascii(name_in);
  std::lock_guard lock(mutex_);
  auto it = cache_.find(name);
  if (it != cache_.end()) lru_.splice(lru_.begin(), lru_, it->second.use);  // most recently used now
  if (it != cache_.end() && it->second.not_after - now > kNameCertRenewBefore) return it->second.cred;
  if (!take_issue_token(now)) {
    ++throttled_;
    // Over the rate: a cached leaf close to its renewal still verifies; otherwise the shared one.
    if (it != cache_.end() && it->second.not_after > now) return it->second.cred;
    return nullptr;
  }
  SysClock::time_point not_after;
  std::shared_ptr<const TlsCredentials> cred;
  try {
    cred = issue(name, now, &not_after);
  } catch (const std::exception& e) {
    spdlog::error("edge: cannot issue a certificate for {}: {}", name, e.what());
    return nullptr;
  }
  ++issued_;
  if (it != cache_.end()) {
    it->second.cred = cred;
    it->second.not_after = not_after;
    return cred;
  }
  if (cache_.size() >= max_entries_) {
    // Evict the least recently used name; sessions still using its credentials keep them alive.
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(name);
  cache_.emplace(name, Entry{cred, not_after, lru_.begin()});
  return cred;
}

std::shared_ptr<const TlsCredentials> NameCertIssuer::issue(const std::string& name, SysClock::time_point now,
                                                            SysClock::time_point* not_after) {
  gnutls_x509_crt_t crt = nullptr;
  check(gnutls_x509_crt_init(&crt), "gnutls_x509_crt_init");
  std::unique_ptr<std::remove_pointer_t<gnutls_x509_crt_t>, void (*)(gnutls_x509_crt_t)> owned(
      crt, gnutls_x509_crt_deinit);
  gnutls_privkey_t signer = nullptr;
  check(gnutls_privkey_init(&signer), "gnutls_privkey_init");
  std::unique_ptr<std::remove_pointer_t<gnutls_privkey_t>, void (*)(gnutls_privkey_t)> owned_signer(
      signer, gnutls_privkey_deinit);

  const auto not_before = now - std::chrono::hours(1);
  *not_after = std::min(now + kNameCertLifetime, ca_not_after_);
  check(gnutls_x509_crt_set_version(crt, 3), "set version");
  std::array<uint8_t, 16> serial{};
  check(gnutls_rnd(GNUTLS_RND_NONCE, serial.data(), serial.size()), "gnutls_rnd");
  serial[0] = static_cast<uint8_t>((serial[0] & 0x7f) | 0x01);  // positive, no leading zero byte
  check(gnutls_x509_crt_set_serial(crt, serial.data(), serial.size()), "set serial");
  check(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "wtmesh", 6), "set O");
  check(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name.data(),
                                      static_cast<unsigned>(name.size())),
        "set CN");
  check(gnutls_x509_crt_set_activation_time(crt, SysClock::to_time_t(not_before)), "set activation time");
  check(gnutls_x509_crt_set_expiration_time(crt, SysClock::to_time_t(*not_after)), "set expiration time");
  check(gnutls_x509_crt_set_key(crt, leaf_key_), "set key");
  std::array<unsigned char, 64> kid{};
  size_t kid_size = kid.size();
  check(gnutls_x509_crt_get_key_id(crt, 0, kid.data(), &kid_size), "get key id");
  check(gnutls_x509_crt_set_subject_key_id(crt, kid.data(), kid_size), "set subject key id");
  kid_size = kid.size();
  if (gnutls_x509_crt_get_subject_key_id(ca_crt_, kid.data(), &kid_size, nullptr) >= 0) {
    check(gnutls_x509_crt_set_authority_key_id(crt, kid.data(), kid_size), "set authority key id");
  }
  check(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), "set basic constraints");
  check(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "set key usage");
  check(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0), "set key purpose");
  check(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name.data(),
                                             static_cast<unsigned>(name.size()), GNUTLS_FSAN_SET),
        "set DNS name");
  check(gnutls_privkey_import_x509(signer, ca_key_, 0), "import CA key");
  check(gnutls_x509_crt_privkey_sign(crt, ca_crt_, signer, GNUTLS_DIG_SHA256, 0), "sign");

  auto cred = std::make_shared<TlsCredentials>();
  gnutls_x509_crt_t chain[1] = {crt};
  check(gnutls_certificate_set_x509_key(cred->get(), chain, 1, leaf_key_), "set credentials");
  return cred;
}

std::shared_ptr<NameCertIssuer> SharedNameCertIssuer::issuer_for(const std::filesystem::path& state_dir,
                                                                 const std::string& leaf_sha256) {
  std::lock_guard lock(mutex_);
  if (!issuer_ || leaf_ != leaf_sha256) {
    issuer_ = std::make_shared<NameCertIssuer>(state_dir);
    leaf_ = leaf_sha256;
  }
  return issuer_;
}

}  // namespace wtmesh::edge
