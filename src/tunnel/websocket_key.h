// The WebSocket opening handshake's key and accept values (RFC 6455 §4.1, §4.2.2), self-contained so
// the edge (HTTP/2 and HTTP/3 extended CONNECT toward an HTTP/1.1 upstream) and the agent (an
// RFC 6455 request toward an HTTP/2 upstream, RFC 8441) share them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wtmesh::tunnel {

inline constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Sec-WebSocket-Key is valid when it is the base64 of exactly 16 bytes (24 characters, "==" padded).
bool is_valid_websocket_key(std::string_view key);
// Sec-WebSocket-Accept for `key`: base64(SHA-1(key + GUID)). nullopt when SHA-1 is unavailable.
std::optional<std::string> websocket_accept(std::string_view key);
// A fresh random key (16 random bytes, base64), for a request toward an HTTP/1.1 upstream.
std::optional<std::string> new_websocket_key();

}  // namespace wtmesh::tunnel
