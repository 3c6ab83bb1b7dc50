// Agent credentials (docs/protocol.md §6.1): a long-lived file holding an ES256 key made for one agent
// and the edge's grant for that key, from which the agent mints its own short-lived session tokens.
//
//   grant          compact JWS signed with the edge's token-signing key (kid = that key), header
//                  {"alg":"ES256","typ":"wtmesh-grant","kid":K}, payload {"sub": NAME, "aud":
//                  "wtmesh-grant", "iat","nbf","exp", "jti": CREDENTIAL_ID, "hosts": [...],
//                  "connect": [...], "cnf": AGENT_PUBLIC_KEY_PEM}. Its aud and typ make every plain
//                  token verifier refuse it, so a grant (which travels inside every session token) is
//                  never a bearer token itself.
//   session token  compact JWS signed with the agent's own key, header {"alg":"ES256","typ":
//                  "wtmesh-session","grant": GRANT}, payload {"sub": NAME, "aud":"wtmesh-edge", "iat",
//                  "nbf","exp", "jti": RANDOM, "cid": CREDENTIAL_ID}.
//
// The edge verifies the grant with its own keys, then the session token's signature with the key the
// grant names, then the claims: same subject and credential id as the grant, audience, exp - iat within
// the edge's maximum session-token lifetime, exp not after the grant's. The scope (hosts, connect) is
// the grant's. The edge keeps no per-credential state to verify; revocation is a list of ids
// (tunnel/revocation.h) and replay is stopped by the edge's cache of jtis (edge/tunnel_service.h).
//
// The credential file is JSON: {"wtmesh_credential": 1, "id", "name", "key": PKCS#8 PEM, "grant"}.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/token.h"

namespace wtmesh::tunnel {

inline constexpr std::string_view kGrantType = "wtmesh-grant";  // a grant's typ and aud
inline constexpr std::string_view kSessionTokenType = "wtmesh-session";
inline constexpr size_t kMaxGrantSize = 4 * 1024;
inline constexpr size_t kMaxCredentialFile = 16 * 1024;
inline constexpr size_t kMaxCredentialId = 64;
inline constexpr std::chrono::seconds kDefaultCredentialValidity{30 * 24 * 3600};
inline constexpr std::chrono::seconds kDefaultSessionTokenTtl{300};

// True for a string a credential id may be: 1..kMaxCredentialId base64url characters (safe in a file
// of ids, one per line, and in logs).
bool is_valid_credential_id(std::string_view id);

class Credential {
 public:
  // A new key, id and grant signed by `edge_key`: the agent `name` may publish `hosts` and reach
  // `connect` (patterns as in TokenClaims) until now + valid. Throws std::invalid_argument for a scope
  // a grant cannot hold (bad patterns, over kMaxGrantSize) or `valid` outside [kMinTokenTtl,
  // kMaxTokenLifetime].
  static Credential issue(const SigningKey& edge_key, std::string name, std::vector<std::string> hosts,
                          std::vector<std::string> connect, std::chrono::seconds valid,
                          std::chrono::system_clock::time_point now = std::chrono::system_clock::now());
  // The file's text; nullopt + *why when it is not one (over kMaxCredentialFile, not JSON, members
  // missing, a key that is not P-256, a grant that does not parse or names another key, id or name).
  // The grant's signature is not checked here (only the edge has its key).
  static std::optional<Credential> parse(std::string_view text, std::string* why);
  // parse() of a file; throws std::runtime_error naming the file.
  static Credential load(const std::filesystem::path& file);

  std::string to_json() const;                         // the file's text (ends with a newline)
  void save(const std::filesystem::path& file) const;  // mode 0600, atomic replace

  const std::string& id() const { return claims_.id; }
  const std::string& name() const { return claims_.subject; }
  const TokenClaims& scope() const { return claims_; }  // the grant's claims (hosts, connect, times)
  std::chrono::system_clock::time_point expires_at() const { return claims_.expires_at; }
  const std::string& grant() const { return grant_; }

  // A session token valid from now for `ttl` (cut to the grant's expiry). Throws std::runtime_error
  // when the credential has expired (or has less than a second left) and std::invalid_argument for a
  // ttl outside [kMinTokenTtl, kMaxTokenLifetime].
  std::string mint(std::chrono::seconds ttl,
                   std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;

 private:
  Credential(SigningKey key, std::string grant, TokenClaims claims)
      : key_(std::move(key)), grant_(std::move(grant)), claims_(std::move(claims)) {}
  SigningKey key_;
  std::string grant_;
  TokenClaims claims_;
};

// True when `token`'s header says it is a session token (typ "wtmesh-session"); such tokens go to
// verify_session_token(), every other one to VerifierKeySet::verify().
bool is_session_token(std::string_view token);

// Verifies a session token against the edge's keys (see the top of this file). On success the claims
// are the grant's scope with the token's times and jti, and credential_id set. `max_ttl` is the edge's
// maximum exp - iat; `leeway` (clamped to [0, kMaxLeeway]) absorbs clock skew. Revocation and replay
// are the caller's (they need the edge's state).
VerifyResult verify_session_token(std::string_view token, const VerifierKeySet& edge_keys,
                                  std::chrono::system_clock::time_point now, std::chrono::seconds max_ttl,
                                  std::chrono::seconds leeway = kDefaultLeeway);

}  // namespace wtmesh::tunnel
