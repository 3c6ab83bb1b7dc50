// RFC 6455 handshake fields (tunnel/websocket_handshake.h), on GnuTLS's random source and SHA-1.
#include "tunnel/websocket_handshake.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <array>
#include <stdexcept>

#include "common/text.h"
#include "tunnel/base64url.h"

namespace wtmesh::tunnel {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

}  // namespace

std::string base64_encode(std::span<const uint8_t> data) {
  // The two alphabets differ only in their last two characters; base64url_encode leaves out padding.
  std::string out = base64url_encode(data);
  for (char& c : out) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  out.append((4 - out.size() % 4) % 4, '=');
  return out;
}

std::string websocket_key() {
  std::array<uint8_t, 16> nonce{};
  if (gnutls_rnd(GNUTLS_RND_NONCE, nonce.data(), nonce.size()) < 0)
    throw std::runtime_error("gnutls_rnd failed for a Sec-WebSocket-Key");
  return base64_encode(nonce);
}

std::string websocket_accept(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kGuid.size());
  input.append(key).append(kGuid);
  std::array<uint8_t, 20> digest{};
  if (gnutls_hash_fast(GNUTLS_DIG_SHA1, input.data(), input.size(), digest.data()) < 0)
    throw std::runtime_error("gnutls_hash_fast(SHA-1) failed for a Sec-WebSocket-Accept");
  return base64_encode(digest);
}

bool is_valid_websocket_key(std::string_view key) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (size_t i = 0; i < 22; ++i) {
    if (kAlphabet.find(key[i]) == std::string_view::npos) return false;
  }
  // 16 bytes leave the last character's low 4 bits unused: they must be zero (canonical encoding).
  return (kAlphabet.find(key[21]) & 15) == 0;
}

bool websocket_accept_matches(std::string_view key, std::string_view accept) {
  return trim(accept) == websocket_accept(key);
}

}  // namespace wtmesh::tunnel
