// The classic JWT attacks against VerifierKeySet::verify: alg=none, alg confusion (HS256 keyed with the
// public key), missing/unknown/reused kid, signature length and encoding games, tampering, embedded jwk.
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gtest/gtest.h>

#include <array>

#include "tunnel/es256.h"
#include "tunnel/token.h"
#include "tunnel_test_util.h"

namespace wtmesh::tunnel {
namespace {

using namespace test;

// P-256 group order n, big-endian.
constexpr std::array<uint8_t, 32> kOrder = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                            0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
                                            0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

// n - s for a 32-byte big-endian s < n.
std::string order_minus(std::string_view s) {
  std::string out(32, '\0');
  int borrow = 0;
  for (int i = 31; i >= 0; --i) {
    int d = kOrder[i] - static_cast<uint8_t>(s[i]) - borrow;
    borrow = d < 0;
    out[i] = static_cast<char>(d < 0 ? d + 256 : d);
  }
  return out;
}

class AttackTest : public ::testing::Test {
 protected:
  AttackTest() : key_(SigningKey::generate()), attacker_(SigningKey::generate()) {
    keys_.add_pem(key_.public_pem());
  }

  TokenError error_of(const std::string& token) const {
    VerifyResult r = keys_.verify(token, kNow);
    EXPECT_FALSE(r.ok()) << "token unexpectedly verified";
    return r.error();
  }
  // `token` with its signature part replaced by base64url(sig).
  static std::string with_signature(const std::string& token, std::string_view sig) {
    return token.substr(0, token.rfind('.') + 1) + base64url_encode(sig);
  }

  SigningKey key_;
  SigningKey attacker_;
  VerifierKeySet keys_;
};

TEST_F(AttackTest, AlgNone) {
  json p = payload_json(sample_claims());
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    json h = {{"alg", alg}, {"typ", "JWT"}, {"kid", key_.kid()}};
    std::string unsigned_token = base64url_encode(h.dump()) + "." + base64url_encode(p.dump()) + ".";
    EXPECT_EQ(error_of(unsigned_token), TokenError::kUnsupportedAlg) << alg;
    // Even with a genuine signature over the same input.
    EXPECT_EQ(error_of(craft(key_, h, p)), TokenError::kUnsupportedAlg) << alg;
  }
}

TEST_F(AttackTest, AlgConfusionHs256KeyedWithThePublicKey) {
  json p = payload_json(sample_claims());
  std::string pub = key_.public_pem();
  for (const char* alg : {"HS256", "HS384", "HS512"}) {
    json h = {{"alg", alg}, {"typ", "JWT"}, {"kid", key_.kid()}};
    std::string input = base64url_encode(h.dump()) + "." + base64url_encode(p.dump());
    std::array<uint8_t, 32> mac{};
    ASSERT_EQ(
        gnutls_hmac_fast(GNUTLS_MAC_SHA256, pub.data(), pub.size(), input.data(), input.size(), mac.data()),
        0);
    std::string token = input + "." + base64url_encode(mac);
    EXPECT_EQ(error_of(token), TokenError::kUnsupportedAlg) << alg;
  }
}

TEST_F(AttackTest, OtherAlgorithmsAndSpellings) {
  json p = payload_json(sample_claims());
  for (const char* alg :
       {"es256", "ES256 ", " ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA", "ES256K", ""}) {
    json h = {{"alg", alg}, {"kid", key_.kid()}};
    EXPECT_EQ(error_of(craft(key_, h, p)), TokenError::kUnsupportedAlg) << '"' << alg << '"';
  }
}

TEST_F(AttackTest, MissingOrUnknownKid) {
  json p = payload_json(sample_claims());
  EXPECT_EQ(error_of(craft(key_, {{"alg", "ES256"}, {"typ", "JWT"}}, p)), TokenError::kUnknownKey);
  EXPECT_EQ(error_of(craft(attacker_, header_json(attacker_.kid()), p)), TokenError::kUnknownKey);
  EXPECT_EQ(error_of(craft(key_, header_json(""), p)), TokenError::kUnknownKey);
  EXPECT_EQ(error_of(craft(key_, header_json(key_.kid() + "x"), p)), TokenError::kUnknownKey);
  // Log-hostile kids are reported sanitized.
  VerifyResult r = keys_.verify(craft(key_, header_json("a\nb\"c"), p), kNow);
  EXPECT_EQ(r.error(), TokenError::kUnknownKey);
  EXPECT_EQ(r.message().find('\n'), std::string::npos);
  // An empty key set accepts nothing.
  VerifierKeySet empty;
  EXPECT_EQ(empty.verify(key_.sign(sample_claims()), kNow).error(), TokenError::kUnknownKey);
}

TEST_F(AttackTest, DifferentKeyClaimingOurKid) {
  std::string token = craft(attacker_, header_json(key_.kid()), payload_json(sample_claims()));
  EXPECT_EQ(error_of(token), TokenError::kBadSignature);
}

TEST_F(AttackTest, EmbeddedJwkIsNeverUsed) {
  // The attacker puts their own public key in the header (CVE-2018-0114 style); it is ignored.
  json h = header_json(key_.kid());
  h["jwk"] = {{"kty", "EC"}, {"crv", "P-256"}, {"x", "AAAA"}, {"y", "AAAA"}};
  h["jku"] = "https://attacker.example/keys";
  h["x5u"] = "https://attacker.example/cert";
  std::string token = craft(attacker_, h, payload_json(sample_claims()));
  EXPECT_EQ(error_of(token), TokenError::kBadSignature);
  h["kid"] = attacker_.kid();
  EXPECT_EQ(error_of(craft(attacker_, h, payload_json(sample_claims()))), TokenError::kUnknownKey);
}

TEST_F(AttackTest, TamperedPayloadOrHeader) {
  TokenClaims c = sample_claims();
  std::string token = key_.sign(c);
  Parts p = split(token);
  // Widen the hosts and keep the signature.
  json payload = payload_json(c);
  payload["hosts"] = {"*.localhost"};
  EXPECT_EQ(error_of(base64url_encode(header_json(key_.kid()).dump()) + "." +
                     base64url_encode(payload.dump()) + "." + p.signature),
            TokenError::kBadSignature);
  // Extend the expiry.
  payload = payload_json(c);
  payload["exp"] = 1'700'100'000;
  EXPECT_EQ(error_of(p.header + "." + base64url_encode(payload.dump()) + "." + p.signature),
            TokenError::kBadSignature);
  // A different but equivalent header encoding.
  json header = {{"kid", key_.kid()}, {"alg", "ES256"}};
  EXPECT_EQ(error_of(base64url_encode(header.dump()) + "." + p.payload + "." + p.signature),
            TokenError::kBadSignature);
  // A signature from another of our own tokens.
  std::string other = key_.sign(sample_claims());
  EXPECT_EQ(error_of(p.header + "." + p.payload + "." + split(other).signature), TokenError::kBadSignature);
}

TEST_F(AttackTest, SignatureLengthAndEncoding) {
  std::string token = key_.sign(sample_claims());
  std::string rs = *base64url_decode(split(token).signature, 100);
  ASSERT_EQ(rs.size(), 64u);
  ASSERT_TRUE(keys_.verify(with_signature(token, rs), kNow).ok());
  EXPECT_EQ(error_of(with_signature(token, "")), TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, rs.substr(0, 63))), TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, rs + '\0')), TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, '\0' + rs)), TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, rs + rs)), TokenError::kBadSignature);
  // The DER form of the same, valid, signature is refused: JOSE requires r||s.
  auto der = es256::rs_to_der(rs);
  ASSERT_TRUE(der);
  EXPECT_NE(der->size(), 64u);
  EXPECT_EQ(error_of(with_signature(token, *der)), TokenError::kBadSignature);
  // Swapped halves, zeros, all ones (r >= n), r = n.
  EXPECT_EQ(error_of(with_signature(token, rs.substr(32) + rs.substr(0, 32))), TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, std::string(64, '\0'))), TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, std::string(32, '\0') + rs.substr(32))),
            TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, rs.substr(0, 32) + std::string(32, '\0'))),
            TokenError::kBadSignature);
  EXPECT_EQ(error_of(with_signature(token, std::string(64, '\xff'))), TokenError::kBadSignature);
  std::string n(kOrder.begin(), kOrder.end());
  EXPECT_EQ(error_of(with_signature(token, n + rs.substr(32))), TokenError::kBadSignature);
  // A bit flip anywhere in the signature.
  for (size_t i = 0; i < 64; i += 7) {
    std::string flipped = rs;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    EXPECT_EQ(error_of(with_signature(token, flipped)), TokenError::kBadSignature) << i;
  }
  // Not base64url at all is structural.
  EXPECT_EQ(error_of(token.substr(0, token.rfind('.') + 1) + "%%%%"), TokenError::kMalformed);
}

