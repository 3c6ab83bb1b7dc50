// WebSocket over the public HTTP/2 side (RFC 8441, extended CONNECT) through ConnectWebSocket
// (edge/connect_websocket.h): the agent's 101 becomes a 200 for the client, then DATA frames carry the
// WebSocket's bytes untouched both ways (the exchange's raw relay); END_STREAM and FIN end one
// direction each.
#include <nghttp2/nghttp2.h>

#include "edge/h2_stream.h"

namespace wtmesh::edge {

bool H2Connection::Stream::begin_websocket(ExchangeRequest& r, std::string_view protocol) {
  // nghttp2 accepts :protocol only on a CONNECT with :scheme, :path and :authority (RFC 8441 §4).
  if (auto refusal = ws_.begin(r, protocol, "RFC 8441")) {
    answer(501, *refusal);
    return false;
  }
  return true;
}

bool H2Connection::Stream::switch_websocket(const tunnel::ResponseHead& head) {
  ConnectWebSocket::Answer a = ws_.answer(head);
  if (a.kind == ConnectWebSocket::Answer::Kind::kDeclined) return false;
  if (a.kind == ConnectWebSocket::Answer::Kind::kBroken) {
    ex_.cancel(a.detail);  // the agent's stream is reset; the exchange is over
    done_ = true;
    send_error(502, a.detail, false, true);  // the upstream's fault, not the client's (no answer count)
    conn_.log(*this, 502, a.detail);
    ++conn_.completed_;
    if (!client_ended_) rst_code_ = NGHTTP2_NO_ERROR;  // after the 502: the client's side is closed
    return true;
  }
  conn_.local_answers_ = 0;
  status_ = 200;  // RFC 8441 §5: a 2xx answers the extended CONNECT
  no_body_ = false;
  submit("200", a.fields, true);
  return true;
}

bool H2Connection::Stream::draining() const {
  return ws_.switched() && !done_ && close_code_ == NGHTTP2_NO_ERROR && client_ended_ && resp_eof_;
}

}  // namespace wtmesh::edge
