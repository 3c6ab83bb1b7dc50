// ES256 (ECDSA P-256 + SHA-256, RFC 7518 §3.4) keys on top of GnuTLS, used by token.cc. JOSE signatures
// are the fixed-size 64-byte r||s, not the DER SEQUENCE GnuTLS produces and expects, so this file does
// that conversion (with gnutls_{de,en}code_rs_value) and nothing else by hand.
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace wtmesh::tunnel::es256 {

inline constexpr size_t kSignatureSize = 64;  // r||s, each big-endian and left-padded to 32 bytes
inline constexpr size_t kKidBytes = 12;       // SHA-256(SPKI DER) prefix → 16 base64url characters
inline constexpr size_t kKidChars = 16;

template <typename T, void (*F)(T)>
struct Deleter {
  void operator()(T p) const { F(p); }
};
using XKey = std::unique_ptr<std::remove_pointer_t<gnutls_x509_privkey_t>,
                             Deleter<gnutls_x509_privkey_t, gnutls_x509_privkey_deinit>>;
using PrivKey = std::unique_ptr<std::remove_pointer_t<gnutls_privkey_t>,
                                Deleter<gnutls_privkey_t, gnutls_privkey_deinit>>;
using PubKey =
    std::unique_ptr<std::remove_pointer_t<gnutls_pubkey_t>, Deleter<gnutls_pubkey_t, gnutls_pubkey_deinit>>;

// An ECDSA P-256 private key with its public half and kid. Throws std::runtime_error on failure.
class PrivateKey {
 public:
  static PrivateKey generate();
  // PKCS#8 or SEC1 ("EC PRIVATE KEY") PEM, unencrypted; anything but a P-256 key is refused.
  static PrivateKey from_pem(std::string_view pem);

  std::string private_pem() const;  // PKCS#8 PEM
  std::string public_pem() const;   // SubjectPublicKeyInfo PEM ("PUBLIC KEY")
  const std::string& kid() const { return kid_; }

  // 64-byte r||s ES256 signature over `data`.
  std::string sign(std::string_view data) const;

 private:
  PrivateKey(XKey x, PrivKey p, PubKey pub);
  XKey x509_;
  PrivKey priv_;
  PubKey pub_;
  std::string kid_;
};

// An ECDSA P-256 public key and its kid.
class PublicKey {
 public:
  // SubjectPublicKeyInfo PEM; nullopt + *why for anything else (other algorithm or curve, garbage).
  static std::optional<PublicKey> from_pem(std::string_view pem, std::string* why);

  const std::string& kid() const { return kid_; }
  std::string public_pem() const;

  // True when `signature` is a 64-byte r||s ES256 signature of `data` by this key.
  bool verify(std::string_view data, std::string_view signature) const;

 private:
  explicit PublicKey(PubKey pub);
  std::shared_ptr<std::remove_pointer_t<gnutls_pubkey_t>> pub_;  // shared: key sets are cheap to copy
  std::string kid_;
};

// DER ECDSA-Sig-Value → r||s (each INTEGER stripped of sign padding and left-padded to 32 bytes);
// nullopt when it does not parse or an integer is longer than 32 bytes.
std::optional<std::string> der_to_rs(std::string_view der);
// r||s (64 bytes) → DER ECDSA-Sig-Value; nullopt for a wrong length or r == 0 or s == 0.
std::optional<std::string> rs_to_der(std::string_view rs);

// True for a string that kid derivation can produce (16 base64url characters); safe as a file name.
bool is_valid_kid(std::string_view kid);

}  // namespace wtmesh::tunnel::es256
