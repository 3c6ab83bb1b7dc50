// WebSocket over an extended CONNECT on the public side (RFC 8441 on HTTP/2, RFC 9220 on HTTP/3),
// mapped onto the RFC 6455 handshake the tunnel protocol keeps (docs/protocol.md §4) whatever the
// public version: the agent and its upstream see a GET with `upgrade: websocket` and a
// Sec-WebSocket-Key made up here; the agent's 101 is checked against that key and becomes a 2xx for the
// client. After the switch the stream's DATA frames carry the WebSocket's bytes untouched both ways.
//
// Sans-I/O: the codec asks begin() when a request carries :protocol, and answer() with the agent's
// response head while the handshake is asked; it writes what answer() says.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "edge/public_exchange.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

class ConnectWebSocket {
 public:
  // kAsked: the agent's answer is awaited (the client's DATA waits in the codec); kSwitched: raw
  // bytes both ways, each direction ends with its END_STREAM / FIN.
  enum class State { kNone, kAsked, kSwitched };

  // An extended CONNECT with `protocol` (:protocol) becomes the RFC 6455 handshake request in `r`.
  // nullopt: asked; otherwise the edge answers 501 with the returned detail (`rfc` names the
  // version's RFC in it).
  std::optional<std::string> begin(ExchangeRequest& r, std::string_view protocol, std::string_view rfc);

  struct Answer {
    enum class Kind {
      kDeclined,  // not a 101: a normal response to a bodiless request
      kSwitched,  // 101 with the right accept: send 200 with `fields`
      kBroken,    // 101 without the right accept: 502 with `detail`, cancel the exchange
    };
    Kind kind = Kind::kDeclined;
    tunnel::HeaderPairs fields;  // kSwitched: the agent's fields, lower-case, the accept dropped
    std::string detail;          // kBroken
  };
  // The agent's response head while asked.
  Answer answer(const tunnel::ResponseHead& head);

  State state() const { return state_; }
  bool asked() const { return state_ == State::kAsked; }
  // Asked or switched: the stream's answer is a WebSocket's, with no interim heads or trailers.
  bool active() const { return state_ != State::kNone; }
  bool switched() const { return state_ == State::kSwitched; }
  // The edge answers by itself after all (an error page): no switch is awaited any more.
  void forget() { state_ = State::kNone; }
  // The status the client got for an exchange's `status` (a switched WebSocket's 101 was a 200).
  int client_status(int status) const { return switched() && status == 101 ? 200 : status; }

 private:
  State state_ = State::kNone;
  std::string key_;  // the Sec-WebSocket-Key the edge made up for the agent's upstream
};

}  // namespace wtmesh::edge
