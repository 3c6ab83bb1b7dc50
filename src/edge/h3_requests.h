// Public HTTP/3 on the edge (RFC 9114): the plain request streams of one client QUIC connection, each
// a version-neutral PublicExchange (edge/public_exchange.h) whose answer goes back as HEADERS + DATA
// frames. It is the wt::RequestHandler of that connection's wt::H3Server, which keeps the
// WebTransport CONNECTs (agents' tunnel sessions, /echo) and hands every other request here. Sans-I/O
// like the other codecs: h3::Connection calls in, h3::Connection calls out, nothing else.
//
// Per request: the fields become an ExchangeRequest (edge/field_request.h: cookie crumbs joined,
// connection-specific fields dropped, CONNECT 405, a bad :authority or :path 400); h3/ already
// refused malformed sections (H3_MESSAGE_ERROR) and oversized ones (431). Request body bytes are
// copied out of the DATA frames and their flow-control credit goes back to the client only as the
// exchange takes them, so a slow agent holds the client back through QUIC's own windows; what waits
// here is capped by max_buffered_body as well (beyond it: H3_EXCESSIVE_LOAD). Response bytes are
// written as DATA frames as the stream's send buffer takes them, and only then credited back to the
// agent. A response that ends before the request body asks the client to stop sending it
// (STOP_SENDING H3_NO_ERROR, RFC 9114 §4.1); a response cut short resets the stream
// (H3_INTERNAL_ERROR) so the client cannot take it for whole; a client that resets its request
// cancels the exchange (499 in the log) and gets H3_REQUEST_CANCELLED back.
//
// Streams live from their HEADERS to on_request_closed() (both directions done); QUIC's stream limit
// (TransportLimits::max_streams_bidi) caps how many are open. max_local_answers edge answers in a row
// (404s of a scanner, say) send GOAWAY: requests already taken finish, later ones are refused.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edge/public_connection.h"
#include "edge/public_exchange.h"
#include "edge/tunnel_directory.h"
#include "h3/connection.h"
#include "wt/h3_server.h"

namespace wtmesh::edge {

struct H3RequestsConfig {
  // The client (its QUIC address; tls = true), the clock and PublicLimits: the exchanges' fields,
  // and max_local_answers for the connection.
  ExchangeConfig exchange;
  // Request body bytes held per stream, not yet taken by the exchange. QUIC's stream window bounds
  // it first (TransportLimits::stream_window, auto-tuned up to max_stream_window); this cap is what
  // holds whatever a window allows.
  size_t max_buffered_body = 8 << 20;
};

class H3Requests final : public wt::RequestHandler {
 public:
  using StreamId = h3::StreamId;

  // `conn` must outlive this object; hooks.wake is called when a deadline may have moved sooner.
  H3Requests(TunnelDirectory& directory, h3::Connection& conn, H3RequestsConfig config,
             ConnectionHooks hooks);
  ~H3Requests() override;
  H3Requests(const H3Requests&) = delete;
  H3Requests& operator=(const H3Requests&) = delete;

  // wt::RequestHandler
  void on_request(StreamId id, const h3::HeaderList& headers, bool fin) override;
  void on_request_body(StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_request_trailers(StreamId id, const h3::HeaderList& trailers) override;
  void on_request_reset(StreamId id, uint64_t h3_error) override;
  void on_request_writable(StreamId id) override;
  void on_request_closed(StreamId id) override;
  void on_connection_closed() override;

  std::optional<SteadyTime> next_deadline() const;
  void on_tick(SteadyTime now);

  // Introspection (tests, limits).
  size_t stream_count() const { return streams_.size(); }
  uint64_t requests_completed() const { return completed_; }
  bool goaway_sent() const { return goaway_sent_; }
  // GOAWAY after every stream the client opened (the abuse limits, and the edge's drain): requests
  // under way finish, later ones are refused with H3_REQUEST_REJECTED (safe to retry elsewhere).
  void goaway();

 private:
  class Stream;

  SteadyTime now() const;
  Stream* find(StreamId id) const;
  // Streams whose closing event ran under their own calls are freed at the next entry point.
  void bury();
  // The stream is over: it is freed at the next entry point.
  void retire(StreamId id);
  void log(const Stream& s, int status, std::string note);

  TunnelDirectory& dir_;
  h3::Connection& conn_;
  H3RequestsConfig config_;
  ConnectionHooks hooks_;
  std::map<StreamId, std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> graveyard_;
  size_t local_answers_ = 0;
  uint64_t completed_ = 0;
  StreamId next_id_ = 0;  // one past the highest request stream seen (for GOAWAY)
  bool goaway_sent_ = false;
  bool closed_ = false;
};

}  // namespace wtmesh::edge
