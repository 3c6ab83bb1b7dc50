// Token claims: JSON mapping and validation, host patterns and coverage, Bearer and duration parsing.
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <set>
#include <stdexcept>
#include <vector>

#include "common/text.h"
#include "tunnel/base64url.h"
#include "tunnel/claims_json.h"
#include "tunnel/host_pattern.h"
#include "tunnel/token.h"

namespace wtmesh::tunnel {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

constexpr size_t kMaxHostSize = 253;
constexpr size_t kMaxLabelSize = 63;

bool is_ldh_label(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabelSize || label.front() == '-' || label.back() == '-')
    return false;
  return std::all_of(label.begin(), label.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxHostSize) return false;
  std::string_view last;
  size_t start = 0;
  for (;;) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_ldh_label(label)) return false;
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // An all-digit final label is an IPv4 literal, not a name.
  return !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Printable text without control characters (UTF-8 allowed; nlohmann has checked its validity).
bool is_clean_text(std::string_view s, size_t max_size) {
  if (s.empty() || s.size() > max_size) return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace

namespace detail {

int64_t to_numeric_date(Clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Integer NumericDate in [0, kMaxNumericDate); non-integer dates are refused.
std::optional<Clock::time_point> numeric_date(const json& j) {
  int64_t v = 0;
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    if (u >= static_cast<uint64_t>(kMaxNumericDate)) return std::nullopt;
    v = static_cast<int64_t>(u);
  } else if (j.is_number_integer()) {
    v = j.get<int64_t>();
  } else {
    return std::nullopt;
  }
  if (v < 0 || v >= kMaxNumericDate) return std::nullopt;
  return Clock::time_point(std::chrono::seconds(v));
}

std::optional<json> parse_json_object(std::string_view text, std::string* why) {
  // The callback sees every member name; a set per open object catches duplicates at any depth.
  std::vector<std::set<std::string, std::less<>>> open_objects;
  std::string problem;
  auto cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (!problem.empty()) return true;
    if (depth > kMaxJsonDepth)
      problem = "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        if (open_objects.empty() || !parsed.is_string()) break;
        auto& names = open_objects.back();
        const auto& name = parsed.get_ref<const std::string&>();
        if (!names.insert(name).second) problem = "duplicate JSON member \"" + name.substr(0, 32) + "\"";
        break;
      }
      default:
        break;
    }
    return true;
  };
  json j = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *why = "invalid JSON";
    return std::nullopt;
  }
  if (!problem.empty()) {
    *why = problem;
    return std::nullopt;
  }
  if (!j.is_object()) {
    *why = "JSON is not an object";
    return std::nullopt;
  }
  return j;
}

std::string check_claims(const TokenClaims& c) {
  if (!is_clean_text(c.subject, kMaxSubjectSize)) {
    return "sub must be 1.." + std::to_string(kMaxSubjectSize) + " bytes without control characters";
  }
  if (!is_clean_text(c.id, kMaxJtiSize)) {
    return "jti must be 1.." + std::to_string(kMaxJtiSize) + " bytes without control characters";
  }
  if (!is_clean_text(c.audience, kMaxSubjectSize)) return "aud must be a non-empty string";
  if (c.hosts.empty() || c.hosts.size() > kMaxTokenHosts) {
    return "hosts must list 1.." + std::to_string(kMaxTokenHosts) + " names";
  }
  for (const auto& h : c.hosts) {
    if (!is_valid_host_pattern(h))
      return "hosts entry \"" + h.substr(0, 64) + "\" is not a host name or *.wildcard";
  }
  if (c.connect.size() > kMaxTokenHosts) {
    return "connect must list at most " + std::to_string(kMaxTokenHosts) + " names";
  }
  for (const auto& h : c.connect) {
    if (!is_valid_host_pattern(h))
      return "connect entry \"" + h.substr(0, 64) + "\" is not a host name or *.wildcard";
  }
  for (auto t : {c.issued_at, c.not_before, c.expires_at}) {
    int64_t v = to_numeric_date(t);
    if (v < 0 || v >= kMaxNumericDate) return "iat, nbf and exp must be between 1970 and 2242";
  }
  auto iat = to_numeric_date(c.issued_at), nbf = to_numeric_date(c.not_before),
       exp = to_numeric_date(c.expires_at);
  if (exp <= iat || exp <= nbf) return "exp must be after iat and nbf";
  if (exp - iat > kMaxTokenLifetime.count()) return "token lifetime (exp - iat) exceeds 30 days";
  return {};
}

std::string claims_to_json(const TokenClaims& c) {
  if (std::string why = check_claims(c); !why.empty()) throw std::invalid_argument("token claims: " + why);
  json j = {{"sub", c.subject},
            {"aud", c.audience},
            {"iat", to_numeric_date(c.issued_at)},
            {"nbf", to_numeric_date(c.not_before)},
            {"exp", to_numeric_date(c.expires_at)},
            {"jti", c.id},
            {"hosts", c.hosts}};
  if (!c.connect.empty()) j["connect"] = c.connect;  // optional: older edges ignore it
  try {
    return j.dump();
  } catch (const json::exception& e) {  // invalid UTF-8 in a string claim
    throw std::invalid_argument(std::string("token claims: ") + e.what());
  }
}

