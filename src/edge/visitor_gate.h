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
#include <string>
#include <string_view>

#include "common/time.h"
#include "tunnel/visitor_policy.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

class VisitorGate {
 public:
  static constexpr size_t kRemembered = 64;
  static constexpr std::chrono::minutes kRememberFor{10};

  explicit VisitorGate(tunnel::VisitorPolicy policy) : policy_(std::move(policy)) {}

  enum class Verdict {
    kAllow,
    kForbidden,     // 403: the client address
    kUnauthorized,  // 401: no or wrong basic credentials
  };
  struct Decision {
    Verdict verdict = Verdict::kAllow;
    std::string detail;                // for the error page and the log (never the credentials)
    bool strip_authorization = false;  // kAllow: the request's Authorization field was the edge's
  };
  Decision check(std::string_view client_ip, const tunnel::HeaderPairs& headers, SteadyTime now);

  // The WWW-Authenticate value of a 401 for `host`.
  static std::string challenge(std::string_view host);
  // Removes the Authorization fields (any case) from a request that passed (Decision::strip_authorization).
  static void strip_authorization(tunnel::HeaderPairs& headers);
  const tunnel::VisitorPolicy& policy() const { return policy_; }
  uint64_t password_checks() const { return password_checks_; }
  size_t remembered() const { return remembered_.size(); }

 private:
  bool basic_ok(std::string_view authorization, SteadyTime now);

  tunnel::VisitorPolicy policy_;
  std::map<std::array<uint8_t, 32>, SteadyTime> remembered_;  // SHA-256 of a field value → until
  uint64_t password_checks_ = 0;
};

}  // namespace wtmesh::edge
