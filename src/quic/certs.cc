// Certificate state directory: local CA + short-lived ECDSA P-256 leaf, generated with GnuTLS.
#include "quic/certs.h"

#include "common/files.h"
#include "common/gnutls_raii.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace wtmesh::quic {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

constexpr auto kCaLifetime = std::chrono::hours(24 * 3653);  // ~10 years
constexpr size_t kMaxPemFile = 256 * 1024;                   // certs and keys are a few KiB
constexpr unsigned kMaxSans = 256;                           // SANs inspected per certificate
constexpr size_t kMaxExtraNames = 64;

[[noreturn]] void fail(const fs::path& file, const std::string& reason) {
  throw std::runtime_error(file.string() + ": " + reason);
}

using Crt = wtmesh::gnutls::Handle<gnutls_x509_crt_t, gnutls_x509_crt_deinit>;
using XKey = wtmesh::gnutls::Handle<gnutls_x509_privkey_t, gnutls_x509_privkey_deinit>;
using PKey = wtmesh::gnutls::Handle<gnutls_privkey_t, gnutls_privkey_deinit>;
using Constraints =
    wtmesh::gnutls::Handle<gnutls_x509_name_constraints_t, gnutls_x509_name_constraints_deinit>;
using wtmesh::gnutls::Datum;

// --- X.509 helpers -------------------------------------------------------------------------------

std::string to_hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 0xf]);
  }
  return out;
}

// Parses the first certificate of a PEM text; nullptr + reason on failure.
Crt parse_crt(const std::string& pem, std::string* why) {
  gnutls_x509_crt_t raw = nullptr;
  if (int rv = gnutls_x509_crt_init(&raw); rv < 0) throw std::runtime_error(gnutls_strerror(rv));
  Crt crt(raw);
  gnutls_datum_t in = wtmesh::gnutls::view(pem);
  if (int rv = gnutls_x509_crt_import(crt.get(), &in, GNUTLS_X509_FMT_PEM); rv < 0) {
    *why = std::string("not a PEM certificate (") + gnutls_strerror(rv) + ")";
    return nullptr;
  }
  return crt;
}

XKey parse_key(const std::string& pem, std::string* why) {
  gnutls_x509_privkey_t raw = nullptr;
  if (int rv = gnutls_x509_privkey_init(&raw); rv < 0) throw std::runtime_error(gnutls_strerror(rv));
  XKey key(raw);
  gnutls_datum_t in = wtmesh::gnutls::view(pem);
  if (int rv = gnutls_x509_privkey_import2(key.get(), &in, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN);
      rv < 0) {
    *why = std::string("not a PEM private key (") + gnutls_strerror(rv) + ")";
    return nullptr;
  }
  return key;
}

std::string der_sha256_hex(gnutls_x509_crt_t crt) {
  Datum der;
  if (int rv = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der.d); rv < 0) {
    throw std::runtime_error(std::string("cannot export certificate: ") + gnutls_strerror(rv));
  }
  std::array<uint8_t, 32> digest{};
  if (int rv = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.d.data, der.d.size, digest.data()); rv < 0) {
    throw std::runtime_error(std::string("SHA-256 failed: ") + gnutls_strerror(rv));
  }
  return to_hex(digest.data(), digest.size());
}

bool key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key) {
  std::array<unsigned char, 64> a{}, b{};
  size_t na = a.size(), nb = b.size();
  if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a.data(), &na) < 0) return false;
  if (gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b.data(), &nb) < 0) return false;
  return na == nb && std::equal(a.begin(), a.begin() + na, b.begin());
}

bool is_ecdsa_p256(gnutls_x509_crt_t crt) {
  if (gnutls_x509_crt_get_pk_algorithm(crt, nullptr) != GNUTLS_PK_ECDSA) return false;
  gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
  Datum x, y;
  if (gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x.d, &y.d) < 0) return false;
  return curve == GNUTLS_ECC_CURVE_SECP256R1;
}

