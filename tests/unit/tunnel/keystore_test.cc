// Tests for SigningKey persistence, VerifierKeySet loading and KeyStore rotation/retirement.
#include "tunnel/keystore.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "tunnel_test_util.h"

namespace wtmesh::tunnel {
namespace {

using namespace test;
namespace fs = std::filesystem;

// PEM private and public key of a freshly generated key of another kind (P-384 or RSA).
std::pair<std::string, std::string> foreign_key(gnutls_pk_algorithm_t pk, unsigned bits) {
  gnutls_x509_privkey_t x = nullptr;
  EXPECT_EQ(gnutls_x509_privkey_init(&x), 0);
  EXPECT_EQ(gnutls_x509_privkey_generate2(x, pk, bits, 0, nullptr, 0), 0);
  gnutls_datum_t priv{}, pub{};
  EXPECT_EQ(gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &priv), 0);
  gnutls_privkey_t p = nullptr;
  gnutls_pubkey_t k = nullptr;
  EXPECT_EQ(gnutls_privkey_init(&p), 0);
  EXPECT_EQ(gnutls_privkey_import_x509(p, x, 0), 0);
  EXPECT_EQ(gnutls_pubkey_init(&k), 0);
  EXPECT_EQ(gnutls_pubkey_import_privkey(k, p, 0, 0), 0);
  EXPECT_EQ(gnutls_pubkey_export2(k, GNUTLS_X509_FMT_PEM, &pub), 0);
  std::pair<std::string, std::string> out{std::string(reinterpret_cast<char*>(priv.data), priv.size),
                                          std::string(reinterpret_cast<char*>(pub.data), pub.size)};
  gnutls_free(priv.data);
  gnutls_free(pub.data);
  gnutls_pubkey_deinit(k);
  gnutls_privkey_deinit(p);
  gnutls_x509_privkey_deinit(x);
  return out;
}

TEST(SigningKey, SaveLoadRoundTripWithPrivateMode) {
  TempDir dir;
  SigningKey key = SigningKey::generate();
  fs::path path = dir.path() / "k.pem";
  key.save(path);
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_NE(slurp(path).find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  SigningKey loaded = SigningKey::load(path);
  EXPECT_EQ(loaded.kid(), key.kid());
  EXPECT_EQ(loaded.public_pem(), key.public_pem());
  VerifierKeySet set;
  set.add_pem(key.public_pem());
  EXPECT_TRUE(set.verify(loaded.sign(sample_claims()), kNow).ok());
  // Saving again replaces the file atomically and keeps the mode.
  SigningKey other = SigningKey::generate();
  other.save(path);
  EXPECT_EQ(SigningKey::load(path).kid(), other.kid());
  EXPECT_EQ(mode_of(path), 0600u);
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename(), "k.pem");  // no temp files left behind
  }
}

TEST(SigningKey, KidIsStableAndDistinct) {
  SigningKey a = SigningKey::generate(), b = SigningKey::generate();
  EXPECT_NE(a.kid(), b.kid());
  EXPECT_EQ(SigningKey::from_pem(a.private_pem()).kid(), a.kid());
  VerifierKeySet set;
  EXPECT_EQ(set.add_pem(a.public_pem()), a.kid());  // derivable from the public key alone
  EXPECT_TRUE(es256::is_valid_kid(a.kid()));
}

TEST(SigningKey, RefusesOtherKeyTypesAndGarbage) {
  TempDir dir;
  EXPECT_THROW(SigningKey::from_pem(
                   foreign_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1)).first),
               std::runtime_error);
  EXPECT_THROW(SigningKey::from_pem(foreign_key(GNUTLS_PK_RSA, 2048).first), std::runtime_error);
  EXPECT_THROW(SigningKey::from_pem("not a key"), std::runtime_error);
  EXPECT_THROW(SigningKey::load(dir.path() / "missing.pem"), std::runtime_error);
  spit(dir.path() / "big.pem", std::string(100 * 1024, 'x'));
  EXPECT_THROW(SigningKey::load(dir.path() / "big.pem"), std::runtime_error);
}

