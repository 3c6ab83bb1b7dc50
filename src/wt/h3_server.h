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
// Other requests go to the fallback, or get a 404 with a short text body.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "h3/connection.h"
#include "wt/config.h"
#include "wt/h3_session_registry.h"
#include "wt/h3_session.h"
#include "wt/session.h"

namespace wtmesh::wt {

// Non-WebTransport requests. The request body, if any, is consumed and dropped by the server.
using RequestFallback = std::function<void(h3::Connection&, StreamId, const h3::HeaderList&)>;

class H3Server final : public H3SessionRegistry {
 public:
  // Installs itself as `conn`'s handler; `conn` must outlive this object.
  H3Server(h3::Connection& conn, ServerConfig config, Acceptor acceptor, RequestFallback fallback = {});
  ~H3Server() override;

  // The live session on CONNECT stream `session_id`, or nullptr.
  H3Session* session(StreamId session_id) const { return find_session(session_id); }
  size_t deferred_request_count() const { return deferred_.size(); }
  std::optional<SteadyTime> next_deadline() const override;

  // h3::Handler
  void on_peer_settings(const h3::Settings& peer) override;
  void on_headers(StreamId id, h3::HeaderList headers, bool fin) override;

 private:
  struct Deferred {
    StreamId id;
    h3::HeaderList headers;
    SteadyTime deadline;
  };

  bool may_become_session(StreamId /*session_id*/) const override { return true; }
  void on_other_request_gone(StreamId id) override;
  void on_tick_role(SteadyTime now) override;

  void process_connect(StreamId id, h3::HeaderList headers);
  bool origin_allowed(const std::string& origin) const;
  // Final response without a session; the id is remembered as gone.
  void refuse_connect(StreamId id, int status, const HeaderPairs& extra = {});
  void reject_request(StreamId id);  // reset with H3_REQUEST_REJECTED
  void default_fallback(StreamId id);

  ServerConfig server_config_;
  Acceptor acceptor_;
  RequestFallback fallback_;
  std::vector<Deferred> deferred_;
};

}  // namespace wtmesh::wt