Clock::time_point expiry_of(gnutls_x509_crt_t crt) {
  return Clock::from_time_t(gnutls_x509_crt_get_expiration_time(crt));
}
Clock::time_point activation_of(gnutls_x509_crt_t crt) {
  return Clock::from_time_t(gnutls_x509_crt_get_activation_time(crt));
}

// The names a leaf must carry: DNS names lower-cased, IPs as raw 4/16 bytes.
struct Names {
  std::vector<std::string> dns;
  std::vector<std::string> ips;  // raw address bytes

  void add(std::string name) {
    if (name.size() > 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, name.c_str(), &v4) == 1) {
      add_unique(ips, std::string(reinterpret_cast<const char*>(&v4), sizeof v4));
    } else if (::inet_pton(AF_INET6, name.c_str(), &v6) == 1) {
      add_unique(ips, std::string(reinterpret_cast<const char*>(&v6), sizeof v6));
    } else {
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
      if (!name.empty() && name.back() == '.') name.pop_back();
      if (!valid_dns_name(name)) throw std::runtime_error("invalid certificate name '" + name + "'");
      add_unique(dns, name);
    }
  }

  static void add_unique(std::vector<std::string>& v, std::string s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
  }

  // Letters, digits, '-', '_', labels of 1..63; '*' only as the whole leftmost label.
  static bool valid_dns_name(std::string_view n) {
    if (n.empty() || n.size() > 253) return false;
    size_t label_start = 0;
    for (size_t i = 0; i <= n.size(); ++i) {
      if (i == n.size() || n[i] == '.') {
        size_t len = i - label_start;
        if (len == 0 || len > 63) return false;
        std::string_view label = n.substr(label_start, len);
        if (label.find('*') != std::string_view::npos && (label != "*" || label_start != 0)) return false;
        label_start = i + 1;
        continue;
      }
      char c = n[i];
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '*';
      if (!ok) return false;
    }
    return true;
  }
};

Names wanted_names(const std::vector<std::string>& extra) {
  if (extra.size() > kMaxExtraNames) {
    throw std::runtime_error("too many extra certificate names (" + std::to_string(extra.size()) + " > " +
                             std::to_string(kMaxExtraNames) + ")");
  }
  Names names;
  for (const char* n : {"localhost", "*.localhost", "127.0.0.1", "::1"}) names.add(n);
  for (const auto& n : extra) names.add(n);
  return names;
}

// Reads the SANs of `crt`; false if they cannot be read.
bool read_sans(gnutls_x509_crt_t crt, Names* out) {
  for (unsigned seq = 0; seq < kMaxSans; ++seq) {
    std::array<char, 512> buf{};
    size_t size = buf.size();
    int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf.data(), &size, nullptr);
    if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) return true;
    if (type < 0) return false;
    std::string value(buf.data(), size);
    if (type == GNUTLS_SAN_DNSNAME) {
      std::transform(value.begin(), value.end(), value.begin(),
                     [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
      out->dns.push_back(value);
    } else if (type == GNUTLS_SAN_IPADDRESS) {
      out->ips.push_back(value);
    }
  }
  return true;
}

void check(int rv, const char* what) {
  if (rv < 0) throw std::runtime_error(std::string(what) + " failed: " + gnutls_strerror(rv));
}

// --- nameConstraints of the local CA -------------------------------------------------------------
// The CA may sign for the names the edge's leaves carry and nothing else: each DNS name's subtree
// (RFC 5280: "example.com" permits example.com and every name under it; "*.d" adds nothing over d),
// 127.0.0.0/8, ::1/128 and each extra IP address alone. A machine that trusts ca.pem so trusts it
// for no bank's name.

// The DNS subtrees `names` needs: wildcards stripped, names under another one dropped.
std::vector<std::string> dns_subtrees(const Names& names) {
  std::vector<std::string> bases;
  for (const auto& n : names.dns) Names::add_unique(bases, n.starts_with("*.") ? n.substr(2) : n);
  const auto under = [](const std::string& n, const std::string& base) {
    return n.size() > base.size() && n.ends_with(base) && n[n.size() - base.size() - 1] == '.';
  };
  std::vector<std::string> out;
  for (const auto& n : bases) {
    if (std::none_of(bases.begin(), bases.end(), [&](const std::string& b) { return under(n, b); }))
      out.push_back(n);
  }
  return out;
}