TEST(VerifierKeySet, AddRemoveAndCap) {
  VerifierKeySet set;
  std::vector<SigningKey> keys;
  for (size_t i = 0; i < kMaxVerifierKeys; ++i) {
    keys.push_back(SigningKey::generate());
    set.add_pem(keys.back().public_pem());
  }
  EXPECT_EQ(set.size(), kMaxVerifierKeys);
  EXPECT_EQ(set.add_pem(keys[0].public_pem()), keys[0].kid());  // re-adding is a no-op, even when full
  SigningKey extra = SigningKey::generate();
  EXPECT_THROW(set.add_pem(extra.public_pem()), std::length_error);
  EXPECT_TRUE(set.remove(keys[3].kid()));
  EXPECT_FALSE(set.remove(keys[3].kid()));
  EXPECT_FALSE(set.contains(keys[3].kid()));
  EXPECT_EQ(set.verify(keys[3].sign(sample_claims()), kNow).error(), TokenError::kUnknownKey);
  EXPECT_EQ(set.add_pem(extra.public_pem()), extra.kid());
  EXPECT_TRUE(set.verify(extra.sign(sample_claims()), kNow).ok());
  EXPECT_TRUE(set.verify(keys[31].sign(sample_claims()), kNow).ok());
  EXPECT_THROW(set.add_pem("garbage"), std::invalid_argument);
  EXPECT_THROW(set.add_pem(foreign_key(GNUTLS_PK_RSA, 2048).second), std::invalid_argument);
  EXPECT_THROW(set.add_pem(keys[0].private_pem()), std::invalid_argument);
}

TEST(VerifierKeySet, RefusesP384PublicKey) {
  VerifierKeySet set;
  EXPECT_THROW(
      set.add_pem(foreign_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1)).second),
      std::invalid_argument);
}

