#include "tunnel/websocket_key.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <array>
#include <cstdint>

namespace wtmesh::tunnel {

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0) |
                       (i + 2 < n ? uint32_t{p[i + 2]} : 0);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? kAlphabet[v & 63] : '=');
  }
  return out;
}

}  // namespace

bool is_valid_websocket_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (size_t i = 0; i < 22; ++i) {
    if (kAlphabet.find(key[i]) == std::string_view::npos) return false;
  }
  // 16 bytes leave the last character's low 4 bits unused: they must be zero (canonical encoding).
  return (kAlphabet.find(key[21]) & 15) == 0;
}

std::optional<std::string> websocket_accept(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kWebSocketGuid.size());
  input.append(key).append(kWebSocketGuid);
  std::array<uint8_t, 20> digest{};
  if (gnutls_hash_fast(GNUTLS_DIG_SHA1, input.data(), input.size(), digest.data()) != 0) return std::nullopt;
  return base64(digest.data(), digest.size());
}

std::optional<std::string> new_websocket_key() {
  std::array<uint8_t, 16> raw{};
  if (gnutls_rnd(GNUTLS_RND_NONCE, raw.data(), raw.size()) != 0) return std::nullopt;
  return base64(raw.data(), raw.size());
}

}  // namespace wtmesh::tunnel