// IP subtrees as GnuTLS takes them: address then mask (8 or 32 bytes).
std::vector<std::string> ip_subtrees(const Names& names) {
  const auto subtree = [](std::string addr, size_t prefix_bits) {
    std::string mask(addr.size(), '\0');
    for (size_t i = 0; i < mask.size(); ++i) {
      const size_t bits = prefix_bits > i * 8 ? std::min<size_t>(8, prefix_bits - i * 8) : 0;
      mask[i] = static_cast<char>(0xff00 >> bits);
      addr[i] = static_cast<char>(addr[i] & mask[i]);
    }
    return addr + mask;
  };
  std::string v4(4, '\0'), v6(16, '\0');
  v4[0] = 127;
  v6[15] = 1;
  std::vector<std::string> out = {subtree(v4, 8), subtree(v6, 128)};
  for (const auto& ip : names.ips) {
    const bool loopback4 = ip.size() == 4 && ip[0] == 127;
    if (!loopback4 && ip != v6) out.push_back(subtree(ip, ip.size() * 8));
  }
  return out;
}

Constraints new_constraints() {
  gnutls_x509_name_constraints_t raw = nullptr;
  check(gnutls_x509_name_constraints_init(&raw), "gnutls_x509_name_constraints_init");
  return Constraints(raw);
}

void set_name_constraints(gnutls_x509_crt_t crt, const Names& names) {
  Constraints nc = new_constraints();
  for (const auto& d : dns_subtrees(names)) {
    const gnutls_datum_t datum = wtmesh::gnutls::view(d);
    check(gnutls_x509_name_constraints_add_permitted(nc.get(), GNUTLS_SAN_DNSNAME, &datum),
          "permit a DNS name");
  }
  for (const auto& ip : ip_subtrees(names)) {
    const gnutls_datum_t datum = wtmesh::gnutls::view(ip);
    check(gnutls_x509_name_constraints_add_permitted(nc.get(), GNUTLS_SAN_IPADDRESS, &datum),
          "permit an IP range");
  }
  check(gnutls_x509_crt_set_name_constraints(crt, nc.get(), /*critical=*/1), "set name constraints");
}

// Why `ca` cannot sign leaves for `names` under its constraints (none at all counts), or nullopt.
std::optional<std::string> constraints_problem(gnutls_x509_crt_t ca, const Names& names) {
  Constraints nc = new_constraints();
  unsigned critical = 0;
  const int rv = gnutls_x509_crt_get_name_constraints(ca, nc.get(), 0, &critical);
  if (rv == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) return "it has no nameConstraints";
  if (rv < 0) return std::string("its nameConstraints cannot be read (") + gnutls_strerror(rv) + ")";
  for (const auto& d : dns_subtrees(names)) {
    const gnutls_datum_t datum = wtmesh::gnutls::view(d);
    if (!gnutls_x509_name_constraints_check(nc.get(), GNUTLS_SAN_DNSNAME, &datum))
      return "its nameConstraints do not permit " + d;
  }
  for (const auto& ip : names.ips) {
    const gnutls_datum_t datum = wtmesh::gnutls::view(ip);
    if (!gnutls_x509_name_constraints_check(nc.get(), GNUTLS_SAN_IPADDRESS, &datum))
      return "its nameConstraints do not permit one of the leaf's IP addresses";
  }
  return std::nullopt;
}

XKey generate_p256_key() {
  gnutls_x509_privkey_t raw = nullptr;
  check(gnutls_x509_privkey_init(&raw), "gnutls_x509_privkey_init");
  XKey key(raw);
  check(gnutls_x509_privkey_generate(key.get(), GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                     0),
        "generating an ECDSA P-256 key");
  return key;
}

std::string key_pem(gnutls_x509_privkey_t key) {
  Datum out;
  check(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &out.d),
        "exporting a private key");
  return out.str();
}

std::string crt_pem(gnutls_x509_crt_t crt) {
  Datum out;
  check(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out.d), "exporting a certificate");
  return out.str();
}

