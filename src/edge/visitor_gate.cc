#include "edge/visitor_gate.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/text.h"
#include "edge/metrics.h"

namespace wtmesh::edge {

namespace {

// Standard base64 (RFC 4648 §4, with padding) as browsers send it in Basic credentials; nullopt when
// malformed. At most 1 KiB in.
std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() > 1024) return std::nullopt;
  gnutls_datum_t b64{reinterpret_cast<unsigned char*>(const_cast<char*>(in.data())),
                     static_cast<unsigned>(in.size())};
  gnutls_datum_t out{nullptr, 0};
  if (gnutls_base64_decode2(&b64, &out) != 0) return std::nullopt;
  std::string s(reinterpret_cast<const char*>(out.data), out.size);
  gnutls_free(out.data);
  return s;
}

}  // namespace

VisitorGate::VisitorGate(tunnel::VisitorPolicy policy, std::shared_ptr<VisitorEnvironment> env)
    : policy_(std::move(policy)), env_(std::move(env)) {
  for (const auto& pem : policy_.token_keys) {
    try {
      token_keys_.add_pem(pem);
    } catch (const std::exception&) {
      // decode_visitor_policy checked each; a key that still fails lets no token in.
    }
  }
}

void VisitorGate::strip_authorization(tunnel::HeaderPairs& headers) {
  std::erase_if(headers, [](const auto& field) { return iequals(field.first, "authorization"); });
}

void VisitorGate::apply(const Decision& d, tunnel::HeaderPairs& headers, std::string& target) {
  if (d.strip_authorization) strip_authorization(headers);
  if (d.strip_cookie) strip_pass_cookie(headers);
  if (d.target) target = *d.target;
}

std::string VisitorGate::challenge(std::string_view host) const {
  std::string realm;
  for (const char c : host.substr(0, 253)) {
    if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) realm += c;
  }
  if (policy_.basic.empty()) return "Bearer realm=\"" + realm + "\"";
  return "Basic realm=\"" + realm + "\", charset=\"UTF-8\"";
}

VisitorGate::Decision VisitorGate::refuse(Verdict v, std::string detail, const VisitorRequest& r) {
  (void)r;
  if (env_->metrics != nullptr) {
    switch (v) {
      case Verdict::kForbidden:
        env_->metrics->on_visitor_refused(VisitorRefusal::kForbidden);
        break;
      case Verdict::kUnauthorized:
        env_->metrics->on_visitor_refused(VisitorRefusal::kUnauthorized);
        break;
      case Verdict::kRateLimited:
        env_->metrics->on_visitor_refused(VisitorRefusal::kRateLimited);
        break;
      case Verdict::kChallenge:
        env_->metrics->on_visitor_refused(VisitorRefusal::kChallenged);
        break;
      default:
        break;
    }
  }
  Decision d;
  d.verdict = v;
  d.detail = std::move(detail);
  return d;
}

