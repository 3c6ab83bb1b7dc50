// Visitor tokens, the browser challenge and the failed-check limit of the edge's visitor gate
// (edge/visitor_gate.h, edge/visitor_challenge.h; docs/protocol.md §3.4).
#include "edge/visitor_challenge.h"

#include <gtest/gtest.h>

#include "edge/metrics.h"
#include "edge/visitor_gate.h"
#include "tunnel/token.h"

namespace wtmesh::edge {
namespace {

using tunnel::HeaderPairs;
using V = VisitorGate::Verdict;
using namespace std::chrono_literals;

const SteadyTime t0 = SteadyTime{} + std::chrono::hours(1);
const WallTime w0 = WallTime{} + std::chrono::hours(24 * 365 * 56);

struct Owner {
  tunnel::SigningKey key = tunnel::SigningKey::generate();
  std::string token(std::string host, std::chrono::seconds ttl = 3600s, WallTime now = w0,
                    std::string_view audience = tunnel::kVisitorAudience) const {
    auto claims = tunnel::make_claims("visitor", {std::move(host)}, ttl, now);
    claims.audience = std::string(audience);
    return key.sign(claims);
  }
};

VisitorGate::Decision ask(VisitorGate& gate, std::string_view target, const HeaderPairs& headers,
                          std::string_view method = "GET", std::string_view ip = "192.0.2.1",
                          SteadyTime now = t0, WallTime wall = w0) {
  return gate.check(VisitorRequest{ip, {}, "app.localhost", method, target, headers}, now, wall);
}

TEST(VisitorToken, BearerOrQueryParameterSignedExpiringHostBound) {
  Owner owner, stranger;
  tunnel::VisitorPolicy p;
  p.token_keys.push_back(owner.key.public_pem());
  VisitorGate gate(p);
  const auto none = ask(gate, "/", {});
  EXPECT_EQ(none.verdict, V::kUnauthorized);
  EXPECT_EQ(none.detail, "This tunnel needs a visitor token.");
  EXPECT_EQ(gate.challenge("app.localhost"), "Bearer realm=\"app.localhost\"");

  const auto bearer = ask(gate, "/x", {{"Authorization", "Bearer " + owner.token("app.localhost")}});
  EXPECT_EQ(bearer.verdict, V::kAllow);
  EXPECT_TRUE(bearer.strip_authorization);
  EXPECT_FALSE(bearer.target);

  // The query parameter, removed from the target with the rest kept in order.
  const auto q = ask(gate, "/x?a=1&wtmesh_token=" + owner.token("app.localhost") + "&b=2", {});
  EXPECT_EQ(q.verdict, V::kAllow);
  ASSERT_TRUE(q.target);
  EXPECT_EQ(*q.target, "/x?a=1&b=2");
  EXPECT_FALSE(q.strip_authorization) << "an Authorization field it did not use is the service's";
  HeaderPairs h{{"authorization", "Bearer x"}};
  std::string target = "/x?wtmesh_token=t";
  VisitorGate::Decision only;
  only.target = "/x";
  VisitorGate::apply(only, h, target);
  EXPECT_EQ(target, "/x");
  EXPECT_EQ(h.size(), 1u);

  // Wildcard host patterns work as for agent tokens; another host, key, audience or an expired one not.
  EXPECT_EQ(ask(gate, "/", {{"authorization", "Bearer " + owner.token("*.localhost")}}).verdict, V::kAllow);
  for (const std::string& bad :
       {owner.token("other.localhost"), stranger.token("app.localhost"),
        owner.token("app.localhost", 3600s, w0, tunnel::kTokenAudience),
        owner.token("app.localhost", 60s, w0 - 2h), std::string("a.b.c"), std::string(9000, 'A')}) {
    const auto d = ask(gate, "/", {{"authorization", "Bearer " + bad}});
    EXPECT_EQ(d.verdict, V::kUnauthorized) << bad.substr(0, 40);
    EXPECT_EQ(d.detail, "The visitor token is wrong, expired or not for this host.");
    EXPECT_EQ(ask(gate, "/?wtmesh_token=" + bad, {}).verdict, V::kUnauthorized);
  }
  EXPECT_EQ(gate.token_checks(), 15u);
  // An agent's token (aud wtmesh-edge) from the owner's key is no visitor token, and a visitor token
  // is no agent token: the agent's verification wants kTokenAudience.
  tunnel::VerifierKeySet agent_keys;
  agent_keys.add_pem(owner.key.public_pem());
  EXPECT_EQ(agent_keys.verify(owner.token("app.localhost"), w0).error(), tunnel::TokenError::kWrongAudience);
}

TEST(VisitorToken, BasicAndTokenEitherPasses) {
  Owner owner;
  tunnel::VisitorPolicy p;
  std::string error;
  p.basic.push_back(*tunnel::make_basic_credential("alice:pw", &error, 16));
  p.token_keys.push_back(owner.key.public_pem());
  VisitorGate gate(p);
  EXPECT_EQ(gate.challenge("h"), "Basic realm=\"h\", charset=\"UTF-8\"");
  EXPECT_EQ(ask(gate, "/", {}).detail, "This tunnel needs a user name and password or a visitor token.");
  EXPECT_EQ(ask(gate, "/", {{"authorization", "Basic YWxpY2U6cHc="}}).verdict, V::kAllow);
  EXPECT_EQ(ask(gate, "/", {{"authorization", "Bearer " + owner.token("app.localhost")}}).verdict, V::kAllow);
  // A wrong Authorization but a good query token: the token lets it in, the field stays.
  const auto d =
      ask(gate, "/?wtmesh_token=" + owner.token("app.localhost"), {{"authorization", "Basic eDp5"}});
  EXPECT_EQ(d.verdict, V::kAllow);
  EXPECT_FALSE(d.strip_authorization);
}

TEST(VisitorChallenge, PagePassCookieAndWhatIsRefused) {
  tunnel::VisitorPolicy p;
  p.challenge = true;
  auto env = std::make_shared<VisitorEnvironment>();
  env->challenge_bits = 8;
  EdgeMetrics metrics;
  env->metrics = &metrics;
  VisitorGate gate(p, env);
  // A browser asking for a page gets the interstitial; an API call or WebSocket without the pass a 403.
  const HeaderPairs browser{{"accept", "text/html,application/xhtml+xml,*/*;q=0.8"}};
  const auto page = ask(gate, "/app?x=1", browser);
  ASSERT_EQ(page.verdict, V::kChallenge);
  EXPECT_NE(page.page.find("crypto.subtle.digest"), std::string::npos);
  EXPECT_NE(page.page.find("bits = 8;"), std::string::npos);
  EXPECT_EQ(metrics.visitors_refused(VisitorRefusal::kChallenged), 1u);
  const auto api = ask(gate, "/api", {{"accept", "application/json"}});
  EXPECT_EQ(api.verdict, V::kForbidden);
  EXPECT_EQ(api.detail, "This site checks browsers: open it in a browser first.");
  EXPECT_EQ(ask(gate, "/", browser, "POST").verdict, V::kForbidden);
  EXPECT_EQ(ask(gate, "/", browser, "CONNECT").verdict, V::kForbidden);

  // The nonce in the page; the answer gets the cookie and a redirect to a path on this host.
  const size_t at = page.page.find("const nonce = \"") + 15;
  const std::string nonce = page.page.substr(at, page.page.find('"', at) - at);
  ASSERT_TRUE(env->key.nonce_ok(nonce, "app.localhost", w0));
  EXPECT_FALSE(env->key.nonce_ok(nonce, "evil.localhost", w0));
  EXPECT_FALSE(env->key.nonce_ok(nonce, "app.localhost", w0 + kNonceLifetime + 1s));
  const std::string s = solve_work(nonce, 8);
  const auto passed =
      ask(gate, std::string(kChallengePath) + "?n=" + nonce + "&s=" + s + "&r=%2Fapp%3Fx%3D1", {});
  ASSERT_EQ(passed.verdict, V::kPassed) << passed.detail;
  EXPECT_EQ(passed.location, "/app?x=1");
  ASSERT_TRUE(passed.set_cookie.starts_with("__Host-wtmesh_pass=v1."));
  EXPECT_NE(passed.set_cookie.find("; Path=/; Max-Age=43200; HttpOnly; Secure; SameSite=Lax"),
            std::string::npos);
  const std::string cookie = passed.set_cookie.substr(0, passed.set_cookie.find(';'));
  // An open redirect is not: another host's URL goes to "/".
  for (const char* r : {"https%3A%2F%2Fevil.example%2F", "%2F%2Fevil.example", "%2F%5Cevil", "%2Fa%0Db"}) {
    EXPECT_EQ(ask(gate, std::string(kChallengePath) + "?n=" + nonce + "&s=" + s + "&r=" + r, {}).location,
              "/");
  }
  // Wrong work, a forged or expired nonce: 403.
  std::string wrong = "0";
  while (work_ok(nonce, wrong, 8)) wrong += "1";
  EXPECT_EQ(ask(gate, std::string(kChallengePath) + "?n=" + nonce + "&s=" + wrong, {}).verdict,
            V::kForbidden);
  EXPECT_EQ(ask(gate, std::string(kChallengePath) + "?n=9" + nonce + "&s=" + s, {}).verdict, V::kForbidden);
  EXPECT_EQ(ask(gate, std::string(kChallengePath) + "?n=" + nonce + "&s=" + s, {}, "GET", "192.0.2.1", t0,
                w0 + kNonceLifetime)
                .verdict,
            V::kForbidden);

  // With the cookie (among others): in, for pages, API calls and WebSocket/WebTransport alike; the
  // edge's cookie is stripped, the others stay.
  const HeaderPairs with{{"cookie", "a=1; " + cookie + "; b=2"}};
  for (const char* method : {"GET", "POST", "CONNECT"}) {
    const auto in = ask(gate, "/api", with, method);
    EXPECT_EQ(in.verdict, V::kAllow) << method;
    EXPECT_TRUE(in.strip_cookie);
  }
  HeaderPairs fields{{"Cookie", "a=1; " + cookie + "; b=2"}, {"cookie", cookie}, {"x", "y"}};
  std::string target = "/";
  VisitorGate::apply(ask(gate, "/", fields), fields, target);
  EXPECT_EQ(fields, (HeaderPairs{{"Cookie", "a=1; b=2"}, {"x", "y"}}));
  // Bound to the host and expiring; a tampered one fails.
  VisitorGate other(p, env);
  EXPECT_EQ(other.check(VisitorRequest{"192.0.2.1", {}, "evil.localhost", "GET", "/", with}, t0, w0).verdict,
            V::kForbidden);
  EXPECT_EQ(ask(gate, "/", with, "GET", "192.0.2.1", t0, w0 + kDefaultPassLifetime + 1s).verdict,
            V::kForbidden);
  std::string tampered = cookie;
  tampered[tampered.find("v1.") + 4] ^= 1;
  EXPECT_EQ(ask(gate, "/", {{"cookie", tampered}}).verdict, V::kForbidden);
  // A fresh edge secret (a restart) makes old passes worthless.
  VisitorGate restarted(p, std::make_shared<VisitorEnvironment>());
  EXPECT_EQ(ask(restarted, "/", with).verdict, V::kForbidden);
}

TEST(VisitorChallenge, ATokenOrPasswordSkipsTheChallenge) {
  Owner owner;
  tunnel::VisitorPolicy p;
  p.challenge = true;
  p.token_keys.push_back(owner.key.public_pem());
  VisitorGate gate(p);
  const auto in = ask(gate, "/ws?wtmesh_token=" + owner.token("app.localhost"), {}, "CONNECT");
  EXPECT_EQ(in.verdict, V::kAllow);
  EXPECT_EQ(*in.target, "/ws");
  EXPECT_EQ(ask(gate, "/", {{"accept", "text/html"}}).verdict, V::kChallenge);
  EXPECT_EQ(ask(gate, "/", {}).detail,
            "This site checks browsers: open it in a browser first, or bring a visitor token or password.");
  EXPECT_EQ(ask(gate, "/", {{"authorization", "Bearer x.y.z"}}).verdict, V::kUnauthorized)
      << "a wrong token is refused, not sent to the challenge";
  // Without credential modes an Authorization field and a wtmesh_token parameter are the service's.
  tunnel::VisitorPolicy only;
  only.challenge = true;
  VisitorGate plain(only);
  EXPECT_EQ(ask(plain, "/?wtmesh_token=x", {{"authorization", "Bearer x"}, {"accept", "text/html"}}).verdict,
            V::kChallenge);
}

TEST(VisitorGateLimits, WrongCredentialsPerAddressGet429) {
  Owner owner;
  tunnel::VisitorPolicy p;
  std::string error;
  p.basic.push_back(*tunnel::make_basic_credential("alice:pw", &error, 16));
  p.token_keys.push_back(owner.key.public_pem());
  auto env = std::make_shared<VisitorEnvironment>(AuthFailureLimits{5, 1, 16});
  EdgeMetrics metrics;
  env->metrics = &metrics;
  VisitorGate gate(p, env);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ask(gate, "/", {{"authorization", "Basic eDp5"}}).verdict, V::kUnauthorized) << i;
  }
  const uint64_t checks = gate.password_checks();
  // Past the burst: 429 before any PBKDF2 or ECDSA, for a right password too, and for a query token.
  const auto limited = ask(gate, "/", {{"authorization", "Basic YWxpY2U6cHc="}});
  EXPECT_EQ(limited.verdict, V::kRateLimited);
  EXPECT_EQ(ask(gate, "/?wtmesh_token=" + owner.token("app.localhost"), {}).verdict, V::kRateLimited);
  EXPECT_EQ(gate.password_checks(), checks);
  EXPECT_EQ(gate.token_checks(), 0u);
  EXPECT_EQ(metrics.visitors_refused(VisitorRefusal::kRateLimited), 2u);
  EXPECT_EQ(metrics.visitors_refused(VisitorRefusal::kUnauthorized), 5u);
  // Without credentials it is still told what is needed (401), and other addresses are unaffected.
  EXPECT_EQ(ask(gate, "/", {}).verdict, V::kUnauthorized);
  EXPECT_EQ(ask(gate, "/", {{"authorization", "Basic YWxpY2U6cHc="}}, "GET", "192.0.2.2").verdict, V::kAllow);
  // One token comes back per second; a right password does not cost a token.
  EXPECT_EQ(
      ask(gate, "/", {{"authorization", "Basic YWxpY2U6cHc="}}, "GET", "192.0.2.1", t0 + 1100ms).verdict,
      V::kAllow);
  const std::string text = metrics.render({}, {});
  EXPECT_NE(text.find("wtmesh_visitor_refusals_total{reason=\"rate_limited\"} 2"), std::string::npos);
}

