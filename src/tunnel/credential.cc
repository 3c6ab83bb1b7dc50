// Agent credentials: issuing, the file format, minting session tokens and verifying them (see
// credential.h for the design).
#include "tunnel/credential.h"

#include <gnutls/crypto.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "common/files.h"
#include "tunnel/base64url.h"
#include "tunnel/claims_json.h"
#include "tunnel/verify_util.h"

namespace wtmesh::tunnel {

using detail::fail;
using detail::seconds_text;
namespace {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

constexpr size_t kMaxPemSize = 1024;  // a P-256 key in PEM is ~250 bytes

std::string random_id(size_t bytes) {
  std::array<uint8_t, 32> b{};
  bytes = std::min(bytes, b.size());
  if (int rv = gnutls_rnd(GNUTLS_RND_NONCE, b.data(), bytes); rv < 0) {
    throw std::runtime_error(std::string("gnutls_rnd: ") + gnutls_strerror(rv));
  }
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(b.data()), bytes));
}

Clock::time_point whole_seconds(Clock::time_point t) {
  return Clock::time_point(std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()));
}

// A compact JWS cut in its three parts, the header decoded and parsed.
struct Jws {
  std::string_view signing_input;  // "header.payload"
  std::string_view payload_b64;
  std::string_view signature_b64;
  json header;
};

std::optional<Jws> split_jws(std::string_view token, size_t max_size, std::string* why) {
  if (token.size() > max_size) {
    *why = "longer than " + std::to_string(max_size) + " bytes";
    return std::nullopt;
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    *why = "not three dot-separated parts (compact JWS)";
    return std::nullopt;
  }
  auto header_text = base64url_decode(token.substr(0, dot1), max_size);
  if (!header_text) {
    *why = "header is not canonical base64url";
    return std::nullopt;
  }
  auto header = detail::parse_json_object(*header_text, why);
  if (!header) {
    *why = "header: " + *why;
    return std::nullopt;
  }
  return Jws{token.substr(0, dot2), token.substr(dot1 + 1, dot2 - dot1 - 1), token.substr(dot2 + 1),
             std::move(*header)};
}

const std::string* string_member(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

bool has_typ(const json& header, std::string_view typ) {
  const std::string* t = string_member(header, "typ");
  return t != nullptr && *t == typ;
}

// The grant's claims and the agent key it names, without checking its signature or times.
struct ParsedGrant {
  TokenClaims claims;
  es256::PublicKey key;
  std::string kid;  // the edge key that signed it
  Jws jws;
};

std::optional<ParsedGrant> parse_grant(std::string_view grant, std::string* why) {
  auto jws = split_jws(grant, kMaxGrantSize, why);
  if (!jws) return std::nullopt;
  const std::string* alg = string_member(jws->header, "alg");
  const std::string* kid = string_member(jws->header, "kid");
  if (alg == nullptr || *alg != "ES256" || !has_typ(jws->header, kGrantType) || kid == nullptr ||
      !es256::is_valid_kid(*kid) || jws->header.contains("crit")) {
    *why = "header is not {alg ES256, typ wtmesh-grant, kid}";
    return std::nullopt;
  }
  auto payload_text = base64url_decode(jws->payload_b64, kMaxGrantSize);
  if (!payload_text) {
    *why = "payload is not canonical base64url";
    return std::nullopt;
  }
  auto payload = detail::parse_json_object(*payload_text, why);
  if (!payload) return std::nullopt;
  auto claims = detail::claims_from_json(*payload, why);
  if (!claims) return std::nullopt;
  if (claims->audience != kGrantType) {
    *why = "audience is not wtmesh-grant";
    return std::nullopt;
  }
  if (!is_valid_credential_id(claims->id)) {
    *why = "jti is not a credential id";
    return std::nullopt;
  }
  const std::string* cnf = string_member(*payload, "cnf");
  if (cnf == nullptr || cnf->size() > kMaxPemSize) {
    *why = "no cnf (the agent's public key)";
    return std::nullopt;
  }
  auto key = es256::PublicKey::from_pem(*cnf, why);
  if (!key) {
    *why = "cnf: " + *why;
    return std::nullopt;
  }
  return ParsedGrant{std::move(*claims), std::move(*key), *kid, std::move(*jws)};
}

}  // namespace

bool is_valid_credential_id(std::string_view id) {
  return !id.empty() && id.size() <= kMaxCredentialId && std::all_of(id.begin(), id.end(), is_base64url_char);
}