// Common fields of every certificate we issue.
Crt new_crt(gnutls_x509_privkey_t key, const std::string& dn, Clock::time_point not_before,
            Clock::time_point not_after) {
  gnutls_x509_crt_t raw = nullptr;
  check(gnutls_x509_crt_init(&raw), "gnutls_x509_crt_init");
  Crt crt(raw);
  check(gnutls_x509_crt_set_version(crt.get(), 3), "gnutls_x509_crt_set_version");
  std::array<uint8_t, 16> serial{};
  check(gnutls_rnd(GNUTLS_RND_NONCE, serial.data(), serial.size()), "gnutls_rnd");
  serial[0] = static_cast<uint8_t>((serial[0] & 0x7f) | 0x01);  // positive, no leading zero byte
  check(gnutls_x509_crt_set_serial(crt.get(), serial.data(), serial.size()), "gnutls_x509_crt_set_serial");
  const char* err = nullptr;
  check(gnutls_x509_crt_set_dn(crt.get(), dn.c_str(), &err), "gnutls_x509_crt_set_dn");
  check(gnutls_x509_crt_set_activation_time(crt.get(), Clock::to_time_t(not_before)), "set activation time");
  check(gnutls_x509_crt_set_expiration_time(crt.get(), Clock::to_time_t(not_after)), "set expiration time");
  check(gnutls_x509_crt_set_key(crt.get(), key), "gnutls_x509_crt_set_key");
  std::array<unsigned char, 20> kid{};
  size_t kid_size = kid.size();
  check(gnutls_x509_crt_get_key_id(crt.get(), 0, kid.data(), &kid_size), "gnutls_x509_crt_get_key_id");
  check(gnutls_x509_crt_set_subject_key_id(crt.get(), kid.data(), kid_size), "set subject key id");
  return crt;
}

void sign(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key) {
  gnutls_privkey_t raw = nullptr;
  check(gnutls_privkey_init(&raw), "gnutls_privkey_init");
  PKey pkey(raw);
  check(gnutls_privkey_import_x509(pkey.get(), issuer_key, 0), "gnutls_privkey_import_x509");
  check(gnutls_x509_crt_privkey_sign(crt, issuer, pkey.get(), GNUTLS_DIG_SHA256, 0), "signing a certificate");
}

struct Ca {
  Crt crt;
  XKey key;
};

Ca create_ca(const fs::path& cert_path, const fs::path& key_path, const Names& names, Clock::time_point now) {
  XKey key = generate_p256_key();
  std::array<uint8_t, 4> tag{};
  check(gnutls_rnd(GNUTLS_RND_NONCE, tag.data(), tag.size()), "gnutls_rnd");
  // A random tag in the name tells apart the CAs of different machines in trust stores.
  Crt crt = new_crt(key.get(), "O=wtmesh,CN=wtmesh local CA " + to_hex(tag.data(), tag.size()),
                    now - kLeafBackdate, now + kCaLifetime);
  check(gnutls_x509_crt_set_basic_constraints(crt.get(), 1, 0), "set basic constraints");
  check(gnutls_x509_crt_set_key_usage(crt.get(), GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN |
                                                     GNUTLS_KEY_DIGITAL_SIGNATURE),
        "set key usage");
  set_name_constraints(crt.get(), names);
  sign(crt.get(), crt.get(), key.get());
  files::write_file_atomic(key_path, key_pem(key.get()), 0600);
  files::write_file_atomic(cert_path, crt_pem(crt.get()), 0644);
  spdlog::info("created local CA {} (sha256 {})", cert_path.string(), der_sha256_hex(crt.get()));
  return Ca{std::move(crt), std::move(key)};
}

