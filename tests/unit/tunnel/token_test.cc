// Tests for ES256 token signing and verification (tunnel/token.h): round trip, one crafted token per
// error kind, time boundaries with an injected clock, and the 8 KiB / 64-host caps.
#include "tunnel/token.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "tunnel_test_util.h"

namespace wtmesh::tunnel {
namespace {

using namespace test;

class TokenTest : public ::testing::Test {
 protected:
  TokenTest() : key_(SigningKey::generate()) { keys_.add_pem(key_.public_pem()); }

  VerifyResult verify(const std::string& token, Clock::time_point now = kNow) const {
    return keys_.verify(token, now);
  }
  // Expects verification to fail with `e`; returns the message.
  std::string expect_error(const std::string& token, TokenError e, Clock::time_point now = kNow) const {
    VerifyResult r = verify(token, now);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.error(), e) << "got " << to_string(r.error()) << ": " << r.message();
    EXPECT_FALSE(r.message().empty());
    return r.message();
  }
  std::string signed_payload(const json& payload) const {
    return craft(key_, header_json(key_.kid()), payload);
  }

  SigningKey key_;
  VerifierKeySet keys_;
};

TEST_F(TokenTest, RoundTrip) {
  TokenClaims c = sample_claims();
  std::string token = key_.sign(c);
  VerifyResult r = verify(token);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.claims(), c);
  EXPECT_EQ(r.kid(), key_.kid());
  EXPECT_TRUE(r.message().empty());
}

