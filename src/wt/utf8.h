// UTF-8 helpers for WebTransport close messages (must be valid UTF-8, at most 1024 bytes).
// Pure functions; no locale, no allocation beyond the returned string.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wtmesh::wt {

// Strict RFC 3629 validation: rejects overlong forms, surrogates and code points above U+10FFFF.
bool is_valid_utf8(std::string_view s);

// Length of the longest prefix of `s` that is at most `max_bytes` long and does not split a
// character. `s` must be valid UTF-8.
size_t utf8_prefix_length(std::string_view s, size_t max_bytes);

// Makes `s` safe to send as a close message: every invalid byte becomes '?', then the result is
// cut to at most `max_bytes` on a character boundary.
std::string sanitize_utf8(std::string_view s, size_t max_bytes);

}  // namespace wtmesh::wt