std::optional<TokenClaims> claims_from_json(const json& p, std::string* why) {
  auto missing = [&](const char* name, const char* type) {
    *why = std::string("claim \"") + name + "\" is missing or not " + type;
    return std::nullopt;
  };
  TokenClaims c;
  auto str = [&](const char* name, std::string* out) {
    auto it = p.find(name);
    if (it == p.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  if (!str("sub", &c.subject)) return missing("sub", "a string");
  if (!str("aud", &c.audience)) return missing("aud", "a string");
  if (!str("jti", &c.id)) return missing("jti", "a string");
  struct DateClaim {
    const char* name;
    Clock::time_point* out;
  };
  for (auto [name, out] :
       {DateClaim{"iat", &c.issued_at}, DateClaim{"nbf", &c.not_before}, DateClaim{"exp", &c.expires_at}}) {
    auto it = p.find(name);
    if (it == p.end()) return missing(name, "an integer NumericDate");
    auto t = numeric_date(*it);
    if (!t) return missing(name, "an integer NumericDate in range");
    *out = *t;
  }
  auto hosts = p.find("hosts");
  if (hosts == p.end() || !hosts->is_array()) return missing("hosts", "an array of strings");
  if (hosts->size() > kMaxTokenHosts) {
    *why = "hosts lists more than " + std::to_string(kMaxTokenHosts) + " names";
    return std::nullopt;
  }
  for (const auto& h : *hosts) {
    if (!h.is_string()) return missing("hosts", "an array of strings");
    c.hosts.push_back(h.get<std::string>());
  }
  if (auto connect = p.find("connect"); connect != p.end()) {
    if (!connect->is_array()) return missing("connect", "an array of strings");
    if (connect->size() > kMaxTokenHosts) {
      *why = "connect lists more than " + std::to_string(kMaxTokenHosts) + " names";
      return std::nullopt;
    }
    for (const auto& h : *connect) {
      if (!h.is_string()) return missing("connect", "an array of strings");
      c.connect.push_back(h.get<std::string>());
    }
  }
  if (std::string problem = check_claims(c); !problem.empty()) {
    *why = problem;
    return std::nullopt;
  }
  return c;
}

}  // namespace detail

TokenClaims make_claims(std::string subject, std::vector<std::string> hosts, std::chrono::seconds ttl,
                        Clock::time_point now) {
  if (ttl < kMinTokenTtl || ttl > kMaxTokenLifetime)
    throw std::invalid_argument("token ttl must be 10s..30d");
  std::array<uint8_t, 16> jti{};
  if (int rv = gnutls_rnd(GNUTLS_RND_NONCE, jti.data(), jti.size()); rv < 0) {
    throw std::runtime_error(std::string("gnutls_rnd: ") + gnutls_strerror(rv));
  }
  auto t = Clock::time_point(std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()));
  TokenClaims c;
  c.subject = std::move(subject);
  c.hosts = std::move(hosts);
  c.issued_at = t;
  c.not_before = t;
  c.expires_at = t + ttl;
  c.audience = std::string(kTokenAudience);
  c.id = base64url_encode(jti);
  return c;
}

bool is_valid_host_pattern(std::string_view pattern, bool allow_wildcard) {
  if (allow_wildcard && pattern.starts_with("*.")) pattern.remove_prefix(2);
  return is_dns_name(pattern);
}

namespace {

bool patterns_cover(const std::vector<std::string>& patterns, std::string_view host) {
  if (!is_valid_host_pattern(host, /*allow_wildcard=*/false)) return false;
  for (std::string_view p : patterns) {
    if (p.starts_with("*.")) {
      if (const auto parent = wildcard_parent(host); parent && iequals(*parent, p.substr(2))) return true;
    } else if (iequals(host, p)) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool token_covers_host(const TokenClaims& claims, std::string_view host) {
  return patterns_cover(claims.hosts, host);
}

bool token_may_connect(const TokenClaims& claims, std::string_view name) {
  return patterns_cover(claims.connect, name);
}

int tunnel_auth_status(const VerifyResult* result, std::string_view host) {
  if (result == nullptr || !result->ok()) return 401;
  return token_covers_host(result->claims(), host) ? 200 : 403;
}

std::optional<std::string_view> parse_bearer(std::string_view v) {
  auto is_ws = [](char c) { return c == ' ' || c == '\t'; };
  while (!v.empty() && is_ws(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_ws(v.back())) v.remove_suffix(1);
  constexpr std::string_view kScheme = "bearer";
  if (v.size() <= kScheme.size() || !iequals(v.substr(0, kScheme.size()), kScheme) ||
      v[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  size_t body = v.find_last_not_of('=');
  if (v.empty() || body == std::string_view::npos) return std::nullopt;
  for (size_t i = 0; i <= body; ++i) {
    char c = v[i];
    if (!(is_base64url_char(c) || c == '.' || c == '~' || c == '+' || c == '/')) return std::nullopt;
  }
  return v;
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text.size() < 2 || text.size() > 10) return std::nullopt;
  int64_t unit = 0;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return std::nullopt;
  }
  std::string_view digits = text.substr(0, text.size() - 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  std::chrono::seconds d(n * unit);  // at most 9 digits * 86400: no overflow
  if (d < kMinTokenTtl || d > kMaxTokenLifetime) return std::nullopt;
  return d;
}

}  // namespace wtmesh::tunnel
