// ES256 keys, signing and verification with GnuTLS; r||s <-> DER conversion.
#include "tunnel/es256.h"

#include <gnutls/crypto.h>

#include <algorithm>
#include <stdexcept>

#include "common/gnutls_raii.h"
#include "tunnel/base64url.h"

namespace wtmesh::tunnel::es256 {
namespace {

constexpr size_t kScalarSize = 32;

using wtmesh::gnutls::Datum;
using wtmesh::gnutls::view;

[[noreturn]] void fail(const char* what, int rv) {
  throw std::runtime_error(std::string(what) + ": " + gnutls_strerror(rv));
}

void check(int rv, const char* what) {
  if (rv < 0) fail(what, rv);
}

// kid = base64url(SHA-256(SPKI DER)[0..12)): derivable by anyone holding the public key.
std::string derive_kid(gnutls_pubkey_t pub) {
  Datum der;
  check(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der.d), "exporting public key");
  std::array<uint8_t, 32> digest{};
  check(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.d.data, der.d.size, digest.data()), "hashing public key");
  return base64url_encode(std::span<const uint8_t>(digest.data(), kKidBytes));
}

// Empty string when the key is ECDSA on P-256, otherwise the reason.
std::string check_p256(gnutls_pubkey_t pub) {
  if (gnutls_pubkey_get_pk_algorithm(pub, nullptr) != GNUTLS_PK_ECDSA) return "not an ECDSA key";
  gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
  Datum x, y;
  if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &x.d, &y.d, 0) < 0) return "cannot read the EC public key";
  if (curve != GNUTLS_ECC_CURVE_SECP256R1) return "not a P-256 key";
  return {};
}

std::string pem_of(gnutls_pubkey_t pub) {
  Datum out;
  check(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &out.d), "exporting public key");
  return out.str();
}

PubKey public_of(gnutls_privkey_t priv) {
  gnutls_pubkey_t raw = nullptr;
  check(gnutls_pubkey_init(&raw), "gnutls_pubkey_init");
  PubKey pub(raw);
  check(gnutls_pubkey_import_privkey(pub.get(), priv, 0, 0), "deriving public key");
  return pub;
}

PrivKey wrap(gnutls_x509_privkey_t x) {
  gnutls_privkey_t raw = nullptr;
  check(gnutls_privkey_init(&raw), "gnutls_privkey_init");
  PrivKey p(raw);
  check(gnutls_privkey_import_x509(p.get(), x, GNUTLS_PRIVKEY_IMPORT_COPY), "importing private key");
  return p;
}

// Appends `v` (big-endian, maybe with leading zero bytes) as exactly 32 bytes; false if it is longer.
bool append_scalar(std::string& out, const gnutls_datum_t& v) {
  size_t skip = 0;
  while (skip < v.size && v.data[skip] == 0) ++skip;
  size_t len = v.size - skip;
  if (len > kScalarSize) return false;
  out.append(kScalarSize - len, '\0');
  out.append(reinterpret_cast<const char*>(v.data) + skip, len);
  return true;
}

}  // namespace

PrivateKey::PrivateKey(XKey x, PrivKey p, PubKey pub)
    : x509_(std::move(x)), priv_(std::move(p)), pub_(std::move(pub)), kid_(derive_kid(pub_.get())) {}

PrivateKey PrivateKey::generate() {
  gnutls_x509_privkey_t raw = nullptr;
  check(gnutls_x509_privkey_init(&raw), "gnutls_x509_privkey_init");
  XKey x(raw);
  check(gnutls_x509_privkey_generate2(x.get(), GNUTLS_PK_ECDSA,
                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, nullptr, 0),
        "generating P-256 key");
  PrivKey p = wrap(x.get());
  PubKey pub = public_of(p.get());
  return PrivateKey(std::move(x), std::move(p), std::move(pub));
}