Credential Credential::issue(const SigningKey& edge_key, std::string name, std::vector<std::string> hosts,
                             std::vector<std::string> connect, std::chrono::seconds valid,
                             Clock::time_point now) {
  SigningKey agent_key = SigningKey::generate();
  TokenClaims c = make_claims(std::move(name), std::move(hosts), valid, now);  // checks `valid`
  c.audience = std::string(kGrantType);
  c.id = random_id(16);
  c.connect = std::move(connect);
  json payload = json::parse(detail::claims_to_json(c));  // checks the claims
  payload["cnf"] = agent_key.public_pem();
  const json header = {{"alg", "ES256"}, {"typ", std::string(kGrantType)}, {"kid", edge_key.kid()}};
  std::string grant = edge_key.sign_jws(header.dump(), payload.dump());
  if (grant.size() > kMaxGrantSize) {
    throw std::invalid_argument("the grant would be " + std::to_string(grant.size()) + " bytes, over the " +
                                std::to_string(kMaxGrantSize) + "-byte limit (too many or too long names)");
  }
  return Credential(std::move(agent_key), std::move(grant), std::move(c));
}

std::optional<Credential> Credential::parse(std::string_view text, std::string* why) {
  if (text.size() > kMaxCredentialFile) {
    *why = "larger than " + std::to_string(kMaxCredentialFile) + " bytes";
    return std::nullopt;
  }
  auto j = detail::parse_json_object(text, why);
  if (!j) return std::nullopt;
  auto version = j->find("wtmesh_credential");
  if (version == j->end() || !version->is_number_unsigned() || version->get<uint64_t>() != 1) {
    *why = "not a wtmesh credential (version 1)";
    return std::nullopt;
  }
  const std::string* id = string_member(*j, "id");
  const std::string* name = string_member(*j, "name");
  const std::string* pem = string_member(*j, "key");
  const std::string* grant = string_member(*j, "grant");
  if (!id || !name || !pem || !grant) {
    *why = "id, name, key and grant must all be strings";
    return std::nullopt;
  }
  if (pem->size() > kMaxPemSize * 2) {
    *why = "key is too long for a P-256 key";
    return std::nullopt;
  }
  std::optional<SigningKey> key;
  try {
    key.emplace(SigningKey::from_pem(*pem));
  } catch (const std::exception& e) {
    *why = std::string("key: ") + e.what();
    return std::nullopt;
  }
  auto g = parse_grant(*grant, why);
  if (!g) {
    *why = "grant: " + *why;
    return std::nullopt;
  }
  if (g->key.kid() != key->kid()) {
    *why = "the grant is for another key";
    return std::nullopt;
  }
  if (g->claims.id != *id || g->claims.subject != *name) {
    *why = "the grant is for another id or name";
    return std::nullopt;
  }
  return Credential(std::move(*key), *grant, std::move(g->claims));
}

Credential Credential::load(const std::filesystem::path& file) {
  auto text = files::read_small_file(file, kMaxCredentialFile + 1);
  if (!text) throw std::runtime_error(file.string() + ": no such file");
  std::string why;
  auto c = parse(*text, &why);
  if (!c) throw std::runtime_error(file.string() + ": " + why);
  return std::move(*c);
}

std::string Credential::to_json() const {
  const json j = {{"wtmesh_credential", 1},
                  {"id", id()},
                  {"name", name()},
                  {"key", key_.private_pem()},
                  {"grant", grant_}};
  return j.dump(2) + "\n";
}

void Credential::save(const std::filesystem::path& file) const {
  files::write_file_atomic(file, to_json(), 0600);
}

std::string Credential::mint(std::chrono::seconds ttl, Clock::time_point now) const {
  if (ttl < kMinTokenTtl || ttl > kMaxTokenLifetime)
    throw std::invalid_argument("session token ttl must be 10s..30d");
  const Clock::time_point iat = whole_seconds(now);
  const Clock::time_point exp = std::min(iat + ttl, claims_.expires_at);
  if (exp - iat < std::chrono::seconds(1)) {
    throw std::runtime_error("the credential " + id() + " has expired");
  }
  const json header = {{"alg", "ES256"}, {"typ", std::string(kSessionTokenType)}, {"grant", grant_}};
  const json payload = {{"sub", name()},
                        {"aud", std::string(kTokenAudience)},
                        {"iat", detail::to_numeric_date(iat)},
                        {"nbf", detail::to_numeric_date(iat)},
                        {"exp", detail::to_numeric_date(exp)},
                        {"jti", random_id(16)},
                        {"cid", id()}};
  return key_.sign_jws(header.dump(), payload.dump());
}

bool is_session_token(std::string_view token) {
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos || token.size() > kMaxTokenSize) return false;
  auto header_text = base64url_decode(token.substr(0, dot), kMaxTokenSize);
  if (!header_text) return false;
  std::string why;
  auto header = detail::parse_json_object(*header_text, &why);
  return header && has_typ(*header, kSessionTokenType);
}

