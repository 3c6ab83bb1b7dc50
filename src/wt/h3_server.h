// WebTransport server side over HTTP/3: one wt::H3Server per QUIC connection. It is the
// h3::Handler of that connection (installed by the constructor), answers extended CONNECT requests
// and owns the resulting sessions (wt/h3_session.h).
//
// For `:method CONNECT` with `:protocol` `webtransport` (Chromium, draft-02) or `webtransport-h3`
// (draft-15+), in this order:
//  1. wait (bounded, see ServerConfig::max_deferred_requests) until the client's SETTINGS arrived;
//  2. the client must have sent a WebTransport setting and H3_DATAGRAM, else 400;
//  3. Origin check against ServerConfig::allowed_origins, else 403 (no Origin header = allowed);
//  4. max_sessions live sessions already -> reset with H3_REQUEST_REJECTED (draft §5);
//  5. the acceptor decides: 2xx + handler accepts (response `:status`, plus
//     `sec-webtransport-http3-draft: draft02` when the request had `sec-webtransport-http3-draft02: 1`,
//     plus Accept::headers; the stream stays open), anything else is sent as the final status + FIN.
//     Accept::later() puts the decision off until answer(id) (SessionInfo::request_id): meanwhile the
//     request counts against max_sessions, the session's streams and datagrams are buffered as for
//     a session not yet known, and a request still undecided after buffered_stream_timeout, or reset
//     by the client, is rejected (answer() then returns false).
// Other requests (plain HTTP/3, and extended CONNECTs for other protocols such as RFC 9220's
// websocket) go to the RequestHandler, which then owns the stream: its body, reset, writability and
// close are routed to it, and it returns the body's flow-control credit itself (backpressure). Without
// a handler they get a 404 with a short text body and their bodies are dropped.
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "h3/connection.h"
#include "wt/config.h"
#include "wt/h3_session.h"
#include "wt/h3_session_registry.h"
#include "wt/session.h"

namespace wtmesh::wt {

// Non-WebTransport requests on a server connection. From on_request() until on_request_closed() or
// on_request_reset() the stream is the handler's: it answers with the h3::Connection's
// send_response/send_body/reset_request and gives body bytes back with consume() once it took them
// (nothing is consumed for it, so a handler that holds bytes holds the client back).
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // A request header section. `fin`: no body follows.
  virtual void on_request(StreamId id, const h3::HeaderList& headers, bool fin) = 0;
  // DATA payload in order (copy what is kept: the span is the connection's). Trailers end the body
  // (fin with no data), right after on_request_trailers.
  virtual void on_request_body(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
  // The request's trailing HEADERS (regular fields, validated by h3/). Default: dropped.
  virtual void on_request_trailers(StreamId /*id*/, const h3::HeaderList& /*trailers*/) {}
  // The peer reset the stream (or asked us to stop sending), or it failed. Only on_request_closed
  // follows (once our direction is done too: finish or reset it).
  virtual void on_request_reset(StreamId id, uint64_t h3_error) = 0;
  virtual void on_request_writable(StreamId id) = 0;
  // Both directions are done; no more calls for `id`.
  virtual void on_request_closed(StreamId id) = 0;
  // The connection is gone: every stream the handler held is over.
  virtual void on_connection_closed() = 0;
};

class H3Server final : public H3SessionRegistry {
 public:
  // Installs itself as `conn`'s handler; `conn` must outlive this object.
  H3Server(h3::Connection& conn, ServerConfig config, Acceptor acceptor);
  ~H3Server() override;

  // The live session on CONNECT stream `session_id`, or nullptr.
  H3Session* session(StreamId session_id) const { return find_session(session_id); }
  size_t deferred_request_count() const { return deferred_.size(); }
  // Decides a request the acceptor put off (Accept::later()), exactly as if the acceptor had answered
  // `accept` then. Call it from outside this connection's callbacks (the glue flushes afterwards).
  // False, with nothing done, when the request is no longer waiting: `accept.handler` hears nothing.
  bool answer(StreamId id, Accept accept);
  size_t undecided_count() const { return undecided_.size(); }
  // answer(id) would be taken: the request is still waiting for it.
  bool waiting(StreamId id) const;
  // Plain requests from now on go to `handler` (nullptr: 404). It must outlive this server or be
  // unset first.
  void set_request_handler(RequestHandler* handler) { requests_ = handler; }
  size_t request_count() const { return plain_.size(); }
  std::optional<SteadyTime> next_deadline() const override;

  // h3::Handler
  void on_peer_settings(const h3::Settings& peer) override;
  void on_headers(StreamId id, h3::HeaderList headers, bool fin) override;
  void on_body(StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_request_reset(StreamId id, uint64_t h3_error) override;
  void on_request_writable(StreamId id) override;
  void on_request_closed(StreamId id) override;
  void on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) override;

 private:
  struct Deferred {
    StreamId id;
    h3::HeaderList headers;
    SteadyTime deadline;
  };
  // A request the acceptor put off.
  struct Undecided {
    StreamId id;
    SessionInfo info;
    bool draft02;  // the request asked for the draft-02 response header
    SteadyTime deadline;
  };

  bool may_become_session(StreamId /*session_id*/) const override { return true; }
  void on_other_request_gone(StreamId id) override;
  void on_tick_role(SteadyTime now) override;

  void process_connect(StreamId id, const h3::HeaderList& headers);
  // Step 5's outcome: the response, and the session on 2xx.
  void decide(StreamId id, SessionInfo info, bool draft02, Accept accept);
  bool origin_allowed(const std::string& origin) const;
  // Final response without a session; the id is remembered as gone.
  void refuse_connect(StreamId id, int status, const HeaderPairs& extra = {});
  void reject_request(StreamId id);  // reset with H3_REQUEST_REJECTED
  void default_fallback(StreamId id);

  ServerConfig server_config_;
  Acceptor acceptor_;
  RequestHandler* requests_ = nullptr;
  std::unordered_set<StreamId> plain_;  // request streams the handler owns
  std::vector<Deferred> deferred_;
  std::vector<Undecided> undecided_;
};

}  // namespace wtmesh::wt
