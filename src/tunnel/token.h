// Short-lived ES256 JWTs (RFC 7519 + RFC 7515 compact form) that authenticate an agent to the edge
// before a tunnel WebTransport session is accepted, and the host-coverage rules that decide which
// tunnel hostnames a token may claim.
//
// Verification is deliberately narrow; we issue every token ourselves, so anything unusual is refused:
//  - alg must be exactly "ES256" ("none", "HS256", "es256", ... → kUnsupportedAlg), checked before any
//    key is looked up, and keys are only ever P-256, so no alg/key confusion is possible.
//  - kid must name a key in the set (missing kid → kUnknownKey); we never try every key and never use
//    jwk/jku/x5c/x5u header parameters. A "crit" header is refused (we implement no extensions).
//  - The signature must be exactly 64 bytes of r||s; DER signatures and any other length are kBadSignature.
//  - The signature is checked before the payload is even base64-decoded or parsed.
//  - JSON objects with a duplicate member name (header or payload) are kMalformed: last-one-wins
//    parsers disagree with first-one-wins ones, so accepting them would let two readers see different claims.
//  - All of sub, aud, iat, nbf, exp, jti and hosts are required with exact types; NumericDates are
//    integers in [0, 2^33); exp - iat may not exceed kMaxTokenLifetime. Unknown claims are ignored.
//  - ECDSA signatures are malleable ((r, n-s) also verifies; GnuTLS does not enforce low-S), so the
//    signature bytes must not be used as a token identity (replay caches key on jti instead).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/es256.h"

namespace wtmesh::tunnel {

inline constexpr std::string_view kTokenAudience = "wtmesh-edge";
// The audience of a visitor token (docs/protocol.md §3.4): signed by a tunnel owner's own key, shown
// by a visitor to the edge; never accepted where kTokenAudience is expected, nor the other way round.
inline constexpr std::string_view kVisitorAudience = "wtmesh-visitor";
inline constexpr size_t kMaxTokenSize = 8 * 1024;  // whole compact token, in bytes
inline constexpr size_t kMaxTokenHosts = 64;
inline constexpr size_t kMaxSubjectSize = 255;
inline constexpr size_t kMaxJtiSize = 128;
inline constexpr size_t kMaxVerifierKeys = 32;
inline constexpr std::chrono::seconds kMinTokenTtl{10};
inline constexpr std::chrono::seconds kMaxTokenLifetime{30 * 24 * 3600};
inline constexpr std::chrono::seconds kDefaultLeeway{30};
inline constexpr std::chrono::seconds kMaxLeeway{300};

struct TokenClaims {
  std::string subject;             // "sub": who the token was issued to (the tunnel name)
  std::vector<std::string> hosts;  // "hosts": exact names or "*.example.com" wildcards (one label)
  // "connect" (optional): names the bearer may reach through the mesh (`wtmesh connect`), patterns
  // as for hosts. Absent or empty: it reaches nothing.
  std::vector<std::string> connect;
  std::chrono::system_clock::time_point issued_at;   // "iat"
  std::chrono::system_clock::time_point not_before;  // "nbf"
  std::chrono::system_clock::time_point expires_at;  // "exp"
  std::string audience;                              // "aud"; kTokenAudience
  std::string id;                                    // "jti": random, unique per token
  // Set only for a session token minted from a credential (tunnel/credential.h): the credential's id
  // ("cid"). Not a claim of plain tokens: never written by sign(), never read by verify().
  std::string credential_id;

