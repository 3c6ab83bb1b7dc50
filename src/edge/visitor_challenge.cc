#include "edge/visitor_challenge.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <vector>

#include "common/text.h"
#include "tunnel/base64url.h"

namespace wtmesh::edge {

namespace {

bool same(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int64_t unix_seconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::optional<int64_t> parse_seconds(std::string_view s) {
  if (s.empty() || s.size() > 12) return std::nullopt;
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int h = hex(in[i + 1]), l = hex(in[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      out += static_cast<char>(h * 16 + l);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

}  // namespace

ChallengeKey::ChallengeKey() {
  if (gnutls_rnd(GNUTLS_RND_KEY, secret_.data(), secret_.size()) != 0)
    throw std::runtime_error("cannot draw the challenge secret");
}

std::string ChallengeKey::mac(std::string_view what, std::string_view host, std::string_view rest) const {
  std::string text;
  text.append(what).append("|").append(host).append("|").append(rest);
  std::array<uint8_t, 32> out{};
  gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret_.data(), secret_.size(), text.data(), text.size(), out.data());
  return tunnel::base64url_encode(out);
}

std::string ChallengeKey::pass(std::string_view host, WallTime now, std::chrono::seconds lifetime) const {
  const std::string expiry = std::to_string(unix_seconds(now) + lifetime.count());
  return "v1." + expiry + "." + mac("pass", host, expiry);
}

std::string ChallengeKey::set_cookie(std::string_view value, std::chrono::seconds lifetime) {
  return std::string(kPassCookie) + "=" + std::string(value) +
         "; Path=/; Max-Age=" + std::to_string(lifetime.count()) + "; HttpOnly; Secure; SameSite=Lax";
}

bool ChallengeKey::pass_ok(std::string_view value, std::string_view host, WallTime now) const {
  if (value.size() > 128 || !value.starts_with("v1.")) return false;
  value.remove_prefix(3);
  const size_t dot = value.find('.');
  if (dot == std::string_view::npos) return false;
  const auto expiry = parse_seconds(value.substr(0, dot));
  if (!expiry || *expiry <= unix_seconds(now)) return false;
  return same(value.substr(dot + 1), mac("pass", host, value.substr(0, dot)));
}

std::string ChallengeKey::nonce(std::string_view host, WallTime now) const {
  std::array<uint8_t, 12> r{};
  if (gnutls_rnd(GNUTLS_RND_NONCE, r.data(), r.size()) != 0) throw std::runtime_error("gnutls_rnd failed");
  const std::string body =
      std::to_string(unix_seconds(now) + kNonceLifetime.count()) + "." + tunnel::base64url_encode(r);
  return body + "." + mac("nonce", host, body);
}

bool ChallengeKey::nonce_ok(std::string_view nonce, std::string_view host, WallTime now) const {
  if (nonce.size() > 128) return false;
  const size_t dot1 = nonce.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : nonce.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return false;
  const auto expiry = parse_seconds(nonce.substr(0, dot1));
  if (!expiry || *expiry <= unix_seconds(now) || *expiry > unix_seconds(now) + kNonceLifetime.count())
    return false;
  return same(nonce.substr(dot2 + 1), mac("nonce", host, nonce.substr(0, dot2)));
}

bool work_ok(std::string_view nonce, std::string_view solution, unsigned bits) {
  if (solution.empty() || solution.size() > 20 || nonce.size() > 128 || bits > kMaxChallengeBits)
    return false;
  if (!std::all_of(solution.begin(), solution.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  std::string text(nonce);
  text.append(":").append(solution);
  std::array<uint8_t, 32> d{};
  gnutls_hash_fast(GNUTLS_DIG_SHA256, text.data(), text.size(), d.data());
  for (unsigned i = 0; i < bits; ++i) {
    if ((d[i / 8] >> (7 - i % 8)) & 1) return false;
  }
  return true;
}

std::string solve_work(std::string_view nonce, unsigned bits) {
  for (uint64_t i = 0;; ++i) {
    const std::string s = std::to_string(i);
    if (work_ok(nonce, s, bits)) return s;
  }
}

std::string challenge_page(std::string_view nonce, unsigned bits) {
  // The nonce is base64url, digits and dots: nothing in it needs escaping in HTML or a JS string.
  std::string page = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>Checking your browser</title>
<style>body{font:16px system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#222}</style>
</head><body><h1>One moment&hellip;</h1>
<p id="msg">Your browser is doing a little work before the site opens (this keeps scripted abuse away).</p>
<noscript><p>This site needs JavaScript for this check.</p></noscript>
<script>
(async () => {
  const nonce = ")";
  page += nonce;
  page += R"(", bits = )";
  page += std::to_string(bits);
  page += R"(;
  const enc = new TextEncoder();
  const zeros = (d) => { let n = 0; for (const b of d) { if (b === 0) { n += 8; continue; }
    return n + Math.clz32(b) - 24; } return n; };
  for (let i = 0; ; i++) {
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(nonce + ":" + i)));
    if (zeros(d) >= bits) {
      location.replace(")";
  page += kChallengePath;
  page += R"(?n=" + encodeURIComponent(nonce) + "&s=" + i +
        "&r=" + encodeURIComponent(location.pathname + location.search));
      return;
    }
  }
})().catch((e) => { document.getElementById("msg").textContent = "The check failed: " + e; });
</script></body></html>
)";
  return page;
}

std::vector<std::string_view> pass_cookies(const tunnel::HeaderPairs& headers) {
  std::vector<std::string_view> out;
  size_t read = 0;
  for (const auto& [name, value] : headers) {
    if (!iequals(name, "cookie")) continue;
    read += value.size();
    if (read > kMaxCookieHeader) break;
    std::string_view rest = value;
    while (!rest.empty() && out.size() < 4) {
      const size_t semi = rest.find(';');
      const std::string_view pair = trim(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      const size_t eq = pair.find('=');
      if (eq != std::string_view::npos && trim(pair.substr(0, eq)) == kPassCookie)
        out.push_back(trim(pair.substr(eq + 1)));
    }
  }
  return out;
}

void strip_pass_cookie(tunnel::HeaderPairs& headers) {
  for (auto& [name, value] : headers) {
    if (!iequals(name, "cookie") || value.find(kPassCookie) == std::string::npos) continue;
    std::string kept;
    std::string_view rest = value;
    while (!rest.empty()) {
      const size_t semi = rest.find(';');
      const std::string_view pair = trim(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      const size_t eq = pair.find('=');
      if (pair.empty() || (eq != std::string_view::npos && trim(pair.substr(0, eq)) == kPassCookie)) continue;
      if (!kept.empty()) kept += "; ";
      kept += pair;
    }
    value = std::move(kept);
  }
  std::erase_if(headers, [](const auto& f) { return iequals(f.first, "cookie") && f.second.empty(); });
}

std::optional<std::string> query_parameter(std::string_view target, std::string_view name,
                                           std::string* rest) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos || target.size() > 16 * 1024) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  std::optional<std::string> found;
  std::string kept;
  while (true) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (!found && pair.substr(0, eq) == name) {
      found = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
      if (!found) return std::nullopt;
    } else if (!pair.empty()) {
      if (!kept.empty()) kept += '&';
      kept += pair;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  if (found && rest != nullptr) {
    *rest = std::string(target.substr(0, q));
    if (!kept.empty()) *rest += "?" + kept;
  }
  return found;
}

std::string safe_return_path(std::string_view r) {
  if (r.empty() || r.size() > 2048 || r[0] != '/' || (r.size() > 1 && (r[1] == '/' || r[1] == '\\')))
    return "/";
  for (const char c : r) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '\\') return "/";
  }
  return std::string(r);
}

bool wants_html(std::string_view method, const tunnel::HeaderPairs& headers) {
  if (method != "GET" && method != "HEAD") return false;
  for (const auto& [name, value] : headers) {
    if (!iequals(name, "accept")) continue;
    if (value.size() <= 4096 && value.find("text/html") != std::string::npos) return true;
  }
  return false;
}

}  // namespace wtmesh::edge
