// The WebSocket opening handshake's two computed fields (RFC 6455 §4.1, §4.2.2), for the codecs that
// map a WebSocket carried some other way (HTTP/2 extended CONNECT, RFC 8441; HTTP/3, RFC 9220) onto
// the RFC 6455 handshake the tunnel and the agent's HTTP/1.1 upstream speak: the edge's codec makes up
// the Sec-WebSocket-Key the client never sent and checks the upstream's Sec-WebSocket-Accept against
// it; the agent's HTTP/2 upstream codec computes the accept its RFC 6455 client expects.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace wtmesh::tunnel {

// Standard base64 (RFC 4648 §4) with '=' padding, as Sec-WebSocket-Key/-Accept use it.
std::string base64_encode(std::span<const uint8_t> data);

// A fresh Sec-WebSocket-Key: 16 random bytes (gnutls_rnd, nonce level), base64 (24 characters).
std::string websocket_key();

// The Sec-WebSocket-Accept for `key`: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept(std::string_view key);

// True when `key` is a valid Sec-WebSocket-Key: the base64 of exactly 16 bytes (24 characters, "=="
// padded, canonical).
bool is_valid_websocket_key(std::string_view key);

// True when `accept` (surrounding spaces and tabs ignored) is exactly websocket_accept(key).
bool websocket_accept_matches(std::string_view key, std::string_view accept);

}  // namespace wtmesh::tunnel
