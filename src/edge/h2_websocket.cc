// WebSocket over the public HTTP/2 side (RFC 8441, extended CONNECT), mapped onto the RFC 6455
// handshake the tunnel protocol keeps (docs/protocol.md §4): the agent and its HTTP/1.1 upstream see a
// GET with `upgrade: websocket` and a Sec-WebSocket-Key made up here; the agent's 101 is checked
// against that key and becomes a 200 for the client. Then DATA frames carry the WebSocket's bytes
// untouched both ways (the exchange's raw relay); END_STREAM and FIN end one direction each.
#include <nghttp2/nghttp2.h>

#include "edge/h2_stream.h"
#include "edge/http_codec.h"
#include "edge/route_table.h"
#include "tunnel/websocket_handshake.h"

namespace wtmesh::edge {

bool H2Connection::Stream::begin_websocket(ExchangeRequest& r, std::string_view protocol) {
  // nghttp2 accepts :protocol only on a CONNECT with :scheme, :path and :authority (RFC 8441 §4).
  if (protocol != "websocket") {
    answer(501, "The extended CONNECT protocol \"" + sanitize_header_value(protocol) +
                    "\" is not supported: only websocket is (RFC 8441).");
    return false;
  }
  r.method = "GET";
  r.upgrade = "websocket";
  r.content_length.reset();
  r.expect_continue = false;
  bool version = false;
  std::erase_if(r.headers, [&](const auto& f) {
    if (f.first == "sec-websocket-version") version = true;
    // The key (and an accept) are the edge's to make up: RFC 8441 §5 has the client send neither.
    return f.first == "sec-websocket-key" || f.first == "sec-websocket-accept";
  });
  ws_key_ = tunnel::websocket_key();
  r.headers.emplace_back("sec-websocket-key", ws_key_);
  if (!version) r.headers.emplace_back("sec-websocket-version", "13");
  ws_ = Ws::kAsked;
  return true;
}

bool H2Connection::Stream::switch_websocket(const tunnel::ResponseHead& head) {
  std::optional<std::string> accept;
  tunnel::HeaderPairs fields;
  for (auto& [n, v] : response_fields(head)) {
    std::string name = lower_ascii(n);
    if (name == "sec-websocket-accept") {
      // Twice is as wrong as a wrong one.
      accept = accept ? std::string() : v;
    } else {
      fields.emplace_back(std::move(name), v);
    }
  }
  if (!accept || !tunnel::websocket_accept_matches(ws_key_, *accept)) {
    // The upstream did not answer our handshake (a proxy in the way, a broken server): the client
    // must not take the stream for a WebSocket.
    const std::string detail = accept ? "The upstream's Sec-WebSocket-Accept does not match the handshake."
                                      : "The upstream switched protocols without a Sec-WebSocket-Accept.";
    ex_.cancel(detail);  // the agent's stream is reset; the exchange is over
    done_ = true;
    send_error(502, detail, false, true);  // the upstream's fault, not the client's (no answer count)
    conn_.log(*this, 502, detail);
    ++conn_.completed_;
    if (!client_ended_) rst_code_ = NGHTTP2_NO_ERROR;  // after the 502: the client's side is closed
    return false;
  }
  ws_ = Ws::kSwitched;
  conn_.local_answers_ = 0;
  status_ = 200;  // RFC 8441 §5: a 2xx answers the extended CONNECT
  no_body_ = false;
  submit("200", fields, true);
  return true;
}

bool H2Connection::Stream::draining() const {
  return ws_ == Ws::kSwitched && !done_ && close_code_ == NGHTTP2_NO_ERROR && client_ended_ && resp_eof_;
}

}  // namespace wtmesh::edge
