// HTTP/3 message validation (RFC 9114 §4.1.2, §4.2, §4.3; RFC 9220 extended CONNECT): a header
// section that fails these checks is malformed and its stream is reset with H3_MESSAGE_ERROR.
#pragma once

#include <optional>
#include <string>

#include "h3/connection.h"

namespace wtmesh::h3 {

// Each returns nullopt when `headers` is valid, else a short reason.
// Requests: pseudo-headers first, known and unique; :method; CONNECT needs :authority and no
// :scheme/:path; extended CONNECT (:protocol) needs :scheme/:path/:authority and
// `connect_protocol_enabled` (we sent SETTINGS_ENABLE_CONNECT_PROTOCOL); others need :scheme,
// :path and :authority (or host).
std::optional<std::string> validate_request_headers(const HeaderList& headers, bool connect_protocol_enabled);
// Responses: exactly one :status of three digits and no other pseudo-header.
std::optional<std::string> validate_response_headers(const HeaderList& headers);
// Trailers: no pseudo-headers.
std::optional<std::string> validate_trailers(const HeaderList& headers);

// True for a 1xx response header section (skipped: the final response follows).
bool is_informational_response(const HeaderList& headers);

}  // namespace wtmesh::h3
