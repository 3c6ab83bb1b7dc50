// Stateless HTTP/1.x pieces of the public listener: Host normalisation, the tunnel request head built
// from a public request (hop-by-hop headers removed, forwarding headers added), the response head
// written back to the client with its framing, chunk framing, and the edge's own error pages.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "edge/public_exchange.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

namespace beast_http = boost::beast::http;

// The Alt-Svc value announcing HTTP/3 on the edge's UDP port (RFC 7838, RFC 9114 §3.1.1): what every
// HTTPS response on TCP carries when public HTTP/3 is on.
std::string alt_svc_h3(uint16_t udp_port);

// Largest public request header section (request line + fields) the edge reads; a larger one gets
// 431. Below tunnel::kMaxHeadLength so the encoded head (plus forwarding headers) always fits.
inline constexpr size_t kMaxPublicHeaderBytes = 48 * 1024;

// "App.Example.com:8443" → "app.example.com"; "[::1]:80" → "::1"; "127.0.0.1" stays. nullopt for
// an empty, malformed or over-long value (→ 400).
std::optional<std::string> normalize_host(std::string_view host_header);

// Hop-by-hop header names (lower-case) that are never forwarded, besides those named in Connection.
bool is_hop_by_hop(std::string_view lower_name);

// The key per-client limits count a client address under: an IPv4 address as itself, an IPv6 address
// by its /64 (one host usually holds a whole /64), an IPv4-mapped IPv6 address as the IPv4 one.
std::string client_limit_key(const boost::asio::ip::address& address);

// 0 when the request's Transfer-Encoding (if any) is one the edge forwards: exactly "chunked", on
// HTTP/1.1. Otherwise the status to answer before closing the connection, with `detail`:
//   400: chunked is not the final coding, or appears twice, or the request is HTTP/1.0, or the list is
//        empty (RFC 9112 §6.1, §6.3: the body length cannot be determined reliably);
//   501: another coding before chunked (gzip, deflate, ...): the edge decodes none.
int transfer_encoding_status(const beast_http::request_header<>& req, std::string* detail);

// The request's end-to-end fields, names lower-case, in order: hop-by-hop ones (and those named in
// Connection), Host, Content-Length and Expect: 100-continue are the HTTP/1.1 side's own.
tunnel::HeaderPairs end_to_end_fields(const beast_http::request_header<>& req);

// The request as the tunnel sees it (end_to_end_fields() + tunnel_request_head()). `target` is origin-form
// (absolute-form already split by the caller); `authority` is the public Host as sent. Returns 0, or an HTTP
// status (400, 431) with `detail` when the request cannot be forwarded.
int build_request_head(const beast_http::request_header<>& req, std::string_view target,
                       std::string_view authority, std::optional<uint64_t> content_length, bool chunked,
                       const ClientInfo& client, uint32_t tunnel_id, tunnel::RequestHead& out,
                       std::string* detail);

// The protocol an HTTP/1.1 request asks to switch to, as the exchange's `upgrade`: "websocket" for a
// GET with `Connection: upgrade` (in its token list) and `websocket` among the Upgrade tokens (RFC 6455
// §4.1), else "" (other Upgrade values are dropped as hop-by-hop). The body is the caller's to check.
std::string requested_upgrade(const beast_http::request_header<>& req);

// The head of a 101 for an upgraded exchange: `Upgrade: <protocol>`, `Connection: Upgrade` and the
// agent's end-to-end fields (Sec-WebSocket-Accept, -Protocol, -Extensions, ...; response_fields()).
std::string switching_head_bytes(const tunnel::ResponseHead& head, std::string_view protocol);

// True when `req` asks for 100-continue (HTTP/1.1 only).
bool expects_continue(const beast_http::request_header<>& req);
// The client said `TE: trailers` (HTTP/1.1): it takes a trailer section after a chunked body.
bool accepts_trailers(const beast_http::request_header<>& req);

enum class Framing {
  kNone,     // no body (HEAD, 1xx/204/304, or the agent said none)
  kLength,   // Content-Length
  kChunked,  // Transfer-Encoding: chunked (HTTP/1.1 client, length unknown)
  kClose,    // close-delimited (HTTP/1.0 client, length unknown)
};

struct ResponsePlan {
  Framing framing = Framing::kNone;
  uint64_t length = 0;      // for kLength
  bool keep_alive = false;  // the connection may carry another request afterwards
};

// The agent's response fields the client may see, names as the agent wrote them (HTTP/2 lower-cases
// them): hop-by-hop ones (and those named in Connection), Content-Length (the codec frames the body),
// wtmesh-error, Alt-Svc (the local service's alternatives point at its own ports; the edge announces
// its own) and fields with invalid names or values (no response splitting) are dropped. Every
// version's codec writes these.
tunnel::HeaderPairs response_fields(const tunnel::ResponseHead& head);
// The agent's trailer section as the client may get it: response_fields()'s rules, names lower-case.
tunnel::HeaderPairs trailer_fields(const tunnel::HeaderPairs& trailers);

// Status line + headers for the client. The agent's hop-by-hop and framing headers are dropped and
// headers with invalid names/values are skipped (no response splitting); framing and Connection
// are ours. `version` is the client's (10 or 11).
std::string response_head_bytes(const tunnel::ResponseHead& head, bool head_request, unsigned version,
                                bool keep_alive, ResponsePlan* plan);

std::string chunk_header(size_t n);  // "<hex>\r\n"
// An interim response (103 Early Hints) for an HTTP/1.1 client, fields as response_fields().
std::string interim_head_bytes(const tunnel::ResponseHead& head);
// The last chunk of a chunked body with a trailer section (trailer_fields()), then the empty line.
std::string last_chunk_with_trailers(const tunnel::HeaderPairs& trailers);
inline constexpr std::string_view kChunkTrailer = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// A page generated by the edge, whatever the version: "404 Not Found", its fields (content-type,
// cache-control, and for 502/504 the sanitised `detail` as wtmesh-error) and a small HTML body with
// `detail` escaped. The codec adds its framing (Content-Length, END_STREAM).
struct ErrorPage {
  std::string title;
  tunnel::HeaderPairs fields;
  std::string body;
};
ErrorPage error_page(int status, std::string_view detail);

// A complete HTTP/1.x response (head + small HTML page) generated by the edge. `detail` is escaped; for
// 502 it is also sent, sanitised, as the wtmesh-error header.
std::string error_response(int status, std::string_view detail, unsigned version, bool keep_alive);

std::string html_escape(std::string_view s);
// Drops control characters (CR, LF, NUL, ...) and trims to `max` bytes.
std::string sanitize_header_value(std::string_view s, size_t max = 512);

}  // namespace wtmesh::edge