TEST(VisitorChallenge, CookieAndQueryParsingIsBounded) {
  EXPECT_EQ(pass_cookies({{"cookie", "__Host-wtmesh_pass=a; __Host-wtmesh_pass = b ;x=y"}}),
            (std::vector<std::string_view>{"a", "b"}));
  EXPECT_TRUE(
      pass_cookies({{"cookie", std::string(kMaxCookieHeader + 1, 'x') + ";__Host-wtmesh_pass=a"}}).empty());
  EXPECT_TRUE(pass_cookies({{"cookie", "__Host-wtmesh_passx=a; wtmesh_pass=b"}}).empty());
  std::string rest;
  EXPECT_EQ(query_parameter("/p?a=1&k=v%20w&b", "k", &rest), "v w");
  EXPECT_EQ(rest, "/p?a=1&b");
  EXPECT_EQ(query_parameter("/p?k=1", "k", &rest), "1");
  EXPECT_EQ(rest, "/p");
  EXPECT_FALSE(query_parameter("/p?k=%4", "k"));
  EXPECT_FALSE(query_parameter("/p?k=%zz", "k"));
  EXPECT_FALSE(query_parameter("/p?kk=1", "k"));
  EXPECT_FALSE(query_parameter("/p", "k"));
  EXPECT_FALSE(query_parameter("/p?k=1" + std::string(17000, 'a'), "k"));
  EXPECT_EQ(safe_return_path("/a/b?c"), "/a/b?c");
  EXPECT_EQ(safe_return_path(std::string(3000, '/')), "/");
  EXPECT_FALSE(work_ok("n", "", 0));
  EXPECT_FALSE(work_ok("n", "1a", 0));
  EXPECT_FALSE(work_ok("n", std::string(21, '1'), 0));
  EXPECT_FALSE(work_ok("n", "1", kMaxChallengeBits + 1));
  EXPECT_TRUE(work_ok("n", solve_work("n", 10), 10));
  EXPECT_FALSE(wants_html("GET", {{"accept", "*/*"}}));
  EXPECT_TRUE(wants_html("HEAD", {{"Accept", "text/html"}}));
}

}  // namespace
}  // namespace wtmesh::edge
