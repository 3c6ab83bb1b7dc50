#include "edge/visitor_gate.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>

namespace wtmesh::edge {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

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

void VisitorGate::strip_authorization(tunnel::HeaderPairs& headers) {
  std::erase_if(headers, [](const auto& field) { return iequals(field.first, "authorization"); });
}

std::string VisitorGate::challenge(std::string_view host) {
  std::string realm;
  for (const char c : host.substr(0, 253)) {
    if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) realm += c;
  }
  return "Basic realm=\"" + realm + "\", charset=\"UTF-8\"";
}

VisitorGate::Decision VisitorGate::check(std::string_view client_ip, const tunnel::HeaderPairs& headers,
                                         SteadyTime now) {
  Decision d;
  for (const auto& r : policy_.deny) {
    if (tunnel::cidr_contains(r, client_ip)) {
      d.verdict = Verdict::kForbidden;
      d.detail = "Your address is not allowed to reach this tunnel.";
      return d;
    }
  }
  if (!policy_.allow.empty() &&
      std::none_of(policy_.allow.begin(), policy_.allow.end(),
                   [&](const tunnel::CidrRange& r) { return tunnel::cidr_contains(r, client_ip); })) {
    d.verdict = Verdict::kForbidden;
    d.detail = "Your address is not allowed to reach this tunnel.";
    return d;
  }
  if (policy_.basic.empty()) return d;
  std::string_view authorization;
  size_t fields = 0;
  for (const auto& [name, value] : headers) {
    if (!iequals(name, "authorization")) continue;
    ++fields;
    authorization = value;
  }
  if (fields == 1 && basic_ok(authorization, now)) {
    d.strip_authorization = true;
    return d;
  }
  d.verdict = Verdict::kUnauthorized;
  d.detail =
      fields == 0 ? "This tunnel needs a user name and password." : "The user name or password is wrong.";
  return d;
}

bool VisitorGate::basic_ok(std::string_view authorization, SteadyTime now) {
  // "Basic" 1*SP token68 (RFC 7617), the scheme case-insensitive.
  if (authorization.size() < 6 || !iequals(authorization.substr(0, 5), "basic") || authorization[5] != ' ')
    return false;
  std::string_view b64 = authorization.substr(6);
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  std::array<uint8_t, 32> key{};
  gnutls_hash_fast(GNUTLS_DIG_SHA256, authorization.data(), authorization.size(), key.data());
  if (auto it = remembered_.find(key); it != remembered_.end()) {
    if (now < it->second) return true;
    remembered_.erase(it);
  }
  const auto decoded = base64_decode(b64);
  if (!decoded) return false;
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return false;
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
    return false;
  }
  {
    const tunnel::BasicCredential& c = *match;
    if (!tunnel::basic_password_matches(c, password)) return false;
    if (remembered_.size() >= kRemembered) {
      // Full: drop the entry that expires first (the oldest remembered).
      auto oldest = std::min_element(remembered_.begin(), remembered_.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
      remembered_.erase(oldest);
    }
    remembered_[key] = now + kRememberFor;
    return true;
  }
}

}  // namespace wtmesh::edge
