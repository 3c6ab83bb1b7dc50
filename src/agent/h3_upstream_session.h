// One HTTP/3 client connection to a local upstream, as the multiplexed upstream tier's streams see it,
// sans-I/O: the h3::Handler of a client-role h3::Connection (our own HTTP/3 stack over any
// quic::Transport: the agent's QUIC client, or an in-memory pair in tests). The handler only records
// what happened in per-stream state and marks the stream changed; the caller reads the state after
// the event (take_changed()), as H2UpstreamSession does for nghttp2.
//
// Flow control is ours: a stream's received body bytes are credited back to QUIC (h3::Connection::
// consume) only when the exchange took them, i.e. when the tunnel stream had room. Request bodies:
// send() takes what the QUIC stream's send buffer takes (TransportLimits::stream_send_buffer); a short
// send is resumed on the stream's writable event.
//
// Bounded: received bytes per stream by the QUIC stream window (nothing is credited before it is
// taken), header sections by h3::Config::max_field_section_size, streams by min(the peer's
// MAX_STREAMS, max_streams). Trailers are kept per stream (take_trailers) for the tunnel's `trailers`
// feature (docs/protocol.md §4.1), bounded by the field section size h3/ accepts. Interim (1xx) heads
// would be kept the same way (take_interim, at most tunnel::kMaxInterimHeads), but h3::Connection's
// client role does not deliver them yet (it checks and skips them), so none arrive from an h3 upstream.
// GOAWAY: no new streams; streams at or above its id were not processed (refused, may be replayed),
// as are streams reset with H3_REQUEST_REJECTED.
//
// Plain HTTP/3 SETTINGS (no WebTransport) with extended CONNECT understood from the peer (RFC 9220
// WebSocket). A WebTransport relay can later stack a wt::H3Client on the same h3::Connection.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/mux_upstream.h"
#include "h3/connection.h"
#include "tunnel/wire.h"

namespace wtmesh::agent {

struct H3UpstreamLimits {
  uint32_t max_streams = 100;           // our cap on concurrent request streams per connection
  size_t max_header_bytes = 60 * 1024;  // a response header section (as the HTTP/1.1 decoder)
};

// The h3::Config the upstream client sends: plain HTTP/3, bounded header sections.
h3::Config h3_upstream_config(const H3UpstreamLimits& limits);

class H3UpstreamSession final : public h3::NullHandler {
 public:
  H3UpstreamSession(h3::Connection& h3, H3UpstreamLimits limits = {});
  H3UpstreamSession(const H3UpstreamSession&) = delete;
  H3UpstreamSession& operator=(const H3UpstreamSession&) = delete;

  // How many more bidi streams the peer lets us open now (the QUIC client knows; unset: learnt from
  // a failed open and on_streams_available).
  void set_streams_left(std::function<uint64_t()> fn) { streams_left_ = std::move(fn); }
  // Called after every recorded event (the driver schedules its look at take_changed()).
  void set_on_event(std::function<void()> fn) { on_event_ = std::move(fn); }

  // --- the connection ---
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  void set_error(std::string why);
  bool goaway() const { return goaway_; }
  bool settings_received() const { return settings_received_; }
  bool connect_protocol() const { return connect_protocol_; }
  bool can_open() const;
  // Sends GOAWAY: we open no new streams.
  void shutdown();
  // Something connection-wide changed since the last call (SETTINGS, GOAWAY, stream credit, close).
  bool take_connection_changed();

  // --- streams ---
  size_t open_streams() const { return streams_.size(); }
  std::optional<int64_t> open(const tunnel::HeaderPairs& fields, bool end_stream, std::string* error);
  size_t send(int64_t id, std::span<const uint8_t> data, bool fin);
  std::vector<MuxHead> take_interim(int64_t id);
  tunnel::HeaderPairs take_trailers(int64_t id);
  std::optional<MuxHead> take_head(int64_t id);
  std::span<const uint8_t> received(int64_t id) const;
  void consume(int64_t id, size_t n);
  bool finished(int64_t id) const;
  std::optional<std::string> failure(int64_t id, bool* refused = nullptr) const;
  // Cancels a stream still open (H3_REQUEST_CANCELLED both ways) and forgets it.
  void cancel(int64_t id);
  // Forgets a finished stream.
  void forget(int64_t id);
  std::vector<int64_t> take_changed();

  // h3::Handler
  void on_peer_settings(const h3::Settings& peer) override;
  void on_headers(h3::StreamId id, h3::HeaderList headers, bool fin) override;
  void on_body(h3::StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_request_reset(h3::StreamId id, uint64_t h3_error) override;
  void on_request_writable(h3::StreamId id) override;
  void on_request_closed(h3::StreamId id) override;
  void on_goaway(uint64_t last) override;
  void on_streams_available() override;
  void on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) override;

 private:
  struct Stream {
    bool head_ready = false;
    bool head_taken = false;
    MuxHead head;
    std::vector<MuxHead> interim;    // 1xx heads not yet taken
    tunnel::HeaderPairs trailers;    // the trailing HEADERS' regular fields
    std::vector<uint8_t> in;  // received body bytes not yet consumed
    size_t in_pos = 0;
    bool ended = false;  // FIN after the response
    bool closed = false;
    bool reset = false;
    uint64_t reset_code = 0;
    bool refused = false;
    std::string error;  // a malformed response
  };
  Stream* find(int64_t id);
  const Stream* find(int64_t id) const;
  void mark(int64_t id);
  void mark_connection();
  void drop(int64_t id, uint64_t h3_error);

  h3::Connection& h3_;
  H3UpstreamLimits limits_;
  std::function<uint64_t()> streams_left_;
  std::function<void()> on_event_;
  std::map<int64_t, std::unique_ptr<Stream>> streams_;
  std::vector<int64_t> changed_;
  bool connection_changed_ = false;
  std::string error_;
  bool goaway_ = false;
  uint64_t goaway_id_ = 0;
  bool settings_received_ = false;
  bool connect_protocol_ = false;
  bool blocked_ = false;  // the peer's MAX_STREAMS was reached
};

}  // namespace wtmesh::agent
