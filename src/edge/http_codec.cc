#include "edge/http_codec.h"

#include <algorithm>
#include <array>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <cstdio>
#include <vector>

#include "common/text.h"
#include "edge/route_table.h"

namespace wtmesh::edge {
namespace {

constexpr size_t kMaxHostHeader = 255 + 1 + 5 + 2;  // name, colon, port, IPv6 brackets

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

// Field values may hold HTAB, SP, visible ASCII and obs-text; never CR, LF, NUL or other controls.
bool is_field_value(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// Comma-separated tokens of a header value, lower-cased.
std::vector<std::string> list_tokens(std::string_view v) {
  std::vector<std::string> out;
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view item = trim(v.substr(0, comma));
    if (!item.empty()) out.push_back(lower_ascii(item));
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

std::optional<std::string> normalize_host(std::string_view h) {
  h = trim(h);
  if (h.empty() || h.size() > kMaxHostHeader) return std::nullopt;
  std::string_view host = h, port;
  if (h.front() == '[') {
    const size_t close = h.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = h.substr(1, close - 1);
    std::string_view rest = h.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
    }
    if (host.empty()) return std::nullopt;
    for (char c : host) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
            c == '.')) {
        return std::nullopt;
      }
    }
  } else {
    const size_t colon = h.rfind(':');
    if (colon != std::string_view::npos) {
      host = h.substr(0, colon);
      port = h.substr(colon + 1);
    }
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // absolute name
    if (host.empty()) return std::nullopt;
    for (char c : host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_';
      if (!ok) return std::nullopt;
    }
  }
  if (port.size() > 5) return std::nullopt;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return lower_ascii(host);
}

bool is_hop_by_hop(std::string_view n) {
  static constexpr std::array<std::string_view, 7> kNames = {
      "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"};
  for (auto k : kNames) {
    if (n == k) return true;
  }
  return false;
}

std::string client_limit_key(const boost::asio::ip::address& address) {
  if (address.is_v4()) return address.to_string();
  auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) return v6.to_v4().to_string();
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

int transfer_encoding_status(const beast_http::request_header<>& req, std::string* detail) {
  std::vector<std::string> codings;
  bool any = false;
  for (auto it = req.find(beast_http::field::transfer_encoding);
       it != req.end() && it->name() == beast_http::field::transfer_encoding; ++it) {
    any = true;
    for (auto& t : list_tokens(it->value())) codings.push_back(std::move(t));
  }
  if (!any) return 0;
  if (req.version() < 11) {
    *detail = "An HTTP/1.0 request cannot use Transfer-Encoding.";
    return 400;
  }
  if (codings.empty() || codings.back() != "chunked") {
    *detail = "The request's final transfer coding is not chunked, so its length cannot be determined.";
    return 400;
  }
  if (std::count(codings.begin(), codings.end(), "chunked") > 1) {
    *detail = "The request applies the chunked transfer coding more than once.";
    return 400;
  }
  if (codings.size() > 1) {
    *detail = "The transfer coding " + sanitize_header_value(codings.front(), 64) + " is not supported.";
    return 501;
  }
  return 0;
}

bool accepts_trailers(const beast_http::request_header<>& req) {
  if (req.version() < 11) return false;
  for (auto it = req.find(beast_http::field::te); it != req.end() && it->name() == beast_http::field::te; ++it) {
    for (const auto& t : list_tokens(it->value())) {
      if (t == "trailers") return true;
    }
  }
  return false;
}

bool expects_continue(const beast_http::request_header<>& req) {
  if (req.version() < 11) return false;
  auto it = req.find(beast_http::field::expect);
  return it != req.end() && iequals(trim(it->value()), "100-continue");
}

std::string requested_upgrade(const beast_http::request_header<>& req) {
  if (req.version() < 11 || req.method() != beast_http::verb::get) return {};
  bool connection_upgrade = false, websocket = false;
  for (auto it = req.find(beast_http::field::connection);
       it != req.end() && it->name() == beast_http::field::connection; ++it) {
    for (const auto& t : list_tokens(it->value())) connection_upgrade = connection_upgrade || t == "upgrade";
  }
  for (auto it = req.find(beast_http::field::upgrade);
       it != req.end() && it->name() == beast_http::field::upgrade; ++it) {
    for (const auto& t : list_tokens(it->value())) websocket = websocket || t == "websocket";
  }
  return connection_upgrade && websocket ? "websocket" : "";
}