// The CA is long-lived trust material: anything odd about it is reported, never papered over.
// The one exception: a CA without nameConstraints (made before they existed), or whose constraints
// miss a name the leaves now need (another --domain), is replaced, loudly.
Ca load_or_create_ca(const fs::path& dir, const Names& names, Clock::time_point now) {
  const fs::path cert_path = dir / "ca.pem", key_path = dir / "ca.key";
  auto cert_text = files::read_small_file(cert_path, kMaxPemFile);
  auto key_text = files::read_small_file(key_path, kMaxPemFile);
  if (!cert_text && !key_text) return create_ca(cert_path, key_path, names, now);
  const std::string remedy = "; remove ca.pem and ca.key to create a new local CA";
  if (!cert_text) fail(cert_path, "missing although ca.key exists" + remedy);
  if (!key_text) fail(key_path, "missing although ca.pem exists" + remedy);
  std::string why;
  Crt crt = parse_crt(*cert_text, &why);
  if (!crt) fail(cert_path, why + remedy);
  XKey key = parse_key(*key_text, &why);
  if (!key) fail(key_path, why + remedy);
  if (!key_matches(crt.get(), key.get())) fail(key_path, "does not match ca.pem" + remedy);
  unsigned critical = 0, is_ca = 0;
  int pathlen = -1;
  if (gnutls_x509_crt_get_basic_constraints(crt.get(), &critical, &is_ca, &pathlen) < 0 || !is_ca) {
    fail(cert_path, "is not a CA certificate" + remedy);
  }
  if (expiry_of(crt.get()) < now + kLeafLifetime + std::chrono::hours(24)) {
    fail(cert_path, "expires too soon to sign a new leaf" + remedy);
  }
  if (auto problem = constraints_problem(crt.get(), names)) {
    spdlog::warn(
        "replacing the local CA {} and its leaves: {}; anyone who trusts the old ca.pem (agents' --ca, "
        "browsers, system stores) must trust the new one",
        cert_path.string(), *problem);
    return create_ca(cert_path, key_path, names, now);
  }
  files::ensure_private_mode(key_path);
  return Ca{std::move(crt), std::move(key)};
}

// Why the existing leaf must be replaced, or nullopt to keep it.
std::optional<std::string> leaf_problem(const fs::path& cert_path, const fs::path& key_path, const Ca& ca,
                                        const Names& want, std::chrono::hours renew_before,
                                        Clock::time_point now, Crt* keep) {
  auto cert_text = files::read_small_file(cert_path, kMaxPemFile);
  auto key_text = files::read_small_file(key_path, kMaxPemFile);
  if (!cert_text) return "cert.pem missing";
  if (!key_text) return "key.pem missing";
  std::string why;
  Crt crt = parse_crt(*cert_text, &why);
  if (!crt) return "cert.pem " + why;
  XKey key = parse_key(*key_text, &why);
  if (!key) return "key.pem " + why;
  if (!key_matches(crt.get(), key.get())) return "key.pem does not match cert.pem";
  if (!is_ecdsa_p256(crt.get())) return "leaf key is not ECDSA P-256";
  unsigned status = 0;
  gnutls_x509_crt_t trust[1] = {ca.crt.get()};
  int rv = gnutls_x509_crt_verify(crt.get(), trust, 1,
                                  GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                                  &status);
  if (rv < 0 || status != 0) return "leaf is not signed by the local CA";
  auto not_before = activation_of(crt.get()), not_after = expiry_of(crt.get());
  if (not_after - not_before > kMaxLeafValidity) return "leaf validity exceeds 14 days";
  if (not_before > now) return "leaf is not valid yet";
  if (not_after - now <= renew_before) return "leaf expires within the renewal window";
  Names have;
  if (!read_sans(crt.get(), &have)) return "cannot read the leaf's subject alternative names";
  for (const auto& n : want.dns) {
    if (std::find(have.dns.begin(), have.dns.end(), n) == have.dns.end()) return "leaf lacks name " + n;
  }
  for (const auto& ip : want.ips) {
    if (std::find(have.ips.begin(), have.ips.end(), ip) == have.ips.end()) return "leaf lacks an IP address";
  }
  files::ensure_private_mode(key_path);
  *keep = std::move(crt);
  return std::nullopt;
}

