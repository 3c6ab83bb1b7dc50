// Client-controlled text (authorities, targets, origins, SNI names, header values) made safe for a log
// line: a client must not be able to forge lines, hide text with terminal escapes, or fill the log
// with one huge field, and tokens in query strings must never reach the log.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wtmesh {

// `s` with every byte outside printable ASCII (and the backslash) written as \xNN (\\ for a
// backslash), cut to `max` bytes of output and then marked "...(N bytes)" with the input's length.
std::string log_text(std::string_view s, size_t max = 256);

// A request target for the log: log_text() of it, with the value of every query parameter that
// carries a credential (`token`, `wtmesh_token`, `access_token`) replaced by "REDACTED".
std::string log_target(std::string_view target, size_t max = 512);

}  // namespace wtmesh
