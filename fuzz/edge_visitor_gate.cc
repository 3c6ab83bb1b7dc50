// Fuzzes visitor auth at the edge (edge/visitor_gate.h) and the CIDR parser (tunnel/visitor_policy.h):
// the input is split at the first two newlines into a client address, an Authorization field value
// and a CIDR text. The gate never crashes, lets a request through only with the one right credential
// (alice:pw) and an address the ranges allow, and never remembers more than kRemembered values; a
// range that parses prints back to a text that parses to the same range. The third part is also
// given to a gate with --challenge and --require-token as a Cookie field, a request target and a
// Bearer token: without the edge's secret or the owner's key nothing forged gets in (no kAllow, no
// kPassed), and the cookie, query and token parsers stay in bounds.
#include <cstdint>
#include <string>
#include <string_view>

#include "edge/visitor_gate.h"
#include "tunnel/visitor_policy.h"

namespace {

using namespace wtmesh;

edge::VisitorGate& gate() {
  static edge::VisitorGate* g = [] {
    tunnel::VisitorPolicy p;
    std::string error;
    p.basic.push_back(*tunnel::make_basic_credential("alice:pw", &error, 1));  // 1 iteration: fast runs
    p.allow.push_back(*tunnel::parse_cidr("127.0.0.0/8", &error));
    p.allow.push_back(*tunnel::parse_cidr("::1", &error));
    p.deny.push_back(*tunnel::parse_cidr("127.0.0.2", &error));
    return new edge::VisitorGate(p);
  }();
  return *g;
}

edge::VisitorGate& guarded() {
  static edge::VisitorGate* g = [] {
    tunnel::VisitorPolicy p;
    p.challenge = true;
    p.token_keys.push_back(tunnel::SigningKey::generate().public_pem());
    auto env = std::make_shared<edge::VisitorEnvironment>(edge::AuthFailureLimits{1e9, 1e9, 16});
    return new edge::VisitorGate(p, env);
  }();
  return *g;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\n');
  const size_t b = a == std::string_view::npos ? std::string_view::npos : in.find('\n', a + 1);
  const std::string_view ip = in.substr(0, a);
  const std::string_view auth =
      a == std::string_view::npos ? std::string_view() : in.substr(a + 1, b - a - 1);
  const std::string_view cidr = b == std::string_view::npos ? std::string_view() : in.substr(b + 1);

  tunnel::HeaderPairs headers;
  if (a != std::string_view::npos) headers.emplace_back("authorization", std::string(auth));
  static uint64_t tick = 0;
  const auto now = SteadyTime{} + std::chrono::seconds(++tick);
  const auto d = gate().check(ip, headers, now);
  if (d.verdict == edge::VisitorGate::Verdict::kAllow) {
    // Only addresses the ranges allow, and never without an Authorization field.
    bool allowed = false;
    for (const auto& r : gate().policy().allow) allowed = allowed || tunnel::cidr_contains(r, ip);
    for (const auto& r : gate().policy().deny) allowed = allowed && !tunnel::cidr_contains(r, ip);
    if (!allowed || headers.empty() || !d.strip_authorization) __builtin_trap();
  } else if (d.detail.empty()) {
    __builtin_trap();
  }
  if (gate().remembered() > edge::VisitorGate::kRemembered) __builtin_trap();

  const std::string target = "/" + std::string(cidr);
  tunnel::HeaderPairs fields{{"cookie", std::string(cidr)}, {"accept", "text/html"}};
  if (a != std::string_view::npos) fields.emplace_back("authorization", "Bearer " + std::string(auth));
  const auto g =
      guarded().check(edge::VisitorRequest{"127.0.0.1", {}, "app.localhost", "GET", target, fields}, now);
  if (g.verdict == edge::VisitorGate::Verdict::kAllow || g.verdict == edge::VisitorGate::Verdict::kPassed)
    __builtin_trap();
  std::string rest;
  if (edge::query_parameter(target, edge::kTokenParameter, &rest) && rest.size() >= target.size())
    __builtin_trap();
  edge::strip_pass_cookie(fields);
  if (!edge::pass_cookies(fields).empty()) __builtin_trap();

  std::string error;
  if (const auto r = tunnel::parse_cidr(cidr, &error)) {
    const auto again = tunnel::parse_cidr(tunnel::to_string(*r), &error);
    if (!again || !(*again == *r)) __builtin_trap();
  } else if (error.empty()) {
    __builtin_trap();
  }
  return 0;
}
