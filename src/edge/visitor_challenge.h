// The browser interstitial of `--challenge` (docs/protocol.md §3.4) and the pieces of a visitor's
// request the gate reads (edge/visitor_gate.h). Sans-I/O: text in, verdicts and text out.
//
// A visitor without the pass cookie who asks for HTML gets a small page whose script finds a counter
// such that SHA-256(NONCE ":" counter) starts with `bits` zero bits (~2^bits hashes; 14 bits is well
// under a second in a browser), then navigates to kChallengePath?n=NONCE&s=COUNTER&r=RETURN. The edge
// checks the nonce (its own HMAC: host-bound, expiring after kNonceLifetime) and the work (one hash),
// and answers 303 to RETURN (a path on the same host) with the pass cookie:
//
//   __Host-wtmesh_pass=v1.EXPIRY.MAC; Path=/; Max-Age=...; HttpOnly; Secure; SameSite=Lax
//
// MAC = HMAC-SHA256(edge secret, "pass|" host "|" EXPIRY), base64url; EXPIRY is Unix seconds. The
// `__Host-` prefix makes browsers keep it to this one host, and the MAC covers the host, so a pass of
// one tunnel is worthless on another. The secret is the edge process's (random at start): a restart
// makes visitors pass the challenge again. Everything parsed here is bounded (kMaxCookieHeader etc.).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/wire.h"

namespace wtmesh::edge {

inline constexpr std::string_view kChallengePath = "/.well-known/wtmesh-challenge";
inline constexpr std::string_view kPassCookie = "__Host-wtmesh_pass";
inline constexpr std::string_view kTokenParameter = "wtmesh_token";
inline constexpr std::chrono::seconds kNonceLifetime{300};
inline constexpr std::chrono::seconds kDefaultPassLifetime{12 * 3600};
inline constexpr unsigned kDefaultChallengeBits = 14;
inline constexpr unsigned kMaxChallengeBits = 24;
inline constexpr size_t kMaxCookieHeader = 8192;  // bytes of Cookie fields read for the pass
inline constexpr size_t kMaxChallengeQuery = 4096;

using WallTime = std::chrono::system_clock::time_point;

class ChallengeKey {
 public:
  ChallengeKey();  // a fresh random secret
  explicit ChallengeKey(const std::array<uint8_t, 32>& secret) : secret_(secret) {}

  // The cookie value for `host` valid until now + lifetime, and the Set-Cookie field value.
  std::string pass(std::string_view host, WallTime now, std::chrono::seconds lifetime) const;
  static std::string set_cookie(std::string_view value, std::chrono::seconds lifetime);
  bool pass_ok(std::string_view value, std::string_view host, WallTime now) const;

  std::string nonce(std::string_view host, WallTime now) const;
  bool nonce_ok(std::string_view nonce, std::string_view host, WallTime now) const;

 private:
  std::string mac(std::string_view what, std::string_view host, std::string_view rest) const;
  std::array<uint8_t, 32> secret_{};
};

// Leading zero bits of SHA-256(nonce ":" solution) are at least `bits`; `solution` is 1..20 digits.
bool work_ok(std::string_view nonce, std::string_view solution, unsigned bits);
// A solution (tests, the fuzz target): the smallest counter that works.
std::string solve_work(std::string_view nonce, unsigned bits);

// The interstitial page for `nonce` and `bits`.
std::string challenge_page(std::string_view nonce, unsigned bits);

// The values of our pass cookie among the Cookie fields (any number; at most kMaxCookieHeader bytes
// read in all). Several are possible (a stale and a fresh one): the gate tries each.
std::vector<std::string_view> pass_cookies(const tunnel::HeaderPairs& headers);
// Removes our pass cookie from the Cookie fields, leaving every other cookie; a field left empty goes.
void strip_pass_cookie(tunnel::HeaderPairs& headers);

// Query parameter `name` of an origin-form `target` ("/p?a=1&name=v&b=2"), percent-decoded; nullopt
// when absent or malformed. With `rest`, the target without that parameter ("/p?a=1&b=2").
std::optional<std::string> query_parameter(std::string_view target, std::string_view name,
                                           std::string* rest = nullptr);
// RETURN of a challenge answer: a path on this host ("/...", not "//..." nor "/\\..."), printable
// ASCII, at most 2048 bytes; else "/".
std::string safe_return_path(std::string_view r);

// Whether a request asks for a page a browser shows: GET (or HEAD) whose Accept lists text/html.
bool wants_html(std::string_view method, const tunnel::HeaderPairs& headers);

}  // namespace wtmesh::edge
