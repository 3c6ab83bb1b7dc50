// The token signing keys in a state directory, so `wtmesh token` and the edge agree on keys:
//   DIR/keys/signing.pem      current ES256 signing key (PKCS#8, mode 0600), created on first use
//   DIR/keys/<kid>.pub.pem    every public key the edge accepts; the current key's is always present
// rotate() starts signing with a new key but keeps accepting the old public key, so tokens issued before
// the rotation verify until they expire; retire(kid) then stops accepting it. A running edge sees
// changes only when it calls load_verifiers() again. A lock file (DIR/keys/.lock) serialises writers
// across processes. Errors throw std::runtime_error naming the file.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/token.h"

namespace wtmesh::tunnel {

class KeyStore {
 public:
  explicit KeyStore(std::filesystem::path state_dir);  // touches nothing on disk

  const std::filesystem::path& keys_dir() const { return keys_dir_; }
  std::filesystem::path signing_key_path() const { return keys_dir_ / "signing.pem"; }
  std::filesystem::path public_key_path(std::string_view kid) const;

  // The current signing key, created (with DIR/keys, mode 0700) if absent; re-writes its public key
  // file if that is missing.
  SigningKey signing_key();

  // Generates a new signing key, publishes its public key, then replaces signing.pem. The previous
  // public key stays accepted. Returns the new key.
  SigningKey rotate();

  // Stops accepting `kid`: deletes DIR/keys/<kid>.pub.pem. False when no such key was accepted.
  // Throws std::invalid_argument for a malformed kid or the current signing key's kid.
  bool retire(std::string_view kid);

  // The keys the edge accepts: every DIR/keys/*.pub.pem, after making sure a signing key exists.
  VerifierKeySet load_verifiers();

  // Kids of the accepted public keys, sorted.
  std::vector<std::string> accepted_kids();

 private:
  SigningKey signing_key_locked();
  std::filesystem::path keys_dir_;
};

}  // namespace wtmesh::tunnel
