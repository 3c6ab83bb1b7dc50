#include "edge/connect_websocket.h"

#include "edge/http_codec.h"
#include "edge/route_table.h"
#include "tunnel/websocket_handshake.h"

namespace wtmesh::edge {

std::optional<std::string> ConnectWebSocket::begin(ExchangeRequest& r, std::string_view protocol,
                                                   std::string_view rfc) {
  if (protocol != "websocket") {
    return "The extended CONNECT protocol \"" + sanitize_header_value(protocol) +
           "\" is not supported: only websocket is (" + std::string(rfc) + ").";
  }
  r.method = "GET";
  r.upgrade = "websocket";
  r.content_length.reset();
  r.expect_continue = false;
  bool version = false;
  std::erase_if(r.headers, [&](const auto& f) {
    if (f.first == "sec-websocket-version") version = true;
    // The key (and an accept) are the edge's to make up: RFC 8441 §5 / RFC 9220 §3 have the client
    // send neither.
    return f.first == "sec-websocket-key" || f.first == "sec-websocket-accept";
  });
  key_ = tunnel::websocket_key();
  r.headers.emplace_back("sec-websocket-key", key_);
  if (!version) r.headers.emplace_back("sec-websocket-version", "13");
  state_ = State::kAsked;
  return std::nullopt;
}

ConnectWebSocket::Answer ConnectWebSocket::answer(const tunnel::ResponseHead& head) {
  Answer a;
  if (head.status != 101) {
    state_ = State::kNone;  // declined: a normal response (the exchange ended the request itself)
    return a;
  }
  std::optional<std::string> accept;
  for (auto& [n, v] : response_fields(head)) {
    std::string name = lower_ascii(n);
    if (name == "sec-websocket-accept") {
      accept = accept ? std::string() : v;  // twice is as wrong as a wrong one
    } else {
      a.fields.emplace_back(std::move(name), v);
    }
  }
  if (!accept || !tunnel::websocket_accept_matches(key_, *accept)) {
    // The upstream did not answer our handshake (a proxy in the way, a broken server): the client
    // must not take the stream for a WebSocket.
    state_ = State::kNone;
    a.kind = Answer::Kind::kBroken;
    a.fields.clear();
    a.detail = accept ? "The upstream's Sec-WebSocket-Accept does not match the handshake."
                      : "The upstream switched protocols without a Sec-WebSocket-Accept.";
    return a;
  }
  state_ = State::kSwitched;
  a.kind = Answer::Kind::kSwitched;
  return a;
}

}  // namespace wtmesh::edge
