// The request head of an HTTP/2 stream or an HTTP/3 request stream as a version-neutral
// ExchangeRequest: pseudo-header fields (:method, :path, :authority, :protocol) and fields in, the
// exchange's request (or the edge's own refusal) out. Both codecs validated the field section's
// syntax already (nghttp2; h3/headers.h), so what is left is the mapping and what tunnels refuse.
#pragma once

#include <string>

#include "edge/public_exchange.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

struct FieldRequest {
  ExchangeRequest request;
  // For the request log, also when refused.
  std::string method;
  std::string path;
  std::string host;
  // An extended CONNECT's :protocol (RFC 8441, RFC 9220): the codec maps it (WebSocket) or refuses it.
  std::string protocol;
  // Non-zero: the edge answers this status itself (400, 405) with `detail`.
  int refuse = 0;
  std::string detail;
};

// `fields` in the order received (names lower-case, as both versions require). `body_follows`: the
// header section did not end the stream. Cookie crumbs are joined again (RFC 9113 §8.2.3, RFC 9114
// §4.2.1); Host and Content-Length stay out of the forwarded fields as on HTTP/1.1, and so do the
// connection-specific fields HTTP/2 and HTTP/3 forbid (a peer that sent them anyway is not trusted
// with their meaning). A plain CONNECT (tunnels carry no CONNECT) gets 405; an extended CONNECT comes
// back with its `protocol` for the codec to map.
FieldRequest request_from_fields(tunnel::HeaderPairs fields, bool body_follows);

}  // namespace wtmesh::edge
