// Signing key + accepted public keys in DIR/keys.
#include "tunnel/keystore.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "common/files.h"

namespace wtmesh::tunnel {
namespace {

namespace fs = std::filesystem;

void publish(const fs::path& path, const SigningKey& key) {
  files::write_file_atomic(path, key.public_pem(), 0644);
}

}  // namespace

KeyStore::KeyStore(fs::path state_dir) : keys_dir_(std::move(state_dir) / "keys") {}

fs::path KeyStore::public_key_path(std::string_view kid) const {
  if (!es256::is_valid_kid(kid))
    throw std::invalid_argument("not a key id: \"" + std::string(kid.substr(0, 64)) + "\"");
  return keys_dir_ / (std::string(kid) + ".pub.pem");
}

SigningKey KeyStore::signing_key_locked() {
  fs::path path = signing_key_path();
  if (files::read_small_file(path)) {
    files::ensure_private_mode(path);
    SigningKey key = SigningKey::load(path);
    if (fs::path pub = public_key_path(key.kid()); !files::read_small_file(pub)) {
      publish(pub, key);
      files::sync_dir(keys_dir_);
    }
    return key;
  }
  SigningKey key = SigningKey::generate();
  publish(public_key_path(key.kid()), key);  // accepted before anyone can sign with it
  key.save(path);
  files::sync_dir(keys_dir_);
  spdlog::info("created token signing key {} in {}", key.kid(), keys_dir_.string());
  return key;
}

SigningKey KeyStore::signing_key() {
  files::ensure_private_dir(keys_dir_);
  files::DirLock lock(keys_dir_ / ".lock");
  return signing_key_locked();
}

SigningKey KeyStore::rotate() {
  files::ensure_private_dir(keys_dir_);
  files::DirLock lock(keys_dir_ / ".lock");
  signing_key_locked();  // makes sure the outgoing key's public half is published before we replace it
  SigningKey key = SigningKey::generate();
  publish(public_key_path(key.kid()), key);
  key.save(signing_key_path());
  files::sync_dir(keys_dir_);
  spdlog::info("rotated token signing key to {}; retire the old key once its tokens have expired", key.kid());
  return key;
}

bool KeyStore::retire(std::string_view kid) {
  fs::path pub = public_key_path(kid);  // validates kid before it becomes part of a path
  files::ensure_private_dir(keys_dir_);
  files::DirLock lock(keys_dir_ / ".lock");
  if (files::read_small_file(signing_key_path()) && SigningKey::load(signing_key_path()).kid() == kid) {
    throw std::invalid_argument("key " + std::string(kid) +
                                " is the current signing key; rotate before retiring it");
  }
  if (::unlink(pub.c_str()) != 0) {
    if (errno == ENOENT) return false;
    throw std::runtime_error(pub.string() + ": cannot remove: " + std::system_category().message(errno));
  }
  files::sync_dir(keys_dir_);
  spdlog::info("retired token key {}", kid);
  return true;
}

VerifierKeySet KeyStore::load_verifiers() {
  signing_key();
  return VerifierKeySet::load_dir(keys_dir_);
}

std::vector<std::string> KeyStore::accepted_kids() { return load_verifiers().kids(); }

}  // namespace wtmesh::tunnel
