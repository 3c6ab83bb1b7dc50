// Tests for agent credentials (tunnel/credential.h): the file round trip, minting and verifying
// session tokens, every refusal of the verifier (times, lifetime, keys, stolen grants, mismatched
// claims), the grant never passing as a bearer token, the revocation list and RENEW / RENEWED frames.
#include "tunnel/credential.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "tunnel/control.h"
#include "tunnel/revocation.h"
#include "tunnel_test_util.h"

namespace wtmesh::tunnel {
namespace {

using namespace test;

class CredentialTest : public ::testing::Test {
 protected:
  CredentialTest()
      : edge_(SigningKey::generate()),
        cred_(Credential::issue(edge_, "app", {"app.localhost"}, {"db.localhost"}, 24h, kNow)) {
    keys_.add_pem(edge_.public_pem());
  }

  VerifyResult verify(const std::string& token, Clock::time_point now = kNow,
                      std::chrono::seconds max_ttl = kDefaultSessionTokenTtl) const {
    return verify_session_token(token, keys_, now, max_ttl);
  }
  std::string expect_error(const std::string& token, TokenError e, Clock::time_point now = kNow,
                           std::chrono::seconds max_ttl = kDefaultSessionTokenTtl) const {
    VerifyResult r = verify(token, now, max_ttl);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.error(), e) << "got " << to_string(r.error()) << ": " << r.message();
    EXPECT_FALSE(r.message().empty());
    return r.message();
  }
  // The agent's own key, as the file holds it.
  SigningKey agent_key() const {
    return SigningKey::from_pem(json::parse(cred_.to_json())["key"].get<std::string>());
  }
  // A session token with `payload`, the credential's grant in the header, signed by `key`.
  std::string session_token(const SigningKey& key, const json& payload, const std::string& grant = "") const {
    const json header = {
        {"alg", "ES256"}, {"typ", "wtmesh-session"}, {"grant", grant.empty() ? cred_.grant() : grant}};
    return key.sign_jws(header.dump(), payload.dump());
  }
  json good_payload() const {
    return {{"sub", "app"},         {"aud", "wtmesh-edge"}, {"iat", 1'700'000'000}, {"nbf", 1'700'000'000},
            {"exp", 1'700'000'060}, {"jti", "abcdefgh"},    {"cid", cred_.id()}};
  }

  SigningKey edge_;
  VerifierKeySet keys_;
  Credential cred_;
};

TEST_F(CredentialTest, FileRoundTripAndMode) {
  EXPECT_TRUE(is_valid_credential_id(cred_.id()));
  EXPECT_EQ(cred_.name(), "app");
  EXPECT_EQ(cred_.expires_at(), kNow + 24h);
  std::string why;
  auto again = Credential::parse(cred_.to_json(), &why);
  ASSERT_TRUE(again) << why;
  EXPECT_EQ(again->id(), cred_.id());
  EXPECT_EQ(again->scope(), cred_.scope());
  EXPECT_EQ(again->grant(), cred_.grant());
  TempDir dir;
  const auto file = dir.path() / "agent.cred";
  cred_.save(file);
  EXPECT_EQ(mode_of(file), 0600u);
  EXPECT_EQ(Credential::load(file).id(), cred_.id());
  // The file holds the key, so a token minted from the loaded copy verifies.
  EXPECT_TRUE(verify(Credential::load(file).mint(60s, kNow)).ok());
}

TEST_F(CredentialTest, MintedTokenVerifiesWithTheGrantsScope) {
  const std::string token = cred_.mint(60s, kNow);
  EXPECT_TRUE(is_session_token(token));
  EXPECT_LE(token.size(), kMaxTokenSize);
  VerifyResult r = verify(token);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.kid(), edge_.kid());
  EXPECT_EQ(r.claims().subject, "app");
  EXPECT_EQ(r.claims().credential_id, cred_.id());
  EXPECT_EQ(r.claims().hosts, std::vector<std::string>{"app.localhost"});
  EXPECT_EQ(r.claims().connect, std::vector<std::string>{"db.localhost"});
  EXPECT_EQ(r.claims().expires_at, kNow + 60s);
  EXPECT_EQ(r.claims().audience, kTokenAudience);
  // Two mints differ in jti (the edge's replay cache keys on it).
  EXPECT_NE(verify(cred_.mint(60s, kNow)).claims().id, r.claims().id);
}

TEST_F(CredentialTest, GrantAndSessionTokenAreNotBearerTokens) {
  EXPECT_FALSE(keys_.verify(cred_.grant(), kNow).ok());
  EXPECT_FALSE(keys_.verify(cred_.mint(60s, kNow), kNow).ok());
  EXPECT_FALSE(is_session_token(cred_.grant()));
  EXPECT_FALSE(is_session_token(edge_.sign(sample_claims())));
  // Nor is the grant a session token.
  expect_error(cred_.grant(), TokenError::kMalformed);
}

TEST_F(CredentialTest, LifetimeBoundByTheEdgesMaximumAndTheCredential) {
  const std::string m = expect_error(cred_.mint(300s, kNow), TokenError::kMalformed, kNow, 60s);
  EXPECT_NE(m.find("maximum of 60 s"), std::string::npos) << m;
  EXPECT_TRUE(verify(cred_.mint(60s, kNow), kNow, 60s).ok());
  // Minting near the credential's end cuts the token to it; after the end there is nothing to mint.
  const std::string late = cred_.mint(300s, kNow + 24h - 20s);
  VerifyResult r = verify(late, kNow + 24h - 20s);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.claims().expires_at, kNow + 24h);
  EXPECT_THROW(cred_.mint(60s, kNow + 24h), std::runtime_error);
  EXPECT_THROW(cred_.mint(5s, kNow), std::invalid_argument);
  // A hand-made token that outlives the grant is refused.
  json p = good_payload();
  p["iat"] = p["nbf"] = 1'700'000'000 + 24 * 3600 - 30;
  p["exp"] = 1'700'000'000 + 24 * 3600 + 30;
  expect_error(session_token(agent_key(), p), TokenError::kMalformed, kNow + 24h - 10s);
}

TEST_F(CredentialTest, TimeWindow) {
  const std::string token = cred_.mint(60s, kNow);
  EXPECT_TRUE(verify(token, kNow + 60s + kDefaultLeeway - 1s).ok());
  expect_error(token, TokenError::kExpired, kNow + 60s + kDefaultLeeway);
  expect_error(token, TokenError::kNotYetValid, kNow - kDefaultLeeway - 1s);
  // The credential's own expiry: a token minted at the end is refused once the grant is over.
  expect_error(cred_.mint(60s, kNow + 24h - 15s), TokenError::kExpired, kNow + 24h + kDefaultLeeway);
}

TEST_F(CredentialTest, OtherEdgeAndForgedGrants) {
  VerifierKeySet other;
  other.add_pem(SigningKey::generate().public_pem());
  VerifyResult r = verify_session_token(cred_.mint(60s, kNow), other, kNow, 300s);
  EXPECT_EQ(r.error(), TokenError::kUnknownKey);
  // A grant the agent made itself (its own key signing), claiming the edge's kid: bad signature.
  const Credential self_made =
      Credential::issue(agent_key(), "app", {"*.localhost"}, {"*.localhost"}, 24h, kNow);
  std::string grant = self_made.grant();
  Parts g = split(grant);
  json h = json::parse(*base64url_decode(g.header, 1024));
  h["kid"] = edge_.kid();
  const std::string forged = base64url_encode(h.dump()) + "." + g.payload + "." + g.signature;
  expect_error(session_token(agent_key(), good_payload(), forged), TokenError::kBadSignature);
}

TEST_F(CredentialTest, StolenGrantWithAnotherKeyIsRefused) {
  // A thief who saw a session token has the grant, not the agent's key.
  expect_error(session_token(SigningKey::generate(), good_payload()), TokenError::kBadSignature);
  EXPECT_TRUE(verify(session_token(agent_key(), good_payload())).ok());
}

TEST_F(CredentialTest, ClaimsMustMatchTheGrant) {
  const SigningKey key = agent_key();
  auto with = [&](const char* name, const json& value) {
    json p = good_payload();
    p[name] = value;
    return session_token(key, p);
  };
  expect_error(with("sub", "other"), TokenError::kMalformed);
  expect_error(with("cid", "AAAAAAAAAAAAAAAAAAAAAA"), TokenError::kMalformed);
  expect_error(with("aud", "wtmesh-grant"), TokenError::kWrongAudience);
  expect_error(with("jti", "has space"), TokenError::kMalformed);
  expect_error(with("exp", "soon"), TokenError::kMalformed);
  expect_error(with("exp", 1'700'000'000), TokenError::kMalformed);
  json p = good_payload();
  p.erase("cid");
  expect_error(session_token(key, p), TokenError::kMalformed);
  const json bad_alg = {{"alg", "HS256"}, {"typ", "wtmesh-session"}, {"grant", cred_.grant()}};
  expect_error(key.sign_jws(bad_alg.dump(), good_payload().dump()), TokenError::kUnsupportedAlg);
  const json crit = {
      {"alg", "ES256"}, {"typ", "wtmesh-session"}, {"grant", cred_.grant()}, {"crit", json::array()}};
  expect_error(key.sign_jws(crit.dump(), good_payload().dump()), TokenError::kMalformed);
  expect_error(std::string(kMaxTokenSize + 1, 'a'), TokenError::kMalformed);
  expect_error("a.b", TokenError::kMalformed);
}

TEST_F(CredentialTest, ParseRefusals) {
  std::string why;
  EXPECT_FALSE(Credential::parse("not json", &why));
  EXPECT_FALSE(Credential::parse(std::string(kMaxCredentialFile + 1, ' '), &why));
  EXPECT_NE(why.find("larger"), std::string::npos);
  json j = json::parse(cred_.to_json());
  auto refused = [&](json v, const std::string& want) {
    std::string w;
    EXPECT_FALSE(Credential::parse(v.dump(), &w));
    EXPECT_NE(w.find(want), std::string::npos) << w;
  };
  json v = j;
  v["wtmesh_credential"] = 2;
  refused(v, "version 1");
  v = j;
  v.erase("grant");
  refused(v, "must all be strings");
  v = j;
  v["key"] = json::parse(Credential::issue(edge_, "app", {"app.localhost"}, {}, 1h, kNow).to_json())["key"];
  refused(v, "another key");
  v = j;
  v["id"] = "otherid";
  refused(v, "another id or name");
  v = j;
  v["key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  refused(v, "key:");
  v = j;
  v["grant"] = edge_.sign(sample_claims());
  refused(v, "grant:");
  // Duplicate members are refused (two readers could see different values).
  std::string dup = cred_.to_json();
  dup.insert(1, "\"id\": \"x\",");
  EXPECT_FALSE(Credential::parse(dup, &why));
}

TEST_F(CredentialTest, IssueRefusesWhatAGrantCannotHold) {
  EXPECT_THROW(Credential::issue(edge_, "app", {"not a host"}, {}, 1h, kNow), std::invalid_argument);
  EXPECT_THROW(Credential::issue(edge_, "app", {"app.localhost"}, {}, 5s, kNow), std::invalid_argument);
  std::vector<std::string> many;
  for (int i = 0; i < 60; ++i)
    many.push_back("name-" + std::to_string(i) + "-" + std::string(50, 'x') + ".localhost");
  EXPECT_THROW(Credential::issue(edge_, "app", many, {}, 1h, kNow), std::invalid_argument);
}

TEST(RevocationListTest, ParseAddAndLimits) {
  RevocationList l = RevocationList::parse("# comment\nAbc_-123\n\n  spaced  \nnot valid!\n");
  EXPECT_TRUE(l.contains("Abc_-123"));
  EXPECT_TRUE(l.contains("spaced"));
  EXPECT_EQ(l.size(), 2u);
  TempDir dir;
  const auto file = RevocationList::file_in(dir.path() / "state");
  EXPECT_TRUE(RevocationList::load(file).empty());
  EXPECT_TRUE(RevocationList::add(file, "cred1"));
  EXPECT_FALSE(RevocationList::add(file, "cred1"));
  EXPECT_TRUE(RevocationList::add(file, "cred2"));
  EXPECT_EQ(mode_of(file), 0600u);
  EXPECT_EQ(mode_of(dir.path() / "state"), 0700u);
  EXPECT_EQ(RevocationList::load(file).size(), 2u);
  EXPECT_THROW(RevocationList::add(file, "bad id"), std::invalid_argument);
  EXPECT_THROW(RevocationList::add(file, std::string(kMaxCredentialId + 1, 'a')), std::invalid_argument);
  std::string big;
  for (size_t i = 0; i <= RevocationList::kMaxEntries; ++i) big += "id" + std::to_string(i) + "\n";
  EXPECT_THROW(RevocationList::parse(big), std::length_error);
  spit(file, std::string(RevocationList::kMaxFileSize + 1, 'a'));
  EXPECT_THROW(RevocationList::load(file), std::runtime_error);
}

TEST(RenewFrameTest, RoundTrip) {
  const std::string token(6000, 'a');  // longer than the 512-byte text clip: sent whole
  ControlReader reader;
  std::vector<ControlFrame> frames;
  auto bytes = encode(Renew{7, token});
  ASSERT_EQ(reader.feed(bytes, frames), WireError::kNone);
  ASSERT_EQ(frames.size(), 1u);
  ControlDecode d = decode(frames[0]);
  ASSERT_TRUE(d.get<Renew>());
  EXPECT_EQ(d.get<Renew>()->seq, 7u);
  EXPECT_EQ(d.get<Renew>()->token, token);
  EXPECT_EQ(sender_of(ControlType::kRenew), ControlSender::kAgent);
  EXPECT_EQ(sender_of(ControlType::kRenewed), ControlSender::kEdge);

  frames.clear();
  bytes = encode(Renewed{7, 1'700'000'060, ""});
  ASSERT_EQ(reader.feed(bytes, frames), WireError::kNone);
  d = decode(frames[0]);
  ASSERT_TRUE(d.get<Renewed>());
  EXPECT_EQ(d.get<Renewed>()->expires, 1'700'000'060u);
  EXPECT_TRUE(d.get<Renewed>()->error.empty());

  frames.clear();
  bytes = encode(Renewed{8, 0, "invalid token: revoked"});
  ASSERT_EQ(reader.feed(bytes, frames), WireError::kNone);
  d = decode(frames[0]);
  ASSERT_TRUE(d.get<Renewed>());
  EXPECT_EQ(d.get<Renewed>()->expires, 0u);
  EXPECT_EQ(d.get<Renewed>()->error, "invalid token: revoked");
  // The bytes (docs/protocol.md §3.3): type, length, JSON with sorted members.
  const auto wire = encode(Renewed{1, 5, ""});
  const std::string want = R"({"exp":5,"seq":1})";
  ASSERT_EQ(wire.size(), 2 + want.size());
  EXPECT_EQ(wire[0], 0x08);
  EXPECT_EQ(wire[1], want.size());
  EXPECT_EQ(std::string(wire.begin() + 2, wire.end()), want);
  // A RENEWED with neither exp nor error is a refusal; a RENEW without seq a typed error.
  const ControlDecode bare = decode(ControlFrame{0x08, R"({"seq":1})"});
  ASSERT_TRUE(bare.get<Renewed>());
  EXPECT_EQ(bare.get<Renewed>()->error, "refused");
  EXPECT_EQ(decode(ControlFrame{0x07, R"({"token":"x"})"}).error(), ControlError::kMissingField);
  EXPECT_EQ(decode(ControlFrame{0x08, R"({"seq":1,"exp":-1})"}).error(), ControlError::kOutOfRange);
}

}  // namespace
}  // namespace wtmesh::tunnel
