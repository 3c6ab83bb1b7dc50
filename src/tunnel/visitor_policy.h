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
  bool empty() const { return basic.empty() && allow.empty() && deny.empty(); }
  bool operator==(const VisitorPolicy&) const = default;
};

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
// Whether the textual client address `ip` (IPv4, IPv6, or IPv4-mapped IPv6) is in `range`.
bool cidr_contains(const CidrRange& range, std::string_view ip);

// The REGISTER options member: {"basic": [{"user", "salt", "hash", "iter"}], "allow_cidr": [...],
// "deny_cidr": [...]} (salt and hash base64url); empty members are left out.
nlohmann::json encode_visitor_policy(const VisitorPolicy& policy);
// nullopt with `error` for anything malformed or over a bound; unknown members are ignored.
std::optional<VisitorPolicy> decode_visitor_policy(const nlohmann::json& j, std::string* error);

}  // namespace wtmesh::tunnel
