// Interop with the openssl CLI: keys it generates load here, kids are the SHA-256 of the SPKI DER it
// exports, tokens signed by `openssl dgst -sign` verify after DER→r||s, and openssl verifies ours.
// The DER conversions below are written independently of es256.cc on purpose. Skipped without openssl.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>

#include "tunnel/token.h"
#include "tunnel_test_util.h"

namespace wtmesh::tunnel {
namespace {

using namespace test;
namespace fs = std::filesystem;

bool have_openssl() { return std::system("command -v openssl >/dev/null 2>&1") == 0; }

bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

// append(), not "'" + string: GCC 12 at -O3 reports a false -Wrestrict for "lit" + string&&.
std::string q(const fs::path& p) { return std::string("'").append(p.string()).append("'"); }

// One DER INTEGER from `der` at `*pos` as exactly 32 big-endian bytes.
std::optional<std::string> der_integer(const std::string& der, size_t* pos) {
  if (*pos + 2 > der.size() || der[*pos] != 0x02) return std::nullopt;
  size_t len = static_cast<uint8_t>(der[*pos + 1]);
  *pos += 2;
  if (len == 0 || *pos + len > der.size()) return std::nullopt;
  std::string v = der.substr(*pos, len);
  *pos += len;
  while (v.size() > 32 && v[0] == '\0') v.erase(0, 1);
  if (v.size() > 32) return std::nullopt;
  return std::string(32 - v.size(), '\0') + v;
}

// ECDSA-Sig-Value DER (short-form lengths suffice for P-256) → r||s.
std::optional<std::string> test_der_to_rs(const std::string& der) {
  if (der.size() < 2 || der[0] != 0x30 || static_cast<uint8_t>(der[1]) != der.size() - 2) return std::nullopt;
  size_t pos = 2;
  auto r = der_integer(der, &pos);
  auto s = der_integer(der, &pos);
  if (!r || !s || pos != der.size()) return std::nullopt;
  return *r + *s;
}

std::string der_int(std::string v) {
  while (v.size() > 1 && v[0] == '\0' && !(static_cast<uint8_t>(v[1]) & 0x80)) v.erase(0, 1);
  if (static_cast<uint8_t>(v[0]) & 0x80) v.insert(0, 1, '\0');
  return std::string("\x02", 1) + static_cast<char>(v.size()) + v;
}

std::string test_rs_to_der(const std::string& rs) {
  std::string body = der_int(rs.substr(0, 32)) + der_int(rs.substr(32));
  return std::string("\x30", 1) + static_cast<char>(body.size()) + body;
}

class OpensslInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_openssl()) GTEST_SKIP() << "openssl CLI not installed";
    key_pem_ = dir_.path() / "key.pem";
    pub_pem_ = dir_.path() / "pub.pem";
    ASSERT_TRUE(run("openssl ecparam -name prime256v1 -genkey -noout -out " + q(key_pem_)));
    ASSERT_TRUE(run("openssl ec -in " + q(key_pem_) + " -pubout -out " + q(pub_pem_)));
  }

  TempDir dir_;
  fs::path key_pem_, pub_pem_;
};

TEST_F(OpensslInterop, KeysAndKidDerivation) {
  SigningKey key = SigningKey::from_pem(slurp(key_pem_));  // SEC1 "EC PRIVATE KEY"
  VerifierKeySet set;
  EXPECT_EQ(set.add_pem(slurp(pub_pem_)), key.kid());
  fs::path der = dir_.path() / "pub.der", digest = dir_.path() / "pub.sha256";
  ASSERT_TRUE(run("openssl pkey -pubin -in " + q(pub_pem_) + " -outform DER -out " + q(der)));
  ASSERT_TRUE(run("openssl dgst -sha256 -binary -out " + q(digest) + " " + q(der)));
  std::string h = slurp(digest);
  ASSERT_EQ(h.size(), 32u);
  EXPECT_EQ(key.kid(), base64url_encode(h.substr(0, 12)));
}

TEST_F(OpensslInterop, TokenSignedByOpensslVerifies) {
  VerifierKeySet set;
  std::string kid = set.add_pem(slurp(pub_pem_));
  std::string input = base64url_encode(header_json(kid).dump()) + "." +
                      base64url_encode(payload_json(sample_claims()).dump());
  fs::path in = dir_.path() / "input", sig = dir_.path() / "sig.der";
  spit(in, input);
  ASSERT_TRUE(run("openssl dgst -sha256 -sign " + q(key_pem_) + " -out " + q(sig) + " " + q(in)));
  std::string der = slurp(sig);
  auto rs = test_der_to_rs(der);
  ASSERT_TRUE(rs) << "unexpected DER from openssl";
  VerifyResult r = set.verify(input + "." + base64url_encode(*rs), kNow);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.claims().subject, "alice");
  // openssl's DER signature as-is is not a JOSE signature.
  EXPECT_EQ(set.verify(input + "." + base64url_encode(der), kNow).error(), TokenError::kBadSignature);
}

TEST_F(OpensslInterop, OpensslVerifiesOurTokens) {
  SigningKey key = SigningKey::from_pem(slurp(key_pem_));
  for (int i = 0; i < 4; ++i) {  // several signatures, so some have high-bit r or s
    std::string token = key.sign(sample_claims());
    Parts p = split(token);
    fs::path in = dir_.path() / "input", sig = dir_.path() / "sig.der";
    spit(in, p.header + "." + p.payload);
    spit(sig, test_rs_to_der(*base64url_decode(p.signature, 64)));
    EXPECT_TRUE(run("openssl dgst -sha256 -verify " + q(pub_pem_) + " -signature " + q(sig) + " " + q(in)));
    spit(in, p.header + "." + p.payload + "x");
    EXPECT_FALSE(run("openssl dgst -sha256 -verify " + q(pub_pem_) + " -signature " + q(sig) + " " + q(in)));
  }
}

}  // namespace
}  // namespace wtmesh::tunnel
