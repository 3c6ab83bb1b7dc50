// base64url (RFC 4648 §5) without padding, as JOSE uses it (RFC 7515 §2). The decoder is strict: no
// '=' padding, no whitespace, only the 64 URL-safe characters, and the unused low bits of the last
// character must be zero, so every byte string has exactly one accepted encoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace wtmesh::tunnel {

std::string base64url_encode(std::span<const uint8_t> data);
std::string base64url_encode(std::string_view data);

// Decodes `in`; nullopt when it is not canonical unpadded base64url or would decode to more than
// `max_out` bytes (checked before anything is decoded).
std::optional<std::string> base64url_decode(std::string_view in, size_t max_out);

// Decoded size of `encoded_len` characters, or nullopt for an impossible length (len % 4 == 1).
constexpr std::optional<size_t> base64url_decoded_size(size_t encoded_len) {
  if (encoded_len % 4 == 1) return std::nullopt;
  return encoded_len / 4 * 3 + (encoded_len % 4 == 0 ? 0 : encoded_len % 4 - 1);
}

// True for the 64 characters of the base64url alphabet.
constexpr bool is_base64url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace wtmesh::tunnel
