// The protocol tier of the agent's upstream exchange: what is said to the local service, in bytes, with
// no socket, timer or loop. An UpstreamExchange (the socket-free core, upstream_exchange.h) owns one
// codec per request; it hands the codec the tunnel request head and body and gets back the bytes to
// write upstream, and it feeds the codec the upstream's bytes and gets back the tunnel ResponseHead and
// response body bytes. The driver (upstream_driver.h) moves the bytes; the codec never sees it.
//
// Implementations:
//  - Http1Codec (http1_codec.h): HTTP/1.1 on a keep-alive TCP connection; request head with the public
//    Host, chunked framing when no length is known; Beast's response parser (chunked, close-delimited,
//    HEAD/204/304, 1xx skipped, the keep-alive decision).
//  - H2Codec (h2_codec.h): one request on one stream of a shared HTTP/2 connection (h2c, or h2 chosen
//    by ALPN over TLS). The seam: the connection is a per-connection session beside the pool
//    (H2UpstreamSession, sans-I/O on nghttp2: framing, HPACK, flow control, stream caps, GOAWAY),
//    owned with its socket by H2UpstreamClient (one per tunnel: connection cap, bounded wait queue,
//    idle expiry); the per-request transport is one stream of it (MuxStreamDriver). Between codec and
//    stream transport the bytes are the tunnel's own head encoding plus raw body, both ways: the codec
//    owns the HTTP semantics (hop-by-hop fields dropped, :authority = the public authority,
//    `te: trailers` kept, HEAD/204/304, content-length), the session owns the wire. end_by_fin(): the
//    request body ends with the stream (END_STREAM), given to the transport as write_last().
//    reusable() is "the stream ended cleanly"; release() forgets the stream, the connection stays.
//  - HTTP/3 (`--upstream h3`) uses the same H2Codec (the HTTP semantics are the same): the stream
//    transport is the shared MuxStreamDriver (mux_upstream.h) on an H3UpstreamSession (our h3::Connection
//    over our QUIC client, UDP LOCALPORT, TLS implied; QPACK is h3/'s business), FIN instead of
//    END_STREAM; a WebSocket is RFC 9220's extended CONNECT.
//  - WebSocket toward HTTP/2 (RFC 8441): H2Codec turns an RFC 6455 request into an extended CONNECT
//    (method CONNECT in the head it gives the stream transport, which adds `:protocol: websocket`;
//    the key is dropped and kept in the codec); H2UpstreamClient attaches such a stream only to a
//    connection whose SETTINGS allow extended CONNECT (a 502 when they do not); a 200 becomes a 101
//    with the Sec-WebSocket-Accept of the key (tunnel/websocket_handshake.h); upgrade()/switched() as for
//    HTTP/1.1, and the transport's shutdown_write() is END_STREAM.
//  - A raw TCP/UDP codec (tcp/udp tunnel types) is the identity: no head to write, body bytes pass
//    through, decode() produces a synthetic head once and then passes bytes through until EOF; it is
//    never reusable. A TLS upstream is a driver matter (a TLS stream under the same codec:
//    UpstreamConnection, upstream_connection.h), not a codec.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tunnel/wire.h"

namespace wtmesh::agent {

class UpstreamCodec {
 public:
  enum class Status {
    kNeedInput,  // feed more upstream bytes (or put_eof)
    kHead,       // a response head is ready: take_head(); then call decode() again. An interim one
                 // (tunnel::is_interim(status): 100, 103) may come before the final head; it does
                 // not count for head_produced()
    kBodyFull,   // `body` reached max_body: send it onward, then call decode() again
    kDone,       // the response is complete (the last body bytes may be in `body`)
    kError,      // error() says what; head_produced() tells whether a head was already produced
  };

  virtual ~UpstreamCodec() = default;

  // --- request (tunnel → upstream) ---
  // Prepares the request for `head`; false with `error` set when it cannot be forwarded safely.
  virtual bool start_request(const tunnel::RequestHead& head, std::string* error) = 0;
  // Appends the request head's bytes (again after restart_response(), for a retry).
  virtual void write_head(std::string& out) const = 0;
  // Appends one piece of request body, framed.
  virtual void write_body(std::string& out, std::span<const uint8_t> data) const = 0;
  // Appends what ends the request body (may be nothing when the length was announced).
  virtual void write_end(std::string& out) const = 0;
  // The end of the request body is the transport's (HTTP/2 END_STREAM, HTTP/3 FIN): the exchange's
  // last write goes through UpstreamTransport::write_last(), even when it carries no bytes.
  virtual bool end_by_fin() const { return false; }

  // --- response (upstream → tunnel) ---
  // Room for upstream bytes; put_input takes at most this many. 0: do not read now.
  virtual size_t input_room() const = 0;
  virtual void put_input(std::span<const uint8_t> data) = 0;
  // The upstream closed its side.
  virtual void put_eof() = 0;
  // Decodes buffered input, appending body bytes to `body` until it holds `max_body` bytes.
  virtual Status decode(std::vector<uint8_t>& body, size_t max_body) = 0;
  virtual tunnel::ResponseHead take_head() = 0;
  virtual bool head_produced() const = 0;
  virtual const std::string& error() const = 0;
  // After the final head: the response may end with a trailer section (HTTP/2, chunked HTTP/1.1).
  virtual bool may_have_trailers() const { return false; }
  // After kDone: the trailer fields (lower-case names; none when there were none).
  virtual tunnel::HeaderPairs take_trailers() { return {}; }
  // After kDone: the connection can carry another request.
  virtual bool reusable() const = 0;
  // Forgets the response so far, for replaying the request on a new connection.
  virtual void restart_response() = 0;

  // --- switching protocols (WebSocket over HTTP/1.1) ---
  // The request asks to switch protocols: request body bytes go upstream only after switched(), and
  // then unframed (write_body passes them through, write_end writes nothing); never reusable.
  virtual bool upgrade() const { return false; }
  // The final head was a 101: both directions carry raw bytes until each side's EOF/FIN.
  virtual bool switched() const { return false; }
};

}  // namespace wtmesh::agent
