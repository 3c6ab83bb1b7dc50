// Internal to the tunnel library: TokenClaims <-> JWT JSON and the strict JSON object parser that
// token.cc uses for headers and payloads.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "tunnel/token.h"

namespace wtmesh::tunnel::detail {

inline constexpr int kMaxJsonDepth = 16;
inline constexpr int64_t kMaxNumericDate = int64_t{1} << 33;  // ~year 2242; fits system_clock's nanoseconds

// A JSON object; nullopt + *why for invalid JSON/UTF-8, a non-object, a duplicate member name at any
// level, or nesting deeper than kMaxJsonDepth.
std::optional<nlohmann::json> parse_json_object(std::string_view text, std::string* why);

// An integer NumericDate in [0, kMaxNumericDate); nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> numeric_date(const nlohmann::json& j);
int64_t to_numeric_date(std::chrono::system_clock::time_point t);

// Empty when sign() and verify() accept these claims, else the reason (one sentence).
std::string check_claims(const TokenClaims& claims);

// JWT payload JSON for `claims` (whole seconds). Throws std::invalid_argument when check_claims fails.
std::string claims_to_json(const TokenClaims& claims);

// Claims from a parsed payload object: all of sub, aud, iat, nbf, exp, jti, hosts must be present with
// their exact types and check_claims must pass; otherwise nullopt + *why. The aud value is not checked.
std::optional<TokenClaims> claims_from_json(const nlohmann::json& payload, std::string* why);

}  // namespace wtmesh::tunnel::detail
