// Visitor auth policies (tunnel/visitor_policy.h): basic credentials as salted PBKDF2 hashes, CIDR
// ranges parsed strictly and matched for IPv4, IPv6 and IPv4-mapped addresses, the REGISTER options
// JSON both ways with its bounds, and the control frame carrying it.
#include "tunnel/visitor_policy.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tunnel/base64url.h"
#include "tunnel/control.h"
#include "tunnel/token.h"

namespace wtmesh::tunnel {
namespace {

using nlohmann::json;

TEST(VisitorPolicy, BasicCredentialsAreSaltedHashesThatCheckPasswords) {
  std::string error;
  const auto a = make_basic_credential("alice:s3cret:with:colons", &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->user, "alice");
  EXPECT_EQ(a->iterations, kBasicIterations);
  EXPECT_TRUE(basic_password_matches(*a, "s3cret:with:colons"))
      << "the password is all after the first colon";
  EXPECT_FALSE(basic_password_matches(*a, "s3cret"));
  EXPECT_FALSE(basic_password_matches(*a, ""));
  const auto b = make_basic_credential("alice:s3cret:with:colons", &error);
  ASSERT_TRUE(b);
  EXPECT_NE(a->salt, b->salt) << "a fresh salt each time";
  EXPECT_NE(a->hash, b->hash);
  for (const char* bad : {"nocolon", ":pass", "user:", "us\ner:pass"}) {
    EXPECT_FALSE(make_basic_credential(bad, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
  EXPECT_FALSE(make_basic_credential(std::string(kMaxBasicUser + 1, 'u') + ":p", &error));
  EXPECT_FALSE(make_basic_credential("u:" + std::string(kMaxBasicPassword + 1, 'p'), &error));
  EXPECT_TRUE(make_basic_credential("u:" + std::string(kMaxBasicPassword, 'p'), &error));
}

TEST(VisitorPolicy, PasswordHashIsPbkdf2HmacSha256) {
  // A hash any PBKDF2-HMAC-SHA256 derives, so edges and agents of other builds agree: password
  // "password", salt 16 zero bytes, 1 iteration (Python: hashlib.pbkdf2_hmac("sha256", b"password",
  // bytes(16), 1)).
  BasicCredential c;
  c.user = "u";
  c.iterations = 1;
  const uint8_t want[32] = {0x1f, 0xef, 0xe1, 0x25, 0xab, 0x13, 0xdd, 0x2c, 0x06, 0xdb, 0x86,
                            0x71, 0x1e, 0xc4, 0x48, 0xe9, 0x49, 0x0e, 0x6c, 0x73, 0x02, 0x4d,
                            0x7d, 0x8d, 0x65, 0x91, 0x26, 0xc6, 0xf9, 0xfa, 0xdd, 0x68};
  std::copy(std::begin(want), std::end(want), c.hash.begin());
  EXPECT_TRUE(basic_password_matches(c, "password"));
  c.iterations = 2;
  EXPECT_FALSE(basic_password_matches(c, "password")) << "the iteration count is part of the hash";
}

TEST(VisitorPolicy, CidrRangesParseStrictlyAndMatch) {
  std::string error;
  const auto v4 = parse_cidr("10.0.0.0/8", &error);
  ASSERT_TRUE(v4) << error;
  EXPECT_TRUE(v4->v4);
  EXPECT_EQ(v4->prefix, 8);
  EXPECT_EQ(to_string(*v4), "10.0.0.0/8");
  EXPECT_TRUE(cidr_contains(*v4, "10.1.2.3"));
  EXPECT_TRUE(cidr_contains(*v4, "::ffff:10.9.9.9")) << "IPv4-mapped IPv6 is the IPv4 address";
  EXPECT_FALSE(cidr_contains(*v4, "11.0.0.1"));
  EXPECT_FALSE(cidr_contains(*v4, "::1"));
  EXPECT_FALSE(cidr_contains(*v4, "not an address"));
  const auto host = parse_cidr("192.168.1.7", &error);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix, 32);
  EXPECT_TRUE(cidr_contains(*host, "192.168.1.7"));
  EXPECT_FALSE(cidr_contains(*host, "192.168.1.8"));
  const auto v6 = parse_cidr("2001:db8::/32", &error);
  ASSERT_TRUE(v6) << error;
  EXPECT_FALSE(v6->v4);
  EXPECT_TRUE(cidr_contains(*v6, "2001:db8:1::5"));
  EXPECT_FALSE(cidr_contains(*v6, "2001:db9::1"));
  EXPECT_FALSE(cidr_contains(*v6, "10.0.0.1"));
  const auto all = parse_cidr("0.0.0.0/0", &error);
  ASSERT_TRUE(all);
  EXPECT_TRUE(cidr_contains(*all, "203.0.113.9"));
  const auto odd = parse_cidr("10.0.0.0/9", &error);
  ASSERT_TRUE(odd);
  EXPECT_TRUE(cidr_contains(*odd, "10.127.255.255"));
  EXPECT_FALSE(cidr_contains(*odd, "10.128.0.0"));
  EXPECT_TRUE(parse_cidr("::1", &error));
  for (const char* bad : {"10.1.0.0/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8",
                          "host.example/8", "", "/8", "10.0.0.0/08x"}) {
    EXPECT_FALSE(parse_cidr(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(VisitorPolicy, JsonRoundTripAndBounds) {
  std::string error;
  VisitorPolicy p;
  p.basic.push_back(*make_basic_credential("alice:one", &error));
  p.basic.push_back(*make_basic_credential("bob:two", &error));
  p.allow.push_back(*parse_cidr("127.0.0.0/8", &error));
  p.deny.push_back(*parse_cidr("127.0.0.2", &error));
  p.deny.push_back(*parse_cidr("fe80::/10", &error));
  const json j = encode_visitor_policy(p);
  EXPECT_EQ(j["allow_cidr"], json::array({"127.0.0.0/8"}));
  EXPECT_EQ(j["deny_cidr"], json::array({"127.0.0.2/32", "fe80::/10"}));
  EXPECT_EQ(j["basic"][0]["user"], "alice");
  EXPECT_EQ(j.dump().find("\"one\""), std::string::npos) << "no password in the JSON";
  const auto back = decode_visitor_policy(j, &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(*back, p);
  EXPECT_TRUE(basic_password_matches(back->basic[1], "two"));
  EXPECT_EQ(encode_visitor_policy(VisitorPolicy{}), json::object()) << "nothing asked: nothing sent";

  auto bad = [&](json v) {
    std::string e;
    EXPECT_FALSE(decode_visitor_policy(v, &e)) << v.dump();
    EXPECT_FALSE(e.empty());
  };
  bad(json::array());
  bad({{"basic", "alice"}});
  bad({{"basic", json::array({{{"user", "a"}}})}});  // no salt, hash, iter
  json c = j["basic"][0];
  c["iter"] = kMaxBasicIterations + 1;
  bad({{"basic", json::array({c})}});
  c = j["basic"][0];
  c["iter"] = 0;
  bad({{"basic", json::array({c})}});
  c = j["basic"][0];
  c["salt"] = base64url_encode(std::string(15, 'x'));
  bad({{"basic", json::array({c})}});
  c = j["basic"][0];
  c["user"] = "a:b";
  bad({{"basic", json::array({c})}});
  json many = json::array();
  for (size_t i = 0; i <= kMaxBasicCredentials; ++i) many.push_back(j["basic"][0]);
  bad({{"basic", many}});
  json ranges = json::array();
  for (size_t i = 0; i <= kMaxCidrs; ++i) ranges.push_back("10.0.0.0/8");
  bad({{"allow_cidr", ranges}});
  bad({{"deny_cidr", json::array({"10.1.0.0/8"})}});
  bad({{"deny_cidr", json::array({42})}});
  EXPECT_TRUE(decode_visitor_policy({{"future", 1}}, &error)) << "unknown members are ignored";
}

TEST(VisitorPolicy, RegisterCarriesItAndTheLargestFitsAFrame) {
  std::string error;
  Register reg{3, "http", "app.localhost"};
  for (size_t i = 0; i < kMaxBasicCredentials; ++i) {
    reg.visitor.basic.push_back(
        *make_basic_credential(std::string(kMaxBasicUser - 2, 'u') + std::to_string(10 + i) + ":p", &error));
  }
  for (size_t i = 0; i < kMaxCidrs; ++i) {
    reg.visitor.allow.push_back(
        *parse_cidr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:" + std::to_string(1000 + i), &error));
    reg.visitor.deny.push_back(
        *parse_cidr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:" + std::to_string(2000 + i), &error));
  }
  for (size_t i = 0; i < kMaxTokenKeys; ++i)
    reg.visitor.token_keys.push_back(SigningKey::generate().public_pem());
  reg.visitor.challenge = true;
  const auto bytes = encode(reg);
  EXPECT_LT(bytes.size(), 16u * 1024) << "the largest policy fits the 16 KiB control frame";
  ControlReader reader;
  std::vector<ControlFrame> frames;
  ASSERT_EQ(reader.feed(bytes, frames), WireError::kNone);
  ASSERT_EQ(frames.size(), 1u);
  const auto d = decode(frames[0]);
  ASSERT_TRUE(d.ok()) << d.describe();
  const Register* got = d.get<Register>();
  ASSERT_NE(got, nullptr);
  EXPECT_TRUE(got->visitor_error.empty()) << got->visitor_error;
  EXPECT_EQ(got->visitor, reg.visitor);
  // A malformed member is kept as an error for the edge to refuse, not a protocol error.
  const auto m = decode(ControlFrame{static_cast<uint64_t>(ControlType::kRegister),
                                     R"({"id":1,"type":"http","hostname":"a.localhost",)"
                                     R"("options":{"visitor":{"allow_cidr":["x"]}}})"});
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m.get<Register>()->visitor_error.empty());
  EXPECT_TRUE(m.get<Register>()->visitor.empty());
}

}  // namespace
}  // namespace wtmesh::tunnel

namespace wtmesh::tunnel {
namespace {

TEST(VisitorPolicy, TokenKeysAndChallengeInJson) {
  const SigningKey owner = SigningKey::generate();
  std::string error;
  // --require-token FILE takes the owner's private key file or its public key: the public half either way.
  const auto from_private = visitor_token_key(owner.private_pem(), &error);
  ASSERT_TRUE(from_private) << error;
  EXPECT_EQ(*from_private, owner.public_pem());
  EXPECT_EQ(visitor_token_key(owner.public_pem(), &error), owner.public_pem());
  EXPECT_FALSE(visitor_token_key("nonsense", &error));
  EXPECT_FALSE(error.empty());

  VisitorPolicy p;
  p.token_keys.push_back(owner.public_pem());
  p.challenge = true;
  const json j = encode_visitor_policy(p);
  EXPECT_EQ(j["challenge"], true);
  EXPECT_EQ(j["token_keys"][0], owner.public_pem());
  EXPECT_EQ(decode_visitor_policy(j, &error), p);
  EXPECT_FALSE(encode_visitor_policy(VisitorPolicy{}).contains("challenge"));
  const auto bad = [&](json v) {
    error.clear();
    return !decode_visitor_policy(v, &error) && !error.empty();
  };
  EXPECT_TRUE(bad({{"challenge", "yes"}}));
  EXPECT_TRUE(bad({{"token_keys", "x"}}));
  EXPECT_TRUE(bad({{"token_keys", {"not a key"}}}));
  EXPECT_TRUE(bad({{"token_keys", {owner.private_pem()}}})) << "a private key never goes to the edge";
  EXPECT_TRUE(bad({{"token_keys", {owner.public_pem() + std::string(600, ' ')}}}));
  EXPECT_TRUE(bad({{"token_keys", std::vector<std::string>(kMaxTokenKeys + 1, owner.public_pem())}}));
}

TEST(VisitorPolicy, OperatorBoundsWin) {
  VisitorPolicy none, basic, token, challenge, range, both;
  std::string error;
  basic.basic.push_back(*make_basic_credential("a:b", &error, 1));
  token.token_keys.push_back(SigningKey::generate().public_pem());
  challenge.challenge = true;
  range.allow.push_back(*parse_cidr("10.0.0.0/8", &error));
  both = token;
  both.challenge = true;  // the token skips the check page: credentials are not required
  EXPECT_EQ(parse_visitor_auth_min("challenge"), VisitorAuthMin::kChallenge);
  EXPECT_FALSE(parse_visitor_auth_min("strong"));
  const auto ok = [](const VisitorPolicy& p, VisitorAuthMin m) {
    return visitor_auth_shortfall(p, m).empty();
  };
  for (const auto* p : {&none, &basic, &token, &challenge, &range, &both})
    EXPECT_TRUE(ok(*p, VisitorAuthMin::kNone));
  EXPECT_FALSE(ok(none, VisitorAuthMin::kAny));
  for (const auto* p : {&basic, &token, &challenge, &range, &both}) EXPECT_TRUE(ok(*p, VisitorAuthMin::kAny));
  EXPECT_FALSE(ok(range, VisitorAuthMin::kChallenge));
  for (const auto* p : {&basic, &token, &challenge, &both}) EXPECT_TRUE(ok(*p, VisitorAuthMin::kChallenge));
  EXPECT_TRUE(ok(basic, VisitorAuthMin::kCredentials));
  EXPECT_TRUE(ok(token, VisitorAuthMin::kCredentials));
  EXPECT_FALSE(ok(challenge, VisitorAuthMin::kCredentials));
  EXPECT_NE(visitor_auth_shortfall(both, VisitorAuthMin::kCredentials).find("--challenge would let"),
            std::string::npos);
}

}  // namespace
}  // namespace wtmesh::tunnel
