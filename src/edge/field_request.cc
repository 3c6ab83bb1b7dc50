#include "edge/field_request.h"

#include <charconv>
#include <optional>
#include <utility>

#include "edge/http_codec.h"

namespace wtmesh::edge {

FieldRequest request_from_fields(tunnel::HeaderPairs fields, bool body_follows) {
  FieldRequest out;
  ExchangeRequest& r = out.request;
  std::string cookie;
  std::optional<std::string> authority, host_field;
  for (auto& [name, value] : fields) {
    if (name == ":method") {
      r.method = std::move(value);
    } else if (name == ":path") {
      out.path = std::move(value);
    } else if (name == ":authority") {
      authority = std::move(value);
    } else if (name == ":protocol") {
      out.protocol = std::move(value);
    } else if (name.starts_with(':')) {
      continue;  // :scheme (the codec's transport decides http or https)
    } else if (name == "host") {
      host_field = std::move(value);
    } else if (name == "content-length") {
      uint64_t v = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec == std::errc() && p == value.data() + value.size()) r.content_length = v;
    } else if (name == "cookie") {
      cookie += (cookie.empty() ? "" : "; ") + value;
    } else if (name == "expect") {
      r.expect_continue = r.expect_continue || value == "100-continue";
    } else if (!is_hop_by_hop(name) || name == "te") {
      // TE is hop-by-hop but HTTP/2 and HTTP/3 allow "te: trailers" (gRPC needs it end to end).
      if (name != "te" || value == "trailers") r.headers.emplace_back(std::move(name), std::move(value));
    }
  }
  if (!cookie.empty()) r.headers.emplace_back("cookie", std::move(cookie));
  out.method = r.method;
  const auto refuse = [&out](int status, std::string detail) -> FieldRequest {
    out.refuse = status;
    out.detail = std::move(detail);
    return std::move(out);
  };
  if (r.method == "CONNECT" && out.protocol.empty())
    return refuse(405, "CONNECT is not supported by tunnels.");
  if (!(out.path.starts_with("/") || (out.path == "*" && r.method == "OPTIONS")))
    return refuse(400, "The request target is not a path.");
  r.authority = authority ? *authority : host_field.value_or("");
  const auto host = normalize_host(r.authority);
  if (!host) return refuse(400, "The :authority is not a valid host name.");
  out.host = *host;
  r.host = *host;
  r.target = out.path;
  r.has_body = body_follows;
  if (r.content_length && *r.content_length == 0) r.has_body = false;
  if (!r.has_body) r.content_length.reset();
  r.head_request = r.method == "HEAD";
  r.expect_continue = r.expect_continue && r.has_body;
  r.may_have_trailers = r.has_body;  // a trailing HEADERS may end any HTTP/2 or HTTP/3 body
  return out;
}

}  // namespace wtmesh::edge
