// The edge's visitor auth (edge/visitor_gate.h): denied and allowed ranges before credentials, Basic
// credentials checked against salted hashes (the scheme case-insensitive, one Authorization field
// only), a passing field value remembered so the next request costs no PBKDF2, a wrong one never, and
// an unknown user costing the same as a wrong password.
#include "edge/visitor_gate.h"

#include <gtest/gtest.h>

namespace wtmesh::edge {
namespace {

using tunnel::HeaderPairs;

std::string basic(std::string_view user_pass) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    const uint32_t n =
        (uint8_t(user_pass[i]) << 16) | (uint8_t(user_pass[i + 1]) << 8) | uint8_t(user_pass[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += t[(n >> k) & 63];
  }
  if (i + 1 == user_pass.size()) {
    const uint32_t n = uint8_t(user_pass[i]) << 16;
    out += t[(n >> 18) & 63];
    out += t[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == user_pass.size()) {
    const uint32_t n = (uint8_t(user_pass[i]) << 16) | (uint8_t(user_pass[i + 1]) << 8);
    out += t[(n >> 18) & 63];
    out += t[(n >> 12) & 63];
    out += t[(n >> 6) & 63];
    out += '=';
  }
  return "Basic " + out;
}

tunnel::VisitorPolicy policy(std::vector<std::string> users, std::vector<std::string> allow = {},
                             std::vector<std::string> deny = {}) {
  tunnel::VisitorPolicy p;
  std::string error;
  for (const auto& u : users) p.basic.push_back(*tunnel::make_basic_credential(u, &error));
  for (const auto& a : allow) p.allow.push_back(*tunnel::parse_cidr(a, &error));
  for (const auto& d : deny) p.deny.push_back(*tunnel::parse_cidr(d, &error));
  return p;
}

const SteadyTime t0 = SteadyTime{} + std::chrono::hours(1);

TEST(VisitorGate, RangesComeFirstDenyWins) {
  VisitorGate gate(policy({}, {"127.0.0.0/8", "2001:db8::/32"}, {"127.0.0.2"}));
  EXPECT_EQ(gate.check("127.0.0.1", {}, t0).verdict, VisitorGate::Verdict::kAllow);
  EXPECT_EQ(gate.check("::ffff:127.0.0.1", {}, t0).verdict, VisitorGate::Verdict::kAllow);
  EXPECT_EQ(gate.check("2001:db8::7", {}, t0).verdict, VisitorGate::Verdict::kAllow);
  const auto denied = gate.check("127.0.0.2", {}, t0);
  EXPECT_EQ(denied.verdict, VisitorGate::Verdict::kForbidden);
  EXPECT_FALSE(denied.detail.empty());
  EXPECT_EQ(gate.check("10.0.0.1", {}, t0).verdict, VisitorGate::Verdict::kForbidden) << "outside allow";
  EXPECT_EQ(gate.check("", {}, t0).verdict, VisitorGate::Verdict::kForbidden) << "an unknown address";
  VisitorGate deny_only(policy({}, {}, {"10.0.0.0/8"}));
  EXPECT_EQ(deny_only.check("127.0.0.1", {}, t0).verdict, VisitorGate::Verdict::kAllow);
  EXPECT_EQ(deny_only.check("10.2.3.4", {}, t0).verdict, VisitorGate::Verdict::kForbidden);
  // A denied address gets 403 even with good credentials.
  VisitorGate both(policy({"a:b"}, {}, {"127.0.0.2"}));
  EXPECT_EQ(both.check("127.0.0.2", {{"authorization", basic("a:b")}}, t0).verdict,
            VisitorGate::Verdict::kForbidden);
  EXPECT_EQ(both.password_checks(), 0u) << "no PBKDF2 for a denied address";
}

TEST(VisitorGate, BasicCredentials) {
  VisitorGate gate(policy({"alice:wonder land", "bob:builder"}));
  const auto none = gate.check("127.0.0.1", {}, t0);
  EXPECT_EQ(none.verdict, VisitorGate::Verdict::kUnauthorized);
  EXPECT_EQ(none.detail, "This tunnel needs a user name and password.");
  const auto ok = gate.check("127.0.0.1", {{"Authorization", basic("alice:wonder land")}}, t0);
  EXPECT_EQ(ok.verdict, VisitorGate::Verdict::kAllow);
  EXPECT_TRUE(ok.strip_authorization);
  EXPECT_EQ(
      gate.check("127.0.0.1", {{"authorization", "bAsIc " + basic("bob:builder").substr(6)}}, t0).verdict,
      VisitorGate::Verdict::kAllow)
      << "the scheme is case-insensitive";
  const auto wrong = gate.check("127.0.0.1", {{"authorization", basic("alice:wonderland")}}, t0);
  EXPECT_EQ(wrong.verdict, VisitorGate::Verdict::kUnauthorized);
  EXPECT_EQ(wrong.detail, "The user name or password is wrong.");
  for (const std::string& bad :
       {std::string("Bearer abc"), std::string("Basic"), std::string("Basic !!!"), basic("alice"),
        basic("carol:builder"), std::string("Basic ") + std::string(2000, 'A')}) {
    EXPECT_EQ(gate.check("127.0.0.1", {{"authorization", bad}}, t0).verdict,
              VisitorGate::Verdict::kUnauthorized)
        << bad.substr(0, 40);
  }
  // Two Authorization fields: ambiguous, refused.
  EXPECT_EQ(gate.check("127.0.0.1",
                       {{"authorization", basic("bob:builder")}, {"authorization", basic("bob:builder")}}, t0)
                .verdict,
            VisitorGate::Verdict::kUnauthorized);
  EXPECT_NE(gate.challenge("app.localhost"), "");
  EXPECT_EQ(gate.challenge("app.localhost"), "Basic realm=\"app.localhost\", charset=\"UTF-8\"");
  EXPECT_EQ(gate.challenge("a\"b\\c\r\n"), "Basic realm=\"abc\", charset=\"UTF-8\"");
}

TEST(VisitorGate, APassingValueIsRememberedAWrongOneNever) {
  VisitorGate gate(policy({"alice:pw"}));
  const HeaderPairs good = {{"authorization", basic("alice:pw")}};
  ASSERT_EQ(gate.check("127.0.0.1", good, t0).verdict, VisitorGate::Verdict::kAllow);
  EXPECT_EQ(gate.password_checks(), 1u);
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(gate.check("127.0.0.1", good, t0).verdict, VisitorGate::Verdict::kAllow);
  EXPECT_EQ(gate.password_checks(), 1u) << "remembered";
  const HeaderPairs bad = {{"authorization", basic("alice:nope")}};
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(gate.check("127.0.0.1", bad, t0).verdict, VisitorGate::Verdict::kUnauthorized);
  EXPECT_EQ(gate.password_checks(), 4u) << "a wrong value is checked each time";
  // An unknown user costs a check too (its time does not tell which users exist).
  gate.check("127.0.0.1", {{"authorization", basic("mallory:pw")}}, t0);
  EXPECT_EQ(gate.password_checks(), 5u);
  // Past kRememberFor the value is checked again.
  ASSERT_EQ(gate.check("127.0.0.1", good, t0 + VisitorGate::kRememberFor + std::chrono::seconds(1)).verdict,
            VisitorGate::Verdict::kAllow);
  EXPECT_EQ(gate.password_checks(), 6u);
}

TEST(VisitorGate, TheRememberedSetIsBounded) {
  std::vector<std::string> users;
  for (size_t i = 0; i < 4; ++i) users.push_back("u" + std::to_string(i) + ":p");
  VisitorGate gate(policy(users));
  // Many distinct passing values (the same user with extra spaces are distinct field values).
  for (size_t i = 0; i < VisitorGate::kRemembered + 20; ++i) {
    const std::string value = "Basic" + std::string(1 + i, ' ') + basic("u1:p").substr(6);
    ASSERT_EQ(gate.check("127.0.0.1", {{"authorization", value}}, t0 + std::chrono::milliseconds(i)).verdict,
              VisitorGate::Verdict::kAllow)
        << i;
  }
  EXPECT_EQ(gate.password_checks(), VisitorGate::kRemembered + 20);
  EXPECT_EQ(gate.remembered(), VisitorGate::kRemembered);
}

}  // namespace
}  // namespace wtmesh::edge