TEST(VerifierKeySet, LoadDir) {
  TempDir dir;
  SigningKey a = SigningKey::generate(), b = SigningKey::generate();
  spit(dir.path() / (a.kid() + ".pub.pem"), a.public_pem());
  spit(dir.path() / (b.kid() + ".pub.pem"), b.public_pem());
  spit(dir.path() / "signing.pem", a.private_pem());  // not a *.pub.pem: ignored
  spit(dir.path() / "notes.txt", "hello");
  VerifierKeySet set = VerifierKeySet::load_dir(dir.path());
  std::vector<std::string> expected{a.kid(), b.kid()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(set.kids(), expected);
  EXPECT_TRUE(set.verify(b.sign(sample_claims()), kNow).ok());

  // A file whose name does not match its key is an error, not silently accepted under the wrong kid.
  SigningKey c = SigningKey::generate();
  spit(dir.path() / (c.kid() + ".pub.pem"), a.public_pem());
  EXPECT_THROW(VerifierKeySet::load_dir(dir.path()), std::runtime_error);
  spit(dir.path() / (c.kid() + ".pub.pem"), "garbage");
  EXPECT_THROW(VerifierKeySet::load_dir(dir.path()), std::runtime_error);
  fs::remove(dir.path() / (c.kid() + ".pub.pem"));
  EXPECT_EQ(VerifierKeySet::load_dir(dir.path()).size(), 2u);
  EXPECT_THROW(VerifierKeySet::load_dir(dir.path() / "missing"), std::runtime_error);
}

TEST(VerifierKeySet, LoadDirCap) {
  TempDir dir;
  for (size_t i = 0; i < kMaxVerifierKeys; ++i) {
    SigningKey k = SigningKey::generate();
    spit(dir.path() / (k.kid() + ".pub.pem"), k.public_pem());
  }
  EXPECT_EQ(VerifierKeySet::load_dir(dir.path()).size(), kMaxVerifierKeys);
  SigningKey k = SigningKey::generate();
  spit(dir.path() / (k.kid() + ".pub.pem"), k.public_pem());
  EXPECT_THROW(VerifierKeySet::load_dir(dir.path()), std::runtime_error);
}

TEST(KeyStore, CreatesSigningKeyOnFirstUseAndReusesIt) {
  TempDir dir;
  KeyStore store(dir.path() / "state");
  EXPECT_FALSE(fs::exists(dir.path() / "state"));  // the constructor touches nothing
  SigningKey key = store.signing_key();
  EXPECT_EQ(mode_of(store.keys_dir()), 0700u);
  EXPECT_EQ(mode_of(store.signing_key_path()), 0600u);
  EXPECT_EQ(store.signing_key_path(), dir.path() / "state" / "keys" / "signing.pem");
  EXPECT_EQ(slurp(store.public_key_path(key.kid())), key.public_pem());
  EXPECT_EQ(KeyStore(dir.path() / "state").signing_key().kid(), key.kid());
  EXPECT_EQ(store.accepted_kids(), std::vector<std::string>{key.kid()});
  // A signing key someone made world-readable is tightened back to 0600.
  ASSERT_EQ(::chmod(store.signing_key_path().c_str(), 0644), 0);
  EXPECT_EQ(store.signing_key().kid(), key.kid());
  EXPECT_EQ(mode_of(store.signing_key_path()), 0600u);
  // A missing public file for the current key is re-published.
  fs::remove(store.public_key_path(key.kid()));
  EXPECT_TRUE(store.load_verifiers().contains(key.kid()));
  EXPECT_TRUE(fs::exists(store.public_key_path(key.kid())));
}

TEST(KeyStore, LoadVerifiersCreatesTheKeyTokensWillUse) {
  TempDir dir;
  VerifierKeySet edge = KeyStore(dir.path()).load_verifiers();                   // edge starts first
  std::string token = KeyStore(dir.path()).signing_key().sign(sample_claims());  // then `wtmesh token`
  EXPECT_TRUE(edge.verify(token, kNow).ok());
}

TEST(KeyStore, RotateKeepsOldTokensUntilRetired) {
  TempDir dir;
  KeyStore store(dir.path());
  SigningKey old_key = store.signing_key();
  std::string old_token = old_key.sign(sample_claims());

  SigningKey new_key = store.rotate();
  EXPECT_NE(new_key.kid(), old_key.kid());
  EXPECT_EQ(store.signing_key().kid(), new_key.kid());
  std::string new_token = store.signing_key().sign(sample_claims());
  VerifierKeySet edge = store.load_verifiers();
  EXPECT_EQ(edge.size(), 2u);
  EXPECT_TRUE(edge.verify(old_token, kNow).ok());
  EXPECT_TRUE(edge.verify(new_token, kNow).ok());

  EXPECT_THROW(store.retire(new_key.kid()), std::invalid_argument);  // current key
  EXPECT_TRUE(store.retire(old_key.kid()));
  EXPECT_FALSE(store.retire(old_key.kid()));
  edge = store.load_verifiers();
  EXPECT_EQ(edge.verify(old_token, kNow).error(), TokenError::kUnknownKey);
  EXPECT_TRUE(edge.verify(new_token, kNow).ok());
  EXPECT_EQ(store.accepted_kids(), std::vector<std::string>{new_key.kid()});
}

TEST(KeyStore, RetireValidatesKidBeforeUsingItAsAPath) {
  TempDir dir;
  KeyStore store(dir.path());
  store.signing_key();
  spit(dir.path() / "victim.pub.pem", "x");
  EXPECT_THROW(store.retire("../victim"), std::invalid_argument);
  EXPECT_THROW(store.retire("/etc/passwd"), std::invalid_argument);
  EXPECT_THROW(store.retire(""), std::invalid_argument);
  EXPECT_THROW(store.retire(std::string(16, '.')), std::invalid_argument);
  EXPECT_TRUE(fs::exists(dir.path() / "victim.pub.pem"));
  EXPECT_FALSE(store.retire("AAAAAAAAAAAAAAAA"));  // well-formed but unknown
}

TEST(KeyStore, CorruptSigningKeyIsAnError) {
  TempDir dir;
  KeyStore store(dir.path());
  store.signing_key();
  spit(store.signing_key_path(), "garbage");
  EXPECT_THROW(store.signing_key(), std::runtime_error);
  EXPECT_THROW(store.rotate(), std::runtime_error);  // never silently replaces a key it cannot read
}

}  // namespace
}  // namespace wtmesh::tunnel
