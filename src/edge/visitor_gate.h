// The edge's side of visitor auth (tunnel/visitor_policy.h, docs/protocol.md §3.4): one gate per http
// tunnel registration that asked for it, consulted by every public request routed to that tunnel on
// any HTTP version (edge/public_exchange.h: WebSocket upgrades and extended CONNECTs included) before
// anything reaches the agent.
//
// Order: a client address in deny_cidr, or outside a non-empty allow_cidr: 403. Then, with basic
// credentials: `Authorization: Basic base64(user:password)` matching one of them, else 401 with
// `WWW-Authenticate: Basic realm="HOST"`. The Authorization field that passed is the edge's, not the
// service's: it is removed before the request goes on.
//
// Each password check is a PBKDF2 (a few thousand HMACs, ~1 ms): a field value that passed is
// remembered (its SHA-256, not the value) for kRememberFor, at most kRemembered of them, so a
// browser's every request does not pay it again; a wrong one is never remembered.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/time.h"
#include "edge/auth_failures.h"
#include "edge/visitor_challenge.h"
#include "tunnel/token.h"
#include "tunnel/visitor_policy.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

class EdgeMetrics;

// What every gate of one edge shares: the challenge secret, the failed-check limiter per client
// address (a wrong password costs a PBKDF2, a bad token an ECDSA verification), the metrics.
struct VisitorEnvironment {
  ChallengeKey key;
  std::shared_ptr<AuthFailureLimiter> failures;  // shared by an edge's workers
  unsigned challenge_bits = kDefaultChallengeBits;
  std::chrono::seconds pass_lifetime = kDefaultPassLifetime;
  EdgeMetrics* metrics = nullptr;  // not owned; null: not counted
  explicit VisitorEnvironment(AuthFailureLimits limits = {})
      : failures(std::make_shared<AuthFailureLimiter>(limits)) {}
};

// One request as the gate sees it.
struct VisitorRequest {
  std::string_view client_ip;
  std::string_view limit_key;  // the failure limiter's key (edge/http_codec.h client_limit_key); empty: ip
  std::string_view host;       // lower-case, no port
  std::string_view method;
  std::string_view target;  // origin-form
  const tunnel::HeaderPairs& headers;
};

class VisitorGate {
 public:
  static constexpr size_t kRemembered = 64;
  static constexpr std::chrono::minutes kRememberFor{10};

  VisitorGate(tunnel::VisitorPolicy policy, std::shared_ptr<VisitorEnvironment> env);
  explicit VisitorGate(tunnel::VisitorPolicy policy)
      : VisitorGate(std::move(policy), std::make_shared<VisitorEnvironment>()) {}

  enum class Verdict {
    kAllow,
    kForbidden,     // 403: the client address, or a non-page request on a challenge tunnel without a pass
    kUnauthorized,  // 401: no or wrong credentials
    kChallenge,     // 200: the interstitial page (`page`)
    kPassed,        // 303 to `location` with `set_cookie`: a challenge answered
    kRateLimited,   // 429: the address had too many failed checks
  };
  struct Decision {
    Verdict verdict = Verdict::kAllow;
    std::string detail;                 // for the error page and the log (never the credentials)
    bool strip_authorization = false;   // kAllow: the request's Authorization field was the edge's
    bool strip_cookie = false;          // kAllow: remove our pass cookie (strip_pass_cookie)
    std::optional<std::string> target;  // kAllow: the target without wtmesh_token, when it had one
    std::string page;                   // kChallenge
    std::string location, set_cookie;   // kPassed
  };
  Decision check(const VisitorRequest& request, SteadyTime now,
                 std::chrono::system_clock::time_point wall = std::chrono::system_clock::now());
  // The address-only check of earlier callers (tests).
  Decision check(std::string_view client_ip, const tunnel::HeaderPairs& headers, SteadyTime now) {
    return check(VisitorRequest{client_ip, {}, "", "GET", "/", headers}, now);
  }

  // The WWW-Authenticate value of a 401 for `host`: Basic when the tunnel has basic credentials,
  // else Bearer.
  std::string challenge(std::string_view host) const;
  // Removes the Authorization fields (any case) from a request that passed (Decision::strip_authorization).
  static void strip_authorization(tunnel::HeaderPairs& headers);
  // Applies a kAllow decision's strips to a request's fields and target.
  static void apply(const Decision& d, tunnel::HeaderPairs& headers, std::string& target);
  const tunnel::VisitorPolicy& policy() const { return policy_; }
  const VisitorEnvironment& environment() const { return *env_; }
  uint64_t password_checks() const { return password_checks_; }
  uint64_t token_checks() const { return token_checks_; }
  size_t remembered() const { return remembered_.size(); }

 private:
  enum class Credential { kNone, kValid, kWrong };
  Credential basic(std::string_view authorization, SteadyTime now);
  Credential token(std::string_view token, std::string_view host, std::chrono::system_clock::time_point wall);
  Decision refuse(Verdict v, std::string detail, const VisitorRequest& r);

  tunnel::VisitorPolicy policy_;
  std::shared_ptr<VisitorEnvironment> env_;
  tunnel::VerifierKeySet token_keys_;
  std::map<std::array<uint8_t, 32>, SteadyTime> remembered_;  // SHA-256 of a field value → until
  uint64_t password_checks_ = 0;
  uint64_t token_checks_ = 0;
};

}  // namespace wtmesh::edge
