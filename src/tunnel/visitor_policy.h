// Visitor auth of an http tunnel (docs/protocol.md §3.4): who may reach the tunnel's public URL,
// checked by the edge before a request, a WebSocket or a WebTransport session reaches the agent.
// The agent states it in REGISTER's options ("visitor"); the edge keeps it with that registration.
//
//   - deny_cidr: a client address in any of these ranges gets 403;
//   - allow_cidr: if any are given, a client address in none of them gets 403;
//   - basic: if any credentials are given, the request needs `Authorization: Basic` with one of them
//     (else 401 with `WWW-Authenticate: Basic`). The edge never sees a password at rest: the agent
//     sends each as PBKDF2-HMAC-SHA256 (random 16-byte salt, kBasicIterations) of the password, and
//     the edge derives the same from what the visitor sends.
//   - token_keys: public ES256 keys of the tunnel's owner; a visitor token (tunnel/token.h, aud
//     kVisitorAudience, covering the host, unexpired) signed by one of them lets the request in, as
//     `Authorization: Bearer` or a `wtmesh_token` query parameter. The edge holds public keys only.
//   - challenge: visitors without credentials pass a browser interstitial (edge/visitor_challenge.h)
//     that sets a signed per-host cookie. With it, basic and token credentials are a way past the
//     interstitial rather than a requirement; without it, one of them (if any are set) is required.
//
// Sans-I/O; the JSON is bounded (kMaxBasicCredentials, kMaxCidrs, field sizes) so a REGISTER frame
// stays well within its 16 KiB.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wtmesh::tunnel {

inline constexpr size_t kMaxBasicCredentials = 16;
inline constexpr size_t kMaxCidrs = 64;                 // per list
inline constexpr size_t kMaxBasicUser = 64;             // bytes
inline constexpr size_t kMaxBasicPassword = 256;        // bytes
inline constexpr uint32_t kBasicIterations = 4096;      // what agents use
inline constexpr uint32_t kMaxBasicIterations = 65536;  // what edges accept (each check costs this)
inline constexpr size_t kMaxTokenKeys = 8;              // --require-token keys per tunnel
inline constexpr size_t kMaxTokenKeyPem = 512;          // bytes of one public key PEM

struct BasicCredential {
  std::string user;
  std::array<uint8_t, 16> salt{};
  std::array<uint8_t, 32> hash{};  // PBKDF2-HMAC-SHA256(password, salt, iterations)
  uint32_t iterations = kBasicIterations;
  bool operator==(const BasicCredential&) const = default;
};

struct CidrRange {
  std::array<uint8_t, 16> address{};  // IPv4 in the first 4 bytes
  uint8_t prefix = 0;                 // bits
  bool v4 = true;
  bool operator==(const CidrRange&) const = default;
};

struct VisitorPolicy {
  std::vector<BasicCredential> basic;
  std::vector<CidrRange> allow, deny;
  std::vector<std::string> token_keys;  // SubjectPublicKeyInfo PEM, P-256
  bool challenge = false;
  bool empty() const {
    return basic.empty() && allow.empty() && deny.empty() && token_keys.empty() && !challenge;
  }
  // Whether a visitor must bring a credential (basic or token): some are set and no challenge is.
  bool requires_credentials() const { return !challenge && (!basic.empty() || !token_keys.empty()); }
  bool operator==(const VisitorPolicy&) const = default;
};

// An operator's bound on every http tunnel's visitor auth (`wtmesh edge --visitor-auth-min`,
// `--require-visitor-auth` = kAny), ordered weakest first.
enum class VisitorAuthMin {
  kNone,
  kAny,          // some visitor auth: basic, a token key, an allowed range or the challenge
  kChallenge,    // the challenge, or required credentials (basic or token without the challenge)
  kCredentials,  // required credentials: basic or token keys, and no challenge to pass instead
};
// "none", "any", "challenge", "credentials"; nullopt for anything else.
std::optional<VisitorAuthMin> parse_visitor_auth_min(std::string_view text);
const char* to_string(VisitorAuthMin min);
// Empty when `policy` meets `min`, else one sentence saying what the tunnel lacks.
std::string visitor_auth_shortfall(const VisitorPolicy& policy, VisitorAuthMin min);

// "USER:PASS" (what --basic-auth takes): a credential with a fresh random salt, or nullopt with
// `error` (no colon, an empty or too long user or password, control bytes in the user).
// `iterations` other than the default: tests and fuzzers only.
std::optional<BasicCredential> make_basic_credential(std::string_view user_colon_password, std::string* error,
                                                     uint32_t iterations = kBasicIterations);
// Whether `password` is the credential's (constant-time comparison of the derived hashes).
bool basic_password_matches(const BasicCredential& credential, std::string_view password);

// "10.0.0.0/8", "192.168.1.7" (= /32), "2001:db8::/32", "::1" (= /128). Bits past the prefix must be
// zero ("10.1.0.0/8" is refused, as a likely typo). nullopt with `error`.
std::optional<CidrRange> parse_cidr(std::string_view text, std::string* error);
std::string to_string(const CidrRange& range);
// The public key PEM --require-token FILE stands for: FILE holds a P-256 public key PEM, or the
// owner's private key (PKCS#8/SEC1 PEM, as `wtmesh token --visitor-key` writes), whose public half is
// taken. nullopt with `error`.
std::optional<std::string> visitor_token_key(std::string_view pem, std::string* error);
// Whether the textual client address `ip` (IPv4, IPv6, or IPv4-mapped IPv6) is in `range`.
bool cidr_contains(const CidrRange& range, std::string_view ip);

// The REGISTER options member: {"basic": [{"user", "salt", "hash", "iter"}], "allow_cidr": [...],
// "deny_cidr": [...], "token_keys": [PEM...], "challenge": true} (salt and hash base64url); empty
// members are left out.
nlohmann::json encode_visitor_policy(const VisitorPolicy& policy);
// nullopt with `error` for anything malformed or over a bound (a token key that is not a P-256
// public key included); unknown members are ignored.
std::optional<VisitorPolicy> decode_visitor_policy(const nlohmann::json& j, std::string* error);

}  // namespace wtmesh::tunnel
