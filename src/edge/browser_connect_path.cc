#include "edge/browser_connect_path.h"

#include "edge/route_table.h"
#include "tunnel/token.h"

namespace wtmesh::edge {
namespace {

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.';
}

std::optional<BrowserConnectRequest> fail(int* status, std::string* error, int code, std::string why) {
  *status = code;
  *error = std::move(why);
  return std::nullopt;
}

}  // namespace

bool is_browser_connect_path(std::string_view path) { return path.starts_with(kConnectPathPrefix); }

std::optional<BrowserConnectRequest> parse_browser_connect_path(std::string_view path,
                                                                std::string_view domain, int* status,
                                                                std::string* error) {
  if (path.size() > kMaxConnectPath) return fail(status, error, 414, "the path is too long");
  if (!is_browser_connect_path(path)) return fail(status, error, 404, "not a /connect/ path");
  path.remove_prefix(kConnectPathPrefix.size());
  const size_t q = path.find('?');
  const std::string_view name_text = path.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : path.substr(q + 1);
  BrowserConnectRequest r;
  if (name_text.empty()) return fail(status, error, 400, "no name after /connect/");
  if (name_text.size() > tunnel::kMaxConnectName) return fail(status, error, 400, "the name is too long");
  r.name = lower_ascii(name_text);
  if (r.name.find('.') == std::string::npos) r.name += "." + lower_ascii(domain);
  if (r.name.size() > tunnel::kMaxConnectName ||
      !tunnel::is_valid_host_pattern(r.name, /*allow_wildcard=*/false)) {
    return fail(status, error, 400, "the name is not a host name");
  }
  bool seen = false;
  std::string_view rest = query;
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) != "token") continue;
    if (seen) return fail(status, error, 400, "the token is given twice");
    seen = true;
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (value.empty()) return fail(status, error, 401, "the token is empty");
    if (value.size() > tunnel::kMaxTokenSize) return fail(status, error, 401, "the token is too long");
    for (char c : value) {
      if (!is_token_char(c)) return fail(status, error, 401, "the token has a character no token has");
    }
    r.token = std::string(value);
  }
  if (!seen) return fail(status, error, 401, "no token: add ?token=TOKEN");
  return r;
}

int http_status_of(tunnel::ConnectStatus status) {
  using S = tunnel::ConnectStatus;
  switch (status) {
    case S::kConnected:
      return 200;
    case S::kNotInScope:
      return 403;
    case S::kUnknown:
      return 404;
    case S::kOffline:
    case S::kLimit:
      return 503;
    case S::kUnreachable:
      return 502;
    case S::kInvalid:
      return 400;
  }
  return 400;
}

uint32_t stream_code_of(tunnel::ConnectStatus status) {
  return kBrowserStreamRefusedBase + static_cast<uint32_t>(status);
}

}  // namespace wtmesh::edge