// ECDSA malleability, documented rather than prevented: (r, n - s) is also a valid signature and GnuTLS
// accepts it. Tokens are identified by jti, never by signature bytes, so this is harmless here.
TEST_F(AttackTest, HighSVariantVerifiesAndIsOnlyANote) {
  TokenClaims c = sample_claims();
  std::string token = key_.sign(c);
  std::string rs = *base64url_decode(split(token).signature, 100);
  std::string mirrored = rs.substr(0, 32) + order_minus(rs.substr(32));
  VerifyResult r = keys_.verify(with_signature(token, mirrored), kNow);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.claims().id, c.id);  // same jti: a replay cache keyed on jti sees the same token
}

TEST(Es256Conversion, RsDerRoundTripIncludingSignBytes) {
  SigningKey key = SigningKey::generate();
  int high_bit = 0;
  for (int i = 0; i < 64; ++i) {
    std::string rs = key.signature("message " + std::to_string(i));
    ASSERT_EQ(rs.size(), 64u);
    if ((static_cast<uint8_t>(rs[0]) & 0x80) || (static_cast<uint8_t>(rs[32]) & 0x80)) ++high_bit;
    auto der = es256::rs_to_der(rs);
    ASSERT_TRUE(der);
    EXPECT_EQ(es256::der_to_rs(*der), rs);
  }
  EXPECT_GT(high_bit, 0);  // exercised the 0x00 sign byte
  // Short scalars are left-padded: r = 1, s = 2.
  std::string small(64, '\0');
  small[31] = 1;
  small[63] = 2;
  auto der = es256::rs_to_der(small);
  ASSERT_TRUE(der);
  EXPECT_EQ(*der, std::string("\x30\x06\x02\x01\x01\x02\x01\x02", 8));
  EXPECT_EQ(es256::der_to_rs(*der), small);
  EXPECT_FALSE(es256::rs_to_der(std::string(63, '\1')));
  EXPECT_FALSE(es256::der_to_rs("garbage"));
  // A 33-byte integer that is not just a sign byte does not fit.
  std::string big = "\x30\x26\x02\x21\x01" + std::string(32, '\x01') + "\x02\x01\x01";
  EXPECT_FALSE(es256::der_to_rs(big));
}

}  // namespace
}  // namespace wtmesh::tunnel