VerifyResult verify_session_token(std::string_view token, const VerifierKeySet& edge_keys,
                                  Clock::time_point now, std::chrono::seconds max_ttl,
                                  std::chrono::seconds leeway) {
  leeway = std::clamp(leeway, std::chrono::seconds(0), kMaxLeeway);
  std::string why;
  auto jws = split_jws(token, kMaxTokenSize, &why);
  if (!jws) return fail(TokenError::kMalformed, "session token: " + why);
  const std::string* alg = string_member(jws->header, "alg");
  if (alg == nullptr) return fail(TokenError::kMalformed, "session token header has no alg string");
  if (*alg != "ES256") return fail(TokenError::kUnsupportedAlg, "session token alg is not ES256");
  if (!has_typ(jws->header, kSessionTokenType) || jws->header.contains("crit"))
    return fail(TokenError::kMalformed, "session token header is not typ wtmesh-session without crit");
  const std::string* grant_text = string_member(jws->header, "grant");
  if (grant_text == nullptr) return fail(TokenError::kMalformed, "session token header has no grant");

  // 1. The grant, with the edge's key, before anything in it is believed.
  auto grant = parse_grant(*grant_text, &why);
  if (!grant) return fail(TokenError::kMalformed, "grant: " + why);
  const es256::PublicKey* edge_key = edge_keys.find(grant->kid);
  if (edge_key == nullptr)
    return fail(TokenError::kUnknownKey, "grant key " + grant->kid + " is not accepted here");
  auto grant_sig = base64url_decode(grant->jws.signature_b64, kMaxGrantSize);
  if (!grant_sig || grant_sig->size() != es256::kSignatureSize ||
      !edge_key->verify(grant->jws.signing_input, *grant_sig)) {
    return fail(TokenError::kBadSignature, "grant signature does not verify with key " + grant->kid);
  }
  const TokenClaims& g = grant->claims;
  if (now < g.not_before - leeway) return fail(TokenError::kNotYetValid, "the credential is not valid yet");
  if (now >= g.expires_at + leeway) {
    return fail(TokenError::kExpired,
                "the credential " + g.id + " expired " + seconds_text(now - g.expires_at) + " ago");
  }

  // 2. The session token's signature, with the agent key the grant names.
  auto sig = base64url_decode(jws->signature_b64, kMaxTokenSize);
  if (!sig || sig->size() != es256::kSignatureSize || !grant->key.verify(jws->signing_input, *sig)) {
    return fail(TokenError::kBadSignature, "session token signature does not verify with credential " + g.id);
  }

  // 3. Its claims.
  auto payload_text = base64url_decode(jws->payload_b64, kMaxTokenSize);
  if (!payload_text) return fail(TokenError::kMalformed, "session token payload is not canonical base64url");
  auto payload = detail::parse_json_object(*payload_text, &why);
  if (!payload) return fail(TokenError::kMalformed, "session token payload: " + why);
  const std::string* sub = string_member(*payload, "sub");
  const std::string* aud = string_member(*payload, "aud");
  const std::string* jti = string_member(*payload, "jti");
  const std::string* cid = string_member(*payload, "cid");
  if (!sub || !aud || !jti || !cid)
    return fail(TokenError::kMalformed, "session token: sub, aud, jti, cid must be strings");
  if (*sub != g.subject || *cid != g.id)
    return fail(TokenError::kMalformed, "session token is not for the credential of its grant");
  if (jti->empty() || jti->size() > kMaxJtiSize || !std::all_of(jti->begin(), jti->end(), is_base64url_char))
    return fail(TokenError::kMalformed, "session token jti is not 1..128 base64url characters");
  std::optional<Clock::time_point> times[3];
  const char* names[3] = {"iat", "nbf", "exp"};
  for (int i = 0; i < 3; ++i) {
    auto it = payload->find(names[i]);
    if (it != payload->end()) times[i] = detail::numeric_date(*it);
    if (!times[i])
      return fail(TokenError::kMalformed, std::string("session token ") + names[i] + " is not a NumericDate");
  }
  const auto iat = *times[0], nbf = *times[1], exp = *times[2];
  if (*aud != kTokenAudience)
    return fail(TokenError::kWrongAudience, "session token audience is not wtmesh-edge");
  if (exp <= iat || exp <= nbf)
    return fail(TokenError::kMalformed, "session token exp is not after iat and nbf");
  if (exp - iat > max_ttl) {
    return fail(TokenError::kMalformed, "session token lifetime " + seconds_text(exp - iat) +
                                            " is over this edge's maximum of " + seconds_text(max_ttl));
  }
  if (exp > g.expires_at) return fail(TokenError::kMalformed, "session token outlives its credential");
  if (now < nbf - leeway || iat > now + leeway)
    return fail(TokenError::kNotYetValid, "session token is not valid yet");
  if (now >= exp + leeway) {
    return fail(TokenError::kExpired, "session token expired " + seconds_text(now - exp) + " ago");
  }
  TokenClaims claims = g;
  claims.audience = *aud;
  claims.issued_at = iat;
  claims.not_before = nbf;
  claims.expires_at = exp;
  claims.id = *jti;
  claims.credential_id = g.id;
  return VerifyResult::success(std::move(claims), grant->kid);
}

}  // namespace wtmesh::tunnel