  bool operator==(const TokenClaims&) const = default;
};

// Claims for a fresh token: iat = nbf = now (whole seconds), exp = now + ttl, aud = kTokenAudience,
// a random 128-bit jti. Throws std::invalid_argument when `ttl` is outside [kMinTokenTtl, kMaxTokenLifetime].
TokenClaims make_claims(std::string subject, std::vector<std::string> hosts, std::chrono::seconds ttl,
                        std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

enum class TokenError {
  kMalformed,       // not a well-formed token of ours: size, structure, base64, JSON, claim types/ranges
  kUnsupportedAlg,  // header alg is not exactly "ES256"
  kUnknownKey,      // no kid, or kid not in the verifier set
  kBadSignature,    // signature of the wrong size or that does not verify
  kExpired,         // now >= exp + leeway
  kNotYetValid,     // now < nbf - leeway, or iat > now + leeway
  kWrongAudience,   // aud is not kTokenAudience
  kRevoked,         // a session token of a credential the edge revoked (tunnel/credential.h)
  kReplayed,        // a session token whose jti the edge has already seen
};
const char* to_string(TokenError e);  // "malformed", "unsupported_alg", ...

class VerifyResult {
 public:
  static VerifyResult success(TokenClaims claims, std::string kid);
  static VerifyResult failure(TokenError error, std::string message);

  bool ok() const { return claims_.has_value(); }
  explicit operator bool() const { return ok(); }
  const TokenClaims& claims() const { return *claims_; }   // requires ok()
  const std::string& kid() const { return kid_; }          // key that verified; empty unless ok()
  TokenError error() const { return error_; }              // meaningful only when !ok()
  const std::string& message() const { return message_; }  // one sentence; empty when ok()

 private:
  std::optional<TokenClaims> claims_;
  std::string kid_;
  TokenError error_ = TokenError::kMalformed;
  std::string message_;
};

// An ES256 signing key (ECDSA P-256) and its kid = base64url(SHA-256(SPKI DER)[0..12)), 16 characters.
// Move-only. Errors throw std::runtime_error (files, GnuTLS) or std::invalid_argument (bad claims).
class SigningKey {
 public:
  static SigningKey generate();
  static SigningKey from_pem(std::string_view pem);  // PKCS#8 or SEC1 PEM, P-256 only
  static SigningKey load(const std::filesystem::path& pem_file);
  void save(const std::filesystem::path& pem_file) const;  // PKCS#8 PEM, mode 0600, atomic replace

  const std::string& kid() const { return key_.kid(); }
  std::string private_pem() const { return key_.private_pem(); }
  std::string public_pem() const { return key_.public_pem(); }  // what a VerifierKeySet loads

  // Compact JWS of `claims` with header {"alg":"ES256","typ":"JWT","kid":kid()}. Throws
  // std::invalid_argument for claims verify() would refuse (bad hosts, sizes, times) or a token over
  // kMaxTokenSize.
  std::string sign(const TokenClaims& claims) const;
  // Low level, for tests and tools: base64url(header_json) "." base64url(payload_json) "." signature,
  // with no checks on the JSON.
  std::string sign_jws(std::string_view header_json, std::string_view payload_json) const;
  // Raw 64-byte r||s ES256 signature over `signing_input`.
  std::string signature(std::string_view signing_input) const { return key_.sign(signing_input); }

 private:
  explicit SigningKey(es256::PrivateKey key) : key_(std::move(key)) {}
  es256::PrivateKey key_;
};

// The public keys the edge accepts, by kid. Copyable and cheap to copy (keys are shared), so a holder
// can swap in a reloaded set; verify() is const and safe to call from several threads.
class VerifierKeySet {
 public:
  // Every "*.pub.pem" in `dir`; each file must be named "<kid>.pub.pem" for the key it holds. Throws
  // std::runtime_error naming the file for an unreadable/invalid key, a name mismatch, or more than
  // kMaxVerifierKeys.
  static VerifierKeySet load_dir(const std::filesystem::path& dir);

  // Adds a SubjectPublicKeyInfo PEM P-256 key and returns its kid (adding a present key is a no-op).
  // Throws std::invalid_argument for a bad key, std::length_error when kMaxVerifierKeys are present.
  std::string add_pem(std::string_view public_pem);
  bool remove(std::string_view kid);
  bool contains(std::string_view kid) const { return keys_.find(kid) != keys_.end(); }
  // The key with this kid, or nullptr.
  const es256::PublicKey* find(std::string_view kid) const {
    auto it = keys_.find(kid);
    return it == keys_.end() ? nullptr : &it->second;
  }
  size_t size() const { return keys_.size(); }
  std::vector<std::string> kids() const;

  // `leeway` (clamped to [0, kMaxLeeway]) absorbs clock skew for exp, nbf and iat. The aud claim must
  // be `audience` (kVisitorAudience for visitor tokens).
  VerifyResult verify(std::string_view token, std::chrono::system_clock::time_point now,
                      std::chrono::seconds leeway = kDefaultLeeway,
                      std::string_view audience = kTokenAudience) const;

 private:
  std::map<std::string, es256::PublicKey, std::less<>> keys_;
};

// --- hosts -----------------------------------------------------------------------------------------

// A DNS name (LDH labels of 1..63 characters, 253 characters at most, no trailing dot) or, with
// `allow_wildcard`, "*." followed by such a name. Case-insensitive; IP literals are not names.
bool is_valid_host_pattern(std::string_view pattern, bool allow_wildcard = true);

// True when `host` equals one of the token's host patterns, or a "*.example.com" pattern and `host`
// has exactly one more label (a.example.com yes, a.b.example.com no, example.com no). ASCII
// case-insensitive. An invalid `host` (empty, trailing dot, port, '*') is never covered.
bool token_covers_host(const TokenClaims& claims, std::string_view host);

// True when one of the token's `connect` patterns covers `name` (the rule of token_covers_host).
bool token_may_connect(const TokenClaims& claims, std::string_view name);

// HTTP status for a tunnel request: 401 when the token is missing or failed verification (any
// TokenError), 403 when it is valid but does not cover `host`, 200 when it may serve `host`.
int tunnel_auth_status(const VerifyResult* result, std::string_view host);
constexpr int http_status_for(TokenError) { return 401; }

// Token from an "Authorization: Bearer <token>" header value (scheme case-insensitive, RFC 6750
// §2.1); nullopt for another scheme, an empty token or characters outside the b64token set.
std::optional<std::string_view> parse_bearer(std::string_view authorization);

// "90s", "10m", "2h", "1d" → seconds; nullopt for other forms or results outside
// [kMinTokenTtl, kMaxTokenLifetime].
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

}  // namespace wtmesh::tunnel