TEST_F(TokenTest, WireFormat) {
  std::string token = key_.sign(sample_claims());
  Parts p = split(token);
  auto header = json::parse(*base64url_decode(p.header, 1000));
  EXPECT_EQ(header, json({{"alg", "ES256"}, {"typ", "JWT"}, {"kid", key_.kid()}}));
  auto payload = json::parse(*base64url_decode(p.payload, 1000));
  EXPECT_EQ(payload["aud"], "wtmesh-edge");
  EXPECT_EQ(payload["sub"], "alice");
  EXPECT_EQ(payload["iat"], 1'700'000'000);
  EXPECT_EQ(payload["nbf"], 1'700'000'000);
  EXPECT_EQ(payload["exp"], 1'700'000'600);
  EXPECT_EQ(payload["hosts"], json({"alice.localhost", "*.alice.localhost"}));
  EXPECT_TRUE(payload["jti"].is_string());
  EXPECT_EQ(base64url_decode(p.signature, 100)->size(), 64u);
  EXPECT_EQ(key_.kid().size(), 16u);
}

TEST_F(TokenTest, UnknownClaimsAndTypCaseAreAccepted) {
  json payload = payload_json(sample_claims());
  payload["extra"] = {{"nested", {1, 2, 3}}};
  json header = header_json(key_.kid());
  header["typ"] = "jwt";
  EXPECT_TRUE(verify(craft(key_, header, payload)).ok());
  header.erase("typ");
  EXPECT_TRUE(verify(craft(key_, header, payload)).ok());
}

// --- kMalformed ------------------------------------------------------------------------------------

TEST_F(TokenTest, MalformedStructure) {
  std::string good = key_.sign(sample_claims());
  Parts p = split(good);
  for (std::string t :
       {std::string(""), std::string("abc"), p.header + "." + p.payload, good + "." + p.signature,
        std::string(".."), std::string("..."), p.header + ".." + p.payload + "." + p.signature}) {
    expect_error(t, TokenError::kMalformed);
  }
}

TEST_F(TokenTest, MalformedHeader) {
  Parts p = split(key_.sign(sample_claims()));
  auto with_header = [&](const std::string& header_b64) {
    return header_b64 + "." + p.payload + "." + p.signature;
  };
  expect_error(with_header(p.header + "="), TokenError::kMalformed);            // padding
  expect_error(with_header("!" + p.header.substr(1)), TokenError::kMalformed);  // invalid char
  expect_error(with_header(base64url_encode("not json")), TokenError::kMalformed);
  expect_error(with_header(base64url_encode("[\"ES256\"]")), TokenError::kMalformed);
  expect_error(with_header(base64url_encode(header_json(key_.kid()).dump() + "x")), TokenError::kMalformed);
  expect_error(with_header(base64url_encode("{\"alg\":123,\"kid\":\"" + key_.kid() + "\"}")),
               TokenError::kMalformed);
  expect_error(with_header(base64url_encode("{\"kid\":\"" + key_.kid() + "\"}")),
               TokenError::kMalformed);  // no alg
  expect_error(with_header(base64url_encode("{\"alg\":\"ES256\",\"kid\":7}")), TokenError::kMalformed);
  expect_error(with_header(base64url_encode("{\"alg\":\"ES256\",\"kid\":\"" + std::string(65, 'k') + "\"}")),
               TokenError::kMalformed);
}

TEST_F(TokenTest, MalformedHeaderFieldsEvenWhenSigned) {
  json payload = payload_json(sample_claims());
  json h = header_json(key_.kid());
  h["typ"] = "JOSE+JSON";
  expect_error(craft(key_, h, payload), TokenError::kMalformed);
  h = header_json(key_.kid());
  h["crit"] = {"exp"};
  EXPECT_NE(expect_error(craft(key_, h, payload), TokenError::kMalformed).find("crit"), std::string::npos);
  h = header_json(key_.kid());
  h["b64"] = false;
  h["crit"] = {"b64"};
  expect_error(craft(key_, h, payload), TokenError::kMalformed);
}

TEST_F(TokenTest, DuplicateMembersAreMalformed) {
  // Header: a parser keeping the first alg would see "none", one keeping the last would see ES256.
  std::string payload = payload_json(sample_claims()).dump();
  std::string dup_header = R"({"alg":"none","alg":"ES256","kid":")" + key_.kid() + "\"}";
  EXPECT_NE(expect_error(key_.sign_jws(dup_header, payload), TokenError::kMalformed).find("duplicate"),
            std::string::npos);
  // Payload: two "hosts" members, properly signed.
  std::string dup_payload = payload;
  dup_payload.insert(1, R"("hosts":["*.localhost"],)");
  expect_error(key_.sign_jws(header_json(key_.kid()).dump(), dup_payload), TokenError::kMalformed);
  // Duplicates inside a nested (ignored) claim are refused too.
  std::string nested = payload;
  nested.insert(1, R"("x":{"a":1,"a":2},)");
  expect_error(key_.sign_jws(header_json(key_.kid()).dump(), nested), TokenError::kMalformed);
  // The same name in two different objects is fine.
  std::string distinct = payload;
  distinct.insert(1, R"("x":{"sub":1},)");
  EXPECT_TRUE(verify(key_.sign_jws(header_json(key_.kid()).dump(), distinct)).ok());
}

TEST_F(TokenTest, MalformedSignedPayloads) {
  std::string header = header_json(key_.kid()).dump();
  auto signed_raw = [&](const std::string& payload_b64) {
    std::string input = base64url_encode(header) + "." + payload_b64;
    return input + "." + base64url_encode(key_.signature(input));
  };
  expect_error(signed_raw(base64url_encode(payload_json(sample_claims()).dump()) + "="),
               TokenError::kMalformed);
  expect_error(signed_raw("@@@@"), TokenError::kMalformed);
  expect_error(signed_raw(""), TokenError::kMalformed);
  expect_error(key_.sign_jws(header, "not json"), TokenError::kMalformed);
  expect_error(key_.sign_jws(header, "[1,2]"), TokenError::kMalformed);
  expect_error(key_.sign_jws(header, "\"str\""), TokenError::kMalformed);
  expect_error(key_.sign_jws(header, "{\"sub\":\"\xff\"}"), TokenError::kMalformed);  // invalid UTF-8
  json deep = payload_json(sample_claims());
  json nest = 1;
  for (int i = 0; i < 20; ++i) nest = json::array({nest});
  deep["deep"] = nest;
  EXPECT_NE(expect_error(signed_payload(deep), TokenError::kMalformed).find("deeper"), std::string::npos);
}

TEST_F(TokenTest, MalformedClaims) {
  const json good = payload_json(sample_claims());
  auto with = [&](const char* name, json value) {
    json p = good;
    p[name] = std::move(value);
    return signed_payload(p);
  };
  auto without = [&](const char* name) {
    json p = good;
    p.erase(name);
    return signed_payload(p);
  };
  for (const char* name : {"sub", "aud", "iat", "nbf", "exp", "jti", "hosts"}) {
    expect_error(without(name), TokenError::kMalformed);
  }
  expect_error(with("exp", "1700000600"), TokenError::kMalformed);  // string date
  expect_error(with("exp", 1700000600.5), TokenError::kMalformed);  // fractional date
  expect_error(with("iat", -1), TokenError::kMalformed);
  expect_error(with("exp", int64_t{1} << 33), TokenError::kMalformed);
  expect_error(with("exp", uint64_t{18446744073709551615u}), TokenError::kMalformed);
  expect_error(with("exp", 1e30), TokenError::kMalformed);
  expect_error(with("exp", 1'700'000'000), TokenError::kMalformed);  // exp == iat
  expect_error(with("exp", 1'700'000'000 + kMaxTokenLifetime.count() + 1), TokenError::kMalformed);
  expect_error(with("nbf", 1'700'000'700), TokenError::kMalformed);  // nbf after exp
  expect_error(with("sub", 5), TokenError::kMalformed);
  expect_error(with("sub", ""), TokenError::kMalformed);
  expect_error(with("sub", std::string(kMaxSubjectSize + 1, 's')), TokenError::kMalformed);
  expect_error(with("jti", json::array()), TokenError::kMalformed);
  expect_error(with("jti", std::string(kMaxJtiSize + 1, 'j')), TokenError::kMalformed);
  expect_error(with("aud", json::array({"wtmesh-edge"})), TokenError::kMalformed);  // string only
  expect_error(with("hosts", "alice.localhost"), TokenError::kMalformed);
  expect_error(with("hosts", json::array()), TokenError::kMalformed);
  expect_error(with("hosts", json::array({"alice.localhost", 7})), TokenError::kMalformed);
  expect_error(with("hosts", json::array({"alice.localhost:443"})), TokenError::kMalformed);
  expect_error(with("hosts", json::array({"a.*.localhost"})), TokenError::kMalformed);
}

TEST_F(TokenTest, HostsCapIs64) {
  json p = payload_json(sample_claims());
  p["hosts"] = json::array();
  for (size_t i = 0; i < kMaxTokenHosts; ++i) p["hosts"].push_back(std::string("h").append(std::to_string(i)).append(".localhost"));
  ASSERT_TRUE(verify(signed_payload(p)).ok());
  p["hosts"].push_back("one-more.localhost");
  EXPECT_NE(expect_error(signed_payload(p), TokenError::kMalformed).find("64"), std::string::npos);
}

TEST_F(TokenTest, TokenSizeCapIs8KiB) {
  // Pad an ignored claim until the whole token is exactly kMaxTokenSize bytes.
  json p = payload_json(sample_claims());
  auto token_with_pad = [&](size_t n) {
    p["pad"] = std::string(n, 'p');
    return signed_payload(p);
  };
  size_t base = token_with_pad(0).size();
  // Each 3 payload bytes add 4 token characters; find the pad that lands exactly on the cap.
  std::string exact;
  for (size_t n = (kMaxTokenSize - base) * 3 / 4 - 4; n < (kMaxTokenSize - base) * 3 / 4 + 4; ++n) {
    std::string t = token_with_pad(n);
    if (t.size() == kMaxTokenSize) exact = t;
  }
  ASSERT_EQ(exact.size(), kMaxTokenSize);
  EXPECT_TRUE(verify(exact).ok());
  std::string over = token_with_pad((kMaxTokenSize - base) * 3 / 4 + 3);
  ASSERT_GT(over.size(), kMaxTokenSize);
  EXPECT_NE(expect_error(over, TokenError::kMalformed).find("8192"), std::string::npos);
  expect_error(std::string(1 << 20, 'A'), TokenError::kMalformed);
}

// --- kWrongAudience, kExpired, kNotYetValid ---------------------------------------------------------

TEST_F(TokenTest, WrongAudience) {
  for (const char* aud : {"other", "WTMESH-EDGE", "wtmesh-edge ", "wtmesh"}) {
    json p = payload_json(sample_claims());
    p["aud"] = aud;
    expect_error(signed_payload(p), TokenError::kWrongAudience);
  }
  TokenClaims c = sample_claims();
  c.audience = "someone-else";
  expect_error(key_.sign(c), TokenError::kWrongAudience);
}

TEST_F(TokenTest, ExpiryBoundariesWithLeeway) {
  TokenClaims c = sample_claims(kNow, 600s);
  std::string token = key_.sign(c);
  // Valid while now < exp + leeway (30 s by default).
  EXPECT_TRUE(keys_.verify(token, c.expires_at - 1s).ok());
  EXPECT_TRUE(keys_.verify(token, c.expires_at).ok());
  EXPECT_TRUE(keys_.verify(token, c.expires_at + 30s - 1ns).ok());
  expect_error(token, TokenError::kExpired, c.expires_at + 30s);
  expect_error(token, TokenError::kExpired, c.expires_at + 24h);
  // Without leeway, exp itself is already expired.
  EXPECT_TRUE(keys_.verify(token, c.expires_at - 1ns, 0s).ok());
  EXPECT_EQ(keys_.verify(token, c.expires_at, 0s).error(), TokenError::kExpired);
  // Leeway is clamped to kMaxLeeway (5 minutes).
  EXPECT_TRUE(keys_.verify(token, c.expires_at + 299s, 10000s).ok());
  EXPECT_EQ(keys_.verify(token, c.expires_at + 300s, 10000s).error(), TokenError::kExpired);
  // A negative leeway counts as zero.
  EXPECT_TRUE(keys_.verify(token, c.expires_at - 1s, -100s).ok());
}

TEST_F(TokenTest, NotBeforeBoundariesWithLeeway) {
  TokenClaims c = sample_claims(kNow, 600s);
  c.not_before = kNow + 60s;
  std::string token = key_.sign(c);
  EXPECT_TRUE(keys_.verify(token, kNow + 30s).ok());  // nbf - leeway
  expect_error(token, TokenError::kNotYetValid, kNow + 30s - 1ns);
  expect_error(token, TokenError::kNotYetValid, kNow);
  EXPECT_EQ(keys_.verify(token, kNow + 60s - 1ns, 0s).error(), TokenError::kNotYetValid);
  EXPECT_TRUE(keys_.verify(token, kNow + 60s, 0s).ok());
}

TEST_F(TokenTest, IssuedInTheFutureIsNotYetValid) {
  TokenClaims c = sample_claims(kNow, 600s);
  c.not_before = kNow - 600s;  // nbf alone would allow it
  std::string token = key_.sign(c);
  EXPECT_TRUE(keys_.verify(token, kNow - 30s).ok());
  expect_error(token, TokenError::kNotYetValid, kNow - 30s - 1ns);
}

}  // namespace
}  // namespace wtmesh::tunnel