std::string switching_head_bytes(const tunnel::ResponseHead& head, std::string_view protocol) {
  std::string out = "HTTP/1.1 101 Switching Protocols\r\nupgrade: ";
  out += protocol;
  out += "\r\nconnection: Upgrade\r\n";
  for (const auto& [n, v] : response_fields(head)) {
    out += n;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

tunnel::HeaderPairs end_to_end_fields(const beast_http::request_header<>& req) {
  // Names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1).
  std::vector<std::string> connection_names;
  for (auto it = req.find(beast_http::field::connection);
       it != req.end() && it->name() == beast_http::field::connection; ++it) {
    for (auto& t : list_tokens(it->value())) connection_names.push_back(std::move(t));
  }
  tunnel::HeaderPairs out;
  for (const auto& f : req) {
    std::string name = lower_ascii(f.name_string());
    const std::string_view value = f.value();
    if (is_hop_by_hop(name) || name == "host" || name == "content-length") continue;
    if (std::find(connection_names.begin(), connection_names.end(), name) != connection_names.end()) continue;
    if (name == "expect" && iequals(trim(value), "100-continue")) continue;  // the edge answers it
    out.emplace_back(std::move(name), std::string(value));
  }
  return out;
}

int build_request_head(const beast_http::request_header<>& req, std::string_view target,
                       std::string_view authority, std::optional<uint64_t> content_length, bool chunked,
                       const ClientInfo& client, uint32_t tunnel_id, tunnel::RequestHead& out,
                       std::string* detail) {
  ExchangeRequest r;
  r.method = std::string(req.method_string());
  r.target = std::string(target);
  r.authority = std::string(authority);
  r.headers = end_to_end_fields(req);
  r.has_body = chunked;
  if (!chunked) r.content_length = content_length;
  return tunnel_request_head(r, client, tunnel_id, out, detail);
}

std::string alt_svc_h3(uint16_t udp_port) { return "h3=\":" + std::to_string(udp_port) + "\"; ma=86400"; }

namespace {

// Calls fn(name, value) for each field of `head` that a client may get (response_fields()'s rules),
// without copying a field: this runs for every response.
template <typename Fn>
void for_each_response_field(const tunnel::ResponseHead& head, Fn&& fn) {
  std::vector<std::string> connection_names;  // fields a Connection header names (rare)
  for (const auto& [n, v] : head.headers) {
    if (iequals(n, "connection")) {
      for (auto& t : list_tokens(v)) connection_names.push_back(std::move(t));
    }
  }
  std::array<char, 64> small{};  // the lower-case name, when it fits (nearly always)
  std::string large;
  for (const auto& [n, v] : head.headers) {
    std::string_view name;
    if (n.size() <= small.size()) {
      std::transform(n.begin(), n.end(), small.begin(),
                     [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
      name = std::string_view(small.data(), n.size());
    } else {
      large = lower_ascii(n);
      name = large;
    }
    if (!is_token(name) || !is_field_value(v)) continue;
    if (is_hop_by_hop(name) || name == "content-length" || name == tunnel::kErrorHeader) continue;
    if (name == "alt-svc") continue;  // the local service's alternatives are not the edge's
    if (std::find(connection_names.begin(), connection_names.end(), name) != connection_names.end()) continue;
    fn(n, v);
  }
}

}  // namespace

tunnel::HeaderPairs response_fields(const tunnel::ResponseHead& head) {
  tunnel::HeaderPairs out;
  out.reserve(head.headers.size());
  for_each_response_field(head, [&](const std::string& n, const std::string& v) { out.emplace_back(n, v); });
  return out;
}

tunnel::HeaderPairs trailer_fields(const tunnel::HeaderPairs& trailers) {
  tunnel::ResponseHead h;
  h.headers = trailers;
  tunnel::HeaderPairs out = response_fields(h);
  for (auto& [n, v] : out) n = lower_ascii(n);
  return out;
}

std::string interim_head_bytes(const tunnel::ResponseHead& head) {
  std::string out = "HTTP/1.1 " + std::to_string(head.status) + ' ';
  const std::string_view reason =
      head.status == 103 ? std::string_view("Early Hints")
                         : std::string_view(beast_http::obsolete_reason(static_cast<beast_http::status>(head.status)));
  out += reason.empty() || reason == "<unknown-status>" ? std::string_view("Unknown") : reason;
  out += "\r\n";
  for (const auto& [n, v] : response_fields(head)) out += n + ": " + v + "\r\n";
  out += "\r\n";
  return out;
}

std::string last_chunk_with_trailers(const tunnel::HeaderPairs& trailers) {
  std::string out = "0\r\n";
  for (const auto& [n, v] : trailer_fields(trailers)) out += n + ": " + v + "\r\n";
  out += "\r\n";
  return out;
}

std::string response_head_bytes(const tunnel::ResponseHead& head, bool head_request, unsigned version,
                                bool keep_alive, ResponsePlan* plan) {
  const int status = head.status;
  const bool bodiless_status = status == 204 || status == 304 || (status >= 100 && status < 200);
  ResponsePlan p;
  p.keep_alive = keep_alive;
  if (head_request || bodiless_status) {
    p.framing = Framing::kNone;
  } else if (head.content_length) {
    p.framing = Framing::kLength;
    p.length = *head.content_length;
  } else if (!head.has_body) {
    p.framing = Framing::kLength;
    p.length = 0;
  } else if (version >= 11) {
    p.framing = Framing::kChunked;
  } else {
    p.framing = Framing::kClose;
    p.keep_alive = false;
  }

  size_t size = 128;  // status line, framing and connection fields, the blank line
  for (const auto& [n, v] : head.headers) size += n.size() + v.size() + 4;
  std::string out;
  out.reserve(size);
  out += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
  out += std::to_string(status);
  out += ' ';
  const std::string_view reason = beast_http::obsolete_reason(static_cast<beast_http::status>(status));
  out += reason.empty() || reason == "<unknown-status>" ? std::string_view("Unknown") : reason;
  out += "\r\n";
  for_each_response_field(head, [&](const std::string& n, const std::string& v) {
    out += n;
    out += ": ";
    out += v;
    out += "\r\n";
  });
  switch (p.framing) {
    case Framing::kLength:
      out += "content-length: " + std::to_string(p.length) + "\r\n";
      break;
    case Framing::kChunked:
      out += "transfer-encoding: chunked\r\n";
      break;
    case Framing::kNone:
      // HEAD / 304 may carry the length the full response would have.
      if (head.content_length && status != 204 && !(status >= 100 && status < 200)) {
        out += "content-length: " + std::to_string(*head.content_length) + "\r\n";
      }
      break;
    case Framing::kClose:
      break;
  }
  if (!p.keep_alive) {
    out += "connection: close\r\n";
  } else if (version < 11) {
    out += "connection: keep-alive\r\n";
  }
  out += "\r\n";
  *plan = p;
  return out;
}

std::string chunk_header(size_t n) {
  char buf[24];
  const int k = std::snprintf(buf, sizeof(buf), "%zx\r\n", n);
  return std::string(buf, static_cast<size_t>(k));
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string sanitize_header_value(std::string_view s, size_t max) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) break;
    if (c >= 0x20 && c != 0x7f) out += static_cast<char>(c);
  }
  return std::string(trim(out));
}

ErrorPage error_page(int status, std::string_view detail) {
  const std::string_view reason = beast_http::obsolete_reason(static_cast<beast_http::status>(status));
  ErrorPage page;
  page.title = std::to_string(status) + " " + std::string(reason);
  page.body = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + page.title +
              "</title></head>\n<body><h1>" + page.title + "</h1>\n<p>" + html_escape(detail) +
              "</p>\n<hr><p><small>wtmesh edge</small></p></body></html>\n";
  page.fields.emplace_back("content-type", "text/html; charset=utf-8");
  page.fields.emplace_back("cache-control", "no-store");
  if (status == 502 || status == 504)
    page.fields.emplace_back(std::string(tunnel::kErrorHeader), sanitize_header_value(detail));
  return page;
}

std::string error_response(int status, std::string_view detail, unsigned version, bool keep_alive) {
  const ErrorPage page = error_page(status, detail);
  std::string out = (version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ") + page.title + "\r\n";
  for (const auto& [n, v] : page.fields) out += n + ": " + v + "\r\n";
  out += "content-length: " + std::to_string(page.body.size()) + "\r\n";
  if (!keep_alive) {
    out += "connection: close\r\n";
  } else if (version < 11) {
    out += "connection: keep-alive\r\n";
  }
  out += "\r\n";
  out += page.body;
  return out;
}

}  // namespace wtmesh::edge
