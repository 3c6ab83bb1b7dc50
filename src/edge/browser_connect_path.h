// The request of a browser's mesh session, `/connect/NAME?token=TOKEN` (docs/protocol.md §8), and
// what each refusal looks like to the page. Sans-I/O: a path in, values out.
//
// Browsers cannot set headers on a WebTransport session, so the token rides in the query. It is
// never logged: nothing here puts it in an error message, and callers log the name only.
//   - the path is at most kMaxConnectPath bytes;
//   - NAME is one or more DNS labels (lower-cased; NAME without a dot means NAME.DOMAIN), no
//     percent-encoding, no further '/';
//   - the query is `&`-separated `key=value` pairs; `token` must appear exactly once, non-empty,
//     base64url and '.' only (a compact JWS); other keys are ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tunnel/connect_stream.h"

namespace wtmesh::edge {

inline constexpr std::string_view kConnectPathPrefix = "/connect/";
inline constexpr size_t kMaxConnectPath = 9 * 1024;  // a token (8 KiB at most) and a name

struct BrowserConnectRequest {
  std::string name;   // lower-case NAME.DOMAIN
  std::string token;  // compact JWS, not yet verified
};

// True when `path` is for the browser endpoint (starts with kConnectPathPrefix).
bool is_browser_connect_path(std::string_view path);

// Parses `path` (":path" of the CONNECT). On failure returns nullopt with `error` set to a sentence
// for the page and the log, `status` to the HTTP status (400: malformed, 401: no token).
std::optional<BrowserConnectRequest> parse_browser_connect_path(std::string_view path,
                                                                std::string_view domain, int* status,
                                                                std::string* error);

// The HTTP status that refuses a session for `status` (403 not in scope, 404 unknown, 503 offline
// or limit, 502 unreachable, 400 invalid).
int http_status_of(tunnel::ConnectStatus status);

// The WebTransport stream error code a refused bidi stream is reset with:
// kBrowserStreamRefusedBase + status (under 256: draft-02 peers carry 8-bit stream codes).
inline constexpr uint32_t kBrowserStreamRefusedBase = 0x10;
uint32_t stream_code_of(tunnel::ConnectStatus status);
// The code a browser's stream is reset with when the bridge aborts (the service reset the connection,
// or the agent went away): as the tunnel protocol's kStreamCancelled.
inline constexpr uint32_t kBrowserStreamAborted = 3;
// Session close codes (WT close capsule) the edge sends on /connect/ sessions.
inline constexpr uint32_t kBrowserCloseTokenExpired = 3;  // as tunnel::kCloseTokenExpired
inline constexpr uint32_t kBrowserCloseDraining = 4;      // as tunnel::kCloseDraining

}  // namespace wtmesh::edge