VisitorGate::Decision VisitorGate::check(const VisitorRequest& r, SteadyTime now,
                                         std::chrono::system_clock::time_point wall) {
  for (const auto& range : policy_.deny) {
    if (tunnel::cidr_contains(range, r.client_ip))
      return refuse(Verdict::kForbidden, "Your address is not allowed to reach this tunnel.", r);
  }
  if (!policy_.allow.empty() &&
      std::none_of(policy_.allow.begin(), policy_.allow.end(), [&](const tunnel::CidrRange& range) {
        return tunnel::cidr_contains(range, r.client_ip);
      })) {
    return refuse(Verdict::kForbidden, "Your address is not allowed to reach this tunnel.", r);
  }
  const std::string key(r.limit_key.empty() ? r.client_ip : r.limit_key);
  const std::string_view path = r.target.substr(0, r.target.find('?'));

  // A challenge answered: kChallengePath?n=NONCE&s=SOLUTION&r=RETURN.
  if (policy_.challenge && path == kChallengePath && (r.method == "GET" || r.method == "HEAD")) {
    const auto n = query_parameter(r.target, "n");
    const auto s = query_parameter(r.target, "s");
    const auto back = query_parameter(r.target, "r");
    if (r.target.size() > kMaxChallengeQuery || !n || !s || !env_->key.nonce_ok(*n, r.host, wall) ||
        !work_ok(*n, *s, env_->challenge_bits)) {
      return refuse(Verdict::kForbidden, "The browser check failed or expired: reload the page to try again.",
                    r);
    }
    Decision d;
    d.verdict = Verdict::kPassed;
    d.location = safe_return_path(back ? *back : "/");
    d.set_cookie =
        ChallengeKey::set_cookie(env_->key.pass(r.host, wall, env_->pass_lifetime), env_->pass_lifetime);
    return d;
  }

  // Credentials: Authorization (Basic or Bearer) and the wtmesh_token query parameter, read only when
  // the tunnel takes that kind (else they are the service's).
  const bool takes_credentials = !policy_.basic.empty() || !policy_.token_keys.empty();
  Decision d;
  Credential found = Credential::kNone;
  if (takes_credentials) {
    std::string_view authorization;
    size_t fields = 0;
    for (const auto& [name, value] : r.headers) {
      if (!iequals(name, "authorization")) continue;
      ++fields;
      authorization = value;
    }
    std::string rest;
    std::optional<std::string> query_token;
    if (!policy_.token_keys.empty() && r.target.find(kTokenParameter) != std::string_view::npos) {
      query_token = query_parameter(r.target, kTokenParameter, &rest);
      if (query_token) d.target = rest;
    }
    if (fields > 0 || query_token) {
      if (!env_->failures->allowed(key, now))
        return refuse(Verdict::kRateLimited,
                      "Too many wrong credentials from your address: wait a little and try again.", r);
      found = fields > 1 ? Credential::kWrong : Credential::kNone;
      if (fields == 1) {
        const auto bearer = tunnel::parse_bearer(authorization);
        if (bearer && !policy_.token_keys.empty()) {
          found = token(*bearer, r.host, wall);
        } else if (!policy_.basic.empty()) {
          found = basic(authorization, now);
        } else {
          found = Credential::kWrong;
        }
        d.strip_authorization = found == Credential::kValid;
      }
      if (found != Credential::kValid && query_token) found = token(*query_token, r.host, wall);
      if (found == Credential::kWrong) {
        if (env_->failures->on_failure(key, now)) {
          spdlog::warn(
              "visitor auth: {} ran out of attempts ({} wrong credentials at once); it gets 429 "
              "for a while",
              key, env_->failures->limits().burst);
        }
        return refuse(Verdict::kUnauthorized,
                      policy_.token_keys.empty() ? "The user name or password is wrong."
                      : policy_.basic.empty()    ? "The visitor token is wrong, expired or not for this host."
                                                 : "The credentials are wrong or expired.",
                      r);
      }
      if (found == Credential::kValid) {
        if (policy_.challenge) d.strip_cookie = true;
        return d;
      }
    }
  }
  if (policy_.challenge) {
    d.strip_cookie = true;
    for (const auto value : pass_cookies(r.headers)) {
      if (env_->key.pass_ok(value, r.host, wall)) return d;
    }
    if (wants_html(r.method, r.headers)) {
      Decision c = refuse(Verdict::kChallenge, "the browser check", r);
      c.page = challenge_page(env_->key.nonce(r.host, wall), env_->challenge_bits);
      return c;
    }
    return refuse(Verdict::kForbidden,
                  takes_credentials ? "This site checks browsers: open it in a browser first, or bring a "
                                      "visitor token or password."
                                    : "This site checks browsers: open it in a browser first.",
                  r);
  }
  if (policy_.requires_credentials()) {
    return refuse(Verdict::kUnauthorized,
                  policy_.basic.empty() ? "This tunnel needs a visitor token."
                  : policy_.token_keys.empty()
                      ? "This tunnel needs a user name and password."
                      : "This tunnel needs a user name and password or a visitor token.",
                  r);
  }
  return d;
}

VisitorGate::Credential VisitorGate::token(std::string_view token, std::string_view host,
                                           std::chrono::system_clock::time_point wall) {
  if (policy_.token_keys.empty()) return Credential::kWrong;
  ++token_checks_;
  const auto result = token_keys_.verify(token, wall, tunnel::kDefaultLeeway, tunnel::kVisitorAudience);
  if (!result.ok() || !tunnel::token_covers_host(result.claims(), host)) return Credential::kWrong;
  return Credential::kValid;
}

VisitorGate::Credential VisitorGate::basic(std::string_view authorization, SteadyTime now) {
  // "Basic" 1*SP token68 (RFC 7617), the scheme case-insensitive.
  if (authorization.size() < 6 || !iequals(authorization.substr(0, 5), "basic") || authorization[5] != ' ')
    return Credential::kWrong;
  std::string_view b64 = authorization.substr(6);
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  std::array<uint8_t, 32> key{};
  gnutls_hash_fast(GNUTLS_DIG_SHA256, authorization.data(), authorization.size(), key.data());
  if (auto it = remembered_.find(key); it != remembered_.end()) {
    if (now < it->second) return Credential::kValid;
    remembered_.erase(it);
  }
  const auto decoded = base64_decode(b64);
  if (!decoded) return Credential::kWrong;
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return Credential::kWrong;
  const std::string_view user = std::string_view(*decoded).substr(0, colon);
  const std::string_view password = std::string_view(*decoded).substr(colon + 1);
  const tunnel::BasicCredential* match = nullptr;
  for (const auto& c : policy_.basic) {
    if (c.user == user) match = &c;
  }
  ++password_checks_;
  if (match == nullptr) {
    // An unknown user costs the same as a wrong password: the time does not tell which users exist.
    tunnel::basic_password_matches(policy_.basic.front(), password);
    return Credential::kWrong;
  }
  if (!tunnel::basic_password_matches(*match, password)) return Credential::kWrong;
  if (remembered_.size() >= kRemembered) {
    // Full: drop the entry that expires first (the oldest remembered).
    auto oldest = std::min_element(remembered_.begin(), remembered_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    remembered_.erase(oldest);
  }
  remembered_[key] = now + kRememberFor;
  return Credential::kValid;
}

}  // namespace wtmesh::edge