Crt create_leaf(const Ca& ca, const Names& names, const fs::path& cert_path, const fs::path& key_path,
                Clock::time_point now) {
  XKey key = generate_p256_key();
  Crt crt = new_crt(key.get(), "O=wtmesh,CN=wtmesh edge", now - kLeafBackdate, now + kLeafLifetime);
  check(gnutls_x509_crt_set_basic_constraints(crt.get(), 0, -1), "set basic constraints");
  check(gnutls_x509_crt_set_key_usage(crt.get(), GNUTLS_KEY_DIGITAL_SIGNATURE), "set key usage");
  check(gnutls_x509_crt_set_key_purpose_oid(crt.get(), GNUTLS_KP_TLS_WWW_SERVER, 0), "set key purpose");
  for (const auto& n : names.dns) {
    check(gnutls_x509_crt_set_subject_alt_name(crt.get(), GNUTLS_SAN_DNSNAME, n.data(),
                                               static_cast<unsigned>(n.size()), GNUTLS_FSAN_APPEND),
          "add DNS name");
  }
  for (const auto& ip : names.ips) {
    check(gnutls_x509_crt_set_subject_alt_name(crt.get(), GNUTLS_SAN_IPADDRESS, ip.data(),
                                               static_cast<unsigned>(ip.size()), GNUTLS_FSAN_APPEND),
          "add IP address");
  }
  std::array<unsigned char, 64> ca_kid{};
  size_t ca_kid_size = ca_kid.size();
  if (gnutls_x509_crt_get_subject_key_id(ca.crt.get(), ca_kid.data(), &ca_kid_size, nullptr) >= 0) {
    check(gnutls_x509_crt_set_authority_key_id(crt.get(), ca_kid.data(), ca_kid_size), "set authority key id");
  }
  sign(crt.get(), ca.crt.get(), ca.key.get());
  // Key first: a reader racing us without the lock sees either the old pair or a new key with
  // the old cert (rejected by the TLS layer), never a cert whose key is missing.
  files::write_file_atomic(key_path, key_pem(key.get()), 0600);
  files::write_file_atomic(cert_path, crt_pem(crt.get()), 0644);
  return crt;
}

}  // namespace

std::string sha256_hex_of_cert_file(const fs::path& pem) {
  gnutls::global_init();
  auto text = files::read_small_file(pem, kMaxPemFile);
  if (!text) fail(pem, "cannot open: no such file");
  std::string why;
  Crt crt = parse_crt(*text, &why);
  if (!crt) fail(pem, why);
  return der_sha256_hex(crt.get());
}

CertFiles ensure_state_certs(const fs::path& dir_in, const std::vector<std::string>& extra_names,
                             std::chrono::hours renew_before, Clock::time_point now) {
  gnutls::global_init();
  if (renew_before < std::chrono::hours(0) || renew_before >= kLeafLifetime) {
    // Otherwise every call would issue a new leaf (or never renew an expired one).
    throw std::runtime_error("certificate renewal window must be between 0 and 13 days, got " +
                             std::to_string(renew_before.count()) + " h");
  }
  fs::path dir = dir_in.lexically_normal();
  if (!dir.has_filename() && dir.has_parent_path()) dir = dir.parent_path();  // "a/b/" -> "a/b"
  Names names = wanted_names(extra_names);
  files::ensure_private_dir(dir);

  files::DirLock lock(dir / ".lock");  // serialises concurrent edges sharing a state dir

  CertFiles files{dir / "ca.pem", dir / "cert.pem", dir / "key.pem", {}, {}};
  Ca ca = load_or_create_ca(dir, names, now);

  Crt leaf;
  if (auto problem = leaf_problem(files.cert, files.key, ca, names, renew_before, now, &leaf)) {
    spdlog::info("issuing a new leaf certificate in {}: {}", dir.string(), *problem);
    leaf = create_leaf(ca, names, files.cert, files.key, now);
  }
  files.sha256_hex = der_sha256_hex(leaf.get());
  files.not_after = expiry_of(leaf.get());

  const fs::path hash_path = dir / "cert.sha256";
  const std::string hash_line = files.sha256_hex + "\n";
  if (files::read_small_file(hash_path) != hash_line) files::write_file_atomic(hash_path, hash_line, 0644);
  files::sync_dir(dir);
  return files;
}

}  // namespace wtmesh::quic
