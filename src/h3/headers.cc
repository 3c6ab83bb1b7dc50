// HTTP/3 message validation.
#include "h3/headers.h"

#include <string_view>

namespace wtmesh::h3 {
namespace {

// Checks shared by all sections: field names lower-case visible ASCII, values free of NUL/CR/LF,
// no connection-specific fields, pseudo-headers before regular ones.
std::optional<std::string> check_common(const HeaderList& headers) {
  bool regular_seen = false;
  for (const Header& h : headers) {
    if (h.name.empty()) return "empty field name";
    for (size_t i = 0; i < h.name.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(h.name[i]);
      if (c <= 0x20 || c >= 0x7f || (c >= 'A' && c <= 'Z') || (c == ':' && i > 0))
        return "invalid field name";
    }
    for (char ch : h.value) {
      if (ch == '\0' || ch == '\r' || ch == '\n') return "invalid field value";
    }
    if (h.name[0] == ':') {
      if (regular_seen) return "pseudo-header after regular field";
      continue;
    }
    regular_seen = true;
    const std::string_view n = h.name;
    if (n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "transfer-encoding" ||
        n == "upgrade") {
      return "connection-specific field";
    }
    if (n == "te" && h.value != "trailers") return "te other than trailers";
  }
  return std::nullopt;
}

}  // namespace

const std::string* find_header(const HeaderList& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (h.name == name) return &h.value;
  }
  return nullptr;
}

std::optional<std::string> validate_request_headers(const HeaderList& headers,
                                                    bool connect_protocol_enabled) {
  if (auto err = check_common(headers)) return err;
  const std::string *method = nullptr, *scheme = nullptr, *authority = nullptr, *path = nullptr,
                    *protocol = nullptr;
  for (const Header& h : headers) {
    if (h.name[0] != ':') break;
    const std::string** slot = h.name == ":method"      ? &method
                               : h.name == ":scheme"    ? &scheme
                               : h.name == ":authority" ? &authority
                               : h.name == ":path"      ? &path
                               : h.name == ":protocol"  ? &protocol
                                                        : nullptr;
    if (slot == nullptr) return "unknown pseudo-header " + h.name;
    if (*slot != nullptr) return "duplicate pseudo-header " + h.name;
    *slot = &h.value;
  }
  if (method == nullptr || method->empty()) return "missing :method";
  if (*method == "CONNECT") {
    if (protocol != nullptr) {
      if (!connect_protocol_enabled) return ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL";
      if (protocol->empty()) return "empty :protocol";
      if (scheme == nullptr || path == nullptr || authority == nullptr || path->empty() ||
          authority->empty()) {
        return "extended CONNECT needs :scheme, :path and :authority";
      }
      return std::nullopt;
    }
    if (authority == nullptr || authority->empty()) return "CONNECT without :authority";
    if (scheme != nullptr || path != nullptr) return "CONNECT with :scheme or :path";
    return std::nullopt;
  }
  if (protocol != nullptr) return ":protocol on a non-CONNECT request";
  if (scheme == nullptr || scheme->empty()) return "missing :scheme";
  if (path == nullptr || path->empty()) return "missing :path";
  if ((authority == nullptr || authority->empty()) && find_header(headers, "host") == nullptr) {
    return "missing :authority";
  }
  return std::nullopt;
}

std::optional<std::string> validate_response_headers(const HeaderList& headers) {
  if (auto err = check_common(headers)) return err;
  const std::string* status = nullptr;
  for (const Header& h : headers) {
    if (h.name[0] != ':') break;
    if (h.name != ":status") return "unexpected pseudo-header " + h.name;
    if (status != nullptr) return "duplicate :status";
    status = &h.value;
  }
  if (status == nullptr) return "missing :status";
  if (status->size() != 3) return "malformed :status";
  for (char c : *status) {
    if (c < '0' || c > '9') return "malformed :status";
  }
  if ((*status)[0] == '0') return "malformed :status";
  return std::nullopt;
}

std::optional<std::string> validate_trailers(const HeaderList& headers) {
  if (auto err = check_common(headers)) return err;
  for (const Header& h : headers) {
    if (h.name[0] == ':') return "pseudo-header in trailers";
  }
  return std::nullopt;
}

bool is_informational_response(const HeaderList& headers) {
  const std::string* status = find_header(headers, ":status");
  return status != nullptr && !status->empty() && (*status)[0] == '1';
}

}  // namespace wtmesh::h3