PrivateKey PrivateKey::from_pem(std::string_view pem) {
  gnutls_x509_privkey_t raw = nullptr;
  check(gnutls_x509_privkey_init(&raw), "gnutls_x509_privkey_init");
  XKey x(raw);
  gnutls_datum_t in = view(pem);
  if (int rv = gnutls_x509_privkey_import2(x.get(), &in, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN);
      rv < 0) {
    fail("not a PEM private key", rv);
  }
  PrivKey p = wrap(x.get());
  PubKey pub = public_of(p.get());
  if (std::string why = check_p256(pub.get()); !why.empty())
    throw std::runtime_error("signing key is " + why);
  return PrivateKey(std::move(x), std::move(p), std::move(pub));
}

std::string PrivateKey::private_pem() const {
  Datum out;
  check(
      gnutls_x509_privkey_export2_pkcs8(x509_.get(), GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &out.d),
      "exporting private key");
  return out.str();
}

std::string PrivateKey::public_pem() const { return pem_of(pub_.get()); }

std::string PrivateKey::sign(std::string_view data) const {
  gnutls_datum_t in = view(data);
  Datum der;
  check(gnutls_privkey_sign_data2(priv_.get(), GNUTLS_SIGN_ECDSA_SHA256, 0, &in, &der.d), "ES256 signing");
  auto rs = der_to_rs(der.str());
  if (!rs) throw std::runtime_error("ES256 signing: GnuTLS returned an unexpected signature encoding");
  return *rs;
}

PublicKey::PublicKey(PubKey pub) : pub_(pub.release(), gnutls_pubkey_deinit), kid_(derive_kid(pub_.get())) {}

std::optional<PublicKey> PublicKey::from_pem(std::string_view pem, std::string* why) {
  gnutls_pubkey_t raw = nullptr;
  check(gnutls_pubkey_init(&raw), "gnutls_pubkey_init");
  PubKey pub(raw);
  gnutls_datum_t in = view(pem);
  if (int rv = gnutls_pubkey_import(pub.get(), &in, GNUTLS_X509_FMT_PEM); rv < 0) {
    *why = std::string("not a PEM public key (") + gnutls_strerror(rv) + ")";
    return std::nullopt;
  }
  if (std::string reason = check_p256(pub.get()); !reason.empty()) {
    *why = reason;
    return std::nullopt;
  }
  return PublicKey(std::move(pub));
}

std::string PublicKey::public_pem() const { return pem_of(pub_.get()); }

bool PublicKey::verify(std::string_view data, std::string_view signature) const {
  auto der = rs_to_der(signature);
  if (!der) return false;
  gnutls_datum_t in = view(data);
  gnutls_datum_t sig = view(*der);
  return gnutls_pubkey_verify_data2(pub_.get(), GNUTLS_SIGN_ECDSA_SHA256, 0, &in, &sig) >= 0;
}

std::optional<std::string> der_to_rs(std::string_view der) {
  gnutls_datum_t in = view(der);
  Datum r, s;
  if (gnutls_decode_rs_value(&in, &r.d, &s.d) < 0) return std::nullopt;
  std::string out;
  out.reserve(kSignatureSize);
  if (!append_scalar(out, r.d) || !append_scalar(out, s.d)) return std::nullopt;
  return out;
}

std::optional<std::string> rs_to_der(std::string_view rs) {
  if (rs.size() != kSignatureSize) return std::nullopt;
  auto is_zero = [](std::string_view v) {
    return std::all_of(v.begin(), v.end(), [](char c) { return c == 0; });
  };
  std::string_view r = rs.substr(0, kScalarSize), s = rs.substr(kScalarSize);
  if (is_zero(r) || is_zero(s)) return std::nullopt;
  // gnutls_encode_rs_value drops leading zero bytes and adds the sign byte DER needs.
  gnutls_datum_t rd = view(r), sd = view(s);
  Datum out;
  if (gnutls_encode_rs_value(&out.d, &rd, &sd) < 0) return std::nullopt;
  return out.str();
}

bool is_valid_kid(std::string_view kid) {
  return kid.size() == kKidChars && std::all_of(kid.begin(), kid.end(), is_base64url_char);
}

}  // namespace wtmesh::tunnel::es256
