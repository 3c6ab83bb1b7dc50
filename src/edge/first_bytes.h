// The name a new public connection asks for, read from its first bytes before any codec or TLS
// session sees them: a multi-worker edge hands the connection to the worker whose agent holds that
// name (edge/public_listener.h, steering), so its requests need not cross between threads.
//   - TLS: the server_name (SNI, RFC 6066 §3) host_name of the ClientHello in the first record.
//   - Plain HTTP: the Host of the first request head (Beast's parser).
// Both look only at the bytes given (the listener's first read, at most a few KiB) and answer
// nullopt when the name is not there: the bytes are cut short, malformed, or name nothing. The
// connection is then served where it landed, and its own codec judges the bytes. Names come back
// lower-case, without a port.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace wtmesh::edge {

// The host_name of the server_name extension of a ClientHello that starts at bytes[0] (a TLS
// handshake record). Only the first record is read, as far as `bytes` go.
std::optional<std::string> client_hello_server_name(std::span<const uint8_t> bytes);

// The Host of the HTTP/1.x request head that starts at bytes[0], when the whole head is there.
std::optional<std::string> request_head_host(std::span<const uint8_t> bytes);

}  // namespace wtmesh::edge
