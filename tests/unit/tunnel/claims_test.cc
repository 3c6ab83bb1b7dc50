// Tests for host coverage, host patterns, Bearer parsing, --ttl durations and claim validation at signing.
#include <gtest/gtest.h>

#include <stdexcept>

#include "tunnel/host_pattern.h"
#include "tunnel/token.h"
#include "tunnel_test_util.h"

namespace wtmesh::tunnel {
namespace {

using namespace test;

TEST(HostCoverage, Table) {
  TokenClaims c;
  c.hosts = {"api.example.com", "*.example.com", "*.Apps.Test", "localhost"};
  struct Case {
    const char* host;
    bool covered;
  } cases[] = {
      {"api.example.com", true},                                 // exact
      {"API.Example.COM", true},                                 // exact, case-insensitive
      {"a.example.com", true},                                   // wildcard: one more label
      {"A.EXAMPLE.COM", true},                                   // wildcard, case-insensitive
      {"a-b.example.com", true},    {"a.b.example.com", false},  // wildcard covers exactly one label
      {"example.com", false},                                    // wildcard does not cover the bare domain
      {".example.com", false},                                   // empty label
      {"aexample.com", false},                                   // suffix must start at a label boundary
      {"a.example.com.", false},                                 // trailing dot is not normalised
      {"a.example.com:443", false},                              // ports are not part of the host here
      {"*.example.com", false},                                  // a literal wildcard is not a host
      {"x.apps.test", true},                                     // pattern case does not matter either
      {"apps.test", false},         {"localhost", true},
      {"LOCALHOST", true},          {"a.localhost", false},  // exact entries do not cover subdomains
      {"other.com", false},         {"", false},
      {"127.0.0.1", false},
  };
  for (const auto& tc : cases) EXPECT_EQ(token_covers_host(c, tc.host), tc.covered) << tc.host;
}

// The rule token wildcards share with edge routes (tunnel/host_pattern.h).
TEST(HostCoverage, WildcardParentIsWhatFollowsTheFirstLabel) {
  EXPECT_EQ(wildcard_parent("a.example.com"), "example.com");
  EXPECT_EQ(wildcard_parent("A.b.Example.com"), "b.Example.com");
  EXPECT_EQ(wildcard_parent("a.com"), "com");
  EXPECT_FALSE(wildcard_parent("localhost"));
  EXPECT_FALSE(wildcard_parent(".com"));
  EXPECT_FALSE(wildcard_parent("com."));
  EXPECT_FALSE(wildcard_parent(""));
}

TEST(HostCoverage, NoHostsCoversNothing) {
  TokenClaims c;
  EXPECT_FALSE(token_covers_host(c, "a.localhost"));
}

TEST(HostPattern, Validation) {
  EXPECT_TRUE(is_valid_host_pattern("alice.localhost"));
  EXPECT_TRUE(is_valid_host_pattern("localhost"));
  EXPECT_TRUE(is_valid_host_pattern("*.alice.localhost"));
  EXPECT_TRUE(is_valid_host_pattern("*.localhost"));
  EXPECT_TRUE(is_valid_host_pattern("xn--bcher-kva.example"));
  EXPECT_TRUE(is_valid_host_pattern(std::string(63, 'a') + ".com"));
  EXPECT_FALSE(is_valid_host_pattern(std::string(64, 'a') + ".com"));  // label too long
  std::string long_name;
  while (long_name.size() < 250) long_name += "abcdefghi.";
  long_name += "com";
  ASSERT_EQ(long_name.size(), 253u);
  EXPECT_TRUE(is_valid_host_pattern(long_name));  // the 253-character cap
  EXPECT_FALSE(is_valid_host_pattern(long_name + "x"));
  EXPECT_FALSE(is_valid_host_pattern("*.alice.localhost", /*allow_wildcard=*/false));
  EXPECT_FALSE(is_valid_host_pattern("*"));
  EXPECT_FALSE(is_valid_host_pattern("*."));
  EXPECT_FALSE(is_valid_host_pattern("a.*.com"));
  EXPECT_FALSE(is_valid_host_pattern("**.com"));
  EXPECT_FALSE(is_valid_host_pattern("-a.com"));
  EXPECT_FALSE(is_valid_host_pattern("a-.com"));
  EXPECT_FALSE(is_valid_host_pattern("a..com"));
  EXPECT_FALSE(is_valid_host_pattern("a.com."));
  EXPECT_FALSE(is_valid_host_pattern("a_b.com"));
  EXPECT_FALSE(is_valid_host_pattern("a b.com"));
  EXPECT_FALSE(is_valid_host_pattern("10.0.0.1"));
  EXPECT_FALSE(is_valid_host_pattern("[::1]"));
  EXPECT_FALSE(is_valid_host_pattern(""));
}

TEST(AuthStatus, MissingInvalidForbiddenOk) {
  TokenClaims c = sample_claims();
  VerifyResult good = VerifyResult::success(c, "kid");
  VerifyResult bad = VerifyResult::failure(TokenError::kExpired, "expired");
  EXPECT_EQ(tunnel_auth_status(nullptr, "alice.localhost"), 401);
  EXPECT_EQ(tunnel_auth_status(&bad, "alice.localhost"), 401);
  EXPECT_EQ(tunnel_auth_status(&good, "alice.localhost"), 200);
  EXPECT_EQ(tunnel_auth_status(&good, "x.alice.localhost"), 200);
  EXPECT_EQ(tunnel_auth_status(&good, "bob.localhost"), 403);
  for (auto e : {TokenError::kMalformed, TokenError::kUnsupportedAlg, TokenError::kUnknownKey,
                 TokenError::kBadSignature, TokenError::kExpired, TokenError::kNotYetValid,
                 TokenError::kWrongAudience}) {
    EXPECT_EQ(http_status_for(e), 401) << to_string(e);
  }
}

TEST(Bearer, Parse) {
  EXPECT_EQ(parse_bearer("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(parse_bearer("bearer abc"), "abc");
  EXPECT_EQ(parse_bearer("BEARER   abc  "), "abc");
  EXPECT_EQ(parse_bearer("  Bearer a-b_c~d+e/f=="), "a-b_c~d+e/f==");
  EXPECT_FALSE(parse_bearer("Bearer"));
  EXPECT_FALSE(parse_bearer("Bearer "));
  EXPECT_FALSE(parse_bearer("Bearerabc"));
  EXPECT_FALSE(parse_bearer("Basic dXNlcjpwYXNz"));
  EXPECT_FALSE(parse_bearer("Bearer a b"));
  EXPECT_FALSE(parse_bearer("Bearer a,b"));
  EXPECT_FALSE(parse_bearer("Bearer ==="));
  EXPECT_FALSE(parse_bearer("Bearer a=b"));
  EXPECT_FALSE(parse_bearer(""));
}

TEST(Duration, Parse) {
  EXPECT_EQ(parse_duration("10m"), 600s);
  EXPECT_EQ(parse_duration("90s"), 90s);
  EXPECT_EQ(parse_duration("2h"), 7200s);
  EXPECT_EQ(parse_duration("1d"), 86400s);
  EXPECT_EQ(parse_duration("10s"), 10s);       // lower bound
  EXPECT_EQ(parse_duration("30d"), 2592000s);  // upper bound
  EXPECT_EQ(parse_duration("720h"), 2592000s);
  EXPECT_FALSE(parse_duration("9s"));
  EXPECT_FALSE(parse_duration("31d"));
  EXPECT_FALSE(parse_duration("721h"));
  EXPECT_FALSE(parse_duration("999999999d"));
  EXPECT_FALSE(parse_duration("99999999999s"));
  EXPECT_FALSE(parse_duration("600"));
  EXPECT_FALSE(parse_duration("m"));
  EXPECT_FALSE(parse_duration("-10m"));
  EXPECT_FALSE(parse_duration("+10m"));
  EXPECT_FALSE(parse_duration("1.5h"));
  EXPECT_FALSE(parse_duration("10M"));
  EXPECT_FALSE(parse_duration("1h30m"));
  EXPECT_FALSE(parse_duration(" 10m"));
  EXPECT_FALSE(parse_duration(""));
}

TEST(MakeClaims, FillsStandardClaims) {
  auto c = make_claims("bob", {"bob.localhost"}, 600s, kNow + 250ms);
  EXPECT_EQ(c.subject, "bob");
  EXPECT_EQ(c.audience, kTokenAudience);
  EXPECT_EQ(c.issued_at, kNow);  // whole seconds
  EXPECT_EQ(c.not_before, kNow);
  EXPECT_EQ(c.expires_at, kNow + 600s);
  EXPECT_EQ(c.id.size(), 22u);  // 128 random bits
  EXPECT_NE(c.id, make_claims("bob", {"bob.localhost"}, 600s, kNow).id);
  EXPECT_THROW(make_claims("bob", {"bob.localhost"}, 9s, kNow), std::invalid_argument);
  EXPECT_THROW(make_claims("bob", {"bob.localhost"}, kMaxTokenLifetime + 1s, kNow), std::invalid_argument);
  EXPECT_NO_THROW(make_claims("bob", {"bob.localhost"}, kMaxTokenLifetime, kNow));
}

TEST(SignValidation, RefusesClaimsVerifyWouldRefuse) {
  SigningKey key = SigningKey::generate();
  auto expect_refused = [&](TokenClaims c, const char* what) {
    EXPECT_THROW(key.sign(c), std::invalid_argument) << what;
  };
  TokenClaims base = sample_claims();
  EXPECT_NO_THROW(key.sign(base));
  {
    auto c = base;
    c.hosts.clear();
    expect_refused(c, "no hosts");
  }
  {
    auto c = base;
    c.hosts.assign(kMaxTokenHosts + 1, "a.localhost");
    expect_refused(c, "65 hosts");
  }
  {
    auto c = base;
    c.hosts.assign(kMaxTokenHosts, "a.localhost");
    EXPECT_NO_THROW(key.sign(c));  // exactly the cap
  }
  {
    auto c = base;
    c.hosts = {"bad host"};
    expect_refused(c, "invalid host");
  }
  {
    auto c = base;
    c.subject = "";
    expect_refused(c, "empty sub");
  }
  {
    auto c = base;
    c.subject = std::string(kMaxSubjectSize + 1, 'a');
    expect_refused(c, "long sub");
  }
  {
    auto c = base;
    c.subject = "a\nb";
    expect_refused(c, "control character");
  }
  {
    auto c = base;
    c.subject = "\xff\xfe";
    expect_refused(c, "invalid UTF-8");
  }
  {
    auto c = base;
    c.id = "";
    expect_refused(c, "empty jti");
  }
  {
    auto c = base;
    c.expires_at = c.issued_at;
    expect_refused(c, "exp == iat");
  }
  {
    auto c = base;
    c.expires_at = c.issued_at + kMaxTokenLifetime + 1s;
    expect_refused(c, "lifetime over 30 days");
  }
  {
    auto c = base;
    c.issued_at = Clock::time_point(-1s);
    expect_refused(c, "before 1970");
  }
  {
    // 64 hosts of 200 characters fit the host cap but not the 8 KiB token cap.
    auto c = base;
    std::string label(60, 'a');
    std::string host = label + "." + label + "." + label + ".localhost";
    c.hosts.assign(kMaxTokenHosts, host);
    expect_refused(c, "token over 8 KiB");
  }
}

}  // namespace
}  // namespace wtmesh::tunnel
